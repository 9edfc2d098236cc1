/**
 * XBZRLE's encoder as a WebAssembly kernel (SIMD and bulk memory), about
 * 2.5 times the plain-JS encoder's speed here (bench/xbzrle.ts): runs are
 * found 16 bytes a step (i8x16.eq's mask, its lowest set or clear bit),
 * and changed bytes are copied with memory.copy. It runs on one memory
 * that holds both pages and the output: a page cache's own memory
 * (migration/xbzrle-cache.ts: the old page is read in place), or a scratch
 * memory the pages are copied into (xbzrle.ts). Same bytes and same
 * overflow points as QEMU's xbzrle_encode_buffer, checked against a model
 * of it (test/wire/xbzrle.test.ts).
 *
 * The module's bytes are below, with their text form (XBZRLE_KERNEL_TEXT):
 * Binaryen compiles that text to exactly these bytes (a test checks it),
 * so a change to the kernel is a change to the text, then to the bytes.
 * Addresses are u32: a JavaScript number past 2 GiB passes as the same bits.
 */

/** The kernel's text (WebAssembly text format, as Binaryen reads it). */
export const XBZRLE_KERNEL_TEXT = `
(module
  (import "env" "memory" (memory 1 65536))
  ;; End of the run of equal bytes from page byte $i (at most $n) of the pages at $a and $b:
  ;; 16 bytes a step (the first unequal byte is the lowest clear bit of i8x16.eq's mask), then a byte at a time.
  (func $equalEnd (param $a i32) (param $b i32) (param $i i32) (param $n i32) (result i32)
    (local $m i32)
    (block $bytes
      (loop $vectors
        (br_if $bytes (i32.gt_u (i32.add (local.get $i) (i32.const 16)) (local.get $n)))
        (local.set $m (i32.xor (i32.const 0xffff) (i8x16.bitmask (i8x16.eq
          (v128.load align=1 (i32.add (local.get $a) (local.get $i)))
          (v128.load align=1 (i32.add (local.get $b) (local.get $i)))))))
        (if (local.get $m) (then (return (i32.add (local.get $i) (i32.ctz (local.get $m))))))
        (local.set $i (i32.add (local.get $i) (i32.const 16)))
        (br $vectors)))
    (block $done
      (loop $byte
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (br_if $done (i32.ne (i32.load8_u (i32.add (local.get $a) (local.get $i))) (i32.load8_u (i32.add (local.get $b) (local.get $i)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $byte)))
    (local.get $i))
  ;; End of the run of differing bytes from $i: the same, stopping at the first equal byte.
  (func $changedEnd (param $a i32) (param $b i32) (param $i i32) (param $n i32) (result i32)
    (local $m i32)
    (block $bytes
      (loop $vectors
        (br_if $bytes (i32.gt_u (i32.add (local.get $i) (i32.const 16)) (local.get $n)))
        (local.set $m (i8x16.bitmask (i8x16.eq
          (v128.load align=1 (i32.add (local.get $a) (local.get $i)))
          (v128.load align=1 (i32.add (local.get $b) (local.get $i))))))
        (if (local.get $m) (then (return (i32.add (local.get $i) (i32.ctz (local.get $m))))))
        (local.set $i (i32.add (local.get $i) (i32.const 16)))
        (br $vectors)))
    (block $done
      (loop $byte
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (br_if $done (i32.eq (i32.load8_u (i32.add (local.get $a) (local.get $i))) (i32.load8_u (i32.add (local.get $b) (local.get $i)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $byte)))
    (local.get $i))
  ;; $v (< 16384) as a ULEB128 at $at; returns its length.
  (func $uleb (param $at i32) (param $v i32) (result i32)
    (if (i32.lt_u (local.get $v) (i32.const 128))
      (then (i32.store8 (local.get $at) (local.get $v)) (return (i32.const 1))))
    (i32.store8 (local.get $at) (i32.or (i32.and (local.get $v) (i32.const 127)) (i32.const 128)))
    (i32.store8 offset=1 (local.get $at) (i32.shr_u (local.get $v) (i32.const 7)))
    (i32.const 2))
  ;; xbzrle_encode_buffer: the delta of the page at $b against the page at $a ($n bytes each),
  ;; written at $out; its length, 0 when equal, -1 when it would pass $limit (QEMU's checks, in QEMU's places).
  (func (export "encode") (param $a i32) (param $b i32) (param $n i32) (param $out i32) (param $limit i32) (result i32)
    (local $i i32) (local $d i32) (local $start i32) (local $len i32)
    (block $end
      (loop $pair
        (br_if $end (i32.ge_u (local.get $i) (local.get $n)))
        (if (i32.gt_u (i32.add (local.get $d) (i32.const 2)) (local.get $limit)) (then (return (i32.const -1))))
        (local.set $start (local.get $i))
        (local.set $i (call $equalEnd (local.get $a) (local.get $b) (local.get $i) (local.get $n)))
        (local.set $len (i32.sub (local.get $i) (local.get $start)))
        (if (i32.eq (local.get $len) (local.get $n)) (then (return (i32.const 0))))
        (br_if $end (i32.eq (local.get $i) (local.get $n)))
        (local.set $d (i32.add (local.get $d) (call $uleb (i32.add (local.get $out) (local.get $d)) (local.get $len))))
        (if (i32.gt_u (i32.add (local.get $d) (i32.const 2)) (local.get $limit)) (then (return (i32.const -1))))
        (local.set $start (local.get $i))
        (local.set $i (call $changedEnd (local.get $a) (local.get $b) (local.get $i) (local.get $n)))
        (local.set $len (i32.sub (local.get $i) (local.get $start)))
        (local.set $d (i32.add (local.get $d) (call $uleb (i32.add (local.get $out) (local.get $d)) (local.get $len))))
        (if (i32.gt_u (i32.add (local.get $d) (local.get $len)) (local.get $limit)) (then (return (i32.const -1))))
        (memory.copy (i32.add (local.get $out) (local.get $d)) (i32.add (local.get $b) (local.get $start)) (local.get $len))
        (local.set $d (i32.add (local.get $d) (local.get $len)))
        (br $pair)))
    (local.get $d))
)
`;

