/** Option parsing shared by the `ferry` commands: the command line, numbers, workloads, TLS (migration parameters: parameter-flags.ts). */
import { readFileSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { InvalidArgumentError } from '../errors.js';
import { PAGE_SIZE } from '../memory/page.js';
import { checkTlsOptions, type TlsOptions } from '../transport/tls.js';
import { formatUri, type MigrationUri } from '../transport/uri.js';
import type { WorkloadSpec } from '../guest/index.js';

type Options = NonNullable<ParseArgsConfig['options']>;
type Parsed<O extends Options> = ReturnType<typeof parseArgs<{ args: string[]; options: O; strict: true; allowPositionals: false }>>;

/**
 * A command's argv as parseArgs reads it, except that a value starting with
 * a dash and a digit (`--ram -1`, `--downtime-limit -5`) is the flag's
 * value, as if written `--ram=-1`: parseArgs would call it an ambiguous
 * option; the flag's own check then says what it accepts.
 */
export function parseCommandLine<O extends Options>(argv: readonly string[], options: O): Parsed<O> {
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const name = argv[i].startsWith('--') && !argv[i].includes('=') ? argv[i].slice(2) : null;
    if (name !== null && options[name]?.type === 'string' && /^-\.?\d/.test(argv[i + 1] ?? '')) {
      args.push(`${argv[i]}=${argv[++i]}`);
    } else {
      args.push(argv[i]);
    }
  }
  return parseArgs({ args, options, strict: true, allowPositionals: false });
}

export function parseCount(flag: string, text: string, min: number, max: number): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < min || n > max) {
    throw new InvalidArgumentError(`${flag}: expected a whole number from ${min} to ${max}, got ${JSON.stringify(text)}`);
  }
  return n;
}

export function parseNumber(flag: string, text: string, min: number, max: number): number {
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n) || n < min || n > max) {
    throw new InvalidArgumentError(`${flag}: expected a number from ${min} to ${max}, got ${JSON.stringify(text)}`);
  }
  return n;
}

/** One workload per vCPU, each on its own equal share of RAM. */
/** How `fill` fills: the data, and whether it zeroes the same pages again afterwards. */
export interface FillOptions {
  readonly data?: 'zero' | 'random' | 'text';
  readonly thenZero?: boolean;
  /** sweep: what the rest of each page holds (SweepSpec.data). */
  readonly sweepData?: 'zero' | 'random';
}

export function workloadSpecs(kind: string, vcpus: number, totalPages: number, rate: number | undefined, fill: FillOptions = {}): WorkloadSpec[] {
  const per = Math.floor(totalPages / vcpus);
  if (per < 1) throw new InvalidArgumentError(`RAM of ${totalPages} pages is too small for ${vcpus} vCPUs`);
  return Array.from({ length: vcpus }, (_, i) => {
    const firstPage = i * per;
    switch (kind) {
      case 'idle': return { kind: 'idle', heartbeatPage: firstPage };
      case 'stress': return { kind: 'stress', firstPage, pages: per, rateMiBps: rate, order: 'random' };
      case 'fill': return { kind: 'fill', firstPage, fraction: per / (totalPages - firstPage), data: fill.data ?? 'random', thenZero: fill.thenZero };
      case 'sweep': return { kind: 'sweep', firstPage, pages: per, sweepsPerSec: rate, data: fill.sweepData };
      case 'read': return { kind: 'read', firstPage, pages: per, pagesPerSec: rate === undefined ? undefined : (rate * 1024 ** 2) / PAGE_SIZE };
      default:
        throw new InvalidArgumentError(`--workload: unknown workload ${JSON.stringify(kind)}; expected idle, stress, fill, sweep or read`);
    }
  });
}

/** TLS options shared by the commands that open migration channels. */
export const TLS_OPTIONS = {
  'tls-ca': { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'tls-hostname': { type: 'string' },
  'tls-psk-file': { type: 'string' },
  'tls-psk-identity': { type: 'string' },
} as const;

export const TLS_USAGE = `  --tls-ca FILE         PEM CA that signed the peer's certificate (destination: require client certificates from it)
  --tls-cert FILE       PEM certificate of this side (required on a destination using x509)
  --tls-key FILE        PEM private key of this side
  --tls-hostname NAME   source: the name the destination's certificate must carry
  --tls-psk-file FILE   a pre-shared key (at least 16 bytes) instead of certificates
  --tls-psk-identity ID the pre-shared key's identity (default "ferry")`;

/** TLS options from the command line (files read here), or undefined when none were given. */
export function tlsFrom(values: Partial<Record<keyof typeof TLS_OPTIONS, string>>): TlsOptions | undefined {
  const read = (flag: string, file: string | undefined) => {
    if (file === undefined) return undefined;
    try {
      return readFileSync(file, 'utf8');
    } catch (err) {
      throw new InvalidArgumentError(`${flag}: cannot read ${file}: ${(err as Error).message}`);
    }
  };
  if (values['tls-psk-file'] !== undefined) {
    let key: Buffer;
    try {
      key = readFileSync(values['tls-psk-file']);
    } catch (err) {
      throw new InvalidArgumentError(`--tls-psk-file: cannot read ${values['tls-psk-file']}: ${(err as Error).message}`);
    }
    return { psk: { identity: values['tls-psk-identity'] ?? 'ferry', key } };
  }
  const o = {
    ca: read('--tls-ca', values['tls-ca']), cert: read('--tls-cert', values['tls-cert']), key: read('--tls-key', values['tls-key']),
    hostname: values['tls-hostname'],
  };
  return Object.values(o).every((v) => v === undefined) ? undefined : o;
}

/**
 * The TLS options, read and checked for `side` before anything starts (a
 * file that cannot be read, a missing CA or key, TLS on a `file:` channel
 * are refused here, not after the guest has run); undefined when none.
 */
export function checkedTls(values: Partial<Record<keyof typeof TLS_OPTIONS, string>>, side: 'source' | 'destination', channel?: MigrationUri): TlsOptions | undefined {
  const tls = tlsFrom(values);
  if (tls === undefined) return undefined;
  if (channel?.kind === 'file') {
    throw new InvalidArgumentError(`TLS applies to tcp: and unix: channels, not to ${formatUri(channel)}: drop the --tls-... options`);
  }
  checkTlsOptions(tls, side);
  return tls;
}
