/**
 * The program's identity and the cache of instrumented modules: the
 * identity follows the documented formula (so it is the same in every
 * process), changes with the bytes and the options in force, and keys a
 * cache whose damaged entries are rebuilt, never trusted.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { DEFAULT_UNWIND_BUFFER_BYTES } from '../../src/wasm/layout.js';
import { loadProgram } from '../../src/wasm/instrument.js';
import { cacheFile, decodeEntry, defaultCacheDir, encodeEntry } from '../../src/wasm/module-cache.js';
import { binaryenVersion, canonicalJson, programIdentity, REWRITE_VERSION } from '../../src/wasm/program-identity.js';
import { fileLimit } from '../waits.js';
import { exportsOf, instantiate, program, wat } from './harness.js';

fileLimit(import.meta.url, 60_000);

const dir = mkdtempSync(join(tmpdir(), 'ferry-wasm-cache-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const BYTES = wat(program('(func (export "_start") (i32.store (i32.const 0) (i32.const 42)))', '1 4'));
const OPTIONS = { maxMemoryBytes: 4 * 65536, unwindBufferBytes: 4096 };

test('the identity is SHA-256 of (length, bytes, length, options JSON, Binaryen version), as documented', () => {
  const json = Buffer.from(`{"maxMemoryBytes":262144,"rewrite":${REWRITE_VERSION},"unwindBufferBytes":4096}`);
  const expected = createHash('sha256').update('ferry-wasm-program\0')
    .update(Buffer.from([BYTES.length & 0xff, BYTES.length >>> 8, 0, 0, 0, 0, 0, 0])).update(BYTES)
    .update(Buffer.from([json.length, 0, 0, 0])).update(json)
    .update(binaryenVersion()).digest('hex');
  assert.equal(programIdentity(BYTES, OPTIONS), expected);
  assert.equal(binaryenVersion(), '132.0.0');
  assert.equal(canonicalJson({ b: 1, a: [{ d: 2, c: undefined }] }), '{"a":[{"d":2}],"b":1}');
});

test('the identity changes with the bytes, the options and Binaryen\'s version, and with nothing else', () => {
  const base = programIdentity(BYTES, OPTIONS);
  const other = Uint8Array.from(BYTES);
  other[other.length - 1] ^= 1;
  assert.notEqual(programIdentity(other, OPTIONS), base);
  assert.notEqual(programIdentity(BYTES, { ...OPTIONS, maxMemoryBytes: 3 * 65536 }), base);
  assert.notEqual(programIdentity(BYTES, { ...OPTIONS, unwindBufferBytes: 8192 }), base);
  assert.notEqual(programIdentity(BYTES, OPTIONS, '133.0.0'), base);
  assert.equal(programIdentity(Uint8Array.from(BYTES), { unwindBufferBytes: 4096, maxMemoryBytes: 4 * 65536 }), base);
});

test('loadProgram: a cold load fills the cache, a warm one returns the same identity and a working module', async () => {
  const cold = await loadProgram(BYTES, OPTIONS, { dir });
  assert.equal(cold.identity, programIdentity(BYTES, OPTIONS));
  assert.ok(existsSync(cacheFile(dir, cold.identity)));
  const warm = await loadProgram(BYTES, OPTIONS, { dir });
  assert.equal(warm.identity, cold.identity);
  assert.deepEqual(warm.mutableGlobals, cold.mutableGlobals);
  assert.deepEqual(exportsOf(warm.module), exportsOf(cold.module));
  const run = instantiate(warm);
  run.exports._start();
  assert.equal(run.view.getInt32(0, true), 42);
  assert.deepEqual([...run.u8.subarray(run.layout.marksOffset, run.layout.marksOffset + 2)], [1, 0], 'the warm module marks');
  const defaults = await loadProgram(BYTES, { unwindBufferBytes: 4096 }, { dir });
  assert.equal(defaults.identity, cold.identity, 'the declared maximum by default is the same options in force');
});

test('a damaged cache entry is rebuilt, never trusted', async () => {
  const { identity } = await loadProgram(BYTES, OPTIONS, { dir });
  const file = cacheFile(dir, identity);
  const good = readFileSync(file);
  for (const damage of [
    (b: Buffer) => { b[b.length - 10] ^= 0xff; },   // the module's bytes
    (b: Buffer) => { b[0] = 0x58; },                // the magic
    (b: Buffer) => b.subarray(0, 40),               // truncated
  ]) {
    const bad = Buffer.from(good);
    const written = damage(bad) ?? bad;
    writeFileSync(file, written);
    assert.equal(typeof decodeEntry(identity, readFileSync(file)), 'string', 'the damage is detected');
    const again = await loadProgram(BYTES, OPTIONS, { dir });
    const run = instantiate(again);
    run.exports._start();
    assert.equal(run.view.getInt32(0, true), 42);
    assert.ok(readFileSync(file).equals(good), 'the entry was written anew');
  }
  assert.deepEqual(readdirSync(dir).filter((f) => f.endsWith('.tmp')), [], 'no temporary file is left');
});

test('the cache format checks identity and checksum; `null` means no cache; the default directory follows FERRY_CACHE_DIR', async () => {
  const entry = { wasm: Uint8Array.from([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]), mutableGlobals: [{ exportName: '__ferry_global_0', type: 'i32' as const }] };
  const bytes = encodeEntry('abc', entry);
  assert.deepEqual(decodeEntry('abc', bytes), entry);
  assert.match(decodeEntry('abd', bytes) as string, /identity abc, expected abd/);
  const saved = process.env.FERRY_CACHE_DIR;
  const envDir = mkdtempSync(join(tmpdir(), 'ferry-wasm-env-'));
  try {
    process.env.FERRY_CACHE_DIR = envDir;
    assert.equal(defaultCacheDir(), envDir);
    await loadProgram(BYTES, OPTIONS, null);
    assert.deepEqual(readdirSync(envDir), [], 'null: no cache at all');
    const { identity } = await loadProgram(BYTES, OPTIONS);
    assert.deepEqual(readdirSync(envDir), [`${identity}.wasm-cache`], 'undefined: the default directory');
    delete process.env.FERRY_CACHE_DIR;
    assert.equal(defaultCacheDir(), join(homedir(), '.cache', 'ferry', 'wasm'));
  } finally {
    if (saved === undefined) delete process.env.FERRY_CACHE_DIR;
    else process.env.FERRY_CACHE_DIR = saved;
    rmSync(envDir, { recursive: true, force: true });
  }
  assert.equal(DEFAULT_UNWIND_BUFFER_BYTES, 1024 * 1024);
});
