/**
 * The policy's remedy ladder (remedies.ts) and its place in the policy
 * (migration-policy.ts), as pure functions: what triggers it (no progress,
 * the budget per GiB), the order of the remedies (throttle, then
 * pause-and-finish if allowed, then cancel), and the words of its reasons.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decidePolicy, type PolicyInputs } from '../../src/migration/migration-policy.js';
import { DEFAULT_PARAMETERS } from '../../src/migration/parameters.js';
import { climbLadder, LADDER_START, type LadderState, type LadderStep, type RemedySettings } from '../../src/migration/remedies.js';
import { fileLimit } from '../waits.js';

fileLimit(import.meta.url, 30_000);

const MiB = 2 ** 20;
const GiB = 2 ** 30;
const DEFAULTS: RemedySettings = DEFAULT_PARAMETERS;

/** Run the ladder over passes `[elapsed s, remaining MiB, throttle %]` until it ends the migration; the steps taken, with when. */
function climb(settings: RemedySettings, passes: readonly (readonly [number, number | null, number?])[], ramBytes = 512 * MiB, postcopyCapability = false) {
  let state: LadderState = LADDER_START;
  const steps: (LadderStep & { at: number })[] = [];
  for (const [s, remaining, throttle = 0] of passes) {
    const r = climbLadder(state, {
      elapsedMs: s * 1000, remainingBytes: remaining === null ? null : remaining * MiB, ramBytes,
      throttlePercent: throttle, maxThrottlePercent: 99, settings, trend: 'TREND', postcopyCapability,
    });
    state = r.state;
    if (r.step.kind !== 'none') steps.push({ ...r.step, at: s });
    if (r.step.kind === 'cancel' || r.step.kind === 'pause-and-finish' || r.step.kind === 'postcopy') break; // each ends the migration
  }
  return { state, steps };
}

/** Passes every second from `from` to `to` s leaving `mib` each time (a flat remainder: no progress). */
const flat = (from: number, to: number, mib: number, throttle = 0) =>
  Array.from({ length: to - from + 1 }, (_, k) => [from + k, mib, throttle] as const);

test('the default ladder: 30 s without a new low engages the throttle; no progress at the most throttle then cancels, saying why', () => {
  const { steps } = climb(DEFAULTS, [...flat(1, 31, 400), ...flat(32, 41, 400, 20), ...flat(42, 95, 400, 99)]);
  assert.deepEqual(steps.map((s) => [s.kind, s.at]), [['throttle', 31], ['cancel', 72]]);
  assert.equal(steps[0].kind !== 'none' && steps[0].reason, 'no progress in 30 s (progress-timeout 30 s); TREND');
  // The throttle reached 99 % at 42 s: a change of the throttle is progress, so the clock ran from there.
  assert.equal(steps[1].kind !== 'none' && steps[1].reason,
    'gave up after 72 s: no progress in 30 s (progress-timeout 30 s) at the most throttle (99 %); throttle did not finish it' +
    ' (not allowed: postcopy=on (with --postcopy), pause-and-finish=on in --policy); TREND');
  // Below the most throttle the throttle keeps its place: auto-converge's rule still has steps to take.
  const below = climb(DEFAULTS, [...flat(1, 31, 400), ...flat(32, 149, 400, 50)]).steps; // (the budget, 150 s, not yet spent)
  assert.deepEqual(below.map((s) => [s.kind, s.at]), [['throttle', 31]]);
});

test('a remainder that keeps reaching new lows is progress, however slowly it falls; noise within 1 % of the low is not', () => {
  const falling = Array.from({ length: 120 }, (_, k) => [k + 1, 1000 * 0.98 ** k] as const);
  assert.deepEqual(climb(DEFAULTS, falling).steps, []);
  const noisy = Array.from({ length: 40 }, (_, k) => [k + 1, 400 - (k % 2) * 3.9] as const); // 400, 396.1, 400, ...: under 1 %
  assert.deepEqual(climb(DEFAULTS, noisy).steps.map((s) => [s.kind, s.at]), [['throttle', 31]]);
});

