/**
 * Post-copy recovery over loopback (issue 14; postcopy-recovery.ts): a
 * link that breaks after GO pauses both sides (postcopy-paused, never
 * failed, nothing discarded); migrate-recover on the destination and
 * migrate with resume on the source continue on a new connection, and the
 * destination's bitmap brings back what was in flight at the break. At the
 * end every page holds what a run without migration leaves (invariant 7,
 * on contents), after one break with more than 1 MiB in flight, after a
 * source gone silent, and after 20 resets at random moments. A source
 * process killed in post-copy cannot be recovered from: the destination
 * pauses, says the guest is lost if the source is gone, and never runs it
 * as if it were whole.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { type AddressInfo, connect, createServer } from 'node:net';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Guest } from '../../src/guest/guest.js';
import type { TouchSpec } from '../../src/guest/workloads/index.js';
import type { IncomingMigration } from '../../src/migration/incoming.js';
import type { TlsOptions } from '../../src/transport/tls.js';
import { RECORD, encodeRecord } from '../../src/wire/records.js';
import { Migration, type MigrationOptions } from '../../src/migration/migration.js';
import { bounded, fileLimit, until } from '../waits.js';
import { FaultyLink, MiB, adopt, destroyAll, listen } from './helpers.js';
import { differingPages, replayed, touchingGuest } from './touching.js';

fileLimit(import.meta.url, 300_000);
after(destroyAll);

const POSTCOPY: MigrationOptions = { postcopy: true };
const links: FaultyLink[] = [];
after(() => {
  for (const l of links.splice(0)) l.close();
});

async function link(target: string): Promise<FaultyLink> {
  const l = await FaultyLink.open(target);
  links.push(l);
  return l;
}

/** Until both sides are paused in post-copy. */
async function bothPaused(m: Migration, incoming: IncomingMigration, ms = 30_000): Promise<void> {
  await until('both sides to pause post-copy', () => m.status === 'postcopy-paused' && incoming.status === 'postcopy-paused', ms);
}

/** migrate-recover on the destination, migrate with resume on the source, through a new link (returned, to break it again). */
async function recover(m: Migration, incoming: IncomingMigration): Promise<FaultyLink> {
  const uri = await incoming.recover('tcp:127.0.0.1:0');
  const l = await link(uri);
  m.resume(l.uri);
  return l;
}

/**
 * A touching guest in post-copy through a FaultyLink (over TLS if `tls`):
 * post-copy is started as soon as the migration is active, within the
 * first pass. (Started when the first pass ended, it came too late on a
 * loaded machine: the touches were over before the migration began, and
 * the idle guest's first pass converged.)
 */
async function inPostcopy(touches: number, bandwidth: number, idleTimeoutMs = 30_000, tls?: TlsOptions, postcopyBandwidth = 0) {
  const { g: src, initial, specs } = await touchingGuest(touches);
  const incoming = await listen('tcp', { idleTimeoutMs, tls });
  const first = await link(incoming.uri);
  // The source's idle timeout is twice the destination's: a silent link is found by the destination first.
  const parameters = { maxBandwidthBytesPerSec: bandwidth, maxPostcopyBandwidthBytesPerSec: postcopyBandwidth, idleTimeoutMs: 2 * idleTimeoutMs };
  const m = Migration.start(src, first.uri, parameters, { ...POSTCOPY, tls });
  const seen: string[] = [];
  const start = (st: string) => {
    if (st !== 'active') return;
    m.off('status', start);
    m.startPostcopy();
  };
  m.on('status', start);
  m.on('status', (st) => seen.push(`source ${st}`));
  incoming.on('status', (st) => seen.push(`destination ${st}`));
  await until('the destination to run in post-copy', () => incoming.status === 'postcopy-active', 30_000).catch(async (err: Error) => {
    const [r, d] = await Promise.all([bounded('the source to end', m.done(), 5000), bounded('the destination to end', incoming.done(), 5000)]).catch(() => [null, null]);
    throw new Error(`${err.message}; statuses: ${seen.join(', ')}; source: ${r?.error ?? '-'}; destination: ${d?.error ?? '-'}`, { cause: err });
  });
  return { src, initial, specs, incoming, first, m, dest: adopt(incoming.guest)! };
}

