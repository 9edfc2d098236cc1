/**
 * The verify digest's per-page hash: 128 bits of (block, page index, the
 * page's 4 KiB), 0 for an all-zero page (ram-digest.ts sums the terms). A
 * WebAssembly SIMD kernel over the memory that holds the page (the
 * sender's copy in its send slot, the destination's RAM), with a plain JS
 * reference (BigInt, slow) that tests hold it to and that runs where SIMD
 * is missing.
 *
 * Why this hash: it must run where each page already passes, at a cost far
 * below the link's. SHA-256 through `createHash` costs a call per page and
 * runs at 0.8 GB/s per 4 KiB page here (1.5 GB/s over large buffers); this
 * kernel at 6.9 GB/s, 8 times that (`node dist/bench/page-hash.js`, figures
 * in BENCHMARKS.md), where the frame check's page sum, one plain read of
 * the page, runs at 22 GB/s. It is not cryptographic (TLS answers a hostile
 * network; the frame checks answer a corrupt one): it answers ferry's own
 * mistakes, a page loaded at the wrong place, a stale or lost page, a zero
 * run applied wrongly.
 *
 * The construction. Eight 64-bit chains (4 vectors of 2 lanes) start from
 * SHA-512's initial values XOR a 64-bit mix of (block << 32 | page). Vector
 * k of every 64 bytes feeds chain vector k, lane by lane:
 *
 *   w = the 16 data bytes;  u = w XOR K
 *   h = (h XOR w) x M  +  lo32(u) x hi32(u)   (mod 2^64, per lane)
 *   h = h XOR (h >> 32)
 *
 * Each step is a bijection of h for fixed data (XOR, odd multiply, adding a
 * value that does not depend on h, xorshift), so a chain's end state differs
 * whenever one of its words does, and differs for different (block, page)
 * with the same data. The data product (XXH3's) makes a word's effect on h
 * depend on that word's value, so no fixed pattern of bit flips in two words
 * of a chain cancels out (a multiply by a constant alone carries a flip of
 * bit 63 through unchanged). The chains are folded into one vector (XOR,
 * multiply, xorshift: a bijection of each chain given the others), and its
 * two lanes through a bijective 128-bit mix of fmix64 steps (MurmurHash3's
 * finalizer). A page whose bytes are all zero yields 0, so zero pages count
 * as absent whichever record carried them.
 *
 *   (func (export "hash") (param $ptr i32) (param $len i32) (param $page i32) (param $block i32) (result i32)
 *     ;; result: bits 0-31 of the term; globals t1, t2, t3: bits 32-63, 64-95, 96-127
 */
import { OP, SIMD, TYPE, compileKernel, simd, sleb, sleb64, v128Load } from '../memory/wasm-asm.js';

const PTR = 0, LEN = 1, PAGE = 2, BLOCK = 3, END = 4, SEED = 5, A = 6, ANY = 10, W = 11, X = 12, Y = 13;

/** SHA-512's initial hash values: the chains' starting states (lane 0, lane 1 of vector 0, ...). */
const IV = [
  0x6a09e667f3bcc908n, 0xbb67ae8584caa73bn, 0x3c6ef372fe94f82bn, 0xa54ff53a5f1d36f1n,
  0x510e527fade682d1n, 0x9b05688c2b3e6c1fn, 0x1f83d9abfb41bd6bn, 0x5be0cd19137e2179n,
];
/** The chain multiplier (2^64 / golden ratio, odd) and the data key (XXH3's first secret words). */
const M = 0x9e3779b97f4a7c15n;
const K = [0xbe4ba423396cfeb8n, 0x1cad21f72c81017cn];
const FMIX = [0xff51afd7ed558ccdn, 0xc4ceb9fe1a85ec53n];
const MASK64 = (1n << 64n) - 1n;

function i64x2Const(lo: bigint, hi: bigint): number[] {
  const bytes = Buffer.alloc(16);
  bytes.writeBigUInt64LE(lo, 0);
  bytes.writeBigUInt64LE(hi, 8);
  return simd(SIMD.v128Const, ...bytes);
}

