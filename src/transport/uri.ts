/**
 * Migration addresses, as QEMU writes them: `tcp:HOST:PORT` (IPv6 hosts in
 * brackets), `unix:PATH`, `file:PATH`; and control sockets' (no `file:`).
 */
import { InvalidArgumentError } from '../errors.js';

export type MigrationUri =
  | { readonly kind: 'tcp'; readonly host: string; readonly port: number }
  | { readonly kind: 'unix'; readonly path: string }
  | { readonly kind: 'file'; readonly path: string };

/** A migration address; errors call it `what` (a control socket's caller passes its own name: parseControlUri). */
export function parseUri(text: string, what = 'migration URI'): MigrationUri {
  if (typeof text !== 'string') throw new InvalidArgumentError(`${what} must be a string, got ${String(text)}`);
  const colon = text.indexOf(':');
  const scheme = colon < 0 ? '' : text.slice(0, colon);
  const rest = text.slice(colon + 1);
  switch (scheme) {
    case 'tcp': {
      const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(rest);
      const port = m === null ? NaN : Number(m[3]);
      if (m === null || port > 65535) {
        throw new InvalidArgumentError(`${what} ${JSON.stringify(text)}: expected tcp:HOST:PORT with a port of 0-65535`);
      }
      return { kind: 'tcp', host: m[1] ?? (m[2] === '' ? '127.0.0.1' : m[2]), port };
    }
    case 'unix':
    case 'file':
      if (rest === '') throw new InvalidArgumentError(`${what} ${JSON.stringify(text)}: the path is empty`);
      return { kind: scheme, path: rest };
    default:
      throw new InvalidArgumentError(
        `${what} ${JSON.stringify(text)}: unknown transport ${JSON.stringify(scheme)}; use ${what === CONTROL ? 'unix:PATH or tcp:HOST:PORT' : 'tcp:HOST:PORT, unix:PATH or file:PATH'}`);
  }
}

const CONTROL = 'control socket';

/** A QMP control socket's address: `unix:PATH` or `tcp:HOST:PORT`, never a file; errors say "control socket". */
export function parseControlUri(text: string): Exclude<MigrationUri, { kind: 'file' }> {
  const uri = parseUri(text, CONTROL);
  if (uri.kind === 'file') throw new InvalidArgumentError(`${CONTROL} ${JSON.stringify(text)}: a control socket is unix:PATH or tcp:HOST:PORT, not a file`);
  return uri;
}

export function formatUri(uri: MigrationUri): string {
  switch (uri.kind) {
    case 'tcp': return `tcp:${uri.host.includes(':') ? `[${uri.host}]` : uri.host}:${uri.port}`;
    case 'unix': return `unix:${uri.path}`;
    case 'file': return `file:${uri.path}`;
  }
}
