/**
 * Which pages of a guest's RAM are here (post-copy, DESIGN.md section 7 and
 * invariant 7): one bit per page over the guest's global page numbers
 * (guest-memory.ts), in a SharedArrayBuffer that vCPU threads and an
 * installer thread share. All Atomics code for the map lives here.
 *
 *   Int32 MISSING          pages missing now
 *   Int32 present[words]   bit set: the page's bytes are in RAM
 *   Int32 claimed[words]   bit set: present, or being installed by someone
 *
 * Every page is present when the map is made: a guest not in post-copy pays
 * one load and one branch per access (GuestMemory's check). A destination
 * marks pages missing before its vCPUs run (`markMissing`; nothing else may
 * use the map meanwhile: the Guest allows it only before its first run).
 *
 * Why the orderings are safe:
 * - Install (page-installer.ts): `claim` sets the claimed bit with
 *   `Atomics.or`; only the caller that found it clear may write the page,
 *   so two installers never both write a page, and a page already present
 *   is never written again (the guest may have written it since: refused).
 *   The installer then stores the page's bytes, then `publish` sets the
 *   present bit with `Atomics.or` (a sequentially consistent RMW).
 * - Access (vCPU): `Atomics.load` of the present word, then, if the bit is
 *   set, the page's bytes are read or written. The seq-cst load that reads
 *   the bit set by the installer's seq-cst RMW synchronizes with it, so the
 *   installer's byte stores happen before the vCPU's accesses: the vCPU
 *   sees the installed bytes, and its own writes land after them (never
 *   under them). On x86-64 the load is a plain MOV (no fence): the check
 *   costs a load and a branch. A bit, once set, is never cleared while
 *   vCPUs or installers run, so a page seen present stays present.
 * - Waking a vCPU that waits for the page happens after `publish`
 *   (page-waits.ts argues that no wake is lost).
 */
import { InvalidArgumentError } from '../errors.js';
import { popcount32 } from './bits.js';
import { wordsForPages } from './page.js';

const MISSING = 0;
const HEADER_WORDS = 4;

/** What a thread needs to attach to a presence map (structured-cloneable). */
export interface PresenceMapShared {
  readonly pages: number;
  readonly buffer: SharedArrayBuffer;
}

/** How an install attempt ended. */
export type ClaimResult = 'claimed' | 'present' | 'installing';

export class PresenceMap {
  readonly pages: number;
  readonly buffer: SharedArrayBuffer;
  /** The present bits (GuestMemory loads them on every access). */
  readonly present: Int32Array;
  private readonly claimed: Int32Array;
  private readonly header: Int32Array;

  /** A map of `pages` pages, all present. */
  static create(pages: number): PresenceMap {
    if (!Number.isSafeInteger(pages) || pages <= 0) {
      throw new InvalidArgumentError(`presence map: page count must be a positive integer, got ${String(pages)}`);
    }
    const words = wordsForPages(pages);
    const map = new PresenceMap({ pages, buffer: new SharedArrayBuffer((HEADER_WORDS + 2 * words) * 4) });
    for (let p = 0; p < pages; p += 32) {
      const n = Math.min(32, pages - p);
      const bits = n === 32 ? -1 : (1 << n) - 1;
      map.present[p >>> 5] = bits;
      map.claimed[p >>> 5] = bits;
    }
    return map;
  }

  constructor(shared: PresenceMapShared) {
    this.pages = shared.pages;
    this.buffer = shared.buffer;
    const words = wordsForPages(shared.pages);
    this.header = new Int32Array(shared.buffer, 0, HEADER_WORDS);
    this.present = new Int32Array(shared.buffer, HEADER_WORDS * 4, words);
    this.claimed = new Int32Array(shared.buffer, (HEADER_WORDS + words) * 4, words);
  }

  toShared(): PresenceMapShared {
    return { pages: this.pages, buffer: this.buffer };
  }

  /** Pages missing now. */
  get missingPages(): number {
    return Atomics.load(this.header, MISSING);
  }

  isPresent(page: number): boolean {
    return (Atomics.load(this.present, page >>> 5) & (1 << (page & 31))) !== 0;
  }

  /**
   * Mark pages missing (a destination, before its vCPUs run). Returns how
   * many were present before (a page named twice counts once).
   */
  markMissing(pages: Iterable<number>): number {
    let n = 0;
    for (const page of pages) {
      this.checkPage(page);
      const bit = 1 << (page & 31);
      const old = Atomics.and(this.present, page >>> 5, ~bit);
      Atomics.and(this.claimed, page >>> 5, ~bit);
      if ((old & bit) !== 0) n++;
    }
    Atomics.add(this.header, MISSING, n);
    return n;
  }

  /** Mark `count` pages from `first` missing (see markMissing). */
  markRangeMissing(first: number, count: number): number {
    this.checkPage(first);
    if (!Number.isSafeInteger(count) || count < 0 || first + count > this.pages) {
      throw new InvalidArgumentError(`presence map: range ${first}+${String(count)} is outside guest RAM of ${this.pages} pages`);
    }
    // A word at a time (a generator and two RMWs per page cost 20-30 ms for 100k pages at a post-copy switchover).
    let n = 0;
    for (let p = first, end = first + count; p < end; ) {
      const word = p >>> 5;
      const upto = Math.min(end, (word + 1) << 5);
      const mask = upto - p === 32 ? -1 : ((1 << (upto - p)) - 1) << (p & 31);
      const old = Atomics.and(this.present, word, ~mask);
      Atomics.and(this.claimed, word, ~mask);
      n += popcount32(old & mask);
      p = upto;
    }
    Atomics.add(this.header, MISSING, n);
    return n;
  }

  /**
   * Claim a missing page for installing it: 'claimed' means the caller alone
   * may now write it and must then `publish` it; 'present' and 'installing'
   * are refusals (the page is here, or another installer has it).
   */
  claim(page: number): ClaimResult {
    this.checkPage(page);
    const bit = 1 << (page & 31);
    const old = Atomics.or(this.claimed, page >>> 5, bit);
    if ((old & bit) === 0) return 'claimed';
    return this.isPresent(page) ? 'present' : 'installing';
  }

  /** The claimed page's bytes are stored: make it present (after the bytes, see top). */
  publish(page: number): void {
    Atomics.or(this.present, page >>> 5, 1 << (page & 31));
    Atomics.sub(this.header, MISSING, 1);
  }

  /** The first missing page at or after `from`, or -1 (plain loads: a snapshot). */
  nextMissing(from = 0): number {
    for (let p = Math.max(0, from); p < this.pages; ) {
      const missing = ~this.present[p >>> 5] & (-1 << (p & 31));
      if (missing !== 0) {
        const q = (p & ~31) + (31 - Math.clz32(missing & -missing));
        return q < this.pages ? q : -1;
      }
      p = (p & ~31) + 32;
    }
    return -1;
  }

  private checkPage(page: number): void {
    if (!Number.isSafeInteger(page) || page < 0 || page >= this.pages) {
      throw new InvalidArgumentError(`presence map: page ${String(page)} is outside guest RAM of ${this.pages} pages`);
    }
  }
}

