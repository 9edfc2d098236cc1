/**
 * The switchover rule (DESIGN.md section 5), as a pure function of what the
 * source knows after a fresh sync:
 *
 *   1. remaining = dirty pages x 4 KiB (an upper bound: a zero page costs
 *      a share of a 24-byte run, not 4 KiB), plus bytes in flight (sent,
 *      not yet acknowledged by the destination);
 *   2. bandwidth = avail-switchover-bandwidth if set, else the estimate
 *      from acknowledged, link-limited windows (bandwidth.ts);
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
 * max-bandwidth set the real switchover is faster than expected) and the
 * dirtying between this decision and the pause.
 */
import { PAGE_SIZE } from '../memory/page.js';

export interface SwitchoverInputs {
  readonly remainingPages: number;
  readonly inflightBytes: number;
  readonly bandwidthBytesPerSec: number;
  readonly downtimeLimitMs: number;
  readonly fixedCostMs: number;
  readonly toFile: boolean;
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
  const remainingBytes = i.remainingPages * PAGE_SIZE + i.inflightBytes;
  if (remainingBytes === 0) {
    return { ...base, switchover: true, expectedMs: i.fixedCostMs, decision: `switch over: nothing left to send (fixed cost ${i.fixedCostMs} ms)` };
  }
  let bandwidth = i.bandwidthBytesPerSec;
  let assumed = '';
  const unmeasured = !(bandwidth > 0) || i.measured === false;
  if (unmeasured && bandwidth < UNMEASURED_BANDWIDTH_BYTES_PER_SEC && remainingBytes <= UNMEASURED_REMAINDER_BYTES) {
    bandwidth = UNMEASURED_BANDWIDTH_BYTES_PER_SEC;
    assumed = ' (no bandwidth measured yet: 100 MB/s assumed for a remainder of at most 1 MiB)';
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
