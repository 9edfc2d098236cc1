/**
 * dirty-limit in a migration (issue 14): a guest with one writing vCPU and
 * one reading vCPU, migrated over a slow link (max-bandwidth) so that it
 * cannot converge by itself. dirty-limit throttles only the writer, as each
 * vCPU's own accounting shows (Stat.ThrottleNs / ThrottleAskedNs: the
 * writer slept for its throttle, the reader never did); query-migrate
 * reports it while engaged; the throttle ends with the migration whatever
 * the outcome, each vCPU given back its own; and the capability is refused
 * with auto-converge and for a WebAssembly program. No timing assertions:
 * every wait is for a state.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { GuestController } from '../../src/control/controller.js';
import { queryMigrate, type MigrateInfo } from '../../src/control/query-migrate.js';
import type { Guest } from '../../src/guest/guest.js';
import { Migration, type MigrationOptions } from '../../src/migration/migration.js';
import type { MigrationParameters } from '../../src/migration/parameters.js';
import { bounded, fileLimit, until } from '../waits.js';
import { adopt, assertSweeps, destroyAll, guest, listen, MiB } from './helpers.js';

fileLimit(import.meta.url, 150_000);
after(destroyAll);

/**
 * 16 MiB: vCPU 0 sweeps its 8 MiB at 64 MiB/s of pages, vCPU 1 reads its
 * 8 MiB at 80 MiB/s of pages and writes nothing. At 2 MiB/s the link sends
 * a pass of the writer's pages in about 4 s while the writer dirties all of
 * them again in an eighth of a second: without a remedy it never converges.
 */
async function writerAndReader(): Promise<Guest> {
  const g = await guest({
    ram: 16 * MiB,
    vcpus: [{ kind: 'sweep', firstPage: 0, pages: 2048, pagesPerSec: 16_384 }, { kind: 'read', firstPage: 2048, pages: 2048, pagesPerSec: 20_480 }],
  });
  await g.cont();
  return g;
}
const SLOW: Partial<MigrationParameters> = { maxBandwidthBytesPerSec: 2 * MiB, downtimeLimitMs: 50, vcpuDirtyLimitPeriodMs: 200 };
const LIMIT: MigrationOptions = { dirtyLimit: true, verify: true };

const throttles = (g: Guest) => g.vcpuThrottles;

test('dirty-limit throttles only the writing vCPU: the writer sleeps for its throttle, the reader never does; reported while engaged; ended at completion', async () => {
  const src = await writerAndReader();
  const ctl = new GuestController(src);
  const incoming = await listen('tcp');
  const m = Migration.start(src, incoming.uri, SLOW, LIMIT);
  ctl.migration = m;
  try {
    await until('the writer to sleep for its throttle', () => src.vcpuStats()[0].throttleNs > 0, 60_000);
    const info = queryMigrate(ctl) as MigrateInfo;
    assert.equal(typeof info['dirty-limit-throttle-time-per-round'], 'number', 'QEMU 8.1 field while engaged');
    assert.equal(typeof info['dirty-limit-ring-full-time'], 'number');
    const vcpus = info['x-ferry-vcpu-dirty-limit']!;
    assert.deepEqual(vcpus.map((v) => v['limit-rate']), [1, 1], 'every vCPU has the quota vcpu-dirty-limit');
    assert.equal(vcpus[1]['current-rate'], 0, 'the reader dirties nothing');
    assert.equal(info['cpu-throttle-percentage'], undefined, 'no CPU throttle of all vCPUs');
    const [writer, reader] = src.vcpuStats();
    assert.ok(writer.throttleAskedNs > 0 && writer.pagesDirtied > 0);
    assert.equal(throttles(src)[1], 0, 'the reader is not throttled');
    assert.equal(reader.throttleNs, 0, 'the reader never slept for a throttle');
    assert.equal(reader.throttleAskedNs, 0);
    assert.equal(reader.pagesDirtied, 0);
    assert.equal(reader.pagesWritten, 0);
    assert.ok(reader.pagesRead > 0, 'the reader read on');
    m.setParameters({ maxBandwidthBytesPerSec: 0 }); // now it may finish
    const result = await bounded('the migration to complete once the link is fast', m.done(), 60_000);
    assert.equal(result.status, 'completed', result.error ?? '');
  } finally {
    m.cancel();
  }
  assert.deepEqual(throttles(src), [0, 0], "the source's vCPUs are not throttled any more");
  assert.equal(m.dirtyLimitFigures, null, 'nothing reported after the end');
  assert.equal(src.vcpuStats()[1].throttleNs, 0, 'the reader never slept for a throttle, to the end');
  const dest = await incoming.done();
  assert.equal(dest.status, 'resumed', dest.error ?? '');
  assert.equal(dest.stats?.verified, true);
  const g = adopt(dest.guest)!;
  assert.deepEqual(throttles(g), [0, 0], 'the destination never was throttled');
  await g.pause();
  assertSweeps(g, 'destination after dirty-limit');
});

test("the limit ends when the migration is cancelled, and when it fails; each vCPU's own throttle is kept under it and given back", async () => {
  for (const end of ['cancel', 'fail'] as const) {
    const src = await writerAndReader();
    if (end === 'cancel') src.throttleVcpu(1, 7); // the user's own, on the reader only
    const own = throttles(src);
    const incoming = await listen('tcp');
    const m = Migration.start(src, incoming.uri, SLOW, LIMIT);
    await until(`the writer throttled before the ${end}`, () => throttles(src)[0] > own[0], 60_000);
    assert.equal(throttles(src)[1], own[1], `${end}: the reader keeps its own throttle under dirty-limit`);
    if (end === 'cancel') m.cancel();
    else incoming.cancel();
    const result = await bounded(`the migration to end after the ${end}`, m.done(), 30_000);
    assert.equal(result.status, end === 'cancel' ? 'cancelled' : 'failed', `${end}: ${result.error ?? ''}`);
    assert.deepEqual(throttles(src), own, `${end}: the limit ended, each vCPU's own throttle given back`);
    assert.equal(src.runState, 'running', `${end}: the source runs on`);
    await incoming.done().catch(() => {});
  }
});

test('dirty-limit is refused with auto-converge (QEMU\'s words) before anything starts', async () => {
  const src = await writerAndReader();
  assert.throws(() => Migration.start(src, 'tcp:127.0.0.1:1', SLOW, { dirtyLimit: true, autoConverge: true }), {
    code: 'ERR_FERRY_INVALID_ARGUMENT', message: 'dirty-limit conflicts with auto-converge either of then available currently',
  });
  assert.deepEqual(throttles(src), [0, 0]);
  assert.equal(src.runState, 'running');
});
