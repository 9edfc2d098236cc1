/**
 * TLS on one side only, and TLS errors, explained (issue 12, item 5): a
 * plaintext source to a TLS destination is refused at once in words (not a
 * 10 s wait for READY), the reverse says the destination answered in
 * plaintext, and OpenSSL's errors read as a sentence with the raw text
 * after it. In every case the source runs on.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, test } from 'node:test';
import { RefusedError } from '../../src/errors.js';
import { IncomingMigration } from '../../src/migration/incoming.js';
import { Migration } from '../../src/migration/migration.js';
import { explainTlsError } from '../../src/transport/tls.js';
import { MiB, destroyAll, guest } from '../migration/helpers.js';
import { bounded, fileLimit, nextEvent } from '../waits.js';
import { makeCerts } from './certs.js';

fileLimit(import.meta.url, 180_000);
after(destroyAll);
const certs = makeCerts();
const serverTls = { cert: certs.server.cert, key: certs.server.key, ca: certs.ca };
const clientTls = { ca: certs.ca, cert: certs.client.cert, key: certs.client.key, hostname: 'localhost' };
/** Far longer than a refusal takes: a failure that came from this timeout was not refused at once. */
const READY_TIMEOUT_MS = 60_000;
const ENDS_MS = 20_000;

async function source() {
  const g = await guest({ ram: 4 * MiB, vcpus: [{ kind: 'sweep', sweepsPerSec: 20 }] });
  await g.cont();
  return g;
}

test('a plaintext source to a TLS destination is refused at once, in words; the destination keeps listening for its source', async () => {
  const src = await source();
  const incoming = await IncomingMigration.listen('tcp:127.0.0.1:0', { tls: serverTls });
  try {
    const rejected = nextEvent<[string]>('the destination to report the plaintext source', incoming, 'rejected', ENDS_MS);
    const m = Migration.start(src, incoming.uri, { switchoverTimeoutMs: READY_TIMEOUT_MS });
    const err = await bounded('the refusal (well before the READY timeout)', m.completed().then(() => assert.fail('completed'), (e: unknown) => e), ENDS_MS);
    assert.ok(err instanceof RefusedError, `a RefusedError, got ${String(err)}`);
    assert.equal(err.refusal, 'tls');
    assert.match(err.message, /^the destination refused the stream \(tls\): this destination speaks TLS and the source sent plaintext .*--tls-ca/);
    const [reason] = await rejected;
    assert.match(reason, /speaks TLS and the source sent plaintext/);
    assert.equal(src.runState, 'running');
    assert.equal(incoming.status, 'listening', 'still waiting for its source');
    const good = await bounded('a migration with TLS after the refusal', Migration.start(src, incoming.uri, {}, { tls: clientTls }).done(), 60_000);
    assert.equal(good.status, 'completed', good.error ?? '');
    (await bounded('the destination\'s end', incoming.done(), ENDS_MS)).guest?.destroy();
  } finally {
    incoming.cancel();
  }
});

test('a TLS source to a plaintext destination: the source says the destination answered in plaintext, the destination that the source speaks TLS', async () => {
  const src = await source();
  const incoming = await IncomingMigration.listen('tcp:127.0.0.1:0');
  const r = await bounded('the TLS source to fail', Migration.start(src, incoming.uri, { switchoverTimeoutMs: READY_TIMEOUT_MS }, { tls: clientTls }).done(), ENDS_MS);
  assert.equal(r.status, 'failed');
  assert.match(r.error ?? '', /the peer answered in plaintext, not TLS: a ferry destination started without TLS options does.* \(ERR_SSL_WRONG_VERSION_NUMBER: .*wrong version number/);
  const dest = await bounded('the destination\'s end', incoming.done(), ENDS_MS);
  assert.equal(dest.status, 'failed');
  assert.equal(dest.failure?.code, 'ERR_FERRY_REFUSED');
  assert.match(dest.error ?? '', /the source speaks TLS .*this destination was started without TLS: give the destination --tls-cert and --tls-key/);
  assert.equal(src.runState, 'running');
});

test('a plaintext source to a TLS server that answers with an alert says the destination speaks TLS', async () => {
  const src = await source();
  // A TLS 1.2 alert record (fatal, protocol_version), as a TLS server that is not ferry sends to a plaintext client.
  const server = net.createServer((s) => { s.on('error', () => {}); s.end(Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x46])); });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const uri = `tcp:127.0.0.1:${(server.address() as net.AddressInfo).port}`;
    const r = await bounded('the plaintext source to fail', Migration.start(src, uri, { switchoverTimeoutMs: READY_TIMEOUT_MS }).done(), ENDS_MS);
    assert.equal(r.status, 'failed');
    assert.match(r.error ?? '', /^the destination speaks TLS and this side does not: pass the TLS options it expects \(--tls-ca/);
    assert.equal(src.runState, 'running');
  } finally {
    server.close();
  }
});