/** The i32 lanes `lanes` of a vector with itself (i8x16.shuffle of whole 32-bit lanes). */
function lanes32(...lanes: number[]): number[] {
  return simd(SIMD.i8x16Shuffle, ...lanes.flatMap((l) => [4 * l, 4 * l + 1, 4 * l + 2, 4 * l + 3]));
}

/** MurmurHash3's fmix64 of the i64 on the stack, through local $tmp. */
function fmix64(tmp: number): number[] {
  const shiftXor = [OP.localTee, tmp, OP.localGet, tmp, OP.i64Const, ...sleb64(33n), OP.i64ShrU, OP.i64Xor];
  return [...shiftXor, OP.i64Const, ...sleb64(FMIX[0]), OP.i64Mul, ...shiftXor, OP.i64Const, ...sleb64(FMIX[1]), OP.i64Mul, ...shiftXor];
}

/** v = v x M; v ^= v >> 32 on the vector on the stack, left in local `into`. */
function mixVector(into: number): number[] {
  return [...i64x2Const(M, M), ...simd(SIMD.i64x2Mul), OP.localTee, into,
    OP.localGet, into, OP.i32Const, 32, ...simd(SIMD.i64x2ShrU), ...simd(SIMD.v128Xor), OP.localSet, into];
}

/** One 16-byte vector at `offset` from $ptr into chain vector `chain`. */
function step(chain: number, offset: number): number[] {
  return [
    ...v128Load(PTR, offset), OP.localTee, W,
    OP.localGet, ANY, ...simd(SIMD.v128Or), OP.localSet, ANY,
    OP.localGet, A + chain, OP.localGet, W, ...simd(SIMD.v128Xor), ...i64x2Const(M, M), ...simd(SIMD.i64x2Mul),
    OP.localGet, W, ...i64x2Const(K[0], K[1]), ...simd(SIMD.v128Xor), OP.localTee, W,
    OP.localGet, W, ...lanes32(0, 2, 0, 2), OP.localGet, W, OP.localGet, W, ...lanes32(1, 3, 1, 3),
    ...simd(SIMD.i64x2ExtmulLowI32x4U), ...simd(SIMD.i64x2Add), OP.localTee, A + chain,
    OP.localGet, A + chain, OP.i32Const, 32, ...simd(SIMD.i64x2ShrU), ...simd(SIMD.v128Xor), OP.localSet, A + chain,
  ];
}

function hashCode(): number[] {
  const init: number[] = [
    OP.localGet, BLOCK, OP.i64ExtendI32U, OP.i64Const, 32, OP.i64Shl, OP.localGet, PAGE, OP.i64ExtendI32U, OP.i64Or,
    ...fmix64(X), OP.localSet, SEED,
  ];
  for (let k = 0; k < 4; k++) {
    init.push(...i64x2Const(IV[2 * k], IV[2 * k + 1]), OP.localGet, SEED, ...simd(SIMD.i64x2Splat), ...simd(SIMD.v128Xor), OP.localSet, A + k);
  }
  const loop: number[] = [
    OP.localGet, PTR, OP.localGet, LEN, OP.i32Add, OP.localSet, END,
    OP.block, OP.void, OP.localGet, LEN, OP.i32Eqz, OP.brIf, 0, OP.loop, OP.void,
    ...step(0, 0), ...step(1, 16), ...step(2, 32), ...step(3, 48),
    OP.localGet, PTR, OP.i32Const, ...sleb(64), OP.i32Add, OP.localTee, PTR,
    OP.localGet, END, OP.i32Ne, OP.brIf, 0, OP.end, OP.end,
  ];
  // An all-zero page: the term is 0.
  const zero: number[] = [
    OP.block, OP.void, OP.localGet, ANY, ...simd(SIMD.v128AnyTrue), OP.brIf, 0,
    OP.i32Const, 0, OP.globalSet, 0, OP.i32Const, 0, OP.globalSet, 1, OP.i32Const, 0, OP.globalSet, 2,
    OP.i32Const, 0, OP.ret, OP.end,
  ];
  const fold: number[] = [];
  for (let k = 1; k < 4; k++) fold.push(OP.localGet, A, OP.localGet, A + k, ...simd(SIMD.v128Xor), ...mixVector(A));
  const finish: number[] = [
    OP.localGet, A, ...simd(SIMD.i64x2ExtractLane, 0), ...fmix64(X), OP.localSet, X,
    OP.localGet, A, ...simd(SIMD.i64x2ExtractLane, 1), OP.localGet, X, OP.i64Xor, ...fmix64(Y), OP.localSet, Y,
    OP.localGet, X, OP.localGet, Y, OP.i64Add, ...fmix64(X), OP.localSet, X,
    OP.localGet, X, OP.i64Const, 32, OP.i64ShrU, OP.i32WrapI64, OP.globalSet, 0,
    OP.localGet, Y, OP.i32WrapI64, OP.globalSet, 1,
    OP.localGet, Y, OP.i64Const, 32, OP.i64ShrU, OP.i32WrapI64, OP.globalSet, 2,
    OP.localGet, X, OP.i32WrapI64, OP.end,
  ];
  return [...init, ...loop, ...zero, ...fold, ...finish];
}

