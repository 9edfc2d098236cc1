/**
 * How long the hosts take to pass a message between threads, now: the
 * source's measure of the hosts' part of the switchover's fixed cost
 * (switchover.ts `hostCostMs`, an input of the switchover rule).
 *
 *   migration thread          main thread
 *   ping ───────────────────▶ (behind what it is doing: QMP, events)
 *        ◀──────────────────── pong
 *   sample = the round trip - the time this thread spent in send steps meanwhile
 *
 * Why this measures the switchover: after the last byte its time is
 * hand-offs between threads, not work. Pause, commit on the source; the
 * destination's load and resume; each record crossing to the other
 * process's reading thread. A switchover has about 15 such wake-ups
 * (switchover.ts counts them); a ping is two of the same kind, on the same
 * host, behind the same main thread's queue. On an idle machine a ping
 * takes 0.1-0.3 ms; on this 2-core machine shared with builds and test
 * suites, 1-3 ms, and the switchover's own steps then took 11-22 ms where
 * they took 2-12 on a quieter day. A ping answered while this thread was
 * in a send step (up to 5 ms, pacing.ts) waited for the step, not for the
 * host: the step's time is taken off.
 *
 * The figure is the mean of the last SAMPLES samples: the switchover's
 * wake-ups add up, so their sum follows the mean, not one slow sample.
 * What it ignores: the destination's host (another machine may be busier
 * or idler; on the benchmark's it is the same), and a load that starts
 * after the last ping.
 */

/** Samples kept, newest last (with a ping per decision: the last passes'). */
export const HOP_SAMPLES = 16;

export class HostHops {
  private readonly recent: number[] = [];
  private pending: { readonly id: number; readonly atMs: number; readonly busyNs: number } | null = null;
  private nextId = 1;

  /** A ping to post now (its id), unless one is still out (null). `busyNs`: this thread's time in send steps so far. */
  ping(nowMs: number, busyNs: number): number | null {
    if (this.pending !== null) return null;
    this.pending = { id: this.nextId++, atMs: nowMs, busyNs };
    return this.pending.id;
  }

  /** The main thread answered ping `id`; an answer to no pending ping is ignored. */
  pong(id: number, nowMs: number, busyNs: number): void {
    const p = this.pending;
    if (p === null || p.id !== id) return;
    this.pending = null;
    this.recent.push(Math.max(0, nowMs - p.atMs - (busyNs - p.busyNs) / 1e6));
    if (this.recent.length > HOP_SAMPLES) this.recent.shift();
  }

  /** The mean round trip of the recent samples, ms; null before any. */
  get hopMs(): number | null {
    return this.recent.length === 0 ? null : this.recent.reduce((a, b) => a + b, 0) / this.recent.length;
  }
}
