/**
 * Where the source session asks the policy (migration-policy.ts, a pure
 * function): after each pass that did not switch over, with that pass's
 * figures, and within a live pass once the time budget has run out (a pass
 * of a large guest on a slow link can take minutes). Keeps the last
 * CONVERGENCE_WINDOW passes' figures the policy reads, and, with
 * auto-converge, the period being gathered (passes until PERIOD_MS) and
 * the rule's state between periods.
 */
import { PAGE_SIZE } from '../memory/page.js';
import { NO_THROTTLE, PERIOD_MS, type AutoConvergeState, type ThrottlePeriod } from './auto-converge.js';
import { CONVERGENCE_WINDOW, decidePolicy, type PassFigures, type PolicyDecision } from './migration-policy.js';
import type { MigrationParameters } from './parameters.js';
import type { PassDecision } from './source-figures.js';
import { monoMs } from './waiter.js';

export class PolicyGate {
  private readonly recent: PassFigures[] = [];
  /** auto-converge's state, or null when the capability is off. */
  private throttle: AutoConvergeState | null;
  private period = { ms: 0, dirtiedBytes: 0, sentBytes: 0 };

  /** `startedAtMs`: when `migrate` was asked (monoMs); `parameters`: the live ones. */
  constructor(private readonly startedAtMs: number, private readonly parameters: () => MigrationParameters, autoConverge: boolean) {
    this.throttle = autoConverge ? NO_THROTTLE : null;
  }

  /** After a pass whose switchover rule said iterate: the pass took `passMs` and sent `sentBytes`. */
  afterPass(decision: PassDecision, passMs: number, sentBytes: number): PolicyDecision {
    const figures = { remainingBytes: decision.remainingPages * PAGE_SIZE, dirtyBytesPerSec: decision.dirtyRate * PAGE_SIZE, bandwidthBytesPerSec: decision.bandwidth };
    this.recent.push(figures);
    if (this.recent.length > CONVERGENCE_WINDOW) this.recent.shift();
    const p = this.period;
    this.period = { ms: p.ms + passMs, dirtiedBytes: p.dirtiedBytes + (figures.dirtyBytesPerSec * passMs) / 1000, sentBytes: p.sentBytes + sentBytes };
    const ended = this.period.ms >= PERIOD_MS ? this.period : null;
    if (ended !== null) this.period = { ms: 0, dirtiedBytes: 0, sentBytes: 0 };
    return this.ask(ended);
  }

  /** Within a live pass: the policy's decision once the time budget has run out, else null (nothing to ask yet). */
  duringPass(): PolicyDecision | null {
    const { timeoutMs } = this.parameters();
    return timeoutMs > 0 && monoMs() - this.startedAtMs >= timeoutMs ? this.ask(null) : null;
  }

  private ask(period: ThrottlePeriod | null): PolicyDecision {
    const p = this.parameters();
    const autoConverge = this.throttle === null ? null : { parameters: p, state: this.throttle, period };
    const decision = decidePolicy({ elapsedMs: monoMs() - this.startedAtMs, timeoutMs: p.timeoutMs, recent: this.recent, autoConverge });
    if (decision.autoConverge !== undefined) this.throttle = decision.autoConverge;
    return decision;
  }
}
