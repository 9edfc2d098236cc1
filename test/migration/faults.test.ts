import assert from 'node:assert/strict';
import net from 'node:net';
import { after, test } from 'node:test';
import { Migration } from '../../src/migration/migration.js';
import type { MigrationStatus } from '../../src/migration/status.js';
import { MiB, adopt, assertDirtyLogsReleased, assertSweeps, destroyAll, guest, listen } from './helpers.js';
import { buildStream } from '../wire/stream-fixture.js';
import { bounded, fileLimit, until } from '../waits.js';

fileLimit(import.meta.url, 300_000);

after(destroyAll);

test('a guest dirtying faster than max-bandwidth never completes and says why, until cancelled', async () => {
  const src = await guest({ ram: 8 * MiB, vcpus: [{ kind: 'sweep', sweepsPerSec: 50 }] });
  await src.cont();
  const incoming = await listen('tcp');
  const m = Migration.start(src, incoming.uri, { downtimeLimitMs: 30, maxBandwidthBytesPerSec: 4 * MiB });
  const passes: string[] = [];
  m.on('pass', (p) => passes.push(p.decision));
  await until('three passes of a migration that cannot converge', () => passes.length >= 3, 20_000);
  assert.ok(passes.every((d) => /^iterate: expected downtime .* > limit 30 ms; the guest dirties .* MiB\/s against the rule's estimate \(cautious\) of .* MiB\/s$/.test(d)), passes.join('\n'));
  assert.equal(m.status, 'active');
  const last = m.stats.passes[m.stats.passes.length - 1];
  assert.ok(last.remainingPages >= 1024, `the guest dirtied most of RAM again during the pass (${last.remainingPages} pages)`);
  assert.ok(last.expectedDowntimeMs > 30, `expected downtime ${last.expectedDowntimeMs} ms exceeds the limit`);
  assert.ok(last.bandwidthBytesPerSec <= 4.5 * MiB, `bandwidth held to the limit (${last.bandwidthBytesPerSec})`);
  m.cancel();
  m.cancel(); // twice: a no-op
  const r = await m.done();
  assert.equal(r.status, 'cancelled');
  assert.equal(src.runState, 'running');
  m.cancel(); // after the end: a no-op
  assert.equal((await incoming.done()).guest, null);
  await src.pause();
  assertSweeps(src, 'source after cancel');
});

for (const when of ['setup', 'active', 'device'] as const) {
  test(`cancel in status ${when} leaves the source running with its RAM intact`, async () => {
    const src = await guest({ ram: 8 * MiB, vcpus: [{ kind: 'sweep', sweepsPerSec: 20 }] });
    await src.cont();
    const incoming = await listen('unix');
    const m = Migration.start(src, incoming.uri, { downtimeLimitMs: when === 'device' ? 10_000 : 1 });
    const seen: MigrationStatus[] = [];
    m.on('status', (s) => {
      seen.push(s);
      if (s === when) {
        m.cancel();
        m.cancel();
      }
    });
    if (when === 'setup') {
      m.cancel();
      m.cancel();
    }
    const r = await m.done();
    assert.ok(r.status === 'cancelled', `ended ${r.status}: ${r.error ?? ''} after ${seen.join(' -> ')}`);
    assertDirtyLogsReleased(src, `cancelled in ${when}`);
    assert.equal(src.runState, 'running');
    // A source cancelled before it sent a byte never became the destination's source (a connection that
    // closes silently is not one: socket.ts): that destination still waits for one, so end it here.
    incoming.cancel();
    assert.equal((await bounded('the destination to end', incoming.done(), 30_000)).guest, null, 'the destination did not keep a guest');
    const written = src.pagesWritten;
    await until('the source guest to write again after the cancel', () => src.pagesWritten > written, 10_000);
    await src.pause();
    assertSweeps(src, `source after cancel in ${when}`);
  });
}

test('a failure after LOADED and before GO resumes the source and not the destination; switchover refuses cont, stop and RAM writes', async () => {
  const src = await guest({ ram: 8 * MiB, vcpus: [{ kind: 'sweep', sweepsPerSec: 20 }] });
  await src.cont();
  const incoming = await listen('tcp');
  let checked = false;
  const m = Migration.start(src, incoming.uri, {}, {
    onLoaded: async () => {
      assert.equal(src.runState, 'finish-migrate');
      await assert.rejects(src.cont(), /switching over/);
      await assert.rejects(src.stop(), /switching over/);
      assert.throws(() => src.ram.write(0, Uint8Array.of(1)), /refused while the guest is finish-migrate/);
      checked = true;
      incoming.cancel(); // the destination goes away after LOADED
      await incoming.done();
    },
  });
  const r = await m.done();
  assert.ok(checked);
  assert.equal(r.status, 'failed');
  assert.equal(r.afterGo, false);
  assert.equal(src.runState, 'running', 'the source resumed');
  const dest = await incoming.done();
  assert.equal(dest.status, 'cancelled');
  assert.equal(dest.guest, null, 'the destination never resumed');
  await src.pause();
  assertSweeps(src, 'source after the failure');
  // And a new migration to a fresh destination then succeeds.
  await src.cont();
  const again = await listen('tcp');
  assert.equal((await Migration.start(src, again.uri).done()).status, 'completed');
  const g = adopt((await again.done()).guest)!;
  await g.pause();
  assertSweeps(g, 'new destination');
});

test('an unreachable destination fails the migration with a clear reason; the source keeps running', async () => {
  const src = await guest({ ram: 4 * MiB, vcpus: [{ kind: 'idle' }] });
  await src.cont();
  const r = await Migration.start(src, 'tcp:127.0.0.1:1', { switchoverTimeoutMs: 2000 }).done();
  assert.equal(r.status, 'failed');
  assert.match(r.error ?? '', /cannot reach the destination at 127\.0\.0\.1:1/);
  assert.equal(src.runState, 'running');
  assert.throws(() => Migration.start(src, 'carrier-pigeon:home'), /unknown transport "carrier-pigeon"/);
  const incoming = await listen('tcp');
  const m = Migration.start(src, incoming.uri);
  assert.throws(() => Migration.start(src, incoming.uri), /already (setup|active)/);
  assert.equal((await m.done()).status, 'completed');
  adopt((await incoming.done()).guest);
});

test('the destination never resumes on a corrupted or truncated stream', async () => {
  const { bytes } = buildStream(24);
  let x = 12345;
  const rnd = (n: number) => { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; return (x >>> 0) % n; };
  for (let i = 0; i < 12; i++) {
    const incoming = await listen('tcp');
    const mutated = Buffer.from(i % 2 === 0 ? bytes.subarray(0, rnd(bytes.length)) : bytes);
    if (i % 2 === 1) mutated[rnd(mutated.length)] ^= 1 << rnd(8);
    const [host, port] = incoming.uri.slice(4).split(':');
    const socket = net.connect({ host, port: Number(port) });
    socket.on('error', () => {});
    socket.on('data', () => {});
    await new Promise((r) => socket.once('connect', r));
    socket.end(mutated);
    const result = await incoming.done();
    assert.notEqual(result.status, 'resumed', `mutation ${i} must not resume`);
    assert.equal(result.guest, null);
    assert.ok(result.error !== null && result.error.length > 0);
  }
});
