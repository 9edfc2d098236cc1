/**
 * The policy's convergence observation (migration-policy.ts) for a person
 * following a migration: a line when the migration is first seen not
 * converging, and one each time that changes (converging again, or not
 * again), never one per pass. A migration that converges from the start
 * gets none.
 */
import type { ConvergenceState } from '../migration/migration-policy.js';
import type { PassRecord } from '../migration/stats.js';

export class ConvergenceNotes {
  private last: ConvergenceState | null = null;

  /** The line to print after pass `p`, or null when there is nothing new to say. */
  note(p: PassRecord): string | null {
    const c = p.convergence ?? null; // null: the switchover pass; absent: a record from an older ferry
    if (c === null || c.state === 'too-early' || c.state === this.last) return null;
    const first = this.last === null;
    this.last = c.state;
    return first && c.state === 'converging' ? null : `  ${c.words}`;
  }
}
