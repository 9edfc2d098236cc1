/**
 * Post-copy on a destination guest's vCPUs (DESIGN.md invariant 7): two
 * vCPUs touching random pages of a mostly missing RAM, served from a
 * reference copy on request and by a background push, leave exactly what a
 * run with every page present leaves; a vCPU waiting for a page that never
 * comes can be paused, resumed and stopped; the figures add up; WebAssembly
 * program guests and library-API accesses of missing pages are refused.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { Guest } from '../../src/guest/guest.js';
import { VcpuControl } from '../../src/guest/vcpu-control.js';
import { replayTouches, type TouchSpec } from '../../src/guest/workloads/index.js';
import { GuestMemory } from '../../src/memory/guest-memory.js';
import { PAGE_SIZE } from '../../src/memory/page.js';
import type { PageRequest } from '../../src/memory/page-waits.js';
import { RamBlock } from '../../src/memory/ram-block.js';
import { xorshift32 } from '../../src/guest/workloads/prng.js';
import { loadProgram } from '../../src/wasm/instrument.js';
import { program, wat } from '../wasm/harness.js';
import { bounded, fileLimit, until } from '../waits.js';

fileLimit(import.meta.url, 60_000);

const PAGES = 2048;
/** The waits' safety re-check: long, so that only an install's or a request's wake can end a wait here. */
const NO_SAFETY_NET = 600_000;
const guests: Guest[] = [];
after(async () => {
  await Promise.all(guests.map((g) => g.destroy()));
});

/** Pseudo-random initial RAM: what the source held at switchover. */
function referenceRam(): Uint8Array {
  const words = new Uint32Array(PAGES * 1024);
  let x = 12345;
  for (let i = 0; i < words.length; i++) words[i] = x = xorshift32(x);
  return new Uint8Array(words.buffer);
}
const REFERENCE = referenceRam();
const refPage = (page: number) => REFERENCE.subarray(page * PAGE_SIZE, (page + 1) * PAGE_SIZE);

/** A destination: pages for which `missing` holds are missing and hold stale bytes; the rest hold the reference. */
async function destination(vcpus: TouchSpec[], missing: (page: number) => boolean): Promise<Guest> {
  const g = await Guest.create({ ram: PAGES * PAGE_SIZE, vcpus, incoming: true, pageWaitSafetyMs: NO_SAFETY_NET });
  guests.push(g);
  const bytes = g.blocks[0].bytes;
  bytes.set(REFERENCE);
  const gone: number[] = [];
  for (let p = 0; p < PAGES; p++) {
    if (!missing(p)) continue;
    gone.push(p);
    for (let i = p * PAGE_SIZE; i < (p + 1) * PAGE_SIZE; i++) bytes[i] ^= 0x5a; // stale: never to be read
  }
  assert.equal(g.pages.markMissing(gone), gone.length);
  return g;
}

/**
 * Serve requested pages from the reference, and push `push` unrequested ones
 * per round, until `done()` and every page is here (the end of post-copy).
 */
async function serve(g: Guest, done: () => boolean, push: number): Promise<{ served: number; requests: PageRequest[] }> {
  const stream = g.pages.requests();
  const requests: PageRequest[] = [];
  let served = 0;
  let cursor = 0;
  while (!done() || g.pages.missingPages > 0) {
    for (const r of await stream.nextRequests(5)) {
      requests.push(r);
      if (g.pages.install(r.page, refPage(r.page)) === 'installed') served++;
    }
    for (let k = 0; k < push; k++) {
      cursor = g.pages.presence.nextMissing(cursor);
      if (cursor < 0) cursor = g.pages.presence.nextMissing(0);
      if (cursor < 0) break;
      g.pages.install(cursor, refPage(cursor));
    }
  }
  return { served, requests };
}

/** What the vCPUs must leave: the touches replayed over the reference with no page missing. */
function expected(specs: TouchSpec[]): Uint8Array {
  const block = RamBlock.create('ram0', PAGES * PAGE_SIZE);
  block.bytes.set(REFERENCE);
  replayTouches(specs, new GuestMemory([block]));
  return block.bytes;
}

