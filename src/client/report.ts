/** Human-readable lines for migrations: one per pass, and the summary. */
import type { MigrateInfo } from '../control/query-migrate.js';
import type { LatencySummary } from './stall-probe.js';
import type { PassRecord, SourceStats } from '../migration/stats.js';
import { formatBytes } from './size.js';

export function passLine(p: PassRecord): string {
  const rate = p.durationMs > 0 ? formatBytes((p.bytes * 1000) / p.durationMs) : '-';
  return `  pass ${String(p.pass).padStart(3)}: ${p.normalPages} pages + ${p.zeroPages} zero in ${p.durationMs.toFixed(1)} ms ` +
    `(${rate}/s); ${p.remainingPages} dirty left; ${p.decision}`;
}

export function summaryLines(status: string, s: SourceStats, error: string | null): string[] {
  const lines = [
    `migration ${status}${error === null ? '' : `: ${error}`}`,
    `  total time      ${s.totalTimeMs.toFixed(1)} ms (setup ${s.setupTimeMs.toFixed(1)} ms)`,
    `  downtime        ${s.downtimeMs === null ? '-' : `${s.downtimeMs.toFixed(2)} ms`}${s.verifyMs > 0 ? ` (of which verify ${s.verifyMs.toFixed(2)} ms)` : ''}`,
    `  transferred     ${formatBytes(s.transferredBytes)} in ${s.passes.length + (s.downtimeMs === null ? 0 : 1)} passes, ${s.mbps.toFixed(0)} Mbit/s`,
    `  pages           ${s.normalPages} with data, ${s.duplicatePages} zero`,
    `  guest progress  ${s.guestPagesWritten - s.guestPagesWrittenAtStart} page writes during migration`,
  ];
  return lines;
}

/** The end-of-migration table: QEMU's query-migrate figures, then ferry's stall figure. */
export function summaryTable(info: MigrateInfo, latency: { baseline: LatencySummary; during: LatencySummary } | null): string[] {
  const rows: [string, string][] = [['status', info.status + (info['error-desc'] === undefined ? '' : `: ${info['error-desc']}`)]];
  const ms = (v: number | undefined) => (v === undefined ? '-' : `${v} ms`);
  rows.push(['total-time', ms(info['total-time'])], ['setup-time', ms(info['setup-time'])], ['downtime', ms(info.downtime)]);
  const sw = info['x-ferry-switchover'];
  if (sw !== undefined) {
    // Where the downtime went (the rest: appending the vCPU and device state).
    const f = (v: number) => v.toFixed(1);
    rows.push(['  expected', `${f(sw.expectedMs)} ms`], ['  phases', `pause ${f(sw.pauseMs)}, final pass ${f(sw.finalPassMs)} (${sw.finalPages} pages), ` +
      `${sw.verifyMs > 0 ? `source digest ${f(sw.verifyMs)}, ` : ''}to LOADED ${f(sw.loadedWaitMs)}${sw.verifyMs > 0 ? ' (with the destination\'s digest)' : ''}, ` +
      `commit ${f(sw.commitMs)}, resume ${f(sw.resumeMs)} ms`]);
  }
  if (info.ram !== undefined) {
    const r = info.ram;
    rows.push(
      ['ram transferred', formatBytes(r.transferred)], ['ram total', formatBytes(r.total)],
      ['ram normal', `${r.normal} pages (${formatBytes(r['normal-bytes'])})`], ['ram duplicate (zero)', `${r.duplicate} pages`],
      ['mbps', r.mbps.toFixed(1)], ['pages-per-second', String(r['pages-per-second'])],
      ['dirty-sync-count', String(r['dirty-sync-count'])], ['dirty-pages-rate', `${r['dirty-pages-rate']} pages/s`],
    );
  }
  if (latency !== null) {
    const l = (x: LatencySummary) => `p50 ${x.p50Ms.toFixed(2)} / p99 ${x.p99Ms.toFixed(2)} / max ${x.maxMs.toFixed(1)} ms (${x.samples})`;
    rows.push(['control latency before', l(latency.baseline)], ['control latency during', l(latency.during)]);
  }
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `  ${k.padEnd(width)}  ${v}`);
}
