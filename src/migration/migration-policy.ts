/**
 * The migration policy: what to do about a migration that is still
 * iterating, as a pure function of the time it has taken and of its recent
 * passes. The source session calls it once per pass, right after the
 * switchover rule (switchover-rule.ts), and only when that rule did not
 * decide to switch over: so nothing is ever cancelled at or after the
 * decision to switch over, and never after GO.
 *
 * Its answer is an action and an observation.
 *
 * Actions, the first rule that applies wins:
 *
 *   1. Time budget (`timeoutMs`, x-ferry-timeout, virsh migrate
 *      --timeout; 0 is none, as in QEMU): when the time since `migrate`
 *      has reached the budget, cancel, saying after how long and how the
 *      migration was doing. virsh's --timeout suspends the guest instead
 *      (the migration then finishes with the guest paused, for however long
 *      the rest takes): ferry keeps its downtime limit a promise and
 *      cancels; the source guest runs on, untouched. (Pause-and-finish is
 *      a remedy of the ladder, opt-in.)
 *   2. postcopy-after (x-ferry-postcopy-after, with postcopy-ram on): that
 *      long after `migrate`, switch to post-copy, whatever else holds.
 *   2'. The remedy ladder (remedies.ts): no progress for progress-timeout,
 *      or over the completion budget per GiB, engages the next allowed
 *      remedy (throttle, then post-copy or pause-and-finish if allowed), and cancels
 *      with its reason when none is left. Engaging the throttle starts
 *      the throttle the user chose: dirty-limit when its capability is on
 *      (at its quota at once), else auto-converge's rule at its first step,
 *      capability or not.
 *   3. auto-converge, while it is on (the capability, or engaged by the
 *      ladder), at the end of each period of at least a second: throttle
 *      the vCPUs, or throttle them more, by QEMU's rule (auto-converge.ts,
 *      which keeps its state in the answer).
 *   3'. dirty-limit (the capability; never with auto-converge, as in QEMU),
 *      at the same moments and on the same trigger: limit every vCPU's
 *      dirty rate to vcpu-dirty-limit (dirty-limit.ts); the main thread
 *      then throttles each vCPU by its own measured rate.
 *   4. Otherwise continue.
 *
 * Every remedy is an action of this one function (dirty-limit, auto-converge,
 * post-copy, pause-and-finish, cancel): nothing gets a second mechanism.
 *
 * With each pass's answer goes a prediction of the time to converge at that
 * pass's rates (convergence-prediction.ts), information only.
 *
 * The observation, information only (it never cancels: a guest on 2 cores
 * sometimes slows down and converges): over the last CONVERGENCE_WINDOW
 * passes the migration is *not converging* when
 *
 *   a. what remains did not shrink: the last pass left more than
 *      1 - CONVERGENCE_MARGIN (75%) of what the first of the window left
 *      (a guest that dirties what is sent as fast as it is sent keeps the
 *      same remainder, give or take noise: 502 → 442 → 451 MiB is flat,
 *      not a trend; a migration that converges here sheds most of its
 *      remainder in three passes, 184 → 133 → 43 MiB); or
 *   b. the guest dirtied, in the last pass, at least as many bytes per
 *      second as the bandwidth the switchover rule used: sending cannot
 *      then shrink what remains.
 *
 * else it is *converging*; with fewer passes than the window it is too
 * early to tell. It is said in words with the trend, in binary units:
 * "not converging: remaining 410 → 398 → 412 MiB; the guest dirties
 * 950 MiB/s against 610 MiB/s".
 *
 * The session asks after each pass that did not switch over, and within a
 * live pass once the budget has run out (a pass of a large guest on a slow
 * link can take minutes), never during the switchover. The observation
 * ignores what the guest will do next: a trend of three passes is a
 * description, not a forecast.
 */

import { autoConvergeStep, type AutoConvergeParameters, type AutoConvergeState, type ThrottlePeriod } from './auto-converge.js';
import { predictConvergence, type Prediction } from './convergence-prediction.js';
import { climbLadder, type LadderState, type Remedy, type RemedySettings } from './remedies.js';
import { dirtyLimitTrigger, type DirtyLimitParameters, type DirtyLimitState } from './dirty-limit.js';

/** Passes the convergence observation looks back over (the trend it shows). */
export const CONVERGENCE_WINDOW = 3;
/** Share of the remainder that must go over the window for a trend to count as shrinking (less is noise). */
export const CONVERGENCE_MARGIN = 0.25;

/** One pass's figures, as the switchover rule saw them after the pass. */
export interface PassFigures {
  /** Dirty bytes left after the pass (with a fresh sync). */
  readonly remainingBytes: number;
  /** What the guest dirtied during the pass, bytes/s. */
  readonly dirtyBytesPerSec: number;
  /** The bandwidth the switchover rule used, bytes/s (0: none measured yet). */
  readonly bandwidthBytesPerSec: number;
}

