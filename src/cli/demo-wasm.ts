/**
 * `ferry demo --wasm [PROGRAM] [-- ARGS...]`: a real program migrated live
 * between two processes while it runs, and its output checked against an
 * unmigrated run's. By default the program is the committed SQLite guest
 * (guests/sqlite-load.wasm), a database under write load.
 *
 * 1. The reference: `ferry run --wasm` runs the program to its end, once,
 *    with a fixed seed; its standard output and run time are kept.
 * 2. The destination: `ferry incoming --wasm PROGRAM --listen` waits for it.
 * 3. The source: `ferry run --wasm PROGRAM --qmp` runs it with the same seed;
 *    at about a third of the reference's run time the demo migrates it
 *    through QMP (verify on), probing the source's control socket.
 * 4. The destination runs the program to its end. The source's output
 *    followed by the destination's must equal the reference's, byte for
 *    byte, and the exit statuses must agree (DESIGN.md invariant 8).
 * Exit code 0 only if the migration completed within its downtime limit,
 * the digests matched and the output is identical.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { QmpClient } from '../control/qmp-client.js';
import { StallProbe } from '../client/stall-probe.js';
import { releaseChildren, startFerry, stopAllFerries, type FerryChild } from '../client/children.js';
import { SIGNAL_EXIT_CODE, onInterrupt } from '../client/interrupts.js';
import { followMigration } from '../client/follow-migration.js';
import { MigrationProgress } from '../client/progress.js';
import { summaryTable } from '../client/report.js';
import { sleep } from '../migration/waiter.js';
import type { MigrationParameters } from '../migration/parameters.js';
import { loadProgram } from '../wasm/instrument.js';
import { qmpArguments } from './parameter-flags.js';

/** The showcase: SQLite inserting, updating and querying 120 000 rows (ROWS SEED). */
export const DEMO_PROGRAM = fileURLToPath(new URL('../../../guests/sqlite-load.wasm', import.meta.url));
export const DEMO_PROGRAM_ARGS = ['120000', '7'];
const SEED = '1';
/** The longest a program may run at the destination, as a multiple of the reference's run time (and at least 60 s). */
const RUN_TIME_FACTOR = 5;

/** A child's exit status once its output is all read ('close', not 'exit', which may come before its last bytes). */
const exitOf = (c: FerryChild): Promise<number> => new Promise((resolve) => {
  if (c.process.exitCode !== null && c.process.stdout?.readableEnded === true) resolve(c.process.exitCode);
  else c.process.once('close', (code) => resolve(code ?? 1));
});

async function bounded<T>(what: string, p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: not within ${Math.round(ms / 1000)} s`)), ms); });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

export async function demoWasm(program: string, args: readonly string[], parameters: Partial<MigrationParameters> & { downtimeLimitMs: number },
  o: { json: boolean; log: (s: string) => void }): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-demo-wasm-'));
  const children: FerryChild[] = [];
  const clients: QmpClient[] = [];
  const runArgs = ['--wasm', program, '--seed', SEED];
  // Interrupted (Ctrl-C, SIGTERM): stop every process it started and remove its directory, then exit.
  const unguard = onInterrupt((signal) => {
    void stopAllFerries().finally(() => {
      rmSync(dir, { recursive: true, force: true });
      process.exit(SIGNAL_EXIT_CODE[signal]);
    });
  });
  try {
    // Instrumented here first: the cache then serves both processes at once (cold, SQLite takes about a minute).
    o.log(`instrumenting ${program} (once: the result is cached)`);
    await loadProgram(readFileSync(program));
    o.log(`reference: running ${program} ${args.join(' ')} once, unmigrated`);
    const t0 = performance.now();
    const ref = await startFerry(['run', ...runArgs, '--', ...args], /ferry: running/);
    children.push(ref);
    const refCode = await bounded('the reference run', exitOf(ref), 600_000);
    const refMs = performance.now() - t0;
    const expected = Buffer.concat(ref.stdout);
    o.log(`  ${expected.length} bytes of output in ${(refMs / 1000).toFixed(1)} s, exit status ${refCode}`);

    const dst = await startFerry(['incoming', '--wasm', program, '--listen', 'tcp:127.0.0.1:0'], /listening on/);
    children.push(dst);
    const uri = dst.output.map((l) => /listening on (\S+)/.exec(l)?.[1]).find((u) => u !== undefined)!;
    const srcControl = `unix:${join(dir, 'source.qmp')}`;
    const src = await startFerry(['run', ...runArgs, '--qmp', srcControl, '--', ...args], /QMP control socket on/);
    children.push(src);
    const qmp = await QmpClient.connect(srcControl);
    clients.push(qmp);
    await sleep(refMs / 3);
    const probe = await StallProbe.connect(srcControl);
    o.log(`migrating the running program to ${uri} (downtime limit ${parameters.downtimeLimitMs} ms, verify on)`);
    const run = await followMigration(qmp, probe, {
      to: uri, params: qmpArguments(parameters), verify: true, baselineMs: 0, progress: new MigrationProgress(process.stdout, o.json),
    });
    probe.close();
    const { info } = run;
    const dstCode = info.status === 'completed' ? await bounded('the program at the destination', exitOf(dst), Math.max(60_000, RUN_TIME_FACTOR * refMs)) : null;
    await Promise.allSettled([qmp.execute('quit')]);
    const got = Buffer.concat([...src.stdout, ...dst.stdout]);
    const identical = got.equals(expected) && dstCode === refCode;
    const withinLimit = info.downtime !== undefined && info.downtime <= parameters.downtimeLimitMs;
    const ok = info.status === 'completed' && withinLimit && identical;
    for (const line of summaryTable(info, run.latency, run)) o.log(line);
    o.log(`  output          ${identical ? `identical to the unmigrated run (${got.length} bytes: ${Buffer.concat(src.stdout).length} at the source, then ${Buffer.concat(dst.stdout).length} at the destination), exit status ${dstCode}`
      : `DIFFERS from the unmigrated run: ${got.length} bytes against ${expected.length}, exit status ${dstCode ?? '-'} against ${refCode}`}`);
    if (o.json) console.log(JSON.stringify({ ok, status: info.status, source: info, identical, bytes: got.length, exitStatus: dstCode }, null, 2));
    if (info.status === 'completed' && !withinLimit) o.log(`  downtime limit  EXCEEDED: ${info.downtime ?? '-'} ms against a limit of ${parameters.downtimeLimitMs} ms`);
    o.log(ok ? 'demo passed' : `demo FAILED${info.status === 'completed' ? '' : `: migration ${info.status}`}`);
    return ok ? 0 : 1;
  } finally {
    await releaseChildren(children, clients, dir);
    unguard();
  }
}
