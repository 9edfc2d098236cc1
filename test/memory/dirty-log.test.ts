import assert from 'node:assert/strict';
import { test } from 'node:test';
import { forEachSetBit } from '../../src/memory/bits.js';
import { DirtyLog } from '../../src/memory/dirty-log.js';
import { GuestMemory } from '../../src/memory/guest-memory.js';
import { RamBlock } from '../../src/memory/ram-block.js';
import { fileLimit } from '../waits.js';

fileLimit(import.meta.url, 60_000);

function taken(out: Int32Array, first: number): number[] {
  const pages: number[] = [];
  forEachSetBit(out, 0, out.length, first & ~31, (p) => pages.push(p));
  return pages;
}

test('sync moves producer marks into every client and keeps each count exact', () => {
  const log = DirtyLog.create(1000);
  const a = log.register();
  const b = log.register();
  for (const p of [0, 31, 32, 500, 999]) log.markPage(p);
  log.sync();
  assert.equal(a.dirtyPages, 5);
  assert.equal(b.dirtyPages, 5);
  assert.equal(log.everWrittenCount, 5);
  const out = new Int32Array(32);
  assert.equal(a.take(0, 1000, out), 5);
  assert.deepEqual(taken(out, 0), [0, 31, 32, 500, 999]);
  assert.equal(a.dirtyPages, 0);
  assert.equal(b.dirtyPages, 5, 'taking from one client leaves the others alone');
  log.markPage(31);
  log.sync();
  assert.equal(a.dirtyPages, 1);
  assert.equal(b.dirtyPages, 5, 'a page already dirty is not counted twice');
  assert.equal(log.everWrittenCount, 5);
  assert.equal(b.dirtyPages, log.scanCount(b.slot));
});

test('a client registered late starts with every ever-written page dirty', () => {
  const log = DirtyLog.create(300);
  const early = log.register();
  log.markPages(10, 50);
  log.sync();
  const out = new Int32Array(10);
  early.take(0, 300, out); // the early client consumed them
  log.markPage(200); // not yet synced
  const late = log.register();
  assert.equal(late.dirtyPages, 51);
  late.take(0, 300, out);
  const pages = taken(out, 0);
  assert.equal(pages.length, 51);
  assert.ok(pages.includes(200) && pages.includes(10) && pages.includes(59));
});

test('syncAndTake over a sub-range takes only pages in the range and loses none outside it', () => {
  const log = DirtyLog.create(256);
  const c = log.register();
  log.markPages(0, 256);
  const out = new Int32Array(8);
  assert.equal(c.syncAndTake(40, 30, out), 30);
  assert.deepEqual(taken(out, 40), Array.from({ length: 30 }, (_, i) => 40 + i));
  // Whole words (pages 32..95) were harvested: the rest of them waits in the client.
  assert.equal(c.dirtyPages, 64 - 30);
  assert.equal(c.syncAndTake(0, 256, out), 256 - 30);
  assert.equal(c.dirtyPages, 0);
});

test('redirty puts pages back for one client; unregister frees the slot', () => {
  const log = DirtyLog.create(64, { maxClients: 1 });
  const c = log.register();
  assert.throws(() => log.register(), { code: 'ERR_FERRY_INVALID_STATE', message: /client slots are in use/ });
  c.redirty(3, 4);
  assert.equal(c.dirtyPages, 4);
  c.redirty(3, 4);
  assert.equal(c.dirtyPages, 4);
  c.unregister();
  assert.throws(() => c.take(0, 64, new Int32Array(2)), { code: 'ERR_FERRY_INVALID_STATE' });
  const again = log.register();
  assert.equal(again.dirtyPages, 0);
});

