/**
 * The switchover rule (DESIGN.md section 5), as a pure function of what the
 * source knows after a fresh sync:
 *
 *   1. remaining = dirty pages x 4 KiB (an upper bound: a zero page costs
 *      a share of a 24-byte run, not 4 KiB), plus bytes in flight (sent,
 *      not yet acknowledged by the destination), plus what the guest will
 *      dirty before it stops: the pass's dirty rate over the lead time
 *      from this decision to the vCPUs' acknowledgement of the pause (a
 *      guest dirtying 1.6 GB/s adds 8 MB in 5 ms: 16 ms at 0.5 GB/s), at
 *      most the pages not dirty yet;
 *   2. bandwidth = avail-switchover-bandwidth if set, else the cautious
 *      figure from acknowledged, link-limited windows (bandwidth.ts
 *      `forSwitchover`: the mean, or a slow recent window if lower);
 *   3. expected downtime = fixed cost + remaining / bandwidth, the fixed
 *      cost as `switchoverFixedMs` below makes it: the hosts' part (a
 *      constant measured on this machine: switchover.ts) plus two round
 *      trips of the link, measured during the migration;
 *   4. switch over when expected downtime <= downtime-limit; with nothing
 *      remaining, switch over whatever the bandwidth (and whatever the
 *      fixed cost: see nothingLeft). With no bandwidth
 *      measured yet (a nearly clean guest sends too little to measure a
 *      link with), a remainder of at most 1 MiB is costed at an assumed
 *      100 MB/s (a 1 Gbit/s link: 10 ms per MiB; the error on a slower
 *      link is bounded by that MiB); a larger one iterates.
 *   5. A save to file switches over after one live pass: it is bounded
 *      (the file holds RAM at most twice) and has no return path to
 *      measure a bandwidth with.
 *
 * With XBZRLE (the capability; xbzrle-sender.ts) a page sent again may
 * cost tens of bytes, not 4 KiB, so step 1 costs each remaining page at
 * `bytesPerPage`, the last pass's wire bytes per dirty page it found (at
 * most a page), and step 3 takes the longer of that over the bandwidth and
 * the remaining pages at the last pass's pages per second (`pagesPerSec`:
 * encoding, not the link, may bound the final pass). The bytes in flight
 * count as pages there too (at `bytesPerPage` each): 2 MB of 27-byte
 * deltas are 78,000 pages the destination has yet to apply, which the
 * link carries in 17 ms but a loader takes about 300 ms over (measured
 * over the veth: LOADED came 0.5 s after END where the rule had expected
 * 0.2 s, BENCHMARKS.md "XBZRLE"). It assumes the pages left cost what the
 * last pass's did (the same cache hits and deltas).
 *
 * Otherwise iterate again. A guest dirtying faster than the link never
 * converges: it is reported pass after pass, until cancelled (QEMU without
 * auto-converge). The estimate ignores the final pass being unlimited (with
 * max-bandwidth set the real switchover is faster than expected) and
 * changes of the bandwidth after it was measured.
 */
import { PAGE_SIZE } from '../memory/page.js';

export interface SwitchoverInputs {
  readonly remainingPages: number;
  readonly inflightBytes: number;
  readonly bandwidthBytesPerSec: number;
  readonly downtimeLimitMs: number;
  /** The hosts' part of the fixed cost, ms (switchover.ts DEFAULT_FIXED_SWITCHOVER_MS): without the link's round trips. */
  readonly fixedCostMs: number;
  /** The link's round trip, ms (round-trip.ts); null or absent: not measured (taken as 0). */
  readonly roundTripMs?: number | null;
  readonly toFile: boolean;
  /** The guest's dirty rate (pages found dirty again per second of the last pass); default 0. */
  readonly dirtyPagesPerSec?: number;
  /** Expected time from this decision until the guest stops writing, ms; default 0. */
  readonly leadMs?: number;
  /** Pages not dirty now: the most the guest can add before it stops; default unbounded. */
  readonly cleanPages?: number;
  /**
   * Whether the bandwidth was measured on a link-limited window (false: it
   * is only a lower bound from a sender that was never held back). Default true.
   */
  readonly measured?: boolean;
  /** With XBZRLE: wire bytes a remaining page is expected to cost (the last pass's per dirty page found), at most a page; default a page. */
  readonly bytesPerPage?: number;
  /** With XBZRLE: pages per second the last pass got through (its dirty pages found over its time); default: not a bound. */
  readonly pagesPerSec?: number;
}

