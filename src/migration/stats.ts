/**
 * Migration statistics, kept in one object by the migration thread and
 * posted to the main thread as plain data. Names follow QEMU's
 * query-migrate where a figure has a QEMU meaning; `passes` is ferry's
 * per-pass history. Each pass record crosses the thread once, when its
 * pass ends; the history is kept on the main thread (Migration), so the
 * figures posted every 100 ms (SourceCounters) stay the same size however
 * many passes a migration that never converges runs.
 */
import type { Convergence } from './migration-policy.js';
import type { PostcopySourceCounters } from './postcopy-source.js';
import type { Remedy } from './remedies.js';
import type { CompressionStats } from './compression-stats.js';
import type { XbzrleCacheInfo } from './xbzrle-stats.js';

export interface PassRecord {
  readonly pass: number;
  /** Pages sent with their data. */
  readonly normalPages: number;
  /** Pages sent as zero runs. */
  readonly zeroPages: number;
  readonly bytes: number;
  readonly durationMs: number;
  /** Dirty pages the pass found (taken from the log range by range). */
  readonly dirtyFound: number;
  /** Dirty pages left after the pass, with a fresh sync. */
  readonly remainingPages: number;
  /** Of those, pages the pass never reached: it ended early (early-pass-end.ts); 0 when it walked all of RAM, absent from an older ferry. */
  readonly unreachedPages?: number;
  /** Bytes sent and not yet acknowledged when the pass ended (they count as left to send at switchover). */
  readonly inflightBytes: number;
  /** Guest dirtying rate during the pass, pages/s (pages found dirty again / pass time). */
  readonly dirtyRatePagesPerSec: number;
  readonly bandwidthBytesPerSec: number;
  readonly expectedDowntimeMs: number;
  /** Pages the guest's vCPUs had written by the end of the pass (guest progress). */
  readonly guestPagesWritten: number;
  /** Why the migration did or did not switch over after this pass. */
  readonly decision: string;
  /**
   * The policy's convergence observation after this pass, with its words
   * (migration-policy.ts); null after the pass that decided to switch over
   * (the policy is not asked then).
   */
  readonly convergence: Convergence | null;
  /** The policy's remedy in force after this pass, and why it was engaged (remedies.ts); null when the policy was not asked, absent from an older ferry. */
  readonly remedy?: { readonly name: Remedy; readonly why: string } | null;
  /** The time to converge at this pass's rates, in words (convergence-prediction.ts); null when none was made, absent from an older ferry. */
  readonly prediction?: string | null;
}

/**
 * Where the switchover's time went, ms (one clock across threads). The
 * guest runs, and dirties, until `pauseAckedMs`; the downtime starts when
 * the main thread takes the pause request.
 */
export interface SwitchoverRecord {
  /** From the sync behind the decision to the vCPUs' acknowledgement of the pause: the guest still runs. */
  readonly decisionToPausedMs: number;
  /** From the main thread taking the pause request to every vCPU acknowledging it. */
  readonly pauseMs: number;
  /** Pages found dirty at the decision, and sent by the final pass (guest paused). */
  readonly pagesAtDecision: number;
  readonly finalPages: number;
  readonly finalBytes: number;
  readonly finalPassMs: number;
  /** Verify mode: the source's RAM digest after the final pass (the destination's falls in loadedWaitMs). */
  readonly verifyMs: number;
  /** vCPU and device state and END appended, until the destination said LOADED. */
  readonly loadedWaitMs: number;
  /** LOADED to the source's commit, and GO to RESUMED. */
  readonly commitMs: number;
  readonly resumeMs: number;
  readonly expectedMs: number;
  /**
   * The fixed cost within expectedMs (the hosts' part and two round trips
   * of the link: switchover-rule.ts switchoverFixedMs), and the round trip
   * it used (null: not measured); absent from an older ferry.
   */
  readonly expectedFixedMs?: number;
  readonly roundTripMs?: number | null;
  readonly downtimeMs: number;
}

export interface SourceStats {
  readonly totalRamBytes: number;
  readonly transferredBytes: number;
  readonly normalPages: number;
  readonly normalBytes: number;
  readonly duplicatePages: number;
  readonly remainingBytes: number;
  readonly dirtySyncCount: number;
  readonly dirtyPagesRate: number;
  readonly mbps: number;
  readonly pagesPerSecond: number;
  readonly setupTimeMs: number;
  readonly totalTimeMs: number;
  readonly downtimeMs: number | null;
  /** Verify mode: time to digest RAM at pause (part of the downtime, reported apart). */
  readonly verifyMs: number;
  readonly expectedDowntimeMs: number;
  readonly bandwidthBytesPerSec: number;
  readonly ackedBytes: number;
  readonly inflightBytes: number;
  readonly pass: number;
  /** How far the current pass has walked through RAM, 0 to 1. */
  readonly passFraction: number;
  readonly passes: readonly PassRecord[];
  /** Set once a migration over a socket finished its switchover (a save to file has no LOADED / GO exchange to time). */
  readonly switchover: SwitchoverRecord | null;
  /** The migration thread's own accounting: time sending, and asleep under the CPU-share cap. */
  readonly threadBusyMs: number;
  readonly threadCapSleepMs: number;
  /** Guest pages written before migration started, and since. */
  readonly guestPagesWrittenAtStart: number;
  readonly guestPagesWritten: number;
  /** Whether the vCPUs count their page writes (a WebAssembly program's are not: its progress is its run time). */
  readonly guestCountsPageWrites: boolean;
  /** Time the vCPUs ran guest code since migration started (throttle sleeps, pacing and pauses excluded), ms, summed over vCPUs. */
  readonly guestRunMs: number;
  /**
   * Set when the policy's ladder switched over by pause-and-finish, why:
   * the downtime is then exempt from its limit, and every report says so.
   */
  readonly pauseAndFinish: string | null;
  /** With the capability xbzrle: QEMU's XBZRLECacheStats (xbzrle-stats.ts), summed over channels; absent without. */
  readonly xbzrleCache?: XbzrleCacheInfo;
  /** Post-copy's counters once it began (postcopy-source.ts); absent or null before. */
  readonly postcopy?: PostcopySourceCounters | null;
  /** Several channels with multifd-compression: the channels' figures summed (compression-stats.ts); absent or null without. */
  readonly compression?: CompressionStats | null;
}

/** What the migration thread posts: every figure but the pass history. */
export type SourceCounters = Omit<SourceStats, 'passes'>;

export function emptyStats(totalRamBytes = 0): SourceStats {
  return {
    totalRamBytes, transferredBytes: 0, normalPages: 0, normalBytes: 0, duplicatePages: 0, remainingBytes: totalRamBytes,
    dirtySyncCount: 0, dirtyPagesRate: 0, mbps: 0, pagesPerSecond: 0, setupTimeMs: 0, totalTimeMs: 0, downtimeMs: null, verifyMs: 0,
    expectedDowntimeMs: 0, bandwidthBytesPerSec: 0, ackedBytes: 0, inflightBytes: 0, pass: 0, passFraction: 0, passes: [], switchover: null, threadBusyMs: 0, threadCapSleepMs: 0,
    guestPagesWrittenAtStart: 0, guestPagesWritten: 0, guestCountsPageWrites: true, guestRunMs: 0, pauseAndFinish: null,
  };
}
