/**
 * Where the source session asks the policy (migration-policy.ts, a pure
 * function): after each pass that did not switch over, with that pass's
 * figures, and within a live pass once the time budget has run out (a pass
 * of a large guest on a slow link can take minutes). Keeps the last
 * CONVERGENCE_WINDOW passes' figures the policy reads.
 */
import { PAGE_SIZE } from '../memory/page.js';
import { CONVERGENCE_WINDOW, decidePolicy, type PassFigures, type PolicyDecision } from './migration-policy.js';
import type { MigrationParameters } from './parameters.js';
import type { PassDecision } from './source-figures.js';
import { monoMs } from './waiter.js';

export class PolicyGate {
  private readonly recent: PassFigures[] = [];

  /** `startedAtMs`: when `migrate` was asked (monoMs); `parameters`: the live ones. */
  constructor(private readonly startedAtMs: number, private readonly parameters: () => MigrationParameters) {}

  /** After a pass whose switchover rule said iterate. */
  afterPass(decision: PassDecision): PolicyDecision {
    const figures = { remainingBytes: decision.remainingPages * PAGE_SIZE, dirtyBytesPerSec: decision.dirtyRate * PAGE_SIZE, bandwidthBytesPerSec: decision.bandwidth };
    this.recent.push(figures);
    if (this.recent.length > CONVERGENCE_WINDOW) this.recent.shift();
    return this.ask();
  }

  /** Within a live pass: the policy's decision once the time budget has run out, else null (nothing to ask yet). */
  duringPass(): PolicyDecision | null {
    const { timeoutMs } = this.parameters();
    return timeoutMs > 0 && monoMs() - this.startedAtMs >= timeoutMs ? this.ask() : null;
  }

  private ask(): PolicyDecision {
    return decidePolicy({ elapsedMs: monoMs() - this.startedAtMs, timeoutMs: this.parameters().timeoutMs, recent: this.recent });
  }
}
