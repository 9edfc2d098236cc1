/**
 * `read`: reads pages over a range, in order and over and over, at a pace
 * (or at full speed), and writes nothing: a vCPU that uses memory without
 * dirtying it (dirty-limit must leave it at full speed). Each page read
 * loads 16 words (one every 256 bytes) into a running sum, so the reads
 * cannot be optimised away; its progress is the pages read (Stat.PagesRead).
 * The sum depends on what other vCPUs wrote, hence on timing: it is kept in
 * the state only as the reads' witness, never checked.
 */
import type { GuestMemory } from '../../memory/guest-memory.js';
import { newPacer, pacerRefund, pacerTake, type PacerState } from './pacer.js';
import { checkRange, checkRate, type ReadSpec, type Workload, type WorkloadState } from './workload.js';

const WORDS = 16;
const STRIDE = 1024 / WORDS;
/** Upper bound for pagesPerSec: far above what memory can serve here. */
export const MAX_READ_PAGES_PER_SEC = 1e9;

interface ReadState extends WorkloadState {
  kind: 'read';
  first: number;
  pages: number;
  cursor: number;
  /** Pages read so far (wraps at 2^32). */
  reads: number;
  sum: number;
  pacer: PacerState | null;
}

export class ReadWorkload implements Workload {
  readonly kind = 'read';
  readonly readsOnly = true;
  pagesDone = 0;
  private constructor(private readonly s: ReadState) {}

  static create(spec: ReadSpec, totalPages: number): ReadWorkload {
    const { first, pages } = checkRange('read', totalPages, spec.firstPage, spec.pages);
    const rate = spec.pagesPerSec === undefined ? null : checkRate('read: pagesPerSec', spec.pagesPerSec, MAX_READ_PAGES_PER_SEC);
    return new ReadWorkload({ kind: 'read', first, pages, cursor: 0, reads: 0, sum: 0, pacer: rate === null ? null : newPacer(rate, 0) });
  }

  static restore(state: WorkloadState, totalPages: number): ReadWorkload {
    const s = state as ReadState;
    checkRange('read', totalPages, s.first, s.pages);
    return new ReadWorkload({ ...s, pacer: s.pacer === null ? null : { ...s.pacer } });
  }

  step(mem: GuestMemory, nowNs: number, maxPages: number): number {
    const s = this.s;
    const n = s.pacer === null ? maxPages : pacerTake(s.pacer, nowNs, maxPages);
    let i = 0;
    try {
      for (; i < n; i++) {
        // A page's reads, then its cursor, sum and count (restartable: a missing page stops the first read).
        const page = s.first + s.cursor;
        let sum = s.sum;
        for (let w = 0; w < 1024; w += STRIDE) sum = (sum + mem.readU32(page, w)) >>> 0;
        s.cursor = s.cursor + 1 === s.pages ? 0 : s.cursor + 1;
        s.sum = sum;
        s.reads = (s.reads + 1) >>> 0;
      }
    } finally {
      this.pagesDone += i;
      if (i < n && s.pacer !== null) pacerRefund(s.pacer, n - i);
    }
    return n;
  }

  save(): WorkloadState {
    return { ...this.s, pacer: this.s.pacer === null ? null : { ...this.s.pacer } };
  }
}
