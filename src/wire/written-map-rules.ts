/**
 * The rules a destination enforces on the WRITTEN records (records.ts): the
 * source's ever-written map, sent only to a destination that asked for it
 * with PREALLOC (it preallocates the pages the source will send).
 *
 *   header  WRITTEN(block 0) ... WRITTEN(block b, LAST)  PASS / SYNC / ...
 *
 * - Only when this destination asked (else the record is refused: it cannot
 *   know what the map is for), and then the map comes first: every record
 *   after the header is WRITTEN until one carries LAST; none after it.
 * - Blocks in order; within a block, ranges in order, non-empty, inside the
 *   block's pages, and coalesced across its records (a range starts past
 *   the end of the one before: never overlapping, never touching). So a
 *   block's ranges number at most half its pages, rounded up, and the
 *   whole map is bounded by the guest's RAM (each record by its head's cap).
 * Pages past a block's pages in use are allowed: a WebAssembly guest may
 * grow between the header and the map, and preallocating them is harmless.
 */
import { WireError } from '../errors.js';
import type { StreamHeader } from './format.js';
import { Rec } from './records.js';

export class WrittenMapRules {
  private done: boolean;
  private block = 0;
  /** Where the last range of `block` ended (0: none yet). */
  private end = 0;
  private any = false;

  /** `asked`: this destination sent PREALLOC, so the map must come first. */
  constructor(private readonly asked: boolean) {
    this.done = !asked;
  }

  /** A record of `type` is about to be read (its frame checked against its row). */
  beforeRecord(name: string, type: number): void {
    if (type === Rec.Written) {
      if (!this.asked) throw new WireError('WRITTEN: this destination did not ask for the ever-written map (PREALLOC)');
      if (this.done) throw new WireError('WRITTEN: after the map\'s last record (LAST)');
    } else if (!this.done) {
      throw new WireError(`${name}: before the ever-written map's last WRITTEN (this destination asked for it with PREALLOC)`);
    }
  }

  /** A WRITTEN record of block `block` whose check passed: its ranges follow the map's order. */
  check(header: StreamHeader, block: number, last: boolean, ranges: ArrayLike<number>): void {
    const { name, pages } = header.blocks[block];
    if (this.any && block < this.block) throw new WireError(`WRITTEN: block ${name} (${block}) after block ${this.block}: blocks in order`);
    if (!this.any || block > this.block) this.end = 0;
    this.any = true;
    this.block = block;
    for (let i = 0; i < ranges.length; i += 2) {
      const first = ranges[i];
      const count = ranges[i + 1];
      if (count < 1 || first < this.end || (this.end > 0 && first === this.end) || count > pages - Math.min(first, pages)) {
        throw new WireError(`WRITTEN: range ${first}+${count} of block ${name} (${pages} pages) is empty, out of order, overlapping or touching the one before, or outside it`);
      }
      this.end = first + count;
    }
    if (last) this.done = true;
  }
}
