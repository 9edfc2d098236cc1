/**
 * max-bandwidth shared by threads: one budget for every channel of a
 * migration on several channels, as QEMU has one limit for all of its
 * multifd channels. (Equal shares per channel, the first version, sent a
 * guest whose dirty pages sit in few stripes slower than the limit, and the
 * bandwidth estimate then measured that slower rate.)
 *
 * The same bucket as RateLimiter (a window of 100 ms at most, overruns paid
 * back as debt), kept as one number in shared memory: the bucket's
 * theoretical arrival time (GCRA), the moment by which everything sent so
 * far would have gone out at the rate. Bytes sent push it on by bytes /
 * rate, from now if it lies behind; what may be sent now is the part of one
 * window between it and now + window. A thread adds its bytes with a
 * compare-and-swap, so senders on several threads never lose each other's
 * bytes. Times are nanoseconds since the creator's epoch, read through each
 * thread's own clock (performance.now() starts per thread) shifted by its
 * origin's distance from that epoch.
 */
import { RATE_WINDOW_NS } from './rate-limiter.js';

const TAT = 0;
const RATE = 1;
const BYTES = 24;

export class SharedRateLimiter {
  private readonly words: BigInt64Array;
  /** This thread's nowNs() plus this: the shared clock. */
  private readonly offsetNs: number;
  /** The shared time of the last allowance or wait: consume counts from there. */
  private lastNs = 0;

  /** The shared state, at `bytesPerSec` (0: unlimited), with this thread's clock as the epoch. */
  static create(bytesPerSec: number): SharedArrayBuffer {
    const buffer = new SharedArrayBuffer(BYTES);
    new BigInt64Array(buffer, 0, 2)[RATE] = BigInt(Math.round(bytesPerSec));
    new Float64Array(buffer, 16, 1)[0] = performance.timeOrigin;
    return buffer;
  }

  constructor(buffer: SharedArrayBuffer) {
    this.words = new BigInt64Array(buffer, 0, 2);
    this.offsetNs = (performance.timeOrigin - new Float64Array(buffer, 16, 1)[0]) * 1e6;
  }

  private get rate(): number {
    return Number(Atomics.load(this.words, RATE));
  }

  get unlimited(): boolean {
    return this.rate === 0;
  }

  /** Every thread's limiter sees the new rate at its next call. */
  setRate(bytesPerSec: number): void {
    Atomics.store(this.words, RATE, BigInt(Math.round(bytesPerSec)));
  }

  /** Nanoseconds the bucket is ahead of `nowNs` (this thread's clock): the debt, in time. */
  private aheadNs(nowNs: number): number {
    this.lastNs = nowNs + this.offsetNs;
    return Math.max(0, Number(Atomics.load(this.words, TAT)) - this.lastNs);
  }

  /** Bytes that may be sent now (Infinity when unlimited). */
  allowance(nowNs: number): number {
    const rate = this.rate;
    if (rate === 0) return Infinity;
    return Math.max(0, ((RATE_WINDOW_NS - this.aheadNs(nowNs)) * rate) / 1e9);
  }

  /** Bytes sent: the bucket moves on by their time at the rate, from the last allowance's moment if it lies behind. */
  consume(bytes: number): void {
    const rate = this.rate;
    if (rate === 0 || bytes <= 0) return;
    const cost = BigInt(Math.ceil((bytes * 1e9) / rate));
    const floor = BigInt(Math.floor(this.lastNs));
    for (;;) {
      const old = Atomics.load(this.words, TAT);
      const next = (old > floor ? old : floor) + cost;
      if (Atomics.compareExchange(this.words, TAT, old, next) === old) return;
    }
  }

  /** Nanoseconds until half a window's budget is free again (0 if there is budget now), as RateLimiter's. */
  waitNs(nowNs: number): number {
    if (this.allowance(nowNs) > 0) return 0;
    return Math.ceil(this.aheadNs(nowNs) - RATE_WINDOW_NS / 2);
  }
}
