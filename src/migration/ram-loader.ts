/**
 * The destination's RAM as a stream loads into it, the counterpart of
 * ram-sender.ts: the blocks the header declared, page data written straight
 * into them (the decoder checks each PAGES record's sum over the bytes in
 * place, with `pageSum`), zero runs applied only where this side wrote data
 * before, the ever-written marks, the per-block counts that END's totals
 * must match, and, when the header announced VERIFY, the digest of what was
 * loaded (ram-digest.ts), kept page by page from RAM as each record lands.
 * A WebAssembly guest's blocks are built as its program lays them out (the
 * reserved tail, the mark map, the size word), and each block's pages in
 * use (its size word) are set from the header, then from each GROW, before
 * the pages that follow (the decoder refuses a page past them).
 *
 * Several channels (channel-loader.ts): each channel's loader thread loads
 * through its own RamLoader attached to the same blocks and the same
 * ever-written and zeroed maps (`attachment()`, `attach`), with its own
 * counts and digest. The maps are shared words set with Atomics.or; a
 * channel's pages are its stripe of 2 MiB ranges (512 pages, aligned in
 * their block), so no two channels set bits of the same 32-page word, and
 * a thread reads only its own pages' bits. The loader thread adds each
 * channel's last figures (`addFigures`) to its own for END's totals,
 * VERIFY's digest (lane sums add) and the figures reported.
 */
import { WireError, XbzrleError } from '../errors.js';
import { nextSetBit } from '../memory/bits.js';
import { PAGE_SIZE } from '../memory/page.js';
import { RamBlock, type RamBlockOptions, type RamBlockShared } from '../memory/ram-block.js';
import type { BlockTotals, StreamHeader } from '../wire/format.js';
import { pageSummer, type PageSummer } from '../wire/page-checksum.js';
import { pageHasher, type PageHasher } from '../wire/page-hash.js';
import { walkXbzrleRun } from '../wire/records.js';
import { xbzrleDecodeAt } from '../wire/xbzrle.js';
import { RamDigest } from './ram-digest.js';

/** What a channel's loader thread needs to load into the same RAM (structured-cloneable). */
export interface RamLoaderShared {
  readonly blocks: readonly RamBlockShared[];
  /** Per block: the ever-written and zeroed maps (a bit per page). */
  readonly written: readonly SharedArrayBuffer[];
  readonly zeroed: readonly SharedArrayBuffer[];
}

/** What one RamLoader loaded so far (cumulative): a channel's thread reports it at each SYNC. */
export interface LoadFigures {
  /** Per block: pages received with data and as zero runs. */
  readonly counted: readonly BlockTotals[];
  readonly normalPages: number;
  readonly zeroPages: number;
  readonly xbzrlePages: number;
  readonly zeroPagesWritten: number;
  /** The digest's lane sums (VERIFY); null without. */
  readonly digest: Uint32Array | null;
}

export class RamLoader {
  readonly blocks: RamBlock[];
  private readonly summers: PageSummer[];
  /** Per block: pages this side has written with data (zeros go only into these). */
  private readonly written: Int32Array[];
  /** Per block: pages that arrived as ZERO (with `written`: the pages an XBZRLE delta may apply to). */
  private readonly zeroed: Int32Array[];
  /** Per block: pages received, with data and as zero runs. */
  private readonly counted: { normal: number; zero: number }[];
  normalPages = 0;
  zeroPages = 0;
  /** Pages that arrived as XBZRLE deltas (also counted in normalPages: END's totals count them as data). */
  xbzrlePages = 0;
  /** Zero pages that had to be written (the page held data here); the rest were zero already. */
  zeroPagesWritten = 0;
  /** The digest of what was loaded, when the header announced VERIFY; with a hash per block. */
  readonly digest: RamDigest | null;
  private readonly hashers: PageHasher[];
  /** Several channels: each channel's last figures (its thread's loads), by channel index. */
  private readonly others = new Map<number, LoadFigures>();

