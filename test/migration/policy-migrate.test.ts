/**
 * The policy's remedy ladder in a migration (remedies.ts): a sweeping guest
 * that outpaces loopback against a 10 ms downtime limit never converges by
 * itself. With no progress for progress-timeout the default policy
 * throttles it (auto-converge's rule, the capability off) and it completes;
 * with pause-and-finish allowed and the throttle not, it completes paused,
 * labelled; with neither, it is cancelled, saying why. The RAM arrives
 * whole every time it completes (the sweep checker), and the source is
 * never left throttled.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { Migration } from '../../src/migration/migration.js';
import type { MigrationParameters } from '../../src/migration/parameters.js';
import { ferryCodeOf } from '../../src/errors.js';
import { bounded, fileLimit } from '../waits.js';
import { adopt, assertSweeps, busyGuest, destroyAll, listen, throttleOf } from './helpers.js';

fileLimit(import.meta.url, 120_000);
after(destroyAll);

/** A stall is concluded after 2 s without a new low; the throttle, once engaged, steps 50 % then 99 %. */
const STUCK: Partial<MigrationParameters> = {
  downtimeLimitMs: 10, progressTimeoutMs: 2000, cpuThrottleInitialPercent: 50, cpuThrottleIncrementPercent: 49,
};

test('the default policy: no progress engages the throttle (capability off), reported with its reason; the migration completes and the throttle ends', async () => {
  const src = await busyGuest();
  const incoming = await listen('tcp');
  const m = Migration.start(src, incoming.uri, STUCK, { verify: true });
  const seen = new Set<number>();
  m.on('stats', () => seen.add(m.cpuThrottlePercentage ?? -1));
  const result = await bounded('the policed migration to end', m.done(), 90_000);
  assert.equal(result.status, 'completed', result.error ?? '');
  assert.ok(seen.has(50), `the throttle reported once engaged: ${[...seen].join(', ')}`);
  const engaged = result.stats.passes.find((p) => p.remedy?.name === 'throttle');
  assert.match(engaged?.remedy?.why ?? '', /^no progress in [\d.]+ s \(progress-timeout 2 s\); (not )?converging: remaining/);
  assert.ok(result.stats.passes.every((p) => p.prediction != null || p.remedy === null), 'every policed pass has a prediction');
  assert.equal(result.stats.pauseAndFinish, null);
  assert.equal(throttleOf(src), 0, 'the throttle ended with the migration');
  const dest = await incoming.done();
  assert.equal(dest.status, 'resumed', dest.error ?? '');
  assert.equal(dest.stats?.verified, true);
  const g = adopt(dest.guest)!;
  await g.pause();
  assertSweeps(g, 'destination after the policed migration');
});

test('pause-and-finish, allowed and the throttle not: the guest is paused and the rest sent, exempt from the downtime limit and labelled', async () => {
  const src = await busyGuest();
  const incoming = await listen('tcp');
  const m = Migration.start(src, incoming.uri, { ...STUCK, policyThrottle: 0, pauseAndFinish: 1 }, { verify: true });
  const result = await bounded('the paused-and-finished migration to end', m.done(), 60_000);
  assert.equal(result.status, 'completed', result.error ?? '');
  assert.match(result.stats.pauseAndFinish ?? '', /^no progress in [\d.]+ s \(progress-timeout 2 s\); (not )?converging/);
  assert.equal(result.stats.passes.at(-1)?.remedy?.name, 'pause-and-finish');
  assert.equal(src.vcpuStats()[0].throttleNs, 0, 'never throttled');
  const dest = await incoming.done();
  assert.equal(dest.status, 'resumed', dest.error ?? '');
  assert.equal(dest.stats?.verified, true);
  const g = adopt(dest.guest)!;
  await g.pause();
  assertSweeps(g, 'destination after pause-and-finish');
});

test('no remedy allowed: cancelled after progress-timeout, saying why and what could be allowed; the source runs on, never throttled', async () => {
  const src = await busyGuest();
  const incoming = await listen('tcp');
  const m = Migration.start(src, incoming.uri, { ...STUCK, policyThrottle: 0 }, { verify: true });
  const result = await bounded('the migration to give up', m.done(), 60_000);
  assert.equal(result.status, 'cancelled');
  assert.match(result.error ?? '', /^gave up after [\d.]+ s: no progress in [\d.]+ s \(progress-timeout 2 s\); no remedy was allowed \(not allowed: throttle=on, postcopy=on \(with --postcopy\), pause-and-finish=on in --policy\); (not )?converging/);
  assert.equal(ferryCodeOf(m.lastFailure), 'ERR_FERRY_MIGRATION_GAVE_UP');
  assert.equal(src.runState, 'running');
  assert.equal(src.vcpuStats()[0].throttleNs, 0);
  await incoming.done().catch(() => {});
});

test('post-copy from the policy: allowed with postcopy-ram and the throttle not, the stuck guest switches to post-copy and arrives whole', async () => {
  const src = await busyGuest();
  const incoming = await listen('tcp');
  const m = Migration.start(src, incoming.uri, { ...STUCK, policyThrottle: 0, policyPostcopy: 1 }, { postcopy: true });
  const result = await bounded('the migration to end in post-copy', m.done(), 60_000);
  assert.equal(result.status, 'completed', result.error ?? '');
  assert.equal(result.stats.passes.at(-1)?.remedy?.name, 'postcopy');
  assert.match(result.stats.passes.at(-1)?.remedy?.why ?? '', /^no progress in [\d.]+ s \(progress-timeout 2 s\)/);
  assert.ok((result.stats.postcopy?.missingAtGo ?? 0) > 0, 'it ended in post-copy, with pages missing at GO');
  assert.equal(src.vcpuStats()[0].throttleNs, 0, 'never throttled');
  const dest = await incoming.done();
  assert.equal(dest.status, 'resumed', dest.error ?? '');
  const g = adopt(dest.guest)!;
  await g.pause();
  assertSweeps(g, 'destination after the policy chose post-copy');
});

test('postcopy-after: post-copy that long after migrate, within the pass under way; without postcopy-ram it is never started', async () => {
  for (const capability of [true, false]) {
    const src = await busyGuest();
    const incoming = await listen('tcp');
    const params = { ...STUCK, progressTimeoutMs: 0, postcopyAfterMs: 300, timeoutMs: capability ? 0 : 3000 };
    const m = Migration.start(src, incoming.uri, params, { postcopy: capability });
    const result = await bounded('the migration to end', m.done(), 60_000);
    if (!capability) {
      assert.equal(result.status, 'cancelled', 'without postcopy-ram the time budget ends it');
      assert.equal(src.runState, 'running');
      await incoming.done().catch(() => {});
      continue;
    }
    assert.equal(result.status, 'completed', result.error ?? '');
    assert.ok((result.stats.postcopy?.missingAtGo ?? 0) > 0, 'it ended in post-copy, with pages missing at GO');
    const dest = await incoming.done();
    assert.equal(dest.status, 'resumed', dest.error ?? '');
    const g = adopt(dest.guest)!;
    await g.pause();
    assertSweeps(g, 'destination after postcopy-after');
  }
});
