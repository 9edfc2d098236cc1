/**
 * The bandwidth estimate behind the switchover decision.
 *
 * What is measured: bytes the destination acknowledged (ACK records on the
 * return path: bytes it has read and loaded) per 100 ms window. Bytes the
 * sender hands to the kernel are not on the wire yet (socket buffers hold
 * megabytes, 33 ms at 1 Gbit/s), so counting them overstates the link.
 *
 * Which windows count: only those in which the sender was link-limited
 * (held back by backpressure or by the rate limit for part of the window).
 * In other windows the sender was the bottleneck (a pass of zero-page runs
 * says nothing about the link), and their rate is only a lower bound. Until
 * a link-limited window exists, the estimate is that lower bound: the best
 * window so far, or everything acknowledged over the time since the first
 * send, whichever is higher (a small guest may finish its first pass inside
 * the socket buffers without ever being held back).
 *
 * The estimate is an exponentially weighted mean (weight 1/4 on the newest
 * window), so one noisy window moves it a little. It ignores: the final
 * pass being unlimited (so with max-bandwidth set the real switchover is
 * faster than estimated), and bursts shorter than a window.
 *
 * The switchover decision uses a cautious figure instead (`forSwitchover`):
 * the lower of the mean and the 20th percentile of the last 10 windows. On
 * a machine whose bandwidth swings (here 0.5-1.0 GB/s from one second to
 * the next) the mean promised 790 MB/s to a final pass that ran at 542: a
 * 300 ms limit became 446 ms. A downtime over the limit is a broken
 * promise; one more pass is only slower.
 */
export const BANDWIDTH_WINDOW_NS = 100_000_000;
const WEIGHT = 0.25;
/** Windows kept for the cautious figure, and its percentile. */
const RECENT_WINDOWS = 10;
const CAUTIOUS_PERCENTILE = 0.2;

export class BandwidthEstimator {
  private windowStart: number;
  private ackedAtStart = 0;
  private acked = 0;
  private limited = false;
  private ewma = 0;
  private floor = 0;
  /** Rates of the last RECENT_WINDOWS link-limited windows, oldest first. */
  private readonly recent: number[] = [];
  /** Windows that fed the estimate. */
  samples = 0;

  private readonly startNs: number;

  constructor(nowNs: number) {
    this.windowStart = nowNs;
    this.startNs = nowNs;
  }

  /** The destination acknowledged `totalBytes` in all. */
  onAck(totalBytes: number): void {
    this.acked = Math.max(this.acked, totalBytes);
  }

  /** The sender was held back (backpressure or rate limit) in this window. */
  onHeldBack(): void {
    this.limited = true;
  }

  /** Close the window if it is over; call often. */
  tick(nowNs: number): void {
    const elapsed = nowNs - this.windowStart;
    if (elapsed < BANDWIDTH_WINDOW_NS) return;
    const rate = ((this.acked - this.ackedAtStart) * 1e9) / elapsed;
    if (this.limited && rate > 0) {
      this.ewma = this.samples === 0 ? rate : this.ewma + WEIGHT * (rate - this.ewma);
      this.samples++;
      this.recent.push(rate);
      if (this.recent.length > RECENT_WINDOWS) this.recent.shift();
    } else {
      this.floor = Math.max(this.floor, rate);
    }
    this.windowStart = nowNs;
    this.ackedAtStart = this.acked;
    this.limited = false;
  }

  /** Bytes per second at `nowNs`; 0 until anything was acknowledged. */
  estimate(nowNs: number): number {
    if (this.samples > 0) return this.ewma;
    const overall = nowNs > this.startNs ? (this.acked * 1e9) / (nowNs - this.startNs) : 0;
    return Math.max(this.floor, overall);
  }

  /** The figure to decide a switchover with: the mean, or a slow recent window if lower. */
  forSwitchover(nowNs: number): number {
    if (this.samples === 0) return this.estimate(nowNs);
    const sorted = [...this.recent].sort((a, b) => a - b);
    return Math.min(this.ewma, sorted[Math.floor((sorted.length - 1) * CAUTIOUS_PERCENTILE)]);
  }

  /** Whether a link-limited window fed the estimate (else it is only a lower bound). */
  get measured(): boolean {
    return this.samples > 0;
  }

  get ackedBytes(): number {
    return this.acked;
  }
}
