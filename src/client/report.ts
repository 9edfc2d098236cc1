/** Human-readable lines for migrations: one per pass, and the summary (figures.ts labels every figure). */
import type { MigrateInfo } from '../control/query-migrate.js';
import type { LatencySummary } from './stall-probe.js';
import type { PassRecord, SourceStats } from '../migration/stats.js';
import { bandwidthText, migrationRows, xbzrleText, type FigureContext, type Row } from './figures.js';
import { formatBytes, formatPages, formatRate } from './size.js';

export function passLine(p: PassRecord): string {
  return `  pass ${String(p.pass).padStart(3)}: ${p.normalPages} pages + ${p.zeroPages} zero in ${p.durationMs.toFixed(1)} ms ` +
    `(${bandwidthText(p)}); ${formatPages(p.remainingPages)} dirty left; ${p.decision}`;
}

export function summaryLines(status: string, s: SourceStats, error: string | null): string[] {
  const sw = s.switchover;
  const last = s.passes.at(-1);
  const lines = [
    `migration ${status}${error === null ? '' : `: ${error}`}`,
    `  total time      ${s.totalTimeMs.toFixed(1)} ms (setup ${s.setupTimeMs.toFixed(1)} ms)`,
    `  downtime        ${s.downtimeMs === null ? '-' : `${s.downtimeMs.toFixed(2)} ms`}${s.verifyMs > 0 ? ` (of which verify ${s.verifyMs.toFixed(2)} ms)` : ''}` +
      `${s.pauseAndFinish === null ? '' : ' (pause-and-finish: exempt from the downtime limit)'}`,
    `  transferred     ${formatBytes(s.transferredBytes)} in ${s.passes.length + (s.downtimeMs === null ? 0 : 1)} passes, ` +
      `average ${formatRate((s.transferredBytes * 1000) / Math.max(s.totalTimeMs, 1e-3))}`,
    `  remaining       ${formatBytes(s.remainingBytes)}`,
    `  pages           ${s.normalPages} with data, ${s.duplicatePages} zero`,
  ];
  if (s.xbzrleCache !== undefined) lines.push(`  xbzrle          ${xbzrleText(s.xbzrleCache)}`);
  if (last !== undefined) lines.push(`  last live pass  ${last.pass}: ${bandwidthText(last)}`);
  const remedy = s.passes.findLast((p) => p.remedy != null)?.remedy;
  if (remedy != null && remedy.name !== 'none') lines.push(`  policy remedy   ${remedy.name}: ${remedy.why}`);
  if (sw !== null) lines.push(`  final pass      ${formatPages(sw.finalPages)} in ${sw.finalPassMs.toFixed(1)} ms`);
  lines.push(`  guest progress  ${guestProgress(s)}`);
  return lines;
}

/** The end-of-migration table: query-migrate's figures, labelled (figures.ts), then ferry's stall figure. */
export function summaryTable(
  info: MigrateInfo, latency: { baseline: LatencySummary; during: LatencySummary } | null, ctx: FigureContext = {},
): string[] {
  const rows: Row[] = migrationRows(info, ctx);
  if (latency !== null) {
    const l = (x: LatencySummary) => `p50 ${x.p50Ms.toFixed(2)} / p99 ${x.p99Ms.toFixed(2)} / max ${x.maxMs.toFixed(1)} ms (${x.samples})`;
    rows.push(['control latency before', l(latency.baseline)], ['control latency during', l(latency.during)]);
  }
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `  ${k.padEnd(width)}  ${v}`);
}

/** What the guest did during the migration: its page writes where counted, and its vCPUs' run time (a program's stores are not counted). */
function guestProgress(s: SourceStats): string {
  const ran = `${(s.guestRunMs / 1000).toFixed(2)} s of vCPU run time`;
  return s.guestCountsPageWrites
    ? `${s.guestPagesWritten - s.guestPagesWrittenAtStart} page writes, ${ran} during migration`
    : `${ran} during migration (a WebAssembly program's page writes are not counted)`;
}
