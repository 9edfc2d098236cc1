/**
 * Run the rewrite (rewrite.ts) in a worker thread of its own: it keeps
 * Binaryen (15 MB of JavaScript, seconds to tens of seconds of synchronous
 * work) off the caller's event loop, which stays free to answer its
 * control socket, and an instance Binaryen aborts dies with the worker.
 *
 * The messages, both ways, are typed here (instrument-worker.ts is only
 * the entry): the request is the worker's workerData, the answer its one
 * message. A worker that exits without answering is an error naming its
 * exit code.
 */
import { Worker } from 'node:worker_threads';
import { WasmModuleError } from '../errors.js';
import { rebuildError, type SerializedError } from '../serialized-error.js';
import type { CachedGlobal } from './module-cache.js';
import type { ResolvedOptions } from './memory-limits.js';
import type { RewriteSteps } from './rewrite.js';

export interface RewriteRequest {
  readonly bytes: Uint8Array;
  readonly options: ResolvedOptions;
  /** Benchmark only: the steps that run (InstrumentOptions.steps); default all. */
  readonly steps?: RewriteSteps;
}

export type RewriteAnswer =
  | { readonly ok: true; readonly wasm: Uint8Array; readonly mutableGlobals: readonly CachedGlobal[] }
  | { readonly ok: false; readonly error: SerializedError };

/** The instrumented module's bytes and mutable globals, from a worker. */
export function rewriteInWorker(request: RewriteRequest): Promise<{ wasm: Uint8Array; mutableGlobals: readonly CachedGlobal[] }> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./instrument-worker.js', import.meta.url), { workerData: request });
    let answered = false;
    worker.once('message', (answer: RewriteAnswer) => {
      answered = true;
      if (answer.ok) resolve({ wasm: answer.wasm, mutableGlobals: answer.mutableGlobals });
      else reject(rebuildError(answer.error));
      void worker.terminate();
    });
    worker.once('error', (err) => {
      answered = true;
      reject(new WasmModuleError(`instrumenting the module failed: ${err.message}`, { cause: err }));
    });
    worker.once('exit', (code) => {
      if (!answered) reject(new WasmModuleError(`the instrumentation worker exited with code ${code} before answering`));
    });
  });
}
