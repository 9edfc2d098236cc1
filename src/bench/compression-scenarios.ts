/**
 * Issue 15's compression rows (scenario group `compression`, full suite
 * only: not in --quick), both with `multifd-compression auto` on 2
 * channels, and the issue's targets for them:
 *
 * - text-like data over the 1 Gbit/s veth (as root, with the netns pair):
 *   the effective payload rate (RAM / migration time after setup) at least
 *   0.8 x min(link rate x compression ratio, cores x compression speed),
 *   the ratio and the speed being this run's own (query-migrate's
 *   compression-rate, and raw bytes compressed per second in the codec);
 * - random data on unlimited loopback: at least 99 % of the packets raw
 *   after the first second (compression's figures at 1 s and at the end),
 *   and the probes at most 2 % of the source's CPU.
 *
 * The text row's destination is preallocated (`ferry incoming --prealloc`),
 * as the issue asks.
 */
import { availableParallelism } from 'node:os';
import type { RunResult, ScenarioSpec } from './scenario.js';
import type { Verdict } from './link-remedies.js';
import { LINK_BYTES_PER_SEC } from './link-remedies.js';

export const COMPRESSION_GROUP = 'compression';
const AUTO = { 'multifd-channels': 2, 'multifd-compression': 'auto' } as const;

export type AddCompressionScenario = (name: string, guest: string[], o: Partial<ScenarioSpec> & { note?: string; readyPages: number }) => void;

/** The rows: text over the link (when there is one), random on loopback. */
export function compressionScenarios(ramBytes: number, ramLabel: string, link: ScenarioSpec['netns'] | null, add: AddCompressionScenario): void {
  const fill = (data: string) => ['--vcpus', '2', '--workload', 'fill', '--fill-data', data];
  if (link != null) {
    add(`text-like ${ramLabel}, static, over the 1 Gbit/s veth, destination preallocated, multifd-compression auto, 2 channels`, fill('text'),
      { readyPages: ramBytes / 4096, params: AUTO, capabilities: ['multifd'], netns: link, destination: ['--prealloc'] });
  }
  add(`random ${ramLabel}, static, unlimited loopback, multifd-compression auto, 2 channels`, fill('random'),
    { readyPages: ramBytes / 4096, params: AUTO, capabilities: ['multifd'] });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;

function textVerdict(name: string, ramBytes: number, runs: readonly RunResult[]): Verdict {
  const per = runs.map((r) => {
    const c = r.compression?.end;
    const payload = ramBytes / Math.max((r.totalMs - r.setupMs) / 1000, 1e-3);
    const ratio = c?.['compression-rate'] ?? 0;
    const speed = c === undefined || c['x-ferry-busy-ms'] === 0 ? 0 : (c.pages * 4096) / (c['x-ferry-busy-ms'] / 1000);
    const bound = 0.8 * Math.min(LINK_BYTES_PER_SEC * ratio, availableParallelism() * speed);
    return { payload, ratio, speed, bound, ok: r.status === 'completed' && payload >= bound && bound > 0 };
  });
  const mb = (x: number) => `${(x / 1e6).toFixed(0)} MB/s`;
  return {
    target: `${name}: effective payload rate at least 0.8 x min(link x ratio, cores x compression speed)`,
    measured: `payload ${mb(median(per.map((p) => p.payload)))}, ratio ${median(per.map((p) => p.ratio)).toFixed(2)}, ` +
      `compression ${mb(median(per.map((p) => p.speed)))} per thread, bound ${mb(median(per.map((p) => p.bound)))}`,
    met: per.every((p) => p.ok), why: '',
  };
}

function randomVerdicts(name: string, runs: readonly RunResult[]): Verdict[] {
  const raw = runs.map((r) => {
    const a = r.compression?.atOneSecond;
    const b = r.compression?.end;
    if (a == null || b == null || b['x-ferry-packets'] === a['x-ferry-packets']) return Number.NaN;
    return (100 * (b.busy - a.busy)) / (b['x-ferry-packets'] - a['x-ferry-packets']);
  });
  const probe = runs.map((r) => (100 * (r.compression?.end['x-ferry-probe-ms'] ?? Number.NaN)) / Math.max(r.sourceCpuMs, 1));
  return [
    { target: `${name}: at least 99 % of packets raw after the first second`, measured: `${median(raw).toFixed(2)} % raw`, met: raw.every((x) => x >= 99), why: '' },
    { target: `${name}: probing at most 2 % of the source's CPU`, measured: `${median(probe).toFixed(3)} % of the source's CPU in probes`, met: probe.every((x) => x <= 2), why: '' },
  ];
}

/** The targets for the group's rows. */
export function compressionVerdicts(outcomes: readonly { readonly scenario: { readonly group: string; readonly spec: ScenarioSpec; readonly ramBytes: number }; readonly runs: readonly RunResult[] }[]): Verdict[] {
  const v: Verdict[] = [];
  for (const o of outcomes.filter((x) => x.scenario.group === COMPRESSION_GROUP)) {
    const name = o.scenario.spec.name;
    if (name.startsWith('text-like')) v.push(textVerdict(name, o.scenario.ramBytes, o.runs));
    else v.push(...randomVerdicts(name, o.runs));
  }
  return v;
}
