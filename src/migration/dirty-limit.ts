/**
 * dirty-limit (QEMU 8.1's capability of that name): slow down only the
 * vCPUs that dirty memory faster than a quota, each by as much as it
 * needs, instead of every vCPU alike (auto-converge.ts). Two pure rules;
 * the main thread applies their answers (dirty-limit-controller.ts).
 *
 * 1. When (dirtyLimitTrigger): the same trigger as auto-converge's (QEMU
 *    migration/ram.c migration_trigger_throttle): a period of at least a
 *    second is *high* when the guest dirtied more than
 *    throttle-trigger-threshold % of what it sent; after two high periods
 *    (not necessarily consecutive) the count starts again and, instead of
 *    stepping the CPU throttle, every vCPU gets the quota vcpu-dirty-limit
 *    (MB/s; QEMU migration_dirty_limit_guest). A later trigger changes
 *    nothing unless vcpu-dirty-limit was changed meanwhile: then the new
 *    quota applies (QEMU compares with the quota it last set).
 *
 * 2. How much (dirtyLimitThrottle), for one vCPU at the end of each period
 *    of x-vcpu-dirty-limit-period ms, from that vCPU's own dirty rate in the
 *    period (the pages its marks found clean: vcpu-control.ts
 *    Stat.PagesDirtied) and the throttle it ran at. A vCPU at throttle p runs
 *    (100 - p) % of the time (vcpu-loop.ts sleeps p / (100 - p) of each
 *    slice, working or idle), so, dirtying at the same pace while it runs,
 *    its rate scales with 100 - p. The throttle that brings rate r at p to
 *    the quota q is
 *
 *        p' = 100 - (100 - p) x q / r      (rounded up, within [0, 99])
 *
 *    rounded up so that the expected rate is at most the quota, and never
 *    above 99 (QEMU's DIRTYLIMIT_THROTTLE_PCT_MAX). A vCPU that dirtied
 *    nothing gets 0.
 *
 * Under the quota, the same formula releases the vCPU by as much as its
 * rate allows, in one step: to the throttle at which it would dirty exactly
 * the quota; at throttle 0 a vCPU under the quota is never slowed, and one
 * that stopped dirtying (a reader, an idle vCPU) is released at once.
 * Why not release gradually (QEMU, past its 25 MB/s tolerance, moves the
 * sleep by a tenth of a ring-full time when the error is under 50 %): a
 * fixed step keeps a vCPU that no longer dirties slowed for several
 * periods, which is the harm dirty-limit exists to avoid; and why not
 * release fully (throttle 0) at once: a steady writer would then swing
 * between full speed and its throttle every other period, dirtying a whole
 * period unthrottled each time.
 *
 * What the estimate ignores: a paced workload whose pace needs only part of
 * its time does not slow down until the throttle takes more than its spare
 * time (a sweep busy 4 % of the time keeps its rate up to a throttle of
 * 96 %). The rule then sees the same rate at a higher throttle and halves
 * (or more) the run share again each period until the rate drops: it
 * converges from above in a few periods instead of one. The rate also
 * counts a page once per harvest of its bit by the migration (a KVM dirty
 * ring counts once per reset in the same way), so a vCPU rewriting the same
 * pages between two harvests counts them once: its rate is the rate of new
 * dirty pages the migration must send, which is what the limit is for.
 */
import { PAGE_SIZE } from '../memory/page.js';
import { HIGH_PERIODS_TO_STEP, periodIsHigh, type ThrottlePeriod } from './auto-converge.js';

/** QEMU's MB/s is MiB/s (its rates are bytes >> 20): pages per MB. */
export const PAGES_PER_MB = 2 ** 20 / PAGE_SIZE;
/** Most a vCPU is throttled, percent (QEMU's DIRTYLIMIT_THROTTLE_PCT_MAX). */
export const MAX_DIRTY_LIMIT_THROTTLE = 99;

export interface DirtyLimitParameters {
  readonly throttleTriggerThresholdPercent: number;
  readonly vcpuDirtyLimitMBPerSec: number;
}

/** What the trigger remembers between periods. */
export interface DirtyLimitState {
  /** The quota in force, MB/s per vCPU (0: not engaged yet). */
  readonly quotaMBPerSec: number;
  /** High periods since the last trigger. */
  readonly highPeriods: number;
}

export const NOT_LIMITED: DirtyLimitState = { quotaMBPerSec: 0, highPeriods: 0 };

export interface DirtyLimitStep {
  readonly state: DirtyLimitState;
  /** Set when the quota changed (engaged, or a new vcpu-dirty-limit): why, in words. */
  readonly why?: string;
}

/** Rule 1, after one period. */
export function dirtyLimitTrigger(state: DirtyLimitState, period: ThrottlePeriod, p: DirtyLimitParameters): DirtyLimitStep {
  if (!periodIsHigh(period, p.throttleTriggerThresholdPercent)) return { state };
  const highPeriods = state.highPeriods + 1;
  if (highPeriods < HIGH_PERIODS_TO_STEP) return { state: { ...state, highPeriods } };
  const quota = p.vcpuDirtyLimitMBPerSec;
  if (quota === state.quotaMBPerSec) return { state: { quotaMBPerSec: quota, highPeriods: 0 } };
  const words = `the guest dirtied ${mib(period.dirtiedBytes)} MiB in a period that sent ${mib(period.sentBytes)} MiB`
    + ` (more than the ${p.throttleTriggerThresholdPercent} % trigger) in ${HIGH_PERIODS_TO_STEP} periods`;
  const change = state.quotaMBPerSec === 0 ? `every vCPU limited to ${quota} MB/s` : `the vCPUs' limit ${state.quotaMBPerSec} -> ${quota} MB/s`;
  return { state: { quotaMBPerSec: quota, highPeriods: 0 }, why: `${words}: ${change}` };
}

/** One vCPU's last period. */
export interface VcpuPeriod {
  /** Pages it newly dirtied per second over the period. */
  readonly dirtyPagesPerSec: number;
  /** The throttle it ran at during the period, percent. */
  readonly throttlePercent: number;
}

/** Rule 2: the throttle for one vCPU after a period, percent in [0, 99]. */
export function dirtyLimitThrottle(v: VcpuPeriod, quotaMBPerSec: number): number {
  if (!(v.dirtyPagesPerSec > 0)) return 0;
  const quotaPagesPerSec = quotaMBPerSec * PAGES_PER_MB;
  const runPercent = ((100 - v.throttlePercent) * quotaPagesPerSec) / v.dirtyPagesPerSec;
  // Rounded up (a hair of float error aside: 100 - 50 x 0.5 is 75, not 76).
  const p = Math.ceil(100 - runPercent - 1e-9);
  return Math.max(0, Math.min(MAX_DIRTY_LIMIT_THROTTLE, p));
}

/** Pages per second as QEMU's MB/s (whole, rounded down as QEMU's integer rates are). */
export function pagesPerSecToMB(pagesPerSec: number): number {
  return Math.floor(pagesPerSec / PAGES_PER_MB);
}

const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(bytes >= 10 * 2 ** 20 ? 0 : 1);
