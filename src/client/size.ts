/**
 * Sizes as people write them on a command line, QEMU-style: a number with
 * an optional binary suffix (K, M, G, T; KiB/MiB/... and lower case too;
 * B for bytes). "256M" is 268435456 bytes. A number without a suffix is in
 * the flag's own unit, as QEMU reads it: MiB for a guest's RAM (`-m 3000`)
 * and for bandwidths (HMP's max-bandwidth and avail-switchover-bandwidth,
 * qemu_strtosz_MiB), bytes for other sizes (visit_type_size). Which flag
 * reads what is cli/number-flags.ts's table.
 *
 * And sizes as ferry prints them: one unit system, binary (B, KiB, MiB,
 * GiB, TiB, and the same per second), as QEMU's query-migrate fields count
 * bytes and its HMP prints MiB. Every size or rate that client/ and cli/
 * show goes through formatBytes, formatRate or formatPages, so no figure
 * says MB where another says MiB.
 */
import { InvalidArgumentError } from '../errors.js';
import { PAGE_SIZE } from '../memory/page.js';

const UNITS: Record<string, number> = { k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };
/** A number, then a binary suffix (K, KB, KiB, ...), or B for bytes, or nothing. */
const SIZE_RE = /^(\d+(?:\.\d+)?)\s*(?:([kmgt])(?:i?b)?|(b))?$/i;

/** What a number without a suffix counts. */
export type BareSizeUnit = 'bytes' | 'MiB';

/** `text` as bytes; a number without a suffix is in `bare` (bytes unless the flag reads MiB). */
export function parseSize(text: string, what = 'size', bare: BareSizeUnit = 'bytes'): number {
  const m = SIZE_RE.exec(text.trim());
  if (m === null) {
    const example = bare === 'MiB' ? '3000 (MiB)' : '1048576 (bytes)';
    const sign = text.trim().startsWith('-') ? ' (a size cannot be negative)' : '';
    throw new InvalidArgumentError(`${what}: cannot parse ${JSON.stringify(text)}${sign}; write e.g. 256M, 4G or ${example}`);
  }
  const unit = m[2] !== undefined ? UNITS[m[2].toLowerCase()] : m[3] !== undefined || bare === 'bytes' ? 1 : 1024 ** 2;
  const bytes = Number(m[1]) * unit;
  if (!Number.isSafeInteger(bytes)) {
    throw new InvalidArgumentError(`${what}: ${JSON.stringify(text)} is not a whole number of bytes`);
  }
  return bytes;
}

/** A size with its binary unit: "512 B", "35.0 MiB", "2.0 GiB"; "-" for a figure that is not a number. */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n)) return '-';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

/** Bytes in MiB, for charts whose axis is labelled MiB (or MiB/s). */
export function toMiB(bytes: number): number {
  return bytes / 1024 ** 2;
}

/** A rate in binary units per second: "123.4 MiB/s"; "-" for none. */
export function formatRate(bytesPerSec: number): string {
  return Number.isFinite(bytesPerSec) ? `${formatBytes(bytesPerSec)}/s` : '-';
}

/** A count of 4 KiB pages with its size: "8960 pages (35.0 MiB)". */
export function formatPages(pages: number): string {
  return `${pages} page${pages === 1 ? '' : 's'} (${formatBytes(pages * PAGE_SIZE)})`;
}
