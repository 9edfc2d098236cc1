/**
 * The source's figures: what the migration thread counts while it works,
 * and the snapshot built from them for the main thread (QMP query-migrate,
 * the progress display, the benchmark): SourceCounters, which the main
 * thread joins to the pass history it keeps. The session owns the
 * algorithm; this owns the bookkeeping, so neither reads like the other.
 */
import { Stat, type VcpuControl } from '../guest/vcpu-control.js';
import { PAGE_SIZE } from '../memory/page.js';
import type { RamBlock } from '../memory/ram-block.js';
import type { BandwidthEstimator } from './bandwidth.js';
import type { PassSource } from './ram-sender.js';
import type { PassRecord, SourceCounters, SwitchoverRecord } from './stats.js';
import type { SwitchoverDecision } from './switchover-rule.js';
import type { PolicyDecision } from './migration-policy.js';
import { monoMs, nowNs } from './waiter.js';

/** The switchover rule's answer after a pass, with the dirty rate it was given. */
/** The switchover rule's decision after a pass, with the pass's dirty rate and the dirty pages it never reached (it ended early: early-pass-end.ts). */
export type PassDecision = SwitchoverDecision & { readonly dirtyRate: number; readonly unreachedPages?: number };

/** What the session has built so far: the figures read it live. */
export interface SourceParts {
  readonly sender?: PassSource;
  readonly out?: { readonly bytesOut: number };
  readonly bandwidth: BandwidthEstimator;
  readonly pass: number;
  /** Dirty pages before the first sync (the clients' own counts). */
  readonly dirtyPages: () => number;
  readonly inflightBytes: () => number;
}

export class SourceFigures {
  /** The last live pass (the history is the main thread's: each record is posted once). */
  private last: PassRecord | null = null;
  switchover: SwitchoverRecord | null = null;
  setupDoneMs = 0;
  downtimeMs: number | null = null;
  verifyMs = 0;
  /**
   * The final pass has sent every dirty page (the guest is paused): nothing
   * remains. Before it, remaining is what the last live pass left (the
   * figure its decision was taken on), as QEMU's `remaining` after a sync.
   */
  finalPassSent = false;
  /** Time spent in send steps, and asleep because of the CPU-share cap. */
  busyNs = 0;
  capSleepNs = 0;
  expectedDowntimeMs = 0;
  /** The fixed cost in the last decision's expected downtime, and the link's round trip in it (null: not measured). */
  expectedFixedMs = 0;
  roundTripMs: number | null = null;
  dirtySyncs = 0;
  /** Why the policy's ladder chose pause-and-finish (null: it did not): the downtime is then exempt from its limit. */
  pauseAndFinish: string | null = null;
  private readonly guestPagesAtStart: number;
  private readonly guestBusyNsAtStart: number;

  /** `countsPageWrites`: the vCPUs count their page writes (a WebAssembly program's stores are not counted: only its run time). */
  constructor(
    private readonly startedAtMs: number, private readonly blocks: readonly RamBlock[], private readonly vcpus: readonly VcpuControl[],
    private readonly countsPageWrites = true,
  ) {
    this.guestPagesAtStart = this.guestPagesWritten();
    this.guestBusyNsAtStart = this.guestBusyNs();
  }

  /** Record a live pass and the decision taken after it; returns the record, for the main thread. */
  recordPass(pass: number, sender: PassSource, durationMs: number, e: PassDecision, inflightBytes: number, policy: PolicyDecision | null): PassRecord {
    this.expectedDowntimeMs = e.expectedMs;
    this.expectedFixedMs = e.fixedMs;
    this.roundTripMs = e.roundTripMs;
    const p = sender.pass;
    // Binary units, as every figure the client shows (client/size.ts); the bandwidth is the rule's (cautious) one.
    const mib = (bytesPerSec: number) => `${(bytesPerSec / 1024 ** 2).toFixed(1)} MiB/s`;
    const why = e.switchover || e.bandwidth <= 0 ? '' : `; the guest dirties ${mib(e.dirtyRate * PAGE_SIZE)} against the rule's estimate (cautious) of ${mib(e.bandwidth)}`;
    this.last = {
      pass, normalPages: p.normalPages, zeroPages: p.zeroPages, bytes: p.bytes, durationMs,
      dirtyFound: p.dirtyFound, remainingPages: e.remainingPages, inflightBytes, dirtyRatePagesPerSec: e.dirtyRate,
      bandwidthBytesPerSec: e.bandwidth, expectedDowntimeMs: e.expectedMs,
      guestPagesWritten: this.guestPagesWritten(), decision: earlyWords(e.unreachedPages ?? 0) + e.decision + why, convergence: policy?.convergence ?? null,
      unreachedPages: e.unreachedPages ?? 0,
      remedy: policy?.remedy ?? null, prediction: policy?.prediction?.words ?? null,
    };
    return this.last;
  }

