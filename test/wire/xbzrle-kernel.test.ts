/**
 * The XBZRLE kernel's committed bytes are its text, compiled: Binaryen
 * (the project's own, src/wasm/binaryen.ts) turns XBZRLE_KERNEL_TEXT into
 * exactly XBZRLE_KERNEL_BASE64. What the kernel computes is tested with
 * the encoders (test/wire/xbzrle.test.ts).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { binaryen } from '../../src/wasm/binaryen.js';
import { XBZRLE_KERNEL_BASE64, XBZRLE_KERNEL_TEXT, xbzrleKernel } from '../../src/wire/xbzrle-kernel.js';
import { fileLimit } from '../waits.js';

fileLimit(import.meta.url, 60_000);

test('the kernel\'s bytes are its text compiled by Binaryen (SIMD128, bulk memory)', () => {
  const module = binaryen.parseText(XBZRLE_KERNEL_TEXT);
  try {
    module.setFeatures(binaryen.Features.SIMD128 | binaryen.Features.BulkMemory | binaryen.Features.BulkMemoryOpt);
    assert.ok(module.validate(), 'the text is a valid module');
    const compiled = Buffer.from(module.emitBinary()).toString('base64');
    assert.equal(compiled, XBZRLE_KERNEL_BASE64, `the committed bytes are stale; the text compiles to:\n${compiled}`);
  } finally {
    module.dispose();
  }
});

test('the kernel instantiates on a memory of one page and encodes there', () => {
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 1 });
  const encode = xbzrleKernel(memory);
  assert.ok(encode !== null, 'WebAssembly SIMD is available on Node 20 here');
  const bytes = new Uint8Array(memory.buffer);
  bytes.fill(7, 4096, 8192);
  bytes[4096 + 10] = 9; // the new page differs from the old (zeros) everywhere: an overflow; then one byte only
  assert.equal(encode(0, 4096, 4096, 8192, 4096), -1);
  bytes.set(bytes.subarray(4096, 8192), 0);
  bytes[4096 + 10] = 1;
  assert.equal(encode(0, 4096, 4096, 8192, 4096), 3);
  assert.deepEqual(Array.from(bytes.subarray(8192, 8195)), [10, 1, 1]);
});
