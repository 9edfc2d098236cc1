/**
 * What the reports say (issue 12 item 9), on their formatted strings: one
 * unit system (binary) with every figure labelled; both bandwidths, each
 * under its own label; the downtime limit, the expected downtime and where
 * the downtime went; 0 remaining at completion with the final pass apart.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RULE_ESTIMATE } from '../../src/client/figures.js';
import { chartData, renderReport, type ReportData } from '../../src/client/html-report.js';
import { MigrationProgress } from '../../src/client/progress.js';
import { passLine, summaryLines, summaryTable } from '../../src/client/report.js';
import { formatBytes, formatPages, formatRate } from '../../src/client/size.js';
import type { MigrateInfo, RamInfo } from '../../src/control/query-migrate.js';
import { emptyStats, type PassRecord, type SwitchoverRecord } from '../../src/migration/stats.js';
import { fileLimit } from '../waits.js';

fileLimit(import.meta.url, 30_000);

const MiB = 1024 ** 2;
/** A decimal unit (MB, GB, Mbit) or a size without a unit: what no report may print. */
const DECIMAL_UNIT = /\b\d+(?:\.\d+)?\s*(?:[kKMGT]B|[MG]bit)\b|\bMB\/s\b/;

/** A pass that sent 40 MiB in 100 ms (400 MiB/s) while the rule's cautious estimate was 50 MiB/s. */
function pass(n: number, remainingPages = 8960): PassRecord {
  return {
    pass: n, normalPages: 10_240, zeroPages: 10, bytes: 40 * MiB, durationMs: 100, dirtyFound: 9000, remainingPages, inflightBytes: 0,
    dirtyRatePagesPerSec: 5000, bandwidthBytesPerSec: 50 * MiB, expectedDowntimeMs: 40 / n, guestPagesWritten: 1e4 * n, decision: 'iterate', convergence: null,
  };
}

const switchover: SwitchoverRecord = {
  decisionToPausedMs: 4, pauseMs: 1.5, pagesAtDecision: 900, finalPages: 1000, finalBytes: 4_096_000, finalPassMs: 20, verifyMs: 0,
  loadedWaitMs: 3, commitMs: 1, resumeMs: 2, expectedMs: 28.4, downtimeMs: 30,
};

function ram(o: Partial<RamInfo>): RamInfo {
  return {
    transferred: 0, remaining: 0, total: 0, duplicate: 0, skipped: 0, normal: 0, 'normal-bytes': 0, 'dirty-pages-rate': 0, mbps: 0,
    'dirty-sync-count': 0, 'page-size': 4096, 'pages-per-second': 0, 'precopy-bytes': 0, ...o,
  };
}

const completed: MigrateInfo = {
  status: 'completed', 'total-time': 900, 'setup-time': 5, downtime: 30, 'x-ferry-switchover': switchover,
  ram: ram({ transferred: 300 * MiB, total: 256 * MiB, normal: 70_000, 'normal-bytes': 70_000 * 4096, duplicate: 12, 'dirty-pages-rate': 2560, mbps: 2796.2 }),
};

const latency = { baseline: { samples: 150, p50Ms: 0.6, p99Ms: 1, maxMs: 1.2 }, during: { samples: 50, p50Ms: 0.7, p99Ms: 1.1, maxMs: 1.3 } };

function report(over: Partial<ReportData> = {}): ReportData {
  return {
    title: 'test', info: completed, passes: [pass(1), pass(2)], probe: [], migrateAtMs: 1000, latency, downtimeLimitMs: 300,
    timeline: [{ atMs: 1100, info: { status: 'active', ram: ram({ remaining: 35 * MiB }) } }, { atMs: 1900, info: completed }],
    ...over,
  };
}

test('sizes and rates are printed in binary units, each with its unit', () => {
  assert.equal(formatBytes(0), '0 B');
  assert.equal(formatBytes(1023), '1023 B');
  assert.equal(formatBytes(35 * MiB), '35.0 MiB');
  assert.equal(formatBytes(1.5 * 1024 * MiB), '1.5 GiB');
  assert.equal(formatRate(100e6), '95.4 MiB/s', "QEMU's 100 MB/s is 95.4 MiB/s");
  assert.equal(formatRate(Number.NaN), '-');
  assert.equal(formatPages(8960), '8960 pages (35.0 MiB)');
  assert.equal(formatPages(1), '1 page (4.0 KiB)');
});

