/**
 * The answer to `query-migrate`, as QEMU 7.2 gives it (MigrationInfo) plus
 * ferry's `x-ferry-` extras: one type, built here for the server and read
 * by the client side (progress, reports, `ferry status`). Before any
 * migration the answer is `{}`, as QEMU's.
 */
import { ferryCodeOf } from '../errors.js';
import type { VcpuDirtyLimit } from '../migration/dirty-limit-controller.js';
import type { IncomingStatus } from '../migration/incoming.js';
import { incomingInPostcopy } from '../migration/incoming-status.js';
import type { LoaderStats } from '../migration/messages.js';
import type { PreallocFigures } from '../migration/preallocation.js';
import type { SourceStats, SwitchoverRecord } from '../migration/stats.js';
import type { CompressionStats } from '../migration/compression-stats.js';
import type { MigrationStatus } from '../migration/status.js';
import type { XbzrleCacheInfo } from '../migration/xbzrle-stats.js';
import type { Convergence } from '../migration/migration-policy.js';
import { parseUri } from '../transport/uri.js';
import type { GuestController } from './controller.js';

/** QEMU's MigrationStats, as ferry fills it (skipped: always 0; page-size: 4096). */
export interface RamInfo {
  transferred: number;
  remaining: number;
  total: number;
  duplicate: number;
  skipped: number;
  normal: number;
  'normal-bytes': number;
  'dirty-pages-rate': number;
  mbps: number;
  'dirty-sync-count': number;
  'page-size': number;
  'pages-per-second': number;
  'precopy-bytes': number;
  /** Post-copy (QEMU's names): bytes sent after GO, and pages the destination asked for. */
  'postcopy-bytes'?: number;
  'postcopy-requests'?: number;
}

/**
 * QEMU's CompressionStats (compression-stats.ts says how ferry counts
 * each), summed over the channels, with ferry's: the method in use, the
 * packets, and `auto`'s decision and why.
 */
export interface CompressionInfo {
  pages: number;
  busy: number;
  'busy-rate': number;
  'compressed-size': number;
  'compression-rate': number;
  'x-ferry-method': string;
  'x-ferry-packets': number;
  'x-ferry-compressed-packets': number;
  'x-ferry-busy-ms': number;
  'x-ferry-probes': number;
  'x-ferry-probe-ms': number;
  /** Channels compressing every packet now, of all (auto turns each on and off). */
  'x-ferry-compressing-channels': number;
  'x-ferry-channels': number;
  /** auto: its decision in words with its figures (before one: which codec it picked and why). */
  'x-ferry-why'?: string;
}

/** Where a destination listens (QEMU's SocketAddress). */
export type SocketAddress = { type: 'inet'; host: string; port: string } | { type: 'unix'; path: string };

/** ferry's extras for progress displays: where the current pass is, and the estimates. */
export interface FerryProgress {
  pass: number;
  'pass-fraction': number;
  'bandwidth-bytes-per-sec': number;
  'inflight-bytes': number;
  'guest-pages-written': number;
  /** The vCPUs' run time since migration started, ms (throttle sleeps, pacing and pauses excluded). */
  'guest-run-ms': number;
  /** false for a WebAssembly program, whose page writes are not counted ('guest-pages-written' is then 0). */
  'guest-pages-counted'?: false;
}

