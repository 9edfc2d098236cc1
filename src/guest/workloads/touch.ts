/**
 * `touch`: read-modify-write of one word in pages chosen at random, for
 * post-copy's invariant 7 (a vCPU never reads a page before it is there):
 * each touch reads a word and stores a hash of what it read, so a touch
 * that read a zero or stale page leaves a different value, and every later
 * touch of that word carries the difference on. Deterministic from the
 * seed: `replayTouches` computes what every page must hold by running the
 * same touches over a copy of the initial RAM that has no missing pages.
 *
 * Each vCPU owns a lane: one eighth of every page's words (128 words).
 * vCPUs with different lanes may touch the same pages (and wait for the
 * same missing page) and still be deterministic each; two vCPUs of one
 * lane over shared pages are not.
 */
import type { GuestMemory } from '../../memory/guest-memory.js';
import { InvalidArgumentError } from '../../errors.js';
import { mix32, seedFrom, xorshift32 } from './prng.js';
import { checkInt, checkRange, type TouchSpec, type Workload, type WorkloadState } from './workload.js';

const LANES = 8;
const LANE_WORDS = 1024 / LANES;
const MAX_TOUCHES = 2 ** 31;

interface TouchState extends WorkloadState {
  kind: 'touch';
  first: number;
  pages: number;
  lane: number;
  rng: number;
  /** Touches done. */
  done: number;
  /** Touches to do in all (null: forever). */
  touches: number | null;
}

export class TouchWorkload implements Workload {
  readonly kind = 'touch';
  pagesDone = 0;
  private constructor(private readonly s: TouchState) {}

  static create(spec: TouchSpec, totalPages: number): TouchWorkload {
    const { first, pages } = checkRange('touch', totalPages, spec.firstPage, spec.pages);
    return new TouchWorkload({
      kind: 'touch', first, pages,
      lane: checkInt('touch: lane', spec.lane ?? 0, 0, LANES - 1),
      rng: seedFrom(spec.seed ?? 1),
      done: 0,
      touches: spec.touches === undefined ? null : checkInt('touch: touches', spec.touches, 0, MAX_TOUCHES),
    });
  }

  static restore(state: WorkloadState, totalPages: number): TouchWorkload {
    const s = state as TouchState;
    checkRange('touch', totalPages, s.first, s.pages);
    checkInt('touch: lane', s.lane, 0, LANES - 1);
    checkInt('touch: done', s.done, 0, MAX_TOUCHES);
    if (s.touches !== null) checkInt('touch: touches', s.touches, 0, MAX_TOUCHES);
    if (typeof s.rng !== 'number' || s.rng === 0) throw new InvalidArgumentError('touch: generator state must be a non-zero number');
    return new TouchWorkload({ ...s });
  }

  step(mem: GuestMemory, _nowNs: number, maxPages: number): number {
    const s = this.s;
    let i = 0;
    try {
      for (; i < maxPages && (s.touches === null || s.done < s.touches); i++) {
        // The generator and the count are committed only after the store (restartable).
        const rng = xorshift32(s.rng);
        const page = s.first + (rng % s.pages);
        const word = s.lane * LANE_WORDS + (mix32(rng) & (LANE_WORDS - 1));
        const v = mem.readU32(page, word);
        mem.storeU32(page, word, mix32((v ^ rng) >>> 0));
        s.rng = rng;
        s.done++;
      }
    } finally {
      this.pagesDone += i;
    }
    return i;
  }

  /** Touches done so far. */
  get done(): number {
    return this.s.done;
  }

  save(): WorkloadState {
    return { ...this.s };
  }
}

/**
 * Run every spec's touches to their end over `mem`, which holds the RAM as
 * it was before the touches and has no missing pages: afterwards it holds
 * what a run of those vCPUs must leave. Each spec needs `touches`; specs
 * whose pages overlap need different lanes.
 */
export function replayTouches(specs: readonly TouchSpec[], mem: GuestMemory): void {
  for (const spec of specs) {
    if (spec.touches === undefined) throw new InvalidArgumentError('replayTouches: each touch spec needs a number of touches');
    const w = TouchWorkload.create(spec, mem.totalPages);
    while (w.step(mem, 0, 1024) > 0) {
      // until its touches are done
    }
  }
}
