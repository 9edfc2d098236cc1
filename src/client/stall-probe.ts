/**
 * The stall probe: sends `query-status` every 5 ms over its own QMP
 * connection and records each round trip, so the responsiveness of a
 * guest process's main event loop is measured from outside (DESIGN.md
 * invariant 5), the way QEMU's monitor was measured on this machine.
 * One request at a time: a stalled loop shows up as one long round trip,
 * not as a queue of short ones.
 */
import { QmpClient } from '../control/qmp-client.js';

export const PROBE_PERIOD_MS = 5;

export interface ProbeSample {
  /** When the request was sent, ms since the probe's origin. */
  readonly atMs: number;
  readonly rttMs: number;
}

export interface LatencySummary {
  readonly samples: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

export function summarizeLatency(samples: readonly ProbeSample[]): LatencySummary {
  if (samples.length === 0) return { samples: 0, p50Ms: 0, p99Ms: 0, maxMs: 0 };
  const sorted = samples.map((s) => s.rttMs).sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  return { samples: sorted.length, p50Ms: at(0.5), p99Ms: at(0.99), maxMs: sorted[sorted.length - 1] };
}

/** The samples sent in [fromMs, toMs), summarised. */
export function latencyBetween(samples: readonly ProbeSample[], fromMs: number, toMs: number): LatencySummary {
  return summarizeLatency(samples.filter((s) => s.atMs >= fromMs && s.atMs < toMs));
}

/** What a migration follower needs of a probe, in this process or in its own (probe-process.ts). */
export interface LatencyProbe {
  readonly samples: readonly ProbeSample[];
  start(): void;
  stop(): Promise<void>;
  /** Milliseconds on the samples' clock. */
  now(): number;
  between(fromMs: number, toMs: number): LatencySummary;
  close(): void;
}

/** Wall-clock milliseconds with sub-millisecond resolution: one clock for every process on this host. */
export function epochMs(): number {
  return performance.timeOrigin + performance.now();
}

export class StallProbe implements LatencyProbe {
  readonly samples: ProbeSample[] = [];
  private running = false;
  private loop: Promise<void> = Promise.resolve();

  /** `originEpochMs`: the samples' zero (epochMs), by default now. */
  private constructor(private readonly qmp: QmpClient, private readonly originEpochMs: number) {}

  static async connect(control: string, originEpochMs = epochMs()): Promise<StallProbe> {
    return new StallProbe(await QmpClient.connect(control), originEpochMs);
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  /** Stop probing; resolves when the last request has been answered. */
  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }

  /** Samples sent in [fromMs, toMs) (probe-relative), summarised. */
  between(fromMs: number, toMs: number): LatencySummary {
    return latencyBetween(this.samples, fromMs, toMs);
  }

  /** Milliseconds since the origin (the samples' clock). */
  now(): number {
    return epochMs() - this.originEpochMs;
  }

  close(): void {
    this.running = false;
    this.qmp.close();
  }

  private async run(): Promise<void> {
    let next = performance.now();
    while (this.running) {
      const sent = performance.now();
      await this.qmp.execute('query-status');
      const done = performance.now();
      this.samples.push({ atMs: sent + performance.timeOrigin - this.originEpochMs, rttMs: done - sent });
      next += PROBE_PERIOD_MS;
      // Keep the 5 ms cadence; after a long stall, start again from now.
      if (next < done) next = done;
      await new Promise((r) => setTimeout(r, next - done));
    }
  }
}
