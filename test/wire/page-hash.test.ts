import assert from 'node:assert/strict';
import { randomFillSync } from 'node:crypto';
import { test } from 'node:test';
import { PAGE_SIZE } from '../../src/memory/page.js';
import { jsPageHash, pageHasher } from '../../src/wire/page-hash.js';
import { fileLimit } from '../waits.js';

fileLimit(import.meta.url, 60_000);

const PAGES = 8;

function memoryOf(pages: number) {
  const memory = new WebAssembly.Memory({ initial: (pages * PAGE_SIZE) / 65536 + 1, maximum: (pages * PAGE_SIZE) / 65536 + 1, shared: true });
  return { memory, bytes: new Uint8Array(memory.buffer), hash: pageHasher(memory) };
}

function termOf(hash: ReturnType<typeof pageHasher>, offset: number, page: number, block: number): string {
  const out = new Uint32Array(4);
  hash(offset, page, block, out, 0);
  return Buffer.from(out.buffer).toString('hex');
}

const hex = (t: Uint32Array) => Buffer.from(t.buffer, t.byteOffset, 16).toString('hex');

test('the SIMD kernel and the JS reference give the same 128-bit term', () => {
  const { bytes, hash } = memoryOf(PAGES);
  randomFillSync(bytes, 0, PAGES * PAGE_SIZE);
  bytes.fill(0, 3 * PAGE_SIZE, 4 * PAGE_SIZE);
  bytes[3 * PAGE_SIZE + 4095] = 1; // one non-zero byte at the very end
  bytes.fill(0xff, 5 * PAGE_SIZE, 6 * PAGE_SIZE);
  for (let p = 0; p < PAGES; p++) {
    for (const [page, block] of [[p, 0], [0xfffff, 1023], [p * 977, 3]]) {
      const js = jsPageHash(bytes.subarray(p * PAGE_SIZE, (p + 1) * PAGE_SIZE), page, block);
      assert.equal(termOf(hash, p * PAGE_SIZE, page, block), hex(js), `data of page ${p} as page ${page} of block ${block}`);
    }
  }
});

test('an all-zero page has the term 0 (zero pages count as absent), any other page a non-zero one', () => {
  const { bytes, hash } = memoryOf(1);
  assert.equal(termOf(hash, 0, 17, 2), '0'.repeat(32));
  bytes[100] = 1;
  assert.notEqual(termOf(hash, 0, 17, 2), '0'.repeat(32));
});

test('the term changes with every single-bit flip of a page, and with the page index and block', () => {
  const { bytes, hash } = memoryOf(1);
  randomFillSync(bytes, 0, PAGE_SIZE);
  const base = termOf(hash, 0, 5, 0);
  let missed = 0;
  for (let byte = 0; byte < PAGE_SIZE; byte++) {
    for (let bit = 0; bit < 8; bit++) {
      bytes[byte] ^= 1 << bit;
      if (termOf(hash, 0, 5, 0) === base) missed++;
      bytes[byte] ^= 1 << bit;
    }
  }
  assert.equal(missed, 0, `${missed} of ${PAGE_SIZE * 8} single-bit flips left the term unchanged`);
  const places = new Set<string>();
  for (let page = 0; page < 64; page++) for (let block = 0; block < 4; block++) places.add(termOf(hash, 0, page, block));
  assert.equal(places.size, 64 * 4, 'the same bytes at 256 places give 256 terms');
});

test("two words of one chain changed so that a multiply by a constant alone would cancel: the data product sees it", () => {
  // Flipping bit 63 of word i passes a multiply by an odd constant unchanged (as bit 63), then the
  // xorshift turns it into bits 63 and 31: flipping those in the chain's next word (i + 8) would
  // cancel it without the data product.
  const { bytes, hash } = memoryOf(1);
  randomFillSync(bytes, 0, PAGE_SIZE);
  const view = new DataView(bytes.buffer);
  const base = termOf(hash, 0, 9, 0);
  let cancelled = 0;
  for (let word = 0; word + 8 < PAGE_SIZE / 8; word += 37) {
    const a = view.getBigUint64(word * 8, true);
    const b = view.getBigUint64((word + 8) * 8, true);
    view.setBigUint64(word * 8, a ^ (1n << 63n), true);
    view.setBigUint64((word + 8) * 8, b ^ (1n << 63n) ^ (1n << 31n), true);
    if (termOf(hash, 0, 9, 0) === base) cancelled++;
    view.setBigUint64(word * 8, a, true);
    view.setBigUint64((word + 8) * 8, b, true);
  }
  assert.equal(cancelled, 0);
});
