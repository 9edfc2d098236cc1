/**
 * auto-converge (QEMU's capability of that name): slow every vCPU down
 * when the guest dirties memory faster than the migration can send it, a
 * little more each time it still does. A pure rule over periods of the
 * migration; the main thread applies its answer to the guest
 * (migration.ts, Guest.throttle).
 *
 * QEMU's rule (migration/ram.c, migration_trigger_throttle and
 * mig_throttle_guest_down), with its parameters and defaults:
 *
 *   - a period is at least one second of passes (QEMU checks at a bitmap
 *     sync at least 1000 ms after the last check); its figures are the
 *     bytes the guest dirtied in it and the bytes sent in it;
 *   - the period is *high* when dirtied > sent x throttle-trigger-threshold
 *     / 100 (default 50);
 *   - after two high periods the throttle steps, and the count starts
 *     again: the first step sets cpu-throttle-initial (default 20), each
 *     later one adds cpu-throttle-increment (default 10), never above
 *     max-cpu-throttle (default 99);
 *   - with cpu-throttle-tailslow (default off) a later step adds only what
 *     should bring the dirty rate down to the threshold, if that is less:
 *     the guest now runs 100 - p percent of the time; at the same dirtying
 *     per unit of run time it would need to run (100 - p) x threshold
 *     bytes / dirtied bytes (rounded down); the step is the difference.
 *
 * QEMU counts high periods without requiring them to be consecutive (a
 * period below the threshold does not reset the count); ferry does the
 * same. One deviation: the first step is capped at max-cpu-throttle too
 * (QEMU sets cpu-throttle-initial as it is, even above the maximum).
 *
 * The throttle itself is QEMU's (cpu_throttle_thread): each vCPU sleeps
 * p / (100 - p) of every slice of its time, working or idle (vCPU slices:
 * vcpu-loop.ts; a WebAssembly vCPU at its polls, rung every 10 ms:
 * wasm-vcpu.ts), and it ends when the migration ends; a throttle the user
 * set (Guest.throttle, ferry run --throttle) is kept under it and given
 * back after.
 */

/** Shortest period between two checks, ms (QEMU: a bitmap sync at least 1000 ms after the last check). */
export const PERIOD_MS = 1000;
/** High periods before the throttle steps (QEMU: dirty_rate_high_cnt >= 2). */
export const HIGH_PERIODS_TO_STEP = 2;

export interface AutoConvergeParameters {
  readonly throttleTriggerThresholdPercent: number;
  readonly cpuThrottleInitialPercent: number;
  readonly cpuThrottleIncrementPercent: number;
  readonly maxCpuThrottlePercent: number;
  /** 1: cpu-throttle-tailslow on. */
  readonly cpuThrottleTailslow: number;
}

/** What the rule remembers between periods. */
export interface AutoConvergeState {
  /** The throttle in force, percent (0: none yet). */
  readonly percent: number;
  /** High periods since the last step. */
  readonly highPeriods: number;
}

export const NO_THROTTLE: AutoConvergeState = { percent: 0, highPeriods: 0 };

/** One period's figures. */
export interface ThrottlePeriod {
  readonly dirtiedBytes: number;
  readonly sentBytes: number;
}

export interface ThrottleStep {
  readonly state: AutoConvergeState;
  /** Set when the throttle changed: why, in words. */
  readonly why?: string;
}

/** Whether a period is high: the guest dirtied more than `thresholdPercent` of what it sent (dirty-limit triggers on it too). */
export function periodIsHigh(period: ThrottlePeriod, thresholdPercent: number): boolean {
  return period.dirtiedBytes > (period.sentBytes * thresholdPercent) / 100;
}

/** The rule, after one period. */
export function autoConvergeStep(state: AutoConvergeState, period: ThrottlePeriod, p: AutoConvergeParameters): ThrottleStep {
  const thresholdBytes = (period.sentBytes * p.throttleTriggerThresholdPercent) / 100;
  if (!periodIsHigh(period, p.throttleTriggerThresholdPercent)) return { state };
  const highPeriods = state.highPeriods + 1;
  if (highPeriods < HIGH_PERIODS_TO_STEP) return { state: { ...state, highPeriods } };
  const percent = nextPercent(state.percent, period.dirtiedBytes, thresholdBytes, p);
  const words = `the guest dirtied ${mib(period.dirtiedBytes)} MiB in a period that sent ${mib(period.sentBytes)} MiB`
    + ` (more than the ${p.throttleTriggerThresholdPercent} % trigger) in ${HIGH_PERIODS_TO_STEP} periods`;
  if (percent === state.percent) return { state: { percent, highPeriods: 0 } };
  return { state: { percent, highPeriods: 0 }, why: `${words}: CPU throttle ${state.percent} % -> ${percent} %` };
}

function nextPercent(now: number, dirtiedBytes: number, thresholdBytes: number, p: AutoConvergeParameters): number {
  if (now === 0) return Math.min(p.cpuThrottleInitialPercent, p.maxCpuThrottlePercent);
  let increment = p.cpuThrottleIncrementPercent;
  if (p.cpuThrottleTailslow !== 0) {
    const cpuNow = 100 - now;
    const cpuIdeal = Math.floor(cpuNow * (thresholdBytes / dirtiedBytes)); // QEMU keeps it in an integer
    increment = Math.min(cpuNow - cpuIdeal, increment);
  }
  return Math.min(now + increment, p.maxCpuThrottlePercent);
}

const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(bytes >= 10 * 2 ** 20 ? 0 : 1);
