/**
 * `stress`: writes distinct pages at a target rate over a working set, in
 * sequential or random order. Each written page gets 16 words (one every
 * 256 bytes) derived from a write counter; word 0 is never zero, so no
 * written page is ever all zero.
 */
import type { GuestMemory } from '../../memory/guest-memory.js';
import { PAGE_SIZE } from '../../memory/page.js';
import { newPacer, pacerRefund, pacerTake, type PacerState } from './pacer.js';
import { mix32, seedFrom, xorshift32 } from './prng.js';
import { checkOneOf, checkRange, checkRate, type StressSpec, type Workload, type WorkloadState } from './workload.js';

const WORDS = 16;
const STRIDE = PAGE_SIZE / 4 / WORDS;
/** Upper bound for rateMiBps: far above what memory can absorb here. */
export const MAX_STRESS_MIBPS = 1_000_000;

interface StressState extends WorkloadState {
  kind: 'stress';
  first: number;
  pages: number;
  order: 'sequential' | 'random';
  counter: number;
  cursor: number;
  rng: number;
  pacer: PacerState | null;
}

export class StressWorkload implements Workload {
  readonly kind = 'stress';
  pagesDone = 0;
  private readonly words = new Uint32Array(WORDS);
  private constructor(private readonly s: StressState) {}

  static create(spec: StressSpec, totalPages: number): StressWorkload {
    const { first, pages } = checkRange('stress', totalPages, spec.firstPage, spec.pages);
    const rate = spec.rateMiBps === undefined ? null : checkRate('stress: rateMiBps', spec.rateMiBps, MAX_STRESS_MIBPS);
    return new StressWorkload({
      kind: 'stress',
      first,
      pages,
      order: checkOneOf('stress: order', spec.order ?? 'sequential', ['sequential', 'random'] as const),
      counter: 0,
      cursor: 0,
      rng: seedFrom(spec.seed ?? 1),
      pacer: rate === null ? null : newPacer((rate * 1024 * 1024) / PAGE_SIZE, 0),
    });
  }

  static restore(state: WorkloadState, totalPages: number): StressWorkload {
    const s = state as StressState;
    checkRange('stress', totalPages, s.first, s.pages);
    return new StressWorkload({ ...s, pacer: s.pacer === null ? null : { ...s.pacer } });
  }

  step(mem: GuestMemory, nowNs: number, maxPages: number): number {
    const s = this.s;
    const n = s.pacer === null ? maxPages : pacerTake(s.pacer, nowNs, maxPages);
    const words = this.words;
    let i = 0;
    try {
      for (; i < n; i++) {
        // The next cursor, generator and counter are committed only after the store (restartable).
        let page: number;
        let cursor = s.cursor;
        let rng = s.rng;
        if (s.order === 'sequential') {
          page = s.first + cursor;
          cursor = cursor + 1 === s.pages ? 0 : cursor + 1;
        } else {
          rng = xorshift32(rng);
          page = s.first + (rng % s.pages);
        }
        const counter = (s.counter + 1) >>> 0;
        const base = Math.imul(counter, WORDS);
        for (let w = 0; w < WORDS; w++) words[w] = mix32(base + w);
        words[0] = counter | 0x80000000;
        mem.storeWords(page, 0, STRIDE, words);
        s.cursor = cursor;
        s.rng = rng;
        s.counter = counter;
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
