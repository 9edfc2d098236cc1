/**
 * What the channels of a migration on several channels publish as they go,
 * for the migration thread to read without a message per step: per
 * channel, the bytes written so far and how many times it was held back
 * (by its link's backpressure or by its share of max-bandwidth). All
 * Atomics code for this block lives here.
 *
 *   BigInt64[2 x channels]:  BYTES_OUT[channel] | HELD_BACK[channel]
 *
 * Each slot has one writer (its channel's thread) and is read by the
 * migration thread; Atomics.store and Atomics.load keep each value whole.
 * Nothing is ordered between slots: they are figures (a reader one step
 * behind only delays a statistic or a bandwidth window by one tick).
 */
export class ChannelFigures {
  private readonly words: BigInt64Array;

  static create(channels: number): SharedArrayBuffer {
    return new SharedArrayBuffer(2 * channels * 8);
  }

  constructor(buffer: SharedArrayBuffer, private readonly channels: number) {
    this.words = new BigInt64Array(buffer);
  }

  setBytesOut(channel: number, bytes: number): void {
    Atomics.store(this.words, channel, BigInt(bytes));
  }

  heldBack(channel: number): void {
    Atomics.add(this.words, this.channels + channel, 1n);
  }

  /** Bytes written by every channel. */
  totalBytesOut(): number {
    let n = 0n;
    for (let c = 0; c < this.channels; c++) n += Atomics.load(this.words, c);
    return Number(n);
  }

  /** Times any channel was held back, in all (compare two readings). */
  totalHeldBack(): number {
    let n = 0n;
    for (let c = 0; c < this.channels; c++) n += Atomics.load(this.words, this.channels + c);
    return Number(n);
  }
}
