/**
 * The bandwidth budget: bytes per 100 ms window, as QEMU's rate limit,
 * driven by the clock. A record may overrun a window (a 1 MiB batch does
 * not split); the overrun is carried as debt into the next windows, so the
 * average rate holds. This budget is about bytes only: CPU time is the
 * other budget (the step's deadline and the CPU-share cap), never mixed in.
 */
export const RATE_WINDOW_NS = 100_000_000;

export class RateLimiter {
  private windowStart = 0;
  private used = 0;
  /** Windows in which the limit held the sender back. */
  limitedWindows = 0;
  private limitedThisWindow = false;

  constructor(private bytesPerSec: number) {}

  get unlimited(): boolean {
    return this.bytesPerSec === 0;
  }

  setRate(bytesPerSec: number): void {
    this.bytesPerSec = bytesPerSec;
  }

  private get budget(): number {
    return (this.bytesPerSec * RATE_WINDOW_NS) / 1e9;
  }

  private roll(nowNs: number): void {
    if (nowNs - this.windowStart < RATE_WINDOW_NS) return;
    const windows = Math.floor((nowNs - this.windowStart) / RATE_WINDOW_NS);
    this.used = Math.max(0, this.used - windows * this.budget);
    // Restart the window at now, not at a multiple of the old start: a
    // sender that was idle for a second gets one window's budget, not ten.
    this.windowStart = nowNs;
    this.limitedThisWindow = false;
  }

  /** Bytes that may be sent now (Infinity when unlimited). */
  allowance(nowNs: number): number {
    if (this.unlimited) return Infinity;
    this.roll(nowNs);
    const left = this.budget - this.used;
    if (left <= 0 && !this.limitedThisWindow) {
      this.limitedThisWindow = true;
      this.limitedWindows++;
    }
    return Math.max(0, left);
  }

  consume(bytes: number): void {
    if (!this.unlimited) this.used += bytes;
  }

  /** Nanoseconds until the budget reopens (0 if there is budget now). */
  waitNs(nowNs: number): number {
    if (this.allowance(nowNs) > 0) return 0;
    const debtWindows = Math.ceil((this.used - this.budget) / this.budget);
    return this.windowStart + RATE_WINDOW_NS * (1 + Math.max(0, debtWindows)) - nowNs;
  }
}
