/**
 * WebAssembly guests' benchmark (issue 13): what the instrumentation costs.
 *
 *   npm run bench:wasm                    every section
 *   node dist/bench/wasm.js [instrument] [runtime] [pause] [stretches] [migration] [--runs N] [--cache DIR]
 *
 * Sections:
 *   instrument  loadProgram's time per program and variant: cold (an empty
 *               cache directory of this run) and warm (the same again).
 *   runtime     each program's run time under every variant, alternated
 *               within each round (every variant sees the same noise):
 *               none (node:wasi, the original module, in a worker), marks
 *               only, polls only, Asyncify only, all (what ferry runs); the
 *               instrumented variants run as ferry Guests (ferry's runner
 *               and system interface), from cont() to exit.
 *   pause       wall time from a pause request to its acknowledgement
 *               (Guest.pause resolving), at random moments, for programs
 *               and beside a sweep workload in the same run; then the
 *               stretches between polls themselves: each program built with
 *               the probe (RewriteSteps.probe: every poll first calls the
 *               runner, which times the stretch since the previous one on
 *               the vCPU's thread, src/guest/poll-probe.ts) and run to its
 *               exit (section `stretches`). Its figures are per stretch (p50/p99/max), and by time
 *               (what a pause asked at a random moment waits); CPU/wall says
 *               whether the thread's wall time stood for its CPU time.
 *   stretches   see pause (its second half, its own section)
 *   migration   a program growing past 256 MiB (moments growslow 500 15, 7 s into its run), migrated
 *               between two ferry processes (ferry incoming --wasm, ferry
 *               run --wasm --migrate-to).
 *
 * Prints a Markdown table per section and writes everything as JSON to
 * bench/results/wasm-<date>.json. Figures are medians with (min-max).
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fmt, summarize, type Sample } from '../src/bench/stats.js';
import { DEFAULT_PARAMETERS } from '../src/migration/parameters.js';
import { loadProgram, type InstrumentedModule } from '../src/wasm/instrument.js';
import type { RewriteSteps } from '../src/wasm/rewrite.js';
import { GUESTS_DIR, migrateBetweenProcesses, pauseLatency, probeBaseline, probedRun, runFerry, runNodeWasi, type MigrationFigures } from './wasm-runs.js';

const PROGRAMS: readonly { name: string; args: string[] }[] = [
  { name: 'sqlite-load', args: ['200000', '7'] },
  { name: 'zstd-roundtrip', args: ['16', '3', '1'] },
  { name: 'store-dense', args: ['64', '60'] },
  { name: 'call-dense', args: ['100000000'] },
];
const VARIANTS: Readonly<Record<string, RewriteSteps | null>> = {
  none: null,
  'marks only': { marks: true, polls: false, asyncify: false },
  'polls only': { marks: false, polls: true, asyncify: false },
  'Asyncify only': { marks: false, polls: false, asyncify: true },
  all: {},
};
const MAX_MEMORY = 1024 * 1024 * 1024;
const PAUSES = 200;

const argv = process.argv.slice(2);
const flag = (name: string): string | undefined => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : undefined);
const RUNS = Number(flag('--runs') ?? 3);
const named = argv.filter((a, i) => !a.startsWith('--') && !argv[i - 1]?.startsWith('--'));
const sections = new Set(named.length > 0 ? named : ['instrument', 'runtime', 'pause', 'stretches', 'migration']);
const results: Record<string, unknown> = { date: new Date().toISOString(), node: process.version, runs: RUNS };
const scratch = mkdtempSync(join(tmpdir(), 'ferry-bench-wasm-'));
/** --cache DIR: keep the instrumented modules there (a later run's "cold" is then warm); default this run's own, removed after it. */
const cache = { dir: flag('--cache') ?? join(scratch, 'cache') };
const say = (s: string) => process.stdout.write(`${s}\n`);
const sampleMs = (values: number[]) => fmt(summarize(values), 0);

const modules = new Map<string, InstrumentedModule>();
const key = (name: string, variant: string) => `${name}/${variant}`;

