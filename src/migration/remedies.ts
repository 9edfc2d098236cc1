/**
 * The remedy ladder of the migration policy (migration-policy.ts), in the
 * manner of KubeVirt's migration policies: what to do about a migration
 * that makes no progress or has used its budget, as a pure function of the
 * time and the passes so far. Its state travels in its answer.
 *
 * Two triggers:
 *
 *   - *no progress*: what remains after a pass has not reached a new low
 *     (by more than PROGRESS_MARGIN of the last low) for progress-timeout
 *     (KubeVirt's progressTimeout; it counts from the first pass's end,
 *     and again from each change of remedy or of the throttle; it is looked
 *     at when a pass ends, when the remainder is known);
 *   - *over budget*: the migration has taken longer than its completion
 *     budget, budget-per-GiB x the guest's RAM in GiB (KubeVirt's
 *     completionTimeoutPerGiB).
 *
 * When either holds, the next allowed remedy is engaged, in order of harm
 * to the guest:
 *
 *   1. throttle the vCPUs (auto-converge's rule, engaged at its first step
 *      at once if the capability had not already throttled), when allowed
 *      (the default). It keeps its place while it still rises: it gives way
 *      only when there is no progress at the most throttle, or when the
 *      budget has run out and the throttle has had a progress-timeout (with
 *      progress-timeout 0: once it is at its most);
 *   2. post-copy, only when the user allowed it and the migration has the
 *      capability postcopy-ram (opt-in, as in libvirt and KubeVirt: if
 *      either side dies during it the guest is lost): the guest runs at the
 *      destination at once, its missing pages fetched on demand;
 *   3. pause-and-finish (stop-and-copy), only when the user allowed it: the
 *      guest is paused and everything left is sent, however long that
 *      takes. It is exempt from the downtime limit and labelled so in
 *      every report (libvirt's virsh migrate --timeout-suspend);
 *   4. cancel, saying why: the trigger, the trend, what was tried, and
 *      what the user could allow.
 *
 * A progress-timeout or budget of 0
 * turns that trigger off; with both off the ladder never moves.
 */

/** Share of the last low that a pass's remainder must go below to count as progress. */
export const PROGRESS_MARGIN = 0.01;

export type Remedy = 'none' | 'throttle' | 'postcopy' | 'pause-and-finish';

export interface RemedySettings {
  /** No new low of the remainder for this long is no progress, ms; 0: never. */
  readonly progressTimeoutMs: number;
  /** Budget per GiB of guest RAM, ms; 0: none. */
  readonly completionBudgetPerGiBMs: number;
  /** 1: the throttle may be engaged. */
  readonly policyThrottle: number;
  /** 1: post-copy may be engaged (it is only when the migration has the capability postcopy-ram). */
  readonly policyPostcopy: number;
  /** 1: pause-and-finish may be engaged. */
  readonly pauseAndFinish: number;
}

export interface LadderState {
  readonly remedy: Remedy;
  /** Why the remedy in force was engaged ('' for none). */
  readonly why: string;
  /** The lowest remainder after a pass, bytes (Infinity before the first pass). */
  readonly lowestBytes: number;
  /** Elapsed ms of the last progress: a new low, a change of remedy or of the throttle (null before the first pass). */
  readonly progressAtMs: number | null;
  /** When the remedy in force was engaged, elapsed ms. */
  readonly engagedAtMs: number;
  /** The throttle at the last look, percent (a change counts as progress: the remedy is still working). */
  readonly throttlePercent: number;
}

export const LADDER_START: LadderState = { remedy: 'none', why: '', lowestBytes: Infinity, progressAtMs: null, engagedAtMs: 0, throttlePercent: 0 };

export interface LadderInputs {
  readonly elapsedMs: number;
  /** The remainder after the pass that just ended, bytes; null within a pass. */
  readonly remainingBytes: number | null;
  readonly ramBytes: number;
  /** The throttle in force and its most (max-cpu-throttle), percent. */
  readonly throttlePercent: number;
  readonly maxThrottlePercent: number;
  readonly settings: RemedySettings;
  /** Whether the migration has the capability postcopy-ram (post-copy is possible at all). */
  readonly postcopyCapability: boolean;
  /** The convergence observation in words, for the reasons. */
  readonly trend: string;
}

/** What the ladder asks for now: nothing, engage a remedy, or cancel. */
export type LadderStep =
  | { readonly kind: 'none' }
  | { readonly kind: 'throttle' | 'postcopy' | 'pause-and-finish'; readonly reason: string }
  | { readonly kind: 'cancel'; readonly reason: string };

