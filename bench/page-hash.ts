/**
 * Why the verify digest hashes pages with page-hash.ts: per 4 KiB page, the
 * SIMD page hash against SHA-256 through `createHash` (a call per page, as
 * an incremental digest needs) and against the frame check's page sum
 * (page-checksum.ts, the floor: one read of the page), in one run.
 *
 *   node dist/bench/page-hash.js     (a few seconds; prints GB/s, median (min-max) of 5 runs)
 */
import { createHash, randomFillSync } from 'node:crypto';
import { PAGE_SIZE } from '../src/memory/page.js';
import { fmt, repeat, timeMs } from '../src/bench/stats.js';
import { pageSummer } from '../src/wire/page-checksum.js';
import { pageHasher } from '../src/wire/page-hash.js';

const PAGES = 4096; // 16 MiB: the size of a few send slots, in cache as the sender's copy is not always
const RUNS = 5;
const memory = new WebAssembly.Memory({ initial: (PAGES * PAGE_SIZE) / 65536, maximum: (PAGES * PAGE_SIZE) / 65536, shared: true });
const bytes = Buffer.from(memory.buffer);
randomFillSync(bytes);
const terms = new Uint32Array(PAGES * 4);
const hash = pageHasher(memory);
const sum = pageSummer(memory);

const gbps = (reps: number, fn: () => void) => () => (reps * PAGES * PAGE_SIZE) / timeMs(fn) / 1e6;
const rows: [string, () => number][] = [
  ['page hash (WebAssembly SIMD, 128 bits)', gbps(10, () => {
    for (let r = 0; r < 10; r++) for (let p = 0; p < PAGES; p++) hash(p * PAGE_SIZE, p, 0, terms, p * 4);
  })],
  ['SHA-256 per page (createHash)', gbps(1, () => {
    for (let p = 0; p < PAGES; p++) createHash('sha256').update(bytes.subarray(p * PAGE_SIZE, (p + 1) * PAGE_SIZE)).digest();
  })],
  ['SHA-256 over 16 MiB at once', gbps(4, () => {
    for (let r = 0; r < 4; r++) createHash('sha256').update(bytes).digest();
  })],
  ['page sum (the frame check, one read)', gbps(10, () => {
    for (let r = 0; r < 10; r++) for (let p = 0; p < PAGES; p++) sum(p * PAGE_SIZE, PAGE_SIZE);
  })],
];
for (const [what, run] of rows) console.log(`${what}: ${fmt(repeat(RUNS, run), 2)} GB/s`);
