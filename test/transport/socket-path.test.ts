/**
 * Unix socket paths (issue 12 item 7): `--qmp unix:PATH` and `--listen
 * unix:PATH` remove only a stale socket; a regular file, a directory and a
 * live socket are refused with a message naming the path and what is
 * there, and are left as they were (a live guest stays reachable).
 */
import assert from 'node:assert/strict';
import { linkSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { GuestController } from '../../src/control/controller.js';
import { QmpClient } from '../../src/control/qmp-client.js';
import { QmpServer } from '../../src/control/qmp-server.js';
import { IncomingMigration } from '../../src/migration/incoming.js';
import { Migration } from '../../src/migration/migration.js';
import { claimSocketPath } from '../../src/transport/socket-path.js';
import { MiB, adopt, destroyAll, guest } from '../migration/helpers.js';
import { bounded, fileLimit } from '../waits.js';

fileLimit(import.meta.url, 60_000);
const dir = mkdtempSync(join(tmpdir(), 'ferry-socket-path-'));
after(async () => {
  await destroyAll();
  rmSync(dir, { recursive: true, force: true });
});

/** Both ways of listening on a Unix socket: a QMP control socket and a migration destination. */
const listeners: [string, (path: string) => Promise<{ close(): void }>][] = [
  ['QMP control socket', async (path) => QmpServer.listen(`unix:${path}`, new GuestController(null))],
  ['migration destination', async (path) => {
    const incoming = await IncomingMigration.listen(`unix:${path}`);
    return { close: () => incoming.cancel() };
  }],
];

/** A socket file nobody answers on: a hard link to a listening socket, left behind when that socket closes. */
async function staleSocket(path: string): Promise<void> {
  const live = join(dir, `live-${Math.random().toString(36).slice(2)}.sock`);
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(live, r));
  linkSync(live, path);
  await new Promise<void>((r) => server.close(() => r()));
  assert.ok(lstatSync(path).isSocket(), 'the stale socket is there');
}

for (const [name, listenOn] of listeners) {
  test(`${name}: a regular file at the path survives with its contents, and the refusal names the path`, async () => {
    const path = join(dir, `file-${name.replace(/ /g, '-')}`);
    writeFileSync(path, 'precious data\n');
    await assert.rejects(listenOn(path), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'ERR_FERRY_TRANSPORT');
      assert.equal(err.message.includes(`${path} is a regular file; refusing to replace it`), true, err.message);
      return true;
    });
    assert.equal(readFileSync(path, 'utf8'), 'precious data\n');
  });

  test(`${name}: a directory at the path is refused and left alone`, async () => {
    const path = join(dir, `dir-${name.replace(/ /g, '-')}`);
    mkdirSync(path);
    writeFileSync(join(path, 'inside'), 'x');
    await assert.rejects(listenOn(path), { code: 'ERR_FERRY_TRANSPORT', message: /is a directory; refusing to replace it/ });
    assert.equal(readFileSync(join(path, 'inside'), 'utf8'), 'x');
  });

  test(`${name}: a live guest's QMP socket at the path survives, and that guest stays reachable`, async () => {
    const path = join(dir, `live-guest-${name.replace(/ /g, '-')}.qmp`);
    const g = await guest({ ram: 4 * MiB, vcpus: [{ kind: 'idle' }] });
    await g.cont();
    const server = await QmpServer.listen(`unix:${path}`, new GuestController(g));
    let client: QmpClient | null = null;
    try {
      await assert.rejects(listenOn(path), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'ERR_FERRY_TRANSPORT');
        assert.equal(err.message.includes(`${path} is in use by a running process`), true, err.message);
        return true;
      });
      assert.ok(lstatSync(path).isSocket(), 'the live socket is still there');
      client = await bounded('the live guest to answer on its socket', QmpClient.connect(`unix:${path}`), 10_000);
      assert.deepEqual(await client.execute('query-status'), { status: 'running', singlestep: false, running: true });
    } finally {
      client?.close();
      server.close();
    }
  });

  test(`${name}: a stale socket at the path is replaced`, async () => {
    const path = join(dir, `stale-${name.replace(/ /g, '-')}.sock`);
    await staleSocket(path);
    const listener = await listenOn(path);
    try {
      const socket = net.connect({ path });
      await bounded('a connection to the new socket', new Promise<void>((resolve, reject) => {
        socket.once('connect', resolve);
        socket.once('error', reject);
      }), 10_000);
      socket.destroy();
    } finally {
      listener.close();
    }
  });
}

test('claimSocketPath: nothing there is free; a stale socket is removed', async () => {
  await claimSocketPath(join(dir, 'nothing-here'), 'test');
  const stale = join(dir, 'stale-direct.sock');
  await staleSocket(stale);
  await claimSocketPath(stale, 'test');
  assert.throws(() => lstatSync(stale), { code: 'ENOENT' });
});

test('a destination waiting on a Unix socket is not taken by the probe of a refused second listener, and still takes its source', async () => {
  const path = join(dir, 'waiting-destination.sock');
  const incoming = await IncomingMigration.listen(`unix:${path}`);
  try {
    await assert.rejects(claimSocketPath(path, 'test'), { code: 'ERR_FERRY_TRANSPORT', message: /is in use by a running process/ });
    const g = await guest({ ram: 4 * MiB, vcpus: [{ kind: 'idle' }] });
    await g.cont();
    const m = Migration.start(g, `unix:${path}`);
    const r = await bounded('the migration to the waiting destination', m.done(), 30_000);
    assert.equal(r.status, 'completed', `the source says: ${r.error}`);
    const arrived = await bounded('the destination to resume the guest', incoming.done(), 30_000);
    adopt(arrived.guest);
    assert.equal(arrived.status, 'resumed', `the destination says: ${arrived.error}`);
  } finally {
    incoming.cancel();
  }
});
