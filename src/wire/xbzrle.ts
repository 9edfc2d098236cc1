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
 * Speed (the send loop is hot; bench/xbzrle.ts): runs are found 32 bits at
 * a time (a zero run compares words; a changed run tests each XOR word for
 * a zero byte, `(x - 0x01010101) & ~x & 0x80808080`, as QEMU does). The
 * encoder first measures the runs and only then writes, so a page that
 * overflows (random data) costs one read and copies nothing. Neither side
 * allocates per call: word views over a caller's buffer are kept for the
 * last few buffers seen, and a page that is not 4-byte aligned is copied
 * into an aligned scratch page first.
 *
 * The decoder checks the whole delta before it writes a byte, so a delta it
 * refuses (XbzrleError, naming what and where) leaves the page as it was.
 */
import { InvalidArgumentError, XbzrleError } from '../errors.js';
import { PAGE_SIZE } from '../memory/page.js';

/**
 * Longest delta the decoder takes: a page whose every byte changed (an
 * empty zero run, 1 byte; the page's length, 2 bytes; the page). QEMU's
 * sender never sends one longer than the page (its limit), so this cap
 * only leaves room for a caller's larger limit.
 */
export const XBZRLE_MAX_DELTA_BYTES = PAGE_SIZE + 3;

/** Run lengths measured by the encoder's first step: (zero run, changed run) pairs. At most one pair per 3 delta bytes. */
const runs = new Int32Array(2 * (Math.ceil(XBZRLE_MAX_DELTA_BYTES / 3) + 1));

/** Aligned copies of a page handed over at an offset that is not a multiple of 4. */
const scratchOld = new Uint8Array(PAGE_SIZE);
const scratchNow = new Uint8Array(PAGE_SIZE);

/**
 * Word views over the buffers seen, so that none is made per call. Weak:
 * a view never keeps a buffer (a cache, a guest's RAM) alive after its
 * owner let it go.
 */
const views = new WeakMap<ArrayBufferLike, Int32Array>();

/** An Int32Array over all of `bytes.buffer` (word `bytes.byteOffset >> 2` is its first); `bytes` must be 4-byte aligned. */
function wordView(bytes: Uint8Array): Int32Array {
  const buffer = bytes.buffer;
  let view = views.get(buffer);
  // A buffer that grew in place (a resizable one) needs a longer view.
  if (view === undefined || view.byteLength < bytes.byteOffset + bytes.length) {
    view = new Int32Array(buffer, 0, buffer.byteLength >>> 2);
    views.set(buffer, view);
  }
  return view;
}

function checkPageLength(what: string, length: number): void {
  if (length < 4 || length > PAGE_SIZE || length % 4 !== 0) {
    throw new InvalidArgumentError(`xbzrle: ${what} is ${length} bytes; a page is a multiple of 4 bytes, 4..${PAGE_SIZE}`);
  }
}

/**
 * The two pages being compared: old at byte `ao` of `a8`, new at byte `bo`
 * of `b8`, and as words (`aw`, `bw`: each page's first word in its view).
 * One object, reused: bound for a call, emptied after it, so the module
 * keeps no caller's buffer alive.
 */
interface Pair {
  a8: Uint8Array;
  b8: Uint8Array;
  ao: number;
  bo: number;
  a32: Int32Array;
  b32: Int32Array;
  aw: number;
  bw: number;
}
const NO_WORDS: Int32Array = new Int32Array(0);
const pair: Pair = { a8: scratchOld, b8: scratchNow, ao: 0, bo: 0, a32: NO_WORDS, b32: NO_WORDS, aw: 0, bw: 0 };

function bind(old: Uint8Array, oldAt: number, now: Uint8Array, n: number): Pair {
  const oldAligned = ((old.byteOffset + oldAt) & 3) === 0;
  pair.a8 = oldAligned ? old : copyInto(scratchOld, old, oldAt, n);
  pair.ao = oldAligned ? oldAt : 0;
  pair.b8 = (now.byteOffset & 3) === 0 ? now : copyInto(scratchNow, now, 0, n);
  pair.bo = 0;
  pair.a32 = wordView(pair.a8);
  pair.b32 = wordView(pair.b8);
  pair.aw = (pair.a8.byteOffset + pair.ao) >> 2;
  pair.bw = pair.b8.byteOffset >> 2;
  return pair;
}

