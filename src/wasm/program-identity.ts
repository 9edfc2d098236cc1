/**
 * A program's identity: what must be equal at both ends of a migration
 * for the destination to run the stream's state (the header carries it; a
 * mismatch is refused before any page). It is also the cache key of the
 * instrumented module (module-cache.ts).
 *
 *   identity = hex SHA-256 of
 *     "ferry-wasm-program\0"
 *     u64le length of the original bytes, the original bytes
 *     u32le length of the options JSON, the options JSON: the options in
 *       force (memory-limits.ts), keys sorted, with `rewrite`: REWRITE_VERSION
 *       and, for a benchmark's partial module only, `steps` (the rewrite
 *       steps that ran; absent for the full module, whose identity it
 *       leaves unchanged)
 *     the Binaryen version (its package.json), UTF-8
 *
 * The lengths keep one field from running into the next. REWRITE_VERSION
 * stands for ferry's own rewrite: bump it whenever src/wasm/ changes what
 * it emits, or a cache would hand back a module of the old rewrite.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { ResolvedOptions } from './memory-limits.js';
import type { RewriteSteps } from './rewrite.js';

/** Version of ferry's rewrite (src/wasm/): bump it when the instrumented output changes. */
export const REWRITE_VERSION = 1;

let cachedVersion: string | undefined;

/** The version of the installed binaryen package, read from its package.json (Binaryen itself is not loaded). */
export function binaryenVersion(): string {
  if (cachedVersion === undefined) {
    const main = createRequire(import.meta.url).resolve('binaryen');
    const pkg = JSON.parse(readFileSync(join(dirname(main), 'package.json'), 'utf8')) as { version?: unknown };
    if (typeof pkg.version !== 'string') throw new Error(`binaryen's package.json beside ${main} has no version`);
    cachedVersion = pkg.version;
  }
  return cachedVersion;
}

/** JSON with object keys sorted at every level: equal values give equal text. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value).filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** The identity of `bytes` instrumented with `options` by Binaryen `version`. */
export function programIdentity(bytes: Uint8Array, options: ResolvedOptions & { readonly steps?: RewriteSteps }, version = binaryenVersion()): string {
  const { maxMemoryBytes, unwindBufferBytes, steps } = options;
  const json = Buffer.from(canonicalJson({ maxMemoryBytes, unwindBufferBytes, rewrite: REWRITE_VERSION, steps }));
  const lengths = Buffer.alloc(12);
  lengths.writeBigUInt64LE(BigInt(bytes.length), 0);
  lengths.writeUInt32LE(json.length, 8);
  return createHash('sha256')
    .update('ferry-wasm-program\0')
    .update(lengths.subarray(0, 8)).update(bytes)
    .update(lengths.subarray(8)).update(json)
    .update(version, 'utf8')
    .digest('hex');
}