/** Round trips of the link in the switchover after its last byte (see switchoverFixedMs). */
export const SWITCHOVER_ROUND_TRIPS = 2;
/**
 * An idle host's switchover beyond the bytes, ms: pause, state, the
 * destination's load, LOADED, commit, GO, RESUMED between two processes on
 * one idle host, as `ferry demo` measured it here (1-2 ms, with margin).
 * A downtime limit below it is one no switchover can meet: see nothingLeft.
 */
export const IDLE_SWITCHOVER_MS = 5;
/** In flight with nothing dirty, at most this is a pass's own records (its PASS record, a few pages): see nothingLeft. */
export const SETTLED_INFLIGHT_BYTES = 64 * 1024;
/** Bandwidth assumed for a small remainder before any is measured, bytes/s. */
export const UNMEASURED_BANDWIDTH_BYTES_PER_SEC = 100e6;
/** The largest remainder costed at the assumed bandwidth, bytes. */
export const UNMEASURED_REMAINDER_BYTES = 1024 * 1024;

/**
 * The switchover's fixed cost, ms: what it takes beyond sending the rest.
 * The hosts' part, `fixedCostMs` (switchover.ts says how it was measured),
 * plus SWITCHOVER_ROUND_TRIPS of the link's round trip (round-trip.ts): the
 * last byte reaches the destination half a round trip after it left the
 * queue, LOADED comes back (half), GO goes and RESUMED comes back (one).
 * On a saturated link the bytes in flight include those on the wire, which
 * remaining / bandwidth already costs: a round trip counted twice there, a
 * margin. A round trip not measured yet is taken as 0: on the 1 Gbit/s
 * veth here it is 0.1 ms, but a link of 5 ms would add 10.
 */
export function switchoverFixedMs(i: Pick<SwitchoverInputs, 'fixedCostMs' | 'roundTripMs'>): number {
  return i.fixedCostMs + SWITCHOVER_ROUND_TRIPS * (i.roundTripMs ?? 0);
}

export interface SwitchoverDecision {
  readonly switchover: boolean;
  readonly expectedMs: number;
  readonly remainingPages: number;
  readonly bandwidth: number;
  /** The fixed cost in `expectedMs`: the hosts' part and the round trips, ms. */
  readonly fixedMs: number;
  /** The round trip it used, ms; null: not measured (taken as 0). */
  readonly roundTripMs: number | null;
  /** The reason, in words, recorded with the pass. */
  readonly decision: string;
}

