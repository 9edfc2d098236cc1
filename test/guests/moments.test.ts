/**
 * guests/moments.wasm under node:wasi: every mode prints, byte for byte,
 * what the same computation done here prints (but `random`, whose values
 * come from random_get), twice the same.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileLimit } from '../waits.js';
import { FNV64_OFFSET, fnv1a64, fnv1a64U64, hex64, SplitMix64, u64 } from './splitmix64.js';
import { runWasi } from './wasi-run.js';

fileLimit(import.meta.url, 60_000);

const dirs: string[] = [];
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

const FNV64_PRIME = 0x100000001b3n;
const GOLDEN = 0x9e3779b97f4a7c15n;
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

/** Run `moments ARGS` twice; its output, checked to be the same both times and to exit 0. */
async function moments(args: string[], preopens?: Record<string, string>): Promise<string> {
  const first = await runWasi('moments', args, { preopens });
  assert.equal(first.code, 0, first.stderr);
  const second = await runWasi('moments', args, { preopens });
  assert.equal(second.stdout, first.stdout, 'a second run prints the same bytes');
  return first.stdout;
}

function loopOutput(blocks: number): string {
  let x = 1n;
  let ck = FNV64_OFFSET;
  let out = '';
  for (let b = 1; b <= blocks; b++) {
    for (let i = 0; i < 1 << 20; i++) {
      x = u64(x * 6364136223846793005n + 1442695040888963407n);
      ck = u64((ck ^ (x >> 29n)) * FNV64_PRIME);
    }
    if (b % 64 === 0 || b === blocks) out += `loop ${b}/${blocks}: ${hex64(ck)}\n`;
  }
  return `${out}checksum ${hex64(ck)}\n`;
}

function deepOutput(depth: number, rounds: number): string {
  let out = '';
  const bottom = (round: number, acc: bigint): bigint => {
    out += `deep round ${round}: at the bottom, ${hex64(acc)}\n`;
    for (let i = 0; i < 1 << 18; i++) acc = u64((acc ^ (acc >> 31n)) * GOLDEN + BigInt(i));
    return acc;
  };
  const level = (round: number, d: number, acc: bigint, parity: number): bigint => {
    const salt = parity === 0 ? 0x1234n : 0x5678n;
    const mine = u64(acc * GOLDEN + BigInt(d) + salt);
    const below = d === 0 ? bottom(round, mine) : level(round, d - 1, mine, d & 1);
    return below ^ (mine >> 3n) ^ salt;
  };
  let ck = FNV64_OFFSET;
  for (let round = 1; round <= rounds; round++) {
    const r = level(round, depth, BigInt(round), depth & 1);
    ck = fnv1a64U64(ck, r);
    out += `deep round ${round}/${rounds}: depth ${depth}, ${hex64(r)}\n`;
  }
  return `${out}checksum ${hex64(ck)}\n`;
}

/** The blocks of `moments grow`: their sizes and hashes. */
function growBlocks(n: number): { size: number; hash: bigint }[] {
  const blocks: Uint8Array[] = [];
  for (let i = 0; i < n; i++) {
    const b = new Uint8Array(65536 + i * 4096).fill(i & 0xff);
    for (let p = 0; p < b.length; p += 4096) new DataView(b.buffer).setBigUint64(p, BigInt(i), true);
    if (i > 0) b.set(blocks[i - 1].subarray(0, 4096), b.length - 4096);
    blocks.push(b);
  }
  return blocks.map((b) => ({ size: b.length, hash: fnv1a64(FNV64_OFFSET, b) }));
}

test('moments loop: a checksum over 2^20 iterations per block, as computed here', async () => {
  assert.equal(await moments(['loop', '1']), loopOutput(1));
});

test('moments sleep: a line before each sleep, then the checksum', async () => {
  let ck = FNV64_OFFSET;
  let expected = '';
  for (let i = 1; i <= 3; i++) {
    expected += `sleep ${i}/3: 2 ms\n`;
    ck = fnv1a64U64(ck, i);
  }
  assert.equal(await moments(['sleep', '3', '2']), `${expected}checksum ${hex64(ck)}\n`);
});

