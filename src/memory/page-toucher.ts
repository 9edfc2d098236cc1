/**
 * Touching pages ahead of a writer (a destination's preallocation): every
 * page the plan names is written once, without changing what it holds, so
 * the operating system commits it now (first touch is what costs on this
 * machine: BENCHMARKS.md) and the loader later copies into memory that is
 * already there. All Atomics code of a touch plan is in this module.
 *
 * Shared layout (SharedArrayBuffers; any thread holding them may touch):
 *
 *   control  Int32[CONTROL_WORDS]   the fields below
 *   per block: wanted   Int32[words] the pages to touch (set before any toucher starts)
 *              touched  Int32[words] the pages touched (set by the touchers)
 *
 * Work is claimed a chunk (TOUCH_CHUNK_PAGES, 2 MiB) at a time from one
 * cursor, from the top of RAM down: the loader writes a pass from page 0
 * up, so the two meet once rather than fault the same pages side by side.
 *
 * Why a touch never loses a write: the touch is a locked read-modify-write
 * of the page's first word that adds 0 (`Atomics.add`, x86 `lock xadd`).
 * A write access, so the kernel commits the page; the word keeps its value
 * whatever else writes it meanwhile: the locked instruction holds the cache
 * line for its whole read and write, so another thread's store (the
 * loader's copy, a vCPU's store) lands wholly before it (and is read and
 * written back unchanged) or wholly after it. A plain load and store would
 * not do: a store landing between them would be overwritten with the old
 * value (test/memory/page-toucher.test.ts catches that).
 *
 * The cap: BUDGET holds the pages that may still be touched; a chunk takes
 * its pages from it before touching (`Atomics.sub`), so the cap is never
 * exceeded, and a chunk that finds less touches what fits, sets CAPPED,
 * and every toucher stops.
 * STOP is read before each chunk: a stop takes effect within one chunk.
 */
import { nextSetBit } from './bits.js';
import { PAGE_SIZE, wordsForPages } from './page.js';

/** Pages claimed at once: 2 MiB, a huge page's worth. */
export const TOUCH_CHUNK_PAGES = 512;

/** Chunks claimed so far, counted from the top chunk down. */
const CURSOR = 0;
/** Pages that may still be touched (may go below 0 once the cap is hit). */
const BUDGET = 1;
/** Pages touched, by every toucher. */
const TOUCHED = 2;
/** 1: stop before the next chunk. */
const STOP = 3;
/** 1: a chunk found the budget spent. */
const CAPPED = 4;
const CONTROL_WORDS = 8;
/** Most pages the budget holds (an Int32): 8 TiB, far above any guest here. */
const MAX_BUDGET_PAGES = 0x7fff_ffff;

const WORDS_PER_PAGE = PAGE_SIZE / 4;

/** What a toucher thread needs (structured-cloneable). */
export interface TouchPlanShared {
  readonly control: SharedArrayBuffer;
  readonly blocks: readonly { readonly memory: WebAssembly.Memory; readonly pages: number; readonly wanted: SharedArrayBuffer; readonly touched: SharedArrayBuffer }[];
}

/** Touch one page: add 0 to its first word with a locked read-modify-write (see the top). */
export function touchPage(words: Int32Array, page: number): void {
  Atomics.add(words, page * WORDS_PER_PAGE, 0);
}

export class TouchPlan {
  private readonly control: Int32Array;
  private readonly words: Int32Array[];
  private readonly wanted: Int32Array[];
  private readonly touchedBits: Int32Array[];
  private readonly pages: number[];
  /** Per block, its first chunk's global index; then the total. */
  private readonly chunkStart: number[] = [];
  readonly chunks: number;

  /** A fresh plan over `blocks` (nothing wanted yet; set pages with want(), then arm()). */
  static create(blocks: readonly { readonly memory: WebAssembly.Memory; readonly pages: number }[]): TouchPlan {
    const bitmap = (pages: number) => new SharedArrayBuffer(wordsForPages(pages) * 4);
    return new TouchPlan({
      control: new SharedArrayBuffer(CONTROL_WORDS * 4),
      blocks: blocks.map((b) => ({ memory: b.memory, pages: b.pages, wanted: bitmap(b.pages), touched: bitmap(b.pages) })),
    });
  }

