/**
 * guests/sqlite-load.wasm under node:wasi: deterministic, its queries agree
 * with its own model at every step (it exits 1 otherwise), and its final
 * figures equal a model of the same workload computed here, independently.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileLimit } from '../waits.js';
import { FNV64_OFFSET, fnv1a64U64, hex64, SplitMix64 } from './splitmix64.js';
import { lastLine, runWasi } from './wasi-run.js';

fileLimit(import.meta.url, 60_000);

const ROWS = 2500;
const SEED = 7;
const GROUPS = 7;

interface Figures { transfers: number; amountSum: number; accountsHash: string; checksum: string }

/** The workload of guests/sqlite-load.c replayed on plain arrays: its final figures. */
function model(rows: number, seed: number): Figures {
  const prng = new SplitMix64(BigInt(seed));
  const accounts = Math.max(10, Math.floor(rows / 50));
  const balance = new Array<number>(accounts + 1).fill(0);
  const moves = new Array<number>(accounts + 1).fill(0);
  for (let id = 1; id <= accounts; id++) balance[id] = prng.below(10000);
  const dst: number[] = [0];
  const inCount = new Array<number>(GROUPS).fill(0);
  const inSum = new Array<number>(GROUPS).fill(0);
  let amountSum = 0;
  for (let r = 1; r <= rows; r++) {
    const s = prng.below(accounts) + 1;
    const d = prng.below(accounts) + 1;
    const amount = prng.below(1000) + 1;
    const noteLength = 8 + prng.below(56);
    for (let i = 0; i < noteLength; i++) prng.next();
    dst.push(d);
    balance[s] -= amount; balance[d] += amount;
    moves[s]++; moves[d]++;
    inCount[d % GROUPS]++; inSum[d % GROUPS] += amount;
    amountSum += amount;
    if (r % 7 === 0) {
      const older = prng.below(r) + 1;
      amountSum++;
      inSum[dst[older] % GROUPS]++;
    }
  }
  let h = fnv1a64U64(fnv1a64U64(FNV64_OFFSET, rows), amountSum);
  for (let id = 1; id <= accounts; id++) h = fnv1a64U64(fnv1a64U64(h, balance[id]), moves[id]);
  const accountsHash = hex64(h);
  for (let g = 0; g < GROUPS; g++) {
    if (inCount[g] > 0) h = fnv1a64U64(fnv1a64U64(fnv1a64U64(h, g), inCount[g]), inSum[g]);
  }
  return { transfers: rows, amountSum, accountsHash, checksum: hex64(h) };
}

const dirs: string[] = [];
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

test('sqlite-load prints the same bytes twice, and its final figures equal the model computed here', async () => {
  const first = await runWasi('sqlite-load', [String(ROWS), String(SEED)]);
  const second = await runWasi('sqlite-load', [String(ROWS), String(SEED)]);
  assert.equal(first.code, 0, first.stderr);
  assert.equal(second.stdout, first.stdout);
  const lines = first.stdout.trimEnd().split('\n');
  assert.match(lines[0], /^sqlite-load: SQLite 3\.53\.2, 2500 rows, seed 7, 50 accounts$/);
  assert.equal(lines.filter((l) => l.startsWith('rows ')).length, Math.ceil(ROWS / 1000), 'a progress line per transaction of 1000 rows');
  assert.ok(lines.includes('self-check: ok, every result equals the driver\'s own model'));
  const expected = model(ROWS, SEED);
  assert.ok(lines.includes(`final: ${expected.transfers} transfers, amount sum ${expected.amountSum}, accounts hash ${expected.accountsHash}`),
    `no final line with the model's figures ${JSON.stringify(expected)} in:\n${first.stdout}`);
  assert.equal(lastLine(first.stdout), `checksum ${expected.checksum}`);
});

test('sqlite-load starts at 128 KiB and grows its memory as the database grows', async () => {
  const small = await runWasi('sqlite-load', ['200', '1']);
  const large = await runWasi('sqlite-load', ['20000', '1']);
  assert.equal(large.code, 0, large.stderr);
  assert.ok(small.memoryBytes > 128 * 1024, `${small.memoryBytes} bytes after 200 rows`);
  assert.ok(large.memoryBytes > 4 * small.memoryBytes, `${large.memoryBytes} bytes after 20000 rows, ${small.memoryBytes} after 200`);
  assert.equal(lastLine(large.stdout), `checksum ${model(20000, 1).checksum}`);
});

test('sqlite-load with a database file in a preopened directory prints what it prints in memory, and leaves a database', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-sqlite-load-'));
  dirs.push(dir);
  const inMemory = await runWasi('sqlite-load', ['1500', '3']);
  const inFile = await runWasi('sqlite-load', ['1500', '3', '/data/load.db'], { preopens: { '/data': dir } });
  assert.equal(inFile.code, 0, inFile.stderr);
  assert.equal(inFile.stdout, inMemory.stdout);
  assert.deepEqual(readdirSync(dir), ['load.db'], 'the database, and no journal left behind');
  assert.equal(readFileSync(join(dir, 'load.db')).subarray(0, 16).toString('latin1'), 'SQLite format 3\0');
  const again = await runWasi('sqlite-load', ['1500', '3', '/data/load.db'], { preopens: { '/data': dir } });
  assert.equal(again.stdout, inMemory.stdout, 'a second run over the same file starts afresh');
});

test('sqlite-load refuses bad arguments with a message naming the argument', async () => {
  const run = await runWasi('sqlite-load', ['many', '1']);
  assert.equal(run.code, 2);
  assert.match(run.stderr, /ROWS must be a decimal number, got 'many'/);
  assert.equal(run.stdout, '');
  const missing = await runWasi('sqlite-load', ['10']);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /expected 2 or 3 arguments\nusage: sqlite-load ROWS SEED \[DBFILE\]/);
});
