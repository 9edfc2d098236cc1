import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, test } from 'node:test';
import { IncomingMigration } from '../../src/migration/incoming.js';
import { Migration } from '../../src/migration/migration.js';
import { MiB, adopt, assertSweeps, destroyAll, guest, sleep } from '../migration/helpers.js';
import { makeCerts } from './certs.js';
import { bounded, fileLimit, until } from '../waits.js';

fileLimit(import.meta.url, 300_000);

after(destroyAll);
const certs = makeCerts();

async function source() {
  const g = await guest({ ram: 4 * MiB, vcpus: [{ kind: 'sweep', sweepsPerSec: 20 }] });
  await g.cont();
  return g;
}

test('TLS with x509 both ways: a matching peer migrates', async () => {
  const src = await source();
  const incoming = await IncomingMigration.listen('tcp:127.0.0.1:0', { tls: { cert: certs.server.cert, key: certs.server.key, ca: certs.ca } });
  const r = await Migration.start(src, incoming.uri, {}, { verify: true, tls: { ca: certs.ca, cert: certs.client.cert, key: certs.client.key, hostname: 'localhost' } }).done();
  assert.equal(r.status, 'completed', r.error ?? '');
  const dest = await incoming.done();
  assert.equal(dest.stats?.verified, true);
  const g = adopt(dest.guest)!;
  await sleep(20);
  await g.pause();
  assertSweeps(g, 'destination over TLS');
});

test('TLS on 3 channels (multifd): every channel makes its own handshake, and every page lands', async () => {
  const src = await source();
  const incoming = await IncomingMigration.listen('tcp:127.0.0.1:0', { tls: { cert: certs.server.cert, key: certs.server.key, ca: certs.ca } });
  const tls = { ca: certs.ca, cert: certs.client.cert, key: certs.client.key, hostname: 'localhost' };
  const r = await Migration.start(src, incoming.uri, { multifdChannels: 3 }, { verify: true, multifd: true, tls }).done();
  assert.equal(r.status, 'completed', r.error ?? '');
  const dest = await incoming.done();
  assert.equal(dest.stats?.verified, true);
  assert.equal(dest.stats?.channels, 3, 'the three channels came over TLS');
  const g = adopt(dest.guest)!;
  await g.pause();
  assertSweeps(g, 'destination over TLS on channels');
});

test('TLS: the wrong hostname, an untrusted client and an anonymous client are refused; the source keeps running', async () => {
  const serverTls = { cert: certs.server.cert, key: certs.server.key, ca: certs.ca };
  const cases = [
    { name: 'wrong hostname', tls: { ca: certs.ca, cert: certs.client.cert, key: certs.client.key, hostname: 'elsewhere.test' }, error: /TLS with the destination failed.*(elsewhere\.test|altnames)/i },
    { name: 'untrusted client', tls: { ca: certs.ca, cert: certs.rogueClient.cert, key: certs.rogueClient.key, hostname: 'localhost' }, error: /before it was ready \(with TLS: it did not accept the credentials this side presented\)/ },
    { name: 'anonymous client', tls: { ca: certs.ca, hostname: 'localhost' }, error: /before it was ready \(with TLS: it did not accept the credentials this side presented\)/ },
    { name: 'untrusted server', tls: { ca: certs.rogueCa, cert: certs.client.cert, key: certs.client.key, hostname: 'localhost' }, error: /TLS with the destination failed.*(self.signed|unable to verify|certificate)/i },
  ];
  for (const c of cases) {
    const src = await source();
    const incoming = await IncomingMigration.listen('tcp:127.0.0.1:0', { tls: serverTls });
    const r = await Migration.start(src, incoming.uri, { switchoverTimeoutMs: 3000 }, { tls: c.tls }).done();
    assert.equal(r.status, 'failed', c.name);
    assert.match(r.error ?? '', c.error, c.name);
    assert.equal(src.runState, 'running', `${c.name}: the source keeps running`);
    assert.equal(incoming.status, 'listening', `${c.name}: the destination refused it and still waits for its source`);
    incoming.cancel();
    assert.equal((await incoming.done()).guest, null);
  }
});

test('TLS with a pre-shared key: the same key migrates, another key is refused', async () => {
  const key = randomBytes(32);
  const src = await source();
  const incoming = await IncomingMigration.listen('tcp:127.0.0.1:0', { tls: { psk: { identity: 'ferry', key } } });
  const bad = await Migration.start(src, incoming.uri, { switchoverTimeoutMs: 3000 }, { tls: { psk: { identity: 'ferry', key: randomBytes(32) } } }).done();
  assert.equal(bad.status, 'failed');
  assert.equal(src.runState, 'running');
  const good = await Migration.start(src, incoming.uri, {}, { tls: { psk: { identity: 'ferry', key } } }).done();
  assert.equal(good.status, 'completed', good.error ?? '');
  adopt((await incoming.done()).guest);
});

test('a destination refuses to listen on a non-loopback address without TLS unless told to', async () => {
  await assert.rejects(IncomingMigration.listen('tcp:0.0.0.0:0'), /refusing to listen on 0\.0\.0\.0 without TLS/);
  const open = await IncomingMigration.listen('tcp:0.0.0.0:0', { allowInsecure: true });
  open.cancel();
  await open.done();
  const secure = await IncomingMigration.listen('tcp:0.0.0.0:0', { tls: { cert: certs.server.cert, key: certs.server.key } });
  secure.cancel();
  await secure.done();
  await assert.rejects(IncomingMigration.listen('tcp:127.0.0.1:0', { tls: { ca: certs.ca } }), /destination needs its certificate and key/);
});

test('the CLI migrates between two processes over TLS with certificate files, and says what was wrong with a bad one', async () => {
  const { execFile, spawn } = await import('node:child_process');
  const { promisify } = await import('node:util');
  const { mkdtempSync, writeFileSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { fileURLToPath } = await import('node:url');
  const run = promisify(execFile);
  const ferry = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
  const dir = mkdtempSync(join(tmpdir(), 'ferry-tls-cli-'));
  const file = (name: string, text: string) => { writeFileSync(join(dir, name), text); return join(dir, name); };
  const ca = file('ca.pem', certs.ca);
  const dest = spawn(process.execPath, [ferry, 'incoming', '--listen', 'tcp:127.0.0.1:0', '--seconds', '0.1', '--json',
    '--tls-cert', file('dest.pem', certs.server.cert), '--tls-key', file('dest.key', certs.server.key), '--tls-ca', ca], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  dest.stdout.on('data', (d: Buffer) => { out += d.toString(); });
  const exited = new Promise<void>((r) => dest.on('exit', () => r()));
  await until('the TLS destination process to print where it listens', () => out.includes('\n'), 30_000);
  const { uri } = JSON.parse(out.split('\n')[0]) as { uri: string };
  const { stdout } = await run(process.execPath, [ferry, 'run', '--ram', '8M', '--seconds', '0.2', '--migrate-to', uri, '--json',
    '--tls-ca', ca, '--tls-cert', file('src.pem', certs.client.cert), '--tls-key', file('src.key', certs.client.key), '--tls-hostname', 'localhost'], { timeout: 30_000 });
  assert.equal((JSON.parse(stdout) as { status: string }).status, 'completed');
  await bounded('the TLS destination process to exit', exited, 30_000);
  await assert.rejects(run(process.execPath, [ferry, 'run', '--migrate-to', uri, '--tls-ca', join(dir, 'missing.pem')]), /--tls-ca: cannot read .*missing\.pem/);
});
