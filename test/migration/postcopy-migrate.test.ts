/**
 * Post-copy end to end over loopback (issue 14, DESIGN.md invariant 7):
 * a guest whose two vCPUs touch random pages switches to post-copy after
 * its first pass and runs at the destination with most pages missing; at
 * the end every page holds what a run without migration holds (replayed),
 * and the figures say the vCPUs waited and asked. A sweeping guest passes
 * the sweep checker after post-copy; a corrupted page is asked for again,
 * never installed; migrate_cancel is refused after GO; a destination that
 * dies during post-copy loses the guest, and both sides say so. A broken
 * link pauses it instead: postcopy-recovery.test.ts.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import type { Guest } from '../../src/guest/guest.js';
import type { IncomingMigration } from '../../src/migration/incoming.js';
import { Migration, type MigrationOptions } from '../../src/migration/migration.js';
import { bounded, fileLimit, nextEvent, until } from '../waits.js';
import { MiB, adopt, assertSweeps, destroyAll, guest, listen } from './helpers.js';
import { PAGES, differingPages, replayed, touchingGuest } from './touching.js';

fileLimit(import.meta.url, 120_000);
after(destroyAll);

const POSTCOPY: MigrationOptions = { postcopy: true };

/** Start post-copy when the first pass ends. */
function postcopyAfterFirstPass(m: Migration): void {
  m.once('pass', () => m.startPostcopy());
}

/** Until the destination's guest exists and is in post-copy. */
async function inPostcopy(incoming: IncomingMigration): Promise<Guest> {
  await until('the destination to be in post-copy', () => incoming.status === 'postcopy-active' || incoming.status === 'resumed', 30_000);
  return incoming.guest!;
}

test('invariant 7: two vCPUs touching random pages, post-copy after the first pass: every page as a run without migration leaves it', async () => {
  const touches = 400_000;
  const { g: src, initial, specs } = await touchingGuest(touches);
  const incoming = await listen('tcp', { idleTimeoutMs: 60_000 });
  const m = Migration.start(src, incoming.uri, { maxBandwidthBytesPerSec: 16 * MiB }, POSTCOPY);
  postcopyAfterFirstPass(m);
  const seen = new Set<string>();
  m.on('status', (s) => seen.add(s));
  const result = await bounded('the post-copy migration to end', m.done(), 60_000);
  assert.equal(result.status, 'completed', result.error ?? '');
  assert.ok(seen.has('postcopy-active'), `the source went through postcopy-active: ${[...seen].join(', ')}`);
  assert.equal(src.runState, 'postmigrate');
  const dest = await bounded('the destination to end', incoming.done(), 30_000);
  assert.equal(dest.status, 'resumed', dest.error ?? '');
  const g = adopt(dest.guest)!;
  const pc = dest.stats!.postcopy!;
  assert.ok(pc.missingAtGo > PAGES / 2, `most pages were missing at GO: ${pc.missingAtGo}`);
  assert.equal(pc.bad, 0);
  assert.equal(g.pages.missingPages, 0);
  await until('the touches to finish at the destination', () => src.pagesWritten + g.pagesWritten >= 2 * touches, 60_000);
  await g.pause();
  const bad = differingPages(g.blocks[0].bytes, replayed(initial, specs));
  assert.deepEqual(bad.slice(0, 10), [], `${bad.length} pages differ from the run without migration`);
  const f = g.pages.figures();
  assert.ok(f.vcpus.every((v) => v.pageWaits > 0), `each vCPU waited for pages: ${JSON.stringify(f.vcpus)}`);
  assert.ok(f.allBlockedNs > 0, 'all vCPUs were blocked together for a while');
  assert.ok(pc.requested > 0 && pc.latencySamples > 0 && pc.latencyP99Ms !== null, `pages were asked for: ${JSON.stringify(pc)}`);
  const s = result.stats.postcopy!;
  assert.ok(s.requests > 0 && s.sentPages >= s.missingAtGo && s.missingAtGo === pc.missingAtGo, JSON.stringify(s));
});

test('the sweep checker holds at the destination after post-copy started within the first pass', async () => {
  const src = await guest({ ram: 16 * MiB, vcpus: [{ kind: 'sweep', sweepsPerSec: 20 }] });
  await src.cont();
  const incoming = await listen('unix');
  const m = Migration.start(src, incoming.uri, { maxBandwidthBytesPerSec: 32 * MiB }, POSTCOPY);
  await nextEvent('the migration to be active', m, 'status', 10_000);
  await until('active', () => m.status === 'active', 10_000);
  m.startPostcopy();
  const result = await bounded('the migration to end', m.done(), 60_000);
  assert.equal(result.status, 'completed', result.error ?? '');
  const dest = await incoming.done();
  assert.equal(dest.status, 'resumed', dest.error ?? '');
  const g = adopt(dest.guest)!;
  assert.ok(dest.stats!.postcopy!.missingAtGo > 0);
  await until('the sweeper to run on at the destination', () => g.pagesWritten > 4096, 30_000);
  await g.pause();
  assertSweeps(g, 'destination after post-copy');
});

