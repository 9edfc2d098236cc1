/**
 * Paces a workload at a rate of pages per second of guest time, smoothly:
 * credit accrues with the guest clock and is spent a page at a time. Credit
 * is capped at one slice (1 ms of guest time), so a vCPU that was held back
 * (throttled, descheduled) does not burst to catch up.
 */
export const PACER_SLICE_NS = 1_000_000;

export interface PacerState {
  readonly pagesPerSec: number;
  credit: number;
  lastNs: number;
}

export function newPacer(pagesPerSec: number, nowNs: number): PacerState {
  return { pagesPerSec, credit: 0, lastNs: nowNs };
}

/** Give back the credit of `n` pages taken but not written (a step stopped at a missing page). */
export function pacerRefund(p: PacerState, n: number): void {
  p.credit += n;
}

/** How many pages may be written now, at most `max`; spends them. */
export function pacerTake(p: PacerState, nowNs: number, max: number): number {
  if (nowNs > p.lastNs) {
    const cap = (p.pagesPerSec * PACER_SLICE_NS) / 1e9 + 1;
    p.credit = Math.min(cap, p.credit + ((nowNs - p.lastNs) * p.pagesPerSec) / 1e9);
    p.lastNs = nowNs;
  }
  const n = Math.min(max, Math.floor(p.credit));
  p.credit -= n;
  return n;
}
