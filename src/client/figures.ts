/**
 * The figures of one migration as labelled rows, shared by the terminal
 * summary (report.ts) and the HTML report (html-report.ts), so that both
 * say the same things in the same units (size.ts: binary units only).
 *
 * Two bandwidths are shown, each under its own label, because they answer
 * different questions and can differ several-fold (4-9x were seen):
 *   - a pass's transfer rate: the bytes the pass sent / the pass's time,
 *     what the sender achieved (socket buffers fill at memory speed);
 *   - the rule's estimate (cautious): the bandwidth the switchover rule
 *     used after that pass (bandwidth.ts `forSwitchover`: bytes the
 *     destination acknowledged per link-limited window, the lower of their
 *     mean and a slow recent window; or avail-switchover-bandwidth if set).
 */
import type { MigrateInfo } from '../control/query-migrate.js';
import type { PassRecord, SwitchoverRecord } from '../migration/stats.js';
import { formatBytes, formatPages, formatRate } from './size.js';

/** A label and its value, units included. */
export type Row = readonly [label: string, value: string];

/** What query-migrate does not say: the passes (x-ferry-query-passes) and the downtime limit (query-migrate-parameters). */
export interface FigureContext {
  readonly passes?: readonly PassRecord[];
  readonly downtimeLimitMs?: number;
}

export const RULE_ESTIMATE = "rule's estimate (cautious)";

const ms = (v: number | undefined, digits = 0) => (v === undefined ? '-' : `${v.toFixed(digits)} ms`);

/** A pass's transfer rate, bytes/s: bytes sent / pass time (NaN for a pass of no time). */
export function passRate(p: Pick<PassRecord, 'bytes' | 'durationMs'>): number {
  return p.durationMs > 0 ? (p.bytes * 1000) / p.durationMs : Number.NaN;
}

/** Both bandwidths of a pass, labelled: "sent 812.0 MiB/s (bytes / pass time); rule's estimate (cautious) 95.4 MiB/s". */
export function bandwidthText(p: PassRecord): string {
  return `sent ${formatRate(passRate(p))} (bytes / pass time); ${RULE_ESTIMATE} ${formatRate(p.bandwidthBytesPerSec)}`;
}

/** The downtime limit, the downtime (or the expected one while running), and where a completed switchover's time went. */
export function downtimeRows(info: MigrateInfo, limitMs: number | undefined): Row[] {
  const rows: Row[] = [];
  if (limitMs !== undefined) rows.push(['downtime limit', ms(limitMs)]);
  const sw = info['x-ferry-switchover'];
  if (sw !== undefined) rows.push(['expected downtime', `${ms(sw.expectedMs, 1)} (the switchover rule's, at its decision)`]);
  else if (info['expected-downtime'] !== undefined) rows.push(['expected downtime', ms(info['expected-downtime'])]);
  const finish = info['x-ferry-pause-and-finish'];
  const exempt = finish === undefined ? '' : ' (pause-and-finish: exempt from the downtime limit)';
  if (info.downtime !== undefined) rows.push(['downtime', `${ms(info.downtime)}${exempt}${sw === undefined ? '' : ', of which:'}`]);
  if (sw !== undefined) rows.push(...switchoverRows(sw));
  return rows;
}

/** The policy's remedy, when one was engaged, and why; pause-and-finish says it was chosen. */
function policyRows(info: MigrateInfo): Row[] {
  const remedy = info['x-ferry-remedy'];
  if (remedy === undefined || remedy.name === 'none') return [];
  return [['policy remedy', `${remedy.name}: ${remedy.why}`]];
}

/** x-ferry-switchover: the phases of the downtime, each with its time, and the final pass's pages apart. */
function switchoverRows(sw: SwitchoverRecord): Row[] {
  const f = (v: number) => ms(v, 1);
  const verify = sw.verifyMs > 0;
  const phases = sw.pauseMs + sw.finalPassMs + sw.verifyMs + sw.loadedWaitMs + sw.commitMs + sw.resumeMs;
  const rows: Row[] = [
    ['  pause', `${f(sw.pauseMs)} (until every vCPU acknowledged)`],
    ['  final pass', `${f(sw.finalPassMs)}: ${formatPages(sw.finalPages)}, ${formatBytes(sw.finalBytes)} sent at ` +
      `${formatRate(passRate({ bytes: sw.finalBytes, durationMs: sw.finalPassMs }))}; ${sw.pagesAtDecision} pages dirty at the decision`],
  ];
  // Verify's digest was kept page by page as pages went (ram-digest.ts): at the switchover it is only sent, and compared.
  if (verify) rows.push(['  VERIFY', `${f(sw.verifyMs)} (sending the digest kept as pages were sent)`]);
  rows.push(
    ['  wait for LOADED', `${f(sw.loadedWaitMs)}${verify ? ' (the destination compares the digests first)' : ''}`],
    ['  commit', `${f(sw.commitMs)} (LOADED to GO)`],
    ['  resume', `${f(sw.resumeMs)} (GO to RESUMED)`],
    ['  the rest', `${f(Math.max(0, sw.downtimeMs - phases))} (vCPU and device state, messages between threads)`],
  );
  return rows;
}

