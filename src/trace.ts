/**
 * Tracing: one named tracer per module, off by default. Switch one on with
 * Node's own switch, e.g. `NODE_DEBUG=ferry:guest,ferry:memory`.
 */
import { debuglog } from 'node:util';

export type Tracer = ((format: string, ...args: unknown[]) => void) & { readonly enabled: boolean };

export function createTracer(module: string): Tracer {
  const log = debuglog(`ferry:${module}`);
  const tracer = ((format: string, ...args: unknown[]) => {
    if (log.enabled) log(format, ...args);
  }) as Tracer;
  Object.defineProperty(tracer, 'enabled', { get: () => log.enabled });
  return tracer;
}
