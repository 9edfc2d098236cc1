/**
 * TLS for migration channels, with Node's `tls` (QEMU's tls-creds,
 * tls-hostname and tls-authz ideas): x509 certificates with peer
 * verification both ways, or a pre-shared key. Options are plain data
 * (PEM text, key bytes) so they cross into the migration threads.
 *
 * - Source (client): verifies the destination's certificate against `ca`
 *   and its name against `hostname` (default: the host it connects to);
 *   presents `cert`/`key` when the destination asks for a client certificate.
 * - Destination (server): presents `cert`/`key`; with `ca` set it requires
 *   a client certificate signed by that CA (anonymous and untrusted
 *   clients are refused), as QEMU's tls-creds with verify-peer=on.
 * - PSK: both sides share `psk.key` under `psk.identity` (TLS 1.2 PSK
 *   cipher suites); no certificates involved.
 *
 * OpenSSL's and Node's TLS errors reach the user as a sentence saying what
 * is wrong and what to change, with the raw text after it (explainTlsError).
 */
import net from 'node:net';
import tls from 'node:tls';
import { InvalidArgumentError } from '../errors.js';

export interface TlsOptions {
  /** PEM: the CA that signed the peer's certificate. */
  readonly ca?: string;
  /** PEM: this side's certificate and key. */
  readonly cert?: string;
  readonly key?: string;
  /** Source only: the name the destination's certificate must carry (default: the host connected to). */
  readonly hostname?: string;
  /** Pre-shared key instead of certificates. */
  readonly psk?: { readonly identity: string; readonly key: Uint8Array };
}

const PSK_CIPHERS = 'PSK-AES256-GCM-SHA384:PSK-AES128-GCM-SHA256';

export function checkTlsOptions(o: TlsOptions, side: 'source' | 'destination'): void {
  if (o.psk !== undefined) {
    if (o.cert !== undefined || o.ca !== undefined) throw new InvalidArgumentError('TLS: use a pre-shared key or certificates, not both');
    if (typeof o.psk.identity !== 'string' || o.psk.identity.length === 0 || o.psk.key.length < 16) {
      throw new InvalidArgumentError('TLS: a pre-shared key needs an identity and at least 16 bytes of key');
    }
    return;
  }
  if (side === 'destination' && (o.cert === undefined || o.key === undefined)) {
    throw new InvalidArgumentError('TLS: the destination needs its certificate and key (cert, key)');
  }
  if (side === 'source' && o.ca === undefined) {
    throw new InvalidArgumentError("TLS: the source needs the CA that signed the destination's certificate (ca)");
  }
}

/** Client-side options for tls.connect. */
export function clientTls(o: TlsOptions, host: string): tls.ConnectionOptions {
  if (o.psk !== undefined) {
    const { identity, key } = o.psk;
    return { ciphers: PSK_CIPHERS, maxVersion: 'TLSv1.2', checkServerIdentity: () => undefined, pskCallback: () => ({ identity, psk: Buffer.from(key) }) };
  }
  return { ca: o.ca, cert: o.cert, key: o.key, servername: net.isIP(o.hostname ?? host) ? undefined : (o.hostname ?? host),
    checkServerIdentity: (_name, cert) => tls.checkServerIdentity(o.hostname ?? host, cert), rejectUnauthorized: true };
}

/** Server-side options for tls.createServer. */
export function serverTls(o: TlsOptions): tls.TlsOptions {
  if (o.psk !== undefined) {
    const { identity, key } = o.psk;
    return { ciphers: PSK_CIPHERS, maxVersion: 'TLSv1.2', pskCallback: (_socket, id) => (id === identity ? Buffer.from(key) : null) };
  }
  const verifyClient = o.ca !== undefined;
  return { cert: o.cert, key: o.key, ca: o.ca, requestCert: verifyClient, rejectUnauthorized: verifyClient };
}

/** Whether a host name or address is a loopback one. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

const NO_TLS_PEER = 'the peer answered in plaintext, not TLS: a ferry destination started without TLS options does; give both sides TLS options, or neither';
const PSK_DIFFERS = 'the two sides hold different pre-shared keys: give both the same --tls-psk-file';
const NOTHING_SHARED = 'the two sides share no way to speak TLS: one uses a pre-shared key (--tls-psk-file), the other certificates';
const UNTRUSTED_CA = "the destination's certificate is not signed by the CA this side trusts: pass the CA that signed it with --tls-ca";

/**
 * What each TLS error means for a migration, by its code (OpenSSL's
 * ERR_SSL_*, X.509 verification's, Node's). Source-side codes speak of the
 * destination, destination-side ones (the server's tlsClientError) of the source.
 */
const TLS_ERRORS: Readonly<Record<string, string>> = {
  ERR_SSL_WRONG_VERSION_NUMBER: NO_TLS_PEER,
  ERR_SSL_PACKET_LENGTH_TOO_LONG: NO_TLS_PEER,
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: UNTRUSTED_CA,
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: UNTRUSTED_CA,
  UNABLE_TO_GET_ISSUER_CERT: UNTRUSTED_CA,
  SELF_SIGNED_CERT_IN_CHAIN: "the destination's certificate chain ends in a CA this side does not trust: pass that CA with --tls-ca",
  DEPTH_ZERO_SELF_SIGNED_CERT: 'the destination presents a self-signed certificate this side does not trust: pass it with --tls-ca, or give the destination one signed by that CA',
  CERT_HAS_EXPIRED: "the peer's certificate has expired: issue a new one",
  CERT_NOT_YET_VALID: "the peer's certificate is not valid yet: check both hosts' clocks",
  ERR_TLS_CERT_ALTNAME_INVALID: "the destination's certificate does not carry the name this side expects: pass the name it carries with --tls-hostname, or issue one for this name",
  ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED: 'the destination requires a client certificate: pass --tls-cert and --tls-key, signed by the CA it trusts',
  ERR_SSL_TLSV1_ALERT_UNKNOWN_CA: "the peer does not trust this side's certificate: it was not signed by the CA the peer was given (--tls-ca)",
  ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE: "the peer refused this side's certificate",
  ERR_SSL_SSLV3_ALERT_BAD_RECORD_MAC: PSK_DIFFERS,
  ERR_SSL_DECRYPTION_FAILED_OR_BAD_RECORD_MAC: PSK_DIFFERS,
  ERR_SSL_CIPHER_OPERATION_FAILED: PSK_DIFFERS,
  ERR_SSL_TLSV1_ALERT_UNKNOWN_PSK_IDENTITY: 'the destination does not know the pre-shared key identity this side sent: give both sides the same --tls-psk-identity',
  ERR_SSL_PSK_IDENTITY_NOT_FOUND: 'the source sent a pre-shared key identity this destination does not know: give both sides the same --tls-psk-identity',
  ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE: NOTHING_SHARED,
  ERR_SSL_NO_SHARED_CIPHER: NOTHING_SHARED,
  ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE: 'the source presented no certificate, and this destination requires one (it was given --tls-ca): give the source --tls-cert and --tls-key',
  ERR_SSL_UNSUPPORTED_PROTOCOL: 'the two sides support no common TLS version',
  ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION: 'the two sides support no common TLS version',
};

/** A TLS error as a sentence, with the raw text after it; an error without a known code as its raw text. */
export function explainTlsError(err: Error): string {
  const code = (err as NodeJS.ErrnoException).code;
  const raw = err.message.trim();
  const sentence = code === undefined ? undefined : TLS_ERRORS[code];
  return sentence === undefined ? raw : `${sentence} (${code}: ${raw})`;
}
