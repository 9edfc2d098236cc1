/**
 * `ferry demo`: a busy guest migrated on loopback between two processes.
 * This process is the source; a child `ferry incoming` is the destination.
 * Verify mode is on: each side digests RAM at switchover and the
 * destination resumes only if they match; then the destination runs the
 * guest on and checks it with the sweep checker. Exit code 0 only if the
 * migration completed, the digests matched and the check passed.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Guest } from '../guest/index.js';
import { Migration, prepareMigrationThread } from '../migration/migration.js';
import { parseCount, parseNumber, sleep, workloadSpecs } from './options.js';
import { passLine, summaryLines } from './report.js';
import { formatBytes, parseSize } from './size.js';

export const DEMO_USAGE = `usage: ferry demo [options]

Migrate a busy guest between two processes on loopback, verify it, and
let it run on at the destination.

  --ram SIZE          guest RAM (default 256M)
  --vcpus N           vCPUs (default 2)
  --workload KIND     idle | stress | fill | sweep (default sweep)
  --rate N            sweeps per second (sweep) or MiB/s (stress) (default 2)
  --downtime-limit MS longest acceptable pause (default 300)
  --json              print the final figures as JSON
  -h, --help          this text`;

interface DestinationResult {
  status: string;
  error: string | null;
  check: boolean | null;
  stats: { verified: boolean | null; verifyMs: number } | null;
}

export async function demoCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      ram: { type: 'string', default: '256M' },
      vcpus: { type: 'string', default: '2' },
      workload: { type: 'string', default: 'sweep' },
      rate: { type: 'string', default: '2' },
      'downtime-limit': { type: 'string', default: '300' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log(DEMO_USAGE);
    return 0;
  }
  const ram = parseSize(values.ram, '--ram');
  const vcpus = parseCount('--vcpus', values.vcpus, 1, 64);
  const rate = parseNumber('--rate', values.rate, 1e-6, 1e9);
  const downtimeLimitMs = parseCount('--downtime-limit', values['downtime-limit'], 1, 2_000_000);
  const specs = workloadSpecs(values.workload, vcpus, ram / 4096, rate);
  const log = values.json ? () => {} : (s: string) => console.log(s);

  // The destination: a child process, listening on a free loopback port.
  const cli = fileURLToPath(new URL('./main.js', import.meta.url));
  const child = spawn(process.execPath, [cli, 'incoming', '--listen', 'tcp:127.0.0.1:0', '--seconds', '0.5', '--json'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout });
  const events: Record<string, unknown>[] = [];
  let wake: (() => void) | null = null;
  lines.on('line', (line) => {
    try {
      events.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      events.push({ event: 'output', line });
    }
    wake?.();
  });
  const exited = new Promise<number>((resolve) => child.on('exit', (code) => resolve(code ?? 1)));
  const next = async (event: string): Promise<Record<string, unknown>> => {
    for (let i = 0; i < 10_000; i++) {
      const found = events.find((e) => e.event === event);
      if (found !== undefined) return found;
      if (child.exitCode !== null) break;
      await Promise.race([new Promise<void>((r) => { wake = r; }), sleep(100)]);
    }
    throw new Error(`the destination process ended without a ${event} line`);
  };

  prepareMigrationThread();
  const guest = await Guest.create({ ram, vcpus: specs });
  try {
    const { uri } = (await next('listening')) as { uri: string };
    log(`destination: pid ${child.pid}, listening on ${uri}`);
    log(`source: ${formatBytes(ram)}, ${vcpus} vCPU(s) running ${values.workload} at ${rate}/s`);
    await guest.cont();
    await sleep(1000);
    log(`migrating to ${uri} (downtime limit ${downtimeLimitMs} ms, verify on)`);
    const m = Migration.start(guest, uri, { downtimeLimitMs }, { verify: true });
    m.on('pass', (p) => log(passLine(p)));
    const r = await m.done();
    for (const line of summaryLines(r.status, r.stats, r.error)) log(line);
    const dest = (await next('result')) as unknown as DestinationResult;
    const code = await exited;
    const verified = dest.stats?.verified ?? null;
    const destVerifyMs = dest.stats?.verifyMs ?? 0;
    log(`  verify          ${verified === true ? 'RAM digests match' : verified === false ? 'DIGESTS DIFFER' : 'not done'}` +
      ` (digests took ${r.stats.verifyMs.toFixed(1)} ms at the source + ${destVerifyMs.toFixed(1)} ms at the destination)`);
    if (r.stats.downtimeMs !== null) {
      const without = r.stats.downtimeMs - r.stats.verifyMs - destVerifyMs;
      log(`  downtime without verify ${without.toFixed(1)} ms (limit ${downtimeLimitMs} ms)`);
    }
    log(`  destination     ${dest.status}; sweep check after running on: ${dest.check === null ? 'n/a' : dest.check ? 'passed' : 'FAILED'}`);
    log(`  source guest    ${guest.runState}`);
    const ok = r.status === 'completed' && verified === true && dest.check !== false && code === 0;
    if (values.json) {
      console.log(JSON.stringify({ ok, status: r.status, error: r.error, stats: r.stats, destination: dest, sourceRunState: guest.runState }, null, 2));
    }
    log(ok ? 'demo passed' : 'demo FAILED');
    return ok ? 0 : 1;
  } finally {
    child.kill();
    await guest.destroy();
  }
}
