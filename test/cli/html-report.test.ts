import assert from 'node:assert/strict';
import { test } from 'node:test';
import { renderMapReport } from '../../src/bench/map-report.js';
import { renderReport } from '../../src/client/html-report.js';
import type { RamInfo } from '../../src/control/query-migrate.js';
import type { PassRecord } from '../../src/migration/stats.js';
import { renderInChromium } from './browser.js';
import { fileLimit } from '../waits.js';

fileLimit(import.meta.url, 180_000);

function pass(n: number): PassRecord {
  return {
    pass: n, normalPages: 1000 * n, zeroPages: 10, bytes: 4e6 * n, durationMs: 100, dirtyFound: 900 * n, remainingPages: 500 / n, inflightBytes: 0,
    dirtyRatePagesPerSec: 5000, bandwidthBytesPerSec: 3e8, expectedDowntimeMs: 40 / n, guestPagesWritten: 1e4 * n, decision: 'iterate', convergence: null,
  };
}

/** query-migrate's ram figures: zero but for those given. */
function ram(o: Partial<RamInfo>): RamInfo {
  return {
    transferred: 0, remaining: 0, total: 0, duplicate: 0, skipped: 0, normal: 0, 'normal-bytes': 0, 'dirty-pages-rate': 0, mbps: 0,
    'dirty-sync-count': 0, 'page-size': 4096, 'pages-per-second': 0, 'precopy-bytes': 0, ...o,
  };
}

test('the HTML report is self-contained and its four charts are drawn in a real browser (headless Chromium)', async () => {
  const html = renderReport({
    title: 'test <report>',
    info: { status: 'completed', 'total-time': 300, downtime: 12, 'x-ferry-switchover': {
      decisionToPausedMs: 4, pauseMs: 1, pagesAtDecision: 90, finalPages: 100, finalBytes: 409_600, finalPassMs: 2, verifyMs: 0,
      loadedWaitMs: 3, commitMs: 1, resumeMs: 2, expectedMs: 10.5, downtimeMs: 12 }, ram: ram({ transferred: 8e6, total: 8e6, duplicate: 10, normal: 3000, 'normal-bytes': 12e6, mbps: 800, 'dirty-pages-rate': 5000, 'dirty-sync-count': 3, 'pages-per-second': 30000 }) },
    passes: [pass(1), pass(2), pass(3)],
    timeline: [0, 100, 200, 300].map((t) => ({ atMs: 1000 + t, info: { status: 'active', ram: ram({ remaining: 8e6 - t * 1e4, total: 8e6 }), 'x-ferry-progress': { pass: 1, 'pass-fraction': t / 300, 'bandwidth-bytes-per-sec': 0, 'inflight-bytes': 0, 'guest-pages-written': t * 10, 'guest-run-ms': t } } })),
    probe: Array.from({ length: 200 }, (_, i) => ({ atMs: i * 6.5, rttMs: 0.5 + (i % 7) / 10 })),
    migrateAtMs: 1000,
    downtimeLimitMs: 300,
    latency: { baseline: { samples: 150, p50Ms: 0.6, p99Ms: 1, maxMs: 1.2 }, during: { samples: 50, p50Ms: 0.7, p99Ms: 1.1, maxMs: 1.3 } },
  });
  assert.ok(!/<script[^>]+src=|<link\b|<img\b|<iframe\b/i.test(html), 'no external resources: every script is inline');
  assert.ok(html.includes('test &lt;report&gt;'), 'text is escaped');
  assert.ok(html.includes('<th>downtime limit</th><td>300 ms</td>') && html.includes('<th>  final pass</th>'), 'the limit and the breakdown');
  const stdout = await renderInChromium(html, 'body[data-charts-drawn]');
  assert.match(stdout, /<body data-charts-drawn="4"/, 'all four charts drew pixels');
  assert.equal((stdout.match(/data-drawn="true"/g) ?? []).length, 4);
});

test('the benchmark\'s convergence map is self-contained and its chart is drawn (headless Chromium)', async () => {
  const html = renderMapReport('map <test>', [
    { name: 'slow guest', dirtyMBps: 50, bandwidthMBps: 300, converged: true, passes: 2, downtimeMs: 20 },
    { name: 'fast guest', dirtyMBps: 900, bandwidthMBps: 300, converged: false, passes: 12, downtimeMs: 0 },
  ]);
  assert.ok(!/<script[^>]+src=|<link\b|<img\b|<iframe\b/i.test(html), 'no external resources');
  assert.ok(html.includes('map &lt;test&gt;') && html.includes('<td>not converged</td>'));
  const stdout = await renderInChromium(html, 'body[data-charts-drawn]');
  assert.match(stdout, /<body data-charts-drawn="1"/, 'the map drew pixels');
});