function unbind(): void {
  pair.a8 = scratchOld;
  pair.b8 = scratchNow;
  pair.a32 = pair.b32 = NO_WORDS;
}

function copyInto(scratch: Uint8Array, bytes: Uint8Array, at: number, n: number): Uint8Array {
  for (let i = 0; i < n; i++) scratch[i] = bytes[at + i];
  return scratch;
}

/** End of the run of equal bytes starting at page byte `i` (at most `n`). */
function equalRunEnd(p: Pair, i: number, n: number): number {
  const { a8, b8, ao, bo } = p;
  while (i < n && (i & 3) !== 0 && a8[ao + i] === b8[bo + i]) i++;
  if ((i & 3) !== 0) return i;
  const { a32, b32, aw, bw } = p;
  let a = aw + (i >> 2);
  let b = bw + (i >> 2);
  const aEnd = aw + (n >> 2);
  while (a < aEnd && a32[a] === b32[b]) { a++; b++; }
  i = (a - aw) << 2;
  while (i < n && a8[ao + i] === b8[bo + i]) i++;
  return i;
}

/** End of the run of differing bytes starting at page byte `i` (at most `n`). */
function changedRunEnd(p: Pair, i: number, n: number): number {
  const { a8, b8, ao, bo } = p;
  while (i < n && (i & 3) !== 0 && a8[ao + i] !== b8[bo + i]) i++;
  if ((i & 3) !== 0) return i;
  const { a32, b32, aw, bw } = p;
  let a = aw + (i >> 2);
  let b = bw + (i >> 2);
  const aEnd = aw + (n >> 2);
  while (a < aEnd) {
    const x = a32[a] ^ b32[b];
    // Some byte of x is zero (an equal byte): the run ends in this word.
    if (((x - 0x01010101) & ~x & 0x80808080) !== 0) break;
    a++;
    b++;
  }
  i = (a - aw) << 2;
  while (i < n && a8[ao + i] !== b8[bo + i]) i++;
  return i;
}

const ulebBytes = (v: number): number => (v < 0x80 ? 1 : 2);

/**
 * Measure the runs of `p` into `runs`; returns the encoded length, 0 when
 * equal, -1 on overflow. Mirrors xbzrle_encode_buffer's checks point for
 * point (including "d + 2 > limit" before each run, which refuses even a
 * page whose rest is equal once the delta is that long).
 */
function measure(p: Pair, n: number, limit: number): number {
  let i = 0;
  let d = 0;
  let pairs = 0;
  while (i < n) {
    if (d + 2 > limit) return -1;
    const zStart = i;
    i = equalRunEnd(p, i, n);
    const z = i - zStart;
    if (z === n) return 0;
    if (i === n) break; // the equal tail is not encoded
    d += ulebBytes(z);
    if (d + 2 > limit) return -1;
    const nzStart = i;
    i = changedRunEnd(p, i, n);
    const nz = i - nzStart;
    d += ulebBytes(nz);
    if (d + nz > limit) return -1;
    d += nz;
    runs[2 * pairs] = z;
    runs[2 * pairs + 1] = nz;
    pairs++;
  }
  runs[2 * pairs] = -1; // end mark for `emit`
  return d;
}

function putUleb(out: Uint8Array, d: number, v: number): number {
  if (v < 0x80) {
    out[d] = v;
    return d + 1;
  }
  out[d] = (v & 0x7f) | 0x80;
  out[d + 1] = v >> 7;
  return d + 2;
}

/** Write the runs `measure` found: each pair's lengths, then its new bytes. */
function emit(p: Pair, out: Uint8Array): void {
  const { b8, bo } = p;
  let i = 0;
  let d = 0;
  for (let p = 0; runs[p] >= 0; p += 2) {
    const z = runs[p];
    const nz = runs[p + 1];
    i += z;
    d = putUleb(out, d, z);
    d = putUleb(out, d, nz);
    for (const end = i + nz; i < end; i++, d++) out[d] = b8[bo + i];
  }
}

/**
 * Encode `now` against `old` (both one page, 4096 bytes) into `out`;
 * returns the length, 0 when equal, -1 when it would exceed `limit`
 * (default: the page's length, QEMU's TARGET_PAGE_SIZE). No allocation.
 * `out` must hold `limit` bytes; `limit` is at most the page's length + 3
 * (the longest delta the decoder takes).
 */
