/**
 * A WASI program, made ready to run as a ferry guest: `loadProgram` checks
 * it, resolves the options in force, computes its identity and returns the
 * compiled instrumented module, from the cache when it is there
 * (module-cache.ts) or else from the rewrite (rewrite.ts, in a worker).
 *
 * The instrumented module imports `ferry.memory` (shared, initial = maximum
 * = layout.totalPages), `ferry.yield` ([] -> [], a poll's slow path; it may
 * unwind) and the program's `wasi_snapshot_preview1` functions unchanged. It
 * exports the program's `_start`, `__ferry_init_data` (call it once on a
 * fresh start, never at a destination), Asyncify's five functions
 * (asyncify.ts gives the protocol) and each mutable global as
 * `__ferry_global_<index>`.
 *
 * The runner, in order: create the memory; write the virtual size
 * (layout.sizeOffset: initialPages on a fresh start, the migrated size at a
 * destination) and Asyncify's {cur, end} (layout.unwindDataOffset);
 * instantiate; on a fresh start call __ferry_init_data then _start; at a
 * destination restore the globals, call asyncify_start_rewind and _start.
 *
 * Times measured here (2 cores shared with other work): SQLite 3 (the
 * amalgamation and a small main, clang-19 -O2, 1.13 MB of wasm, 23 WASI
 * imports): cold 83 s (Binaryen's Asyncify and its optimizer, in the
 * worker), warm 29 ms (read and check the cache entry, compile). The test
 * program test/fixtures/wasm/hello.wasm (29 KB): cold 5-7 s, warm under
 * 20 ms. Instantiating is the runner's, not counted here.
 */
import { WASM_PAGE_SIZE } from '../memory/page.js';
import { createTracer } from '../trace.js';
import type { WasmLayout } from './layout.js';
import { resolveMemory } from './memory-limits.js';
import { defaultCacheDir, readCacheEntry, writeCacheEntry, type CacheEntry } from './module-cache.js';
import { readModuleHeader } from './module-header.js';
import { programIdentity } from './program-identity.js';
import { checkProgramHeader } from './refusals.js';
import { rewriteInWorker } from './rewrite-in-worker.js';
import type { RewriteSteps } from './rewrite.js';

const trace = createTracer('wasm');

export interface InstrumentOptions {
  /** --wasm-max-memory: the largest linear memory the program may grow to, bytes (a multiple of 64 KiB).
   *  Default: the module's declared maximum, or else the largest that leaves room for the reserved region within 4 GiB. */
  readonly maxMemoryBytes?: number;
  /** Bytes of the unwind buffer (layout.ts); default DEFAULT_UNWIND_BUFFER_BYTES. */
  readonly unwindBufferBytes?: number;
  /**
   * Benchmark only (bench/wasm.ts measures what each step costs): which
   * rewrite steps run; default all. A partial module is a different module:
   * the steps switched off are part of its identity, so the cache never
   * mixes it with the full one. It may be run (never paused: without
   * Asyncify a pause cannot unwind, without polls it is never seen), but it
   * must never be migrated: without marks the dirty log misses its writes.
   * Migration.start refuses a guest running one.
   */
  readonly steps?: RewriteSteps;
}

export interface InstrumentedModule {
  readonly module: WebAssembly.Module;
  /** Hex SHA-256 of (original bytes, canonical JSON of the options in force, binaryen version): program-identity.ts. */
  readonly identity: string;
  readonly layout: WasmLayout;
  /** The program's declared initial memory, 64 KiB pages. */
  readonly initialPages: number;
  /** Names of the wasi_snapshot_preview1 functions the program imports. */
  readonly wasiImports: readonly string[];
  readonly mutableGlobals: readonly { readonly exportName: string; readonly type: 'i32' | 'i64' | 'f32' | 'f64' }[];
  /** Set only on a benchmark's partial or probed module (InstrumentOptions.steps): the steps that ran. Such a module is never migrated. */
  readonly partial?: PartialSteps;
}

/** The steps of a module that is not the full one: some switched off, or the probe on. */
export type PartialSteps = { readonly marks: boolean; readonly polls: boolean; readonly asyncify: boolean; readonly probe?: true };

/** The steps in force when some are switched off or the probe is on, else undefined (the identity is the full module's). */
export function partialSteps(steps: RewriteSteps | undefined): PartialSteps | undefined {
  const all = { marks: steps?.marks !== false, polls: steps?.polls !== false, asyncify: steps?.asyncify !== false };
  if (steps?.probe === true) return { ...all, probe: true };
  return all.marks && all.polls && all.asyncify ? undefined : all;
}

/** WebAssembly.compile (async: V8 compiles off the event loop), which @types/node leaves out. */
const compile = (bytes: Uint8Array): Promise<WebAssembly.Module> =>
  (WebAssembly as unknown as { compile(bytes: Uint8Array): Promise<WebAssembly.Module> }).compile(bytes);

/** Where the cache is: `undefined` the default directory, `null` none. */
function cacheDir(cache: { readonly dir: string } | null | undefined): string | null {
  if (cache === null) return null;
  return cache?.dir ?? defaultCacheDir();
}

/** The cached entry, or a fresh rewrite (stored in the cache when there is one; a failure to store is traced, not thrown). */
async function instrumented(bytes: Uint8Array, identity: string, request: Omit<Parameters<typeof rewriteInWorker>[0], 'bytes'>, dir: string | null): Promise<CacheEntry> {
  if (dir !== null) {
    const cached = await readCacheEntry(dir, identity);
    if (cached !== undefined) return cached;
  }
  const started = performance.now();
  const fresh = await rewriteInWorker({ bytes, ...request });
  trace('instrumented %s in %d ms', identity.slice(0, 12), Math.round(performance.now() - started));
  if (dir !== null) {
    await writeCacheEntry(dir, identity, fresh).catch((err: Error) => trace('cannot cache %s in %s: %s', identity.slice(0, 12), dir, err.message));
  }
  return fresh;
}

/** Instrument (or take from the cache) a program. Throws WasmModuleError with a clear message for anything it refuses. */
export async function loadProgram(
  bytes: Uint8Array, options: InstrumentOptions = {}, cache?: { readonly dir: string } | null,
): Promise<InstrumentedModule> {
  const program = checkProgramHeader(readModuleHeader(bytes));
  const resolved = resolveMemory(program.memory, options);
  const partial = partialSteps(options.steps);
  const identity = programIdentity(bytes, { ...resolved.options, steps: partial });
  const entry = await instrumented(bytes, identity, { options: resolved.options, steps: partial }, cacheDir(cache));
  const module = await compile(entry.wasm);
  trace('program %s: %d KiB initial, at most %d KiB', identity.slice(0, 12), (program.memory.initialPages * WASM_PAGE_SIZE) / 1024,
    resolved.options.maxMemoryBytes / 1024);
  return {
    module, identity, layout: resolved.layout, initialPages: program.memory.initialPages,
    wasiImports: program.wasiImports, mutableGlobals: entry.mutableGlobals, ...(partial !== undefined ? { partial } : {}),
  };
}
