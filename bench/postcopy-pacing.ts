/**
 * Post-copy's push pace, one row at a time: the 512 MiB guest sweeping 3
 * times a second, post-copy 1 s after `migrate` (the suite's postcopy and
 * converge-link rows), at each `max-postcopy-bandwidth` given (0: the
 * default, 90 % of the bandwidth measured before GO), over loopback or the
 * 1 Gbit/s veth (as root, bench/netns.ts). One JSON line per run: total,
 * downtime, blocked time, request latency, bytes after GO, the guest's
 * progress share, control latency. What BENCHMARKS.md's post-copy rows at
 * 1 Gbit/s compare the default pace against.
 *
 *   npx tsc -p . && RUNS=2 node dist/bench/postcopy-pacing.js veth 0 112000000 125000000
 */
import { openLink } from '../src/bench/netns.js';
import { runScenario } from '../src/bench/scenario.js';

const [where, ...rates] = process.argv.slice(2);
if (where !== 'veth' && where !== 'loopback') throw new Error(`usage: postcopy-pacing.js veth|loopback BYTES_PER_SEC...: got ${String(where)}`);
const runs = Number(process.env.RUNS ?? 1);
const link = where === 'veth' ? openLink({ rate: '1gbit', delayMs: 0.5 }) : null;
const netns = link === null ? undefined : { source: link.source, destination: link.destination, listenHost: link.destinationAddress };
try {
  for (const rate of rates.map(Number)) {
    for (let i = 0; i < runs; i++) {
      const r = await runScenario({
        name: `post-copy 1 s after migrate, ${where}, max-postcopy-bandwidth ${rate}`,
        guest: ['--ram', '512M', '--vcpus', '1', '--workload', 'sweep', '--rate', '3'], readyPages: 0, baselineMs: 1000, cancelAfterMs: 60_000, netns,
        params: { 'downtime-limit': 30, 'x-ferry-postcopy-after': 1000, 'max-postcopy-bandwidth': rate }, capabilities: ['postcopy-ram'],
      });
      console.log(JSON.stringify({
        where, rate, status: r.status, totalMs: r.totalMs, downtimeMs: r.downtimeMs, measuredBytesPerSec: r.bandwidthBytesPerSec, postcopy: r.postcopy,
        progress: r.guestPagesPerSecDuring / Math.max(r.guestPagesPerSecBefore, 1), control: r.latency,
      }));
    }
  }
} finally {
  link?.close();
}