export interface PolicyInputs {
  /** Time since the migration started (`migrate`), ms. */
  readonly elapsedMs: number;
  /** The time budget, ms; 0 is none. */
  readonly timeoutMs: number;
  /** The recent passes, oldest first, this pass last; only the last CONVERGENCE_WINDOW are read. */
  readonly recent: readonly PassFigures[];
  /** auto-converge, while it is on (the capability, or engaged by the ladder): its parameters, its state, and the period that just ended (null: none ended). */
  readonly autoConverge?: {
    readonly parameters: AutoConvergeParameters;
    readonly state: AutoConvergeState;
    readonly period: ThrottlePeriod | null;
  } | null;
  /** The remedy ladder: its settings and state, the remainder after the pass that just ended (null within a pass), the guest's RAM. */
  readonly ladder?: {
    readonly settings: RemedySettings & AutoConvergeParameters;
    readonly state: LadderState;
    readonly remainingBytes: number | null;
    readonly ramBytes: number;
  } | null;
  /** Post-copy: whether the migration has the capability postcopy-ram, and x-ferry-postcopy-after (ms, 0: never). */
  readonly postcopy?: { readonly capability: boolean; readonly afterMs: number } | null;
  /** For the prediction: the downtime limit and the switchover's fixed cost, ms. */
  readonly switchover?: { readonly downtimeLimitMs: number; readonly fixedCostMs: number } | null;
  /** dirty-limit, when the capability is on: as autoConverge. */
  readonly dirtyLimit?: {
    readonly parameters: DirtyLimitParameters;
    readonly state: DirtyLimitState;
    readonly period: ThrottlePeriod | null;
  } | null;
}

export type ConvergenceState = 'too-early' | 'converging' | 'not-converging';

export interface Convergence {
  readonly state: ConvergenceState;
  /** The state and its trend in words, e.g. "not converging: remaining 410 → 398 → 412 MiB; ...". */
  readonly words: string;
}

/** What the session does next. `code` names the rule that cancelled (the error's code follows from it). */
export type PolicyAction =
  | { readonly kind: 'continue' }
  | { readonly kind: 'cancel'; readonly code: 'timeout' | 'no-progress'; readonly reason: string }
  | { readonly kind: 'throttle'; readonly percent: number; readonly reason: string }
  | { readonly kind: 'dirty-limit'; readonly quotaMBPerSec: number; readonly reason: string }
  | { readonly kind: 'postcopy'; readonly reason: string }
  | { readonly kind: 'pause-and-finish'; readonly reason: string };

export interface PolicyDecision {
  readonly action: PolicyAction;
  readonly convergence: Convergence;
  /** auto-converge's state after this decision (its input's when no period ended); absent while it is off. */
  readonly autoConverge?: AutoConvergeState;
  /** The ladder's state after this decision; absent without a ladder. */
  readonly ladder?: LadderState;
  /** The remedy in force and why ('none', '' before any). */
  readonly remedy: { readonly name: Remedy; readonly why: string };
  /** The time to converge at the last pass's rates; absent before a pass or without the switchover's figures. */
  readonly prediction?: Prediction;
  /** dirty-limit's state after this decision, likewise. */
  readonly dirtyLimit?: DirtyLimitState;
}

export function decidePolicy(i: PolicyInputs): PolicyDecision {
  const convergence = observeConvergence(i.recent);
  const last = i.recent.at(-1);
  const prediction = last === undefined || !i.switchover ? undefined : predictConvergence({ ...i.switchover, ...last });
  const l = i.ladder ?? null;
  const ac = i.autoConverge ?? null;
  const dl = i.dirtyLimit ?? null;
  const base = {
    convergence, ...(prediction && { prediction }), ...(l && { ladder: l.state }),
    remedy: { name: l?.state.remedy ?? 'none', why: l?.state.why ?? '' },
  };
  if (i.timeoutMs > 0 && i.elapsedMs >= i.timeoutMs) {
    const reason = `timed out after ${seconds(i.elapsedMs)} s (timeout ${seconds(i.timeoutMs)} s): ${convergence.words}`;
    return { ...base, ...(ac && { autoConverge: ac.state }), ...(dl && { dirtyLimit: dl.state }), action: { kind: 'cancel', code: 'timeout', reason } };
  }
  const pc = i.postcopy ?? null;
  if (pc?.capability && pc.afterMs > 0 && i.elapsedMs >= pc.afterMs && base.remedy.name !== 'postcopy') {
    const reason = `postcopy-after ${seconds(pc.afterMs)} s: ${seconds(i.elapsedMs)} s since migrate`;
    const ladder = l === null ? {} : { ladder: { ...l.state, remedy: 'postcopy' as const, why: reason, engagedAtMs: i.elapsedMs } };
    return { ...base, ...ladder, remedy: { name: 'postcopy', why: reason }, action: { kind: 'postcopy', reason } };
  }
  // The throttles' own steps first: the ladder then sees the throttle this period left.
  const throttled: Throttled = dl === null ? autoConverge(ac) : dirtyLimit(dl);
  if (l === null) return { ...base, ...throttled };
  // dirty-limit sets each vCPU's throttle on the main thread: once engaged, the ladder counts it as at its most.
  const percent = dl === null ? (throttled.autoConverge?.percent ?? 0) : (throttled.dirtyLimit?.quotaMBPerSec ?? 0) > 0 ? l.settings.maxCpuThrottlePercent : 0;
  const { state, step } = climbLadder(l.state, {
    elapsedMs: i.elapsedMs, remainingBytes: l.remainingBytes, ramBytes: l.ramBytes, settings: l.settings,
    throttlePercent: percent, maxThrottlePercent: l.settings.maxCpuThrottlePercent, trend: convergence.words,
    postcopyCapability: pc?.capability === true,
  });
  const moved = { ...base, ...throttled, ladder: state, remedy: { name: state.remedy, why: state.why } };
  if (step.kind === 'cancel') return { ...moved, action: { kind: 'cancel', code: 'no-progress', reason: step.reason } };
  if (step.kind === 'pause-and-finish' || step.kind === 'postcopy') return { ...moved, action: { kind: step.kind, reason: step.reason } };
  // Engaging the throttle when one already throttles changes nothing: its rule goes on.
  if (step.kind !== 'throttle' || percent > 0) return moved;
  if (dl !== null) {
    const quotaMBPerSec = dl.parameters.vcpuDirtyLimitMBPerSec;
    return { ...moved, dirtyLimit: { quotaMBPerSec, highPeriods: 0 }, action: { kind: 'dirty-limit', quotaMBPerSec, reason: `policy: ${step.reason}: every vCPU limited to ${quotaMBPerSec} MB/s` } };
  }
  const initial = Math.min(l.settings.cpuThrottleInitialPercent, l.settings.maxCpuThrottlePercent);
  return { ...moved, autoConverge: { percent: initial, highPeriods: 0 }, action: { kind: 'throttle', percent: initial, reason: `policy: ${step.reason}: CPU throttle 0 % -> ${initial} %` } };
}

