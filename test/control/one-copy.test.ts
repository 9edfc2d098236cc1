/**
 * The one-copy guard over QMP (issue 12 items 4 and 6; DESIGN.md invariant
 * 6): `cont` on a source that migrated away is refused unless
 * `x-ferry-force`; `quit` is refused while the source may hold the only
 * copy (past GO, before RESUMED) unless `x-ferry-force`. Checked as the
 * fault matrix checks: the copies' running intervals never overlap, and
 * the copy that runs passes the sweep checker.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { GuestController } from '../../src/control/controller.js';
import { QmpClient } from '../../src/control/qmp-client.js';
import { QmpServer } from '../../src/control/qmp-server.js';
import type { Guest } from '../../src/guest/guest.js';
import type { IncomingMigration } from '../../src/migration/incoming.js';
import { HeldLink } from '../migration/held-link.js';
import { MiB, RunLedger, address, adopt, assertSweeps, destroyAll, guest, listen } from '../migration/helpers.js';
import { bounded, fileLimit, nextEvent, until } from '../waits.js';

fileLimit(import.meta.url, 120_000);
after(destroyAll);

/** A running sweep source behind QMP, a destination in this process, and the ledger watching both. */
async function setup(): Promise<{ src: Guest; ctl: GuestController; server: QmpServer; qmp: QmpClient; incoming: IncomingMigration; ledger: RunLedger; dest: () => Guest | null }> {
  const src = await guest({ ram: 8 * MiB, vcpus: [{ kind: 'sweep', sweepsPerSec: 20 }] });
  await src.cont();
  const ctl = new GuestController(src);
  const server = await QmpServer.listen(address('unix', 'qmp'), ctl);
  const qmp = await QmpClient.connect(server.uri);
  const ledger = new RunLedger();
  ledger.watch('source', src);
  const incoming = await listen('tcp');
  let destGuest: Guest | null = null;
  incoming.on('guest', (g) => {
    destGuest = adopt(g);
    ledger.watch('destination', g);
  });
  return { src, ctl, server, qmp, incoming, ledger, dest: () => destGuest };
}

const status = async (qmp: QmpClient) => ((await qmp.execute('query-status')) as { status: string }).status;
const migrationStatus = async (qmp: QmpClient) => ((await qmp.execute('query-migrate')) as { status: string }).status;

test('cont on a source in postmigrate after a completed migration is refused with a clear error; x-ferry-force overrides it', async () => {
  const { src, server, qmp, incoming, ledger, dest } = await setup();
  try {
    await qmp.execute('migrate', { uri: incoming.uri });
    await until('the migration to complete', async () => (await migrationStatus(qmp)) === 'completed', 30_000);
    await bounded('the destination to resume', incoming.done(), 30_000);
    await assert.rejects(qmp.execute('cont'), (err: Error & { errorClass?: string; ferryCode?: string }) => {
      assert.equal(err.errorClass, 'GenericError');
      assert.equal(err.ferryCode, 'ERR_FERRY_INVALID_STATE');
      assert.match(err.message, /has migrated to tcp:127\.0\.0\.1:\d+ and now runs at the destination; continuing it here would run two copies/);
      assert.match(err.message, /"x-ferry-force": true/);
      return true;
    });
    await assert.rejects(src.cont(), { code: 'ERR_FERRY_INVALID_STATE', message: /migrated away \(postmigrate\)/ }, 'the library refuses too');
    await assert.rejects(qmp.execute('cont', { 'x-ferry-force': 'yes' }), /Invalid parameter type for 'x-ferry-force', expected: boolean/);
    assert.equal(await status(qmp), 'postmigrate', 'the source did not run');
    assert.equal(dest()?.runState, 'running', 'the destination runs the guest');
    assert.equal(ledger.overlaps(), 0, 'never two copies running');

    // The other side is known to be gone: the override continues the source, which holds the whole guest.
    await dest()!.destroy();
    assert.deepEqual(await qmp.execute('cont', { 'x-ferry-force': true }), {});
    assert.equal(await status(qmp), 'running');
    assert.equal(ledger.overlaps(), 0, 'never two copies running');
    await src.pause();
    assertSweeps(src, 'source continued with x-ferry-force');
  } finally {
    qmp.close();
    server.close();
  }
});

test('quit is refused while the source may hold the only copy (past GO, before RESUMED); x-ferry-force overrides it; after completion quit is plain', async () => {
  const { src, ctl, server, qmp, incoming, ledger, dest } = await setup();
  const link = await HeldLink.open(incoming.uri);
  let quits = 0;
  ctl.on('quit', () => { quits++; });
  try {
    await qmp.execute('migrate-set-parameters', { 'x-ferry-switchover-timeout': 60_000 });
    await qmp.execute('migrate', { uri: link.uri });
    await until('the source to commit and the destination to run the guest, RESUMED held',
      () => src.runState === 'postmigrate' && dest()?.runState === 'running', 30_000);
    assert.notEqual(await migrationStatus(qmp), 'completed', 'RESUMED has not reached the source');
    await assert.rejects(qmp.execute('quit'), (err: Error & { errorClass?: string }) => {
      assert.equal(err.errorClass, 'GenericError');
      assert.match(err.message, /^Refusing to quit: the migration to tcp:127\.0\.0\.1:\d+ is past GO \(device\): .* this process may hold the only copy/);
      assert.match(err.message, /"x-ferry-force": true/);
      return true;
    });
    await assert.rejects(qmp.execute('cont'), /is still in progress \(device\) and past its commit: the destination may yet run the guest/);
    await assert.rejects(qmp.execute('cont', { 'x-ferry-force': true }), /refused, even with x-ferry-force, until the migration has ended/,
      'the override is for a migration that has ended: this one may yet complete');
    assert.equal(quits, 0, 'the refused quit ended nothing');
    assert.equal(await status(qmp), 'postmigrate');

    const forced = nextEvent('the forced quit', ctl, 'quit', 10_000);
    assert.deepEqual(await qmp.execute('quit', { 'x-ferry-force': true }), {});
    await forced;

    link.release();
    await until('the migration to complete once RESUMED arrives', async () => (await migrationStatus(qmp)) === 'completed', 30_000);
    assert.deepEqual(await qmp.execute('quit'), {}, 'after completion the destination holds the guest: quit is plain');
    assert.equal(ledger.overlaps(), 0, 'never two copies running');
    assert.equal(await status(qmp), 'postmigrate', 'the source never ran again');
    await dest()!.pause();
    assertSweeps(dest()!, 'destination after the held RESUMED');
  } finally {
    link.close();
    qmp.close();
    server.close();
  }
});