/** Instrument every program in every variant: cold into this run's empty cache, then warm. */
async function instrumentAll(): Promise<void> {
  const rows: Record<string, { coldMs: number; warmMs: number }> = {};
  const note = flag('--cache') !== undefined ? ' (--cache given: "cold" is cold only for what that directory did not hold)' : '';
  say(`\n### Instrumentation time (loadProgram: rewrite in a worker, cache, compile)${note}\n\n| program | variant | cold | warm |\n| --- | --- | ---: | ---: |`);
  for (const p of PROGRAMS) {
    const bytes = readFileSync(join(GUESTS_DIR, `${p.name}.wasm`));
    for (const [variant, steps] of Object.entries(VARIANTS)) {
      if (steps === null) continue;
      const t0 = performance.now();
      modules.set(key(p.name, variant), await loadProgram(bytes, { maxMemoryBytes: MAX_MEMORY, steps }, cache));
      const coldMs = performance.now() - t0;
      const t1 = performance.now();
      modules.set(key(p.name, variant), await loadProgram(bytes, { maxMemoryBytes: MAX_MEMORY, steps }, cache));
      const warmMs = performance.now() - t1;
      rows[key(p.name, variant)] = { coldMs, warmMs };
      say(`| ${p.name} (${(bytes.length / 1024).toFixed(0)} KiB) | ${variant} | ${(coldMs / 1000).toFixed(1)} s | ${warmMs.toFixed(0)} ms |`);
    }
  }
  results.instrument = rows;
}

/** One round: every variant of `p` once, in the order given. */
async function round(p: { name: string; args: string[] }, order: string[], times: Record<string, number[]>): Promise<void> {
  for (const variant of order) {
    const ms = variant === 'none'
      ? await runNodeWasi(p.name, p.args, scratch)
      : await runFerry(modules.get(key(p.name, variant))!, p.name, p.args, scratch);
    times[variant] = [...(times[variant] ?? []), ms];
  }
}

/** Run time of each program under each variant, RUNS rounds, the order rotated each round. */
async function runtime(): Promise<void> {
  const out: Record<string, Record<string, Sample & { ratio: Sample; values: number[] }>> = {};
  const names = Object.keys(VARIANTS);
  say(`\n### Run time, ${RUNS} rounds (median (min-max); ratio: each round's time over the same round's node:wasi)\n`);
  say(`| program | ${names.join(' | ')} |\n| --- |${names.map(() => ' ---: |').join('')}`);
  for (const p of PROGRAMS) {
    const times: Record<string, number[]> = {};
    for (let r = 0; r < RUNS; r++) await round(p, names.map((_, i) => names[(i + r) % names.length]), times);
    const row: Record<string, Sample & { ratio: Sample; values: number[] }> = {};
    for (const v of names) row[v] = { ...summarize(times[v]), ratio: summarize(times[v].map((t, i) => t / times.none[i])), values: times[v] };
    out[p.name] = row;
    const cell = (v: string) => (v === 'none' ? `${sampleMs(times.none)} ms` : `${fmt(row[v].ratio, 2)}x`);
    say(`| ${p.name} ${p.args.join(' ')} | ${names.map(cell).join(' | ')} |`);
  }
  results.runtime = out;
}

function percentile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
}

/** Pause latencies: programs (the full instrumentation) beside a sweep workload, in the same run. */
async function pause(): Promise<void> {
  const cases: { label: string; name: string; args: string[]; module: InstrumentedModule | null }[] = [
    { label: 'moments', name: 'moments', args: ['loop', '1000000'], module: await loadProgram(readFileSync(join(GUESTS_DIR, 'moments.wasm')), { maxMemoryBytes: MAX_MEMORY }, cache) },
    { label: 'sqlite-load', name: 'sqlite-load', args: ['3000000', '7'], module: modules.get(key('sqlite-load', 'all')) ?? null },
    { label: 'sweep workload (baseline)', name: 'sweep', args: [], module: null },
  ];
  const out: Record<string, { p50: number; p99: number; max: number; count: number }> = {};
  say(`\n### Pause latency: wall time from Guest.pause() to its acknowledgement, ${PAUSES} pauses at random moments (ms)\n\n| guest | p50 | p99 | max |\n| --- | ---: | ---: | ---: |`);
  for (const c of cases) {
    if (c.module === null && c.name !== 'sweep') continue;
    const sorted = (await pauseLatency(c.module, c.name, c.args, scratch, PAUSES)).sort((a, b) => a - b);
    out[c.label] = { p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99), max: sorted[sorted.length - 1], count: sorted.length };
    say(`| ${c.label} ${c.args.join(' ')} | ${out[c.label].p50.toFixed(3)} | ${out[c.label].p99.toFixed(3)} | ${out[c.label].max.toFixed(3)} |`);
  }
  results.pause = out;
}