export function climbLadder(state: LadderState, i: LadderInputs): { readonly state: LadderState; readonly step: LadderStep } {
  const s = observe(state, i);
  const trigger = triggerOf(s, i);
  if (trigger === null) return { state: s, step: { kind: 'none' } };
  const next = nextRemedy(s.remedy, i.settings, i.postcopyCapability);
  if (next === null) {
    const tried = s.remedy === 'none' ? 'no remedy was allowed' : `${s.remedy} did not finish it`;
    const reason = `gave up after ${seconds(i.elapsedMs)} s: ${trigger}; ${tried}${allowNext(s.remedy, i.settings, i.postcopyCapability)}; ${i.trend}`;
    return { state: s, step: { kind: 'cancel', reason } };
  }
  const reason = `${trigger}; ${i.trend}`;
  return {
    state: { ...s, remedy: next, why: reason, engagedAtMs: i.elapsedMs, progressAtMs: i.elapsedMs },
    step: { kind: next, reason },
  };
}

/** The state after this look: a new low or a change of the throttle is progress. */
function observe(state: LadderState, i: LadderInputs): LadderState {
  let { lowestBytes, progressAtMs } = state;
  if (i.remainingBytes !== null) {
    progressAtMs ??= i.elapsedMs;
    if (i.remainingBytes < lowestBytes * (1 - PROGRESS_MARGIN)) {
      lowestBytes = i.remainingBytes;
      progressAtMs = i.elapsedMs;
    }
  }
  if (i.throttlePercent !== state.throttlePercent && progressAtMs !== null) progressAtMs = i.elapsedMs;
  return { ...state, lowestBytes, progressAtMs, throttlePercent: i.throttlePercent };
}

/** Why the ladder must move now, in words; null when it need not. */
function triggerOf(s: LadderState, i: LadderInputs): string | null {
  const { progressTimeoutMs, completionBudgetPerGiBMs } = i.settings;
  const stalledMs = s.progressAtMs === null ? 0 : i.elapsedMs - s.progressAtMs;
  // Within a pass the remainder is not known yet: only the budget can run out there.
  const stalled = progressTimeoutMs > 0 && stalledMs >= progressTimeoutMs && i.remainingBytes !== null;
  const budgetMs = completionBudgetPerGiBMs * wholeGiB(i.ramBytes);
  const overBudget = completionBudgetPerGiBMs > 0 && i.elapsedMs >= budgetMs;
  const noProgress = `no progress in ${seconds(stalledMs)} s (progress-timeout ${seconds(progressTimeoutMs)} s)`;
  const budget = `over its budget of ${seconds(budgetMs)} s (${seconds(completionBudgetPerGiBMs)} s per GiB, ${wholeGiB(i.ramBytes)} GiB)`;
  if (s.remedy === 'throttle') {
    const atMost = i.throttlePercent >= i.maxThrottlePercent;
    if (stalled && atMost) return `${noProgress} at the most throttle (${i.throttlePercent} %)`;
    // Over budget, the throttle still gets its grace: a progress-timeout, or with none (0) until it is at its most.
    const graceOver = progressTimeoutMs > 0 ? i.elapsedMs - s.engagedAtMs >= progressTimeoutMs : atMost;
    if (overBudget && graceOver) return `${budget}, the throttle at ${i.throttlePercent} %`;
    return null;
  }
  if (s.remedy !== 'none') return null; // post-copy and pause-and-finish end the migration by themselves
  if (stalled) return noProgress;
  if (overBudget) return budget;
  return null;
}

function nextRemedy(now: Remedy, settings: RemedySettings, postcopyCapability: boolean): Remedy | null {
  if (now === 'none' && settings.policyThrottle !== 0) return 'throttle';
  if ((now === 'none' || now === 'throttle') && settings.policyPostcopy !== 0 && postcopyCapability) return 'postcopy';
  if (now !== 'pause-and-finish' && now !== 'postcopy' && settings.pauseAndFinish !== 0) return 'pause-and-finish';
  return null;
}

/** What the user could allow next, for a cancel's reason. */
function allowNext(now: Remedy, settings: RemedySettings, postcopyCapability: boolean): string {
  const more: string[] = [];
  if (now === 'none' && settings.policyThrottle === 0) more.push('throttle=on');
  if (settings.policyPostcopy === 0 || !postcopyCapability) more.push('postcopy=on (with --postcopy)');
  if (settings.pauseAndFinish === 0) more.push('pause-and-finish=on');
  return more.length === 0 ? '' : ` (not allowed: ${more.join(', ')} in --policy)`;
}

function seconds(ms: number): string {
  return String(Number((ms / 1000).toFixed(ms < 10_000 ? 1 : 0)));
}
/** The guest's RAM in whole GiB, rounded up, at least 1 (KubeVirt rounds the same way). */
const wholeGiB = (bytes: number) => Math.max(1, Math.ceil(bytes / 2 ** 30));
