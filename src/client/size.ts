/**
 * Sizes as people write them on a command line, QEMU-style: a number with
 * an optional binary suffix (K, M, G, T; KiB/MiB/... and lower case too).
 * "256M" is 268435456 bytes; a bare number is bytes.
 */
import { InvalidArgumentError } from '../errors.js';

const UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };
const SIZE_RE = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?$/i;

export function parseSize(text: string, what = 'size'): number {
  const m = SIZE_RE.exec(text.trim());
  if (m === null) {
    throw new InvalidArgumentError(`${what}: cannot parse ${JSON.stringify(text)}; write e.g. 256M, 4G or 1048576`);
  }
  const bytes = Number(m[1]) * UNITS[m[2].toLowerCase()];
  if (!Number.isSafeInteger(bytes)) {
    throw new InvalidArgumentError(`${what}: ${JSON.stringify(text)} is not a whole number of bytes`);
  }
  return bytes;
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}
