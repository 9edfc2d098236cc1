/**
 * The prediction of the time to converge (convergence-prediction.ts), a
 * pure function, checked with the seed thread's arithmetic: 1 Gbit/s x
 * 30 ms = 100 MB/s x 30 ms = 3 MB may remain at the switchover.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MAX_PREDICTED_PASSES, predictConvergence } from '../../src/migration/convergence-prediction.js';
import { fileLimit } from '../waits.js';

fileLimit(import.meta.url, 30_000);

const MB = 1e6;
/** The thread's link and limit: 100 MB/s, 30 ms, no fixed cost (so 3 MB may remain). */
const THREAD = { bandwidthBytesPerSec: 100 * MB, downtimeLimitMs: 30, fixedCostMs: 0 };

test("the thread's arithmetic: at 100 MB/s and 30 ms, 3 MB may remain; a remainder halving each pass gets there in whole passes", () => {
  // 64 MB, the guest dirtying half the link's rate: 64 → 32 → 16 → 8 → 4 → 2 MB; 2 MB fits in 30 ms, 4 MB does not.
  const p = predictConvergence({ ...THREAD, remainingBytes: 64 * MB, dirtyBytesPerSec: 50 * MB });
  assert.equal(p.kind, 'converges');
  assert.equal(p.kind === 'converges' && p.passes, 5);
  // Sending 64 + 32 + 16 + 8 + 4 MB at 100 MB/s is 1.24 s; the 2 MB left take 20 ms of downtime.
  assert.ok(p.kind === 'converges' && Math.abs(p.ms - 1260) < 1e-6, p.words);
  assert.match(p.words, /converges in 5 more passes, about 1\.26 s at the last pass's rates/);
  // 3 MB is exactly the limit: it switches over at the next decision, 30 ms of downtime.
  const at = predictConvergence({ ...THREAD, remainingBytes: 3 * MB, dirtyBytesPerSec: 50 * MB });
  assert.deepEqual(at.kind === 'converges' && [at.passes, at.ms], [0, 30]);
  // A clean guest (dirtying nothing) needs one pass of what remains.
  const idle = predictConvergence({ ...THREAD, remainingBytes: 9.5 * MB, dirtyBytesPerSec: 0 });
  assert.deepEqual(idle.kind === 'converges' && [idle.passes, Math.round(idle.ms)], [1, 95]);
});

test('a guest that dirties as fast as the link sends, or faster, never converges by pre-copy alone; it is said with both rates', () => {
  for (const dirty of [100 * MB, 1610 * MB]) {
    const p = predictConvergence({ ...THREAD, remainingBytes: 512 * MB, dirtyBytesPerSec: dirty });
    assert.equal(p.kind, 'never', `${dirty / MB} MB/s`);
    assert.match(p.words, /never by pre-copy alone at the last pass's rates: the guest dirties [\d.]+ MiB\/s against 95\.4 MiB\/s/);
  }
  // Just under the link's rate: more passes than anyone waits for is "never in practice".
  const slow = predictConvergence({ ...THREAD, remainingBytes: 512 * MB, dirtyBytesPerSec: 99.999 * MB });
  assert.equal(slow.kind, 'never');
  assert.match(slow.words, new RegExp(`more than ${MAX_PREDICTED_PASSES} passes`));
});

test('no prediction without a bandwidth; a downtime limit at or under the fixed cost never converges', () => {
  assert.equal(predictConvergence({ ...THREAD, bandwidthBytesPerSec: 0, remainingBytes: MB, dirtyBytesPerSec: 0 }).kind, 'unknown');
  const p = predictConvergence({ ...THREAD, fixedCostMs: 30, remainingBytes: MB, dirtyBytesPerSec: 0 });
  assert.equal(p.kind, 'never');
  assert.match(p.words, /downtime limit \(30 ms\) is not above the switchover's fixed cost \(30 ms\)/);
});