function differingPages(a: Uint8Array, b: Uint8Array): number[] {
  const out: number[] = [];
  for (let p = 0; p < PAGES; p++) {
    if (Buffer.compare(a.subarray(p * PAGE_SIZE, (p + 1) * PAGE_SIZE), b.subarray(p * PAGE_SIZE, (p + 1) * PAGE_SIZE)) !== 0) out.push(p);
  }
  return out;
}

test('invariant 7: two vCPUs touching random pages of a 90 % missing RAM leave exactly what a run with all pages leaves', async () => {
  const specs: TouchSpec[] = [
    { kind: 'touch', pages: PAGES, lane: 0, seed: 1, touches: 30_000 },
    { kind: 'touch', pages: PAGES, lane: 1, seed: 2, touches: 30_000 },
  ];
  const g = await destination(specs, (p) => p % 10 !== 0);
  await g.resume();
  const { served, requests } = await bounded('the touches to finish while pages are served',
    serve(g, () => g.pagesWritten >= 60_000, 2), 40_000);
  await g.pause();
  const bad = differingPages(g.blocks[0].bytes, expected(specs));
  assert.deepEqual(bad.slice(0, 10), [], `${bad.length} pages differ from the run with no missing pages`);
  const stats = g.vcpuStats();
  assert.ok(stats.every((s) => s.pageWaits > 0), 'each vCPU waited for pages');
  assert.ok(served > 0 && requests.some((r) => r.vcpu === 1) && requests.some((r) => r.vcpu === 0), 'pages were served on request, to both vCPUs');

  // The figures add up: no wait was interrupted, so one latency sample per wait, summing to the time waited.
  const f = g.pages.figures();
  const latencies = g.pages.requests().takeLatencies();
  const waits = stats.reduce((n, s) => n + s.pageWaits, 0);
  const waitedNs = stats.reduce((n, s) => n + s.pageWaitNs, 0);
  assert.equal(latencies.length, waits);
  assert.ok(Math.abs(latencies.reduce((a, b) => a + b, 0) - waitedNs) < 1e-3 * waitedNs + 1, 'latencies sum to the time waited');
  assert.deepEqual(f.vcpus, stats.map((s) => ({ pageWaitNs: s.pageWaitNs, pageWaits: s.pageWaits })));
  assert.ok(f.allBlockedNs <= Math.min(...stats.map((s) => s.pageWaitNs)) + 2, 'all blocked at once is at most what each waited');
  assert.equal(f.blockedVcpus, 0);
});

test('with one vCPU, all-blocked time is its own waiting time', async () => {
  const specs: TouchSpec[] = [{ kind: 'touch', pages: PAGES, seed: 3, touches: 2000 }];
  const g = await destination(specs, (p) => p % 2 === 0);
  await g.resume();
  await bounded('the touches to finish', serve(g, () => g.pagesWritten >= 2000, 8), 40_000);
  await g.pause();
  const [s] = g.vcpuStats();
  assert.ok(s.pageWaits > 0);
  assert.ok(Math.abs(g.pages.figures().allBlockedNs - s.pageWaitNs) <= s.pageWaits + 1, 'within a rounding of a ns per wait');
  assert.deepEqual(differingPages(g.blocks[0].bytes, expected(specs)), []);
});

