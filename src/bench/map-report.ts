/**
 * The convergence map as a self-contained HTML page (Chart.js inlined):
 * each point is one migration of a sweeping guest, placed by the guest's
 * dirty rate and the bandwidth the source measured, green if it converged
 * (with its downtime), red if it was cancelled still iterating. The line
 * bandwidth = dirty rate is where pre-copy stops converging.
 */
import { DRAWN_CHECK, chartJs, escapeHtml, scriptJson } from '../client/html-report.js';

export interface MapPoint {
  readonly name: string;
  readonly dirtyMBps: number;
  readonly bandwidthMBps: number;
  readonly converged: boolean;
  readonly passes: number;
  readonly downtimeMs: number;
}

export function renderMapReport(title: string, points: readonly MapPoint[]): string {
  const rows = points.map((p) => `<tr><td>${escapeHtml(p.name)}</td><td>${p.dirtyMBps.toFixed(0)}</td><td>${p.bandwidthMBps.toFixed(0)}</td>` +
    `<td>${p.converged ? 'converged' : 'not converged'}</td><td>${p.passes}</td><td>${p.converged ? p.downtimeMs.toFixed(0) : '-'}</td></tr>`).join('\n');
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<style>body{font:14px sans-serif;margin:2em}#wrap{height:420px;max-width:900px}td,th{padding:2px 8px;text-align:right}td:first-child{text-align:left}</style>
<script>${chartJs()}</script></head>
<body data-charts-drawn="0">
<h1>${escapeHtml(title)}</h1>
<div id="wrap"><canvas id="map"></canvas></div>
<table><tr><th>run</th><th>dirty MB/s</th><th>bandwidth MB/s</th><th>outcome</th><th>passes</th><th>downtime ms</th></tr>
${rows}
</table>
<script id="data" type="application/json">${scriptJson(points)}</script>
<script>
const d = JSON.parse(document.getElementById('data').textContent);
Chart.defaults.animation = false;
Chart.defaults.maintainAspectRatio = false;
const edge = Math.max(1, ...d.map((p) => Math.max(p.dirtyMBps, p.bandwidthMBps))) * 1.1;
const pt = (p) => ({ x: p.dirtyMBps, y: p.bandwidthMBps, r: 4 + Math.min(12, p.passes), passes: p.passes, downtime: p.downtimeMs });
new Chart(document.getElementById('map'), { type: 'bubble', data: { datasets: [
  { label: 'converged', data: d.filter((p) => p.converged).map(pt), backgroundColor: 'rgba(40,160,60,0.6)' },
  { label: 'not converged', data: d.filter((p) => !p.converged).map(pt), backgroundColor: 'rgba(200,40,40,0.6)' },
  { type: 'line', label: 'bandwidth = dirty rate', data: [{ x: 0, y: 0 }, { x: edge, y: edge }], borderColor: '#888', pointRadius: 0 }] },
  options: { parsing: true, scales: { x: { type: 'linear', min: 0, max: edge, title: { display: true, text: 'guest dirty rate (MB/s)' } },
    y: { min: 0, max: edge, title: { display: true, text: 'measured bandwidth (MB/s)' } } } } });
${DRAWN_CHECK}
</script></body></html>`;
}
