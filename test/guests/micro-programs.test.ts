/**
 * guests/store-dense.wasm and guests/call-dense.wasm under node:wasi: the
 * results they print equal what their loops compute, done again here.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fileLimit } from '../waits.js';
import { runWasi } from './wasi-run.js';

fileLimit(import.meta.url, 60_000);

const hex32 = (v: number): string => (v >>> 0).toString(16).padStart(8, '0');

/** guests/store-dense.c: the array after its last round, then its checksum. */
function storeDense(mib: number, rounds: number): string {
  const bytes = new Uint8Array(mib * 1024 * 1024);
  const words = new Uint32Array(bytes.buffer);
  const r = rounds - 1; // every round overwrites the whole array: only the last one shows
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i + r * 31) & 0xff;
  for (let j = 0; j < words.length; j += 2) words[j] = (Math.imul(j, 2654435761) + r) >>> 0;
  let ck = 2166136261;
  for (let j = 0; j < words.length; j++) ck = Math.imul(ck ^ words[j], 16777619);
  return hex32(ck);
}

const mix = (x: number, i: number): number => (Math.imul(x ^ i, 0x9e3779b1) + 0x7f4a7c15) >>> 0;
const OPS: ((y: number, i: number) => number)[] = [
  (y, i) => { const s = (y + i) >>> 0; return ((s << 13) | (s >>> 19)) >>> 0; },
  (y, i) => Math.imul(y ^ (i >>> 3), 0x85ebca6b) >>> 0,
  (y, i) => (((y - i) >>> 0) ^ (y >>> 16)) >>> 0,
  (y, i) => (mix(y, ~i >>> 0) + 1) >>> 0,
];

/** guests/call-dense.c: x and y after n iterations. */
function callDense(n: number): string {
  let x = 1;
  let y = 2;
  for (let i = 0; i < n; i++) {
    x = mix(x, i);
    y = OPS[(x >>> 7) & 3](y, i);
  }
  return `x ${hex32(x)} y ${hex32(y)}`;
}

test('store-dense prints the checksum of the array its stores leave, twice the same', async () => {
  const run = await runWasi('store-dense', ['2', '3']);
  const again = await runWasi('store-dense', ['2', '3']);
  assert.equal(run.code, 0, run.stderr);
  assert.equal(again.stdout, run.stdout);
  assert.equal(run.stdout, `store-dense: 2 MiB x 3 rounds, checksum ${storeDense(2, 3)}\n`);
  assert.ok(run.memoryBytes >= 2 * 1024 * 1024, `the array is in its memory: ${run.memoryBytes} bytes`);
});

test('call-dense prints the result of its calls, twice the same', async () => {
  const run = await runWasi('call-dense', ['100000']);
  const again = await runWasi('call-dense', ['100000']);
  assert.equal(run.code, 0, run.stderr);
  assert.equal(again.stdout, run.stdout);
  assert.equal(run.stdout, `call-dense: 100000 iterations, ${callDense(100000)}\n`);
});

test('the micro-programs refuse bad arguments, naming them', async () => {
  const store = await runWasi('store-dense', ['0', '1']);
  assert.equal(store.code, 2);
  assert.match(store.stderr, /^MIB must be in \[1, 2048\], got 0\n/);
  const call = await runWasi('call-dense', []);
  assert.equal(call.code, 2);
  assert.match(call.stderr, /^expected 1 argument\nusage: call-dense N\n$/);
});
