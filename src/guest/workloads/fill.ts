/**
 * `fill`: fills a fraction of RAM once with zero, random or text-like data,
 * then idles. With `thenZero` it zeroes the same pages again afterwards:
 * pages that were non-zero and are zero now, the case a migration must get
 * right. A page's contents depend only on the seed and the page number.
 */
import type { GuestMemory } from '../../memory/guest-memory.js';
import { PAGE_SIZE } from '../../memory/page.js';
import { mix32, seedFrom, xorshift32 } from './prng.js';
import { checkInt, checkOneOf, checkRate, type FillSpec, type Workload, type WorkloadState } from './workload.js';

type FillData = 'zero' | 'random' | 'text';
type Phase = 'fill' | 'zero' | 'done';

interface FillState extends WorkloadState {
  kind: 'fill';
  first: number;
  pages: number;
  data: FillData;
  thenZero: boolean;
  seed: number;
  phase: Phase;
  cursor: number;
}

const WORDS = [
  'the', 'guest', 'page', 'memory', 'migration', 'dirty', 'bitmap', 'of', 'and', 'a', 'to', 'is', 'in',
  'bandwidth', 'downtime', 'switchover', 'source', 'destination', 'running', 'paused', 'zero', 'send',
];
const TEXT = new TextEncoder();
const WORD_BYTES = WORDS.map((w) => TEXT.encode(`${w} `));

export class FillWorkload implements Workload {
  readonly kind = 'fill';
  pagesDone = 0;
  private readonly page = new Uint32Array(PAGE_SIZE / 4);
  private readonly pageBytes = new Uint8Array(this.page.buffer);
  private constructor(private readonly s: FillState) {}

  static create(spec: FillSpec, totalPages: number): FillWorkload {
    const first = checkInt('fill: firstPage', spec.firstPage ?? 0, 0, totalPages - 1);
    const fraction = checkRate('fill: fraction', spec.fraction ?? 1, 1);
    return new FillWorkload({
      kind: 'fill',
      first,
      pages: Math.max(1, Math.floor((totalPages - first) * fraction)),
      data: checkOneOf('fill: data', spec.data ?? 'random', ['zero', 'random', 'text'] as const),
      thenZero: spec.thenZero === true,
      seed: seedFrom(spec.seed ?? 1),
      phase: 'fill',
      cursor: 0,
    });
  }

  static restore(state: WorkloadState, totalPages: number): FillWorkload {
    const s = state as FillState;
    checkInt('fill: firstPage', s.first, 0, totalPages - 1);
    checkInt('fill: pages', s.pages, 1, totalPages - s.first);
    return new FillWorkload({ ...s });
  }

  step(mem: GuestMemory, _nowNs: number, maxPages: number): number {
    const s = this.s;
    let n = 0;
    try {
      while (n < maxPages && s.phase !== 'done') {
        const page = s.first + s.cursor;
        if (s.phase === 'fill' && s.data !== 'zero') {
          this.generate(page); // into a scratch page: no state changes before the write
          mem.writePage(page, this.page);
        } else {
          mem.zeroPage(page);
        }
        n++;
        if (++s.cursor === s.pages) {
          s.cursor = 0;
          s.phase = s.phase === 'fill' && s.thenZero ? 'zero' : 'done';
        }
      }
    } finally {
      this.pagesDone += n;
    }
    return n;
  }

  /** Whether the fill (and zeroing) has finished. */
  get done(): boolean {
    return this.s.phase === 'done';
  }

  save(): WorkloadState {
    return { ...this.s };
  }

  private generate(page: number): void {
    let rng = mix32(this.s.seed ^ Math.imul(page, 0x9e3779b1)) || 1;
    if (this.s.data === 'random') {
      const words = this.page;
      for (let i = 0; i < words.length; i++) {
        rng = xorshift32(rng);
        words[i] = rng;
      }
      return;
    }
    const bytes = this.pageBytes;
    let at = 0;
    while (at < bytes.length) {
      rng = xorshift32(rng);
      const w = WORD_BYTES[rng % WORD_BYTES.length];
      const n = Math.min(w.length, bytes.length - at);
      bytes.set(n === w.length ? w : w.subarray(0, n), at);
      at += n;
    }
  }
}
