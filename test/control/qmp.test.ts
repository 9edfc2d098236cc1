import assert from 'node:assert/strict';
import net from 'node:net';
import { after, test } from 'node:test';
import { GuestController } from '../../src/control/controller.js';
import { JsonStreamSplitter } from '../../src/control/json-stream.js';
import { ProbeProcess } from '../../src/client/probe-process.js';
import { QmpClient } from '../../src/control/qmp-client.js';
import { QmpServer } from '../../src/control/qmp-server.js';
import { IncomingMigration } from '../../src/migration/incoming.js';
import { MiB, address, adopt, assertSweeps, destroyAll, guest, sleep } from '../migration/helpers.js';
import { bounded, fileLimit, until } from '../waits.js';

fileLimit(import.meta.url, 240_000);
after(destroyAll);

/** A raw client: write text, read every JSON value the server sends. */
async function raw(uri: string): Promise<{ values: Record<string, unknown>[]; write(s: string): void; next(n: number): Promise<Record<string, unknown>[]>; socket: net.Socket }> {
  const where = uri.startsWith('unix:') ? { path: uri.slice(5) } : { host: '127.0.0.1', port: Number(uri.split(':')[2]) };
  const socket = net.connect(where as net.NetConnectOpts);
  await new Promise((r) => socket.once('connect', r));
  const values: Record<string, unknown>[] = [];
  const splitter = new JsonStreamSplitter((t) => values.push(JSON.parse(t) as Record<string, unknown>));
  socket.setEncoding('utf8');
  socket.on('data', (c: string) => splitter.feed(c));
  return {
    values, socket,
    write: (s) => socket.write(s),
    next: (n) => until(`${n} JSON values from the QMP server (have ${values.length})`, () => values.length >= n && values.splice(0, n), 10_000, 5),
  };
}

test('the JSON stream splitter finds values across chunks, strings and nesting', () => {
  const got: string[] = [];
  const s = new JsonStreamSplitter((t) => got.push(t), 64);
  for (const piece of ['{"a":"}{\\"', '"}', ' [1,[2]]\n{"b"', ':{"c":[]}}', '  42 ']) s.feed(piece);
  assert.deepEqual(got.map((t) => JSON.parse(t)), [{ a: '}{"' }, [1, [2]], { b: { c: [] } }, 42]);
  assert.throws(() => s.feed(`{"x":"${'y'.repeat(100)}`), /longer than 64 bytes/);
});