test('OpenSSL errors at the source read as a sentence with the raw text after it', async () => {
  const cases = [
    { name: 'untrusted destination', tls: { ...clientTls, ca: certs.rogueCa }, server: serverTls,
      error: /TLS with the destination failed at .*: the destination's certificate chain ends in a CA this side does not trust: pass that CA with --tls-ca \(SELF_SIGNED_CERT_IN_CHAIN: self-signed certificate in certificate chain\)/ },
    { name: 'wrong name', tls: { ...clientTls, hostname: 'elsewhere.test' }, server: serverTls,
      error: /the destination's certificate does not carry the name this side expects: pass the name it carries with --tls-hostname.* \(ERR_TLS_CERT_ALTNAME_INVALID: .*elsewhere\.test/ },
    { name: 'another pre-shared key', tls: { psk: { identity: 'ferry', key: randomBytes(32) } }, server: { psk: { identity: 'ferry', key: randomBytes(32) } },
      error: /the two sides hold different pre-shared keys: give both the same --tls-psk-file \(ERR_SSL_SSLV3_ALERT_BAD_RECORD_MAC: .*bad record mac/ },
    { name: 'a key against certificates', tls: { psk: { identity: 'ferry', key: randomBytes(32) } }, server: serverTls,
      error: /share no way to speak TLS: one uses a pre-shared key \(--tls-psk-file\), the other certificates \(ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE: .*handshake failure/ },
  ];
  for (const c of cases) {
    const src = await source();
    const incoming = await IncomingMigration.listen('tcp:127.0.0.1:0', { tls: c.server });
    try {
      const r = await bounded(`${c.name}: the source to fail`, Migration.start(src, incoming.uri, { switchoverTimeoutMs: 5000 }, { tls: c.tls }).done(), ENDS_MS);
      assert.equal(r.status, 'failed', c.name);
      assert.match(r.error ?? '', c.error, c.name);
      assert.equal(src.runState, 'running', `${c.name}: the source runs on`);
    } finally {
      incoming.cancel();
      await bounded(`${c.name}: the destination's end`, incoming.done(), ENDS_MS);
    }
  }
});

test('explainTlsError: a known code becomes a sentence followed by the code and the raw text; an unknown one stays raw', () => {
  const err = (code: string, message: string) => Object.assign(new Error(message), { code });
  assert.equal(explainTlsError(err('CERT_HAS_EXPIRED', 'certificate has expired')),
    "the peer's certificate has expired: issue a new one (CERT_HAS_EXPIRED: certificate has expired)");
  assert.equal(explainTlsError(err('DEPTH_ZERO_SELF_SIGNED_CERT', 'self-signed certificate')),
    'the destination presents a self-signed certificate this side does not trust: pass it with --tls-ca, or give the destination one signed by that CA (DEPTH_ZERO_SELF_SIGNED_CERT: self-signed certificate)');
  assert.match(explainTlsError(err('ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED', 'x:tlsv13 alert certificate required:y\n')),
    /^the destination requires a client certificate: pass --tls-cert and --tls-key, .* \(ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED: x:tlsv13 alert certificate required:y\)$/);
  assert.match(explainTlsError(err('UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'unable to verify the first certificate')),
    /^the destination's certificate is not signed by the CA this side trusts: pass the CA that signed it with --tls-ca \(UNABLE_TO_VERIFY_LEAF_SIGNATURE: /);
  assert.equal(explainTlsError(err('ERR_SOMETHING_ELSE', ' raw text ')), 'raw text');
  assert.equal(explainTlsError(new Error('no code')), 'no code');
});
