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
 */
import { WireError, XbzrleError } from '../errors.js';
import { nextSetBit } from '../memory/bits.js';
import { PAGE_SIZE } from '../memory/page.js';
import { RamBlock, type RamBlockOptions, type RamBlockShared } from '../memory/ram-block.js';
import type { BlockTotals, StreamHeader } from '../wire/format.js';
import { pageSummer, type PageSummer } from '../wire/page-checksum.js';
import { pageHasher, type PageHasher } from '../wire/page-hash.js';
import { xbzrleDecode } from '../wire/xbzrle.js';
import { RamDigest } from './ram-digest.js';

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

  /**
   * Fresh, zero blocks of the geometry `header` declares (checked against
   * this side's limits by the caller), built with `ram` (a program's
   * layout), each in use as far as the header says.
   */
  constructor(header: StreamHeader, ram: RamBlockOptions = {}) {
    this.blocks = header.blocks.map((b) => RamBlock.create(b.name, b.pages * PAGE_SIZE, ram));
    for (const [i, b] of header.blocks.entries()) this.setInUse('header', i, b.visiblePages);
    this.summers = this.blocks.map((b) => pageSummer(b.memory));
    this.written = this.blocks.map((b) => new Int32Array(Math.ceil(b.pages / 32)));
    this.zeroed = this.blocks.map((b) => new Int32Array(Math.ceil(b.pages / 32)));
    this.counted = this.blocks.map(() => ({ normal: 0, zero: 0 }));
    this.digest = header.verify ? new RamDigest(this.blocks.map((b) => b.pages)) : null;
    this.hashers = header.verify ? this.blocks.map((b) => pageHasher(b.memory)) : [];
  }

  /** The blocks, to share with the main thread (the guest is created around them). */
  shared(): RamBlockShared[] {
    return this.blocks.map((b) => b.toShared());
  }

  /** GROW: block `block` is in use to `pages` now (the decoder checked it grows, within the block). */
  grow(block: number, pages: number): void {
    this.setInUse('GROW', block, pages);
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
    const w = this.written[block];
    for (let p = first; p < first + count; p++) w[p >>> 5] |= 1 << (p & 31);
    this.digest?.setPages(this.hashers[block], first * PAGE_SIZE, block, first, count);
    this.counted[block].normal += count;
    this.normalPages += count;
  }

  /**
   * XBZRLE: apply `delta` to page `page` of `block` as this side holds it
   * (the decoder checked the page is in the block and in use). The delta
   * is checked whole before a byte is written (xbzrleDecode), so a refused
   * one leaves the page as it was and fails the stream with a WireError
   * naming the page. The page must have arrived before in this stream
   * (with data or as ZERO): a delta is against the copy sent before, and
   * one that comes first was reordered or forged. The page then counts as
   * a page with data (END's totals), as the source counts it.
   */
  xbzrlePage(block: number, page: number, delta: Uint8Array): void {
    const bit = 1 << (page & 31);
    if (((this.written[block][page >>> 5] | this.zeroed[block][page >>> 5]) & bit) === 0) {
      throw new WireError(`XBZRLE: page ${page} of block ${this.blocks[block].name} has not arrived before (a delta applies to the copy sent before)`);
    }
    const at = page * PAGE_SIZE;
    try {
      xbzrleDecode(delta, this.blocks[block].bytes.subarray(at, at + PAGE_SIZE));
    } catch (cause) {
      if (!(cause instanceof XbzrleError)) throw cause;
      throw new WireError(`XBZRLE: page ${page} of block ${this.blocks[block].name}: ${cause.message}`, { cause });
    }
    this.xbzrlePages++;
    this.loadedPages(block, page, 1);
  }

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
    const actual = this.digest!.value();
    if (!actual.equals(expected)) {
      throw new WireError(`verify: RAM digest ${actual.toString('hex')} of the pages loaded differs from the source's ${expected.toString('hex')} of the pages sent`);
    }
  }

  /** END: every block's totals must be what arrived. */
  checkTotals(totals: readonly BlockTotals[]): void {
    totals.forEach((t, i) => {
      const c = this.counted[i];
      if (t.normal !== c.normal || t.zero !== c.zero) {
        throw new WireError(`END: block ${this.blocks[i].name} totals ${t.normal} data + ${t.zero} zero pages, received ${c.normal} + ${c.zero}`);
      }
    });
  }
}

/** Set bits [first, end) of `words`, a word at a time inside the range. */
function markRange(words: Int32Array, first: number, end: number): void {
  let p = first;
  for (; p < end && (p & 31) !== 0; p++) words[p >>> 5] |= 1 << (p & 31);
  for (; p + 32 <= end; p += 32) words[p >>> 5] = -1;
  for (; p < end; p++) words[p >>> 5] |= 1 << (p & 31);
}