for (const kind of ['unix', 'tcp'] as const) {
  test(`QMP over ${kind}: greeting, negotiation, commands, errors, split writes, several clients`, async () => {
    const g = await guest({ ram: 4 * MiB, vcpus: [{ kind: 'idle' }] });
    const server = await QmpServer.listen(address(kind, 'qmp'), new GuestController(g));
    try {
      const a = await raw(server.uri);
      const [greeting] = await a.next(1);
      assert.deepEqual((greeting.QMP as { version: { qemu: unknown } }).version.qemu, { major: 7, minor: 2, micro: 0 });
      a.write('{"execute": "query-status", "id": 1}');
      assert.deepEqual(await a.next(1), [{ error: { class: 'CommandNotFound', desc: "Expecting capabilities negotiation with 'qmp_capabilities'" }, id: 1 }]);
      a.write('{"execute": "qmp_');
      await sleep(20);
      a.write('capabilities"}\n{"execute":\n "query-status", "id": "x"}');
      assert.deepEqual(await a.next(2), [{ return: {} }, { return: { status: 'prelaunch', singlestep: false, running: false }, id: 'x' }]);
      a.write('{not json}{"execute": "nope", "id": 2}{"execute": "migrate", "arguments": {"uri": 5}, "id": 3}[1]');
      const errs = await a.next(4);
      assert.equal((errs[0].error as { class: string }).class, 'GenericError');
      assert.deepEqual(errs[1], { error: { class: 'CommandNotFound', desc: 'The command nope has not been found' }, id: 2 });
      assert.deepEqual(errs[2], { error: { class: 'GenericError', desc: "Invalid parameter type for 'uri', expected: string" }, id: 3 });
      assert.deepEqual(errs[3], { error: { class: 'GenericError', desc: 'QMP input must be a JSON object' } });
      // A second client at once; both receive STOP / RESUME events.
      const b = await QmpClient.connect(server.uri);
      const events: string[] = [];
      b.on('event', (name) => events.push(name));
      await b.execute('cont');
      a.write('{"execute":"stop"}');
      await a.next(3); // RESUME, return, STOP (in some order)
      assert.deepEqual(events, ['RESUME', 'STOP']);
      assert.deepEqual(await b.execute('query-status'), { status: 'paused', singlestep: false, running: false });
      await assert.rejects(b.execute('migrate-set-parameters', { 'downtime-limit': -1 }), /Parameter 'downtime-limit' must be an integer in \[1, 2000000\], got -1/);
      await assert.rejects(b.execute('migrate-set-parameters', { 'speed-of-light': 1 }), /Parameter 'speed-of-light' is unexpected/);
      await b.execute('migrate-set-parameters', { 'downtime-limit': 50, 'max-bandwidth': 1000000 });
      const p = (await b.execute('query-migrate-parameters')) as Record<string, number>;
      assert.equal(p['downtime-limit'], 50);
      assert.equal(p['max-bandwidth'], 1000000);
      assert.deepEqual(await b.execute('query-migrate'), {});
      assert.deepEqual(await b.execute('query-version'), { qemu: { major: 7, minor: 2, micro: 0 }, package: 'ferry' });
      const names = ((await b.execute('query-commands')) as { name: string }[]).map((c) => c.name);
      for (const n of ['qmp_capabilities', 'migrate', 'query-migrate', 'migrate_cancel', 'migrate-incoming', 'quit']) assert.ok(names.includes(n), n);
      await assert.rejects(b.execute('query-cpus-fast'), { errorClass: 'CommandNotFound' });
      b.close();
      a.socket.end();
    } finally {
      server.close();
    }
  });
}

test('the control socket is created 0600; TCP control sockets are loopback-only unless told otherwise', async () => {
  const { statSync } = await import('node:fs');
  const g = await guest({ ram: 4 * MiB, vcpus: [] });
  const uri = address('unix', 'mode');
  const server = await QmpServer.listen(uri, new GuestController(g));
  try {
    assert.equal(statSync(uri.slice(5)).mode & 0o777, 0o600);
  } finally {
    server.close();
  }
  await assert.rejects(QmpServer.listen('tcp:0.0.0.0:0', new GuestController(g)), /refusing to listen on 0\.0\.0\.0, not a loopback address/);
  const open = await QmpServer.listen('tcp:0.0.0.0:0', new GuestController(g), { allowNonLoopback: true });
  open.close();
});

test('a client that sends a huge value without finishing it is cut off; others carry on', async () => {
  const g = await guest({ ram: 4 * MiB, vcpus: [] });
  const server = await QmpServer.listen(address('unix', 'qmp'), new GuestController(g));
  try {
    const good = await QmpClient.connect(server.uri);
    const bad = await raw(server.uri);
    await bad.next(1);
    const closed = new Promise((r) => bad.socket.once('close', r));
    const piece = `{"execute":"${'x'.repeat(64 * 1024)}`;
    bad.write(piece);
    for (let i = 0; i < 20 && !bad.socket.destroyed; i++) bad.write('x'.repeat(64 * 1024));
    await closed;
    assert.deepEqual(await good.execute('query-status'), { status: 'prelaunch', singlestep: false, running: false });
    good.close();
  } finally {
    server.close();
  }
});

