/**
 * XBZRLE: a page sent again, encoded as its difference from the copy sent
 * before (Xor Based Zero Run Length Encoding). Byte for byte QEMU's format
 * (migration/xbzrle.c, docs/devel/migration/xbzrle.rst):
 *
 *   delta   = pair pair ...                 (at most one page + 3 bytes)
 *   pair    = zrun nzrun
 *   zrun    = length                        bytes equal in old and new (XOR zero), skipped
 *   nzrun   = length byte * length          bytes that differ, as they are now
 *   length  = ULEB128 of at most 2 bytes    (14 bits: 0..16383)
 *
 *     old  .. .. .. AA BB .. .. .. .. CC .. .. (equal tail)
 *     new  .. .. .. 11 22 .. .. .. .. 33 .. ..
 *     delta  03 02 11 22 04 01 33               (the equal tail is not encoded)
 *
 * A ULEB128 byte carries 7 bits, low first, the high bit saying "another
 * byte follows": 5 is 05, 300 is AC 02. Only the first zero run may be
 * empty; a changed run never is. Equal pages encode to nothing (the sender
 * skips the page); an encoding that would pass the limit (QEMU: the page's
 * size) is an overflow, and the page goes whole. The encoder's choices are
 * QEMU's: maximal runs alternating, and the same overflow checks at the
 * same points, so both produce the same bytes and overflow on the same
 * pages.
 *
 * Speed (the send loop is hot; bench/xbzrle.ts): the encoder is a
 * WebAssembly SIMD kernel (xbzrle-kernel.ts), 16 bytes a step, with a
 * plain-JS encoder, 32 bits a step, where SIMD is missing
 * (xbzrle-js-encoder.ts); neither allocates per call.
 *
 * The decoder checks the whole delta before it writes a byte, so a delta it
 * refuses (XbzrleError, naming what and where) leaves the page as it was.
 */
import { InvalidArgumentError, XbzrleError } from '../errors.js';
import { PAGE_SIZE } from '../memory/page.js';
import { jsXbzrleEncodeAt } from './xbzrle-js-encoder.js';
import { xbzrleKernel, type XbzrleKernel } from './xbzrle-kernel.js';

/**
 * Longest delta the decoder takes: a page whose every byte changed (an
 * empty zero run, 1 byte; the page's length, 2 bytes; the page). QEMU's
 * sender never sends one longer than the page (its limit), so this cap
 * only leaves room for a caller's larger limit.
 */
export const XBZRLE_MAX_DELTA_BYTES = PAGE_SIZE + 3;

/** A page's length must be a multiple of 4, 4..4096 (tests use small pages). */
function checkPageLength(what: string, length: number): void {
  if (length < 4 || length > PAGE_SIZE || length % 4 !== 0) {
    throw new InvalidArgumentError(`xbzrle: ${what} is ${length} bytes; a page is a multiple of 4 bytes, 4..${PAGE_SIZE}`);
  }
}

/** Where the public encoder's pages and output sit in its scratch memory (one 64 KiB WebAssembly page). */
const OLD_AT = 0;
const NOW_AT = PAGE_SIZE;
const OUT_AT = 2 * PAGE_SIZE;
let scratch: { bytes: Uint8Array; kernel: XbzrleKernel | null } | undefined;

/**
 * Encode `now` against `old` (both one page, 4096 bytes) into `out`;
 * returns the length, 0 when equal, -1 when it would exceed `limit`
 * (default: the page's length, QEMU's TARGET_PAGE_SIZE). No allocation.
 * `out` must hold `limit` bytes; `limit` is at most the page's length + 3
 * (the longest delta the decoder takes). The kernel's path copies both
 * pages into its memory; a page cache encodes in place instead
 * (migration/xbzrle-cache.ts).
 */
export function xbzrleEncode(old: Uint8Array, now: Uint8Array, out: Uint8Array, limit: number = now.length): number {
  const n = now.length;
  checkPageLength('the new page', n);
  if (old.length !== n) throw new InvalidArgumentError(`xbzrle: the old page is ${old.length} bytes, the new one ${n}`);
  checkLimit(limit, n, out);
  scratch ??= scratchKernel();
  if (scratch.kernel === null) return jsXbzrleEncodeAt(old, 0, now, out, limit);
  const bytes = scratch.bytes;
  bytes.set(old, OLD_AT);
  bytes.set(now, NOW_AT);
  const length = scratch.kernel(OLD_AT, NOW_AT, n, OUT_AT, limit);
  for (let i = 0; i < length; i++) out[i] = bytes[OUT_AT + i];
  return length;
}

function scratchKernel(): { bytes: Uint8Array; kernel: XbzrleKernel | null } {
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 1 });
  return { bytes: new Uint8Array(memory.buffer), kernel: xbzrleKernel(memory) };
}

