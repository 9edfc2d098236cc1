/**
 * A channel's thread lowers its own priority and no other thread's
 * (thread-priority.ts): on Linux, in a worker, nice CHANNEL_NICE for that
 * thread; the main thread's stays as it was.
 */
import assert from 'node:assert/strict';
import os from 'node:os';
import { test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { CHANNEL_NICE } from '../../src/migration/thread-priority.js';
import { bounded, fileLimit } from '../waits.js';

fileLimit(import.meta.url, 30_000);

test('lowerThisThread lowers the calling thread only (Linux)', { skip: process.platform !== 'linux' && 'per-thread priority is Linux only' }, async () => {
  const before = os.getPriority();
  const module = new URL('../../src/migration/thread-priority.js', import.meta.url).href;
  const w = new Worker(`import(${JSON.stringify(module)}).then((m) => { const done = m.lowerThisThread(); require('node:worker_threads').parentPort.postMessage({ done, nice: require('node:os').getPriority() }); })`, { eval: true });
  try {
    const [m] = await bounded('the worker to report its priority', new Promise<[{ done: boolean; nice: number }]>((resolve) => w.once('message', (x) => resolve([x]))), 10_000);
    assert.equal(m.done, true);
    assert.equal(m.nice, Math.max(before, CHANNEL_NICE), "the worker's own thread is lowered");
    assert.equal(os.getPriority(), before, 'the main thread is not');
    assert.equal(os.getPriority(process.pid), before, 'nor the process as a whole');
  } finally {
    await w.terminate();
  }
});