test('the stall probe in its own process probes, samples on the caller\'s clock, and returns them at stop', async () => {
  const g = await guest({ ram: 4 * MiB, vcpus: [] });
  const server = await QmpServer.listen(address('unix', 'qmp'), new GuestController(g));
  const probe = await ProbeProcess.spawn(server.uri, { realtime: true });
  try {
    assert.match(probe.priority, /^(SCHED_FIFO \d+|normal priority.*)$/);
    const from = probe.now();
    probe.start();
    await sleep(200);
    const to = probe.now();
    await probe.stop();
    const inside = probe.samples.filter((x) => x.atMs >= from && x.atMs < to);
    // At most one request every 5 ms; it may start late (a loaded machine), never early.
    assert.ok(inside.length >= 1 && inside.length <= Math.floor((to - from) / 5) + 1, `${inside.length} samples in ${(to - from).toFixed(0)} ms`);
    assert.ok(probe.samples.every((x) => x.atMs >= from - 1 && x.rttMs > 0));
    for (let i = 1; i < probe.samples.length; i++) assert.ok(probe.samples[i].atMs > probe.samples[i - 1].atMs);
    assert.equal(probe.between(from, to).samples, inside.length);
  } finally {
    probe.close();
    server.close();
  }
});

for (const kind of ['unix', 'tcp'] as const) test(`a whole migration driven through QMP over ${kind}, with MIGRATION events only once the events capability is on`, async () => {
  const src = await guest({ ram: 8 * MiB, vcpus: [{ kind: 'sweep', sweepsPerSec: 20 }] });
  await src.cont();
  const server = await QmpServer.listen(address(kind, 'qmp'), new GuestController(src));
  const incoming = await IncomingMigration.listen('tcp:127.0.0.1:0');
  try {
    const qmp = await QmpClient.connect(server.uri);
    const events: [string, unknown][] = [];
    qmp.on('event', (name, data) => events.push([name, data]));
    await qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'events', state: true }, { capability: 'x-ferry-verify', state: true }] });
    await qmp.execute('migrate', { uri: incoming.uri });
    await assert.rejects(qmp.execute('migrate', { uri: incoming.uri }), /migration process in progress/);
    type Info = { status: string; ram?: { total: number }; downtime?: number };
    const info = await until('query-migrate to say completed or failed', async () => {
      const i = (await qmp.execute('query-migrate')) as Info;
      return (i.status === 'completed' || i.status === 'failed') && i;
    }, 60_000, 20);
    assert.equal(info.status, 'completed');
    assert.equal(info.ram?.total, 8 * MiB);
    assert.ok((info.downtime ?? 0) > 0);
    const statuses = events.filter(([n]) => n === 'MIGRATION').map(([, d]) => (d as { status: string }).status);
    assert.deepEqual(statuses, ['setup', 'active', 'device', 'completed']);
    assert.ok(events.some(([n]) => n === 'MIGRATION_PASS'));
    assert.ok(events.some(([n]) => n === 'STOP'));
    qmp.close();
    const dest = await incoming.done();
    assert.equal(dest.stats?.verified, true);
    const g = adopt(dest.guest)!;
    await g.pause();
    assertSweeps(g, 'destination');
  } finally {
    server.close();
  }
});

