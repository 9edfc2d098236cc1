/**
 * Why a destination will not take a stream, and how it tells the source
 * (docs/wire-format.md, "Refusals"): the checks of a stream's header
 * against this destination's limits and expectations, each a refusal
 * (wire/refusals.ts); the record that carries a failure's reason back
 * (REFUSED for a refusal, ERROR for anything else); and turning a
 * connection away in words.
 *
 * After writing its reason the destination keeps reading, and discards,
 * until the source closes or LINGER_MS passed: closing with the source's
 * bytes unread would reset the connection, and the source would see only
 * `write EPIPE` (return-path.ts says why it cannot recover the reason then).
 */
import type net from 'node:net';
import { ferryCodeOf, type RefusedError } from '../errors.js';
import { PAGE_SIZE } from '../memory/page.js';
import type { StreamHeader } from '../wire/format.js';
import { RECORD, encodeRecord } from '../wire/records.js';
import { REFUSALS, refusalCode, refused, type RefusalName } from '../wire/refusals.js';

/** How long a failed destination keeps reading after sending ERROR or REFUSED, ms. */
export const LINGER_MS = 2000;
const MiB = 1024 * 1024;

/** What a destination accepts: its limit, and what it was started for (absent: anything; no program: none). */
export interface HeaderLimits {
  readonly maxGuestBytes: number;
  readonly expect?: { readonly ramBytes?: number; readonly vcpus?: number };
  /** The WebAssembly program this destination runs: the stream's identity must be its own. */
  readonly program?: { readonly identity: string };
}

/** A RAM size as messages write it: MiB when whole, else bytes. */
function ramText(bytes: number): string {
  return bytes % MiB === 0 ? `${bytes / MiB} MiB` : `${bytes} bytes`;
}

/** Refuse a header of another program, over the RAM limit, or not of the RAM size or vCPU count expected (a RefusedError). */
export function checkHeader(h: StreamHeader, limits: HeaderLimits): void {
  checkProgram(h.program, limits.program?.identity ?? null);
  const bytes = h.blocks.reduce((n, b) => n + b.pages * PAGE_SIZE, 0);
  if (bytes > limits.maxGuestBytes) {
    throw refused('max-ram', `header: the guest has ${ramText(bytes)} of RAM; this destination accepts at most ${ramText(limits.maxGuestBytes)} (--max-ram)`);
  }
  const expect = limits.expect;
  if (expect?.ramBytes !== undefined && expect.ramBytes !== bytes) {
    throw refused('ram-size', `header: the guest has ${ramText(bytes)} of RAM; this destination expects ${ramText(expect.ramBytes)} (--ram)`);
  }
  if (expect?.vcpus !== undefined && expect.vcpus !== h.vcpus) {
    throw refused('vcpus', `header: the guest has ${h.vcpus} vCPUs; this destination expects ${expect.vcpus} (--vcpus)`);
  }
}

/** An identity as messages name it: its first 12 hex characters, or "none". */
function identityText(identity: string | null): string {
  return identity === null ? 'none' : identity.slice(0, 12);
}

/**
 * The program is the destination's own, never the stream's (DESIGN.md
 * section 7): the header carries only its identity, which must be this
 * destination's, before any page. A stream with a program to a destination
 * without one, the reverse, or two different programs, is refused.
 */
function checkProgram(stream: string | null, here: string | null): void {
  if (stream === here) return;
  const hint = here === null ? 'start the destination with the same WebAssembly program'
    : stream === null ? 'the source runs no WebAssembly program'
      : 'both sides need the same module, built with the same instrumentation';
  throw refused('program', `header: the stream's program is ${identityText(stream)}, this destination's is ${identityText(here)} (${hint})`);
}

/** The record that tells the source why: REFUSED with its code for a refusal this version names, else ERROR. */
export function reasonRecord(err: unknown, reason: string): Buffer {
  const refusal = ferryCodeOf(err) === 'ERR_FERRY_REFUSED' ? (err as RefusedError).refusal : undefined;
  if (refusal !== undefined && Object.hasOwn(REFUSALS, refusal)) return encodeRecord(RECORD.Refused, { code: refusalCode(refusal), reason });
  return encodeRecord(RECORD.Error, { reason });
}

/** Turn a connection away with REFUSED, reading and discarding for a while so that the source reads why. */
export function refuseConnection(socket: net.Socket, name: RefusalName, reason: string): void {
  socket.on('error', () => {});
  socket.resume();
  socket.end(encodeRecord(RECORD.Refused, { code: refusalCode(name), reason }));
  setTimeout(() => socket.destroy(), LINGER_MS).unref();
}
