import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, test } from 'node:test';
import type { Guest } from '../../src/guest/guest.js';
import type { WorkloadSpec } from '../../src/guest/workloads/index.js';
import { Migration } from '../../src/migration/migration.js';
import { MiB, adopt, assertSweeps, destroyAll, guest, listen, sameRam, sleep } from './helpers.js';
import { fileLimit, until } from '../waits.js';

fileLimit(import.meta.url, 300_000);

after(destroyAll);

/** SHA-256 of all of a guest's RAM (the test's own whole-RAM comparison; verify mode compares pages sent and loaded). */
function ramSha(g: Guest): string {
  const h = createHash('sha256');
  for (const b of g.blocks) h.update(b.bytes);
  return h.digest('hex');
}

const workloads: [string, WorkloadSpec[]][] = [
  ['sweep on two vCPUs', [{ kind: 'sweep', pages: 2048, sweepsPerSec: 10 }, { kind: 'sweep', firstPage: 2048, sweepsPerSec: 10 }]],
  ['stress, random', [{ kind: 'stress', order: 'random', rateMiBps: 50 }]],
  ['fill, random then zero', [{ kind: 'fill', data: 'random', thenZero: true, fraction: 0.5 }]],
  ['fill, text', [{ kind: 'fill', data: 'text', fraction: 0.7 }]],
  ['idle', [{ kind: 'idle', intervalMs: 2 }]],
];

for (const transport of ['tcp', 'unix'] as const) {
  for (const [name, vcpus] of workloads) {
    test(`${name} migrates over ${transport}: RAM identical at switchover, workload continues`, async () => {
      const src = await guest({ ram: 16 * MiB, vcpus });
      await src.cont();
      await sleep(100);
      // Invariant 6: whenever the destination starts running, the source is not running.
      const overlaps: string[] = [];
      let arrived: Guest | null = null;
      const incoming = await listen(transport, {
        onGuest: (d) => {
          arrived = d;
          d.on('runstate', (to) => { if (to === 'running' && src.runState === 'running') overlaps.push('both running'); });
        },
      });
      // Invariant 2: the destination's RAM once loaded (before it answers LOADED, so before anything resumes) ...
      let atLoaded = '';
      incoming.on('status', (to) => { if (to === 'loaded' && arrived !== null) atLoaded = ramSha(arrived); });
      const m = Migration.start(src, incoming.uri, { downtimeLimitMs: 300 }, { verify: true });
      const result = await m.done();
      assert.equal(result.status, 'completed', result.error ?? '');
      const dest = await incoming.done();
      assert.equal(dest.status, 'resumed', dest.error ?? '');
      const g = adopt(dest.guest)!;
      assert.equal(dest.stats?.verified, true, 'the pages loaded are the pages sent (verify digests)');
      // ... equals the source's at the pause (a postmigrate source never changes again).
      assert.equal(atLoaded, ramSha(src), 'destination RAM when loaded equals source RAM at pause');
      assert.equal(src.runState, 'postmigrate', 'the source never runs again by itself');
      assert.deepEqual(overlaps, [], 'the guest never ran in two places at once');
      assert.equal(g.runState, 'running');
      assert.ok(result.stats.downtimeMs !== null && result.stats.downtimeMs > 0);
      // Where the switchover's time went: every phase inside the downtime, and no page
      // left the dirty log between the decision and the final pass (it sends them all).
      const sw = result.stats.switchover!;
      assert.ok(sw !== null, 'a completed migration records its switchover');
      assert.equal(sw.downtimeMs, result.stats.downtimeMs);
      assert.ok(sw.finalPages >= sw.pagesAtDecision, `final pass ${sw.finalPages} pages < ${sw.pagesAtDecision} dirty at the decision`);
      assert.ok(sw.decisionToPausedMs >= sw.pauseMs && sw.pauseMs >= 0, JSON.stringify(sw));
      const phases = sw.pauseMs + sw.finalPassMs + sw.verifyMs + sw.loadedWaitMs + sw.commitMs + sw.resumeMs;
      assert.ok(phases <= sw.downtimeMs + 1e-6, `phases ${phases} ms exceed the downtime ${sw.downtimeMs} ms`);
      // The workload continues from the source's state on the destination.
      const before = src.vcpuStates().map((s) => s.guestNs);
      await until('the destination\'s guest clocks to run on past the source\'s', () => g.vcpuStats().every((s, i) => s.guestNs > before[i]), 10_000);
      await g.pause();
      assertSweeps(g, 'destination after running on');
      g.vcpuStates().forEach((s, i) => {
        assert.ok(s.guestNs > before[i], 'guest clock continued');
      });
    });
  }
}

test('a static guest arrives byte-identical, and pages never written are not sent', async () => {
  const src = await guest({ ram: 32 * MiB, vcpus: [] });
  const data = Buffer.alloc(3 * 4096, 0xab);
  src.ram.write(5 * 4096, data);
  src.ram.write(20 * MiB, data);
  const incoming = await listen('tcp');
  const result = await Migration.start(src, incoming.uri).done();
  assert.equal(result.status, 'completed', result.error ?? '');
  const g = adopt((await incoming.done()).guest)!;
  assert.ok(sameRam(src, g));
  assert.equal(result.stats.normalPages, 6, 'only the 6 written pages were sent');
  assert.equal(result.stats.duplicatePages, 0);
  assert.throws(() => Migration.start(src, 'tcp:127.0.0.1:1'), /cannot migrate a guest that is postmigrate/, 'a migrated source cannot be migrated again');
  const done = Migration.start(g, 'tcp:127.0.0.1:1', { switchoverTimeoutMs: 1000 });
  await done.done();
  done.cancel(); // after the end: a no-op
  assert.equal(done.status, 'failed');
});