/** The last live pass's two bandwidths, each labelled (see the header). */
function bandwidthRows(passes: readonly PassRecord[]): Row[] {
  const last = passes.at(-1);
  if (last === undefined) return [];
  return [
    [`pass ${last.pass} transfer rate`, `${formatRate(passRate(last))} (bytes sent / pass time)`],
    [RULE_ESTIMATE, `${formatRate(last.bandwidthBytesPerSec)} (the bandwidth the switchover rule used after pass ${last.pass})`],
  ];
}

/** query-migrate's RAM figures, labelled. */
function ramRows(info: MigrateInfo): Row[] {
  const r = info.ram;
  if (r === undefined) return [];
  return [
    ['transferred', `${formatBytes(r.transferred)} (RAM ${formatBytes(r.total)})`],
    ['remaining', formatBytes(r.remaining)],
    ['pages sent', `${formatPages(r.normal)} with data, ${r.duplicate} zero (as runs)`],
    ['dirty rate', `${r['dirty-pages-rate']} pages/s (${formatRate(r['dirty-pages-rate'] * r['page-size'])})`],
    // QEMU's mbps is in megabits (10^6 bits) per second: back to bytes, shown in MiB/s as every rate here.
    ['average rate', `${formatRate((r.mbps * 1e6) / 8)} (transferred / total time)`],
    ['dirty syncs', String(r['dirty-sync-count'])],
    ...xbzrleRows(info),
  ];
}

/** multifd-compression's figures (query-migrate's `compression`), when the channels compressed. */
export function compressionRows(info: MigrateInfo): Row[] {
  const c = info.compression;
  if (c === undefined) return [];
  const rows: Row[] = [
    ['compression', `${c['x-ferry-method']}: ${formatPages(c.pages)} in ${c['x-ferry-compressed-packets']} packets compressed to ${formatBytes(c['compressed-size'])} ` +
      `(rate ${c['compression-rate'].toFixed(2)}); ${c.busy} of ${c['x-ferry-packets']} packets raw (${(c['busy-rate'] * 100).toFixed(1)} %)`],
    ['compression time', `${ms(c['x-ferry-busy-ms'])} in the codec, of which ${ms(c['x-ferry-probe-ms'])} probing (${c['x-ferry-probes']} probes)`],
  ];
  if (c['x-ferry-why'] !== undefined) rows.push(['compression choice', `${c['x-ferry-compressing-channels']} of ${c['x-ferry-channels']} channels compressing; ${c['x-ferry-why']}`]);
  return rows;
}

/** query-migrate's xbzrle-cache, labelled (with the capability xbzrle). */
export function xbzrleRows(info: MigrateInfo): Row[] {
  const x = info['xbzrle-cache'];
  if (x === undefined) return [];
  return [['xbzrle', xbzrleText(x)]];
}

/** XBZRLE's figures in words: the cache, what it encoded and missed, what the encoded pages cost. */
export function xbzrleText(x: NonNullable<MigrateInfo['xbzrle-cache']>): string {
  return `${formatPages(x.pages)} encoded (${formatBytes(x.bytes)}), ${formatPages(x['cache-miss'])} missed, ${x.overflow} overflowed; ` +
    `encoding rate ${x['encoding-rate'].toFixed(1)}, miss rate ${(100 * x['cache-miss-rate']).toFixed(1)} % (cache ${formatBytes(x['cache-size'])})`;
}

/** Every figure of a migration, in the order people read them. */
export function migrationRows(info: MigrateInfo, ctx: FigureContext = {}): Row[] {
  const error = info['error-desc'] === undefined ? '' : `: ${info['error-desc']}`;
  return [
    ['status', info.status + error],
    ['total time', `${ms(info['total-time'])} (setup ${ms(info['setup-time'])})`],
    ...downtimeRows(info, ctx.downtimeLimitMs),
    ...policyRows(info),
    ...ramRows(info),
    ...compressionRows(info),
    ...bandwidthRows(ctx.passes ?? []),
  ];
}
