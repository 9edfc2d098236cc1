/**
 * The presence map, the installer and the page-wait board in one thread:
 * an access of a missing page touches nothing; an install stores, marks
 * and publishes, and refuses a page that is here; the all-blocked time and
 * the request stream on constructed cases. (Waiting vCPUs in threads:
 * test/guest/postcopy-pages.test.ts.)
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GuestMemory } from '../../src/memory/guest-memory.js';
import { MissingPage } from '../../src/memory/missing-page.js';
import { PageInstaller } from '../../src/memory/page-installer.js';
import { PageRequests } from '../../src/memory/page-requests.js';
import { PageWaits } from '../../src/memory/page-waits.js';
import { PAGE_SIZE } from '../../src/memory/page.js';
import { PresenceMap } from '../../src/memory/presence-map.js';
import { RamBlock } from '../../src/memory/ram-block.js';
import { fileLimit } from '../waits.js';

fileLimit(import.meta.url, 30_000);

function setup(pages = 100) {
  const blocks = [RamBlock.create('a', 40 * PAGE_SIZE), RamBlock.create('b', (pages - 40) * PAGE_SIZE)];
  const presence = PresenceMap.create(pages);
  const waits = PageWaits.create(2);
  return { blocks, presence, waits, mem: new GuestMemory(blocks, presence), installer: new PageInstaller(blocks, presence, waits) };
}

const pageOf = (fill: number) => new Uint8Array(PAGE_SIZE).fill(fill);

function signalOf(fn: () => unknown): MissingPage {
  try {
    fn();
  } catch (e) {
    if (e instanceof MissingPage) return e;
    throw e;
  }
  assert.fail('expected a MissingPage signal');
}

test('every page is present at first; marking pages missing counts each once; the last partial word is right', () => {
  const { presence } = setup(100);
  assert.equal(presence.missingPages, 0);
  assert.equal(presence.nextMissing(), -1, 'no page past the 100th is reported missing');
  assert.equal(presence.markMissing([3, 3, 64, 99]), 3);
  assert.equal(presence.markRangeMissing(60, 8), 7, 'page 64 was missing already');
  assert.equal(presence.missingPages, 10);
  assert.equal(presence.nextMissing(), 3);
  assert.equal(presence.nextMissing(4), 60);
  assert.equal(presence.nextMissing(68), 99);
  assert.ok(presence.isPresent(2) && !presence.isPresent(3) && presence.isPresent(98));
  assert.throws(() => presence.markMissing([100]), { code: 'ERR_FERRY_INVALID_ARGUMENT', message: /page 100 is outside guest RAM of 100 pages/ });
});

test('an access of a missing page, read or write, throws MissingPage before it touches the page or its dirty bit', () => {
  const { mem, presence, blocks } = setup();
  const global = 45; // block b, page 5
  presence.markMissing([global]);
  blocks[1].bytes.fill(7, 5 * PAGE_SIZE, 6 * PAGE_SIZE); // what a stale copy would hold
  const client = blocks[1].log.register();
  const words = new Uint32Array(1024).fill(9);
  const accesses: [string, () => unknown][] = [
    ['readU32', () => mem.readU32(global, 3)],
    ['storeU32', () => mem.storeU32(global, 3, 1)],
    ['storeWords', () => mem.storeWords(global, 0, 2, words.subarray(0, 4))],
    ['writePage', () => mem.writePage(global, words)],
    ['zeroPage', () => mem.zeroPage(global)],
  ];
  for (const [name, access] of accesses) assert.equal(signalOf(access).page, global, name);
  assert.ok(blocks[1].bytes.subarray(5 * PAGE_SIZE, 6 * PAGE_SIZE).every((b) => b === 7), 'the page is untouched');
  blocks[1].log.sync();
  assert.equal(client.dirtyPages, 0, 'no dirty mark');
  mem.storeU32(44, 0, 1); // the neighbour is present
  assert.throws(() => mem.readU32(100, 0), { code: 'ERR_FERRY_INVALID_ARGUMENT', message: /outside guest RAM/ });
});

test('an install stores the bytes, marks the page written, makes it present; a present page is refused and kept', () => {
  const { mem, presence, installer, blocks } = setup();
  presence.markMissing([10, 45]);
  const ever = blocks[1].log;
  assert.equal(installer.install(45, pageOf(0xab)), 'installed');
  assert.equal(presence.missingPages, 1);
  assert.equal(mem.readU32(45, 1023), 0xabababab);
  ever.sync();
  assert.ok(ever.isEverWritten(5), 'the installed page is ever-written');
  mem.storeU32(45, 0, 1234); // the guest writes it
  assert.equal(installer.install(45, pageOf(0xcd)), 'present');
  assert.equal(mem.readU32(45, 0), 1234, 'the guest\'s write is kept');
  assert.equal(mem.readU32(45, 1), 0xabababab);
  assert.equal(installer.install(3, pageOf(1)), 'present', 'a page never missing is refused too');
  assert.equal(mem.readU32(3, 0), 0);
  assert.throws(() => installer.install(10, new Uint8Array(100)), { code: 'ERR_FERRY_INVALID_ARGUMENT', message: /expected 4096 bytes, got 100/ });
  assert.throws(() => installer.install(100, pageOf(1)), { code: 'ERR_FERRY_INVALID_ARGUMENT', message: /page 100 is outside/ });
  assert.equal(presence.isPresent(10), false, 'a refused install leaves the page missing');
});

test('a claimed page is refused to a second installer while the first writes it', () => {
  const { presence } = setup();
  presence.markMissing([7]);
  assert.equal(presence.claim(7), 'claimed');
  assert.equal(presence.claim(7), 'installing');
  assert.equal(presence.isPresent(7), false, 'claimed is not present');
  presence.publish(7);
  assert.equal(presence.claim(7), 'present');
  assert.equal(presence.missingPages, 0);
});

test('all-blocked time counts only the time every vCPU waited at once (a constructed case)', () => {
  const waits = PageWaits.create(2);
  waits.enterBlocked(100);
  assert.equal(waits.allBlockedNs(1000), 0, 'one of two is not all');
  waits.enterBlocked(150);
  assert.equal(waits.allBlockedNs(300), 150, 'a period under way counts to now');
  waits.leaveBlocked(400);
  waits.leaveBlocked(500);
  waits.enterBlocked(600);
  waits.enterBlocked(700);
  waits.leaveBlocked(800);
  assert.equal(waits.blocked, 1);
  waits.leaveBlocked(900);
  assert.equal(waits.allBlockedNs(10_000), 250 + 100);
  assert.equal(waits.blocked, 0);
});

test('a wait for a present page ends at once with one latency sample; the consumer reads what was asked', async () => {
  const { presence, waits } = setup();
  const requests = new PageRequests(waits);
  assert.deepEqual(await requests.nextRequests(0), [], 'no request yet');
  const out = waits.wait(1, 12, presence, () => false);
  assert.equal(out.present, true);
  const latencies = requests.takeLatencies();
  assert.equal(latencies.length, 1);
  assert.ok(latencies[0] >= 0 && latencies[0] === out.waitedNs, 'the sample is the wait');
  assert.deepEqual(requests.takeLatencies(), [], 'taken once');
  assert.equal(waits.allBlockedNs(), 0, 'one of two vCPUs waited');
  // A wait that is interrupted publishes its request and leaves no sample.
  presence.markMissing([13]);
  const cut = waits.wait(0, 13, presence, () => true);
  assert.equal(cut.present, false);
  assert.deepEqual(requests.takeLatencies(), []);
  assert.equal(waits.blocked, 0);
});

test('the board\'s settings and clock reach a second view of it; bad settings are refused', () => {
  const waits = PageWaits.create(3, 600_000);
  const other = new PageWaits(waits.toShared());
  assert.equal(other.vcpus, 3);
  assert.equal(other.safetyMs, 600_000);
  const a = waits.nowNs();
  const b = other.nowNs();
  assert.ok(a >= 0 && b >= a && b - a < 60e9, 'one clock, from the board\'s creation');
  assert.throws(() => PageWaits.create(65), { code: 'ERR_FERRY_INVALID_ARGUMENT', message: /vCPU count must be an integer in \[0, 64\], got 65/ });
  assert.throws(() => PageWaits.create(1, 0), { code: 'ERR_FERRY_INVALID_ARGUMENT', message: /safety re-check .* got 0/ });
});

test('markRangeMissing, a word at a time, marks exactly what markMissing page by page marks, and counts the same', () => {
  let x = 99;
  const next = (n: number) => {
    x = (x * 1103515245 + 12345) >>> 0;
    return x % n;
  };
  const byRange = PresenceMap.create(1000);
  const byPage = PresenceMap.create(1000);
  for (let i = 0; i < 200; i++) {
    const first = next(1000);
    const count = next(1000 - first + 1);
    const pages = Array.from({ length: count }, (_, k) => first + k);
    assert.equal(byRange.markRangeMissing(first, count), byPage.markMissing(pages), `range ${first}+${count}`);
    assert.equal(byRange.missingPages, byPage.missingPages);
  }
  for (let p = 0; p < 1000; p++) assert.equal(byRange.isPresent(p), byPage.isPresent(p), `page ${p}`);
  assert.ok(byRange.missingPages > 500, 'the ranges covered most pages');
});
