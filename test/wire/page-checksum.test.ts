import assert from 'node:assert/strict';
import { randomFillSync } from 'node:crypto';
import { test } from 'node:test';
import { PAGE_SIZE } from '../../src/memory/page.js';
import { jsPageSum, pageSummer } from '../../src/wire/page-checksum.js';
import { fileLimit } from '../waits.js';

fileLimit(import.meta.url, 60_000);

test('the page sum detects every single-bit flip in a page (SIMD and JS agree)', () => {
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
  const page = new Uint8Array(memory.buffer, 0, PAGE_SIZE);
  const words = new Int32Array(memory.buffer, 0, PAGE_SIZE / 4);
  const simd = pageSummer(memory);
  for (const fill of ['random', 'zero', 'ones'] as const) {
    if (fill === 'random') randomFillSync(page);
    else page.fill(fill === 'zero' ? 0 : 0xff);
    const sum = simd(0, PAGE_SIZE);
    assert.equal(sum, jsPageSum(words), `${fill}: SIMD and JS agree`);
    let missed = 0;
    for (let byte = 0; byte < PAGE_SIZE; byte++) {
      for (let bit = 0; bit < 8; bit++) {
        page[byte] ^= 1 << bit;
        if (simd(0, PAGE_SIZE) === sum) missed++;
        page[byte] ^= 1 << bit;
      }
    }
    assert.equal(missed, 0, `${fill} page: ${missed} of ${PAGE_SIZE * 8} single-bit flips went unseen`);
  }
});
