/**
 * Run a committed program of guests/ under node:wasi, in a worker so that
 * the wait for it is bounded (a program running on the main thread would
 * block every timer), and collect what it printed.
 */
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { bounded } from '../waits.js';

/** The guests/ folder at the repository's root (this file runs from dist/test/guests/). */
export const GUESTS_DIR = fileURLToPath(new URL('../../../guests/', import.meta.url));

/** The path of a committed program, by name ('sqlite-load'). */
export const guestPath = (name: string): string => join(GUESTS_DIR, `${name}.wasm`);

export interface WasiJob {
  readonly name: string;
  readonly file: string;
  readonly args: readonly string[];
  /** Guest path -> host directory. */
  readonly preopens: Readonly<Record<string, string>>;
  readonly stdoutFd: number;
  readonly stderrFd: number;
}

export interface WasiJobResult {
  readonly code: number;
  /** The linear memory's size when the program exited. */
  readonly memoryBytes: number;
}

export interface WasiRun extends WasiJobResult {
  readonly stdout: string;
  readonly stderr: string;
}

export interface WasiRunOptions {
  readonly preopens?: Readonly<Record<string, string>>;
  /** How long the program may run. */
  readonly ms?: number;
}

function startWorker(job: WasiJob): { worker: Worker; done: Promise<WasiJobResult> } {
  const worker = new Worker(new URL('./wasi-worker.js', import.meta.url), { workerData: job });
  const done = new Promise<WasiJobResult>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`the worker running ${job.name} exited (${code}) before it reported`)));
  });
  return { worker, done };
}

/** Run program `name` with `args`; its exit code, output and final memory size. */
export async function runWasi(name: string, args: readonly string[], options: WasiRunOptions = {}): Promise<WasiRun> {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-wasi-run-'));
  const stdoutPath = join(dir, 'stdout');
  const stderrPath = join(dir, 'stderr');
  const stdoutFd = openSync(stdoutPath, 'w');
  const stderrFd = openSync(stderrPath, 'w');
  let worker: Worker | undefined;
  try {
    const started = startWorker({ name, file: guestPath(name), args, preopens: options.preopens ?? {}, stdoutFd, stderrFd });
    worker = started.worker;
    const result = await bounded(`${name} ${args.join(' ')} to exit under node:wasi`, started.done, options.ms ?? 30_000);
    return { ...result, stdout: readFileSync(stdoutPath, 'utf8'), stderr: readFileSync(stderrPath, 'utf8') };
  } finally {
    await worker?.terminate();
    closeSync(stdoutFd);
    closeSync(stderrFd);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The last line of `text` (without its newline). */
export const lastLine = (text: string): string => text.trimEnd().split('\n').pop() ?? '';