  snapshot(s: SourceParts): SourceCounters {
    const now = monoMs();
    const totals = s.sender?.totals ?? [];
    const xbzrle = s.sender?.xbzrleFigures() ?? null;
    // END's data totals count the pages sent as XBZRLE deltas; QEMU's `normal` does not.
    const normalPages = totals.reduce((n, t) => n + t.normal, 0) - (xbzrle?.deltaPages ?? 0);
    const zeroPages = totals.reduce((n, t) => n + t.zero, 0);
    const transferred = s.out?.bytesOut ?? 0;
    const elapsedMs = Math.max(now - this.startedAtMs, 1e-3);
    const last = this.last;
    return {
      totalRamBytes: this.blocks.reduce((n, b) => n + b.byteLength, 0),
      transferredBytes: transferred,
      normalPages,
      normalBytes: normalPages * PAGE_SIZE,
      duplicatePages: zeroPages,
      remainingBytes: this.finalPassSent ? 0 : (last?.remainingPages ?? s.dirtyPages()) * PAGE_SIZE,
      dirtySyncCount: this.dirtySyncs,
      dirtyPagesRate: last?.dirtyRatePagesPerSec ?? 0,
      mbps: (transferred * 8) / 1e6 / (elapsedMs / 1000),
      pagesPerSecond: ((normalPages + zeroPages) * 1000) / elapsedMs,
      setupTimeMs: this.setupDoneMs > 0 ? this.setupDoneMs - this.startedAtMs : 0,
      totalTimeMs: elapsedMs,
      downtimeMs: this.downtimeMs,
      verifyMs: this.verifyMs,
      expectedDowntimeMs: Number.isFinite(this.expectedDowntimeMs) ? this.expectedDowntimeMs : -1,
      bandwidthBytesPerSec: s.bandwidth.estimate(nowNs()),
      ackedBytes: s.bandwidth.ackedBytes,
      inflightBytes: s.out ? s.inflightBytes() : 0,
      pass: s.pass,
      passFraction: s.sender?.passFraction ?? 0,
      switchover: this.switchover,
      threadBusyMs: this.busyNs / 1e6,
      threadCapSleepMs: this.capSleepNs / 1e6,
      guestPagesWrittenAtStart: this.guestPagesAtStart,
      guestPagesWritten: this.guestPagesWritten(),
      guestCountsPageWrites: this.countsPageWrites,
      guestRunMs: (this.guestBusyNs() - this.guestBusyNsAtStart) / 1e6,
      pauseAndFinish: this.pauseAndFinish,
      ...(xbzrle === null ? {} : { xbzrleCache: xbzrle.info }),
    };
  }

  private guestPagesWritten(): number {
    return this.vcpus.reduce((n, v) => n + v.stat(Stat.PagesWritten), 0);
  }

  /** Time the vCPUs spent running guest code (throttle sleeps, idle pacing and pauses excluded), ns. */
  private guestBusyNs(): number {
    return this.vcpus.reduce((n, v) => n + v.stat(Stat.BusyNs), 0);
  }
}

/** A pass that ended early, in words, before its decision's; '' for one that walked all of RAM. */
function earlyWords(unreached: number): string {
  return unreached > 0 ? `ended early, ${unreached} dirty pages not reached, once its rest fit the limit (QEMU's early sync); ` : '';
}
