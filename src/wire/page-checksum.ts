/**
 * The integrity check over page data: a Fletcher-style sum over 32-bit
 * lanes, four lanes at a time with WebAssembly SIMD, run where the bytes
 * already are (the sender's own copy in its send buffer, the destination's
 * RAM after the loader wrote the page), so it costs one read of memory and
 * no extra copy.
 *
 * Why this and not CRC32: `zlib.crc32` runs at ~2.6 GB/s here, slower than
 * loopback TCP (~3 GB/s), and would halve throughput on the migration
 * thread. TCP already checksums segments; this check is against ferry's own
 * mistakes (a page written at the wrong place, a frame split wrongly, a
 * buffer reused before the kernel sent it) and gross corruption. A running
 * sum `a` of lane values and a sum of running sums `b` (Fletcher) detects
 * every single-bit error (tested exhaustively over a page) and most
 * reorderings of 16-byte vectors; it is not a cryptographic MAC (TLS is the
 * answer to a hostile network).
 *
 *   (func (export "sum") (param $ptr i32) (param $len i32) (result i32)
 *     (local $end i32) (local $a v128) (local $b v128)
 *     ;; len is a multiple of 64
 *     (local.set $end (i32.add (local.get $ptr) (local.get $len)))
 *     (block $done
 *       (br_if $done (i32.eqz (local.get $len)))
 *       (loop $l   ;; 4 times: a += load(ptr + 16k); b += a
 *         ...
 *         (local.set $ptr (i32.add (local.get $ptr) (i32.const 64)))
 *         (br_if $l (i32.ne (local.get $ptr) (local.get $end)))))
 *     ;; fold lanes: sum over i of a[i]*(2i+1) + b[i]*(2i+2)
 *     ...)
 */
import { OP, SIMD, TYPE, compileKernel, simd, v128Load } from '../memory/wasm-asm.js';

const PTR = 0, LEN = 1, END = 2, A = 3, B = 4;
const A_WEIGHTS = [1, 3, 5, 7];
/**
 * Even, so that the weight of any one lane value in the result,
 * A_WEIGHT + B_WEIGHT x (vectors from it to the end), is odd: an odd
 * multiple of a flipped bit 2^k is never 0 mod 2^32. (Odd B weights, as
 * first written, let the loader fuzz find bit flips at k >= 29 that
 * cancelled out.)
 */
const B_WEIGHTS = [2, 4, 6, 8];

function i32x4Const(lanes: number[]): number[] {
  const bytes = Buffer.alloc(16);
  lanes.forEach((v, i) => {
    bytes.writeInt32LE(v, i * 4);
  });
  return simd(SIMD.v128Const, ...bytes);
}

function sumCode(): number[] {
  const step: number[] = [];
  for (let k = 0; k < 4; k++) {
    step.push(OP.localGet, A, ...v128Load(PTR, 16 * k), ...simd(SIMD.i32x4Add), OP.localTee, A);
    step.push(OP.localGet, B, ...simd(SIMD.i32x4Add), OP.localSet, B);
  }
  const fold: number[] = [
    OP.localGet, A, ...i32x4Const(A_WEIGHTS), ...simd(SIMD.i32x4Mul),
    OP.localGet, B, ...i32x4Const(B_WEIGHTS), ...simd(SIMD.i32x4Mul),
    ...simd(SIMD.i32x4Add), OP.localSet, A,
    OP.localGet, A, ...simd(SIMD.i32x4ExtractLane, 0),
    OP.localGet, A, ...simd(SIMD.i32x4ExtractLane, 1), OP.i32Add,
    OP.localGet, A, ...simd(SIMD.i32x4ExtractLane, 2), OP.i32Add,
    OP.localGet, A, ...simd(SIMD.i32x4ExtractLane, 3), OP.i32Add,
  ];
  return [
    OP.localGet, PTR, OP.localGet, LEN, OP.i32Add, OP.localSet, END,
    OP.block, OP.void,
    OP.localGet, LEN, OP.i32Eqz, OP.brIf, 0,
    OP.loop, OP.void,
    ...step,
    OP.localGet, PTR, OP.i32Const, 0xc0, 0x00, OP.i32Add, OP.localSet, PTR, // 64 as signed LEB
    OP.localGet, PTR, OP.localGet, END, OP.i32Ne, OP.brIf, 0,
    OP.end,
    OP.end,
    ...fold,
    OP.end,
  ];
}

let compiled: WebAssembly.Module | null | undefined;

export type PageSummer = (byteOffset: number, byteLength: number) => number;

/** The SIMD summer over `memory`, or the JS one if SIMD is unavailable. */
export function pageSummer(memory: WebAssembly.Memory): PageSummer {
  if (compiled === undefined) {
    compiled = compileKernel({
      exportName: 'sum', params: [TYPE.i32, TYPE.i32], result: TYPE.i32,
      locals: [[1, TYPE.i32], [2, TYPE.v128]], code: sumCode(),
    });
  }
  if (compiled === null) {
    const buffer = memory.buffer;
    return (offset, length) => jsPageSum(new Int32Array(buffer, offset, length >>> 2));
  }
  const fn = new WebAssembly.Instance(compiled, { env: { memory } }).exports.sum as (p: number, l: number) => number;
  return (offset, length) => {
    if ((length & 63) !== 0) throw new RangeError(`page sum length ${length} is not a multiple of 64`);
    return fn(offset | 0, length | 0) >>> 0;
  };
}

/** The same sum in plain JS (reference and fallback). `words.length` is a multiple of 16. */
export function jsPageSum(words: Int32Array): number {
  const a = [0, 0, 0, 0];
  const b = [0, 0, 0, 0];
  for (let i = 0; i < words.length; i += 4) {
    for (let l = 0; l < 4; l++) {
      a[l] = (a[l] + words[i + l]) | 0;
      b[l] = (b[l] + a[l]) | 0;
    }
  }
  let r = 0;
  for (let l = 0; l < 4; l++) r = (r + Math.imul(a[l], A_WEIGHTS[l]) + Math.imul(b[l], B_WEIGHTS[l])) | 0;
  return r >>> 0;
}
