/**
 * The command-line side of WebAssembly guests, shared by `ferry run --wasm`
 * and `ferry incoming --wasm`: the flags, the program's own arguments (after
 * `--`, as wasmtime takes them), and loading the program (instrumented, or
 * from the cache) with its system interface's configuration.
 *
 * Host directories (`--dir HOST[::GUEST]`, as wasmtime's) are copied into the
 * guest's in-memory file system when the program starts: what the program
 * writes there migrates with it, and is never written back to the host.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, join, relative } from 'node:path';
import { InvalidArgumentError } from '../errors.js';
import type { Guest } from '../guest/guest.js';
import type { GuestProgram } from '../guest/wasm-program.js';
import { loadProgram } from '../wasm/instrument.js';
import type { WasiConfig } from '../wasm/wasi/wasi-device.js';
import { COMMAND_FLAGS, parseNumberFlag } from './number-flags.js';

/** The flags, for parseCommandLine. */
export const WASM_OPTIONS = {
  wasm: { type: 'string' },
  'wasm-max-memory': { type: 'string' },
  'wasm-unwind-buffer': { type: 'string' },
  seed: { type: 'string' },
  env: { type: 'string', multiple: true },
  dir: { type: 'string', multiple: true },
} as const;

export const WASM_USAGE = `  --wasm PROGRAM      run this WebAssembly (WASI preview 1) command as the guest;
                      its arguments follow \`--\` (a destination is given the same program)
  --wasm-max-memory SIZE  the most linear memory it may grow to (default: its own maximum,
                      or the most that fits with ferry's reserved region in 4 GiB)
  --wasm-unwind-buffer SIZE  room for its stack when it is paused (default 1M)
  --seed SEED         random_get's seed, a whole number below 2^64 (default: a random one, printed)
  --env KEY=VALUE     an environment variable for the program (repeat for more)
  --dir HOST[::GUEST] copy a host directory into the program's file system at GUEST
                      (default the same path); capped, and never written back`;

/** Most bytes copied from host directories into the guest's file system. */
const MAX_DIR_BYTES = 8 * 1024 * 1024;

/**
 * The program's exit status once it exits; 1 if its vCPU fails instead (a
 * trap, an unwritable standard output), said on standard error.
 */
export function programEnd(guest: Guest, say: (s: string) => void = (s) => console.error(s)): Promise<number> {
  if (guest.exitCode !== null) return Promise.resolve(guest.exitCode);
  if (guest.runState === 'internal-error') {
    say('ferry: the program failed (its vCPU stopped with an error)');
    return Promise.resolve(1);
  }
  return new Promise<number>((resolve) => {
    const failed = (err: Error) => {
      say(`ferry: the program failed: ${err.message}`);
      resolve(1);
    };
    guest.once('exit', (code) => {
      guest.off('error', failed);
      resolve(code);
    });
    guest.once('error', failed);
  });
}

/** Split a command line at its first `--`: ferry's flags before it, the program's arguments after. */
export function splitProgramArgs(argv: readonly string[]): { ferry: string[]; program: string[] } {
  const at = argv.indexOf('--');
  return at < 0 ? { ferry: [...argv], program: [] } : { ferry: argv.slice(0, at), program: argv.slice(at + 1) };
}

export interface WasmValues {
  readonly wasm?: string;
  readonly 'wasm-max-memory'?: string;
  readonly 'wasm-unwind-buffer'?: string;
  readonly seed?: string;
  readonly env?: readonly string[];
  readonly dir?: readonly string[];
}

/** Read, check and instrument (or take from the cache) the program of `--wasm`, with its configuration. */
export async function loadGuestProgram(values: WasmValues, programArgs: readonly string[]): Promise<{ program: GuestProgram; seed: bigint }> {
  const path = values.wasm!;
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    throw new InvalidArgumentError(`--wasm ${path}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  const maxMemoryBytes = values['wasm-max-memory'] === undefined ? undefined : parseNumberFlag(COMMAND_FLAGS.wasmMaxMemory, values['wasm-max-memory']);
  if (maxMemoryBytes !== undefined && maxMemoryBytes % 65_536 !== 0) {
    throw new InvalidArgumentError(`--wasm-max-memory: ${maxMemoryBytes} bytes is not a whole number of 64 KiB WebAssembly pages`);
  }
  const unwindBufferBytes = values['wasm-unwind-buffer'] === undefined ? undefined : parseNumberFlag(COMMAND_FLAGS.wasmUnwindBuffer, values['wasm-unwind-buffer']);
  const seed = parseSeed(values.seed);
  const instrumented = await loadProgram(bytes, { maxMemoryBytes, unwindBufferBytes });
  const wasi: WasiConfig = {
    args: [basename(path), ...programArgs],
    env: (values.env ?? []).map(checkEnv),
    seed,
    preopens: (values.dir ?? []).map(readDir),
  };
  return { program: { instrumented, wasi }, seed };
}

function parseSeed(text: string | undefined): bigint {
  if (text === undefined) return randomBytes(8).readBigUInt64LE(0);
  if (!/^\d{1,20}$/.test(text) || BigInt(text) >= 2n ** 64n) {
    throw new InvalidArgumentError(`--seed: expected a whole number below 2^64, got ${JSON.stringify(text)}`);
  }
  return BigInt(text);
}

function checkEnv(text: string): string {
  if (!/^[^=\0]+=[^\0]*$/.test(text)) throw new InvalidArgumentError(`--env: expected KEY=VALUE, got ${JSON.stringify(text)}`);
  return text;
}

/** `--dir HOST[::GUEST]`: the directory's regular files, by path relative to it, within MAX_DIR_BYTES. */
function readDir(spec: string): { guestPath: string; files: Map<string, Uint8Array> } {
  const [host, guest = host] = spec.split('::');
  const files = new Map<string, Uint8Array>();
  let total = 0;
  const walk = (dir: string, depth: number): void => {
    if (depth > 32) throw new InvalidArgumentError(`--dir ${spec}: deeper than 32 directories`);
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const full = join(dir, entry.name);
      if (entry.isDirectory()) walk(full, depth + 1);
      else if (entry.isFile()) {
        total += statSync(full).size;
        if (total > MAX_DIR_BYTES) throw new InvalidArgumentError(`--dir ${spec}: more than ${MAX_DIR_BYTES} bytes of files (the guest's file system is copied with it)`);
        files.set(relative(host, full), readFileSync(full));
      }
    }
  };
  try {
    if (!statSync(host).isDirectory()) throw new InvalidArgumentError(`--dir ${spec}: ${host} is not a directory`);
    walk(host, 0);
  } catch (err) {
    if (err instanceof InvalidArgumentError) throw err;
    throw new InvalidArgumentError(`--dir ${spec}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  return { guestPath: guest, files };
}
