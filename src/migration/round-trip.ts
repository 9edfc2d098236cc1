/**
 * The link's round trip, as the source sees it on the return path: an
 * input of the switchover rule (switchover-rule.ts), whose tail crosses the
 * link twice after the last byte (LOADED back; GO out and RESUMED back).
 *
 *   source                                        destination
 *   write <= 16 KiB, nothing in flight ──────────▶ read (a small chunk:
 *          ◀────────────────────────── ACK ──────  acknowledged at once)
 *   sample = ACK's arrival - the write
 *
 * Why only such writes: during a pass the link's queue holds up to its
 * whole buffer (socket buffers and a shaper's queue: 50 ms on the
 * benchmark's veth), and an acknowledgement's delay is then that queue,
 * which the rule already costs as bytes in flight. A write made when the
 * destination had acknowledged every byte meets an empty queue: its delay
 * is the link's round trip plus both ends' time to wake, read and answer
 * (the same kind of time the switchover's tail spends). Sizes are capped
 * so that sending the write itself adds little (16 KiB: 0.13 ms at
 * 1 Gbit/s). The stream header is not probed: the destination may still
 * be preparing when it arrives. With several channels (multifd) an
 * acknowledgement counts the bytes of every connection, in whatever order
 * they were read: a probe counts only if no channel wrote meanwhile.
 *
 * The estimate is the smallest sample: delays only add to a round trip
 * (a busy thread, a chunk that coalesced with the next one), never take
 * from it. What it ignores: a link that never drains (a pass after pass
 * saturated to the switchover) gives no sample, and the round trip is then
 * unmeasured (null: the rule takes 0 and says so); a route that gets
 * slower during the migration is not seen.
 */

/** Largest write taken as a probe, bytes. */
export const PROBE_MAX_BYTES = 16 * 1024;

export class RoundTripEstimator {
  /** The write being timed: the stream offset after it, and when it was handed to the channel. */
  private probe: { readonly bytes: number; readonly atMs: number; readonly others: number } | null = null;
  private min = Infinity;
  /** Samples taken so far. */
  samples = 0;

  /**
   * `chunkBytes` were handed to the main connection at `nowMs`, ending at
   * offset `bytesAfter` of all bytes written (the acknowledgements' count),
   * with `inflightBefore` bytes unacknowledged before them, and `others`
   * bytes written on the channels so far. Times it if it is a probe (see
   * above) and none is pending.
   */
  onWrite(chunkBytes: number, bytesAfter: number, inflightBefore: number, nowMs: number, others = 0): void {
    if (this.probe === null && inflightBefore === 0 && chunkBytes <= PROBE_MAX_BYTES) this.probe = { bytes: bytesAfter, atMs: nowMs, others };
  }

  /**
   * The destination acknowledged `totalBytes` in all, with `others` bytes
   * written on the channels by now: the pending probe's sample, if this
   * covers it and no channel wrote since.
   */
  onAck(totalBytes: number, nowMs: number, others = 0): void {
    const p = this.probe;
    if (p === null || totalBytes < p.bytes) return;
    this.probe = null;
    if (others !== p.others) return;
    this.min = Math.min(this.min, nowMs - p.atMs);
    this.samples++;
  }

  /** The round trip, ms: the smallest sample; null before any. */
  get roundTripMs(): number | null {
    return this.samples === 0 ? null : this.min;
  }
}
