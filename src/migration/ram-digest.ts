/**
 * The verify mode's digest of guest RAM, kept incrementally on each side:
 *
 *   D = sum over pages p with non-zero data of H(block, p, data of p)
 *
 * as four independent u32 lane sums (mod 2^32 each: 128 bits), where H is
 * the 128-bit page hash of page-hash.ts, 0 for an all-zero page. The source
 * updates D as it sends each page (hashing its own copy in the send slot),
 * the destination as it loads each page (hashing its RAM) and as ZERO runs
 * clear pages; each side keeps every page's last term, so a page sent again
 * replaces its term (subtract the old, add the new). The sum is
 * order-independent, so the two sides agree whatever the order of passes
 * and records. At the switchover the source sends D in VERIFY and the
 * destination compares it with its own before it answers LOADED.
 *
 * What verify checks: that what the source sent is what the destination
 * loaded, page by page, content and place (a page loaded at the wrong
 * index, a lost or stale page, a ZERO run applied to the wrong pages, a
 * resend not applied). Pages never written are never read on either side
 * (they are zero, and count as absent), and the pause pays only for the
 * final pass's pages. What it no longer checks (the whole-RAM SHA-256 of
 * wire version 2 did): that the source's RAM at the pause equals what was
 * sent. A write the dirty log missed, so never re-sent, is not seen here;
 * the sweep checker (a per-page counter that must form one monotone run)
 * and the byte comparison of the tests catch those (DESIGN.md invariants
 * 1 and 2). H is not cryptographic: a crafted pair of pages can collide;
 * for accidental differences a changed page escapes with probability
 * about 2^-64 (a chain of H), a changed sum about 2^-128.
 *
 * Terms are stored per block in chunks of CHUNK_PAGES pages, allocated
 * at the chunk's first non-zero term: RAM never written, or written only
 * with zeros, costs nothing (a 64 GiB idle guest needs no chunk at all);
 * written RAM costs 16 bytes per 4 KiB page (0.4 %).
 */
import { PAGE_SIZE } from '../memory/page.js';
import { DIGEST_BYTES } from '../wire/format.js';
import type { PageHasher } from '../wire/page-hash.js';

/** Pages per chunk of stored terms (2 MiB of RAM, 8 KiB of terms). */
export const CHUNK_PAGES = 512;
const CHUNK_SHIFT = 9;
const LANES = 4;

export class RamDigest {
  /** Per block, per chunk: the pages' terms (LANES u32 each), or undefined while all are 0. */
  private readonly chunks: (Uint32Array | undefined)[][];
  private readonly sum = new Uint32Array(LANES);
  private readonly term = new Uint32Array(LANES);
  /** Chunks allocated so far (the digest's memory is this x 8 KiB). */
  chunksAllocated = 0;

  constructor(blockPages: readonly number[]) {
    this.chunks = blockPages.map((pages) => new Array<Uint32Array | undefined>(Math.ceil(pages / CHUNK_PAGES)).fill(undefined));
  }

  /** Pages [first, first+count) of `block` now hold the bytes from `offset` of `hash`'s memory on. */
  setPages(hash: PageHasher, offset: number, block: number, first: number, count: number): void {
    const term = this.term;
    for (let i = 0; i < count; i++) {
      const page = first + i;
      hash(offset + i * PAGE_SIZE, page, block, term, 0);
      let chunk = this.chunks[block][page >>> CHUNK_SHIFT];
      if (chunk === undefined) {
        if ((term[0] | term[1] | term[2] | term[3]) === 0) continue; // 0 replaces 0
        chunk = this.allocate(block, page);
      }
      this.replace(chunk, (page & (CHUNK_PAGES - 1)) * LANES, term);
    }
  }

  /** Pages [first, first+count) of `block` are now zero: their terms leave the sum. */
  clearPages(block: number, first: number, count: number): void {
    const end = first + count;
    for (let page = first; page < end;) {
      const c = page >>> CHUNK_SHIFT;
      const chunkEnd = Math.min(end, (c + 1) << CHUNK_SHIFT);
      const chunk = this.chunks[block][c];
      if (chunk !== undefined) {
        this.term.fill(0);
        for (let p = page; p < chunkEnd; p++) this.replace(chunk, (p & (CHUNK_PAGES - 1)) * LANES, this.term);
      }
      page = chunkEnd;
    }
  }

  /** The digest now: the four lane sums, little-endian (VERIFY's head). */
  value(): Buffer {
    return this.valueWith([]);
  }

  /** A copy of the lane sums (a channel's loader thread reports them: channel-loader.ts). */
  lanes(): Uint32Array {
    return Uint32Array.from(this.sum);
  }

  /**
   * The digest of this and `others` together: lane sums add (mod 2^32), and
   * a page's term lives in one digest only (several channels: a page
   * always travels on the same channel, and each channel's thread keeps its own).
   */
  valueWith(others: readonly Uint32Array[]): Buffer {
    const out = Buffer.alloc(DIGEST_BYTES);
    for (let l = 0; l < LANES; l++) {
      let v = this.sum[l];
      for (const o of others) v = (v + o[l]) >>> 0;
      out.writeUInt32LE(v, 4 * l);
    }
    return out;
  }

  /** Replace the term at `at` of `chunk` with `term`, in the sum too (u32 arithmetic wraps: mod 2^32 per lane). */
  private replace(chunk: Uint32Array, at: number, term: Uint32Array): void {
    const sum = this.sum;
    for (let l = 0; l < LANES; l++) {
      sum[l] = sum[l] - chunk[at + l] + term[l];
      chunk[at + l] = term[l];
    }
  }

  private allocate(block: number, page: number): Uint32Array {
    const chunk = new Uint32Array(CHUNK_PAGES * LANES);
    this.chunks[block][page >>> CHUNK_SHIFT] = chunk;
    this.chunksAllocated++;
    return chunk;
  }
}
