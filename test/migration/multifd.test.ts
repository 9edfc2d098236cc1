/**
 * Several channels (the capability multifd, channel-set.ts and
 * channel-loaders.ts): the pages travel on multifd-channels connections of
 * their own, and what lands is what the source held (invariant 2, on
 * contents), with pages rewritten between passes landing in pass order
 * (the sweep checker: a stale page breaks its vCPU's monotone run); a
 * channel that dies alone fails the migration before GO and the source
 * runs on, intact.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import type { Guest } from '../../src/guest/guest.js';
import { Migration } from '../../src/migration/migration.js';
import { FaultyLink, MiB, adopt, assertDirtyLogsReleased, assertSweeps, destroyAll, guest, listen, sameRam } from './helpers.js';
import net from 'node:net';
import { RECORD, encodeRecord } from '../../src/wire/records.js';
import { bounded, fileLimit, until } from '../waits.js';

fileLimit(import.meta.url, 240_000);

after(destroyAll);

/** Two sweeping vCPUs (pages rewritten every pass, each with a counter the checker reads) and a vCPU filling random data then zeros. */
async function busySource(): Promise<Guest> {
  const g = await guest({
    ram: 24 * MiB,
    vcpus: [
      { kind: 'sweep', pages: 1024, sweepsPerSec: 10 },
      { kind: 'sweep', firstPage: 1024, pages: 3072, sweepsPerSec: 4 },
      { kind: 'fill', firstPage: 4096, data: 'random', thenZero: true, fraction: 0.5 },
    ],
  });
  await g.cont();
  await until('every vCPU to have written', () => g.pagesWritten > 4096, 10_000);
  return g;
}

for (const channels of [1, 2, 4]) {
  test(`${channels} channel(s): every page lands as the source held it, in pass order; the destination took ${channels} channel connection(s)`, async () => {
    const src = await busySource();
    const incoming = await listen('tcp');
    let arrived: Guest | null = null;
    let sameAtLoaded: boolean | null = null;
    incoming.on('guest', (d: Guest) => { arrived = d; });
    // Invariant 2: the destination's RAM once loaded, before anything resumes, equals the source's at the pause.
    incoming.on('status', (to) => { if (to === 'loaded' && arrived !== null) sameAtLoaded = sameRam(arrived, src); });
    const m = Migration.start(src, incoming.uri, { downtimeLimitMs: 100, multifdChannels: channels }, { verify: true, multifd: true });
    const result = await m.done();
    assert.equal(result.status, 'completed', result.error ?? '');
    const dest = await incoming.done();
    assert.equal(dest.status, 'resumed', dest.error ?? '');
    const g = adopt(dest.guest)!;
    assert.equal(sameAtLoaded, true, 'destination RAM when loaded equals source RAM at the pause');
    assert.equal(dest.stats?.verified, true, 'the digests of what the channels sent and what landed agree');
    assert.equal(dest.stats?.channels, channels, 'the pages came on the channels');
    // Each channel's pages were loaded on a thread of its own (its loader reports its threadId and what it loaded).
    const threads = dest.stats?.channelThreads ?? [];
    assert.deepEqual(threads.map((t) => t.channel), [...Array(channels).keys()], JSON.stringify(threads));
    assert.equal(new Set(threads.map((t) => t.threadId)).size, channels, `a thread per channel: ${JSON.stringify(threads)}`);
    assert.ok(threads.every((t) => t.pages > 0), `every channel's thread loaded pages: ${JSON.stringify(threads)}`);
    assert.equal(threads.reduce((n, t) => n + t.pages, 0), (dest.stats?.normalPages ?? 0) + (dest.stats?.zeroPages ?? 0), 'every page loaded on a channel\'s thread');
    assert.ok(result.stats.transferredBytes > 4096 * 4096, `${result.stats.transferredBytes} bytes counted, the channels' included`);
    assertSweeps(src, 'source at the pause');
    await g.pause();
    assertSweeps(g, 'destination');
    assertDirtyLogsReleased(src, 'the source after a migration on channels');
  });
}

/** Runs of the channel fault (RELIABILITY.md's counts come from FERRY_CHANNEL_FAULT_RUNS=10). */
const FAULT_RUNS = Number(process.env.FERRY_CHANNEL_FAULT_RUNS ?? 2);