test('a corrupted post-copy page is asked for again, never installed; the migration completes whole', async () => {
  const { g: src } = await touchingGuest(100_000);
  await src.pause();
  const expected = Buffer.from(src.blocks[0].bytes);
  const incoming = await listen('tcp');
  // Post-copy from the start (postcopy-after, within the first pass) on a slow link: the paused guest cannot converge first.
  const m = Migration.start(src, incoming.uri, { postcopyAfterMs: 1, maxBandwidthBytesPerSec: 2 * MiB, downtimeLimitMs: 1 }, { ...POSTCOPY, corruptPostcopyPages: 3 });
  const result = await bounded('the migration to end', m.done(), 60_000);
  assert.equal(result.status, 'completed', result.error ?? '');
  const dest = await incoming.done();
  assert.equal(dest.status, 'resumed', dest.error ?? '');
  const g = adopt(dest.guest)!;
  assert.equal(dest.stats!.postcopy!.bad, 3, 'three bad copies arrived');
  assert.equal(Buffer.compare(g.blocks[0].bytes, expected), 0, 'every page is the source\'s: no bad copy was installed');
});

test('migrate-start-postcopy needs the capability; migrate_cancel is refused in post-copy; a dead destination loses the guest, said on both sides', async () => {
  const { g: src } = await touchingGuest(50_000_000);
  const incoming = await listen('tcp');
  const plain = Migration.start(src, incoming.uri, { maxBandwidthBytesPerSec: 4 * MiB });
  assert.throws(() => plain.startPostcopy(), { message: 'Enable postcopy with migrate_set_capability before the start of migration' });
  plain.cancel();
  await bounded('the plain migration to end', plain.done(), 10_000);
  incoming.cancel(); // it may never have been connected to
  await bounded('the first destination to end', incoming.done(), 10_000);

  const incoming2 = await listen('tcp');
  const m = Migration.start(src, incoming2.uri, { maxBandwidthBytesPerSec: 8 * MiB }, POSTCOPY);
  await until('active', () => m.status === 'active', 10_000);
  m.startPostcopy();
  const g = adopt(await inPostcopy(incoming2))!;
  await until('the destination to wait for pages', () => g.pages.figures().blockedVcpus > 0 || g.pages.missingPages === 0, 20_000);
  assert.equal(m.status, 'postcopy-active');
  assert.throws(() => m.cancel(), { message: 'Postcopy migration in progress, cannot cancel.' });
  incoming2.cancel(); // the destination dies
  const result = await bounded('the source to fail', m.done(), 30_000);
  assert.equal(result.status, 'failed');
  assert.equal(result.afterGo, true);
  assert.match(result.error ?? '', /the guest is lost/);
  assert.equal(src.runState, 'postmigrate', 'the source stays paused, never resumed by itself');
  const dest = await incoming2.done();
  assert.notEqual(dest.status, 'resumed');
  assert.match(dest.error ?? '', /the guest is lost here/);
});

test('QMP migrate-start-postcopy answers with QEMU\'s words; migrate refuses post-copy over file: and with verify', async () => {
  const { GuestController } = await import('../../src/control/controller.js');
  const { COMMANDS } = await import('../../src/control/qmp-commands.js');
  const g = await guest({ ram: 1 * MiB, vcpus: [] });
  const ctl = new GuestController(g);
  assert.throws(() => COMMANDS['migrate-start-postcopy'](ctl, {}), { message: 'Enable postcopy with migrate_set_capability before the start of migration' });
  COMMANDS['migrate-set-capabilities'](ctl, { capabilities: [{ capability: 'postcopy-ram', state: true }] });
  assert.throws(() => COMMANDS['migrate-start-postcopy'](ctl, {}), { message: 'Postcopy must be started after migration has been started' });
  assert.throws(() => COMMANDS['migrate-set-capabilities'](ctl, { capabilities: [{ capability: 'x-ferry-verify', state: true }] }),
    { message: /Postcopy is not compatible with x-ferry-verify/ });
  assert.throws(() => Migration.start(g, 'file:/tmp/never-written.ferry', {}, POSTCOPY), { message: /postcopy-ram cannot be used with file:/ });
  assert.throws(() => Migration.start(g, 'tcp:127.0.0.1:1', {}, { ...POSTCOPY, verify: true }), { message: /x-ferry-verify/ });
});