  /**
   * Fresh, zero blocks of the geometry `header` declares (checked against
   * this side's limits by the caller), built with `ram` (a program's
   * layout), each in use as far as the header says; or, with `attached`,
   * the blocks and maps of another RamLoader (a channel's thread: `attach`).
   */
  constructor(header: StreamHeader, ram: RamBlockOptions = {}, attached?: RamLoaderShared) {
    if (attached === undefined) {
      this.blocks = header.blocks.map((b) => RamBlock.create(b.name, b.pages * PAGE_SIZE, ram));
      for (const [i, b] of header.blocks.entries()) this.setInUse('header', i, b.visiblePages);
    } else {
      this.blocks = attached.blocks.map((s) => new RamBlock(s));
    }
    this.summers = this.blocks.map((b) => pageSummer(b.memory));
    this.written = this.blocks.map((b, i) => new Int32Array(attached?.written[i] ?? new SharedArrayBuffer(4 * Math.ceil(b.pages / 32))));
    this.zeroed = this.blocks.map((b, i) => new Int32Array(attached?.zeroed[i] ?? new SharedArrayBuffer(4 * Math.ceil(b.pages / 32))));
    this.counted = this.blocks.map(() => ({ normal: 0, zero: 0 }));
    this.digest = header.verify ? new RamDigest(this.blocks.map((b) => b.pages)) : null;
    this.hashers = header.verify ? this.blocks.map((b) => pageHasher(b.memory)) : [];
  }

  /** A RamLoader over the blocks and maps of `shared` (another's `attachment()`), with counts and a digest of its own. */
  static attach(header: StreamHeader, shared: RamLoaderShared): RamLoader {
    return new RamLoader(header, {}, shared);
  }

  /** The blocks, to share with the main thread (the guest is created around them). */
  shared(): RamBlockShared[] {
    return this.blocks.map((b) => b.toShared());
  }

  /** The blocks and the maps, for a channel's loader thread (`attach`). */
  attachment(): RamLoaderShared {
    return { blocks: this.shared(), written: this.written.map((w) => w.buffer as SharedArrayBuffer), zeroed: this.zeroed.map((z) => z.buffer as SharedArrayBuffer) };
  }

  /** What this RamLoader loaded itself so far. */
  figures(): LoadFigures {
    return {
      counted: this.counted.map((c) => ({ normal: c.normal, zero: c.zero })), normalPages: this.normalPages, zeroPages: this.zeroPages,
      xbzrlePages: this.xbzrlePages, zeroPagesWritten: this.zeroPagesWritten, digest: this.digest?.lanes() ?? null,
    };
  }

  /** Channel `index`'s figures now (cumulative: they replace its last). */
  addFigures(index: number, figures: LoadFigures): void {
    this.others.set(index, figures);
  }

  /** The page counts of this RamLoader and every channel's together. */
  totals(): Omit<LoadFigures, 'counted' | 'digest'> {
    const t = { normalPages: this.normalPages, zeroPages: this.zeroPages, xbzrlePages: this.xbzrlePages, zeroPagesWritten: this.zeroPagesWritten };
    for (const f of this.others.values()) {
      t.normalPages += f.normalPages;
      t.zeroPages += f.zeroPages;
      t.xbzrlePages += f.xbzrlePages;
      t.zeroPagesWritten += f.zeroPagesWritten;
    }
    return t;
  }

  /** The digest of what was loaded here and on every channel (VERIFY). */
  digestValue(): Buffer {
    return this.digest!.valueWith([...this.others.values()].map((f) => f.digest!));
  }

  /** GROW: block `block` is in use to `pages` now (the decoder checked it grows, within the block). */
  grow(block: number, pages: number): void {
    this.setInUse('GROW', block, pages);
  }

  /** A channel's GROW: every channel announces the same sizes, each when it reaches them, so a block only grows (ram-block.ts). */
  growTo(block: number, pages: number): void {
    try {
      this.blocks[block].growVisiblePages(pages);
    } catch (cause) {
      throw new WireError(`GROW: block ${this.blocks[block].name} in use to ${pages} pages: ${(cause as Error).message}`, { cause });
    }
  }

  /** Set a block's size word; a size it cannot hold (no size word, not whole units) is the stream's error. */
  private setInUse(what: string, block: number, pages: number): void {
    try {
      this.blocks[block].setVisiblePages(pages);
    } catch (cause) {
      throw new WireError(`${what}: block ${this.blocks[block].name} in use to ${pages} pages: ${(cause as Error).message}`, { cause });
    }
  }

  /** Bytes of a PAGES record's data, `offset` bytes into `block` (the decoder has checked the range). */
  pageData(block: number, offset: number, data: Uint8Array): void {
    this.blocks[block].bytes.set(data, offset);
  }

  /** The page sum over `count` pages from `first` of `block`, as they are now in RAM. */
  pageSum(block: number, first: number, count: number): number {
    return this.summers[block](first * PAGE_SIZE, count * PAGE_SIZE);
  }

  /** A PAGES record arrived whole and checked: its pages are written (here and in the ever-written map). */
  loadedPages(block: number, first: number, count: number): void {
    this.blocks[block].log.markPages(first, count);
    markRange(this.written[block], first, first + count);
    this.digest?.setPages(this.hashers[block], first * PAGE_SIZE, block, first, count);
    this.counted[block].normal += count;
    this.normalPages += count;
  }