/** The programs probed (smaller runs: a probe call at every poll slows tight loops several times). */
const PROBED: readonly { name: string; args: string[] }[] = [
  { name: 'sqlite-load', args: ['50000', '7'] },
  { name: 'zstd-roundtrip', args: ['4', '3', '1'] },
  { name: 'store-dense', args: ['64', '10'] },
  { name: 'call-dense', args: ['20000000'] },
  { name: 'moments', args: ['loop', '1000'] },
];

/** The baseline's probe calls: about as many as the programs' in about as long. */
const BASELINE_HITS = 100_000_000;

/** Time between polls, from probed modules run to their exit, and the same-run baseline (no program: probe-baseline-worker.ts). */
async function pollStretches(): Promise<void> {
  const out: Record<string, unknown> = {};
  const us = (ns: number) => (ns / 1000).toFixed(1);
  say('\n### Stretches between polls: vCPU CPU time from one poll to the next (an upper bound each), probed modules run to exit (us)\n');
  say('| program | stretches | p50 | p99 | max | max\'s wall | p99 by time | time in stretches > 1 ms | thread CPU/wall | longest (functions) |');
  say('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |');
  for (const p of [...PROBED, { name: 'baseline', args: [String(BASELINE_HITS)] }]) {
    let f: Awaited<ReturnType<typeof probedRun>>;
    if (p.name === 'baseline') f = await probeBaseline(BASELINE_HITS);
    else {
      const bytes = readFileSync(join(GUESTS_DIR, `${p.name}.wasm`));
      f = await probedRun(await loadProgram(bytes, { maxMemoryBytes: MAX_MEMORY, steps: { probe: true } }, cache), p.name, p.args, scratch);
    }
    out[p.name] = { args: p.args, ...f };
    say(`| ${p.name} ${p.args.join(' ')} | ${f.count} | ${us(f.p50Ns)} | ${us(f.p99Ns)} | ${us(f.maxNs)} | ${us(f.longest[0]?.wallNs ?? Number.NaN)} | ${us(f.timeP99Ns)} | ${(100 * f.overOneMs).toFixed(2)} % | ${f.cpuPerWall.toFixed(3)} | ${f.sites.slice(0, 3).join('; ')} |`);
  }
  results.stretches = out;
}

/** A program growing past 256 MiB, migrated between two processes, RUNS times. */
async function migration(): Promise<void> {
  const args = ['growslow', '500', '15'];
  const afterS = 7; // about 300 MiB grown by then (the program's memory at the end: about 520 MiB)
  const limit = DEFAULT_PARAMETERS.downtimeLimitMs;
  await loadProgram(readFileSync(join(GUESTS_DIR, 'moments.wasm'))); // into the default cache both processes read
  const runs: MigrationFigures[] = [];
  say(`\n### Migration of moments ${args.join(' ')} between two processes, ${afterS} s into its run (downtime limit ${limit} ms)\n\n| run | status | total | downtime | sent | passes | destination exit |\n| --- | --- | ---: | ---: | ---: | ---: | ---: |`);
  for (let r = 0; r < RUNS; r++) {
    const f = await migrateBetweenProcesses('moments', args, afterS);
    runs.push(f);
    say(`| ${r + 1} | ${f.status} | ${f.totalTimeMs.toFixed(0)} ms | ${f.downtimeMs.toFixed(1)} ms | ${f.sentMiB.toFixed(0)} MiB | ${f.passes} | ${f.exitCode} |`);
  }
  results.migration = { args, afterS, downtimeLimitMs: limit, runs };
}

try {
  if (sections.has('instrument') || sections.has('runtime') || sections.has('pause')) await instrumentAll();
  if (sections.has('runtime')) await runtime();
  if (sections.has('pause')) await pause();
  if (sections.has('stretches')) await pollStretches();
  if (sections.has('migration')) await migration();
} finally {
  rmSync(scratch, { recursive: true, force: true });
  const dir = fileURLToPath(new URL('../../bench/results/', import.meta.url));
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `wasm-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
  say(`\nJSON: ${file}`);
}
