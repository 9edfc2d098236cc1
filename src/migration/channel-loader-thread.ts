/**
 * Where a channel's loader runs (channel-loader.ts): on a worker thread of
 * its own (a migration), or on the calling thread behind the same
 * asynchronous messages (tests that load many streams, such as the
 * channel loader fuzz, where a thread per stream would cost more than the
 * stream). The loader thread talks to either through ChannelThread.
 *
 * A chunk of the connection goes to the worker by transfer when the
 * Buffer owns its whole ArrayBuffer (a TCP socket's chunks do: nothing
 * else refers to it), else as a copy (a slice of a larger buffer, as TLS
 * may hand out): the other bytes of that buffer are not ours to move.
 */
import { Worker, threadId } from 'node:worker_threads';
import { ChannelLoader } from './channel-loader.js';
import type { ChannelLoaderInit, FromChannelLoader, ToChannelLoader } from './messages.js';

export interface ChannelThread {
  /** The connection's next bytes (the thread may take their buffer: the caller must not use `chunk` after). */
  data(chunk: Buffer): void;
  /** The connection ended. */
  end(): void;
  /** END's barrier passed: apply nothing more, and say the final figures (a 'final' message). */
  finish(): void;
  onMessage(fn: (m: FromChannelLoader) => void): void;
  /** `fn` once the thread is gone; `err`: it failed on its own (an uncaught error, an exit nobody asked). */
  onExit(fn: (err: Error | null) => void): void;
  /** End the thread now (whatever it was loading: the migration ended). */
  terminate(): void;
}

export type SpawnChannelThread = (init: ChannelLoaderInit) => ChannelThread;

/** A worker thread of its own (the migration's). */
export const workerChannelThread: SpawnChannelThread = (init) => {
  const w = new Worker(new URL('./channel-loader-worker.js', import.meta.url), { workerData: init });
  let failure: Error | null = null;
  let terminated = false;
  w.on('error', (err) => { failure ??= err; });
  return {
    data: (chunk) => {
      const whole = chunk.byteOffset === 0 && chunk.byteLength === chunk.buffer.byteLength && chunk.buffer instanceof ArrayBuffer;
      const own = whole ? chunk : new Uint8Array(chunk);
      w.postMessage({ type: 'data', chunk: own } satisfies ToChannelLoader, [own.buffer as ArrayBuffer]);
    },
    end: () => w.postMessage({ type: 'end' } satisfies ToChannelLoader),
    finish: () => w.postMessage({ type: 'finish' } satisfies ToChannelLoader),
    onMessage: (fn) => w.on('message', fn),
    onExit: (fn) => w.once('exit', (code) => fn(failure ?? (terminated ? null : new Error(`it exited with code ${code}`)))),
    terminate: () => {
      terminated = true;
      void w.terminate();
    },
  };
};

/** On the calling thread, messages delivered as microtasks in order both ways (tests). */
export const inProcessChannelThread: SpawnChannelThread = (init) => {
  const listeners: ((m: FromChannelLoader) => void)[] = [];
  const exits: ((err: Error | null) => void)[] = [];
  let gone = false;
  const loader = new ChannelLoader(init, (m) => queueMicrotask(() => { if (!gone) for (const fn of listeners) fn(m); }), threadId);
  const send = (fn: () => void) => queueMicrotask(() => { if (!gone) fn(); });
  return {
    data: (chunk) => send(() => loader.feed(chunk)),
    end: () => send(() => loader.end()),
    finish: () => send(() => loader.finish()),
    onMessage: (fn) => listeners.push(fn),
    onExit: (fn) => exits.push(fn),
    terminate: () => {
      if (gone) return;
      gone = true;
      queueMicrotask(() => { for (const fn of exits) fn(null); });
    },
  };
};