  /**
   * XBZRLE: apply the delta `src[from, end)` to page `page` of `block` as
   * this side holds it (the decoder checked the page is in the block and
   * in use), in place: no view of either side is made. The delta is
   * checked whole before a byte is written (xbzrleDecodeAt), so a refused
   * one leaves the page as it was and fails the stream with a WireError
   * naming the page. The page must have arrived before in this stream
   * (with data or as ZERO): a delta is against the copy sent before, and
   * one that comes first was reordered or forged. The page then counts as
   * a page with data (END's totals), as the source counts it.
   */
  xbzrlePage(block: number, page: number, src: Uint8Array, from: number, end: number, what = 'XBZRLE'): void {
    const bit = 1 << (page & 31);
    const b = this.blocks[block];
    if (((this.written[block][page >>> 5] | this.zeroed[block][page >>> 5]) & bit) === 0) {
      throw new WireError(`${what}: page ${page} of block ${b.name} has not arrived before (a delta applies to the copy sent before)`);
    }
    try {
      xbzrleDecodeAt(src, from, end, b.bytes, page * PAGE_SIZE, PAGE_SIZE);
    } catch (cause) {
      if (!(cause instanceof XbzrleError)) throw cause;
      throw new WireError(`${what}: page ${page} of block ${b.name}: ${cause.message}`, { cause });
    }
    this.xbzrlePages++;
    this.loadedPages(block, page, 1);
  }

  /**
   * XBZRLERUN (the decoder checked its structure and that each page is in
   * the block and in use): each delta applied in order, as xbzrlePage,
   * straight from the record's head. A refused delta fails the stream;
   * the deltas before it stay applied (the guest never runs on them).
   */
  xbzrleRun(block: number, head: Buffer): void {
    this.runBlock = block;
    this.runHead = head;
    try {
      walkXbzrleRun(head, this.runEntry);
    } finally {
      this.runHead = EMPTY;
    }
  }

  /** The record xbzrleRun walks (its entries are applied by `runEntry`, bound once: nothing allocated per page). */
  private runBlock = 0;
  private runHead: Buffer = EMPTY;
  private readonly runEntry = (page: number, from: number, end: number): void => {
    this.xbzrlePage(this.runBlock, page, this.runHead, from, end, 'XBZRLERUN');
  };

  /** Zero pages: write zeros only where this side wrote data before (never read a page to find out). */
  zeroRun(block: number, first: number, count: number): void {
    const w = this.written[block];
    const bytes = this.blocks[block].bytes;
    const end = first + count;
    markRange(this.zeroed[block], first, end);
    // Pages never written here are zero already: skip them a bitmap word (32 pages) at a time.
    for (let p = nextSetBit(w, first, end); p < end; p = nextSetBit(w, p + 1, end)) {
      bytes.fill(0, p * PAGE_SIZE, (p + 1) * PAGE_SIZE);
      this.blocks[block].log.markPage(p);
      this.digest?.clearPages(block, p, 1);
      this.zeroPagesWritten++;
    }
    this.counted[block].zero += count;
    this.zeroPages += count;
  }

  /**
   * VERIFY: the source's digest of what it sent must equal this side's of
   * what it loaded (the decoder has made sure no page follows VERIFY).
   */
  checkDigest(expected: Buffer): void {
    const actual = this.digestValue();
    if (!actual.equals(expected)) {
      throw new WireError(`verify: RAM digest ${actual.toString('hex')} of the pages loaded differs from the source's ${expected.toString('hex')} of the pages sent`);
    }
  }

  /** END: every block's totals must be what arrived. */
  checkTotals(totals: readonly BlockTotals[]): void {
    totals.forEach((t, i) => {
      const c = { ...this.counted[i] };
      for (const f of this.others.values()) {
        c.normal += f.counted[i].normal;
        c.zero += f.counted[i].zero;
      }
      if (t.normal !== c.normal || t.zero !== c.zero) {
        throw new WireError(`END: block ${this.blocks[i].name} totals ${t.normal} data + ${t.zero} zero pages, received ${c.normal} + ${c.zero}`);
      }
    });
  }
}

const EMPTY = Buffer.alloc(0);

/** Set bits [first, end) of `words` (shared: Atomics.or, a word at a time). */
function markRange(words: Int32Array, first: number, end: number): void {
  for (let p = first; p < end;) {
    const bit = p & 31;
    const n = Math.min(32 - bit, end - p);
    Atomics.or(words, p >>> 5, n === 32 ? -1 : ((1 << n) - 1) << bit);
    p += n;
  }
}