test('x-ferry-query-passes with since answers only the passes from that number on; the whole history stays', async () => {
  const src = await guest({ ram: 2 * MiB, vcpus: [{ kind: 'sweep', sweepsPerSec: 50 }] });
  await src.cont();
  const ctl = new GuestController(src);
  const server = await QmpServer.listen(address('unix', 'qmp'), ctl);
  const incoming = await IncomingMigration.listen('tcp:127.0.0.1:0');
  try {
    const qmp = await QmpClient.connect(server.uri);
    let events = 0;
    qmp.on('event', (name) => { if (name === 'MIGRATION_PASS') events++; });
    await qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'events', state: true }] });
    await qmp.execute('migrate-set-parameters', { 'downtime-limit': 1 }); // the fixed cost alone exceeds it: iterate
    await qmp.execute('migrate', { uri: incoming.uri });
    type Pass = { pass: number; decision: string };
    const all = await until('three passes', async () => {
      const passes = (await qmp.execute('x-ferry-query-passes')) as Pass[];
      return passes.length >= 3 && passes;
    }, 60_000);
    const later = (await qmp.execute('x-ferry-query-passes', { since: 2 })) as Pass[];
    assert.ok(later.length >= all.length - 1);
    assert.deepEqual(later.map((p) => p.pass), later.map((_, i) => i + 2), 'passes 2, 3, ... and nothing before');
    assert.deepEqual(later.slice(0, all.length - 1), all.slice(1));
    assert.deepEqual(await qmp.execute('x-ferry-query-passes', { since: 1_000_000 }), []);
    await assert.rejects(qmp.execute('x-ferry-query-passes', { since: -1 }), /'since' expects a pass number/);
    await assert.rejects(qmp.execute('x-ferry-query-passes', { since: '2' }), /Invalid parameter type for 'since'/);
    await assert.rejects(qmp.execute('x-ferry-query-passes', { until: 2 }), /Parameter 'until' is unexpected/);
    await qmp.execute('migrate-set-parameters', { 'downtime-limit': 10_000 });
    const status = await until('query-migrate to say completed or failed', async () => {
      const s = ((await qmp.execute('query-migrate')) as { status: string }).status;
      return (s === 'completed' || s === 'failed') && s;
    }, 60_000);
    assert.equal(status, 'completed');
    const history = (await qmp.execute('x-ferry-query-passes')) as Pass[];
    assert.deepEqual(history.map((p) => p.pass), history.map((_, i) => i + 1), 'every pass, in order, at the end');
    assert.deepEqual(await qmp.execute('x-ferry-query-passes', { since: 0 }), history);
    assert.equal(events, history.length, 'one MIGRATION_PASS event per pass');
    qmp.close();
    adopt((await incoming.done()).guest);
  } finally {
    ctl.migration?.cancel();
    server.close();
    incoming.cancel();
  }
});

for (const kind of ['unix', 'tcp'] as const) test(`a destination behind QMP over ${kind}: inmigrate, migrate-incoming, then the guest that arrived answers commands`, async () => {
  const dstCtl = new GuestController(null);
  const dstServer = await QmpServer.listen(address(kind, 'dst'), dstCtl);
  const src = await guest({ ram: 8 * MiB, vcpus: [{ kind: 'sweep', sweepsPerSec: 20 }] });
  await src.cont();
  try {
    const dst = await QmpClient.connect(dstServer.uri);
    assert.deepEqual(await dst.execute('query-status'), { status: 'inmigrate', singlestep: false, running: false });
    await assert.rejects(dst.execute('cont'), /Guest is waiting for an incoming migration/);
    await assert.rejects(dst.execute('migrate', { uri: 'tcp:127.0.0.1:1' }), /Guest is waiting for an incoming migration/);
    await dst.execute('migrate-incoming', { uri: 'tcp:127.0.0.1:0' });
    await assert.rejects(dst.execute('migrate-incoming', { uri: 'tcp:127.0.0.1:0' }), /already been started/);
    const listening = (await dst.execute('query-migrate')) as { status: string; 'socket-address': { host: string; port: string }[] };
    assert.equal(listening.status, 'setup');
    const [{ host, port }] = listening['socket-address'];
    const { Migration } = await import('../../src/migration/migration.js');
    assert.equal((await Migration.start(src, `tcp:${host}:${port}`).done()).status, 'completed');
    await until('the destination\'s query-migrate to say completed', async () => ((await dst.execute('query-migrate')) as { status: string }).status === 'completed', 30_000);
    assert.deepEqual(await dst.execute('query-status'), { status: 'running', singlestep: false, running: true });
    assert.deepEqual(await dst.execute('x-ferry-check'), { checked: 1, ok: true, errors: [] });
    await dst.execute('stop');
    dst.close();
  } finally {
    dstServer.close();
    adopt(dstCtl.guest);
  }
});