/** A query-migrate answer once a migration (outgoing or incoming) exists. */
export interface MigrateInfo {
  status: MigrationStatus;
  'total-time'?: number;
  'setup-time'?: number;
  downtime?: number;
  'expected-downtime'?: number;
  /** auto-converge's throttle of the vCPUs, percent: present while a migration with the capability runs, 0 included (QEMU's cpu-throttle-percentage). */
  'cpu-throttle-percentage'?: number;
  /**
   * dirty-limit, while it is engaged (QEMU 8.1's names, microseconds; what
   * ferry's figures are: migration/dirty-limit-controller.ts): the longest
   * throttle sleep per round, and the time a vCPU runs between sleeps.
   */
  'dirty-limit-throttle-time-per-round'?: number;
  'dirty-limit-ring-full-time'?: number;
  /** dirty-limit, while it is engaged: each vCPU's quota, measured rate (MB/s) and throttle (QEMU's query-vcpu-dirty-limit, plus the throttle). */
  'x-ferry-vcpu-dirty-limit'?: readonly VcpuDirtyLimit[];
  ram?: RamInfo;
  /** Several channels with multifd-compression: QEMU's compression figures and ferry's (see CompressionInfo). */
  compression?: CompressionInfo;
  /** With the capability xbzrle: QEMU's XBZRLECacheStats (cache-size, bytes, pages, cache-miss, cache-miss-rate, encoding-rate, overflow), summed over channels. */
  'xbzrle-cache'?: XbzrleCacheInfo;
  'error-desc'?: string;
  /** Beside error-desc: the code of the ferry error behind it (see errors.ts). */
  'x-ferry-error-code'?: string;
  /** Destination only: where it listens. */
  'socket-address'?: SocketAddress[];
  'x-ferry-switchover'?: SwitchoverRecord;
  'x-ferry-progress'?: FerryProgress;
  /** The policy's convergence observation after the last live pass, in words (migration-policy.ts). */
  'x-ferry-convergence'?: Convergence;
  /** The policy's remedy in force after the last live pass and why it was engaged (remedies.ts; name 'none', why '' before any). */
  'x-ferry-remedy'?: { name: string; why: string };
  /** The time to converge at the last live pass's rates, in words (convergence-prediction.ts). */
  'x-ferry-prediction'?: string;
  /** Set when the policy switched over by pause-and-finish: why. The downtime is then exempt from downtime-limit. */
  'x-ferry-pause-and-finish'?: string;
  /** Destination only: the loader's counters. */
  'x-ferry-loader'?: LoaderStats;
  /** Destination with prealloc: preallocation's figures, its time apart from the migration's (migration/preallocation.ts). */
  'x-ferry-prealloc'?: PreallocFigures;
  /**
   * Destination, with the capability postcopy-blocktime (QEMU's names, ms):
   * time all vCPUs waited for pages at once, and each vCPU's time waiting.
   */
  'postcopy-blocktime'?: number;
  'postcopy-vcpu-blocktime'?: number[];
  /** Post-copy paused, either side: why (the broken link, or the recovery that failed). */
  'x-ferry-pause-reason'?: string;
  /** Destination in post-copy: request to page latency, ms, and how many waits it covers. */
  'x-ferry-postcopy-latency'?: { p50: number | null; p99: number | null; samples: number };
}

/** The destination's status in QEMU's names. */
const INCOMING_STATUS: Readonly<Record<IncomingStatus, MigrationStatus>> = {
  listening: 'setup', connected: 'active', loading: 'active', loaded: 'device', 'postcopy-active': 'postcopy-active',
  'postcopy-paused': 'postcopy-paused', 'postcopy-recover-setup': 'postcopy-recover-setup', 'postcopy-recover': 'postcopy-recover', resumed: 'completed',
  failed: 'failed', cancelled: 'cancelled',
};

/** The destination's view, as QEMU answers query-migrate on an incoming side. */
function incomingInfo(ctl: GuestController): MigrateInfo {
  const inc = ctl.incoming!;
  const info: MigrateInfo = { status: INCOMING_STATUS[inc.status] };
  const where = parseUri(inc.uri);
  if (where.kind === 'tcp') info['socket-address'] = [{ type: 'inet', host: where.host, port: String(where.port) }];
  else if (where.kind === 'unix') info['socket-address'] = [{ type: 'unix', path: where.path }];
  const stats = inc.stats;
  if (stats !== null) info['x-ferry-loader'] = stats;
  if (inc.preallocation !== null) info['x-ferry-prealloc'] = inc.preallocation;
  const pc = stats?.postcopy;
  if (pc != null) info['x-ferry-postcopy-latency'] = { p50: pc.latencyP50Ms, p99: pc.latencyP99Ms, samples: pc.latencySamples };
  const g = ctl.guest;
  if (ctl.capabilities['postcopy-blocktime'] && g !== null && (incomingInPostcopy(inc.status) || pc != null)) {
    const f = g.pages.figures();
    info['postcopy-blocktime'] = Math.round(f.allBlockedNs / 1e6);
    info['postcopy-vcpu-blocktime'] = f.vcpus.map((v) => Math.round(v.pageWaitNs / 1e6));
  }
  if (inc.pauseReason !== null) info['x-ferry-pause-reason'] = inc.pauseReason;
  if (inc.lastError !== null) info['error-desc'] = inc.lastError;
  const code = ferryCodeOf(inc.lastFailure);
  if (code !== undefined) info['x-ferry-error-code'] = code;
  return info;
}

