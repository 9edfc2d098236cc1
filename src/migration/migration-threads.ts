/**
 * The migration thread started ahead of need. A worker start costs ~31 ms
 * here; a process that asked for a spare (`ferry run --migrate-to`) gets
 * it at `migrate`, and a new one once a migration ends without completing,
 * ready for the next attempt.
 */
import { Worker } from 'node:worker_threads';
import type { SourceInit } from './messages.js';

/** A migration thread started ahead of need, waiting for its first migration. */
let spare: Worker | null = null;
/** Whether this process asked for spare threads (then one is ready again after a migration that did not complete). */
let sparesWanted = false;

/**
 * Start a migration thread now, so that `migrate` does not wait for a
 * worker to start (~31 ms here). Idempotent; the waiting thread does not
 * keep the process alive. A migration that fails or is cancelled prepares
 * the next attempt's thread as it ends.
 */
export function prepareMigrationThread(): void {
  sparesWanted = true;
  if (spare !== null) return;
  const w = new Worker(new URL('./source-worker.js', import.meta.url), { workerData: null });
  w.unref();
  w.on('error', () => { if (spare === w) spare = null; });
  w.on('exit', () => { if (spare === w) spare = null; });
  spare = w;
}

/** A migration thread for `init`: the spare if one is waiting, else a new one. */
export function takeMigrationThread(init: SourceInit): Worker {
  const w = spare;
  spare = null;
  if (w === null) return new Worker(new URL('./source-worker.js', import.meta.url), { workerData: init });
  w.ref();
  w.postMessage({ type: 'init', init });
  return w;
}

/** After a migration that did not complete: a new spare, if this process asked for spares. */
export function prepareAgainIfWanted(): void {
  if (sparesWanted) prepareMigrationThread();
}