for (const kind of ['unix', 'tcp'] as const) test(`migrate_cancel, capabilities and quit through QMP over ${kind}; no MIGRATION events without the capability`, async () => {
  const src = await guest({ ram: 8 * MiB, vcpus: [{ kind: 'sweep', sweepsPerSec: 50 }] });
  await src.cont();
  const ctl = new GuestController(src);
  const server = await QmpServer.listen(address(kind, 'qmp'), ctl);
  const incoming = await IncomingMigration.listen('tcp:127.0.0.1:0');
  let opened: QmpClient | null = null;
  try {
    const qmp = await QmpClient.connect(server.uri);
    opened = qmp;
    const events: string[] = [];
    qmp.on('event', (name) => events.push(name));
    assert.deepEqual(await qmp.execute('query-migrate-capabilities'), [{ capability: 'auto-converge', state: false }, { capability: 'dirty-limit', state: false }, { capability: 'postcopy-ram', state: false }, { capability: 'postcopy-blocktime', state: false }, { capability: 'multifd', state: false }, { capability: 'xbzrle', state: false }, { capability: 'events', state: false }, { capability: 'x-ferry-verify', state: false }, { capability: 'x-ferry-mainloop', state: false }]);
    await assert.rejects(qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'x-colo', state: true }] }), /does not accept value 'x-colo'/);
    await qmp.execute('migrate-set-parameters', { 'downtime-limit': 1, 'max-bandwidth': 2 * MiB });
    await qmp.execute('migrate', { uri: incoming.uri });
    const status = async () => ((await qmp.execute('query-migrate')) as { status: string }).status;
    // 1 ms of downtime at 2 MiB/s against 50 sweeps/s: it stays active until cancelled.
    assert.equal(await until('the migration to leave setup', async () => { const s = await status(); return s !== 'setup' && s; }, 30_000), 'active');
    await qmp.execute('migrate_cancel');
    await qmp.execute('migrate_cancel');
    await until('query-migrate to say cancelled', async () => (await status()) === 'cancelled', 30_000);
    assert.deepEqual(await qmp.execute('query-status'), { status: 'running', singlestep: false, running: true });
    assert.deepEqual(events.filter((e) => e.startsWith('MIGRATION')), [], 'no MIGRATION events without the events capability');
    const quit = new Promise<void>((r) => ctl.once('quit', () => r()));
    assert.deepEqual(await qmp.execute('quit'), {});
    await quit;
  } finally {
    // Whatever failed above: no migration, client or listener outlives the test.
    ctl.migration?.cancel();
    opened?.close();
    server.close();
    incoming.cancel();
  }
});

test('QMP errors that came from a ferry error carry its code as x-ferry-code beside class and desc; query-migrate beside error-desc', { timeout: 30_000 }, async () => {
  const g = await guest({ ram: 4 * MiB, vcpus: [{ kind: 'idle' }] });
  await g.cont();
  const ctl = new GuestController(g);
  const server = await QmpServer.listen(address('unix', 'qmp'), ctl);
  const a = await raw(server.uri);
  const qmp = await QmpClient.connect(server.uri);
  try {
    await a.next(1);
    a.write('{"execute":"qmp_capabilities"}');
    await a.next(1);
    a.write('{"execute":"migrate","arguments":{"uri":"carrier-pigeon:home"},"id":1}{"execute":"migrate","id":2}');
    assert.deepEqual(await a.next(2), [
      { error: { class: 'GenericError', desc: 'migration URI "carrier-pigeon:home": unknown transport "carrier-pigeon"; use tcp:HOST:PORT, unix:PATH or file:PATH', 'x-ferry-code': 'ERR_FERRY_INVALID_ARGUMENT' }, id: 1 },
      { error: { class: 'GenericError', desc: "Parameter 'uri' is missing" }, id: 2 }, // QMP's own error: no ferry code
    ]);
    await assert.rejects(qmp.execute('migrate-set-parameters', { 'downtime-limit': -1 }), { errorClass: 'GenericError', ferryCode: 'ERR_FERRY_INVALID_ARGUMENT' });
    await qmp.execute('migrate-set-parameters', { 'x-ferry-switchover-timeout': 2000 });
    await qmp.execute('migrate', { uri: 'tcp:127.0.0.1:1' });
    await bounded('the migration to the unreachable destination to fail', ctl.migration!.done(), 30_000);
    const info = (await qmp.execute('query-migrate')) as Record<string, unknown>;
    assert.equal(info.status, 'failed');
    assert.match(String(info['error-desc']), /^cannot reach the destination at 127\.0\.0\.1:1/);
    assert.equal(info['x-ferry-error-code'], 'ERR_FERRY_TRANSPORT');
  } finally {
    qmp.close();
    a.socket.destroy();
    server.close();
  }
});
