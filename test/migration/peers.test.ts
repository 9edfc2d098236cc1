/**
 * Misbehaving peers and links (issue 6): a destination that never accepts,
 * one that stops reading, one that never answers at switchover, a link
 * reset or closed on the way back, a source gone silent, a frame over the
 * destination's limit. In every case before GO the source runs on with its
 * RAM intact (the sweep checker passes), the migration fails with a reason
 * a person understands, the destination never runs a partial guest, and
 * two copies never run at once (a ledger of running intervals, invariant 6).
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, test } from 'node:test';
import type { Guest } from '../../src/guest/guest.js';
import { IncomingMigration, MIN_FRAME_BYTES } from '../../src/migration/incoming.js';
import { Migration, type MigrationResult } from '../../src/migration/migration.js';
import { RECORD, encodeRecord } from '../../src/wire/records.js';
import { SLOT_BYTES } from '../../src/wire/frame-writer.js';
import { bounded, fileLimit, until } from '../waits.js';
import { FaultyLink, MiB, RunLedger, adopt, assertDirtyLogsReleased, assertSweeps, destroyAll, guest, listen, sleep } from './helpers.js';

after(destroyAll);
const RUNS = Number(process.env.FERRY_FAULT_RUNS ?? 2);
fileLimit(import.meta.url, 600_000 * Math.max(1, RUNS / 2));

/** A fake destination on loopback that does only what `behave` does with each connection. */
async function fakeDestination(behave: (socket: net.Socket) => void): Promise<{ uri: string; close: () => void }> {
  const sockets: net.Socket[] = [];
  const server = net.createServer((s) => {
    sockets.push(s);
    s.on('error', () => {});
    behave(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    uri: `tcp:127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    close: () => { server.close(); for (const s of sockets) s.destroy(); },
  };
}
const READY = encodeRecord(RECORD.Ready, {});

async function sweepingGuest(ramMiB: number): Promise<Guest> {
  const g = await guest({ ram: ramMiB * MiB, vcpus: [{ kind: 'sweep', sweepsPerSec: 4 }] });
  await g.cont();
  await until('a full sweep of the guest (every page written once)', () => g.pagesWritten >= (ramMiB * MiB) / 4096, 20_000);
  return g;
}

/** Before GO: the source runs again with its RAM intact, then migrates to a good destination. */
async function assertSourceRecovers(src: Guest, r: MigrationResult, reason: RegExp): Promise<void> {
  assert.equal(r.status, 'failed');
  assert.equal(r.afterGo, false);
  assert.match(r.error ?? '', reason);
  assertDirtyLogsReleased(src, 'after the failure');
  assert.equal(src.runState, 'running', 'the source runs on');
  await src.pause();
  assertSweeps(src, 'the source after the failure');
  // It migrates again: paused, so that it converges however loaded the machine is.
  const good = await listen('tcp');
  const again = await bounded('a new migration after the failure', Migration.start(src, good.uri).done(), 60_000);
  assert.equal(again.status, 'completed', `a new migration after the failure: ${again.error}`);
  const arrived = adopt((await bounded('the new destination to end', good.done(), 60_000)).guest);
  assert.ok(arrived !== null, 'the new destination holds the guest');
  assertSweeps(arrived, 'the guest that arrived after the failure');
  await arrived.destroy();
}

test('a destination that never accepts (no READY) fails the migration after the switchover timeout', { timeout: 120_000 }, async () => {
  const src = await sweepingGuest(8);
  const dest = await fakeDestination(() => {});
  const r = await Migration.start(src, dest.uri, { switchoverTimeoutMs: 300 }).done();
  dest.close();
  await assertSourceRecovers(src, r, /waiting for the destination to accept \(READY\).*300 ms/);
});

test('a destination that stops reading: backpressure holds the source to its send slots, the idle timeout ends it', { timeout: 120_000 }, async () => {
  const src = await sweepingGuest(128);
  const dest = await fakeDestination((s) => { s.write(READY); s.pause(); });
  const rss0 = process.memoryUsage().rss;
  const m = Migration.start(src, dest.uri, { idleTimeoutMs: 4000 });
  // The migration's own stats messages (one per 100 ms of its clock) are the ticks: the wait is for a state
  // (bytes in flight, unchanged over 3 messages), never for a duration.
  const samples: number[] = [];
  m.on('stats', () => samples.push(m.stats.inflightBytes));
  const steady = () => samples.length >= 3 && samples.at(-1)! > 0 && samples.slice(-3).every((v) => v === samples.at(-1)) && samples.length;
  const at = await until('bytes in flight to stop growing (the source blocked on a reader that stopped)', steady, 20_000);
  const first = m.stats.inflightBytes;
  const rss1 = process.memoryUsage().rss;
  await until('3 more stats messages while blocked', () => samples.length >= at + 3, 20_000);
  const second = m.stats.inflightBytes;
  const rss2 = process.memoryUsage().rss;
  console.log(`# stopped reader: ${first} then ${second} bytes in flight; source RSS +${((rss1 - rss0) / MiB).toFixed(1)} MiB, then +${((rss2 - rss1) / MiB).toFixed(1)} MiB`);
  const r = await bounded('the idle timeout to end the migration', m.done(), 30_000).finally(() => dest.close());
  // Bytes in flight: the send slots plus what the kernel's socket buffers took; no more, and not growing.
  assert.ok(first > 0 && second === first, `in flight ${first} then ${second} bytes: the source waits`);
  assert.ok(second < 16 * SLOT_BYTES + 16 * MiB, `in flight ${second} bytes of a 128 MiB guest`);
  // The migration thread and its send slots cost some tens of MiB once; blocked, the source does not grow.
  assert.ok(rss2 - rss1 < 4 * MiB, `the source grew by ${rss2 - rss1} bytes while blocked`);
  assert.equal(src.runState, 'running');
  await assertSourceRecovers(src, r, /acknowledged nothing for \d+ ms with \d+ bytes in flight \(idle timeout 4000 ms\)/);
});

test('a destination that reads everything but never answers LOADED: the source resumes after the switchover timeout', { timeout: 120_000 }, async () => {
  const src = await sweepingGuest(8);
  const dest = await fakeDestination((s) => { s.write(READY); s.resume(); });
  // Nothing is acknowledged, so the bandwidth for the switchover decision is given.
  const m = Migration.start(src, dest.uri, { switchoverTimeoutMs: 400, idleTimeoutMs: 60_000, availSwitchoverBandwidthBytesPerSec: 1e9 });
  const statuses: string[] = [];
  m.on('status', (s) => statuses.push(s));
  const r = await m.done();
  dest.close();
  assert.ok(statuses.includes('device'), `it reached switchover: ${statuses.join(' ')}`);
  await assertSourceRecovers(src, r, /waiting for the destination to load \(LOADED\)/);
});

type LinkFault = 'reset mid pass' | 'reset at switchover' | 'return path closed' | 'source silent';
const counts: Record<string, { runs: number; sourceIntact: number; destinationDiscarded: number; twoCopies: number }> = {};

async function linkCase(fault: LinkFault): Promise<void> {
  counts[fault] ??= { runs: 0, sourceIntact: 0, destinationDiscarded: 0, twoCopies: 0 };
  const c = counts[fault];
  c.runs++;
  const ledger = new RunLedger();
  const src = await sweepingGuest(16);
  ledger.watch('source', src);
  const incoming = await IncomingMigration.listen('tcp:127.0.0.1:0', { idleTimeoutMs: 400 });
  incoming.on('guest', (g) => ledger.watch('destination', g));
  const link = await FaultyLink.open(incoming.uri);
  const slow = fault !== 'reset at switchover';
  const m = Migration.start(src, link.uri, slow ? { downtimeLimitMs: 1, maxBandwidthBytesPerSec: 16 * MiB } : { downtimeLimitMs: 300 });
  const breakLink = () => {
    if (fault === 'return path closed') link.closeReturnPath();
    else if (fault === 'source silent') link.silent = true;
    else link.reset();
  };
  if (slow) m.once('stats', () => void sleep(Math.random() * 200).then(breakLink));
  else m.on('status', (s) => { if (s === 'device') breakLink(); });
  const [r, inc] = await Promise.all([
    bounded(`the source's migration to end after ${fault}`, m.done(), 20_000),
    bounded(`the destination to end after ${fault}`, incoming.done(), 20_000),
  ]).finally(() => link.close());
  assert.equal(inc.status, 'failed', `${fault}: the destination fails`);
  assert.equal(inc.guest, null, `${fault}: the partial guest is discarded`);
  assert.equal(ledger.ran('destination'), false, `${fault}: the destination never ran`);
  c.destinationDiscarded++;
  const reasons: Record<LinkFault, RegExp> = {
    'reset mid pass': /connection to the destination failed: .*ECONNRESET|the destination closed the connection/,
    'reset at switchover': /connection to the destination failed: .*ECONNRESET|the destination closed the connection/,
    'return path closed': /the destination closed the connection/,
    'source silent': /the destination reported: the source sent nothing for \d+ ms \(idle timeout 400 ms\)/,
  };
  await assertSourceRecovers(src, r, reasons[fault]); // with a clear reason, RAM intact, migrates again
  c.sourceIntact++;
  if (ledger.overlaps() > 0) c.twoCopies++;
  assert.equal(ledger.overlaps(), 0, `${fault}: two copies ran at once`);
}

for (const fault of ['reset mid pass', 'reset at switchover', 'return path closed', 'source silent'] as const) {
  test(`link fault: ${fault} (${RUNS} runs)`, { timeout: RUNS * 120_000 }, async () => {
    for (let i = 0; i < RUNS; i++) await linkCase(fault);
    console.log(`# link fault counts: ${JSON.stringify({ [fault]: counts[fault] })}`);
  });
}

test('a record over the destination\'s largest frame is refused with a reason; a limit below a PAGES record is refused at listen', async () => {
  await assert.rejects(IncomingMigration.listen('tcp:127.0.0.1:0', { maxFrameBytes: 4096 }), /maxFrameBytes must be an integer of at least 1048580, got 4096/);
  const src = await sweepingGuest(8);
  const big = new Uint8Array(2 * MiB).fill(7);
  src.devices.register({ name: 'app/big', version: 1, save: () => big, load: () => {} });
  const incoming = await IncomingMigration.listen('tcp:127.0.0.1:0', { maxFrameBytes: MIN_FRAME_BYTES });
  const [r, inc] = await Promise.all([Migration.start(src, incoming.uri).done(), incoming.done()]);
  assert.equal(inc.status, 'failed');
  assert.match(inc.error ?? '', /DEVICE: a record of \d+ bytes exceeds the largest frame accepted here \(1048580 bytes\)/);
  src.devices.unregister('app/big');
  await assertSourceRecovers(src, r, /the destination refused the stream \(max-frame\): DEVICE: a record/);
});
