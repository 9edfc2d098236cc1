/** Test certificates, made at test time with Debian's openssl: a CA, a server, a client, and a rogue client. */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Pem {
  cert: string;
  key: string;
}

export interface TestCerts {
  ca: string;
  server: Pem;
  client: Pem;
  rogueCa: string;
  rogueClient: Pem;
}

export function makeCerts(): TestCerts {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-certs-'));
  const f = (name: string) => join(dir, name);
  const ssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
  const ca = (name: string) => ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', `/CN=${name}`,
    '-keyout', f(`${name}.key`), '-out', f(`${name}.pem`));
  const leaf = (name: string, signer: string, san: string) => {
    ssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${name}`, '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`));
    writeFileSync(f(`${name}.ext`), `subjectAltName=${san}\n`);
    ssl('x509', '-req', '-in', f(`${name}.csr`), '-CA', f(`${signer}.pem`), '-CAkey', f(`${signer}.key`), '-CAcreateserial',
      '-days', '2', '-extfile', f(`${name}.ext`), '-out', f(`${name}.pem`));
  };
  ca('ferry-test-ca');
  ca('rogue-ca');
  leaf('destination', 'ferry-test-ca', 'DNS:localhost,IP:127.0.0.1');
  leaf('source', 'ferry-test-ca', 'DNS:source.test');
  leaf('rogue', 'rogue-ca', 'DNS:rogue.test');
  const pem = (name: string): Pem => ({ cert: readFileSync(f(`${name}.pem`), 'utf8'), key: readFileSync(f(`${name}.key`), 'utf8') });
  return {
    ca: readFileSync(f('ferry-test-ca.pem'), 'utf8'),
    server: pem('destination'),
    client: pem('source'),
    rogueCa: readFileSync(f('rogue-ca.pem'), 'utf8'),
    rogueClient: pem('rogue'),
  };
}
