/**
 * XBZRLE's encoder in plain JavaScript: the fallback where WebAssembly SIMD
 * is missing (xbzrle-kernel.ts is the fast path), and the second opinion
 * its tests compare with. The format and QEMU's rules are in xbzrle.ts.
 *
 * Runs are found 32 bits at a time: a zero run compares words; a changed
 * run tests each XOR word for a zero byte, `(x - 0x01010101) & ~x &
 * 0x80808080`, as QEMU does, four words a step. The runs are measured
 * before anything is written, so a page that overflows (random data)
 * copies nothing. No allocation per call: word views over a caller's
 * buffer are kept (weakly) per buffer, and a page that is not 4-byte
 * aligned is copied into an aligned scratch page first.
 */
import { PAGE_SIZE } from '../memory/page.js';

/** Longest delta measured: a whole page's (xbzrle.ts's XBZRLE_MAX_DELTA_BYTES). */
const MAX_DELTA_BYTES = PAGE_SIZE + 3;

/** Run lengths measured by the encoder's first step: (zero run, changed run) pairs. At most one pair per 3 delta bytes. */
const runs = new Int32Array(2 * (Math.ceil(MAX_DELTA_BYTES / 3) + 1));

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
  // Four words a step while all four are equal, then one at a time.
  while (a + 4 <= aEnd && ((a32[a] ^ b32[b]) | (a32[a + 1] ^ b32[b + 1]) | (a32[a + 2] ^ b32[b + 2]) | (a32[a + 3] ^ b32[b + 3])) === 0) {
    a += 4;
    b += 4;
  }
  while (a < aEnd && a32[a] === b32[b]) { a++; b++; }
  i = (a - aw) << 2;
  while (i < n && a8[ao + i] === b8[bo + i]) i++;
  return i;
}

/** Non-zero when some byte of `x` is zero (exact: a borrow only marks bytes above a zero one). */
const hasZeroByte = (x: number): number => ((x - 0x01010101) | 0) & ~x & 0x80808080;

/** End of the run of differing bytes starting at page byte `i` (at most `n`). */
function changedRunEnd(p: Pair, i: number, n: number): number {
  const { a8, b8, ao, bo } = p;
  while (i < n && (i & 3) !== 0 && a8[ao + i] !== b8[bo + i]) i++;
  if ((i & 3) !== 0) return i;
  const { a32, b32, aw, bw } = p;
  let a = aw + (i >> 2);
  let b = bw + (i >> 2);
  const aEnd = aw + (n >> 2);
  // Some byte of an XOR word is zero (an equal byte): the run ends in that word. Four words a step, then one.
  while (a + 4 <= aEnd && (hasZeroByte(a32[a] ^ b32[b]) | hasZeroByte(a32[a + 1] ^ b32[b + 1]) | hasZeroByte(a32[a + 2] ^ b32[b + 2]) | hasZeroByte(a32[a + 3] ^ b32[b + 3])) === 0) {
    a += 4;
    b += 4;
  }
  while (a < aEnd && hasZeroByte(a32[a] ^ b32[b]) === 0) {
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
 * QEMU's encoding of `now` against the page at byte `oldAt` of `oldBytes`
 * (both `now.length` bytes, a multiple of 4, at most a page) into `out`,
 * which holds `limit` bytes: the length, 0 when equal, -1 past `limit`.
 * The caller checks its arguments (xbzrle.ts does). No allocation.
 */
export function jsXbzrleEncodeAt(oldBytes: Uint8Array, oldAt: number, now: Uint8Array, out: Uint8Array, limit: number): number {
  const p = bind(oldBytes, oldAt, now, now.length);
  const length = measure(p, now.length, limit);
  if (length > 0) emit(p, out);
  unbind();
  return length;
}
