#!/usr/bin/env node
/**
 * Prints the runs of one or more results files (run.mjs --out), grouped by
 * label, as median (min-max) per figure: the material for BENCHMARKS.md.
 *   node bench/qemu/summarize.mjs results/*.jsonl
 */
import { readFileSync } from 'node:fs';

const runs = process.argv.slice(2).flatMap((f) => readFileSync(f, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)));
const groups = new Map();
for (const r of runs) groups.set(r.label, [...(groups.get(r.label) ?? []), r]);

function med(xs, digits = 0) {
  const v = xs.filter((x) => typeof x === 'number').sort((a, b) => a - b);
  if (v.length === 0) return '-';
  const m = v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
  const f = (x) => x.toFixed(digits);
  return v.length === 1 ? f(m) : `${f(m)} (${f(v[0])}-${f(v.at(-1))})`;
}

for (const [label, rs] of groups) {
  const pick = (fn, d) => med(rs.map(fn), d);
  console.log(`## ${label}: ${rs.length} run(s), status ${rs.map((r) => r.status).join(',')}`);
  console.log(`  total s ${pick((r) => (r.status === 'completed' ? r.totalMs / 1000 : null), 2)}; downtime ms ${pick((r) => (r.status === 'completed' ? r.downtimeMs : null))}; setup ms ${pick((r) => r.setupMs)}`);
  console.log(`  MB sent ${pick((r) => r.mbSent)}; GB/s ${pick((r) => (r.status === 'completed' ? r.mbSent / r.totalMs : null), 3)}; passes ${rs.map((r) => r.passes).join(',')}; max throttle ${rs.map((r) => r.maxThrottle).join(',')}`);
  console.log(`  CPU ms src ${pick((r) => r.cpuMs.src)} / dst ${pick((r) => r.cpuMs.dst)}; guest during/before ${pick((r) => (r.guestPagesPerSec.share ?? null) * 100)} %, before ${pick((r) => r.guestPagesPerSec.before / 1e6, 3)} Mpages/s`);
  if (rs.some((r) => r.postcopyAt !== null)) {
    console.log(`  post-copy: MB after the switch ${pick((r) => (r.mbAtPostcopy === null ? null : r.mbSent - r.mbAtPostcopy))}; blocktime ms ${pick((r) => r.blocktimeMs)}; requests ${pick((r) => r.postcopyRequests)}; started at ${rs.map((r) => r.postcopyAt).join(',')} ms`);
  }
  if (rs.some((r) => r.xbzrle)) {
    console.log(`  xbzrle: ${rs.map((r) => JSON.stringify(r.xbzrle)).join(' ')}`);
  }
  if (rs.some((r) => r.multifdMb)) console.log(`  multifd MB ${pick((r) => r.multifdMb)}`);
  console.log(`  dst start ms ${pick((r) => r.dstStartMs)}; load ${rs.map((r) => `${r.load.start.split(' ')[0]}->${r.load.end.split(' ')[0]}`).join(', ')}${rs.some((r) => r.error) ? `; errors ${rs.map((r) => r.error).join(' | ')}` : ''}`);
}
