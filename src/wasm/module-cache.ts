/**
 * The cache of instrumented modules: instrumenting a large program takes
 * tens of seconds (Binaryen's Asyncify), a cached one well under the 2 s a
 * warm start may take. One file per program identity (program-identity.ts)
 * in the cache directory ($FERRY_CACHE_DIR, else ~/.cache/ferry/wasm):
 *
 *   offset 0   8 bytes   magic "FERRYWM1" (the 1 is the format version)
 *   offset 8   u32le     length n of the entry's JSON (at most MAX_META_BYTES)
 *   offset 12  n bytes   JSON: { identity, wasmBytes, wasmSha256, mutableGlobals }
 *   12 + n     wasmBytes the instrumented module
 *
 * A file is written whole to a temporary name in the same directory and
 * renamed over the entry, so a reader sees the old file or the new one,
 * never half of one. A reader checks the magic, the length, the identity
 * and the SHA-256 of the module; an entry that fails any check is not
 * trusted: the caller instruments again and overwrites it.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { createTracer } from '../trace.js';

const trace = createTracer('wasm-cache');

const MAGIC = Buffer.from('FERRYWM1', 'latin1');
const HEAD = 12;
/** Cap on the JSON part: it lists a few names, never megabytes. */
const MAX_META_BYTES = 1024 * 1024;

export interface CachedGlobal {
  readonly exportName: string;
  readonly type: 'i32' | 'i64' | 'f32' | 'f64';
}

export interface CacheEntry {
  readonly wasm: Uint8Array;
  readonly mutableGlobals: readonly CachedGlobal[];
}

interface Meta {
  readonly identity: string;
  readonly wasmBytes: number;
  readonly wasmSha256: string;
  readonly mutableGlobals: readonly CachedGlobal[];
}

/** The cache directory: $FERRY_CACHE_DIR, else ~/.cache/ferry/wasm. */
export function defaultCacheDir(): string {
  const fromEnv = process.env.FERRY_CACHE_DIR;
  return fromEnv !== undefined && fromEnv !== '' ? fromEnv : join(homedir(), '.cache', 'ferry', 'wasm');
}

export function cacheFile(dir: string, identity: string): string {
  return join(dir, `${identity}.wasm-cache`);
}

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

/** The entry's bytes, as the file holds them. */
export function encodeEntry(identity: string, entry: CacheEntry): Buffer {
  const meta: Meta = { identity, wasmBytes: entry.wasm.length, wasmSha256: sha256(entry.wasm), mutableGlobals: entry.mutableGlobals };
  const json = Buffer.from(JSON.stringify(meta), 'utf8');
  const head = Buffer.alloc(HEAD);
  MAGIC.copy(head, 0);
  head.writeUInt32LE(json.length, 8);
  return Buffer.concat([head, json, entry.wasm]);
}

/** The entry in `file`'s bytes, or why it is not to be trusted. */
export function decodeEntry(identity: string, file: Buffer): CacheEntry | string {
  if (file.length < HEAD || !file.subarray(0, 8).equals(MAGIC)) return 'bad magic';
  const metaBytes = file.readUInt32LE(8);
  if (metaBytes > MAX_META_BYTES || HEAD + metaBytes > file.length) return `entry length ${metaBytes} out of range`;
  let meta: Meta;
  try {
    meta = JSON.parse(file.subarray(HEAD, HEAD + metaBytes).toString('utf8')) as Meta;
  } catch {
    return 'unreadable entry';
  }
  if (meta.identity !== identity) return `identity ${String(meta.identity)}, expected ${identity}`;
  const wasm = file.subarray(HEAD + metaBytes);
  if (wasm.length !== meta.wasmBytes) return `module of ${wasm.length} bytes, expected ${meta.wasmBytes}`;
  if (sha256(wasm) !== meta.wasmSha256) return 'module checksum mismatch';
  if (!Array.isArray(meta.mutableGlobals)) return 'no list of globals';
  return { wasm: new Uint8Array(wasm), mutableGlobals: meta.mutableGlobals };
}

/** The cached entry for `identity`, or undefined (none, or one not to be trusted: traced). */
export async function readCacheEntry(dir: string, identity: string): Promise<CacheEntry | undefined> {
  let file: Buffer;
  try {
    file = await readFile(cacheFile(dir, identity));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') trace('cannot read %s: %s', cacheFile(dir, identity), (err as Error).message);
    return undefined;
  }
  const entry = decodeEntry(identity, file);
  if (typeof entry === 'string') {
    trace('damaged entry %s (%s): rebuilding it', cacheFile(dir, identity), entry);
    return undefined;
  }
  return entry;
}

/** Store the entry for `identity` (a temporary file renamed over it). */
export async function writeCacheEntry(dir: string, identity: string, entry: CacheEntry): Promise<void> {
  await mkdir(dir, { recursive: true });
  const target = cacheFile(dir, identity);
  const temp = `${target}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    await writeFile(temp, encodeEntry(identity, entry));
    await rename(temp, target);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
}
