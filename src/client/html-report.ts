/**
 * A self-contained HTML report of one migration (viewable offline: Chart.js
 * is inlined): the figures of figures.ts (the downtime against its limit,
 * the expected downtime, where the downtime went, both bandwidths each
 * labelled), per-pass charts (pages sent, zero pages, dirty pages found;
 * the pass's transfer rate, the switchover rule's cautious estimate,
 * expected downtime and the limit), remaining and guest progress over
 * time, and the source control loop's latency over time from the stall
 * probe. Sizes in binary units (MiB), as everywhere in client/. Once drawn, the page marks each chart whose canvas holds pixels
 * (`data-drawn`) and counts them on <body data-charts-drawn>, so a headless
 * browser can check it.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { MigrateInfo } from '../control/query-migrate.js';
import type { LatencySummary, ProbeSample } from './stall-probe.js';
import type { PassRecord } from '../migration/stats.js';
import { RULE_ESTIMATE, migrationRows, passRate } from './figures.js';
import { toMiB } from './size.js';

export interface ReportData {
  readonly title: string;
  readonly info: MigrateInfo;
  readonly passes: readonly PassRecord[];
  readonly timeline: readonly { atMs: number; info: MigrateInfo }[];
  readonly probe: readonly ProbeSample[];
  readonly migrateAtMs: number;
  readonly latency: { baseline: LatencySummary; during: LatencySummary };
  /** The downtime limit the migration ran with (query-migrate-parameters), if known. */
  readonly downtimeLimitMs?: number;
}

/** Chart.js's browser build (its `exports` map hides it: find it beside the package's main file). */
export function chartJs(): string {
  const main = createRequire(import.meta.url).resolve('chart.js');
  return readFileSync(join(dirname(main), 'chart.umd.min.js'), 'utf8');
}

/**
 * Page script run after the charts: marks each canvas that holds pixels
 * (data-drawn) and counts them on <body data-charts-drawn>, for a headless
 * browser to check.
 */
export const DRAWN_CHECK = `let drawn = 0;
for (const c of document.querySelectorAll('canvas')) {
  const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let ink = false;
  for (let k = 3; k < px.length; k += 4) if (px[k] !== 0) { ink = true; break; }
  c.dataset.drawn = String(ink);
  if (ink) drawn++;
}
document.body.dataset.chartsDrawn = String(drawn);`;

export const escapeHtml = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
/** JSON that can sit inside a <script> element. */
export const scriptJson = (v: unknown) => JSON.stringify(v).replace(/</g, '\\u003c');

/** The figures the page's charts draw, in the units of their axes (MiB, MiB/s, ms, s). */
export function chartData(d: ReportData) {
  const finite = (v: number) => (Number.isFinite(v) ? v : null);
  return {
    limitMs: d.downtimeLimitMs ?? null,
    passes: d.passes.map((p) => ({
      pass: p.pass, normal: p.normalPages, zero: p.zeroPages, dirty: p.dirtyFound,
      sentMiBps: finite(toMiB(passRate(p))), ruleMiBps: toMiB(p.bandwidthBytesPerSec), expectedMs: finite(p.expectedDowntimeMs),
    })),
    timeline: d.timeline.map((t) => ({
      s: (t.atMs - d.migrateAtMs) / 1000,
      remainingMiB: toMiB(t.info.ram?.remaining ?? 0),
      guestPages: t.info['x-ferry-progress']?.['guest-pages-written'] ?? 0,
    })),
    probe: d.probe.map((p) => ({ x: (p.atMs - d.migrateAtMs) / 1000, y: p.rttMs })),
  };
}

/** The summary table: every labelled figure of figures.ts, the pass count and the control latency. */
function summaryHtml(d: ReportData): string {
  const l = (x: LatencySummary) => `p50 ${x.p50Ms.toFixed(2)} ms, p99 ${x.p99Ms.toFixed(2)} ms, max ${x.maxMs.toFixed(1)} ms`;
  return [
    ...migrationRows(d.info, { passes: d.passes, downtimeLimitMs: d.downtimeLimitMs }), ['live passes', String(d.passes.length)],
    ['control latency before', l(d.latency.baseline)], ['control latency during', l(d.latency.during)],
  ].map(([k, v]) => `<tr><th>${escapeHtml(k)}</th><td>${escapeHtml(v)}</td></tr>`).join('');
}

export function renderReport(d: ReportData): string {
  const data = chartData(d);
  const summary = summaryHtml(d);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(d.title)}</title>
<style>body{font:14px system-ui,sans-serif;margin:2em;max-width:1000px}th{text-align:left;padding-right:2em;white-space:pre}
.chart{height:300px;margin:2em 0}</style></head>
<body data-charts-drawn="0">
<h1>${escapeHtml(d.title)}</h1>
<table>${summary}</table>
<h2>Per pass</h2><div class="chart"><canvas id="pages"></canvas></div>
<div class="chart"><canvas id="rates"></canvas></div>
<h2>Over time (seconds from migrate)</h2><div class="chart"><canvas id="remaining"></canvas></div>
<div class="chart"><canvas id="latency"></canvas></div>
<script>${chartJs()}</script>
<script type="application/json" id="data">${scriptJson(data)}</script>
<script>
const d = JSON.parse(document.getElementById('data').textContent);
Chart.defaults.animation = false;
Chart.defaults.maintainAspectRatio = false;
const passes = d.passes.map((p) => 'pass ' + p.pass);
new Chart(document.getElementById('pages'), { type: 'bar', data: { labels: passes, datasets: [
  { label: 'pages sent', data: d.passes.map((p) => p.normal) },
  { label: 'zero pages', data: d.passes.map((p) => p.zero) },
  { label: 'dirty pages found', data: d.passes.map((p) => p.dirty) }] } });
new Chart(document.getElementById('rates'), { type: 'line', data: { labels: passes, datasets: [
  { label: 'pass transfer rate (MiB/s: bytes sent / pass time)', data: d.passes.map((p) => p.sentMiBps), yAxisID: 'y' },
  { label: ${scriptJson(`${RULE_ESTIMATE} (MiB/s)`)}, data: d.passes.map((p) => p.ruleMiBps), yAxisID: 'y' },
  { label: 'expected downtime (ms)', data: d.passes.map((p) => p.expectedMs), yAxisID: 'y1' },
  ...(d.limitMs === null ? [] : [{ label: 'downtime limit (ms)', data: d.passes.map(() => d.limitMs), yAxisID: 'y1', pointRadius: 0, borderDash: [6, 4] }])] },
  options: { scales: { y: { position: 'left', beginAtZero: true, title: { display: true, text: 'MiB/s' } },
    y1: { position: 'right', beginAtZero: true, title: { display: true, text: 'ms' } } } } });
new Chart(document.getElementById('remaining'), { type: 'line', data: { datasets: [
  { label: 'remaining (MiB)', data: d.timeline.map((t) => ({ x: t.s, y: t.remainingMiB })), yAxisID: 'y' },
  { label: 'guest page writes', data: d.timeline.map((t) => ({ x: t.s, y: t.guestPages })), yAxisID: 'y1' }] },
  options: { parsing: false, scales: { x: { type: 'linear' }, y: { position: 'left' }, y1: { position: 'right' } } } });
new Chart(document.getElementById('latency'), { type: 'scatter', data: { datasets: [
  { label: 'control round trip (ms), query-status every 5 ms', data: d.probe, pointRadius: 1 }] },
  options: { parsing: false, scales: { x: { type: 'linear' } } } });
${DRAWN_CHECK}
</script></body></html>
`;
}
