/**
 * Destination preallocation (preallocation.ts, written-map.ts): the source
 * sends its ever-written map to a destination that asks (PREALLOC), whose
 * threads touch exactly those pages while the pages arrive; what lands is
 * what the source held (invariant 2, on contents, with the sweep workload
 * and the digests), over one connection and over two channels; the cap
 * by free memory holds; post-copy and file: are refused with it.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import type { Guest } from '../../src/guest/guest.js';
import { GuestController } from '../../src/control/controller.js';
import { queryMigrate, type MigrateInfo } from '../../src/control/query-migrate.js';
import { IncomingMigration } from '../../src/migration/incoming.js';
import { Migration } from '../../src/migration/migration.js';
import { MiB, adopt, assertSweeps, destroyAll, guest, listen, sameRam } from './helpers.js';
import { fileLimit, until } from '../waits.js';

fileLimit(import.meta.url, 180_000);

after(destroyAll);

/** Pages the two sweeps write: [0, 1024) and [2048, 4096) of 6144; the rest is never written. */
const SWEPT_PAGES = 3072;

/** Two sweeping vCPUs with a gap between their ranges, each range written once at least (its ever-written map is then fixed). */
async function sweepSource(): Promise<Guest> {
  const g = await guest({
    ram: 24 * MiB,
    vcpus: [{ kind: 'sweep', pages: 1024, sweepsPerSec: 4 }, { kind: 'sweep', firstPage: 2048, pages: 2048, sweepsPerSec: 2 }],
  });
  await g.cont();
  const log = g.blocks[0].log;
  await until('every swept page to have been written once', () => {
    log.sync();
    return log.everWrittenCount === SWEPT_PAGES;
  }, 20_000);
  return g;
}

/**
 * Migrate `src` to a destination that preallocates, the link held at
 * 1 MiB/s until preallocation reached `until` (a state), then unlimited.
 */
async function migrate(src: Guest, incoming: IncomingMigration, channels: number, wait: (s: string | undefined) => boolean) {
  let arrived: Guest | null = null;
  let sameAtLoaded: boolean | null = null;
  incoming.on('guest', (d: Guest) => { arrived = d; });
  incoming.on('status', (to) => { if (to === 'loaded' && arrived !== null) sameAtLoaded = sameRam(arrived, src); });
  const held = { downtimeLimitMs: 300, maxBandwidthBytesPerSec: MiB, ...(channels > 0 ? { multifdChannels: channels } : {}) };
  const m = Migration.start(src, incoming.uri, held, { verify: true, multifd: channels > 0 });
  await until('preallocation to end while the link is held', () => wait(incoming.preallocation?.status), 30_000);
  // The map comes first: at 1 MiB/s the first pass (12 MiB of data) is still under way (on channels the map once waited for its SYNC).
  assert.equal(m.stats.passes.length, 0, 'preallocation ended within the first pass');
  m.setParameters({ maxBandwidthBytesPerSec: 0 });
  const result = await m.done();
  assert.equal(result.status, 'completed', result.error ?? '');
  const dest = await incoming.done();
  assert.equal(dest.status, 'resumed', dest.error ?? '');
  const g = adopt(dest.guest)!;
  assert.equal(sameAtLoaded, true, 'destination RAM when loaded equals source RAM at the pause');
  assert.equal(dest.stats?.verified, true, 'the digests of what was sent and what landed agree');
  assertSweeps(src, 'source at the pause');
  await g.pause();
  assertSweeps(g, 'destination');
  return dest;
}

for (const channels of [0, 2]) {
  const how = channels === 0 ? 'one connection' : `${channels} channels`;
  test(`${how}: the destination touches exactly the source's ever-written pages, on its threads, and every page lands as the source held it`, async () => {
    const src = await sweepSource();
    const incoming = await listen('tcp', { prealloc: 1, preallocThreads: 2 });
    const dest = await migrate(src, incoming, channels, (s) => s === 'completed');
    const f = incoming.preallocation!;
    assert.equal(f.status, 'completed');
    assert.equal(f.mapPages, SWEPT_PAGES, 'the map is the source\'s ever-written pages');
    assert.equal(f.touchedPages, SWEPT_PAGES, 'each touched once');
    assert.equal(f.threads, 2);
    assert.ok(f.capPages >= SWEPT_PAGES && f.ms >= 0, JSON.stringify(f));
    assert.equal(dest.stats?.channels, channels);
    assert.deepEqual(dest.stats?.prealloc, f, 'the loader\'s figures carry it too');
  });
}

test('the cap by free memory: with room for 100 pages, 100 are touched, it says capped, and the migration completes all the same', async () => {
  const src = await sweepSource();
  const incoming = await listen('tcp', { prealloc: 1, preallocThreads: 2, preallocMaxBytes: 100 * 4096 });
  await migrate(src, incoming, 0, (s) => s === 'capped');
  const f = incoming.preallocation!;
  assert.deepEqual([f.status, f.capPages, f.touchedPages, f.mapPages], ['capped', 100, 100, SWEPT_PAGES]);
});

test('post-copy is refused by a destination that preallocates, at the header, in words on both sides; the source runs on', async () => {
  const src = await sweepSource();
  const incoming = await listen('tcp', { prealloc: 1 });
  const m = Migration.start(src, incoming.uri, { downtimeLimitMs: 100 }, { postcopy: true });
  const result = await m.done();
  assert.equal(result.status, 'failed');
  assert.match(result.error ?? '', /post-copy .*preallocates \(--prealloc\)/);
  const dest = await incoming.done();
  assert.equal(dest.status, 'failed');
  assert.equal(dest.failure?.code, 'ERR_FERRY_REFUSED');
  assert.equal(src.runState, 'running');
});

test('file: with preallocation is refused before listening (a file carries no map)', async () => {
  await assert.rejects(IncomingMigration.listen('file:/tmp/ferry-never.mig', { prealloc: 1 }), /a file: stream has none/);
});

test('over QMP: a destination started with prealloc (ferry incoming --qmp --prealloc) asks for the map at migrate-incoming, and query-migrate there gives x-ferry-prealloc', async () => {
  const src = await sweepSource();
  const ctl = new GuestController(null, { incoming: { prealloc: 1, preallocThreads: 1 } });
  const incoming = await ctl.migrateIncoming('tcp:127.0.0.1:0');
  try {
    const m = Migration.start(src, incoming.uri, { downtimeLimitMs: 300 }, {});
    assert.equal((await m.done()).status, 'completed');
    const dest = await incoming.done();
    adopt(dest.guest);
    const info = queryMigrate(ctl) as MigrateInfo;
    assert.equal(info.status, 'completed');
    const f = info['x-ferry-prealloc'];
    assert.ok(f !== undefined, 'x-ferry-prealloc in the destination\'s query-migrate');
    assert.equal(f.mapPages, SWEPT_PAGES);
    assert.equal(f.threads, 1);
    assert.ok(['completed', 'stopped'].includes(f.status) && f.touchedPages <= SWEPT_PAGES, JSON.stringify(f));
  } finally {
    incoming.cancel();
  }
});
