/**
 * auto-converge's rule (src/migration/auto-converge.ts) as a pure
 * function, with QEMU's arithmetic (migration_trigger_throttle,
 * mig_throttle_guest_down), and its place in the policy
 * (migration-policy.ts): the time budget first, then the throttle.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { autoConvergeStep, NO_THROTTLE, type AutoConvergeParameters, type AutoConvergeState } from '../../src/migration/auto-converge.js';
import { decidePolicy } from '../../src/migration/migration-policy.js';
import { DEFAULT_PARAMETERS } from '../../src/migration/parameters.js';
import { fileLimit } from '../waits.js';

fileLimit(import.meta.url, 30_000);

const QEMU: AutoConvergeParameters = DEFAULT_PARAMETERS;
const MiB = 2 ** 20;
/** A period that sent 100 MiB and in which the guest dirtied `dirtied` MiB (the trigger at 50 %: 50 MiB). */
const period = (dirtied: number) => ({ dirtiedBytes: dirtied * MiB, sentBytes: 100 * MiB });

/** Run the rule over periods; the throttle after each. */
function run(dirtied: readonly number[], p: AutoConvergeParameters = QEMU): number[] {
  let state: AutoConvergeState = NO_THROTTLE;
  return dirtied.map((d) => {
    state = autoConvergeStep(state, period(d), p).state;
    return state.percent;
  });
}

test("QEMU's defaults: the table holds them", () => {
  const { throttleTriggerThresholdPercent, cpuThrottleInitialPercent, cpuThrottleIncrementPercent, cpuThrottleTailslow, maxCpuThrottlePercent } = DEFAULT_PARAMETERS;
  assert.deepEqual([throttleTriggerThresholdPercent, cpuThrottleInitialPercent, cpuThrottleIncrementPercent, cpuThrottleTailslow, maxCpuThrottlePercent], [50, 20, 10, 0, 99]);
});

test('two high periods start the throttle at cpu-throttle-initial; every two more add cpu-throttle-increment, up to max-cpu-throttle', () => {
  assert.deepEqual(run([60, 60, 60, 60, 60, 60]), [0, 20, 20, 30, 30, 40]);
  // From 20 % in steps of 10 to 99 %: nine steps after the first, two periods each.
  const many = run(Array.from({ length: 30 }, () => 200));
  assert.equal(many[1], 20);
  assert.equal(many[19], 99);
  assert.equal(Math.max(...many), 99);
  assert.deepEqual(run([60, 60, 60, 60], { ...QEMU, cpuThrottleInitialPercent: 90, maxCpuThrottlePercent: 80 }), [0, 80, 80, 80]);
});

test('a period at or under the trigger changes nothing, and does not reset the count (as QEMU counts)', () => {
  assert.deepEqual(run([50, 50, 50]), [0, 0, 0], 'exactly the trigger is not above it');
  assert.deepEqual(run([60, 10, 60]), [0, 0, 20], 'two high periods, not consecutive');
  assert.deepEqual(run([60, 60], { ...QEMU, throttleTriggerThresholdPercent: 60 }), [0, 0], 'a higher trigger');
});

test('cpu-throttle-tailslow: a later step adds only what should bring the dirtying down to the trigger, if less', () => {
  const tailslow = { ...QEMU, cpuThrottleTailslow: 1 };
  // At 20 %: the guest runs 80 % of the time; dirtying 55 MiB against a 50 MiB trigger it should run 80 x 50/55 = 72.7 %,
  // which QEMU keeps as 72: 8 more.
  assert.deepEqual(run([55, 55, 55, 55], tailslow), [0, 20, 20, 28]);
  // Dirtying twice the trigger: 80 x 0.5 = 40 would be 40 more; the increment (10) is less.
  assert.deepEqual(run([100, 100, 100, 100], tailslow), [0, 20, 20, 30]);
});

test('the step says why, in words; a step that changes nothing says nothing', () => {
  const first = autoConvergeStep({ percent: 0, highPeriods: 1 }, period(80), QEMU);
  assert.equal(first.state.percent, 20);
  assert.match(first.why ?? '', /dirtied 80 MiB in a period that sent 100 MiB .*50 % trigger.*CPU throttle 0 % -> 20 %/);
  const atMax = autoConvergeStep({ percent: 99, highPeriods: 1 }, period(80), QEMU);
  assert.deepEqual(atMax, { state: { percent: 99, highPeriods: 0 } });
});

test('the policy: the time budget wins over the throttle; a period that ended steps it; no period keeps its state', () => {
  const base = { elapsedMs: 1000, timeoutMs: 0, recent: [] };
  const ac = { parameters: QEMU, state: { percent: 20, highPeriods: 1 }, period: period(90) };
  const throttled = decidePolicy({ ...base, autoConverge: ac });
  assert.equal(throttled.action.kind, 'throttle');
  assert.equal(throttled.action.kind === 'throttle' ? throttled.action.percent : -1, 30);
  assert.deepEqual(throttled.autoConverge, { percent: 30, highPeriods: 0 });
  const timedOut = decidePolicy({ ...base, timeoutMs: 500, autoConverge: ac });
  assert.equal(timedOut.action.kind, 'cancel');
  assert.deepEqual(timedOut.autoConverge, ac.state, 'a cancel leaves the throttle state as it was');
  const between = decidePolicy({ ...base, autoConverge: { ...ac, period: null } });
  assert.equal(between.action.kind, 'continue');
  assert.deepEqual(between.autoConverge, ac.state);
  const off = decidePolicy({ ...base, autoConverge: null });
  assert.equal(off.action.kind, 'continue');
  assert.equal(off.autoConverge, undefined);
});