test('a vCPU waiting for a page can be paused, resumed (it asks again, then completes after the install) and stopped', async () => {
  const specs: TouchSpec[] = [{ kind: 'touch', pages: PAGES, seed: 4, touches: 500 }];
  const g = await destination(specs, () => true);
  const stream = g.pages.requests();
  await g.resume();
  const [first] = await stream.nextRequests(20_000);
  assert.ok(first !== undefined, 'the vCPU asked for a page');
  await until('the vCPU to block', () => g.pages.figures().blockedVcpus === 1, 10_000);
  await g.pause();
  assert.equal(g.runState, 'paused');
  assert.equal(g.pages.figures().blockedVcpus, 0, 'the pause took the vCPU out of its wait');
  assert.equal(g.pagesWritten, 0);
  assert.equal(g.pages.isPresent(first.page), false);

  // Asked for before the vCPU runs, with no timeout to speak of: only the doorbell can end this wait.
  const asked = stream.nextRequests(600_000);
  await g.resume();
  const again = await bounded('the request made after the resume', asked, 20_000);
  assert.deepEqual(again.map((r) => r.page), [first.page], 'the step is retried: the same page is asked again');
  await bounded('the touches to finish', serve(g, () => g.pagesWritten >= 500, 8), 40_000);
  await g.stop();
  assert.deepEqual(differingPages(g.blocks[0].bytes, expected(specs)), []);
  assert.ok(g.vcpuStats()[0].pageWaits >= 2);
});

test('a vCPU waiting for a page that never comes is stopped, then quits at once (it acknowledges the exit)', async () => {
  const g = await destination([{ kind: 'touch', pages: PAGES, seed: 5 }], () => true);
  await g.resume();
  assert.equal((await g.pages.requests().nextRequests(20_000)).length, 1);
  await until('the vCPU to block', () => g.pages.figures().blockedVcpus === 1, 10_000);
  await g.stop();
  await g.resume();
  await until('the vCPU to block again', () => g.pages.figures().blockedVcpus === 1, 10_000);
  const [control] = g.vcpuControlBuffers().map((b) => new VcpuControl(b));
  await g.destroy();
  assert.equal(g.runState, 'shutdown');
  assert.ok(control.acked(control.request()), 'the waiting vCPU acknowledged the exit itself');
});

test('library-API reads and writes of a missing page are refused, not waited for; others go through', async () => {
  const g = await Guest.create({ ram: 64 * PAGE_SIZE, vcpus: [] });
  guests.push(g);
  g.pages.markMissing([5]);
  const refusal = { code: 'ERR_FERRY_POSTCOPY_UNSUPPORTED', message: /library-API writes: page 5 of the span 20490\+2 has not arrived, and the main thread must never block/ };
  assert.throws(() => g.ram.write(5 * PAGE_SIZE + 10, new Uint8Array([1, 2])), refusal);
  assert.throws(() => g.ram.update(5 * PAGE_SIZE, 8, () => 0), { code: 'ERR_FERRY_POSTCOPY_UNSUPPORTED' });
  assert.throws(() => g.ram.read(3 * PAGE_SIZE, 3 * PAGE_SIZE), { code: 'ERR_FERRY_POSTCOPY_UNSUPPORTED', message: /library-API reads: page 5/ });
  assert.ok(g.blocks[0].bytes.subarray(5 * PAGE_SIZE, 6 * PAGE_SIZE).every((b) => b === 0), 'nothing was written');
  g.ram.write(4 * PAGE_SIZE, new Uint8Array([7]));
  assert.deepEqual([...g.ram.read(4 * PAGE_SIZE, 1)], [7]);
  await g.cont();
  assert.throws(() => g.pages.markMissing([6]), { code: 'ERR_FERRY_INVALID_STATE', message: /only before the guest first runs/ });
});

test('post-copy is refused for WebAssembly program guests, saying why', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-postcopy-'));
  try {
    const bytes = wat(program('(func (export "_start") (i32.store (i32.const 0) (i32.const 42)))', '1 4'));
    const instrumented = await loadProgram(bytes, { maxMemoryBytes: 4 * 65536, unwindBufferBytes: 4096 }, { dir });
    const g = await Guest.create({ program: { instrumented, wasi: { args: ['t'], env: [], seed: 1n } }, incoming: true });
    guests.push(g);
    assert.throws(() => g.pages.markMissing([0]), {
      code: 'ERR_FERRY_POSTCOPY_UNSUPPORTED', message: /^post-copy is not supported for WebAssembly program guests: their loads and stores are not checked/,
    });
    assert.equal(g.pages.missingPages, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