export function decideSwitchover(i: SwitchoverInputs): SwitchoverDecision {
  const fixedMs = switchoverFixedMs(i);
  const base = { remainingPages: i.remainingPages, bandwidth: i.bandwidthBytesPerSec, fixedMs, roundTripMs: i.roundTripMs ?? null };
  if (i.toFile) return { ...base, switchover: true, expectedMs: 0, decision: 'switch over: a save to file takes one live pass' };
  const fixed = fixedWords(i, fixedMs);
  const settled = nothingLeft(i, fixedMs);
  if (settled !== null) return { ...base, switchover: true, expectedMs: fixedMs, decision: `switch over: ${settled} (${fixed})` };
  const leadPages = Math.min(((i.dirtyPagesPerSec ?? 0) * (i.leadMs ?? 0)) / 1000, i.cleanPages ?? Infinity);
  const perPage = Math.min(PAGE_SIZE, Math.max(0, i.bytesPerPage ?? PAGE_SIZE));
  const remainingBytes = (i.remainingPages + leadPages) * perPage + i.inflightBytes;
  let bandwidth = i.bandwidthBytesPerSec;
  let assumed = '';
  const unmeasured = !(bandwidth > 0) || i.measured === false;
  if (unmeasured && bandwidth < UNMEASURED_BANDWIDTH_BYTES_PER_SEC && remainingBytes <= UNMEASURED_REMAINDER_BYTES) {
    bandwidth = UNMEASURED_BANDWIDTH_BYTES_PER_SEC;
    assumed = ` (no bandwidth measured yet: ${(bandwidth / 1024 ** 2).toFixed(1)} MiB/s (1 Gbit/s) assumed for a remainder of at most 1 MiB)`;
  }
  if (!(bandwidth > 0)) {
    return { ...base, switchover: false, expectedMs: Infinity, decision: 'iterate: no bandwidth measured yet' };
  }
  // In flight, a page costs what the last pass's did too: the destination still has to apply those records.
  const inflightPages = perPage > 0 ? i.inflightBytes / perPage : 0;
  const perPageRate = i.pagesPerSec !== undefined && i.pagesPerSec > 0;
  const pagesMs = perPageRate ? ((i.remainingPages + leadPages + inflightPages) * 1000) / i.pagesPerSec! : 0;
  const expectedMs = fixedMs + Math.max((remainingBytes / bandwidth) * 1000, pagesMs);
  const limit = i.downtimeLimitMs;
  const inflightWords = inflightPages >= 1 ? ` (${Math.round(inflightPages)} of them in flight)` : '';
  const encoding = pagesMs > (remainingBytes / bandwidth) * 1000 ? `; ${pagesMs.toFixed(1)} ms for the pages${inflightWords} at the last pass's rate` : '';
  const parts = `(${fixed} + ${(remainingBytes / 1024 ** 2).toFixed(2)} MiB at ${(bandwidth / 1024 ** 2).toFixed(1)} MiB/s${encoding})`;
  return expectedMs <= limit
    ? { ...base, switchover: true, expectedMs, decision: `switch over: expected downtime ${expectedMs.toFixed(1)} ms ${parts} <= limit ${limit} ms${assumed}` }
    : { ...base, switchover: false, expectedMs, decision: `iterate: expected downtime ${expectedMs.toFixed(1)} ms ${parts} > limit ${limit} ms${assumed}` };
}

/**
 * Rule 4's "nothing remaining", in words, or null: no dirty page and
 * nothing in flight; or no dirty page, in flight at most a pass's own
 * records (SETTLED_INFLIGHT_BYTES), and a limit that an idle host's
 * switchover meets (IDLE_SWITCHOVER_MS) but the fixed cost here does not:
 * iterating would only postpone the same downtime. A limit below even an
 * idle host's cost (a 1 ms limit, which holds a migration in its passes
 * until it is raised) iterates, as it always did.
 */
function nothingLeft(i: SwitchoverInputs, fixedMs: number): string | null {
  if (i.remainingPages !== 0) return null;
  if (i.inflightBytes === 0) return 'nothing left to send';
  const over = fixedMs >= i.downtimeLimitMs && i.downtimeLimitMs > IDLE_SWITCHOVER_MS && i.inflightBytes <= SETTLED_INFLIGHT_BYTES;
  return over ? `nothing left to send but ${i.inflightBytes} bytes in flight, and the fixed cost alone reaches the limit (${i.downtimeLimitMs} ms)` : null;
}

/** The fixed cost in words: "fixed 10.2 ms (hosts 10 ms, link 2 x 0.10 ms)". */
function fixedWords(i: SwitchoverInputs, fixedMs: number): string {
  const link = i.roundTripMs == null ? 'link not measured' : `link ${SWITCHOVER_ROUND_TRIPS} x ${i.roundTripMs.toFixed(2)} ms`;
  return `fixed ${fixedMs.toFixed(1)} ms (hosts ${i.fixedCostMs} ms, ${link})`;
}