test('moments output: lines of 100 bytes from its generator, and their hash', async () => {
  const prng = new SplitMix64(42n);
  let ck = FNV64_OFFSET;
  let expected = '';
  for (let i = 1; i <= 200; i++) {
    let line = `output ${String(i).padStart(8, '0')} `;
    while (line.length < 99) line += String.fromCharCode(97 + prng.below(26));
    line += '\n';
    ck = fnv1a64(ck, utf8(line));
    expected += line;
  }
  const out = await moments(['output', '200']);
  assert.equal(out, `${expected}checksum ${hex64(ck)}\n`);
  assert.ok(out.split('\n').slice(0, 200).every((l) => l.length === 99), 'every line is 100 bytes with its newline');
});

test('moments deep: a recursion DEPTH levels deep through indirect calls gives the result computed here', async () => {
  assert.equal(await moments(['deep', '12', '2']), deepOutput(12, 2));
});

test('moments grow: blocks that grow its memory, each hash as computed here, all checked again at the end', async () => {
  const blocks = growBlocks(6);
  const run = await runWasi('moments', ['grow', '6']);
  assert.equal(run.code, 0, run.stderr);
  const lines = run.stdout.trimEnd().split('\n');
  let total = 0;
  let ck = FNV64_OFFSET;
  let pages = 0;
  for (const [i, { size, hash }] of blocks.entries()) {
    total += size;
    ck = fnv1a64U64(ck, hash);
    const m = new RegExp(`^grow ${i + 1}/6: \\+${size} bytes, total ${total}, memory (\\d+) pages, ${hex64(hash)}$`).exec(lines[i]);
    assert.ok(m, `line ${i + 1}: ${lines[i]}`);
    assert.ok(Number(m[1]) > pages && Number(m[1]) * 65536 > total, `memory.size grows with every block: ${lines[i]}`);
    pages = Number(m[1]);
  }
  assert.deepEqual(lines.slice(6), [`grow verified: 6 blocks, ${total} bytes`, `checksum ${hex64(ck)}`]);
  assert.equal(run.memoryBytes, pages * 65536);
});

test('moments files: writes, reads, appends and renames in the preopened directory, and leaves the files', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-moments-'));
  dirs.push(dir);
  const prng = new SplitMix64(7n);
  let expected = '';
  let ck = FNV64_OFFSET;
  const contents: string[] = [];
  for (let i = 1; i <= 3; i++) {
    const written = `file ${i} written ${hex64(prng.next())}\n`;
    const whole = `${written}file ${i} appended\n`;
    expected += `read f000${i}.txt: ${written}read g000${i}.txt after rename: ${whole.length} bytes\n`;
    ck = fnv1a64(ck, utf8(whole));
    contents.push(whole);
  }
  expected += `files: 3 files read again, all equal\nchecksum ${hex64(ck)}\n`;
  assert.equal(await moments(['files', '/work', '3'], { '/work': dir }), expected);
  assert.deepEqual(readdirSync(dir).sort(), ['g0001.txt', 'g0002.txt', 'g0003.txt']);
  assert.deepEqual([1, 2, 3].map((i) => readFileSync(join(dir, `g000${i}.txt`), 'utf8')), contents);
});

test('moments random: values from random_get, different from one run to the next', async () => {
  const first = await runWasi('moments', ['random', '4']);
  const second = await runWasi('moments', ['random', '4']);
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stdout, /^(random [1-4]\/4: [0-9a-f]{16}\n){4}checksum [0-9a-f]{16}\n$/);
  assert.notEqual(second.stdout, first.stdout, 'node:wasi draws from the host: the values are not fixed');
});

test('moments refuses an unknown mode, a wrong number of arguments and a depth its stack cannot hold', async () => {
  const cases: [string[], RegExp][] = [
    [[], /^no mode given\n/],
    [['jump', '1'], /^unknown mode\n/],
    [['sleep', '1'], /^wrong number of arguments for this mode\n/],
    [['deep', '501', '1'], /^DEPTH must be in \[1, 500\], got 501\n/],
  ];
  for (const [args, message] of cases) {
    const run = await runWasi('moments', args);
    assert.equal(run.code, 2, args.join(' '));
    assert.match(run.stderr, message);
    assert.match(run.stderr, /usage: moments loop N \| sleep N MS/);
  }
});
