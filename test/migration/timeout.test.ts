/**
 * The time budget (x-ferry-timeout, `--timeout`): a migration still
 * iterating when it runs out is cancelled by the policy with a coded
 * reason, and the source is never harmed (DESIGN.md invariants 3 and 6,
 * checked as the fault matrix does: the source runs on with its RAM intact
 * and its dirty logs released; the destination never runs the guest).
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { GuestController } from '../../src/control/controller.js';
import { queryMigrate, type MigrateInfo } from '../../src/control/query-migrate.js';
import type { Guest } from '../../src/guest/guest.js';
import { Migration } from '../../src/migration/migration.js';
import { MiB, RunLedger, assertDirtyLogsReleased, assertSweeps, destroyAll, guest, listen } from './helpers.js';
import { bounded, fileLimit, until } from '../waits.js';

fileLimit(import.meta.url, 120_000);
after(destroyAll);

/** A sweeping guest whose every page was written: each pass has all of it to send. */
async function sweeper(): Promise<Guest> {
  const src = await guest({ ram: 16 * MiB, vcpus: [{ kind: 'sweep' }] });
  await src.cont();
  await until('the guest to write all of its RAM', () => src.pagesWritten >= src.ramSize / 4096, 30_000);
  return src;
}

/** A destination whose guest, if one arrives, is watched for running; the source watched too. */
async function watchedDestination(src: Guest) {
  const ledger = new RunLedger();
  ledger.watch('source', src);
  const incoming = await listen('tcp', { onGuest: (g) => ledger.watch('destination', g) });
  return { ledger, incoming };
}

/** The checks after a migration ended before GO: the source runs on, intact; one copy ran. */
async function assertSourceUnharmed(src: Guest, ledger: RunLedger, what: string): Promise<void> {
  assert.equal(src.runState, 'running', `${what}: the source runs on`);
  const written = src.pagesWritten;
  await until(`${what}: the source's vCPUs to write on`, () => src.pagesWritten > written, 10_000);
  await src.pause();
  assertSweeps(src, `${what}: source RAM`);
  assertDirtyLogsReleased(src, what);
  assert.equal(ledger.overlaps(), 0, `${what}: two copies ran at once`);
  assert.equal(ledger.ran('destination'), false, `${what}: the destination never ran the guest`);
}

test('a migration that cannot converge is cancelled when its budget runs out: status cancelled, a coded reason with the trend, the source unharmed', async () => {
  const src = await sweeper();
  const { ledger, incoming } = await watchedDestination(src);
  const ctl = new GuestController(src); // the QMP server's path: migrate-set-parameters, migrate, query-migrate
  // A limit no switchover can meet (the fixed cost alone exceeds it), on a link that makes passes of ~0.5 s.
  ctl.setParameters({ downtimeLimitMs: 1, maxBandwidthBytesPerSec: 32 * MiB, timeoutMs: 2500 });
  const m = ctl.migrate(incoming.uri);
  const r = await bounded('the migration to end', m.done(), 60_000);
  assert.equal(r.status, 'cancelled');
  assert.equal(r.failure?.code, 'ERR_FERRY_MIGRATION_TIMEOUT');
  assert.match(r.error ?? '', /^timed out after \d+(\.\d+)? s \(timeout 2\.5 s\): (not converging|converging|too early to tell): remaining /);
  assert.ok(r.stats.totalTimeMs >= 2500, `cancelled only once the budget ran out: after ${r.stats.totalTimeMs} ms`);
  assert.ok(r.stats.passes.length >= 1 && r.stats.passes.every((p) => p.convergence !== null), 'every live pass carries the observation');
  const info = queryMigrate(ctl) as MigrateInfo;
  assert.equal(info.status, 'cancelled');
  assert.equal(info['x-ferry-error-code'], 'ERR_FERRY_MIGRATION_TIMEOUT');
  assert.equal(info['error-desc'], r.error);
  assert.deepEqual(info['x-ferry-convergence'], r.stats.passes.at(-1)!.convergence);
  const dest = await bounded('the destination to end', incoming.done(), 30_000);
  assert.equal(dest.guest, null, 'the destination discarded what it loaded');
  await assertSourceUnharmed(src, ledger, 'timeout');
});