/** Check an encoder's `limit` against the page's length `n` and its output. */
function checkLimit(limit: number, n: number, out: Uint8Array): void {
  if (!Number.isInteger(limit) || limit < 0 || limit > n + 3) {
    throw new InvalidArgumentError(`xbzrle: limit ${limit} is outside 0..${n + 3} (a whole page's delta)`);
  }
  if (out.length < limit) throw new InvalidArgumentError(`xbzrle: the output holds ${out.length} bytes, less than the limit ${limit}`);
}

/** ULEB128's length in bytes, read by `readUleb` (module state: no allocation). */
let ulebLength = 0;

/** The ULEB128 at `src[i]` (the delta ends at `end`; offsets in messages from `from`; its byte count in `ulebLength`), or throws naming what was wrong. */
function readUleb(src: Uint8Array, i: number, from: number, end: number, what: string): number {
  const b0 = src[i];
  if (b0 < 0x80) {
    ulebLength = 1;
    return b0;
  }
  if (i + 1 >= end) throw new XbzrleError(`XBZRLE delta: ${what} length at offset ${i - from} is truncated (its second byte is missing)`);
  const b1 = src[i + 1];
  if (b1 >= 0x80) throw new XbzrleError(`XBZRLE delta: ${what} length at offset ${i - from} is longer than 2 bytes (over 14 bits)`);
  ulebLength = 2;
  return (b0 & 0x7f) | (b1 << 7);
}

/** Check every rule of the format over the delta `src[from, end)` for a page of `size` bytes; throws XbzrleError at the first broken one. */
function validate(src: Uint8Array, from: number, end: number, size: number): void {
  let i = from;
  let d = 0;
  while (i < end) {
    const z = readUleb(src, i, from, end, 'zero run');
    if (i > from && z === 0) throw new XbzrleError(`XBZRLE delta: empty zero run at offset ${i - from} (only the first may be empty)`);
    if (d + z > size) throw new XbzrleError(`XBZRLE delta: zero run of ${z} bytes at offset ${i - from} runs past the page's end (page byte ${d}, page of ${size})`);
    i += ulebLength;
    d += z;
    if (i >= end) throw new XbzrleError(`XBZRLE delta: trailing garbage: a zero run at offset ${i - ulebLength - from} with no changed run after it`);
    const nz = readUleb(src, i, from, end, 'changed run');
    if (nz === 0) throw new XbzrleError(`XBZRLE delta: empty changed run at offset ${i - from}`);
    if (d + nz > size) throw new XbzrleError(`XBZRLE delta: changed run of ${nz} bytes at offset ${i - from} runs past the page's end (page byte ${d}, page of ${size})`);
    i += ulebLength;
    if (i + nz > end) throw new XbzrleError(`XBZRLE delta: changed run of ${nz} bytes at offset ${i - ulebLength - from} is truncated (${end - i} bytes left)`);
    i += nz;
    d += nz;
  }
}

/**
 * Apply `delta` to `page` (holding the old copy) in place. Throws
 * XbzrleError naming what was wrong: a run past the page's end, a truncated
 * ULEB128 or run, an empty run, a length over the cap (longer than a
 * page's whole delta, 4096 + 3 bytes), bytes after the last run. Checks the
 * whole delta before writing, so a refused delta leaves the page as it was;
 * never writes outside `page`, never allocates. An empty delta leaves the
 * page unchanged.
 */
export function xbzrleDecode(delta: Uint8Array, page: Uint8Array): void {
  checkPageLength('the page', page.length);
  xbzrleDecodeAt(delta, 0, delta.length, page, 0, page.length);
}

/**
 * xbzrleDecode without a view of either side (a loader's hot path: a
 * record's head holds many deltas, a block holds many pages): the delta
 * `src[from, end)` applied to the page of `size` bytes at `dst[at]`. The
 * caller vouches that the page lies inside `dst` and `size` is a page's
 * length; everything about the delta is checked here, as xbzrleDecode
 * does, before a byte is written.
 */
export function xbzrleDecodeAt(src: Uint8Array, from: number, end: number, dst: Uint8Array, at: number, size: number): void {
  if (end - from > size + 3) {
    throw new XbzrleError(`XBZRLE delta: ${end - from} bytes, longer than any delta of a ${size}-byte page (at most ${size + 3})`);
  }
  validate(src, from, end, size);
  let i = from;
  let d = at;
  while (i < end) {
    d += readUleb(src, i, from, end, 'zero run');
    i += ulebLength;
    const nz = readUleb(src, i, from, end, 'changed run');
    i += ulebLength;
    for (const stop = i + nz; i < stop; i++, d++) dst[d] = src[i];
  }
}