let compiled: WebAssembly.Module | null | undefined;

/** Writes the term of the page at byte `offset` of the memory (global page `page` of block `block`) into `out[at..at+4)`. */
export type PageHasher = (offset: number, page: number, block: number, out: Uint32Array, at: number) => void;

/** The SIMD hasher over `memory`, or the JS reference if SIMD is unavailable. */
export function pageHasher(memory: WebAssembly.Memory): PageHasher {
  if (compiled === undefined) {
    compiled = compileKernel({
      exportName: 'hash', params: [TYPE.i32, TYPE.i32, TYPE.i32, TYPE.i32], result: TYPE.i32,
      locals: [[1, TYPE.i32], [1, TYPE.i64], [6, TYPE.v128], [2, TYPE.i64]], code: hashCode(), globals: ['t1', 't2', 't3'],
    });
  }
  if (compiled === null) {
    const buffer = memory.buffer;
    return (offset, page, block, out, at) => out.set(jsPageHash(new Uint8Array(buffer, offset, PAGE_BYTES), page, block), at);
  }
  const e = new WebAssembly.Instance(compiled, { env: { memory } }).exports;
  const fn = e.hash as (p: number, l: number, page: number, block: number) => number;
  const [t1, t2, t3] = [e.t1, e.t2, e.t3] as WebAssembly.Global[];
  return (offset, page, block, out, at) => {
    out[at] = fn(offset, PAGE_BYTES, page, block);
    out[at + 1] = t1.value;
    out[at + 2] = t2.value;
    out[at + 3] = t3.value;
  };
}

const PAGE_BYTES = 4096;

function fmix64Big(z: bigint): bigint {
  z = (z ^ (z >> 33n)) * FMIX[0] & MASK64;
  z = (z ^ (z >> 33n)) * FMIX[1] & MASK64;
  return z ^ (z >> 33n);
}

function mixBig(v: bigint): bigint {
  v = (v * M) & MASK64;
  return v ^ (v >> 32n);
}

/** The same term in plain JS with BigInt (the reference; slow): four 32-bit words, low first. */
export function jsPageHash(data: Uint8Array, page: number, block: number): Uint32Array {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const seed = fmix64Big((BigInt(block >>> 0) << 32n) | BigInt(page >>> 0));
  const h = IV.map((iv) => iv ^ seed);
  let any = 0n;
  for (let at = 0; at < data.byteLength; at += 8) {
    const lane = (at >> 3) & 7; // vector (at >> 4) & 3, lane (at >> 3) & 1
    const w = view.getBigUint64(at, true);
    any |= w;
    const u = w ^ K[lane & 1];
    const x = (((h[lane] ^ w) * M) + (u & 0xffffffffn) * (u >> 32n)) & MASK64;
    h[lane] = x ^ (x >> 32n);
  }
  if (any === 0n) return new Uint32Array(4);
  for (let k = 1; k < 4; k++) {
    h[0] = mixBig(h[0] ^ h[2 * k]);
    h[1] = mixBig(h[1] ^ h[2 * k + 1]);
  }
  const x1 = fmix64Big(h[0]);
  const y = fmix64Big(h[1] ^ x1);
  const x = fmix64Big((x1 + y) & MASK64);
  return Uint32Array.of(Number(x & 0xffffffffn), Number(x >> 32n), Number(y & 0xffffffffn), Number(y >> 32n));
}
