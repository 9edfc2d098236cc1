/**
 * `ferry` processes for command-line tests: spawned, their output kept,
 * their exit awaited (bounded), and every one still alive killed after
 * the file (`killLeftovers` in `after`), whatever failed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { fileURLToPath } from 'node:url';
import { destroyAll } from '../migration/helpers.js';
import { bounded, until } from '../waits.js';

export const FERRY = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface FerryProcess {
  readonly child: ChildProcess;
  stdout(): string;
  stderr(): string;
  readonly exited: Promise<Exit>;
  alive(): boolean;
  /** Wait (bounded) for a line of stdout or stderr matching `re`. */
  line(re: RegExp, what: string, ms?: number): Promise<string>;
  /** Wait (bounded) for the process to exit. */
  exit(what: string, ms?: number): Promise<Exit>;
}

const spawned = new Set<ChildProcess>();

export function spawnFerry(args: string[]): FerryProcess {
  const child = spawn(process.execPath, [FERRY, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  spawned.add(child);
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  const exited = new Promise<Exit>((resolve) => child.once('close', (code, signal) => {
    spawned.delete(child);
    resolve({ code, signal });
  }));
  let done = false;
  void exited.then(() => { done = true; });
  return {
    child, exited,
    stdout: () => out,
    stderr: () => err,
    alive: () => !done && child.exitCode === null && child.signalCode === null,
    line: (re, what, ms = 30_000) => until(what, () => `${out}\n${err}`.split('\n').find((l) => re.test(l)), ms),
    exit: (what, ms = 60_000) => bounded(what, exited, ms),
  };
}

/** SIGKILL every process spawned here that is still alive. */
export function killLeftovers(): void {
  for (const c of spawned) c.kill('SIGKILL');
}

/** Whether a process with this pid exists (signal 0 checks without sending anything). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * A temporary directory for the calling test file; after the file, every
 * ferry process still alive is killed, every guest of test/migration/helpers
 * destroyed, and the directory removed, whatever failed.
 */
export function cliTestDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  after(async () => {
    killLeftovers();
    await destroyAll();
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}
