/**
 * The import object for `wasi_snapshot_preview1`: each call of the table,
 * bound to a device state and a host, with its i32 arguments made unsigned
 * and its failures made error numbers. A call never throws into the
 * program but for WasiExit (proc_exit: the run ends) and a host's own
 * failure (a write to a closed stdout, a rewind with no pending sleep),
 * which the vCPU runner reports as the program's failure.
 */
import type { CallContext, WasiCall } from './call-context.js';
import { pollCalls } from './call-poll.js';
import { fdIoCalls } from './calls-fd-io.js';
import { fdMetaCalls } from './calls-fd-meta.js';
import { pathCalls } from './calls-path.js';
import { processCalls } from './calls-process.js';
import { MemoryAccess } from './memory-access.js';
import { ErrnoError } from './wasi-errno.js';
import { type WasiHost, hostWallNowNs } from './wasi-host.js';
import type { WasiState } from './wasi-state.js';

/** Every preview 1 call, by name. */
export const WASI_CALLS: Readonly<Record<string, WasiCall>> = {
  ...processCalls, ...fdIoCalls, ...fdMetaCalls, ...pathCalls, ...pollCalls,
};

const unsigned = (a: unknown): unknown => (typeof a === 'number' ? a >>> 0 : a);

export function bindImports(state: WasiState, host: WasiHost): Record<string, (...args: never[]) => number> {
  const wallNowNs = host.wallNowNs?.bind(host) ?? hostWallNowNs;
  state.fs.now = wallNowNs;
  const ctx: CallContext = { state, host, mem: new MemoryAccess(host.memory), wallNowNs };
  const imports: Record<string, (...args: never[]) => number> = {};
  for (const [name, call] of Object.entries(WASI_CALLS)) {
    imports[name] = (...args: unknown[]): number => {
      try {
        return call(ctx, ...args.map(unsigned));
      } catch (err) {
        if (err instanceof ErrnoError) return err.errno;
        throw err;
      }
    };
  }
  return imports;
}