/** query-migrate's answer: the outgoing migration's, else the incoming one's, else `{}`. */
function compressionInfo(c: CompressionStats): CompressionInfo {
  const info: CompressionInfo = {
    pages: c.pages, busy: c.busy, 'busy-rate': c.busyRate, 'compressed-size': c.compressedSize, 'compression-rate': c.compressionRate,
    'x-ferry-method': c.method, 'x-ferry-packets': c.packets, 'x-ferry-compressed-packets': c.compressedPackets, 'x-ferry-busy-ms': Math.round(c.busyMs),
    'x-ferry-probes': c.probes, 'x-ferry-probe-ms': Math.round(c.probeMs), 'x-ferry-compressing-channels': c.compressingChannels, 'x-ferry-channels': c.channels,
  };
  if (c.why !== null) info['x-ferry-why'] = c.why;
  return info;
}

export function queryMigrate(ctl: GuestController): MigrateInfo | Record<string, never> {
  const m = ctl.migration;
  if (m === null) return ctl.incoming === null ? {} : incomingInfo(ctl);
  const s: SourceStats = m.stats;
  const info: MigrateInfo = { status: m.status };
  if (m.status === 'none') return info;
  info['total-time'] = Math.round(s.totalTimeMs);
  info['setup-time'] = Math.round(s.setupTimeMs);
  if (m.status === 'completed' && s.downtimeMs !== null) info.downtime = Math.round(s.downtimeMs);
  else if (s.expectedDowntimeMs >= 0) info['expected-downtime'] = Math.round(s.expectedDowntimeMs);
  if (m.cpuThrottlePercentage !== null) info['cpu-throttle-percentage'] = m.cpuThrottlePercentage;
  const limit = m.dirtyLimitFigures;
  if (limit !== null) {
    info['dirty-limit-throttle-time-per-round'] = limit.throttleTimePerRoundUs;
    info['dirty-limit-ring-full-time'] = limit.ringFullTimeUs;
    info['x-ferry-vcpu-dirty-limit'] = limit.vcpus;
  }
  info.ram = {
    transferred: s.transferredBytes,
    remaining: s.remainingBytes,
    total: s.totalRamBytes,
    duplicate: s.duplicatePages,
    skipped: 0,
    normal: s.normalPages,
    'normal-bytes': s.normalBytes,
    'dirty-pages-rate': Math.round(s.dirtyPagesRate),
    mbps: s.mbps,
    'dirty-sync-count': s.dirtySyncCount,
    'page-size': 4096,
    'pages-per-second': Math.round(s.pagesPerSecond),
    'precopy-bytes': s.transferredBytes - (s.postcopy?.bytes ?? 0),
  };
  if (s.xbzrleCache !== undefined) info['xbzrle-cache'] = { ...s.xbzrleCache };
  if (s.postcopy != null) {
    info.ram['postcopy-bytes'] = s.postcopy.bytes;
    info.ram['postcopy-requests'] = s.postcopy.requests;
  }
  if (s.compression != null) info.compression = compressionInfo(s.compression);
  // A failure says why; so does a cancel by the policy (its time budget), not one by the user (as QEMU's).
  if ((m.status === 'failed' || m.status === 'cancelled') && m.lastError !== null) info['error-desc'] = m.lastError;
  if (m.pauseReason !== null) info['x-ferry-pause-reason'] = m.pauseReason;
  const code = ferryCodeOf(m.lastFailure);
  if (info['error-desc'] !== undefined && code !== undefined) info['x-ferry-error-code'] = code;
  if (s.switchover !== null) info['x-ferry-switchover'] = s.switchover;
  const convergence = s.passes.at(-1)?.convergence;
  if (convergence !== undefined && convergence !== null) info['x-ferry-convergence'] = convergence;
  const policed = s.passes.findLast((p) => p.remedy != null);
  if (policed?.remedy != null) info['x-ferry-remedy'] = { ...policed.remedy };
  const prediction = policed?.prediction;
  if (prediction != null) info['x-ferry-prediction'] = prediction;
  if (s.pauseAndFinish !== null) info['x-ferry-pause-and-finish'] = s.pauseAndFinish;
  // ferry's extras, for progress displays: where the current pass is, and the estimates.
  info['x-ferry-progress'] = {
    pass: s.pass,
    'pass-fraction': s.passFraction,
    'bandwidth-bytes-per-sec': s.bandwidthBytesPerSec,
    'inflight-bytes': s.inflightBytes,
    'guest-pages-written': s.guestPagesWritten - s.guestPagesWrittenAtStart,
    'guest-run-ms': s.guestRunMs,
    ...(s.guestCountsPageWrites ? {} : { 'guest-pages-counted': false }),
  };
  return info;
}
