/**
 * `sweep`: like QEMU's migration-test guest, increments a counter in every
 * page of a range in address order, forever. The counter is stored in the
 * page's first and last 32-bit words. At state (value v, position p), pages
 * [first, first+p) hold v+1 and pages [first+p, first+pages) hold v: the
 * checker (sweep-checker.ts) verifies exactly that on a paused guest.
 * With data 'random', the first sweep writes each page whole: random words
 * (a function of the page) around the counter.
 */
import type { GuestMemory } from '../../memory/guest-memory.js';
import { PAGE_SIZE } from '../../memory/page.js';
import { newPacer, pacerRefund, pacerTake, type PacerState } from './pacer.js';
import { mix32, xorshift32 } from './prng.js';
import { checkOneOf, checkRange, checkRate, type SweepSpec, type Workload, type WorkloadState } from './workload.js';
import { InvalidArgumentError } from '../../errors.js';

export const LAST_WORD = PAGE_SIZE / 4 - 1;
export const MAX_SWEEP_PAGES_PER_SEC = 1e9;

export interface SweepState extends WorkloadState {
  kind: 'sweep';
  first: number;
  pages: number;
  /** Value held by pages not yet reached in the current sweep. */
  value: number;
  /** Index (from `first`) of the next page to increment. */
  position: number;
  pacer: PacerState | null;
  /** The first sweep fills each page with random words (absent in an older state: zero). */
  random?: boolean;
}

export class SweepWorkload implements Workload {
  readonly kind = 'sweep';
  pagesDone = 0;
  private readonly pair = new Uint32Array(2);
  /** A page of random words, made per page on the first sweep with data 'random'. */
  private readonly page = new Uint32Array(PAGE_SIZE / 4);
  private constructor(private readonly s: SweepState) {}

  static create(spec: SweepSpec, totalPages: number): SweepWorkload {
    const { first, pages } = checkRange('sweep', totalPages, spec.firstPage, spec.pages);
    if (spec.sweepsPerSec !== undefined && spec.pagesPerSec !== undefined) {
      throw new InvalidArgumentError('sweep: give sweepsPerSec or pagesPerSec, not both');
    }
    let rate: number | null = null;
    if (spec.sweepsPerSec !== undefined) {
      rate = checkRate('sweep: sweepsPerSec', spec.sweepsPerSec, MAX_SWEEP_PAGES_PER_SEC / pages) * pages;
    } else if (spec.pagesPerSec !== undefined) {
      rate = checkRate('sweep: pagesPerSec', spec.pagesPerSec, MAX_SWEEP_PAGES_PER_SEC);
    }
    return new SweepWorkload({
      kind: 'sweep', first, pages, value: 0, position: 0, pacer: rate === null ? null : newPacer(rate, 0),
      random: checkOneOf('sweep: data', spec.data ?? 'zero', ['zero', 'random'] as const) === 'random',
    });
  }

  static restore(state: WorkloadState, totalPages: number): SweepWorkload {
    const s = state as SweepState;
    checkRange('sweep', totalPages, s.first, s.pages);
    return new SweepWorkload({ ...s, pacer: s.pacer === null ? null : { ...s.pacer } });
  }

  step(mem: GuestMemory, nowNs: number, maxPages: number): number {
    const s = this.s;
    const n = s.pacer === null ? maxPages : pacerTake(s.pacer, nowNs, maxPages);
    const pair = this.pair;
    pair[0] = pair[1] = s.value + 1;
    let i = 0;
    try {
      for (; i < n; i++) {
        // Words 0 and LAST_WORD in one store-then-mark; the position moves after it (restartable).
        if (s.value === 0 && s.random === true) mem.writePage(s.first + s.position, this.randomPage(s.first + s.position, pair[0]));
        else mem.storeWords(s.first + s.position, 0, LAST_WORD, pair);
        if (++s.position === s.pages) {
          s.position = 0;
          s.value = pair[0];
          pair[0] = pair[1] = s.value + 1;
        }
      }
    } finally {
      this.pagesDone += i;
      if (i < n && s.pacer !== null) pacerRefund(s.pacer, n - i);
    }
    return n;
  }

  /** Page `page`'s random words (xorshift from a hash of its number), its counter `value` in the first and last word. */
  private randomPage(page: number, value: number): Uint32Array {
    const words = this.page;
    let rng = mix32(Math.imul(page, 0x9e3779b1) ^ 0x5eed) || 1;
    for (let i = 1; i < LAST_WORD; i++) {
      rng = xorshift32(rng);
      words[i] = rng;
    }
    words[0] = words[LAST_WORD] = value;
    return words;
  }

  save(): WorkloadState {
    return { ...this.s, pacer: this.s.pacer === null ? null : { ...this.s.pacer } };
  }
}