/** Both sides completed, and the destination's pages are what the touches leave without migration. */
async function assertWhole(m: Migration, incoming: IncomingMigration, src: Guest, initial: Uint8Array, specs: TouchSpec[], touches: number): Promise<void> {
  const result = await bounded('the source to complete', m.done(), 60_000);
  assert.equal(result.status, 'completed', result.error ?? '');
  const dest = await bounded('the destination to complete', incoming.done(), 30_000);
  assert.equal(dest.status, 'resumed', dest.error ?? '');
  const g = dest.guest!;
  assert.equal(g.pages.missingPages, 0);
  assert.equal(dest.stats!.postcopy!.bad, 0);
  await until('the touches to finish at the destination', () => src.pagesWritten + g.pagesWritten >= 2 * touches, 60_000);
  await g.pause();
  const bad = differingPages(g.blocks[0].bytes, replayed(initial, specs));
  assert.deepEqual(bad.slice(0, 10), [], `${bad.length} pages differ from the run without migration`);
}

test('a reset with more than 1 MiB in flight pauses both sides; migrate-recover and migrate resume finish it whole', async () => {
  const touches = 200_000;
  const { src, initial, specs, incoming, first, m, dest } = await inPostcopy(touches, 16 * MiB);
  const seen: string[] = [];
  m.on('status', (s) => seen.push(s));
  assert.throws(() => m.resume('tcp:127.0.0.1:1'), { message: 'Cannot resume if there is no paused migration' });
  await assert.rejects(incoming.recover('tcp:127.0.0.1:0'), { message: 'Migrate recover can only be run when postcopy is paused.' });
  assert.throws(() => m.cancel(), { message: 'Postcopy migration in progress, cannot cancel.' });
  // Hold the source's bytes (dropped, never acknowledged) until more than 1 MiB is in flight, then reset.
  first.silent = true;
  await until('1 MiB in flight', () => m.stats.inflightBytes > MiB, 30_000);
  const missingBefore = dest.pages.missingPages;
  first.reset();
  await bothPaused(m, incoming);
  assert.match(m.pauseReason ?? '', /destination/);
  assert.match(incoming.pauseReason ?? '', /source/);
  assert.equal(src.runState, 'postmigrate', 'the source keeps the only copy, paused');
  assert.ok(dest.pages.missingPages > 0 && dest.pages.missingPages <= missingBefore, 'nothing discarded at the destination');
  const listening = incoming.recover('tcp:127.0.0.1:0');
  await assert.rejects(incoming.recover('tcp:127.0.0.1:0'), { message: 'Migrate recovery is triggered already' });
  m.resume((await link(await listening)).uri);
  await assertWhole(m, incoming, src, initial, specs, touches);
  assert.deepEqual(seen.slice(0, 4), ['postcopy-paused', 'postcopy-recover-setup', 'postcopy-recover', 'postcopy-active'], seen.join(', '));
});

test('post-copy over TLS: a reset with 1 MiB in flight pauses both sides, and the recovery makes its own handshake and finishes it whole', async () => {
  const touches = 200_000;
  const tls: TlsOptions = { psk: { identity: 'ferry', key: randomBytes(32) } };
  const { src, initial, specs, incoming, first, m } = await inPostcopy(touches, 16 * MiB, 30_000, tls);
  first.silent = true;
  await until('1 MiB in flight', () => m.stats.inflightBytes > MiB, 30_000);
  first.reset();
  await bothPaused(m, incoming);
  // A plaintext connection to the recovery's address is refused as the first one would be; the destination stays paused for the source.
  const uri = await incoming.recover('tcp:127.0.0.1:0');
  const plain = connect(Number(uri.split(':').pop()), '127.0.0.1');
  plain.on('error', () => {});
  plain.resume();
  plain.end(Buffer.from('FERRY-plaintext'));
  await until('the plaintext connection to be dropped', () => plain.destroyed || plain.readableEnded, 30_000);
  plain.destroy();
  assert.equal(incoming.status, 'postcopy-recover-setup', 'still waiting for the source over TLS');
  m.resume((await link(uri)).uri);
  await assertWhole(m, incoming, src, initial, specs, touches);
});

