/**
 * Where the source session asks the policy (migration-policy.ts, a pure
 * function): after each pass that did not switch over, with that pass's
 * figures, and within a live pass once the time budget has run out (a pass
 * of a large guest on a slow link can take minutes). Keeps the last
 * CONVERGENCE_WINDOW passes' figures the policy reads, the remedy ladder's
 * state (remedies.ts; it moves only when a pass ends, where the remainder
 * is known and a pause-and-finish can start cleanly), and, while
 * auto-converge or dirty-limit is on (its capability, or engaged by the
 * ladder), the period being gathered (passes until PERIOD_MS) and the
 * rule's state between periods.
 */
import { PAGE_SIZE } from '../memory/page.js';
import { NO_THROTTLE, PERIOD_MS, type AutoConvergeState, type ThrottlePeriod } from './auto-converge.js';
import { NOT_LIMITED, type DirtyLimitState } from './dirty-limit.js';
import { CONVERGENCE_WINDOW, decidePolicy, type PassFigures, type PolicyDecision } from './migration-policy.js';
import { LADDER_START, type LadderState } from './remedies.js';
import type { MigrationParameters } from './parameters.js';
import type { PassDecision } from './source-figures.js';
import { monoMs } from './waiter.js';

export class PolicyGate {
  private readonly recent: PassFigures[] = [];
  /** auto-converge's state, or null while it is off (the capability is off and the ladder has not engaged it). */
  private throttle: AutoConvergeState | null;
  /** dirty-limit's state, or null when the capability is off. */
  private limit: DirtyLimitState | null;
  private ladder: LadderState = LADDER_START;
  private period: ThrottlePeriod = { dirtiedBytes: 0, sentBytes: 0 };
  /** When the period being gathered began (monoMs); null before the first pass ended. */
  private periodStartMs: number | null = null;
  /** Dirty pages left after the last pass (null before the first: its pages found were all of RAM's written pages). */
  private remainingPages: number | null = null;

  /**
   * `startedAtMs`: when `migrate` was asked (monoMs); `parameters`: the live
   * ones; `o.ramBytes`: the guest's RAM (the completion budget is per GiB
   * of it); `o.fixedCostMs`: the switchover's fixed cost now (for the
   * prediction: the link's round trips in it are measured as it goes); the capabilities auto-converge and dirty-limit (never both).
   */
  constructor(
    private readonly startedAtMs: number, private readonly parameters: () => MigrationParameters,
    private readonly o: {
      readonly autoConverge: boolean; readonly dirtyLimit: boolean; readonly postcopy: boolean; readonly ramBytes: number; readonly fixedCostMs: () => number;
    },
  ) {
    const { autoConverge, dirtyLimit } = o;
    this.throttle = autoConverge ? NO_THROTTLE : null;
    this.limit = dirtyLimit ? NOT_LIMITED : null;
  }

  /** A throttle remedy is on (the capability auto-converge or dirty-limit, or the ladder engaged auto-converge): its passes are periods (early-pass-end.ts). */
  get throttling(): boolean {
    return this.throttle !== null || this.limit !== null;
  }

  /**
   * After a pass whose switchover rule said iterate: it took `passMs`, sent
   * `sentBytes`, and took `dirtyFound` dirty pages from the log as it went.
   * What the guest dirtied during it, as QEMU's period counts (every page
   * dirtied since the last sync): the pages found beyond those dirty at its
   * start (dirtied ahead of the cursor, and sent in this same pass), and
   * those left dirty after it. A period is wall time, waits between passes
   * included.
   */
  afterPass(decision: PassDecision, passMs: number, sentBytes: number, dirtyFound: number): PolicyDecision {
    const figures = { remainingBytes: decision.remainingPages * PAGE_SIZE, dirtyBytesPerSec: decision.dirtyRate * PAGE_SIZE, bandwidthBytesPerSec: decision.bandwidth };
    this.recent.push(figures);
    if (this.recent.length > CONVERGENCE_WINDOW) this.recent.shift();
    const now = monoMs();
    this.periodStartMs ??= now - passMs;
    // A pass that ended early (early-pass-end.ts) left pages it never reached: counted in both the remainders, they cancel out.
    const dirtiedPages = Math.max(0, (this.remainingPages === null ? 0 : dirtyFound - this.remainingPages) + decision.remainingPages);
    this.remainingPages = decision.remainingPages;
    const p = this.period;
    this.period = { dirtiedBytes: p.dirtiedBytes + dirtiedPages * PAGE_SIZE, sentBytes: p.sentBytes + sentBytes };
    const ended = now - this.periodStartMs >= PERIOD_MS ? this.period : null;
    if (ended !== null) {
      this.period = { dirtiedBytes: 0, sentBytes: 0 };
      this.periodStartMs = now;
    }
    return this.ask(ended, figures.remainingBytes);
  }

  /**
   * Within a live pass: the policy's decision once the time budget has run
   * out, or once postcopy-after has come (with postcopy-ram), else null
   * (nothing to ask yet).
   */
  duringPass(): PolicyDecision | null {
    const { timeoutMs, postcopyAfterMs } = this.parameters();
    const elapsed = monoMs() - this.startedAtMs;
    const postcopyDue = this.o.postcopy && postcopyAfterMs > 0 && elapsed >= postcopyAfterMs && this.ladder.remedy !== 'postcopy';
    return (timeoutMs > 0 && elapsed >= timeoutMs) || postcopyDue ? this.ask(null, null) : null;
  }

  /** `remainingBytes`: after the pass that just ended; null within a pass (the ladder then stays where it is). */
  private ask(period: ThrottlePeriod | null, remainingBytes: number | null): PolicyDecision {
    const p = this.parameters();
    const autoConverge = this.throttle === null ? null : { parameters: p, state: this.throttle, period };
    const dirtyLimit = this.limit === null ? null : { parameters: p, state: this.limit, period };
    const ladder = remainingBytes === null ? null : { settings: p, state: this.ladder, remainingBytes, ramBytes: this.o.ramBytes };
    const decision = decidePolicy({
      elapsedMs: monoMs() - this.startedAtMs, timeoutMs: p.timeoutMs, recent: this.recent, autoConverge, dirtyLimit, ladder,
      postcopy: { capability: this.o.postcopy, afterMs: p.postcopyAfterMs },
      switchover: { downtimeLimitMs: p.downtimeLimitMs, fixedCostMs: this.o.fixedCostMs() },
    });
    if (decision.autoConverge !== undefined) this.throttle = decision.autoConverge;
    if (decision.dirtyLimit !== undefined) this.limit = decision.dirtyLimit;
    if (decision.ladder !== undefined) this.ladder = decision.ladder;
    else if (decision.action.kind === 'postcopy') this.ladder = { ...this.ladder, remedy: 'postcopy', why: decision.action.reason }; // postcopy-after within a pass
    return decision;
  }
}
