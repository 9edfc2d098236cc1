/**
 * Verify mode's digest is kept as pages are sent and loaded (ram-digest.ts):
 * a verified migration reads only the RAM that was written, on both sides,
 * and the switchover reads none. Counted in page faults (every first read of
 * a never-touched page is one), not in time: the whole-RAM SHA-256 it
 * replaced faulted in every page of both copies.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { Migration } from '../../src/migration/migration.js';
import { MiB, adopt, assertSweeps, destroyAll, guest, listen } from './helpers.js';
import { bounded, fileLimit } from '../waits.js';

fileLimit(import.meta.url, 180_000);

after(destroyAll);

const GiB = 1024 * MiB;
const faults = () => process.resourceUsage().minorPageFault;

test('a verified migration of an 8 GiB guest that wrote 4 MiB reads only what was written: digests match, page faults far below RAM', async () => {
  const ramPages = (8 * GiB) / 4096;
  const src = await guest({ ram: 8 * GiB, vcpus: [{ kind: 'sweep', pages: 1024, sweepsPerSec: 50 }] });
  await src.cont();
  const incoming = await listen('tcp');
  const before = faults();
  const m = Migration.start(src, incoming.uri, { downtimeLimitMs: 300 }, { verify: true });
  const r = await bounded('the verified migration', m.done(), 120_000);
  assert.equal(r.status, 'completed', r.error ?? '');
  const dest = await bounded('the destination', incoming.done(), 30_000);
  const g = adopt(dest.guest)!;
  const faulted = faults() - before;
  assert.equal(dest.stats?.verified, true, 'the digest of what was sent equals the digest of what was loaded');
  console.log(`# ${faulted} page faults, ${r.stats.passes.length} passes, downtime ${r.stats.downtimeMs} ms`);
  // Both copies of 2 M pages read would be 4 M faults; the pages written are 1024 (and the threads' own memory).
  assert.ok(faulted < ramPages / 8, `${faulted} page faults during the migration, for ${ramPages} pages of RAM per side`);
  await g.pause();
  assertSweeps(g, 'destination');
});
