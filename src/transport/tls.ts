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
