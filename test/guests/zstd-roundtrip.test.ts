/**
 * guests/zstd-roundtrip.wasm under node:wasi: deterministic, the data
 * really compressed, and the round trip checked (the program compares every
 * decompressed byte with the input and exits 1 on a difference).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fileLimit } from '../waits.js';
import { lastLine, runWasi, type WasiRun } from './wasi-run.js';

fileLimit(import.meta.url, 60_000);

const CHUNK = 256 * 1024;

interface Report { chunks: number[]; compressed: number; inputHash: string; outputHash: string }

/** The figures a run printed. */
function report(run: WasiRun): Report {
  assert.equal(run.code, 0, run.stderr);
  const chunks = [...run.stdout.matchAll(/^chunk (\d+): 262144 -> (\d+) bytes$/gm)].map((m, i) => {
    assert.equal(Number(m[1]), i, 'chunks in order');
    return Number(m[2]);
  });
  const compressed = /^compressed: (\d+) -> (\d+) bytes, frame xxh64 [0-9a-f]{16}$/m.exec(run.stdout);
  const hashes = /^xxh64 input ([0-9a-f]{16}) output ([0-9a-f]{16})$/m.exec(run.stdout);
  assert.ok(compressed && hashes, `figures missing in:\n${run.stdout}`);
  assert.equal(Number(compressed[1]), chunks.length * CHUNK);
  return { chunks, compressed: Number(compressed[2]), inputHash: hashes[1], outputHash: hashes[2] };
}

test('zstd-roundtrip prints the same bytes twice, compresses, and its round trip check passes', async () => {
  const first = await runWasi('zstd-roundtrip', ['2', '3', '5']);
  const second = await runWasi('zstd-roundtrip', ['2', '3', '5']);
  assert.equal(second.stdout, first.stdout);
  assert.match(first.stdout, /^zstd-roundtrip: zstd 1\.5\.7, 2 MiB at level 3, seed 5, chunks of 262144 bytes\n/);
  const r = report(first);
  assert.equal(r.chunks.length, 8);
  assert.equal(r.chunks.reduce((a, b) => a + b, 0), r.compressed, 'the chunks add up to the frame');
  assert.ok(r.compressed < 2 * 1024 * 1024 / 2, `${r.compressed} bytes: text-like data compresses at least 2:1`);
  assert.equal(r.outputHash, r.inputHash);
  assert.match(first.stdout, /^decompressed: 2097152 bytes, equal to the input$/m);
  assert.equal(lastLine(first.stdout), 'roundtrip: ok');
});

test('zstd-roundtrip: the level changes the frame but not the data, the seed changes the data', async () => {
  const fast = report(await runWasi('zstd-roundtrip', ['1', '1', '5']));
  const strong = report(await runWasi('zstd-roundtrip', ['1', '9', '5']));
  const other = report(await runWasi('zstd-roundtrip', ['1', '1', '6']));
  assert.equal(strong.inputHash, fast.inputHash);
  assert.ok(strong.compressed < fast.compressed, `level 9: ${strong.compressed} bytes, level 1: ${fast.compressed}`);
  assert.notEqual(other.inputHash, fast.inputHash);
});

test('zstd-roundtrip grows its memory as the frame grows, from 128 KiB', async () => {
  const small = await runWasi('zstd-roundtrip', ['1', '3', '1']);
  const large = await runWasi('zstd-roundtrip', ['8', '3', '1']);
  assert.equal(lastLine(large.stdout), 'roundtrip: ok');
  assert.ok(large.memoryBytes > small.memoryBytes + report(large).compressed / 2,
    `${large.memoryBytes} bytes for 8 MiB, ${small.memoryBytes} for 1 MiB`);
});

test('zstd-roundtrip refuses a level zstd does not have, naming it', async () => {
  const run = await runWasi('zstd-roundtrip', ['1', '23', '1']);
  assert.equal(run.code, 2);
  assert.match(run.stderr, /^LEVEL must be in \[1, 22\], got 23\nusage: zstd-roundtrip MIB LEVEL SEED\n$/);
});
