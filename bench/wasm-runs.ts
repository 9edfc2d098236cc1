/**
 * The measurements of bench/wasm.ts, one function each: a program's run
 * time uninstrumented (node:wasi, in a worker) or instrumented (a ferry
 * Guest, ferry's own runner and system interface), the wall time from a
 * pause request to its acknowledgement, and a migration of a program
 * between two ferry processes.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { Guest } from '../src/guest/guest.js';
import { newProbeBuffer, probeSiteNames, readProbe, type ProbeFigures } from '../src/guest/poll-probe.js';
import type { InstrumentedModule } from '../src/wasm/instrument.js';

export const GUESTS_DIR = fileURLToPath(new URL('../../guests/', import.meta.url));
const MAIN = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

/** A temporary output file for one run, removed after it. */
function withOutput<T>(dir: string, fn: (fd: number) => Promise<T>): Promise<T> {
  const path = join(dir, `out-${process.hrtime.bigint()}.txt`);
  const fd = openSync(path, 'w');
  return fn(fd).finally(() => {
    closeSync(fd);
    rmSync(path, { force: true });
  });
}

/** Milliseconds `name args` ran under node:wasi, uninstrumented (wasi.start only). */
export function runNodeWasi(name: string, args: readonly string[], dir: string): Promise<number> {
  return withOutput(dir, (stdoutFd) => new Promise<number>((resolve, reject) => {
    const worker = new Worker(new URL('./wasm-wasi-worker.js', import.meta.url), {
      workerData: { name, file: join(GUESTS_DIR, `${name}.wasm`), args: [...args], stdoutFd },
    });
    worker.once('message', (m: { code: number; ms: number }) => {
      void worker.terminate();
      if (m.code !== 0) reject(new Error(`${name} ${args.join(' ')} exited ${m.code} under node:wasi`));
      else resolve(m.ms);
    });
    worker.once('error', reject);
  }));
}

/** A ferry guest running `name args`, its output to `fd`, and its exit (a probed module's figures into `probe`). */
async function startGuest(
  module: InstrumentedModule, name: string, args: readonly string[], fd: number, probe?: SharedArrayBuffer,
): Promise<{ guest: Guest; exited: Promise<number> }> {
  const guest = await Guest.create({
    program: { instrumented: module, wasi: { args: [name, ...args], env: [], seed: 1n }, stdio: { stdout: fd, stderr: fd }, ...(probe ? { probe } : {}) },
  });
  const exited = new Promise<number>((resolve) => guest.once('exit', resolve));
  return { guest, exited };
}

/** Milliseconds `name args` ran as a ferry guest: from cont() to its exit (instantiating is before it). */
export function runFerry(module: InstrumentedModule, name: string, args: readonly string[], dir: string): Promise<number> {
  return withOutput(dir, async (fd) => {
    const { guest, exited } = await startGuest(module, name, args, fd);
    try {
      const t0 = performance.now();
      await guest.cont();
      const code = await exited;
      const ms = performance.now() - t0;
      if (code !== 0) throw new Error(`${name} ${args.join(' ')} exited ${code} as a ferry guest`);
      return ms;
    } finally {
      await guest.destroy();
    }
  });
}

/** A probed module's run to its exit: the stretches between its polls (poll-probe.ts), with the longest ones' functions named. */
export function probedRun(module: InstrumentedModule, name: string, args: readonly string[], dir: string): Promise<ProbeFigures & { sites: string[] }> {
  return withOutput(dir, async (fd) => {
    const buffer = newProbeBuffer();
    const { guest, exited } = await startGuest(module, name, args, fd, buffer);
    try {
      await guest.cont();
      const code = await exited;
      if (code !== 0) throw new Error(`${name} ${args.join(' ')} exited ${code} as a probed ferry guest`);
      const figures = readProbe(buffer);
      const names = probeSiteNames(module.module);
      const site = (n: number) => (n === -1 ? '(start)' : n === -2 ? '(sleep)' : names[n] ?? `site ${n}`);
      return { ...figures, sites: figures.longest.map((l) => `${site(l.from)} -> ${site(l.to)}`) };
    } finally {
      await guest.destroy();
    }
  });
}

