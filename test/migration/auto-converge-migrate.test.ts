/**
 * auto-converge in a migration (issue 14): a sweeping guest that dirties
 * faster than loopback carries completes only because the throttle steps
 * up; query-migrate reports the throttle while it is on;
 * the throttle ends with the migration whatever the outcome (completed,
 * cancelled, failed), and the guest's RAM arrives whole (invariant 2, the
 * sweep checker).
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { Migration, type MigrationOptions } from '../../src/migration/migration.js';
import type { MigrationParameters } from '../../src/migration/parameters.js';
import { bounded, fileLimit, until } from '../waits.js';
import { adopt, assertSweeps, busyGuest, destroyAll, listen, throttleOf } from './helpers.js';

fileLimit(import.meta.url, 120_000);
after(destroyAll);

const SLOW: Partial<MigrationParameters> = {
  downtimeLimitMs: 10,
  // Steps from 50 % to 99 % in two (QEMU's defaults take nine, 2 s each, to get there).
  cpuThrottleInitialPercent: 50, cpuThrottleIncrementPercent: 49,
};
const AUTO: MigrationOptions = { autoConverge: true, verify: true };

test('a guest that outpaces the link completes with auto-converge: the throttle steps up, is reported, and ends with the migration', async () => {
  const src = await busyGuest();
  const incoming = await listen('tcp');
  const m = Migration.start(src, incoming.uri, SLOW, AUTO);
  const seen = new Set<number>();
  m.on('stats', () => seen.add(m.cpuThrottlePercentage ?? -1));
  const result = await bounded('the throttled migration to end', m.done(), 90_000);
  assert.equal(result.status, 'completed', result.error ?? '');
  assert.ok(seen.has(0) && seen.has(50), `reported from 0, then the throttle's first step: ${[...seen].join(', ')}`);
  assert.ok(result.stats.downtimeMs !== null && result.stats.downtimeMs > 0);
  const dest = await incoming.done();
  assert.equal(dest.status, 'resumed', dest.error ?? '');
  assert.equal(dest.stats?.verified, true);
  assert.equal(m.cpuThrottlePercentage, null, 'no throttle reported after the end');
  assert.equal(throttleOf(src), 0, "the source's vCPUs are not throttled any more");
  const g = adopt(dest.guest)!;
  assert.equal(throttleOf(g), 0, 'the destination never was');
  await g.pause();
  assertSweeps(g, 'destination after the throttled migration');
  assert.ok(src.vcpuStats()[0].throttleNs > 0, "the source's vCPU slept its throttle");
});

test("the throttle ends when the migration is cancelled, and when it fails; a throttle of the user's own is kept under it and given back", async () => {
  for (const end of ['cancel', 'fail'] as const) {
    const src = await busyGuest();
    const own = end === 'cancel' ? 10 : 0;
    src.throttle(own);
    const incoming = await listen('tcp');
    const m = Migration.start(src, incoming.uri, { ...SLOW, cpuThrottleIncrementPercent: 1, maxCpuThrottlePercent: 51 }, AUTO);
    await until(`a throttle before the ${end}`, () => throttleOf(src) > own, 30_000);
    if (end === 'cancel') m.cancel();
    else incoming.cancel();
    const result = await bounded(`the migration to end after the ${end}`, m.done(), 30_000);
    assert.equal(result.status, end === 'cancel' ? 'cancelled' : 'failed', `${end}: ${result.error ?? ''}`);
    assert.equal(throttleOf(src), own, `${end}: the throttle ended, the user's own given back`);
    assert.equal(src.runState, 'running', `${end}: the source runs on`);
    await incoming.done().catch(() => {});
  }
});

test('without auto-converge the vCPUs are never throttled', async () => {
  const src = await busyGuest();
  const incoming = await listen('tcp');
  const m = Migration.start(src, incoming.uri, { ...SLOW, timeoutMs: 3000 }, { verify: true });
  const result = await bounded('the migration to time out', m.done(), 30_000);
  assert.equal(result.status, 'cancelled');
  assert.match(result.error ?? '', /timed out/);
  assert.equal(src.vcpuStats()[0].throttleNs, 0);
  await incoming.done().catch(() => {});
});
