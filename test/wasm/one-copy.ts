/**
 * Checks of DESIGN.md invariant 6 (one guest runs once) for programs
 * migrated live between in-process sides.
 */
import assert from 'node:assert/strict';
import type { Guest } from '../../src/guest/guest.js';
import { RunLedger } from '../migration/helpers.js';

/**
 * DESIGN.md invariant 6 for programs migrated live, watched: the copies'
 * running intervals on one clock (RunLedger), and each source's output
 * when its destination first runs. No two intervals overlap, every copy
 * ran, and no source printed anything after its destination started: its
 * output then is its output at the end (the observable form of "the source
 * stopped executing").
 */
export class OneCopy {
  private readonly ledger = new RunLedger();
  private readonly copies: string[] = [];
  private readonly handovers: { from: string; out: { read(): string }; at: number }[] = [];

  constructor(first: string, g: Guest) {
    this.watch(first, g);
  }

  /** The incoming side's onGuest hook for a migration from `from` (printing to `out`) to the copy `to`. */
  destination(from: string, out: { read(): string }, to: string): (g: Guest) => void {
    const handover = { from, out, at: -1 };
    this.handovers.push(handover);
    return (g) => {
      this.watch(to, g);
      const first = (state: string) => {
        if (state !== 'running') return;
        handover.at = out.read().length;
        g.off('runstate', first);
      };
      g.on('runstate', first);
    };
  }

  /** After the last copy's program ended. */
  check(what: string): void {
    assert.equal(this.ledger.overlaps(), 0, `${what}: two copies ran at once`);
    for (const c of this.copies) assert.ok(this.ledger.ran(c), `${what}: ${c} never ran`);
    for (const h of this.handovers) {
      assert.ok(h.at >= 0, `${what}: the copy after ${h.from} never ran`);
      assert.equal(h.out.read().length, h.at, `${what}: ${h.from} printed after the next copy started running`);
    }
  }

  private watch(copy: string, g: Guest): void {
    this.copies.push(copy);
    this.ledger.watch(copy, g);
  }
}
