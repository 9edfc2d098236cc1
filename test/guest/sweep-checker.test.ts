/**
 * The sweep checker reads only pages the guest ever wrote (the rest hold
 * zeros, known without reading), and still names every lost write. The
 * large case counts pages read and page faults (a first read of a
 * never-touched page is one), never time.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { Guest } from '../../src/guest/guest.js';
import { checkSweep } from '../../src/guest/sweep-checker.js';
import type { SweepState } from '../../src/guest/workloads/sweep.js';
import { LAST_WORD } from '../../src/guest/workloads/sweep.js';
import { PAGE_SIZE } from '../../src/memory/page.js';
import { fileLimit, until } from '../waits.js';

fileLimit(import.meta.url, 120_000);

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const guests: Guest[] = [];
after(async () => {
  await Promise.all(guests.map((g) => g.destroy()));
});

async function guest(...args: Parameters<typeof Guest.create>): Promise<Guest> {
  const g = await Guest.create(...args);
  guests.push(g);
  return g;
}

const sweepState = (first: number, pages: number, value: number, position: number): SweepState =>
  ({ kind: 'sweep', first, pages, value, position, pacer: null });

/** Write counter `value` into pages [first, first+count), as the sweep would. */
function writeCounters(g: Guest, first: number, count: number, value: number): void {
  const words = new Uint32Array(PAGE_SIZE / 4);
  words[0] = words[LAST_WORD] = value;
  for (let p = first; p < first + count; p++) g.ram.write(p * PAGE_SIZE, new Uint8Array(words.buffer));
}

test('a 16 GiB guest whose sweep wrote a few thousand pages is checked reading only those pages', async () => {
  const g = await guest({ ram: 16 * GiB, vcpus: [{ kind: 'sweep', pagesPerSec: 100_000 }] });
  await g.cont();
  await until('the sweep to write 3000 pages', () => g.pagesWritten >= 3000, 30_000);
  await g.pause();
  const state = g.vcpuStates()[0].workload as SweepState;
  assert.equal(state.value, 0, 'still in its first sweep');
  const faultsBefore = process.resourceUsage().minorPageFault;
  const rssBefore = process.memoryUsage().rss;
  const check = checkSweep(g.memory, state);
  const faults = process.resourceUsage().minorPageFault - faultsBefore;
  const rssGrowth = process.memoryUsage().rss - rssBefore;
  const everWritten = g.blocks.reduce((n, b) => n + b.log.everWrittenCount, 0);
  assert.ok(check.ok, check.errors.join('; '));
  assert.equal(check.pagesChecked, (16 * GiB) / PAGE_SIZE);
  assert.equal(check.pagesRead, everWritten, 'exactly the pages ever written were read');
  assert.ok(check.pagesRead >= 3000 && check.pagesRead < check.pagesChecked / 100, `${check.pagesRead} pages read`);
  assert.ok(faults < check.pagesChecked / 64, `${faults} page faults while checking ${check.pagesChecked} pages`);
  assert.ok(rssGrowth < 64 * MiB, `resident memory grew ${rssGrowth} bytes`);
});

test('a lost write is named whether or not its page was ever written; unwritten pages due zero pass unread', async () => {
  const g = await guest({ ram: 8 * MiB, vcpus: [] });
  writeCounters(g, 10, 20, 1); // the sweep from page 10 reached page 30 in its first pass (value 0)
  const good = checkSweep(g.memory, sweepState(10, 1000, 0, 20));
  assert.deepEqual({ ok: good.ok, read: good.pagesRead, checked: good.pagesChecked }, { ok: true, read: 20, checked: 1000 });
  // The state says the sweep got to page 35: pages 30..34 were never written, their writes lost.
  const lost = checkSweep(g.memory, sweepState(10, 1000, 0, 25));
  assert.equal(lost.ok, false);
  assert.equal(lost.badPages, 5);
  assert.equal(lost.pagesRead, 20);
  assert.match(lost.errors[0], /^page 30: counter 0\/0 \(never written\), expected 1 \(sweep value 0, step at page 35\)$/);
  // A written page holding the wrong counter.
  writeCounters(g, 17, 1, 7);
  const wrong = checkSweep(g.memory, sweepState(10, 1000, 0, 20));
  assert.equal(wrong.badPages, 1);
  assert.match(wrong.errors[0], /^page 17: counter 7\/7, expected 1/);
  // Value 1, step at the start: every page of the range is due 1; page 17 holds 7, pages 30..39 were never written.
  const second = checkSweep(g.memory, sweepState(10, 30, 1, 0));
  assert.equal(second.badPages, 11);
  assert.equal(second.pagesRead, 20);
});

test("a sweep with data 'random' fills each page with random words on its first sweep, then changes only the counters; the checker passes it", async () => {
  const g = await guest({ ram: 4 * MiB, vcpus: [{ kind: 'sweep', pages: 64, sweepsPerSec: 200, data: 'random' }] });
  await g.cont();
  await until('two sweeps of the 64 pages and more', () => g.pagesWritten >= 64 * 3, 30_000);
  await g.pause();
  const state = g.vcpuStates()[0].workload as SweepState;
  const check = checkSweep(g.memory, state);
  assert.ok(check.ok, check.errors.join('; '));
  const page = (p: number) => new Uint32Array(g.ram.read(p * PAGE_SIZE, PAGE_SIZE).slice().buffer);
  const a = page(5);
  const b = page(6);
  const inner = (w: Uint32Array) => w.subarray(1, LAST_WORD);
  assert.ok(inner(a).filter((x) => x === 0).length < 4, 'the page between its counters is random, not zero');
  assert.notDeepEqual(inner(a), inner(b), 'each page its own random words');
  assert.ok(a[0] >= 2 && a[0] === a[LAST_WORD], `counters ${a[0]}, ${a[LAST_WORD]}`);
  await assert.rejects(guest({ ram: 4 * MiB, vcpus: [{ kind: 'sweep', data: 'text' as 'zero' }] }), /sweep: data/);
});
