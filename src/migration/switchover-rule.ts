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
 *   3. expected downtime = fixed switchover cost + remaining / bandwidth;
 *   4. switch over when expected downtime <= downtime-limit; with nothing
 *      remaining, switch over whatever the bandwidth. With no bandwidth
 *      measured yet (a nearly clean guest sends too little to measure a
 *      link with), a remainder of at most 1 MiB is costed at an assumed
 *      100 MB/s (a 1 Gbit/s link: 10 ms per MiB; the error on a slower
 *      link is bounded by that MiB); a larger one iterates.
 *   5. A save to file switches over after one live pass: it is bounded
 *      (the file holds RAM at most twice) and has no return path to
 *      measure a bandwidth with.
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
  readonly fixedCostMs: number;
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
}

/** Bandwidth assumed for a small remainder before any is measured, bytes/s. */
export const UNMEASURED_BANDWIDTH_BYTES_PER_SEC = 100e6;
/** The largest remainder costed at the assumed bandwidth, bytes. */
export const UNMEASURED_REMAINDER_BYTES = 1024 * 1024;

export interface SwitchoverDecision {
  readonly switchover: boolean;
  readonly expectedMs: number;
  readonly remainingPages: number;
  readonly bandwidth: number;
  /** The reason, in words, recorded with the pass. */
  readonly decision: string;
}

export function decideSwitchover(i: SwitchoverInputs): SwitchoverDecision {
  const base = { remainingPages: i.remainingPages, bandwidth: i.bandwidthBytesPerSec };
  if (i.toFile) return { ...base, switchover: true, expectedMs: 0, decision: 'switch over: a save to file takes one live pass' };
  if (i.remainingPages === 0 && i.inflightBytes === 0) {
    return { ...base, switchover: true, expectedMs: i.fixedCostMs, decision: `switch over: nothing left to send (fixed cost ${i.fixedCostMs} ms)` };
  }
  const leadPages = Math.min(((i.dirtyPagesPerSec ?? 0) * (i.leadMs ?? 0)) / 1000, i.cleanPages ?? Infinity);
  const remainingBytes = (i.remainingPages + leadPages) * PAGE_SIZE + i.inflightBytes;
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
  const expectedMs = i.fixedCostMs + (remainingBytes / bandwidth) * 1000;
  const limit = i.downtimeLimitMs;
  return expectedMs <= limit
    ? { ...base, switchover: true, expectedMs, decision: `switch over: expected downtime ${expectedMs.toFixed(1)} ms <= limit ${limit} ms${assumed}` }
    : { ...base, switchover: false, expectedMs, decision: `iterate: expected downtime ${expectedMs.toFixed(1)} ms > limit ${limit} ms${assumed}` };
}