/** A throttle's answer: its action, and its state after it. */
interface Throttled {
  readonly action: PolicyAction;
  readonly autoConverge?: AutoConvergeState;
  readonly dirtyLimit?: DirtyLimitState;
}

/** auto-converge's answer, while it is on: a step at the end of a period, else its state as it was. */
function autoConverge(ac: PolicyInputs['autoConverge']): Throttled {
  if (ac == null) return { action: { kind: 'continue' } };
  if (ac.period === null) return { action: { kind: 'continue' }, autoConverge: ac.state };
  const step = autoConvergeStep(ac.state, ac.period, ac.parameters);
  const action: PolicyAction = step.why === undefined ? { kind: 'continue' } : { kind: 'throttle', percent: step.state.percent, reason: step.why };
  return { action, autoConverge: step.state };
}

/** dirty-limit's answer, likewise: its trigger at the end of a period. */
function dirtyLimit(dl: NonNullable<PolicyInputs['dirtyLimit']>): Throttled {
  if (dl.period === null) return { action: { kind: 'continue' }, dirtyLimit: dl.state };
  const step = dirtyLimitTrigger(dl.state, dl.period, dl.parameters);
  const action: PolicyAction = step.why === undefined ? { kind: 'continue' } : { kind: 'dirty-limit', quotaMBPerSec: step.state.quotaMBPerSec, reason: step.why };
  return { action, dirtyLimit: step.state };
}

/** The convergence observation of the header, over the last CONVERGENCE_WINDOW passes of `recent`. */
export function observeConvergence(recent: readonly PassFigures[]): Convergence {
  const window = recent.slice(-CONVERGENCE_WINDOW);
  if (window.length === 0) return { state: 'too-early', words: 'too early to tell: no pass has ended yet' };
  const last = window[window.length - 1];
  const trend = `remaining ${window.map((p) => mib(p.remainingBytes)).join(' → ')} MiB`;
  const rates = last.bandwidthBytesPerSec > 0
    ? `the guest dirties ${mib(last.dirtyBytesPerSec)} MiB/s against ${mib(last.bandwidthBytesPerSec)} MiB/s`
    : `the guest dirties ${mib(last.dirtyBytesPerSec)} MiB/s; no bandwidth measured yet`;
  if (window.length < CONVERGENCE_WINDOW) return { state: 'too-early', words: `too early to tell: ${trend}; ${rates}` };
  const notShrinking = last.remainingBytes > window[0].remainingBytes * (1 - CONVERGENCE_MARGIN);
  const outpaced = last.bandwidthBytesPerSec > 0 && last.dirtyBytesPerSec >= last.bandwidthBytesPerSec;
  return notShrinking || outpaced
    ? { state: 'not-converging', words: `not converging: ${trend}; ${rates}` }
    : { state: 'converging', words: `converging: ${trend}; ${rates}` };
}

/** Bytes in MiB as people read a trend: whole numbers from 10 MiB, one decimal below. */
function mib(bytes: number): string {
  const n = bytes / 1024 ** 2;
  return n >= 10 ? n.toFixed(0) : n.toFixed(1);
}

/** Milliseconds as seconds, to 0.1 s from 10 s and to the ms below ("300", "30.4", "2.532", "0.001"). */
function seconds(ms: number): string {
  return String(Number((ms / 1000).toFixed(ms < 10_000 ? 3 : 1)));
}