test('ERROR in the same chunk as RESUMEACK: the recovery is over, so the source fails with the destination\'s words (neither paused again nor left waiting)', async () => {
  const touches = 200_000;
  const { src, incoming, first, m } = await inPostcopy(touches, 8 * MiB);
  first.reset();
  await bothPaused(m, incoming);
  // A destination that takes the recovery, then fails at once: its bitmap (every page missing), RESUMEACK and ERROR in one write.
  const pages = src.blocks.reduce((n, b) => n + b.bytes.byteLength / 4096, 0);
  const fake = createServer((socket) => {
    socket.on('error', () => {});
    socket.write(Buffer.concat([
      encodeRecord(RECORD.RecvBitmap, { ranges: [0, pages] }), encodeRecord(RECORD.ResumeAck, { missing: pages }),
      encodeRecord(RECORD.Error, { reason: 'test: gave up right after the recovery' }),
    ]));
  });
  await new Promise<void>((r) => fake.listen(0, '127.0.0.1', r));
  try {
    m.resume(`tcp:127.0.0.1:${(fake.address() as AddressInfo).port}`);
    const result = await bounded('the source to end', m.done(), 30_000);
    assert.equal(result.status, 'failed');
    assert.equal(result.afterGo, true);
    assert.match(result.error ?? '', /the destination reported: test: gave up right after the recovery/);
  } finally {
    fake.close();
    incoming.cancel();
    await bounded('the destination to end', incoming.done(), 30_000);
  }
});

test('a source gone silent in post-copy: both sides pause after their idle timeouts, and a recovery finishes it whole', async () => {
  const touches = 200_000;
  // 5 s: before GO an idle timeout fails the migration, and a loaded machine's switchover once left the link silent 2.4 s.
  const { src, initial, specs, incoming, first, m } = await inPostcopy(touches, 8 * MiB, 5000);
  first.silent = true;
  await bothPaused(m, incoming);
  assert.match(incoming.pauseReason ?? '', /the source sent nothing for \d+ ms in post-copy with pages still missing \(idle timeout 5000 ms\)/);
  first.close();
  await recover(m, incoming);
  await assertWhole(m, incoming, src, initial, specs, touches);
});

test('a recovery to the wrong place fails back to postcopy-paused; the next one finishes it', async () => {
  const touches = 200_000;
  const { src, initial, specs, incoming, first, m } = await inPostcopy(touches, 8 * MiB);
  first.reset();
  await bothPaused(m, incoming);
  // A destination that holds no paused post-copy refuses the resume; the source pauses again and says why.
  const stranger = await listen('tcp');
  m.resume(stranger.uri);
  await until('the source to pause again', () => m.status === 'postcopy-paused' && /refused|resumes/.test(m.pauseReason ?? ''), 30_000);
  assert.match(m.pauseReason ?? '', /none is paused here/);
  stranger.cancel();
  await recover(m, incoming);
  await assertWhole(m, incoming, src, initial, specs, touches);
});

test('20 link resets at random moments, up to 5 in each post-copy migration: every one completes, every page whole', async () => {
  let x = 2026;
  const random = () => {
    x = (x * 1103515245 + 12345) >>> 0;
    return x / 2 ** 32;
  };
  let resets = 0;
  let runs = 0;
  for (; resets < 20 && runs < 8; runs++) {
    const touches = 150_000;
    // Post-copy's push paced to 2 MiB/s: its 8 MiB last about 4 s, time for five resets and their recoveries.
    const { src, initial, specs, incoming, first, m, dest } = await inPostcopy(touches, 4 * MiB, 30_000, undefined, 2 * MiB);
    let current = first;
    for (let k = 0; k < 5 && resets < 20; k++) {
      await new Promise((r) => setTimeout(r, random() * 300));
      // Reset only with pages enough still to come that DONE cannot be on its way (a DONE lost with the link leaves the source paused).
      if (dest.pages.missingPages < 64) break;
      current.reset();
      resets++;
      await bothPaused(m, incoming);
      current = await recover(m, incoming);
      await until('post-copy to go on', () => m.status === 'postcopy-active' || m.status === 'completed', 30_000);
    }
    await assertWhole(m, incoming, src, initial, specs, touches);
  }
  assert.equal(resets, 20, `${resets} resets in ${runs} runs`);
});