  constructor(readonly shared: TouchPlanShared) {
    this.control = new Int32Array(shared.control);
    this.words = shared.blocks.map((b) => new Int32Array(b.memory.buffer, 0, b.pages * WORDS_PER_PAGE));
    this.wanted = shared.blocks.map((b) => new Int32Array(b.wanted));
    this.touchedBits = shared.blocks.map((b) => new Int32Array(b.touched));
    this.pages = shared.blocks.map((b) => b.pages);
    let chunks = 0;
    for (const pages of this.pages) {
      this.chunkStart.push(chunks);
      chunks += Math.ceil(pages / TOUCH_CHUNK_PAGES);
    }
    this.chunks = chunks;
  }

  /** Want pages [first, first+count) of block `block` touched (before arm(); the caller checked the range). */
  want(block: number, first: number, count: number): void {
    const w = this.wanted[block];
    const end = first + count;
    let p = first;
    for (; p < end && (p & 31) !== 0; p++) w[p >>> 5] |= 1 << (p & 31);
    for (; p + 32 <= end; p += 32) w[p >>> 5] = -1; // whole words: a large map is set 32 pages at a time
    for (; p < end; p++) w[p >>> 5] |= 1 << (p & 31);
  }

  /**
   * Allow at most `budgetPages` pages to be touched. The store is the
   * release of every want() before it: a toucher's first load of the
   * control words (acquire) sees the whole plan.
   */
  arm(budgetPages: number): void {
    Atomics.store(this.control, BUDGET, Math.min(Math.max(0, Math.floor(budgetPages)), MAX_BUDGET_PAGES));
  }

  /** Stop every toucher before its next chunk. */
  stop(): void {
    Atomics.store(this.control, STOP, 1);
  }

  get stopped(): boolean {
    return Atomics.load(this.control, STOP) === 1;
  }

  get touchedPages(): number {
    return Atomics.load(this.control, TOUCHED);
  }

  get capped(): boolean {
    return Atomics.load(this.control, CAPPED) === 1;
  }

  /** Whether page `page` of block `block` was touched. */
  isTouched(block: number, page: number): boolean {
    return (Atomics.load(this.touchedBits[block], page >>> 5) & (1 << (page & 31))) !== 0;
  }

  /** Touch chunks until none is left, the plan stops, or the budget is spent; returns the pages this call touched. */
  run(onChunk?: (block: number, first: number, count: number, dense: boolean) => void): number {
    let mine = 0;
    for (;;) {
      if (Atomics.load(this.control, STOP) === 1) break;
      const k = Atomics.add(this.control, CURSOR, 1);
      if (k >= this.chunks) break;
      const touched = this.touchChunk(this.chunks - 1 - k, onChunk);
      if (touched < 0) {
        mine += -touched - 1;
        break;
      }
      mine += touched;
    }
    return mine;
  }

  /** Touch the wanted pages of global chunk `c`: their count, or -(count + 1) when the budget ran out in it. */
  private touchChunk(c: number, onChunk?: (block: number, first: number, count: number, dense: boolean) => void): number {
    let b = 0;
    while (b + 1 < this.chunkStart.length && this.chunkStart[b + 1] <= c) b++;
    const first = (c - this.chunkStart[b]) * TOUCH_CHUNK_PAGES;
    const end = Math.min(first + TOUCH_CHUNK_PAGES, this.pages[b]);
    const wanted = this.wanted[b];
    let n = 0;
    for (let p = nextSetBit(wanted, first, end); p < end; p = nextSetBit(wanted, p + 1, end)) n++;
    if (n === 0) return 0;
    const before = Atomics.sub(this.control, BUDGET, n);
    const allowed = before >= n ? n : Math.max(0, before);
    if (allowed < n) Atomics.store(this.control, CAPPED, 1);
    onChunk?.(b, first, end - first, allowed === end - first);
    const words = this.words[b];
    const done = this.touchedBits[b];
    let left = allowed;
    for (let p = nextSetBit(wanted, first, end); p < end && left > 0; p = nextSetBit(wanted, p + 1, end), left--) {
      touchPage(words, p);
      Atomics.or(done, p >>> 5, 1 << (p & 31));
    }
    Atomics.add(this.control, TOUCHED, allowed);
    return allowed < n ? -(allowed + 1) : allowed;
  }
}