test('ranges and sizes are checked with clear errors', () => {
  assert.throws(() => DirtyLog.create(-1), { code: 'ERR_FERRY_INVALID_ARGUMENT', message: /positive integer/ });
  const log = DirtyLog.create(100);
  assert.throws(() => log.sync(90, 20), { message: /outside the block's 100 pages/ });
  assert.throws(() => log.markPages(-1, 2), { code: 'ERR_FERRY_INVALID_ARGUMENT' });
  const c = log.register();
  assert.throws(() => c.take(0, 100, new Int32Array(1)), { message: /output holds 1 words, range needs 4/ });
  assert.throws(() => log.client(5), { message: /no registered client in slot 5/ });
});

test('RAM block writes mark what they touch and count as ever written', () => {
  const block = RamBlock.create('ram0', 64 * 4096);
  block.write(4095, Uint8Array.of(1, 2)); // spans pages 0 and 1
  block.update(10 * 4096, 3 * 4096, (v) => v.fill(7));
  block.log.sync();
  const ever: number[] = [];
  forEachSetBit(block.log.everWrittenWords, 0, 2, 0, (p) => ever.push(p));
  assert.deepEqual(ever, [0, 1, 10, 11, 12]);
  assert.deepEqual([...block.read(4095, 2)], [1, 2]);
  assert.equal(block.zero.isZeroPage(2), true);
  assert.equal(block.zero.isZeroPage(10), false);
});

test('RAM block sizes are checked with clear errors', () => {
  assert.throws(() => RamBlock.create('r', -4096), { message: /must be positive/ });
  assert.throws(() => RamBlock.create('r', 5000), { message: /not a multiple of the 4096-byte page/ });
  assert.throws(() => RamBlock.create('r', 8 * 1024 ** 3), { message: /exceeds the 4294967296-byte limit/ });
  assert.throws(() => RamBlock.create('bad name', 4096), { message: /RAM block name/ });
  const b = RamBlock.create('r', 4096);
  assert.throws(() => b.write(4000, new Uint8Array(200)), { message: /outside its 4096 bytes/ });
});

test('a 16 GiB guest is representable as four lazily allocated blocks', () => {
  const before = process.memoryUsage().rss;
  const blocks = [0, 1, 2, 3].map((i) => RamBlock.create(`ram${i}`, 4 * 1024 ** 3));
  blocks[3].write(4 * 1024 ** 3 - 1, Uint8Array.of(1));
  blocks[3].log.sync();
  assert.equal(blocks[3].log.everWrittenCount, 1);
  assert.ok(process.memoryUsage().rss - before < 256 * 1024 ** 2, 'untouched RAM is not committed');
});

test('nextMaybeDirty skips only words where neither the producer nor the client holds a bit', () => {
  const log = DirtyLog.create(4096);
  const c = log.register();
  assert.equal(c.nextMaybeDirty(0), 4096, 'all clean: the end of the block');
  log.markPage(1000);
  assert.equal(c.nextMaybeDirty(0), 992, 'an unsynced mark counts (its 32-page word)');
  assert.equal(c.nextMaybeDirty(995), 995, 'never before fromPage');
  assert.equal(c.nextMaybeDirty(1024), 4096);
  log.sync();
  assert.equal(c.nextMaybeDirty(0), 992, 'a synced, untaken bit counts');
  c.take(512, 512, new Int32Array(16));
  assert.equal(c.nextMaybeDirty(0), 4096, 'taken: clean again');
  log.markPage(4095);
  assert.equal(c.nextMaybeDirty(1000), 4064);
});

test("a writer's newly dirtied count: a mark that sets its page's bit counts once, again only after a harvest took the bit", () => {
  const block = RamBlock.create('ram0', 64 * 4096);
  const mem = new GuestMemory([block]);
  const client = block.log.register();
  mem.storeU32(3, 0, 1);
  mem.storeU32(3, 1, 2); // the same page, still dirty: no new count
  mem.storeWords(40, 0, 1, new Uint32Array([7, 8]));
  mem.writePage(41, new Uint32Array(1024).fill(9));
  mem.zeroPage(63);
  assert.equal(mem.takeNewlyDirtied(), 4, 'four pages newly dirty, page 3 counted once');
  assert.equal(mem.takeNewlyDirtied(), 0, 'taking resets the count');
  mem.storeU32(40, 0, 1);
  assert.equal(mem.takeNewlyDirtied(), 0, 'a page not yet harvested is not new');
  block.log.sync();
  mem.storeU32(40, 0, 2);
  mem.storeU32(3, 0, 3);
  assert.equal(mem.takeNewlyDirtied(), 2, 'after the harvest, a write dirties its page anew');
  block.log.sync();
  assert.equal(client.dirtyPages, 4, 'every page written reached the client, whatever the count said');
});
