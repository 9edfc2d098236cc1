import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CONVERGENCE_WINDOW, decidePolicy, observeConvergence, type PassFigures, type PolicyInputs } from '../../src/migration/migration-policy.js';
import { fileLimit } from '../waits.js';

fileLimit(import.meta.url, 60_000);

const MiB = 1024 ** 2;
/** A pass that left `remaining` MiB, the guest dirtying `dirty` MiB/s against `bandwidth` MiB/s. */
const pass = (remaining: number, dirty: number, bandwidth: number): PassFigures => ({
  remainingBytes: remaining * MiB, dirtyBytesPerSec: dirty * MiB, bandwidthBytesPerSec: bandwidth * MiB,
});

/** The example: the remainder does not shrink, and the guest outpaces the link. */
const stuck = [pass(410, 950, 610), pass(398, 950, 610), pass(412, 950, 610)];
const shrinking = [pass(400, 100, 600), pass(200, 100, 600), pass(80, 100, 600)];

const CASES: { name: string; inputs: PolicyInputs; action: 'continue' | 'cancel'; state: string; words: string; reason?: string }[] = [
  {
    name: 'no budget (0): never cancels, however long and however stuck',
    inputs: { elapsedMs: 86_400_000, timeoutMs: 0, recent: stuck },
    action: 'continue', state: 'not-converging', words: 'not converging: remaining 410 → 398 → 412 MiB; the guest dirties 950 MiB/s against 610 MiB/s',
  },
  {
    name: 'within the budget: continues, and the observation is only information',
    inputs: { elapsedMs: 299_999, timeoutMs: 300_000, recent: stuck },
    action: 'continue', state: 'not-converging', words: 'not converging: remaining 410 → 398 → 412 MiB; the guest dirties 950 MiB/s against 610 MiB/s',
  },
  {
    name: 'the budget ran out: cancel, saying after how long and how it was doing',
    inputs: { elapsedMs: 300_000, timeoutMs: 300_000, recent: stuck },
    action: 'cancel', state: 'not-converging', words: 'not converging: remaining 410 → 398 → 412 MiB; the guest dirties 950 MiB/s against 610 MiB/s',
    reason: 'timed out after 300 s (timeout 300 s): not converging: remaining 410 → 398 → 412 MiB; the guest dirties 950 MiB/s against 610 MiB/s',
  },
  {
    name: 'the budget ran out on a migration that converges: cancelled all the same (a budget is a budget)',
    inputs: { elapsedMs: 30_420, timeoutMs: 30_000, recent: shrinking },
    action: 'cancel', state: 'converging', words: 'converging: remaining 400 → 200 → 80 MiB; the guest dirties 100 MiB/s against 600 MiB/s',
    reason: 'timed out after 30.4 s (timeout 30 s): converging: remaining 400 → 200 → 80 MiB; the guest dirties 100 MiB/s against 600 MiB/s',
  },
  {
    name: 'the budget ran out within the first pass: no pass to describe',
    inputs: { elapsedMs: 1000, timeoutMs: 1000, recent: [] },
    action: 'cancel', state: 'too-early', words: 'too early to tell: no pass has ended yet',
    reason: 'timed out after 1 s (timeout 1 s): too early to tell: no pass has ended yet',
  },
  {
    name: 'fewer passes than the window: too early to tell, with what there is',
    inputs: { elapsedMs: 10, timeoutMs: 0, recent: stuck.slice(0, 2) },
    action: 'continue', state: 'too-early', words: 'too early to tell: remaining 410 → 398 MiB; the guest dirties 950 MiB/s against 610 MiB/s',
  },
  {
    name: 'shrinking, but the guest dirties as fast as the link sends: not converging (rule b)',
    inputs: { elapsedMs: 10, timeoutMs: 0, recent: [pass(400, 600, 600), pass(300, 600, 600), pass(200, 600, 600)] },
    action: 'continue', state: 'not-converging', words: 'not converging: remaining 400 → 300 → 200 MiB; the guest dirties 600 MiB/s against 600 MiB/s',
  },
  {
    name: 'the guest slower than the link, but the remainder back where it was: not converging (rule a)',
    inputs: { elapsedMs: 10, timeoutMs: 0, recent: [pass(100, 50, 600), pass(60, 50, 600), pass(100, 50, 600)] },
    action: 'continue', state: 'not-converging', words: 'not converging: remaining 100 → 60 → 100 MiB; the guest dirties 50 MiB/s against 600 MiB/s',
  },
  {
    name: 'a remainder within 25% of where it was three passes ago is noise, not a trend: not converging (rule a)',
    inputs: { elapsedMs: 10, timeoutMs: 0, recent: [pass(500, 249, 306), pass(440, 249, 306), pass(376, 249, 306)] },
    action: 'continue', state: 'not-converging', words: 'not converging: remaining 500 → 440 → 376 MiB; the guest dirties 249 MiB/s against 306 MiB/s',
  },
  {
    name: 'a remainder that shed more than 25% over the window, the guest slower than the link: converging',
    inputs: { elapsedMs: 10, timeoutMs: 0, recent: [pass(500, 249, 306), pass(440, 249, 306), pass(374, 249, 306)] },
    action: 'continue', state: 'converging', words: 'converging: remaining 500 → 440 → 374 MiB; the guest dirties 249 MiB/s against 306 MiB/s',
  },
  {
    name: 'only the last passes count: an old stall followed by a shrinking trend converges',
    inputs: { elapsedMs: 10, timeoutMs: 0, recent: [...stuck, ...shrinking] },
    action: 'continue', state: 'converging', words: 'converging: remaining 400 → 200 → 80 MiB; the guest dirties 100 MiB/s against 600 MiB/s',
  },
  {
    name: 'no bandwidth measured: rule b cannot apply, and the words say so; small figures keep a decimal',
    inputs: { elapsedMs: 10, timeoutMs: 0, recent: [pass(8, 3.25, 0), pass(4, 3.25, 0), pass(0.5, 3.25, 0)] },
    action: 'continue', state: 'converging', words: 'converging: remaining 8.0 → 4.0 → 0.5 MiB; the guest dirties 3.3 MiB/s; no bandwidth measured yet',
  },
];

for (const c of CASES) {
  test(`policy: ${c.name}`, () => {
    const d = decidePolicy(c.inputs);
    assert.equal(d.action.kind, c.action);
    assert.equal(d.convergence.state, c.state);
    assert.equal(d.convergence.words, c.words);
    if (d.action.kind === 'cancel') {
      assert.equal(d.action.code, 'timeout');
      assert.equal(d.action.reason, c.reason);
    } else {
      assert.equal(c.reason, undefined, 'a case with a reason cancels');
    }
  });
}

test('policy: the observation looks at the last CONVERGENCE_WINDOW (3) passes and is the same on its own', () => {
  assert.equal(CONVERGENCE_WINDOW, 3);
  for (const c of CASES) assert.deepEqual(observeConvergence(c.inputs.recent), decidePolicy(c.inputs).convergence);
});