export function xbzrleEncode(old: Uint8Array, now: Uint8Array, out: Uint8Array, limit: number = now.length): number {
  if (old.length !== now.length) throw new InvalidArgumentError(`xbzrle: the old page is ${old.length} bytes, the new one ${now.length}`);
  return xbzrleEncodeAt(old, 0, now, out, limit);
}

/**
 * `xbzrleEncode` with the old page at byte `oldAt` of `oldBytes` (a page
 * cache's one buffer), so that no view of it is made per call.
 */
export function xbzrleEncodeAt(oldBytes: Uint8Array, oldAt: number, now: Uint8Array, out: Uint8Array, limit: number = now.length): number {
  const n = now.length;
  checkPageLength('the new page', n);
  if (!Number.isInteger(oldAt) || oldAt < 0 || oldAt + n > oldBytes.length) {
    throw new InvalidArgumentError(`xbzrle: the old page at byte ${oldAt} passes the end of its ${oldBytes.length}-byte buffer`);
  }
  if (!Number.isInteger(limit) || limit < 0 || limit > n + 3) {
    throw new InvalidArgumentError(`xbzrle: limit ${limit} is outside 0..${n + 3} (a whole page's delta)`);
  }
  if (out.length < limit) throw new InvalidArgumentError(`xbzrle: the output holds ${out.length} bytes, less than the limit ${limit}`);
  const p = bind(oldBytes, oldAt, now, n);
  const length = measure(p, n, limit);
  if (length > 0) emit(p, out);
  unbind();
  return length;
}

/** ULEB128's length in bytes, read by `readUleb` (module state: no allocation). */
let ulebLength = 0;

/** The ULEB128 at `delta[i]` (its byte count in `ulebLength`), or throws naming what was wrong. */
function readUleb(delta: Uint8Array, i: number, what: string): number {
  const b0 = delta[i];
  if (b0 < 0x80) {
    ulebLength = 1;
    return b0;
  }
  if (i + 1 >= delta.length) throw new XbzrleError(`XBZRLE delta: ${what} length at offset ${i} is truncated (its second byte is missing)`);
  const b1 = delta[i + 1];
  if (b1 >= 0x80) throw new XbzrleError(`XBZRLE delta: ${what} length at offset ${i} is longer than 2 bytes (over 14 bits)`);
  ulebLength = 2;
  return (b0 & 0x7f) | (b1 << 7);
}

/** Check every rule of the format over `delta` for a page of `size` bytes; throws XbzrleError at the first broken one. */
function validate(delta: Uint8Array, size: number): void {
  const n = delta.length;
  let i = 0;
  let d = 0;
  while (i < n) {
    const z = readUleb(delta, i, 'zero run');
    if (i > 0 && z === 0) throw new XbzrleError(`XBZRLE delta: empty zero run at offset ${i} (only the first may be empty)`);
    if (d + z > size) throw new XbzrleError(`XBZRLE delta: zero run of ${z} bytes at offset ${i} runs past the page's end (page byte ${d}, page of ${size})`);
    i += ulebLength;
    d += z;
    if (i >= n) throw new XbzrleError(`XBZRLE delta: trailing garbage: a zero run at offset ${i - ulebLength} with no changed run after it`);
    const nz = readUleb(delta, i, 'changed run');
    if (nz === 0) throw new XbzrleError(`XBZRLE delta: empty changed run at offset ${i}`);
    if (d + nz > size) throw new XbzrleError(`XBZRLE delta: changed run of ${nz} bytes at offset ${i} runs past the page's end (page byte ${d}, page of ${size})`);
    i += ulebLength;
    if (i + nz > n) throw new XbzrleError(`XBZRLE delta: changed run of ${nz} bytes at offset ${i - ulebLength} is truncated (${n - i} bytes left)`);
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
  if (delta.length > page.length + 3) {
    throw new XbzrleError(`XBZRLE delta: ${delta.length} bytes, longer than any delta of a ${page.length}-byte page (at most ${page.length + 3})`);
  }
  validate(delta, page.length);
  const n = delta.length;
  let i = 0;
  let d = 0;
  while (i < n) {
    d += readUleb(delta, i, 'zero run');
    i += ulebLength;
    const nz = readUleb(delta, i, 'changed run');
    i += ulebLength;
    for (const end = i + nz; i < end; i++, d++) page[d] = delta[i];
  }
}

