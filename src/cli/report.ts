/** Human-readable lines for migrations: one per pass, and the summary. */
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
