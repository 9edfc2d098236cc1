/**
 * Child `ferry` processes for `ferry demo` and the benchmark scenarios:
 * start one, wait for its control socket. It runs the command line's entry
 * file as a process of its own (no import of cli/).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../cli/main.js', import.meta.url));

export interface FerryChild {
  readonly process: ChildProcess;
  readonly pid: number;
  readonly output: string[];
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
  const output: string[] = [];
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`ferry ${args[0]} did not start within ${timeoutMs} ms: ${output.join(' ')}`)), timeoutMs);
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
    stop: async () => {
      if (child.exitCode === null) child.kill();
      await exited;
    },
  };
}