test(`a channel reset alone at a random moment mid pass (${FAULT_RUNS} runs) fails the migration before GO; the source runs on, intact, and migrates again`, async () => {
  const src = await busySource();
  for (let run = 0; run < FAULT_RUNS; run++) {
    const incoming = await listen('tcp');
    const link = await FaultyLink.open(incoming.uri);
    try {
      const m = Migration.start(src, link.uri, { downtimeLimitMs: 1, maxBandwidthBytesPerSec: 32 * MiB, multifdChannels: 3 }, { multifd: true });
      // The main connection, then the three channels; reset one of the channels once pages flow.
      const afterBytes = (2 + Math.random() * 16) * MiB;
      await until('three channels to connect and pages to flow', () => link.pairs.length === 4 && m.stats.transferredBytes > afterBytes, 20_000);
      const victim = 1 + Math.floor(Math.random() * 3);
      link.resetConnection(victim);
      const result = await m.done();
      const at = `run ${run}, connection ${victim} reset after ${(afterBytes / MiB).toFixed(1)} MiB`;
      assert.equal(result.status, 'failed', at);
      assert.equal(result.afterGo, false, at);
      assert.match(result.error ?? '', /channel/, `${at}: the failure names the channel`);
      const dest = await incoming.done();
      assert.equal(dest.status, 'failed', at);
      assert.equal(dest.guest, null, `${at}: nothing resumed at the destination`);
      assert.equal(src.runState, 'running', `${at}: the source runs on`);
      assertDirtyLogsReleased(src, `${at}: the source after a failed migration on channels`);
    } finally {
      link.close();
    }
  }
  // Intact: a new migration on channels completes, every page as the source holds it at the pause.
  const again = await listen('tcp');
  let arrived: Guest | null = null;
  let sameAtLoaded: boolean | null = null;
  again.on('guest', (d: Guest) => { arrived = d; });
  again.on('status', (to) => { if (to === 'loaded' && arrived !== null) sameAtLoaded = sameRam(arrived, src); });
  const m2 = Migration.start(src, again.uri, { downtimeLimitMs: 100, multifdChannels: 2 }, { verify: true, multifd: true });
  const r2 = await m2.done();
  assert.equal(r2.status, 'completed', r2.error ?? '');
  const d2 = await again.done();
  assert.equal(d2.stats?.verified, true);
  assert.equal(sameAtLoaded, true, 'the second migration landed every page');
  const g2 = adopt(d2.guest)!;
  await g2.pause();
  assertSweeps(g2, 'destination of the second migration');
});

test('a cancel during a pass on 8 rate-limited channels ends cancelled, with every channel thread ending by itself (before the 5 s terminate fallback)', async () => {
  const src = await busySource();
  const incoming = await listen('tcp');
  const m = Migration.start(src, incoming.uri, { downtimeLimitMs: 1, maxBandwidthBytesPerSec: MiB, multifdChannels: 8 }, { multifd: true });
  await until('pages to flow on the channels', () => m.stats.transferredBytes > 2 * MiB, 20_000);
  m.cancel();
  // A channel asleep on its share of the rate (seconds of debt after a 1 MiB record) must wake at the stop.
  const result = await bounded('the cancel to end the migration with every channel thread ended by itself', m.done(), 4500);
  assert.equal(result.status, 'cancelled', result.error ?? 'the first reason (the cancel) is the one reported');
  await incoming.done();
  assert.equal(src.runState, 'running');
  assertDirtyLogsReleased(src, 'the source after a cancel on channels');
});

test('a stranger connecting to the destination during a migration on channels (a stray 0x0b byte, or a CHANNEL of another guest) is dropped alone; the migration completes', async () => {
  const src = await guest({ ram: 24 * MiB, vcpus: [{ kind: 'fill', data: 'random' }] });
  await src.cont();
  await until('the guest to fill its RAM', () => src.pagesWritten >= 6144, 20_000);
  const incoming = await listen('tcp');
  const m = Migration.start(src, incoming.uri, { downtimeLimitMs: 100, maxBandwidthBytesPerSec: 32 * MiB, multifdChannels: 2 }, { multifd: true });
  await until('pages to flow on the channels', () => m.stats.transferredBytes > 2 * MiB, 20_000);
  const port = Number(incoming.uri.split(':').pop());
  const strangers = [Buffer.from([0x0b]), encodeRecord(RECORD.Channel, { index: 0, channels: 2, uuid: '00000000-0000-4000-8000-000000000000' })].map((bytes) => {
    const s = net.connect(port, '127.0.0.1');
    s.on('error', () => {});
    s.write(bytes);
    return s;
  });
  try {
    const result = await m.done();
    assert.equal(result.status, 'completed', result.error ?? '');
    const dest = await incoming.done();
    assert.equal(dest.status, 'resumed', dest.error ?? '');
    adopt(dest.guest);
  } finally {
    for (const s of strangers) s.destroy();
  }
});

test('multifd is refused with post-copy, with the main-loop mode and over file:, in words', async () => {
  const src = await guest({ ram: 4 * MiB, vcpus: [{ kind: 'idle', intervalMs: 5 }] });
  assert.throws(() => Migration.start(src, 'tcp:127.0.0.1:9', {}, { multifd: true, postcopy: true }), /Postcopy is not yet compatible with multifd/);
  assert.throws(() => Migration.start(src, 'tcp:127.0.0.1:9', {}, { multifd: true, mode: 'mainloop' }), /multifd is not compatible with x-ferry-mainloop/);
  assert.throws(() => Migration.start(src, 'file:/tmp/ferry-multifd-refused', {}, { multifd: true }), /multifd cannot be used with file:/);
});