test('a source process killed in post-copy: the destination pauses, says the guest is lost if the source is gone, and never runs it as whole', async () => {
  const incoming = await listen('tcp');
  const ferry = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
  const source = spawn(process.execPath, [ferry, 'run', '--ram', '16M', '--workload', 'sweep', '--rate', '2', '--seconds', '0.2', '--migrate-to', incoming.uri,
    '--max-bandwidth', '4M', '--max-postcopy-bandwidth', '1M', '--postcopy', '--policy', 'postcopy-after=0.3'], { stdio: 'ignore' });
  const exited = new Promise<void>((r) => source.once('close', () => r()));
  try {
    await until('the destination to run in post-copy', () => incoming.status === 'postcopy-active', 30_000);
    const g = adopt(incoming.guest)!;
    source.kill('SIGKILL');
    await until('the destination to pause', () => incoming.status === 'postcopy-paused', 30_000);
    assert.match(incoming.pauseReason ?? '', /post-copy paused with \d+ pages still at the source: .*if the source is gone, the guest is lost/);
    assert.ok(g.pages.missingPages > 0, 'pages are still missing');
    incoming.cancel(); // nobody will come back with them
    const dest = await bounded('the destination to end', incoming.done(), 30_000);
    assert.equal(dest.status, 'failed', 'a guest lost is a failure, even when the user ends it');
    assert.match(dest.error ?? '', /cancelled on the destination \(during post-copy, with \d+ pages still at the source: the guest is lost here/);
    assert.notEqual(g.runState, 'running', 'not run on as if it were whole');
  } finally {
    source.kill('SIGKILL');
    await exited;
  }
});

test('ferry recover drives both sides over QMP: refused in QEMU\'s words when nothing is paused; a paused post-copy recovers and completes whole', async () => {
  const { GuestController } = await import('../../src/control/controller.js');
  const { QmpServer } = await import('../../src/control/qmp-server.js');
  const { recoverCommand } = await import('../../src/cli/recover.js');
  const touches = 150_000;
  const { g: src, initial, specs } = await touchingGuest(touches);
  const dctl = new GuestController(null);
  const incoming = await dctl.migrateIncoming('tcp:127.0.0.1:0');
  const first = await link(incoming.uri);
  const sctl = new GuestController(src);
  sctl.capabilities['postcopy-ram'] = true;
  sctl.setParameters({ maxBandwidthBytesPerSec: 4 * MiB });
  const m = sctl.migrate(first.uri);
  m.once('pass', () => m.startPostcopy());
  const servers = [await QmpServer.listen('tcp:127.0.0.1:0', sctl), await QmpServer.listen('tcp:127.0.0.1:0', dctl)];
  const said: string[] = [];
  const log = console.log;
  console.log = (...words: unknown[]) => { said.push(words.join(' ')); };
  try {
    const recover = () => recoverCommand(['--source', servers[0].uri, '--destination', servers[1].uri]);
    await until('the destination to run in post-copy', () => incoming.status === 'postcopy-active', 30_000);
    assert.equal(await recover(), 1);
    assert.match(said.at(-1) ?? '', /^ferry recover: refused: Migrate recover can only be run when postcopy is paused\.$/);
    first.reset();
    await bothPaused(m, incoming);
    assert.equal(await recover(), 0, said.join('\n'));
    assert.match(said.at(-1) ?? '', /^ferry recover: recovered over tcp:127\.0\.0\.1:\d+: the migration is (postcopy-active|completed)$/);
  } finally {
    console.log = log;
    for (const s of servers) s.close();
  }
  adopt(incoming.guest);
  await assertWhole(m, incoming, src, initial, specs, touches);
});

test('GO lost with a link gone silent: the source pauses when RESUMED does not come (the destination, without GO, fails); migrate_cancel then gives it up, and the guest stays here to be recovered', async () => {
  const { g: src } = await touchingGuest(50_000_000);
  // The destination's idle timeout is the longer: its ERROR, after it, would fail the source instead (it says the destination failed).
  const incoming = await listen('tcp', { idleTimeoutMs: 5000 });
  const first = await link(incoming.uri);
  // 2 s and 3 s: a loaded machine's gaps before post-copy must not end the migration (600 ms and 1 s did, beside other work).
  const m = Migration.start(src, first.uri, { maxBandwidthBytesPerSec: 8 * MiB, idleTimeoutMs: 2000, switchoverTimeoutMs: 3000 }, POSTCOPY);
  m.once('pass', () => m.startPostcopy());
  incoming.on('status', (s) => { if (s === 'loaded') first.silent = true; }); // GO, and all after it, never arrives
  await until('the source to pause', () => m.status === 'postcopy-paused', 30_000);
  const dest = await bounded('the destination to fail', incoming.done(), 30_000);
  assert.equal(dest.status, 'failed', 'without GO it never ran the guest');
  assert.match(m.pauseReason ?? '', /RESUMED|acknowledged nothing|said nothing/);
  assert.equal(src.runState, 'postmigrate');
  m.cancel(); // no recovery can come
  const result = await bounded('the source to end', m.done(), 30_000);
  assert.equal(result.status, 'failed');
  assert.equal(result.afterGo, true);
  assert.match(result.error ?? '', /migrate_cancel while post-copy was paused/);
  assert.equal(src.runState, 'postmigrate', 'never resumed by itself');
});