test('the completion budget is per GiB of RAM rounded up to whole GiB; the throttle then has a progress-timeout before the next remedy', () => {
  const settings = { ...DEFAULTS, completionBudgetPerGiBMs: 10_000, progressTimeoutMs: 5_000, pauseAndFinish: 1 };
  // Falling all along (no stall): 512 MiB counts as 1 GiB, so the budget is 10 s; 1.5 GiB counts as 2 GiB: 20 s.
  const falling = Array.from({ length: 40 }, (_, k) => [k + 1, 1000 * 0.98 ** k, k >= 10 ? 20 : 0] as const);
  const small = climb(settings, falling);
  assert.deepEqual(small.steps.map((s) => [s.kind, s.at]), [['throttle', 10], ['pause-and-finish', 15]]);
  assert.equal(small.steps[0].kind !== 'none' && small.steps[0].reason, 'over its budget of 10 s (10 s per GiB, 1 GiB); TREND');
  assert.match(small.steps[1].kind !== 'none' ? small.steps[1].reason : '', /^over its budget of 10 s \(10 s per GiB, 1 GiB\), the throttle at 20 %; TREND$/);
  assert.deepEqual(climb(settings, falling, 1.5 * GiB).steps.map((s) => [s.kind, s.at]), [['throttle', 20], ['pause-and-finish', 25]]);
});

test('with progress-timeout 0 the budget still gives the throttle until it is at its most before the next remedy', () => {
  const settings = { ...DEFAULTS, progressTimeoutMs: 0, completionBudgetPerGiBMs: 10_000, pauseAndFinish: 1 };
  const passes = Array.from({ length: 30 }, (_, k) => [k + 1, 400, k < 10 ? 0 : k < 20 ? 50 : 99] as const);
  assert.deepEqual(climb(settings, passes).steps.map((s) => [s.kind, s.at]), [['throttle', 10], ['pause-and-finish', 21]]);
});

test('remedies the user did not allow are skipped; with none left the cancel says what could be allowed', () => {
  const noThrottle = { ...DEFAULTS, progressTimeoutMs: 5_000, policyThrottle: 0, pauseAndFinish: 1 };
  assert.deepEqual(climb(noThrottle, flat(1, 10, 400)).steps.map((s) => [s.kind, s.at]), [['pause-and-finish', 6]]);
  const none = climb({ ...noThrottle, pauseAndFinish: 0 }, flat(1, 10, 400)).steps;
  assert.deepEqual(none.map((s) => [s.kind, s.at]), [['cancel', 6]]);
  assert.equal(none[0].kind !== 'none' && none[0].reason,
    'gave up after 6 s: no progress in 5 s (progress-timeout 5 s); no remedy was allowed (not allowed: throttle=on, postcopy=on (with --postcopy), pause-and-finish=on in --policy); TREND');
});

test('post-copy comes after the throttle and before pause-and-finish, only when allowed and the migration has postcopy-ram', () => {
  const settings = { ...DEFAULTS, progressTimeoutMs: 5_000, policyPostcopy: 1, pauseAndFinish: 1 };
  const passes = [...flat(1, 6, 400), ...flat(7, 20, 400, 99)];
  assert.deepEqual(climb(settings, passes, 512 * MiB, true).steps.map((s) => [s.kind, s.at]), [['throttle', 6], ['postcopy', 12]]);
  // Without the capability it is skipped: pause-and-finish is next.
  assert.deepEqual(climb(settings, passes, 512 * MiB, false).steps.map((s) => [s.kind, s.at]), [['throttle', 6], ['pause-and-finish', 12]]);
  const onlyPostcopy = climb({ ...settings, policyThrottle: 0, pauseAndFinish: 0 }, flat(1, 10, 400), 512 * MiB, true).steps;
  assert.deepEqual(onlyPostcopy.map((s) => [s.kind, s.at]), [['postcopy', 6]]);
  assert.equal(onlyPostcopy[0].kind !== 'none' && onlyPostcopy[0].reason, 'no progress in 5 s (progress-timeout 5 s); TREND');
});

test('postcopy-after switches to post-copy that long after migrate, with postcopy-ram only; once', () => {
  const inputs = { ...base, elapsedMs: 1200, postcopy: { capability: true, afterMs: 1000 } };
  const d = decidePolicy(inputs);
  assert.deepEqual(d.action, { kind: 'postcopy', reason: 'postcopy-after 1 s: 1.2 s since migrate' });
  assert.equal(d.remedy.name, 'postcopy');
  assert.equal(decidePolicy({ ...inputs, elapsedMs: 900 }).action.kind, 'continue');
  assert.equal(decidePolicy({ ...inputs, postcopy: { capability: false, afterMs: 1000 } }).action.kind, 'continue');
  const ladder = { settings: DEFAULT_PARAMETERS, state: d.ladder ?? { ...LADDER_START, remedy: 'postcopy' as const }, remainingBytes: null, ramBytes: MiB };
  assert.equal(decidePolicy({ ...inputs, ladder }).action.kind, 'continue', 'not again once in post-copy');
});

