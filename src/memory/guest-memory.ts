/**
 * A guest's RAM as one space of pages: blocks laid end to end (like KVM
 * memory slots), addressed by a global page number. This is the writer's
 * view used by vCPU workloads: each method stores data, then marks the page
 * (dirty-log.ts explains the order). Single writer per page at a time.
 *
 * Each instance belongs to one vCPU (one thread) and counts the pages its
 * marks found clean (`newlyDirtied`): the vCPU's own dirty count, read and
 * reset by the vCPU loop each slice (dirty-limit measures each vCPU's dirty
 * rate from it).
 *
 * Post-copy (presence-map.ts): every access, read or write, first loads the
 * page's present bit and, if it is clear, throws a MissingPage signal before
 * touching anything; the vCPU loop waits for the page and retries. A write
 * of a whole page waits too (the simplest rule: it could be installed over
 * the arriving copy instead, but the bytes must then not be written twice).
 * Without a presence map every page is present (a local map of ones: the
 * same load and branch, so the access path is one shape either way); that
 * is the raw view the main thread reads with (checkers), which never waits.
 */
import { InvalidArgumentError } from '../errors.js';
import { markPage } from './dirty-log.js';
import { MissingPage } from './missing-page.js';
import { PAGE_SIZE, wordsForPages } from './page.js';
import { PresenceMap, type PresenceMapShared } from './presence-map.js';
import { RamBlock, type RamBlockShared } from './ram-block.js';

const WORDS_PER_PAGE = PAGE_SIZE / 4;

export class GuestMemory {
  readonly blocks: readonly RamBlock[];
  readonly totalPages: number;
  private readonly first: number[] = [];
  private readonly end: number[] = [];
  private readonly u32: Uint32Array[] = [];
  private readonly producer: Int32Array[] = [];
  /** Present bits (presence-map.ts), or all ones without a presence map. */
  private readonly present: Int32Array;
  private hit = 0;
  /** Pages this view's marks found clean since the last takeNewlyDirtied(). */
  private dirtied = 0;

  static attach(shared: readonly RamBlockShared[], presence?: PresenceMapShared): GuestMemory {
    return new GuestMemory(shared.map((s) => new RamBlock(s)), presence === undefined ? undefined : new PresenceMap(presence));
  }

  constructor(blocks: readonly RamBlock[], presence?: PresenceMap) {
    if (blocks.length === 0) throw new InvalidArgumentError('guest memory needs at least one RAM block');
    this.blocks = blocks;
    let page = 0;
    for (const b of blocks) {
      this.first.push(page);
      page += b.pages;
      this.end.push(page);
      this.u32.push(new Uint32Array(b.memory.buffer, 0, b.pages * WORDS_PER_PAGE));
      this.producer.push(b.log.producer);
    }
    this.totalPages = page;
    if (presence !== undefined && presence.pages !== page) {
      throw new InvalidArgumentError(`guest memory: a presence map of ${presence.pages} pages for ${page} pages of RAM`);
    }
    this.present = presence?.present ?? new Int32Array(wordsForPages(page)).fill(-1);
  }

  /** Throw MissingPage if `page` (in range: blockOf checked it) has not arrived. */
  private check(page: number): void {
    if ((Atomics.load(this.present, page >>> 5) & (1 << (page & 31))) === 0) throw new MissingPage(page);
  }

  /** Index of the block holding global page `page` (last hit cached). */
  blockOf(page: number): number {
    const h = this.hit;
    if (page >= this.first[h] && page < this.end[h]) return h;
    if (page < 0 || page >= this.totalPages) {
      throw new InvalidArgumentError(`page ${page} is outside guest RAM of ${this.totalPages} pages`);
    }
    let b = 0;
    while (page >= this.end[b]) b++;
    this.hit = b;
    return b;
  }

  /** Pages newly dirtied by this view's marks since the last call (their bit was 0), and start counting again. */
  takeNewlyDirtied(): number {
    const n = this.dirtied;
    this.dirtied = 0;
    return n;
  }

  /** Block-relative page number of global page `page` in block `b`. */
  localPage(b: number, page: number): number {
    return page - this.first[b];
  }

  readU32(page: number, word: number): number {
    const b = this.blockOf(page);
    this.check(page);
    return this.u32[b][(page - this.first[b]) * WORDS_PER_PAGE + word];
  }

  /** Store a 32-bit word into a page, then mark the page. */
  storeU32(page: number, word: number, value: number): void {
    const b = this.blockOf(page);
    this.check(page);
    const local = page - this.first[b];
    this.u32[b][local * WORDS_PER_PAGE + word] = value;
    this.dirtied += markPage(this.producer[b], local);
  }

  /** Store several words at `stride`-word spacing from `word`, then mark. */
  storeWords(page: number, word: number, stride: number, values: Uint32Array): void {
    const b = this.blockOf(page);
    this.check(page);
    const local = page - this.first[b];
    const u32 = this.u32[b];
    let at = local * WORDS_PER_PAGE + word;
    for (let i = 0; i < values.length; i++, at += stride) u32[at] = values[i];
    this.dirtied += markPage(this.producer[b], local);
  }

  /** Copy a whole page from `src` (1024 words), then mark it. */
  writePage(page: number, src: Uint32Array): void {
    const b = this.blockOf(page);
    this.check(page);
    const local = page - this.first[b];
    this.u32[b].set(src.subarray(0, WORDS_PER_PAGE), local * WORDS_PER_PAGE);
    this.dirtied += markPage(this.producer[b], local);
  }

  /** Zero a whole page, then mark it (it was written: it is now zero). */
  zeroPage(page: number): void {
    const b = this.blockOf(page);
    this.check(page);
    const local = page - this.first[b];
    const at = local * WORDS_PER_PAGE;
    this.u32[b].fill(0, at, at + WORDS_PER_PAGE);
    this.dirtied += markPage(this.producer[b], local);
  }
}