test('the budget is read live: set during a migration (migrate-set-parameters), it cancels at once; a user cancel has no error-desc', async () => {
  const src = await sweeper();
  const { ledger, incoming } = await watchedDestination(src);
  const ctl = new GuestController(src);
  ctl.setParameters({ downtimeLimitMs: 1, maxBandwidthBytesPerSec: 32 * MiB });
  const m = ctl.migrate(incoming.uri);
  await until('a first pass with no budget (0: none)', () => m.stats.passes.length >= 1, 30_000);
  assert.equal(m.status, 'active');
  ctl.setParameters({ timeoutMs: 1 });
  const r = await bounded('the migration to end', m.done(), 30_000);
  assert.equal(r.status, 'cancelled');
  assert.equal(r.failure?.code, 'ERR_FERRY_MIGRATION_TIMEOUT');
  assert.match(r.error ?? '', /\(timeout 0\.001 s\)/);
  await bounded('the destination to end', incoming.done(), 30_000);
  await assertSourceUnharmed(src, ledger, 'timeout set live');

  // By contrast, migrate_cancel: cancelled too, with no words (as QEMU's) and its own code kept for callers.
  await src.resume();
  ctl.setParameters({ timeoutMs: 0 }); // kept across migrations, as QEMU's parameters
  const other = await listen('tcp');
  const user = ctl.migrate(other.uri);
  await until('the second migration to be active', () => user.status === 'active', 30_000);
  user.cancel();
  const u = await bounded('the cancelled migration to end', user.done(), 30_000);
  assert.equal(u.status, 'cancelled');
  assert.equal(u.failure?.code, 'ERR_FERRY_CANCELLED');
  assert.equal(u.error, null);
  assert.equal((queryMigrate(ctl) as MigrateInfo)['error-desc'], undefined);
  await bounded('the second destination to end', other.done(), 30_000);
});

test('a budget that runs out within a long first pass cancels there, before any pass ends', async () => {
  const src = await sweeper();
  const { ledger, incoming } = await watchedDestination(src);
  // 16 MiB at 4 MiB/s: the first pass takes at least 4 s; the budget is 1 s.
  const m = Migration.start(src, incoming.uri, { maxBandwidthBytesPerSec: 4 * MiB, timeoutMs: 1000 });
  const r = await bounded('the migration to end', m.done(), 30_000);
  assert.equal(r.status, 'cancelled');
  assert.equal(r.failure?.code, 'ERR_FERRY_MIGRATION_TIMEOUT');
  assert.equal(r.stats.passes.length, 0, 'no pass ended');
  assert.match(r.error ?? '', /^timed out after [\d.]+ s \(timeout 1 s\): too early to tell: no pass has ended yet$/);
  await bounded('the destination to end', incoming.done(), 30_000);
  await assertSourceUnharmed(src, ledger, 'timeout within a pass');
});

test('nothing is cancelled once the rule decided to switch over: a budget that runs out during the switchover lets it complete', async () => {
  const src = await guest({ ram: 8 * MiB, vcpus: [] });
  src.ram.write(4096, Buffer.alloc(4096, 7));
  await src.cont();
  const incoming = await listen('tcp');
  const budgetMs = 2000;
  let startedAt = 0;
  const m = Migration.start(src, incoming.uri, { timeoutMs: budgetMs }, {
    // Between LOADED and GO, hold the switchover until the budget has run out.
    onLoaded: () => until('the budget to run out during the switchover', () => performance.now() - startedAt > budgetMs + 100, 30_000).then(() => {}),
  });
  startedAt = performance.now();
  const r = await bounded('the migration to end', m.done(), 30_000);
  assert.equal(r.status, 'completed', r.error ?? '');
  assert.ok(r.stats.totalTimeMs > budgetMs, 'the budget ran out before the end');
  const dest = await bounded('the destination to end', incoming.done(), 30_000);
  await dest.guest?.destroy();
});
