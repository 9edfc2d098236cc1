/**
 * XBZRLE's page cache and per-page decision (src/migration/xbzrle-cache.ts):
 * sizes and refusals, hits, misses and eviction with QEMU's lifetime, each
 * rule of `plan` and `zeroPage` with its counters, the rates as QEMU
 * computes them, and a simulated migration (several passes, two blocks, a
 * cache far smaller than RAM) whose destination must end equal to the
 * source, byte for byte.
 */
import assert from 'node:assert/strict';
import { randomFillSync } from 'node:crypto';
import { test } from 'node:test';
import { PAGE_SIZE } from '../../src/memory/page.js';
import { XBZRLE_SKIP, XBZRLE_WHOLE, XbzrleCache, xbzrleCacheSlots } from '../../src/migration/xbzrle-cache.js';
import { XbzrleStats } from '../../src/migration/xbzrle-stats.js';
import { xbzrleDecode } from '../../src/wire/xbzrle.js';
import { fileLimit } from '../waits.js';

fileLimit(import.meta.url, 60_000);

const MiB = 1024 * 1024;
const randomPage = () => randomFillSync(new Uint8Array(PAGE_SIZE));

test('the size is rounded down to a power of two number of pages; below one page is refused in QEMU\'s words', () => {
  assert.equal(new XbzrleCache().sizeBytes, 64 * MiB, "QEMU's default, 64 MiB");
  assert.equal(xbzrleCacheSlots(100_000), 16, '24 pages round down to 16');
  assert.equal(xbzrleCacheSlots(PAGE_SIZE), 1);
  assert.equal(xbzrleCacheSlots(3 * MiB), 512);
  assert.throws(() => new XbzrleCache(4095), { code: 'ERR_FERRY_INVALID_ARGUMENT', message: /^Parameter 'xbzrle_cache_size' expects a power of two no less than the target page size \(4096 bytes\), got 4095$/ });
  assert.throws(() => xbzrleCacheSlots(Number.NaN), /got NaN/);
  assert.equal(xbzrleCacheSlots(2048 * MiB), 2 ** 19, 'the largest, 2 GiB');
  assert.throws(() => xbzrleCacheSlots(4096 * MiB), /xbzrle-cache-size 4294967296 exceeds ferry's limit of 2147483648 bytes/);
  const cache = new XbzrleCache(100_000);
  assert.equal(cache.stats.info()['cache-size'], 16 * PAGE_SIZE);
});

test('a hit finds the bytes inserted; another block\'s page of the same index is another page', () => {
  const cache = new XbzrleCache(16 * PAGE_SIZE);
  const bytes = randomPage();
  assert.equal(cache.lookup(0, 5), -1);
  assert.ok(cache.insert(0, 5, bytes));
  assert.ok(cache.lookup(0, 5) >= 0);
  assert.deepEqual(cache.cached(0, 5), bytes);
  assert.equal(cache.lookup(1, 5), -1);
  assert.equal(cache.cached(1, 5), null);
  cache.forget(0, 5);
  assert.equal(cache.lookup(0, 5), -1, 'forgotten');
});

test('eviction: a page in a slot used this generation or the last stays; an older one is replaced; a hit refreshes it', () => {
  const cache = new XbzrleCache(4 * PAGE_SIZE); // pages 0 and 4 of block 0 share a slot
  cache.generation = 1;
  const zero = randomPage();
  assert.ok(cache.insert(0, 0, zero));
  assert.equal(cache.insert(0, 4, randomPage()), false, 'fresh: same generation');
  cache.generation = 2;
  assert.equal(cache.insert(0, 4, randomPage()), false, 'fresh: the generation before');
  assert.ok(cache.lookup(0, 0) >= 0, 'a hit in generation 2 refreshes page 0');
  cache.generation = 3;
  assert.equal(cache.insert(0, 4, randomPage()), false, 'refreshed in generation 2');
  assert.deepEqual(cache.cached(0, 0), zero);
  cache.generation = 4;
  const four = randomPage();
  assert.ok(cache.insert(0, 4, four), 'two generations on, the slot goes to page 4');
  assert.equal(cache.lookup(0, 0), -1, 'page 0 is evicted');
  assert.deepEqual(cache.cached(0, 4), four);
});

test('resize keeps nothing (as QEMU), keeps the counters, and a refused size leaves the cache as it was', () => {
  const cache = new XbzrleCache(4 * PAGE_SIZE);
  cache.insert(0, 1, randomPage());
  cache.stats.cacheMiss = 7;
  assert.throws(() => cache.resize(100), /expects a power of two/);
  assert.ok(cache.lookup(0, 1) >= 0, 'still cached after a refused resize');
  cache.resize(8 * PAGE_SIZE);
  assert.equal(cache.sizeBytes, 8 * PAGE_SIZE);
  assert.equal(cache.stats.cacheSizeBytes, 8 * PAGE_SIZE);
  assert.equal(cache.lookup(0, 1), -1, 'emptied');
  assert.equal(cache.stats.cacheMiss, 7);
});

test('plan: a page not sent before goes whole and is not cached; a miss goes whole, counted, and is cached', () => {
  const cache = new XbzrleCache(16 * PAGE_SIZE);
  const now = randomPage();
  assert.equal(cache.plan(0, 3, now, false), XBZRLE_WHOLE);
  assert.equal(cache.cached(0, 3), null);
  assert.deepEqual(cache.stats.info(), { 'cache-size': 16 * PAGE_SIZE, bytes: 0, pages: 0, 'cache-miss': 0, 'cache-miss-rate': 0, 'encoding-rate': 0, overflow: 0 });
  assert.equal(cache.plan(0, 3, now, true), XBZRLE_WHOLE);
  assert.equal(cache.stats.cacheMiss, 1);
  assert.equal(cache.stats.pages, 0);
  assert.deepEqual(cache.cached(0, 3), now);
});

test('plan: a hit unchanged is skipped; changed, a delta that turns the destination\'s copy into the page; random, an overflow sent whole', () => {
  const cache = new XbzrleCache(16 * PAGE_SIZE);
  const dest = randomPage();
  cache.plan(0, 3, dest, true); // a miss: sent whole, the destination holds `dest`
  assert.equal(cache.plan(0, 3, dest.slice(), true), XBZRLE_SKIP);
  const now = dest.slice();
  now[100] ^= 0xff; now[101] ^= 0x0f;
  const n = cache.plan(0, 3, now, true);
  assert.equal(n, 4, 'zero run 100 (64), changed run 2 (02), its 2 bytes');
  xbzrleDecode(cache.delta.subarray(0, n), dest);
  assert.deepEqual(dest, now);
  assert.deepEqual(cache.cached(0, 3), now, 'the cache holds what was sent');
  const random = randomPage();
  assert.equal(cache.plan(0, 3, random, true), XBZRLE_WHOLE);
  assert.deepEqual(cache.cached(0, 3), random, 'an overflow sent whole is cached too');
  assert.deepEqual({ pages: cache.stats.pages, overflow: cache.stats.overflow, bytes: cache.stats.bytes, miss: cache.stats.cacheMiss },
    { pages: 3, overflow: 1, bytes: 4 + 3 + PAGE_SIZE, miss: 1 }, 'a delta costs itself + 3 (QEMU\'s header), an overflow a page');
});

test('plan in the last stage: a miss is not cached, a hit is encoded but the cache not updated', () => {
  const cache = new XbzrleCache(16 * PAGE_SIZE);
  const old = randomPage();
  assert.equal(cache.plan(0, 1, old, true, true), XBZRLE_WHOLE);
  assert.equal(cache.cached(0, 1), null);
  cache.plan(0, 1, old, true);
  const now = old.slice();
  now[0] ^= 1;
  assert.equal(cache.plan(0, 1, now, true, true), 3);
  assert.deepEqual(cache.cached(0, 1), old);
});

test('plan: a miss whose slot holds a fresh other page goes whole and leaves that page cached', () => {
  const cache = new XbzrleCache(PAGE_SIZE); // one slot
  const first = randomPage();
  cache.plan(0, 0, first, true);
  assert.equal(cache.plan(0, 9, randomPage(), true), XBZRLE_WHOLE);
  assert.deepEqual(cache.cached(0, 0), first);
  assert.equal(cache.stats.cacheMiss, 2);
});

test('zeroPage: after the first pass a zero page replaces a stale copy, so a small write to it goes as a delta against zeros', () => {
  const cache = new XbzrleCache(16 * PAGE_SIZE);
  cache.plan(0, 2, randomPage(), true);
  cache.zeroPage(0, 2, true);
  assert.deepEqual(cache.cached(0, 2), new Uint8Array(PAGE_SIZE));
  const now = new Uint8Array(PAGE_SIZE);
  now[4095] = 7;
  assert.equal(cache.plan(0, 2, now, true), 4, 'ff 1f 01 07');
  assert.deepEqual(Array.from(cache.delta.subarray(0, 4)), [0xff, 0x1f, 0x01, 0x07]);
  cache.zeroPage(0, 8, false);
  assert.equal(cache.cached(0, 8), null, 'not in the first pass');
});

test('rates as QEMU computes them per period: misses over pages sent, encoded bytes over what they cost', () => {
  const stats = new XbzrleStats(PAGE_SIZE);
  // QEMU's example: 2 pages encoded, one to 2 KiB, one skipped: 8 KiB / 2 KiB = 4.
  stats.pages = 2;
  stats.bytes = 2048;
  stats.cacheMiss = 3;
  stats.updateRates(10);
  assert.equal(stats.encodingRate, 4);
  assert.equal(stats.cacheMissRate, 0.3);
  stats.updateRates(0);
  assert.equal(stats.encodingRate, 4, 'a period that sent nothing changes nothing');
  stats.cacheMiss = 4;
  stats.updateRates(4);
  assert.equal(stats.encodingRate, 0, 'no page encoded in the period');
  assert.equal(stats.cacheMissRate, 0.25);
  stats.pages = 3;
  stats.updateRates(1);
  assert.equal(stats.encodingRate, 0, 'encoded but cost nothing (skipped)');
});

/** A tiny xorshift, so that the simulated migration is the same each run. */
function rng(seed: number): () => number {
  let x = seed | 1;
  return () => { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; return (x >>> 0) / 2 ** 32; };
}

for (const plainJs of [false, true]) {
  test(`a simulated migration through a small cache (evictions, zero pages, overflows, a last stage) leaves the destination equal to the source (${plainJs ? 'plain-JS encoder' : 'kernel'})`, () => {
    for (const seed of [1, 2, 3, 4, 5, 6]) {
      const random = rng(seed);
      const BLOCKS = 2, PAGES = 64;
      const source = Array.from({ length: BLOCKS }, () => new Uint8Array(PAGES * PAGE_SIZE));
      const dest = Array.from({ length: BLOCKS }, () => new Uint8Array(PAGES * PAGE_SIZE));
      const cache = new XbzrleCache(64 * PAGE_SIZE, { plainJs }); // half the pages: some evicted, most cached
      const outcomes = { whole: 0, delta: 0, skip: 0, zero: 0 };
      const slot = new Uint8Array(PAGE_SIZE); // the sender's stable copy of a page
      let before: Uint8Array[] = source.map((block) => block.slice()); // RAM as the previous pass began
      for (let pass = 1; pass <= 12; pass++) {
        cache.generation = pass;
        const atStart = source.map((block) => block.slice());
        const lastStage = pass === 12;
        for (let b = 0; b < BLOCKS; b++) {
          for (let p = 0; p < PAGES; p++) {
            const page = source[b].subarray(p * PAGE_SIZE, (p + 1) * PAGE_SIZE);
            const r = random();
            // The guest's writes since the last pass: a few bytes, a whole new page, zeroing, back to what
            // the page held a pass ago (what a stale cache would hold), the same bytes again, or nothing.
            if (pass === 1 || r < 0.3) for (let k = 0; k < 1 + random() * 20; k++) page[(random() * PAGE_SIZE) | 0] = (random() * 256) | 0;
            else if (r < 0.4) randomFillSync(page);
            else if (r < 0.5) page.fill(0);
            else if (r < 0.55) page.set(before[b].subarray(p * PAGE_SIZE, (p + 1) * PAGE_SIZE));
            else if (r >= 0.6) continue; // not dirty
            slot.set(page);
            const target = dest[b].subarray(p * PAGE_SIZE, (p + 1) * PAGE_SIZE);
            const sentBefore = pass > 1;
            if (slot.every((v) => v === 0)) {
              target.fill(0);
              cache.zeroPage(b, p, sentBefore);
              outcomes.zero++;
              continue;
            }
            const plan = cache.plan(b, p, slot, sentBefore, lastStage);
            if (plan === XBZRLE_WHOLE) { target.set(slot); outcomes.whole++; }
            else if (plan === XBZRLE_SKIP) outcomes.skip++;
            else { xbzrleDecode(cache.delta.subarray(0, plan), target); outcomes.delta++; }
          }
        }
        before = atStart;
      }
      for (let b = 0; b < BLOCKS; b++) assert.deepEqual(dest[b], source[b], `seed ${seed}: block ${b} arrived whole`);
      assert.ok(outcomes.delta > 20 && outcomes.whole > 20 && outcomes.skip > 0 && outcomes.zero > 10 && cache.stats.overflow > 5, `every path taken: ${JSON.stringify(outcomes)}, ${JSON.stringify(cache.stats.info())}`);
    }
  });
}
