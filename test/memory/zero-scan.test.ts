import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PAGE_SIZE } from '../../src/memory/page.js';
import { jsZeroScanner, simdZeroScanner } from '../../src/memory/zero-scan.js';
import { fileLimit } from '../waits.js';

fileLimit(import.meta.url, 60_000);

const PAGES = 64;

function memory(): { mem: WebAssembly.Memory; bytes: Uint8Array } {
  const mem = new WebAssembly.Memory({ initial: (PAGES * PAGE_SIZE) / 65536, maximum: (PAGES * PAGE_SIZE) / 65536, shared: true });
  return { mem, bytes: new Uint8Array(mem.buffer) };
}

test('the SIMD kernel is available on this Node', () => {
  assert.notEqual(simdZeroScanner(memory().mem), null);
});

test('SIMD and JS scanners agree with a byte-by-byte truth on every page', () => {
  const { mem, bytes } = memory();
  const simd = simdZeroScanner(mem)!;
  const js = jsZeroScanner(mem.buffer);
  // Non-zero bytes at the edges of pages, of 16-byte lanes and of 256-byte chunks.
  const offsets = [0, 1, 15, 16, 255, 256, 2047, 4080, 4095];
  offsets.forEach((off, i) => { bytes[(2 + i * 3) * PAGE_SIZE + off] = 0x80; });
  bytes[(PAGES - 1) * PAGE_SIZE + PAGE_SIZE - 1] = 1; // last byte of the memory
  const truth = (p: number) => bytes.subarray(p * PAGE_SIZE, (p + 1) * PAGE_SIZE).every((b) => b === 0);
  for (let p = 0; p < PAGES; p++) {
    assert.equal(simd.isZeroPage(p), truth(p), `simd page ${p}`);
    assert.equal(js.isZeroPage(p), truth(p), `js page ${p}`);
    let run = 0;
    while (p + run < PAGES && truth(p + run)) run++;
    assert.equal(simd.zeroPages(p, PAGES - p), run, `simd run from ${p}`);
    assert.equal(js.zeroPages(p, PAGES - p), run, `js run from ${p}`);
  }
});

test('zeroPages stops at maxPages and returns 0 for maxPages 0', () => {
  const { mem } = memory();
  const simd = simdZeroScanner(mem)!;
  assert.equal(simd.zeroPages(0, 5), 5);
  assert.equal(simd.zeroPages(3, 0), 0);
  assert.equal(jsZeroScanner(mem.buffer).zeroPages(3, 0), 0);
});

test('the kernel scans the last page of a 4 GiB block, whose end address wraps', () => {
  const big = new WebAssembly.Memory({ initial: 65536, maximum: 65536, shared: true });
  const simd = simdZeroScanner(big)!;
  const last = 1024 * 1024 - 1;
  assert.equal(simd.isZeroPage(last), true);
  new Uint8Array(big.buffer)[2 ** 32 - 1] = 9;
  assert.equal(simd.isZeroPage(last), false);
  assert.equal(simd.zeroPages(last - 3, 4), 3);
});
