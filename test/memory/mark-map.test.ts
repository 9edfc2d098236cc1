/**
 * A RAM block's reserved tail (src/memory/block-tail.ts): the mark map
 * harvested by the dirty log (src/memory/mark-map.ts), and the size word.
 * Single-threaded rules here; under concurrency: mark-map-threads.test.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { forEachSetBit } from '../../src/memory/bits.js';
import { RamBlock } from '../../src/memory/ram-block.js';
import { fileLimit } from '../waits.js';

fileLimit(import.meta.url, 60_000);

const KiB = 1024;

/** A block of `pages` pages with its mark map right after them (and `extra` tail bytes past the map). */
function mapped(pages: number, extra = 0): { block: RamBlock; map: Uint8Array } {
  const size = pages * 4096;
  const block = RamBlock.create('ram0', size, { tailBytes: pages + extra, markMap: { offset: size } });
  return { block, map: new Uint8Array(block.memory.buffer, size, pages) };
}

function everWritten(block: RamBlock): number[] {
  const pages: number[] = [];
  forEachSetBit(block.log.everWrittenWords, 0, block.log.words, 0, (p) => pages.push(p));
  return pages;
}

test('marks in the map reach every client at sync, once each, with exact counts, and the map is cleared', () => {
  const { block, map } = mapped(64);
  const a = block.log.register();
  const b = block.log.register();
  for (const [p, v] of [[0, 1], [3, 0x80], [4, 0xff], [31, 2], [32, 1], [63, 0x40]]) map[p] = v;
  block.log.markPage(3); // the producer and the map agree on page 3: counted once
  block.log.markPage(40);
  block.log.sync();
  assert.deepEqual(everWritten(block), [0, 3, 4, 31, 32, 40, 63]);
  assert.equal(a.dirtyPages, 7);
  assert.equal(b.dirtyPages, 7);
  assert.equal(block.log.everWrittenCount, 7);
  assert.equal(a.dirtyPages, block.log.scanCount(a.slot));
  assert.ok(map.every((v) => v === 0), 'every mark taken');
  map[3] = 1;
  block.log.sync();
  assert.equal(a.dirtyPages, 7, 'a page already dirty is not counted twice');
  assert.equal(block.log.everWrittenCount, 7);
});

test('pages past the block are never reported: the map is one byte per page, and bytes past it are not touched', () => {
  const pages = 37; // 9 whole map words and a tail of one byte; the last bitmap word has 5 pages
  const { block, map } = mapped(pages, 27);
  const past = new Uint8Array(block.memory.buffer, pages * 4096 + pages, 27);
  past.fill(0xff); // someone else's bytes in the tail, right after the map
  map[36] = 1; // the tail byte alone
  block.log.sync();
  assert.deepEqual(everWritten(block), [36]);
  map.fill(1);
  const client = block.log.register();
  block.log.sync();
  assert.equal(block.log.everWrittenCount, pages);
  assert.equal(client.dirtyPages, pages);
  assert.equal(block.log.everWrittenWords[1], (1 << 5) - 1, 'no bit past page 36');
  assert.ok(past.every((v) => v === 0xff), 'the bytes past the map are neither read as marks nor cleared');
  assert.ok(map.every((v) => v === 0));
  const out = new Int32Array(2);
  assert.equal(client.syncAndTake(0, pages, out), pages);
  assert.equal(out[1], (1 << 5) - 1);
});

test('a ranged sync takes the map bytes of its bitmap words only; the rest wait for their sync', () => {
  const { block, map } = mapped(128);
  const client = block.log.register();
  map[5] = 1;
  map[100] = 1;
  block.log.sync(0, 32);
  assert.deepEqual(everWritten(block), [5]);
  assert.equal(map[100], 1, 'page 100 is outside the words synced');
  const out = new Int32Array(1);
  assert.equal(client.syncAndTake(96, 32, out), 1);
  assert.equal(out[0], 1 << 4);
  assert.equal(map[100], 0);
});

test('nextMaybeDirty sees a mark that is only in the map (a pass must not skip it)', () => {
  const { block, map } = mapped(256);
  const client = block.log.register();
  assert.equal(client.nextMaybeDirty(0), 256, 'clean');
  map[70] = 1;
  assert.equal(client.nextMaybeDirty(0), 64);
  assert.equal(client.nextMaybeDirty(100), 256, 'after it: clean');
  const out = new Int32Array(8);
  assert.equal(client.syncAndTake(0, 256, out), 1);
  assert.equal(client.nextMaybeDirty(0), 256);
});

test('a client registered late starts with the map\'s marks among the ever-written pages', () => {
  const { block, map } = mapped(64);
  map[9] = 1;
  const late = block.log.register();
  assert.equal(late.dirtyPages, 1);
  assert.deepEqual(everWritten(block), [9]);
});

test('the block ends at its size: bytes view, zero scan and the page count exclude the tail', () => {
  const size = 96 * KiB;
  const block = RamBlock.create('ram0', size, { tailBytes: 40 * KiB, markMap: { offset: size }, sizeWord: { offset: size + 64, unitBytes: 4096 } });
  assert.equal(block.pages, 24);
  assert.equal(block.bytes.length, size);
  assert.equal(block.memory.buffer.byteLength, 3 * 64 * KiB, 'the memory: block and tail, rounded to 64 KiB');
  new Uint8Array(block.memory.buffer).fill(7, size + 4096); // the tail past the map and the word is not RAM
  assert.equal(block.zero.zeroPages(0, 24), 24);
  assert.throws(() => block.write(size, new Uint8Array(1)), /span 98304\+1 is outside its 98304 bytes/);
});

