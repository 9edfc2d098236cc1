/**
 * The bandwidth budget: QEMU's rate limit (max-bandwidth), as a token
 * bucket refilled continuously at the rate and holding at most one 100 ms
 * window's worth. A record may overrun the budget (a 1 MiB batch does not
 * split); the overrun is debt, paid back at the rate, so the average rate
 * holds exactly. (A first version reset whole windows: each overrun then
 * cost a whole extra window, and a 64 MiB/s limit delivered ~35 MB/s.)
 * This budget is about bytes only: CPU time is the other budget (the
 * step's deadline and the CPU-share cap), never mixed in.
 */
export const RATE_WINDOW_NS = 100_000_000;

export class RateLimiter {
  /** Bytes sent and not yet paid back by the refill (may exceed one window: debt). */
  private used = 0;
  private lastNs: number | null = null;

  constructor(private bytesPerSec: number) {}

  get unlimited(): boolean {
    return this.bytesPerSec === 0;
  }

  setRate(bytesPerSec: number): void {
    this.bytesPerSec = bytesPerSec;
  }

  /** One window's worth: the most that may be sent at once after an idle spell. */
  private get budget(): number {
    return (this.bytesPerSec * RATE_WINDOW_NS) / 1e9;
  }

  private refill(nowNs: number): void {
    if (this.lastNs !== null && nowNs > this.lastNs) {
      this.used = Math.max(0, this.used - ((nowNs - this.lastNs) * this.bytesPerSec) / 1e9);
    }
    this.lastNs = nowNs;
  }

  /** Bytes that may be sent now (Infinity when unlimited). */
  allowance(nowNs: number): number {
    if (this.unlimited) return Infinity;
    this.refill(nowNs);
    return Math.max(0, this.budget - this.used);
  }

  consume(bytes: number): void {
    if (!this.unlimited) this.used += bytes;
  }

  /**
   * Nanoseconds until half a window's budget is free again (0 if there is
   * budget now): waking for less would send in slivers.
   */
  waitNs(nowNs: number): number {
    if (this.allowance(nowNs) > 0) return 0;
    return Math.ceil(((this.used - this.budget / 2) * 1e9) / this.bytesPerSec);
  }
}
