/**
 * max-bandwidth shared by the channels (shared-rate-limiter.ts): one
 * budget however many limiters hold it, the same bucket as RateLimiter's
 * (a window's worth after an idle spell, overruns as debt, half a window's
 * wait), and no bytes lost when threads consume at once.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { RATE_WINDOW_NS, RateLimiter } from '../../src/migration/rate-limiter.js';
import { SharedRateLimiter } from '../../src/migration/shared-rate-limiter.js';
import { bounded, fileLimit } from '../waits.js';

fileLimit(import.meta.url, 60_000);

const RATE = 10_000_000; // bytes/s: a window (100 ms) is 1 MB

test('one budget for all: what one channel sends, the others cannot', () => {
  const buffer = SharedRateLimiter.create(RATE);
  const [a, b] = [new SharedRateLimiter(buffer), new SharedRateLimiter(buffer)];
  const t = 5e9;
  assert.equal(a.allowance(t), 1_000_000, 'a window after an idle spell');
  a.consume(600_000);
  assert.equal(b.allowance(t), 400_000);
  b.consume(400_000);
  assert.equal(a.allowance(t), 0);
  assert.equal(b.allowance(t), 0);
  // 20 ms later 200 kB have been paid back, for whichever channel asks first.
  assert.equal(Math.round(b.allowance(t + 20e6)), 200_000);
});

test('the same bucket as RateLimiter: window, debt and wait agree step for step', () => {
  const shared = new SharedRateLimiter(SharedRateLimiter.create(RATE));
  const single = new RateLimiter(RATE);
  let t = 1e9;
  for (const [bytes, stepNs] of [[300_000, 0], [2_500_000, 10e6], [0, 50e6], [100_000, 300e6], [0, 700e6], [5_000_000, 1e6]] as const) {
    t += stepNs;
    assert.equal(Math.round(shared.allowance(t)), Math.round(single.allowance(t)), `allowance at ${t}`);
    assert.equal(Math.round(shared.waitNs(t) / 1e3), Math.round(single.waitNs(t) / 1e3), `wait at ${t}`);
    shared.consume(bytes);
    single.consume(bytes);
  }
  // The last step sent 5 MB at once (a window holds 1 MB): debt, paid back over 450 ms before half a window is free.
  t += 1e6;
  assert.equal(Math.round(shared.waitNs(t) / 1e6), 449);
  assert.equal(Math.round(single.waitNs(t) / 1e6), 449);
});

test('unlimited (0) allows anything; a new rate reaches every limiter of the budget', () => {
  const buffer = SharedRateLimiter.create(0);
  const [a, b] = [new SharedRateLimiter(buffer), new SharedRateLimiter(buffer)];
  assert.equal(a.allowance(1e9), Infinity);
  a.consume(1e12);
  assert.equal(b.waitNs(1e9), 0);
  a.setRate(RATE);
  assert.equal(b.unlimited, false);
  assert.equal(b.allowance(2e9), 1_000_000);
});

test('threads consuming at once lose none of each other\'s bytes', async () => {
  const buffer = SharedRateLimiter.create(1e9);
  const each = 20_000;
  const code = `
    const { workerData, parentPort } = require('node:worker_threads');
    import(workerData.module).then(({ SharedRateLimiter }) => {
      const l = new SharedRateLimiter(workerData.buffer);
      for (let i = 0; i < workerData.each; i++) { l.allowance(-1e15); l.consume(1000); }
      parentPort.postMessage('done');
    });`;
  const module = new URL('../../src/migration/shared-rate-limiter.js', import.meta.url).href;
  const workers = [0, 1, 2].map(() => new Worker(code, { eval: true, workerData: { buffer, each, module } }));
  try {
    await bounded('three threads to consume', Promise.all(workers.map((w) => new Promise((resolve, reject) => {
      w.once('message', resolve);
      w.once('error', reject);
    }))), 30_000);
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
  // Long before the epoch (their clocks' -1e15), the bucket (at 0) is always ahead: each of the 60,000 sends of 1000 bytes at
  // 1 GB/s moves it exactly 1 µs on, whatever the interleaving, so it ends 60 ms past the epoch, where this thread's clock is 0.
  const reader = new SharedRateLimiter(buffer);
  assert.equal(reader.allowance(0), (RATE_WINDOW_NS - 3 * each * 1000) * 1e9 / 1e9);
});