test('visiblePages reads the size word in its units, clamped to the block; setVisiblePages writes it', () => {
  const size = 1024 * KiB; // 256 pages = 16 units of 64 KiB
  const block = RamBlock.create('ram0', size, { tailBytes: 4096, sizeWord: { offset: size + 8, unitBytes: 64 * KiB } });
  const word = new Int32Array(block.memory.buffer, size + 8, 1);
  assert.equal(block.visiblePages(), 0);
  word[0] = 3;
  assert.equal(block.visiblePages(), 48);
  word[0] = 1000;
  assert.equal(block.visiblePages(), 256, 'clamped to the block\'s pages');
  word[0] = -1;
  assert.equal(block.visiblePages(), 256, 'read unsigned, clamped');
  block.setVisiblePages(32);
  assert.equal(word[0], 2);
  assert.equal(block.visiblePages(), 32);
  assert.throws(() => block.setVisiblePages(33), /a size in use of 33 pages is not a whole number of 16-page units within its 256 pages/);
  assert.throws(() => block.setVisiblePages(272), /272 pages/);
  const plain = RamBlock.create('ram1', size);
  assert.equal(plain.visiblePages(), 256, 'without a size word: every page');
  plain.setVisiblePages(256);
  assert.throws(() => plain.setVisiblePages(16), { code: 'ERR_FERRY_INVALID_STATE', message: /"ram1" has no size word: its size in use is its 256 pages, not 16/ });
});

test('growVisiblePages only grows (several channels apply the same GROWs, each when it reaches them); a size it cannot hold is refused as setVisiblePages refuses it', () => {
  const size = 1024 * KiB; // 256 pages = 16 units of 64 KiB
  const block = RamBlock.create('ram0', size, { tailBytes: 4096, sizeWord: { offset: size + 8, unitBytes: 64 * KiB } });
  const other = new RamBlock(block.toShared());
  block.growVisiblePages(64);
  other.growVisiblePages(32); // an older GROW, applied late on another channel
  assert.equal(block.visiblePages(), 64, 'never shrunk');
  other.growVisiblePages(128);
  assert.equal(block.visiblePages(), 128);
  assert.throws(() => block.growVisiblePages(33), /a size in use of 33 pages is not a whole number of 16-page units/);
  assert.throws(() => block.growVisiblePages(272), /272 pages/);
  const plain = RamBlock.create('ram1', size);
  plain.growVisiblePages(256);
  assert.throws(() => plain.growVisiblePages(16), { code: 'ERR_FERRY_INVALID_STATE' });
});

test('the tail travels in RamBlockShared: another RamBlock over it sees the size word and harvests the map', () => {
  const size = 64 * KiB;
  const block = RamBlock.create('ram0', size, { tailBytes: 64, markMap: { offset: size }, sizeWord: { offset: size + 16, unitBytes: 4096 } });
  const other = new RamBlock(block.toShared());
  assert.deepEqual(other.tail, { tailBytes: 64, markMap: { offset: size }, sizeWord: { offset: size + 16, unitBytes: 4096 } });
  other.setVisiblePages(5);
  assert.equal(block.visiblePages(), 5);
  new Uint8Array(block.memory.buffer)[size + 2] = 1;
  other.log.sync();
  assert.equal(block.log.isEverWritten(2), true);
});

test('tail options are checked, each with a clear error', () => {
  const size = 64 * KiB;
  const create = (o: object) => () => RamBlock.create('ram0', size, o);
  assert.throws(create({ tailBytes: -1 }), { code: 'ERR_FERRY_INVALID_ARGUMENT', message: /tailBytes must be a non-negative integer, got -1/ });
  assert.throws(create({ tailBytes: 4 * 1024 * 1024 * 1024 }), /make 4295032832 bytes of memory, over the 4 GiB of one memory/);
  assert.throws(create({ tailBytes: 64, markMap: { offset: size - 4 } }), /markMap of 16 bytes at offset 65532 must be 4-byte aligned and inside the tail \[65536, 65600\)/);
  assert.throws(create({ tailBytes: 8, markMap: { offset: size } }), /markMap of 16 bytes at offset 65536 must be .* inside the tail \[65536, 65544\)/);
  assert.throws(create({ tailBytes: 64, markMap: { offset: size + 2 } }), /markMap .* at offset 65538 must be 4-byte aligned/);
  assert.throws(create({ tailBytes: 64, sizeWord: { offset: size, unitBytes: 100 } }), /sizeWord.unitBytes must be a positive multiple of 4096, got 100/);
  assert.throws(create({ tailBytes: 64, sizeWord: { offset: size + 61, unitBytes: 4096 } }), /sizeWord of 4 bytes at offset 65597/);
  assert.throws(create({ tailBytes: 64, markMap: { offset: size }, sizeWord: { offset: size + 12, unitBytes: 4096 } }),
    /the size word at 65548 overlaps the mark map at 65536\+16/);
});
