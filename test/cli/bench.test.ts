/**
 * The benchmark suite runs (`ferry bench --smoke`: the first scenario of
 * each group of `--quick`, whose whole list test/bench/suite-scenarios.test.ts
 * checks) and its outputs parse: every group ran, every figure is a number,
 * every target got a verdict. Timings are not asserted (speed is for the
 * suite's own report, not for tests). All of `--quick` took 108 of the
 * suite's 975 s on CI, most of it starting processes for each scenario;
 * one scenario per group runs the same code.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { fileLimit } from '../waits.js';

fileLimit(import.meta.url, 300_000);

const ferry = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

interface Results {
  machine: string;
  quick: boolean;
  smoke: boolean;
  limits: Record<string, { median: number; min: number; max: number } | { streams: number; gbps: { median: number } }[]>;
  scenarios: { name: string; group: string; runs: { status: string; totalMs: number; downtimeMs: number; bytes: number; latency: { during: { samples: number } } }[] }[];
  verdicts: { target: string; measured: string; met: boolean }[];
}

test('ferry bench --smoke runs every scenario group of --quick once and writes figures that parse', { timeout: 180_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-bench-test-'));
  try {
    const out = join(dir, 'results.json');
    const r = spawnSync(process.execPath, [ferry, 'bench', '--smoke', '--out', out, '--report', join(dir, 'map.html')], { encoding: 'utf8', timeout: 170_000 });
    assert.equal(r.status, 0, r.stderr);
    const results = JSON.parse(readFileSync(out, 'utf8')) as Results;
    assert.equal(results.quick, true);
    assert.equal(results.smoke, true);
    for (const [name, s] of Object.entries(results.limits)) {
      const samples = Array.isArray(s) ? s.map((x) => ({ what: `${name} on ${x.streams}`, median: x.gbps.median })) : [{ what: name, median: s.median }];
      for (const x of samples) assert.ok(Number.isFinite(x.median) && x.median > 0, `limit ${x.what}`);
    }
    assert.deepEqual((results.limits.loopbackResidentGBps as { streams: number }[]).map((l) => l.streams), [1, 2, 4], 'into resident memory on 1, 2 and 4 connections');
    assert.match(r.stdout, /\| loopback TCP into resident memory, 4 connections \| \d/);
    const groups = new Set(results.scenarios.map((s) => s.group));
    for (const g of ['idle', 'zeroed', 'random', 'sweep', 'converge', 'postcopy', 'thread', 'map']) assert.ok(groups.has(g), `scenario group ${g} ran`);
    assert.equal(results.scenarios.length, groups.size, 'one scenario of each group');
    assert.ok(readFileSync(join(dir, 'map.html'), 'utf8').includes('<canvas'), 'the convergence map');
    for (const s of results.scenarios) {
      assert.ok(s.runs.length >= 1, s.name);
      for (const run of s.runs) {
        assert.ok(['completed', 'cancelled'].includes(run.status), `${s.name}: ${run.status}`);
        assert.ok(Number.isFinite(run.totalMs) && run.totalMs > 0 && run.bytes >= 0, `${s.name}: figures`);
        if (run.status === 'completed') assert.ok(run.downtimeMs > 0, `${s.name}: a downtime`);
        assert.ok(run.latency.during.samples >= 1, `${s.name}: the probe sampled during the migration`);
      }
    }
    assert.ok(results.verdicts.length >= 6 && results.verdicts.every((v) => typeof v.met === 'boolean' && v.measured !== ''));
    // The Markdown on stdout: the limits, one row per scenario, one per target.
    assert.match(r.stdout, /### Limits measured in this run/);
    for (const s of results.scenarios) assert.ok(r.stdout.includes(`| ${s.name} |`), `row for ${s.name}`);
    assert.equal((r.stdout.match(/\| (met|NOT met)[^|\n]*\|$/gm) ?? []).length, results.verdicts.length);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
