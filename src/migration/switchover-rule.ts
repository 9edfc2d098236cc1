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
 *      remaining, switch over whatever the bandwidth; with something
 *      remaining and no bandwidth measured, iterate.
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
}

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
  if (!(i.bandwidthBytesPerSec > 0)) {
    return { ...base, switchover: false, expectedMs: Infinity, decision: 'iterate: no bandwidth measured yet' };
  }
  const expectedMs = i.fixedCostMs + (remainingBytes / i.bandwidthBytesPerSec) * 1000;
  const limit = i.downtimeLimitMs;
  return expectedMs <= limit
    ? { ...base, switchover: true, expectedMs, decision: `switch over: expected downtime ${expectedMs.toFixed(1)} ms <= limit ${limit} ms` }
    : { ...base, switchover: false, expectedMs, decision: `iterate: expected downtime ${expectedMs.toFixed(1)} ms > limit ${limit} ms` };
}
