import assert from 'node:assert/strict';
import { randomFillSync } from 'node:crypto';
import { test } from 'node:test';
import { MAX_BLOCK_PAGES, PAGE_SIZE } from '../../src/memory/page.js';
import { RamDigest } from '../../src/migration/ram-digest.js';
import { pageHasher } from '../../src/wire/page-hash.js';
import { fileLimit } from '../waits.js';

fileLimit(import.meta.url, 60_000);

/** Page versions to send: slot i holds one version of some page's data. */
const SLOTS = 16;
const memory = new WebAssembly.Memory({ initial: (SLOTS * PAGE_SIZE) / 65536, maximum: (SLOTS * PAGE_SIZE) / 65536, shared: true });
const slots = new Uint8Array(memory.buffer);
randomFillSync(slots);
slots.fill(0, 15 * PAGE_SIZE); // slot 15: a zero page
const hash = pageHasher(memory);

type Op = readonly ['page', number, number, number] | readonly ['zero', number, number, number];

function digestAfter(ops: readonly Op[], blockPages: readonly number[] = [4096, 100]): { value: string; digest: RamDigest } {
  const digest = new RamDigest(blockPages);
  for (const op of ops) {
    if (op[0] === 'page') digest.setPages(hash, op[3] * PAGE_SIZE, op[1], op[2], 1);
    else digest.clearPages(op[1], op[2], op[3]);
  }
  return { value: digest.value().toString('hex'), digest };
}

test('the digest depends on what each page last held, not on the order it arrived in', () => {
  // The source: pass 1 sends pages 0..3, pass 2 resends page 1 (new data) and zeroes page 2.
  const source = digestAfter([['page', 0, 0, 0], ['page', 0, 1, 1], ['page', 0, 2, 2], ['page', 1, 3, 3], ['page', 0, 1, 4], ['zero', 0, 2, 1]]);
  // The same final contents reached another way: only the last versions, in another order.
  const direct = digestAfter([['page', 1, 3, 3], ['page', 0, 1, 4], ['page', 0, 0, 0]]);
  assert.equal(source.value, direct.value);
  // A zero page sent as data counts as absent, as a ZERO run does.
  assert.equal(digestAfter([['page', 1, 3, 3], ['page', 0, 1, 4], ['page', 0, 0, 0], ['page', 0, 9, 15]]).value, direct.value);
  assert.equal(digestAfter([]).value, '0'.repeat(32), 'nothing sent: 0');
});

test('a stale page, a lost page, a page at the wrong place or block, and a lost ZERO all change the digest', () => {
  const sent = digestAfter([['page', 0, 0, 0], ['page', 0, 1, 1], ['page', 0, 1, 4], ['page', 0, 7, 2], ['zero', 0, 7, 1]]).value;
  const wrong: [string, Op[]][] = [
    ['stale: the first version of page 1 kept', [['page', 0, 0, 0], ['page', 0, 1, 4], ['page', 0, 1, 1]]],
    ['lost: page 1 missing', [['page', 0, 0, 0]]],
    ['misplaced: page 1 loaded at 2', [['page', 0, 0, 0], ['page', 0, 2, 4]]],
    ['other block: page 1 loaded into block 1', [['page', 0, 0, 0], ['page', 1, 1, 4]]],
    ['swapped: pages 0 and 1 exchanged', [['page', 0, 1, 0], ['page', 0, 0, 4]]],
    ['ZERO lost: page 7 kept its data', [['page', 0, 0, 0], ['page', 0, 1, 4], ['page', 0, 7, 2]]],
  ];
  for (const [what, ops] of wrong) assert.notEqual(digestAfter(ops).value, sent, what);
});

test('terms cost memory only for chunks holding non-zero pages: a 64 GiB guest written with zeros needs none', () => {
  const blocks = new Array(16).fill(MAX_BLOCK_PAGES); // 16 x 4 GiB
  const idle = new RamDigest(blocks);
  for (let b = 0; b < 16; b++) {
    for (let p = 0; p < MAX_BLOCK_PAGES; p += 4096) idle.setPages(hash, 15 * PAGE_SIZE, b, p, 1); // zero data
    idle.clearPages(b, 0, MAX_BLOCK_PAGES);
  }
  assert.equal(idle.chunksAllocated, 0);
  const sparse = new RamDigest(blocks);
  sparse.setPages(hash, 0, 3, 5, 1);
  sparse.setPages(hash, PAGE_SIZE, 3, 6, 1);
  sparse.setPages(hash, 0, 15, MAX_BLOCK_PAGES - 1, 1);
  assert.equal(sparse.chunksAllocated, 2, 'two chunks of 512 pages (8 KiB of terms each)');
  sparse.clearPages(3, 0, MAX_BLOCK_PAGES);
  sparse.clearPages(15, 0, MAX_BLOCK_PAGES);
  assert.equal(sparse.value().toString('hex'), '0'.repeat(32), 'every term cleared: back to 0');
});