test('a destination configured for another geometry refuses the stream; the source carries on', async () => {
  const src = await guest({ ram: 8 * MiB, vcpus: [{ kind: 'idle' }] });
  await src.cont();
  const incoming = await listen('tcp', { expect: { ramBytes: 16 * MiB } });
  const r = await Migration.start(src, incoming.uri).done();
  assert.equal(r.status, 'failed');
  assert.match(r.error ?? '', /the destination refused the stream \(ram-size\): header: the guest has 8 MiB of RAM; this destination expects 16 MiB/);
  assert.equal(src.runState, 'running');
  const dest = await incoming.done();
  assert.equal(dest.guest, null);
  const big = await listen('unix', { maxGuestBytes: 4 * MiB });
  const r2 = await Migration.start(src, big.uri).done();
  assert.match(r2.error ?? '', /the destination refused the stream \(max-ram\): .*this destination accepts at most 4 MiB/);
});

test('a page sent non-zero and zeroed before the next pass arrives as zero', async () => {
  const src = await guest({ ram: 8 * MiB, vcpus: [] });
  await src.cont();
  src.ram.write(0, Buffer.alloc(8 * MiB, 0x5a));
  const incoming = await listen('tcp');
  // Iterate (limit 1 ms) until the zeroing is done, then let it switch over.
  const m = Migration.start(src, incoming.uri, { downtimeLimitMs: 1, maxBandwidthBytesPerSec: 64 * MiB });
  m.once('pass', () => {
    src.ram.write(MiB, Buffer.alloc(MiB)); // 256 pages become zero
    m.setParameters({ downtimeLimitMs: 10_000 });
  });
  const result = await m.done();
  assert.equal(result.status, 'completed', result.error ?? '');
  const dest = await incoming.done();
  const g = adopt(dest.guest)!;
  assert.ok(sameRam(src, g), 'destination equals source');
  assert.ok(g.blocks[0].bytes.subarray(MiB, 2 * MiB).every((b) => b === 0), 'the zeroed pages are zero');
  assert.ok((dest.stats?.zeroPagesWritten ?? 0) >= 256, 'the destination wrote zeros where it had written data');
});

test('a chain A -> B -> C keeps every page (B paused before it migrates on)', async () => {
  const a = await guest({ ram: 16 * MiB, vcpus: [{ kind: 'sweep', sweepsPerSec: 20 }] });
  await a.cont();
  await sleep(100);
  const toB = await listen('tcp');
  assert.equal((await Migration.start(a, toB.uri).done()).status, 'completed');
  const b = adopt((await toB.done()).guest)!;
  await sleep(50);
  await b.stop(); // B's workload stopped
  assertSweeps(b, 'B');
  const toC = await listen('unix');
  const r = await Migration.start(b, toC.uri, {}, { verify: true }).done();
  assert.equal(r.status, 'completed', r.error ?? '');
  const c = adopt((await toC.done()).guest)!;
  assert.equal(c.runState, 'paused', 'a guest paused at the source stays paused at the destination');
  assert.ok(sameRam(b, c), 'C holds exactly what B held');
  assertSweeps(c, 'C');
  await c.cont();
  await sleep(30);
  await c.pause();
  assertSweeps(c, 'C after running on');
});

test("an application's own tracked state migrates through the library API", async () => {
  const src = await guest({ ram: 4 * MiB, vcpus: [] });
  let config = { name: 'ferry', visits: 41 };
  src.devices.register({
    name: 'app/config', version: 2, minVersion: 1,
    save: () => Buffer.from(JSON.stringify(config)),
    load: (d) => { config = JSON.parse(Buffer.from(d).toString()) as typeof config; },
  });
  await src.cont();
  src.ram.write(12345, Buffer.from('state in guest RAM'));
  config = { ...config, visits: 42 };
  let loaded: { name: string; visits: number } | null = null;
  const incoming = await listen('unix', {
    onGuest: (g) => g.devices.register({
      name: 'app/config', version: 3, minVersion: 2,
      save: () => new Uint8Array(),
      load: (d, version) => { assert.equal(version, 2); loaded = JSON.parse(Buffer.from(d).toString()) as typeof config; },
    }),
  });
  assert.equal((await Migration.start(src, incoming.uri).done()).status, 'completed');
  const g = adopt((await incoming.done()).guest)!;
  assert.deepEqual(loaded, { name: 'ferry', visits: 42 });
  assert.equal(Buffer.from(g.ram.read(12345, 18)).toString(), 'state in guest RAM');
});

test('a device section the destination does not know fails the migration before GO; the source resumes', async () => {
  const src = await guest({ ram: 4 * MiB, vcpus: [{ kind: 'sweep', sweepsPerSec: 50 }] });
  src.devices.register({ name: 'app/unknown', version: 1, save: () => new Uint8Array(3), load: () => {} });
  await src.cont();
  const incoming = await listen('tcp');
  const r = await Migration.start(src, incoming.uri).done();
  assert.equal(r.status, 'failed');
  assert.match(r.error ?? '', /unknown device section "app\/unknown"/);
  assert.equal(src.runState, 'running', 'the source resumed');
  const dest = await incoming.done();
  assert.equal(dest.status, 'failed');
  assert.equal(dest.guest, null, 'the destination discarded its partial guest');
  await src.pause();
  assertSweeps(src, 'source after the failed migration');
});