/** The kernel's module: XBZRLE_KERNEL_TEXT compiled by Binaryen 132 (features SIMD128, bulk memory), base64. */
export const XBZRLE_KERNEL_BASE64 =
  'AGFzbQEAAAABGANgBH9/f38Bf2ACf38Bf2AFf39/f38BfwISAQNlbnYGbWVtb3J5AgEBgIAEAwUEAAABAgcKAQZlbmNvZGUA' +
  'AwrKAwRzAQF/AkADQCACQRBqIANLDQFB//8DIAAgAmr9AAAAIAEgAmr9AAAA/SP9ZHMhBCAEBEAgAiAEaGoPCyACQRBqIQIM' +
  'AAsACwJAA0AgAiADTw0BIAAgAmotAAAgASACai0AAEcNASACQQFqIQIMAAsACyACC24BAX8CQANAIAJBEGogA0sNASAAIAJq' +
  '/QAAACABIAJq/QAAAP0j/WQhBCAEBEAgAiAEaGoPCyACQRBqIQIMAAsACwJAA0AgAiADTw0BIAAgAmotAAAgASACai0AAEYN' +
  'ASACQQFqIQIMAAsACyACCzAAIAFBgAFJBEAgACABOgAAQQEPCyAAIAFB/wBxQYABcjoAACAAIAFBB3Y6AAFBAguzAQEEfwJA' +
  'A0AgBSACTw0BIAZBAmogBEsEQEF/DwsgBSEHIAAgASAFIAIQACEFIAUgB2shCCAIIAJGBEBBAA8LIAUgAkYNASAGIAMgBmog' +
  'CBACaiEGIAZBAmogBEsEQEF/DwsgBSEHIAAgASAFIAIQASEFIAUgB2shCCAGIAMgBmogCBACaiEGIAYgCGogBEsEQEF/Dwsg' +
  'AyAGaiABIAdqIAj8CgAAIAYgCGohBgwACwALIAYL';

/** The kernel bound to a memory: `encode(old, now, n, out, limit)` over byte addresses in it; returns QEMU's result. */
export type XbzrleKernel = (oldAt: number, nowAt: number, n: number, outAt: number, limit: number) => number;

let compiled: WebAssembly.Module | null | undefined;

/**
 * The kernel over `memory` (declared with a maximum of at most 65536
 * pages), or null where WebAssembly SIMD is unavailable (callers then use
 * the plain-JS encoder, xbzrle-js-encoder.ts).
 */
export function xbzrleKernel(memory: WebAssembly.Memory): XbzrleKernel | null {
  if (compiled === undefined) {
    try {
      compiled = new WebAssembly.Module(Buffer.from(XBZRLE_KERNEL_BASE64, 'base64'));
    } catch {
      compiled = null;
    }
  }
  if (compiled === null) return null;
  return new WebAssembly.Instance(compiled, { env: { memory } }).exports.encode as XbzrleKernel;
}
