/**
 * Cancelling from the command line (issue 12 item 4), against a source
 * process (`ferry run --qmp`) and a destination in this process: Ctrl-C on
 * `ferry migrate` cancels the migration it started; `ferry cancel`; a
 * second `ferry migrate` changes nothing; past GO, SIGINT, SIGTERM and
 * `quit` are refused until the migration ends. Checked as the fault matrix
 * checks: before GO the source runs on and passes the sweep checker and the
 * destination never ran; past GO the source never runs again and the
 * destination's copy passes the checker.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { QmpClient } from '../../src/control/qmp-client.js';
import type { Guest } from '../../src/guest/guest.js';
import type { IncomingMigration } from '../../src/migration/incoming.js';
import { HeldLink } from '../migration/held-link.js';
import { adopt, assertSweeps, listen } from '../migration/helpers.js';
import { bounded, fileLimit, until } from '../waits.js';
import { cliTestDir, spawnFerry, type FerryProcess } from './ferry-process.js';

fileLimit(import.meta.url, 240_000);
const dir = cliTestDir('ferry-cancel-');

/** A source process serving QMP, a monitor connected to it, and a destination here that records whether its guest ever ran. */
async function setup(name: string): Promise<{ control: string; source: FerryProcess; monitor: QmpClient; incoming: IncomingMigration; ran: () => boolean; dest: () => Guest | null; events: string[] }> {
  const control = `unix:${join(dir, `${name}.qmp`)}`;
  const source = spawnFerry(['run', '--ram', '16M', '--workload', 'sweep', '--rate', '10', '--qmp', control]);
  await source.line(/QMP control socket on/, 'the source process to open its QMP socket');
  const monitor = await QmpClient.connect(control);
  const events: string[] = [];
  monitor.on('event', (e) => events.push(e));
  const incoming = await listen('tcp');
  let ran = false;
  let destGuest: Guest | null = null;
  incoming.on('guest', (g) => {
    destGuest = adopt(g);
    g.on('runstate', (to) => { if (to === 'running') ran = true; });
  });
  return { control, source, monitor, incoming, ran: () => ran, dest: () => destGuest, events };
}

const query = async (qmp: QmpClient) => ({
  run: ((await qmp.execute('query-status')) as { status: string }).status,
  migration: ((await qmp.execute('query-migrate')) as { status?: string }).status,
});

/** Before GO: the source runs on with its RAM intact, and the destination discarded the guest without running it. */
async function assertSourceIntact(monitor: QmpClient, incoming: IncomingMigration, ran: () => boolean): Promise<void> {
  assert.deepEqual(await query(monitor), { run: 'running', migration: 'cancelled' });
  assert.deepEqual(await monitor.execute('x-ferry-check'), { checked: 1, ok: true, errors: [] }, 'the source passes the sweep checker');
  const r = await bounded('the destination to end', incoming.done(), 30_000);
  assert.equal(r.guest, null, 'the destination discarded the partial guest');
  assert.equal(ran(), false, 'the destination never ran it: one copy');
}

/** A limit it cannot meet on a slow link: the migration stays active until cancelled. */
const NEVER_CONVERGES = ['--downtime-limit', '1', '--max-bandwidth', '1M'];

test('Ctrl-C on ferry migrate cancels the migration it started, says so, and exits 1; the source runs on intact', async () => {
  const { control, source, monitor, incoming, ran } = await setup('sigint');
  try {
    const migrate = spawnFerry(['migrate', '--qmp', control, '--to', incoming.uri, ...NEVER_CONVERGES, '--baseline', '0']);
    await until('the migration to be active', async () => (await query(monitor)).migration === 'active', 30_000);
    migrate.child.kill('SIGINT');
    const exit = await migrate.exit('ferry migrate to exit after SIGINT');
    assert.deepEqual(exit, { code: 1, signal: null }, `stdout: ${migrate.stdout()} stderr: ${migrate.stderr()}`);
    assert.match(migrate.stderr(), /ferry migrate: SIGINT: cancelling the migration \(migrate_cancel sent\)/);
    assert.match(migrate.stdout(), /Migration: \[cancelled\] after SIGINT/);
    await assertSourceIntact(monitor, incoming, ran);
  } finally {
    monitor.close();
    source.child.kill();
  }
});

