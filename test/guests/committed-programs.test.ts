/**
 * The committed programs of guests/ are what guests/build.mjs built: each
 * file's SHA-256 equals the one the script recorded in guests/SHA256SUMS
 * (a rebuild needs a compiler; `node guests/build.mjs --check` compares a
 * fresh build byte for byte). And each has the shape the runner expects: a
 * WASI preview 1 command, a memory of its own starting at 128 KiB with no
 * maximum, and only the pinned features.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import binaryen from 'binaryen';
import { fileLimit } from '../waits.js';
import { GUESTS_DIR } from './wasi-run.js';

fileLimit(import.meta.url, 60_000);

/** WebAssembly.Module's static reflection, which @types/node 20 does not declare. */
interface Descriptor { readonly module?: string; readonly name: string; readonly kind: string }
const ModuleReflection = WebAssembly.Module as unknown as {
  imports(m: WebAssembly.Module): Descriptor[];
  exports(m: WebAssembly.Module): Descriptor[];
};

const PROGRAMS = ['sqlite-load', 'zstd-roundtrip', 'store-dense', 'call-dense', 'moments'];

/** guests/SHA256SUMS as file name -> hex digest (`sha256sum -c` reads the same lines). */
function recordedSums(): Map<string, string> {
  const text = readFileSync(join(GUESTS_DIR, 'SHA256SUMS'), 'utf8');
  return new Map(text.trimEnd().split('\n').map((line) => {
    const m = /^([0-9a-f]{64}) {2}(\S+)$/.exec(line);
    assert.ok(m, `not a sha256sum line: '${line}'`);
    return [m[2], m[1]] as const;
  }));
}

function leb(bytes: Uint8Array, at: number): [value: number, next: number] {
  let value = 0;
  let shift = 0;
  for (;;) {
    const b = bytes[at++];
    value += (b & 0x7f) * 2 ** shift;
    shift += 7;
    if ((b & 0x80) === 0) return [value, at];
  }
}

/** The limits of the module's own memory (section 5), in 64 KiB pages. */
function memoryLimits(bytes: Uint8Array): { initial: number; maximum?: number; shared: boolean } {
  let at = 8;
  while (at < bytes.length) {
    const id = bytes[at];
    const [size, body] = leb(bytes, at + 1);
    if (id === 5) {
      const [count, flagsAt] = leb(bytes, body);
      assert.equal(count, 1, 'one memory');
      const flags = bytes[flagsAt];
      const [initial, next] = leb(bytes, flagsAt + 1);
      return { initial, maximum: flags & 1 ? leb(bytes, next)[0] : undefined, shared: (flags & 2) !== 0 };
    }
    at = body + size;
  }
  throw new Error('no memory section');
}

test('guests/SHA256SUMS records every committed program, and each file has the recorded SHA-256', () => {
  const sums = recordedSums();
  const committed = readdirSync(GUESTS_DIR).filter((f) => f.endsWith('.wasm')).sort();
  assert.deepEqual(committed, PROGRAMS.map((p) => `${p}.wasm`).sort());
  assert.deepEqual([...sums.keys()].sort(), committed);
  for (const file of committed) {
    const actual = createHash('sha256').update(readFileSync(join(GUESTS_DIR, file))).digest('hex');
    assert.equal(actual, sums.get(file), `${file}: SHA-256 ${actual}, recorded ${sums.get(file)}`);
  }
  const script = readFileSync(join(GUESTS_DIR, 'build.mjs'), 'utf8');
  assert.deepEqual([...script.matchAll(/\{ name: '([a-z-]+)'/g)].map((m) => m[1]).sort(), [...PROGRAMS].sort(),
    'the programs the build script builds are the committed ones');
  for (const p of PROGRAMS) assert.ok(readFileSync(join(GUESTS_DIR, `${p}.c`), 'utf8').length > 0, `${p}.c is committed`);
});

test('each program is a WASI preview 1 command with a memory of 128 KiB, no maximum, not shared', () => {
  for (const p of PROGRAMS) {
    const bytes = readFileSync(join(GUESTS_DIR, `${p}.wasm`));
    const module = new WebAssembly.Module(bytes);
    const imports = ModuleReflection.imports(module);
    assert.deepEqual([...new Set(imports.map((i) => i.module))], ['wasi_snapshot_preview1'], `${p} imports only WASI`);
    assert.ok(imports.every((i) => i.kind === 'function'), `${p} imports only functions (its memory is its own)`);
    const exports = ModuleReflection.exports(module).map((e) => `${e.kind} ${e.name}`).sort();
    assert.deepEqual(exports, ['function _start', 'memory memory'], `${p} exports`);
    assert.deepEqual(memoryLimits(bytes), { initial: 2, maximum: undefined, shared: false }, `${p} memory`);
  }
});

test('each program uses only the pinned features: no threads, exceptions, tail calls, SIMD, reference types or multivalue', () => {
  const F = binaryen.Features;
  const pinned = F.MVP | F.MutableGlobals | F.SignExt | F.BulkMemory | F.BulkMemoryOpt | F.NontrappingFPToInt;
  for (const p of PROGRAMS) {
    const module = binaryen.readBinary(readFileSync(join(GUESTS_DIR, `${p}.wasm`)));
    try {
      module.setFeatures(pinned);
      assert.ok(module.validate(), `${p} validates with the pinned features only`);
    } finally {
      module.dispose();
    }
  }
});
