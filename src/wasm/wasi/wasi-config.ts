/**
 * What a fresh WASI device starts from (`ferry run --wasm PROGRAM -- ARGS`,
 * `--env`, `--seed`, the preopened directories), and its checks: a bad
 * value is refused with a message naming it, before anything runs.
 */
import { InvalidArgumentError } from '../../errors.js';
import { MAX_PATH_BYTES } from './fs-nodes.js';
import { MAX_FS_BYTES } from './memory-fs.js';

export interface WasiPreopen {
  /** The directory's name as the program sees it ("/data", "."). */
  readonly guestPath: string;
  /** Its files by relative path ("a/b.txt"); directories on the way are made. */
  readonly files: ReadonlyMap<string, Uint8Array>;
}

export interface WasiConfig {
  readonly args: readonly string[];          // argv, argv[0] first (the program's name)
  readonly env: readonly string[];           // "KEY=VALUE"
  readonly seed: bigint;                     // random_get's seed (64-bit)
  readonly stdin?: Uint8Array;               // default: empty (EOF at once)
  readonly preopens?: readonly WasiPreopen[]; // a directory's contents, relative paths
}

/** Standard input at most: it is device state and travels in every save. */
export const MAX_STDIN_BYTES = 4 * 1024 * 1024;
/** Arguments and environment together, bytes of UTF-8 with their NULs (Linux's ARG_MAX is 2 MiB; this is device state too). */
export const MAX_ARGS_ENV_BYTES = 256 * 1024;
/** Preopened directories at most. */
export const MAX_PREOPENS = 64;

const bad = (what: string): never => {
  throw new InvalidArgumentError(`WASI configuration: ${what}`);
};

/** Throws an InvalidArgumentError naming the first thing wrong with `config`. */
export function checkConfig(config: WasiConfig): void {
  const strings = (name: string, list: unknown): void => {
    if (!Array.isArray(list)) bad(`${name} must be an array of strings`);
    (list as unknown[]).forEach((s, i) => {
      if (typeof s !== 'string') bad(`${name}[${i}] must be a string, got ${typeof s}`);
      if ((s as string).includes('\0')) bad(`${name}[${i}] contains a NUL character`);
    });
  };
  strings('args', config.args);
  strings('env', config.env);
  config.env.forEach((e, i) => { if (!e.includes('=')) bad(`env[${i}] ${JSON.stringify(e)} is not KEY=VALUE`); });
  const bytes = [...config.args, ...config.env].reduce((n, s) => n + Buffer.byteLength(s) + 1, 0);
  if (bytes > MAX_ARGS_ENV_BYTES) bad(`arguments and environment take ${bytes} bytes, more than ${MAX_ARGS_ENV_BYTES}`);
  if (typeof config.seed !== 'bigint' || config.seed < 0n || config.seed >= 1n << 64n) {
    bad(`seed must be a bigint from 0 to 2^64 - 1, got ${String(config.seed)}`);
  }
  if (config.stdin !== undefined && !(config.stdin instanceof Uint8Array)) bad('stdin must be a Uint8Array');
  if ((config.stdin?.length ?? 0) > MAX_STDIN_BYTES) bad(`stdin of ${config.stdin!.length} bytes is more than ${MAX_STDIN_BYTES}`);
  checkPreopens(config.preopens ?? []);
}

function checkPreopens(preopens: readonly WasiPreopen[]): void {
  if (preopens.length > MAX_PREOPENS) bad(`${preopens.length} preopened directories, at most ${MAX_PREOPENS}`);
  let total = 0;
  for (const p of preopens) {
    if (typeof p.guestPath !== 'string' || p.guestPath === '' || p.guestPath.includes('\0') || Buffer.byteLength(p.guestPath) > MAX_PATH_BYTES) {
      bad(`a preopened directory needs a name without NUL, of 1 to ${MAX_PATH_BYTES} bytes, got ${JSON.stringify(p.guestPath).slice(0, 80)}`);
    }
    if (!(p.files instanceof Map)) bad(`preopen ${p.guestPath}: files must be a Map of relative path to Uint8Array`);
    for (const [path, data] of p.files) {
      const parts = path.split('/');
      if (path.startsWith('/') || parts.some((c) => c === '' || c === '.' || c === '..' || c.includes('\0'))) {
        bad(`preopen ${p.guestPath}: file path ${JSON.stringify(path)} must be relative, without empty, "." or ".." parts`);
      }
      if (!(data instanceof Uint8Array)) bad(`preopen ${p.guestPath}: file ${path} must be a Uint8Array`);
      total += data.length;
    }
  }
  if (total > MAX_FS_BYTES) bad(`preopened files take ${total} bytes, more than the filesystem's ${MAX_FS_BYTES}`);
}