test('a second ferry migrate against a guest already migrating changes nothing and prints one line; ferry cancel cancels it', async () => {
  const { control, source, monitor, incoming, ran } = await setup('second');
  try {
    await monitor.execute('migrate-set-parameters', { 'downtime-limit': 1, 'max-bandwidth': 1024 * 1024 });
    await monitor.execute('migrate', { uri: incoming.uri });
    await until('the first migration to be active', async () => (await query(monitor)).migration === 'active', 30_000);
    const before = [await monitor.execute('query-migrate-parameters'), await monitor.execute('query-migrate-capabilities')];
    const second = spawnFerry(['migrate', '--qmp', control, '--to', 'tcp:127.0.0.1:9', '--downtime-limit', '77', '--verify']);
    assert.deepEqual(await second.exit('the second ferry migrate to exit'), { code: 1, signal: null });
    assert.equal(second.stdout(), '');
    assert.match(second.stderr(), /^ferry migrate: refused: this guest is already migrating \(status active, pass \d+, [\d.]+ s so far\); nothing was changed/);
    assert.equal(second.stderr().trim().split('\n').length, 1, `one line: ${second.stderr()}`);
    assert.deepEqual([await monitor.execute('query-migrate-parameters'), await monitor.execute('query-migrate-capabilities')], before, 'nothing was changed');
    assert.equal((await query(monitor)).migration, 'active', 'the first migration runs on');

    const cancel = spawnFerry(['cancel', '--qmp', control]);
    assert.deepEqual(await cancel.exit('ferry cancel to exit'), { code: 0, signal: null }, cancel.stderr());
    assert.match(cancel.stdout(), /migrate_cancel sent/);
    assert.match(cancel.stdout(), /^migration cancelled; guest running$/m, 'it prints the state it left');
    await assertSourceIntact(monitor, incoming, ran);

    const again = spawnFerry(['cancel', '--qmp', control]);
    assert.deepEqual(await again.exit('a second ferry cancel to exit'), { code: 1, signal: null });
    assert.match(again.stdout(), /no migration in progress \(the last one ended cancelled\); guest running/);
  } finally {
    monitor.close();
    source.child.kill();
  }
});

test('past GO, SIGINT on ferry migrate, SIGTERM on the source process and quit are refused with a message; the migration completes; one copy runs', async () => {
  const { control, source, monitor, incoming, dest, events } = await setup('past-go');
  const link = await HeldLink.open(incoming.uri);
  try {
    const migrate = spawnFerry(['migrate', '--qmp', control, '--to', link.uri, '--switchover-timeout', '60000', '--baseline', '0']);
    await until('the source to commit and the destination to run the guest, RESUMED held',
      async () => dest()?.runState === 'running' && (await query(monitor)).run === 'postmigrate', 60_000);
    const resumesBefore = events.filter((e) => e === 'RESUME').length;

    migrate.child.kill('SIGINT');
    await migrate.line(/ferry migrate: SIGINT refused: the migration is past GO \(status device/, 'ferry migrate to refuse SIGINT');
    source.child.kill('SIGTERM');
    await source.line(/ferry: SIGTERM refused: the migration to tcp:127\.0\.0\.1:\d+ is past GO/, 'the source process to refuse SIGTERM');
    await assert.rejects(monitor.execute('quit'), /Refusing to quit: .* this process may hold the only copy/);
    assert.equal(migrate.alive() && source.alive(), true, 'both processes run on');

    link.release();
    assert.deepEqual(await migrate.exit('ferry migrate to exit once the migration completed'), { code: 0, signal: null }, migrate.stderr());
    assert.match(migrate.stdout(), /status\s+completed/);
    assert.deepEqual(await query(monitor), { run: 'postmigrate', migration: 'completed' });
    assert.equal(events.filter((e) => e === 'RESUME').length, resumesBefore, 'the source never ran again: one copy');
    await dest()!.pause();
    assertSweeps(dest()!, 'the destination after the held RESUMED');
    assert.deepEqual(await monitor.execute('quit'), {}, 'once completed, quit is plain');
    assert.deepEqual(await source.exit('the source process to quit'), { code: 0, signal: null });
  } finally {
    link.close();
    monitor.close();
    source.child.kill('SIGKILL');
  }
});
