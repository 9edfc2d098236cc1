/**
 * Which `--ram` sizes a command reserves. Guest RAM is reserved address
 * space; the host commits a page only when the guest first writes it, so a
 * guest far larger than physical memory works as long as it writes little
 * (a 64 GiB idle guest on this 24 GiB host is a showcase and a test). A size
 * is refused only
 *
 * 1. beyond OVERCOMMIT_FACTOR x physical memory (os.totalmem()) unless
 *    `--overcommit` is given: more than that is almost always a typo
 *    (5T for 5G), and a workload that wrote a quarter of it would exhaust
 *    the host; 4 leaves room for the 64 GiB guest on a 24 GiB host (2.7 x)
 *    and for both ends of a local migration of it; or
 * 2. when the host refuses the reservation (address space, `ulimit -v`):
 *    said as that, with what could be reserved, not as an engine stack.
 *
 * The rule ignores what the guest will write: a sweep over all of a guest
 * larger than physical memory still exhausts the host, with or without
 * `--overcommit`.
 */
import os from 'node:os';
import { InvalidArgumentError, ReservationError, ferryCodeOf } from '../errors.js';
import { Guest, type GuestOptions } from '../guest/index.js';
import { formatBytes } from '../client/size.js';

export const OVERCOMMIT_FACTOR = 4;

/** The --help line of `--overcommit`, with this host's figures. */
export function overcommitUsage(column: number): string {
  const limit = formatBytes(OVERCOMMIT_FACTOR * os.totalmem());
  return `  --overcommit`.padEnd(column) +
    `allow --ram beyond ${OVERCOMMIT_FACTOR} x physical memory (${limit} here); pages are committed only when written`;
}

/** Refuse `bytes` of guest RAM (`--ram text`) beyond the factor, unless `overcommit`. */
export function checkRamSize(text: string, bytes: number, overcommit: boolean, physicalBytes = os.totalmem()): void {
  const limit = OVERCOMMIT_FACTOR * physicalBytes;
  if (overcommit || bytes <= limit) return;
  throw new InvalidArgumentError(`--ram ${text}: ${formatBytes(bytes)} is more than ${OVERCOMMIT_FACTOR} x this host's ` +
    `${formatBytes(physicalBytes)} of physical memory (${formatBytes(limit)}); give --overcommit to reserve it anyway ` +
    '(pages are committed only when the guest writes them)');
}

/** Guest.create for `--ram text`: a reservation the host refused names the flag, the size and how far it got. */
export async function createGuest(text: string, options: GuestOptions): Promise<Guest> {
  try {
    return await Guest.create(options);
  } catch (err) {
    if (ferryCodeOf(err) !== 'ERR_FERRY_RESERVATION') throw err;
    const size = typeof options.ram === 'number' ? ` (${formatBytes(options.ram)})` : '';
    throw new ReservationError(`--ram ${text}${size}: the host refused the reservation: ${(err as Error).message}`, { cause: err });
  }
}