/** The probe's baseline: `hits` probe calls from a JavaScript loop on a thread of its own (probe-baseline-worker.ts). */
export function probeBaseline(hits: number): Promise<ProbeFigures & { sites: string[] }> {
  return new Promise((resolve, reject) => {
    const buffer = newProbeBuffer();
    const worker = new Worker(new URL('./probe-baseline-worker.js', import.meta.url), { workerData: { buffer, hits } });
    worker.once('message', () => {
      void worker.terminate();
      const f = readProbe(buffer);
      resolve({ ...f, sites: f.longest.map((l) => `${l.from} -> ${l.to}`) });
    });
    worker.once('error', reject);
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Pause and resume `guest` `count` times at random moments (1-10 ms apart); the wall time of each pause, request to acknowledgement, ms. */
async function pauseTimes(guest: Guest, count: number, running: () => boolean): Promise<number[]> {
  const times: number[] = [];
  await guest.cont();
  await sleep(500); // past start-up, into the program's steady state
  for (let i = 0; i < count && running(); i++) {
    await sleep(1 + Math.random() * 9);
    const t0 = performance.now();
    await guest.pause();
    times.push(performance.now() - t0);
    await guest.resume();
  }
  return times;
}

/** Pause latencies of a running program (or, with `module` null, of a sweep workload over 64 MiB). */
export function pauseLatency(module: InstrumentedModule | null, name: string, args: readonly string[], dir: string, count: number): Promise<number[]> {
  return withOutput(dir, async (fd) => {
    const started = module === null
      ? { guest: await Guest.create({ ram: 64 * 1024 * 1024, vcpus: [{ kind: 'sweep' }] }), exited: new Promise<number>(() => {}) }
      : await startGuest(module, name, args, fd);
    let done = false;
    void started.exited.then(() => { done = true; });
    try {
      const times = await pauseTimes(started.guest, count, () => !done);
      if (times.length < count) throw new Error(`${name} ${args.join(' ')} exited after ${times.length} of ${count} pauses: give it more work`);
      return times;
    } finally {
      await started.guest.destroy();
    }
  });
}

interface Child { readonly lines: string[]; readonly stderr: string[]; readonly exit: Promise<number | null>; kill(): void }

function ferry(args: readonly string[]): Child {
  const child = spawn(process.execPath, [MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  const stderr: string[] = [];
  child.stdout.setEncoding('utf8').on('data', (s: string) => lines.push(s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => stderr.push(s));
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { lines, stderr, exit, kill: () => child.kill('SIGKILL') };
}

async function waitFor(child: Child, pattern: RegExp, ms: number): Promise<RegExpExecArray> {
  const deadline = performance.now() + ms;
  for (;;) {
    const m = pattern.exec(child.lines.join('') + child.stderr.join(''));
    if (m !== null) return m;
    if (performance.now() > deadline) throw new Error(`no ${pattern} from ferry within ${ms} ms: ${child.stderr.join('').slice(-500)}`);
    await sleep(20);
  }
}

export interface MigrationFigures { status: string; totalTimeMs: number; downtimeMs: number; sentMiB: number; passes: number; exitCode: number | null }

/** The JSON figures `ferry run --json` writes (pretty-printed, to standard error beside a program). */
function parseFigures(text: string): Record<string, unknown> & { stats: Record<string, unknown> } {
  const at = text.lastIndexOf('{\n  "status"');
  if (at < 0) throw new Error(`no JSON figures from ferry run: ${text.slice(-500)}`);
  for (let end = text.indexOf('\n}', at); end >= 0; end = text.indexOf('\n}', end + 1)) {
    try { return JSON.parse(text.slice(at, end + 2)); } catch { /* not the end yet */ }
  }
  throw new Error('ferry run\'s JSON figures do not parse');
}

/** One migration of `program args` between two ferry processes, `afterS` seconds into its run. */
export async function migrateBetweenProcesses(name: string, args: readonly string[], afterS: number): Promise<MigrationFigures> {
  const program = join(GUESTS_DIR, `${name}.wasm`);
  const dst = ferry(['incoming', '--wasm', program, '--listen', 'tcp:127.0.0.1:0']);
  let src: Child | undefined;
  try {
    const uri = (await waitFor(dst, /listening on (\S+)/, 30_000))[1];
    src = ferry(['run', '--wasm', program, '--seconds', String(afterS), '--migrate-to', uri, '--json', '--', ...args]);
    const srcCode = await src.exit;
    const exitCode = await dst.exit;
    const f = parseFigures(src.stderr.join(''));
    const s = f.stats as { totalTimeMs?: number; downtimeMs?: number; transferredBytes?: number; passes?: unknown[] };
    if (srcCode !== 0) throw new Error(`ferry run exited ${srcCode}: ${src.stderr.join('').slice(-500)}`);
    return {
      status: String(f.status), totalTimeMs: s.totalTimeMs ?? NaN, downtimeMs: s.downtimeMs ?? NaN,
      sentMiB: (s.transferredBytes ?? NaN) / 2 ** 20, passes: s.passes?.length ?? NaN, exitCode,
    };
  } finally {
    src?.kill();
    dst.kill();
  }
}
