/**
 * Child `ferry` processes for `ferry demo` and the benchmark scenarios:
 * start one, wait for its control socket, stop it (SIGTERM, then SIGKILL
 * if it has not exited within STOP_GRACE_MS: a source that may hold the only
 * copy of its guest refuses SIGTERM). It runs the command line's entry
 * file as a process of its own (no import of cli/). Every child started
 * and not yet exited is known here, so that an interrupted command can
 * stop them all (stopAllFerries), also one still starting.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../cli/main.js', import.meta.url));

/** How long a child may take to exit after SIGTERM before it gets SIGKILL, ms (a guest process ends in well under a second). */
export const STOP_GRACE_MS = 5000;

/** Children started and not yet exited. */
const live = new Set<ChildProcess>();

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the child has exited. */
async function stopChild(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(true), graceMs); });
  if (await Promise.race([exited.then(() => false), late])) child.kill('SIGKILL');
  clearTimeout(timer);
  await exited;
}

/**
 * The end of a command that started children and talked to them: close its
 * connections, stop the children (each as stop() does) and remove its
 * working directory. Whatever happened, in a `finally`.
 */
export async function releaseChildren(children: readonly FerryChild[], connections: readonly { close(): void }[], dir: string): Promise<void> {
  for (const c of connections) c.close();
  await Promise.all(children.map((c) => c.stop()));
  rmSync(dir, { recursive: true, force: true });
}

/** Stop every child started here that has not exited (an interrupted `ferry demo`). */
export async function stopAllFerries(graceMs = STOP_GRACE_MS): Promise<void> {
  await Promise.all([...live].map((c) => stopChild(c, graceMs)));
}

export interface FerryChild {
  readonly process: ChildProcess;
  readonly pid: number;
  /** Every line of its standard output and error, as they came. */
  readonly output: string[];
  /** Its standard output alone, byte for byte (a WebAssembly program's output). */
  readonly stdout: Buffer[];
  stop(): Promise<void>;
}

/**
 * Run `ferry ARGS...`; resolves once a line of its output matches `ready`.
 * `where` ['--netns', NS] runs it in network namespace NS (`ip netns exec`, which execs: same pid).
 */
export async function startFerry(args: string[], ready: RegExp, timeoutMs = 20_000, where: string[] = []): Promise<FerryChild> {
  const child = where[0] === '--netns'
    ? spawn('ip', ['netns', 'exec', where[1], process.execPath, CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  child.once('exit', () => live.delete(child));
  const output: string[] = [];
  const stdout: Buffer[] = [];
  child.stdout.on('data', (d: Buffer) => stdout.push(d));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      void stopChild(child, STOP_GRACE_MS); // not left running
      reject(new Error(`ferry ${args[0]} did not start within ${timeoutMs} ms: ${output.join(' ')}`));
    }, timeoutMs);
    const onData = (d: Buffer) => {
      for (const line of d.toString().split('\n')) if (line.trim() !== '') output.push(line);
      if (output.some((l) => ready.test(l))) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`ferry ${args[0]} exited with code ${code}: ${output.join(' ')}`));
    });
  });
  return {
    process: child,
    pid: child.pid!,
    output,
    stdout,
    stop: () => stopChild(child, STOP_GRACE_MS),
  };
}
