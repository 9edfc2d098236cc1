/**
 * Every workload's step is restartable (workload.ts): run over RAM whose
 * pages are missing, each step that stops at a MissingPage signal is run
 * again after the page is installed, and the RAM, the saved state and the
 * count of pages done (written, or read) end exactly as in a run with
 * every page present. In one thread: the vCPU loop's catch-and-retry, done by hand.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createWorkload, type WorkloadSpec } from '../../src/guest/workloads/index.js';
import { GuestMemory } from '../../src/memory/guest-memory.js';
import { MissingPage } from '../../src/memory/missing-page.js';
import { PageInstaller } from '../../src/memory/page-installer.js';
import { PageWaits } from '../../src/memory/page-waits.js';
import { PAGE_SIZE } from '../../src/memory/page.js';
import { PresenceMap } from '../../src/memory/presence-map.js';
import { RamBlock } from '../../src/memory/ram-block.js';
import { fileLimit } from '../waits.js';

fileLimit(import.meta.url, 30_000);

const PAGES = 256;
const WRITES = 3000;
/** `fill` writes each page twice, then is done. */
const FILL_WRITES = 2 * PAGES - 10;
const ZERO = new Uint8Array(PAGE_SIZE);

/** Step `spec` until it has written WRITES pages; with `missing`, retry each step stopped by a missing page after installing it. */
function run(spec: WorkloadSpec, missing: boolean) {
  const writes = spec.kind === 'fill' ? FILL_WRITES : WRITES;
  const block = RamBlock.create('ram0', PAGES * PAGE_SIZE);
  const presence = PresenceMap.create(PAGES);
  // Two pages in three (not all: a sequential writer that skipped every page once would be back in step).
  if (missing) presence.markMissing(Array.from({ length: PAGES }, (_, p) => p).filter((p) => p % 3 !== 1));
  const mem = new GuestMemory([block], presence);
  const installer = new PageInstaller([block], presence, PageWaits.create(1));
  const w = createWorkload(spec, PAGES);
  let stops = 0;
  for (let now = 1e12; w.pagesDone < writes; now += 1e9) {
    try {
      w.step(mem, now, Math.min(64, writes - w.pagesDone));
    } catch (e) {
      if (!(e instanceof MissingPage)) throw e;
      stops++;
      assert.equal(installer.install(e.page, ZERO), 'installed', 'a stop is for a page not here yet');
    }
  }
  // The state but its clocks (the stopped run's clock ran on while it stopped): pacing credit, the next beat.
  const { pacer: _p, nextNs: _n, ...progress } = w.save();
  return { bytes: block.bytes, state: JSON.stringify(progress), pagesDone: w.pagesDone, stops };
}

const specs: WorkloadSpec[] = [
  { kind: 'idle', heartbeatPage: 9, intervalMs: 1 },
  { kind: 'stress', order: 'sequential', firstPage: 3, pages: 200, rateMiBps: 1e5 },
  { kind: 'stress', order: 'random', seed: 7 },
  { kind: 'fill', data: 'random', thenZero: true, fraction: 1 },
  { kind: 'sweep', firstPage: 5, pagesPerSec: 1e9 },
  { kind: 'touch', seed: 3, lane: 2 },
  { kind: 'read', firstPage: 2, pages: 250, pagesPerSec: 1e9 },
];

for (const spec of specs) {
  test(`${spec.kind} ${JSON.stringify(spec)}: stopped at missing pages and retried, it ends as with every page present`, () => {
    const plain = run(spec, false);
    const stopped = run(spec, true);
    assert.ok(spec.kind === 'idle' ? stopped.stops === 1 : stopped.stops > 10, `the steps stopped (${stopped.stops} times)`);
    assert.equal(stopped.pagesDone, plain.pagesDone);
    assert.equal(stopped.state, plain.state);
    assert.equal(Buffer.compare(stopped.bytes, plain.bytes), 0, 'the same RAM');
  });
}