test('with both triggers off the ladder never moves; within a pass (no remainder yet) no progress is never concluded', () => {
  assert.deepEqual(climb({ ...DEFAULTS, progressTimeoutMs: 0, completionBudgetPerGiBMs: 0 }, flat(1, 2000, 400)).steps, []);
  const within = Array.from({ length: 100 }, (_, k) => [k + 1, k === 0 ? 400 : null] as const);
  assert.deepEqual(climb(DEFAULTS, within).steps, [], 'a pass of 100 s is not a stall until it ends');
});

const pass = (mib: number) => ({ remainingBytes: mib * MiB, dirtyBytesPerSec: 600 * MiB, bandwidthBytesPerSec: 300 * MiB });
const base: PolicyInputs = { elapsedMs: 0, timeoutMs: 0, recent: [pass(400), pass(401), pass(399)] };

test('in the policy: the ladder engages auto-converge at its first step with the capability off; its cancel is the no-progress code; the time budget comes first', () => {
  const settings = { ...DEFAULT_PARAMETERS, progressTimeoutMs: 5_000 };
  const ladder = (state: LadderState, s: number) => ({ settings, state, remainingBytes: 399 * MiB, ramBytes: 512 * MiB, elapsed: s });
  const first = decidePolicy({ ...base, elapsedMs: 1000, ladder: ladder(LADDER_START, 1) });
  assert.equal(first.action.kind, 'continue');
  assert.equal(first.remedy.name, 'none');
  const engaged = decidePolicy({ ...base, elapsedMs: 6000, ladder: ladder(first.ladder!, 6) });
  assert.equal(engaged.action.kind, 'throttle');
  assert.equal(engaged.action.kind === 'throttle' && engaged.action.percent, 20, "cpu-throttle-initial's default");
  assert.deepEqual(engaged.autoConverge, { percent: 20, highPeriods: 0 });
  assert.equal(engaged.remedy.name, 'throttle');
  assert.match(engaged.remedy.why, /^no progress in 5 s \(progress-timeout 5 s\); not converging: remaining 400 → 401 → 399 MiB/);
  // From there auto-converge's own rule steps it (two high periods), as with the capability.
  const period = { dirtiedBytes: 600 * MiB, sentBytes: 300 * MiB };
  let ac = engaged.autoConverge!;
  let state = engaged.ladder!;
  for (const s of [7, 8]) {
    const d = decidePolicy({ ...base, elapsedMs: s * 1000, ladder: ladder(state, s), autoConverge: { parameters: settings, state: ac, period } });
    ac = d.autoConverge!;
    state = d.ladder!;
  }
  assert.equal(ac.percent, 30);
  const atMost = { ...settings, maxCpuThrottlePercent: 30 };
  const ended = decidePolicy({ ...base, elapsedMs: 14_000, ladder: { ...ladder(state, 14), settings: atMost }, autoConverge: { parameters: atMost, state: ac, period: null } });
  assert.equal(ended.action.kind, 'cancel');
  assert.equal(ended.action.kind === 'cancel' && ended.action.code, 'no-progress');
  assert.match(ended.action.kind === 'cancel' ? ended.action.reason : '', /^gave up after 14 s: no progress in 6 s \(progress-timeout 5 s\) at the most throttle \(30 %\)/);
  const timedOut = decidePolicy({ ...base, elapsedMs: 14_000, timeoutMs: 10_000, ladder: ladder(state, 14) });
  assert.equal(timedOut.action.kind === 'cancel' && timedOut.action.code, 'timeout');
});

test('the prediction goes with every answer that has a pass and the switchover figures', () => {
  const d = decidePolicy({ ...base, recent: [{ remainingBytes: 64e6, dirtyBytesPerSec: 50e6, bandwidthBytesPerSec: 100e6 }], switchover: { downtimeLimitMs: 30, fixedCostMs: 0 } });
  assert.equal(d.prediction?.kind, 'converges');
  assert.equal(decidePolicy(base).prediction, undefined);
});