test('the summary shows the downtime limit, the expected downtime and where the downtime went', () => {
  const lines = summaryTable(completed, latency, { passes: [pass(1), pass(2)], downtimeLimitMs: 300 });
  const row = (label: string) => lines.find((l) => l.trim().startsWith(`${label}  `)) ?? assert.fail(`no row "${label}" in\n${lines.join('\n')}`);
  assert.match(row('downtime limit'), /300 ms$/);
  assert.match(row('downtime'), /30 ms, of which:$/);
  assert.match(row('expected downtime'), /28\.4 ms \(the switchover rule's, at its decision\)$/);
  assert.match(row('pause'), /1\.5 ms/);
  assert.match(row('final pass'), /20\.0 ms: 1000 pages \(3\.9 MiB\), 3\.9 MiB sent at 195\.3 MiB\/s; 900 pages dirty at the decision/);
  assert.match(row('wait for LOADED'), /3\.0 ms/);
  assert.match(row('commit'), /1\.0 ms/);
  assert.match(row('resume'), /2\.0 ms/);
  assert.match(row('the rest'), /2\.5 ms/, '30 ms of downtime less 27.5 ms of phases');
  assert.match(row('remaining'), /0 B$/);
});

test('both bandwidths are shown, each labelled: the pass\'s transfer rate and the rule\'s cautious estimate', () => {
  assert.match(passLine(pass(2)), /sent 400\.0 MiB\/s \(bytes \/ pass time\); rule's estimate \(cautious\) 50\.0 MiB\/s/);
  const table = summaryTable(completed, null, { passes: [pass(1), pass(2)] }).join('\n');
  assert.match(table, /pass 2 transfer rate\s+400\.0 MiB\/s \(bytes sent \/ pass time\)/);
  assert.match(table, /rule's estimate \(cautious\)\s+50\.0 MiB\/s \(the bandwidth the switchover rule used after pass 2\)/);
  const stats = { ...emptyStats(256 * MiB), passes: [pass(1)], switchover, downtimeMs: 30, transferredBytes: 300 * MiB, totalTimeMs: 1000, remainingBytes: 0 };
  const lines = summaryLines('completed', stats, null).join('\n');
  assert.match(lines, /last live pass\s+1: sent 400\.0 MiB\/s \(bytes \/ pass time\); rule's estimate \(cautious\) 50\.0 MiB\/s/);
  assert.match(lines, /average 300\.0 MiB\/s/);
  assert.match(lines, /final pass\s+1000 pages \(3\.9 MiB\) in 20\.0 ms/);
});

/** A terminal for cli-progress that keeps what was written. */
function fakeTerminal(): { stream: NodeJS.WriteStream; text: () => string } {
  let text = '';
  const stream = { isTTY: true, columns: 1000, write: (s: string) => { text += s; return true; } };
  return { stream: stream as unknown as NodeJS.WriteStream, text: () => text };
}

test('the progress bar shows the pass\'s transfer rate so far and the rule\'s cautious estimate, each labelled', () => {
  const term = fakeTerminal();
  let now = 1000;
  const progress = new MigrationProgress(term.stream, false, () => now);
  const live = (transferred: number, fraction: number): MigrateInfo => ({
    status: 'active', 'expected-downtime': 40, ram: ram({ transferred, remaining: 35 * MiB, 'dirty-pages-rate': 2560 }),
    'x-ferry-progress': { pass: 3, 'pass-fraction': fraction, 'bandwidth-bytes-per-sec': 0, 'inflight-bytes': 0, 'guest-pages-written': 0, 'guest-run-ms': 0 },
  });
  try {
    progress.update(live(500 * MiB, 0.1), [pass(1), pass(2)]);
    now = 1500;
    progress.update(live(600 * MiB, 0.5), [pass(1), pass(2)]);
  } finally {
    progress.finish();
  }
  const out = term.text();
  assert.match(out, /sent 200\.0 MiB\/s this pass/, '100 MiB in 500 ms');
  assert.match(out, new RegExp(`${RULE_ESTIMATE.replace(/[()]/g, '\\$&')} 50\\.0 MiB/s`));
  assert.match(out, /remaining 35\.0 MiB \| dirtying 10\.0 MiB\/s \| expected downtime 40 ms/);
  assert.match(out, /pass {3}2: .*sent 400\.0 MiB\/s/, 'the finished passes, each on its line');
});

test('the HTML report shows the downtime limit, the expected downtime, the breakdown and both bandwidths', () => {
  const html = renderReport(report());
  for (const label of ['downtime limit', 'expected downtime', 'final pass', 'wait for LOADED', 'commit', 'resume', 'pass 2 transfer rate', RULE_ESTIMATE]) {
    assert.ok(html.includes(`<th>${label}</th>`) || html.includes(`<th>  ${label}</th>`), `a row "${label}"`);
  }
  assert.match(html, /<th>downtime limit<\/th><td>300 ms<\/td>/);
  assert.match(html, /<th>remaining<\/th><td>0 B<\/td>/);
  assert.ok(html.includes("'pass transfer rate (MiB/s: bytes sent / pass time)'") && html.includes(`"${RULE_ESTIMATE} (MiB/s)"`), 'both charted, each labelled');
  assert.ok(html.includes("'downtime limit (ms)'"), 'the limit drawn beside the expected downtime');
  const d = chartData(report());
  assert.deepEqual(d.passes.map((p) => [p.sentMiBps, p.ruleMiBps]), [[400, 50], [400, 50]]);
  assert.deepEqual(d.timeline.map((t) => t.remainingMiB), [35, 0], 'remaining ends at 0 at completion');
  assert.equal(d.limitMs, 300);
});

test('no report prints a decimal unit (MB, GB, Mbit) beside binary ones', () => {
  const term = fakeTerminal();
  const progress = new MigrationProgress(term.stream, false, () => 0);
  progress.update(completed, [pass(1), pass(2)]);
  progress.finish();
  const stats = { ...emptyStats(256 * MiB), passes: [pass(1)], switchover, downtimeMs: 30, transferredBytes: 300 * MiB, totalTimeMs: 1000, mbps: 2516.6 };
  const html = renderReport(report());
  const summary = /<table>.*<\/table>/s.exec(html)?.[0] ?? '';
  const chartLabels = [...html.matchAll(/label: ([^,]+),/g)].map((m) => m[1]).join('\n');
  for (const [what, text] of [
    ['the summary table', summaryTable(completed, latency, { passes: [pass(1)], downtimeLimitMs: 300 }).join('\n')],
    ['ferry run\'s summary', summaryLines('completed', stats, null).join('\n')],
    ['the pass lines and the bar', term.text()],
    ['the HTML summary', summary],
    ['the HTML charts\' labels', chartLabels],
  ] as const) {
    assert.ok(!DECIMAL_UNIT.test(text), `${what} says ${DECIMAL_UNIT.exec(text)?.[0]}:\n${text}`);
    assert.ok(text.length > 0, `${what} is not empty`);
  }
});

test('with xbzrle, query-migrate\'s xbzrle-cache is shown labelled in the summary, the table and once under each pass line of the progress', () => {
  const x = { 'cache-size': 512 * MiB, bytes: 3 * MiB, pages: 120_000, 'cache-miss': 11_000, 'cache-miss-rate': 0.0625, 'encoding-rate': 409.6, overflow: 7 };
  const words = /120000 pages \(468\.8 MiB\) encoded \(3\.0 MiB\), 11000 pages \(43\.0 MiB\) missed, 7 overflowed; encoding rate 409\.6, miss rate 6\.3 % \(cache 512\.0 MiB\)/;
  const lines = summaryLines('completed', { ...emptyStats(256 * MiB), xbzrleCache: x }, null);
  assert.ok(lines.some((l) => /^ {2}xbzrle {10}/.test(l) && words.test(l)), lines.join('\n'));
  assert.ok(!summaryLines('completed', emptyStats(256 * MiB), null).some((l) => l.includes('xbzrle')), 'nothing without the capability');
  const table = summaryTable({ ...completed, 'xbzrle-cache': x }, null);
  assert.ok(table.some((l) => /^ {2}xbzrle +/.test(l) && words.test(l)), table.join('\n'));
  const term = fakeTerminal();
  const progress = new MigrationProgress(term.stream, false, () => 0);
  const live: MigrateInfo = { status: 'active', ram: ram({}), 'xbzrle-cache': x };
  try {
    progress.update(live, [pass(1)]);
    progress.update(live, [pass(1)]);
    progress.update(live, [pass(1), pass(2)]);
  } finally {
    progress.finish();
  }
  assert.equal(term.text().match(/xbzrle: /g)?.length, 2, term.text());
});

test('the guest\'s progress during the migration: page writes and vCPU run time; a WebAssembly program\'s run time only, saying its writes are not counted', () => {
  const base = { ...emptyStats(256 * MiB), guestPagesWrittenAtStart: 1000, guestPagesWritten: 4500, guestRunMs: 1234.5 };
  const progress = (s: typeof base) => summaryLines('completed', s, null).find((l) => l.includes('guest progress'));
  assert.equal(progress(base), '  guest progress  3500 page writes, 1.23 s of vCPU run time during migration');
  assert.equal(progress({ ...base, guestPagesWrittenAtStart: 0, guestPagesWritten: 0, guestCountsPageWrites: false }),
    '  guest progress  1.23 s of vCPU run time during migration (a WebAssembly program\'s page writes are not counted)');
});
