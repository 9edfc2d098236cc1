/**
 * The converge-link group's rows and its verdicts (bench/link-remedies.ts),
 * on made-up runs: each target is met by figures within it and missed by
 * figures past it. No benchmark runs here.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LINK_GROUP, type LinkOutcome, type LinkRemedyOptions, linkRemedyScenarios, linkRemedyVerdicts } from '../../src/bench/link-remedies.js';
import type { RunResult } from '../../src/bench/scenario.js';
import { fileLimit } from '../waits.js';

fileLimit(import.meta.url, 10_000);

const MiB = 1024 * 1024;
const latency = { samples: 10, p50Ms: 0.1, p99Ms: 1, maxMs: 2 };

function run(o: Partial<RunResult>): RunResult {
  return {
    status: 'completed', error: null, totalMs: 10_000, setupMs: 5, downtimeMs: 20, bytes: 1e9, throughputGBps: 0.1, passes: 3, passRecords: [],
    guestPagesPerSecBefore: 400_000, guestPagesPerSecDuring: 100_000, latency: { baseline: latency, during: latency }, probePriority: 'rt',
    sourceCpuMs: 0, destinationCpuMs: 0, bandwidthBytesPerSec: 118e6, postcopy: null, remedy: null, remainingAtSwitchoverBytes: 0, switchover: null,
    ...o,
  };
}

function rows(): { name: string; o: LinkRemedyOptions }[] {
  const out: { name: string; o: LinkRemedyOptions }[] = [];
  linkRemedyScenarios('512M', (name, o) => out.push({ name, o }));
  return out;
}

/** A made-up outcome of the row `name`, with that row's parameters. */
const outcome = (name: string, runs: RunResult[]): LinkOutcome => ({
  scenario: { group: LINK_GROUP, ramBytes: 512 * MiB, spec: { name, guest: [], readyPages: 0, params: rows().find((r) => r.name === name)?.o.params ?? {}, baselineMs: 1000 } },
  runs,
});

const named = (prefix: string) => {
  const row = rows().find((r) => r.name.startsWith(prefix));
  assert.ok(row, prefix);
  return row.name;
};

test("the group has the issue five rows at 30 ms, one remedy each, the tuned row stating its tuning, and auto-converge at QEMU's 300 ms", () => {
  const r = rows();
  assert.equal(r.length, 6);
  assert.deepEqual(r.map((x) => x.o.capabilities ?? []), [['auto-converge'], ['auto-converge'], ['auto-converge'], ['dirty-limit'], ['postcopy-ram'], []]);
  assert.deepEqual(r[1].o.params, { 'downtime-limit': 300 });
  assert.match(r[1].name, /^auto-converge \(QEMU's defaults\): .*downtime-limit 300 ms \(QEMU's\)$/);
  assert.equal(r[2].o.params?.['cpu-throttle-initial'], 99);
  assert.match(r[2].name, /cpu-throttle-initial 99 %/);
  assert.equal(r[4].o.params?.['x-ferry-postcopy-after'], 1000);
  for (const x of r.filter((_, i) => i !== 1)) assert.equal(x.o.params?.['downtime-limit'], 30, x.name);
  // The default policy cancels by itself at 150 s: the bench's own cancel must come later.
  assert.ok(r[5].o.cancelAfterMs > 150_000);
});

test("the 300 ms row is held to QEMU's time and to its own limit, not to 30 ms", () => {
  const at300 = rows()[1].name;
  const [within, over] = linkRemedyVerdicts([outcome(at300, [run({ totalMs: 70_000, downtimeMs: 250 })]), outcome(at300, [run({ totalMs: 70_000, downtimeMs: 301 })])]);
  assert.equal(within.met, true, within.measured);
  assert.match(within.target, /at most 79 s \(QEMU's time\), downtime within 300 ms/);
  assert.equal(over.met, false);
});

test("auto-converge: QEMU's defaults are held to 79 s, the tuning to 20 s, both to the downtime limit", () => {
  const defaults = named("auto-converge (QEMU's defaults)");
  const tuned = named('auto-converge (cpu-throttle-initial');
  const [ok, late] = linkRemedyVerdicts([outcome(defaults, [run({ totalMs: 70_000 })]), outcome(defaults, [run({ totalMs: 80_000 })])]);
  assert.equal(ok.met, true);
  assert.equal(late.met, false);
  assert.match(ok.measured, /progress 25 \(25-25\) % of the sweeps\/s before/);
  const [fast, slow, over, cancelled] = linkRemedyVerdicts([
    outcome(tuned, [run({ totalMs: 19_000 })]), outcome(tuned, [run({ totalMs: 21_000 })]),
    outcome(tuned, [run({ totalMs: 19_000, downtimeMs: 31 })]), outcome(tuned, [run({ status: 'cancelled', totalMs: 19_000 })]),
  ]);
  assert.deepEqual([fast.met, slow.met, over.met, cancelled.met], [true, false, false, false]);
});

test('post-copy: total, blocked time (all vCPUs and each) and request latency against the link arithmetic', () => {
  const name = named('post-copy');
  const pc = (o: Partial<NonNullable<RunResult['postcopy']>> = {}) => ({ blocktimeMs: 2000, vcpuBlocktimeMs: [2000], latencyP50Ms: 1, latencyP99Ms: 20, requests: 100, bytes: 500e6, ...o });
  // 1.2 x 512 MiB / 125 MB/s + 1 s = 6.15 s; 1.1 x 500 MB / 125 MB/s = 4400 ms.
  const good = linkRemedyVerdicts([outcome(name, [run({ totalMs: 6000, postcopy: pc() })])]);
  assert.equal(good.length, 3);
  assert.deepEqual(good.map((v) => v.met), [true, true, true]);
  assert.match(good[0].target, /6\.15 s/);
  assert.match(good[1].measured, /limit 4400 \(4400-4400\) ms/);
  const bad = linkRemedyVerdicts([outcome(name, [run({ totalMs: 6200, postcopy: pc({ blocktimeMs: 4000, vcpuBlocktimeMs: [4500], latencyP99Ms: 51 }) })])]);
  assert.deepEqual(bad.map((v) => v.met), [false, false, false]);
  const noFigures = linkRemedyVerdicts([outcome(name, [run({ totalMs: 6000, postcopy: null })])]);
  assert.deepEqual(noFigures.map((v) => v.met), [false, false, false]);
});

test('the default policy ends: completed, or cancelled with its reason; a bare cancel is not an ending', () => {
  const name = named('default policy');
  const [done, reasoned, bare] = linkRemedyVerdicts([
    outcome(name, [run({})]),
    outcome(name, [run({ status: 'cancelled', error: 'the completion budget ran out; throttle tried' })]),
    outcome(name, [run({ status: 'cancelled', error: null })]),
  ]);
  assert.deepEqual([done.met, reasoned.met, bare.met], [true, true, false]);
  assert.match(reasoned.measured, /cancelled: the completion budget ran out/);
});

test('rows of other groups get no verdict here', () => {
  assert.deepEqual(linkRemedyVerdicts([{ ...outcome(named('dirty-limit'), [run({})]), scenario: { ...outcome('x', []).scenario, group: 'converge' } }]), []);
});
