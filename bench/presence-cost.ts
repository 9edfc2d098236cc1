/**
 * What post-copy's presence check (src/memory/guest-memory.ts: one
 * Atomics.load of the present word and a branch per access) costs a guest
 * whose pages are all present, against main's access path without it.
 *
 *   npx tsc -p . && node dist/bench/presence-cost.js      (--json for JSON)
 *
 * Variants, each in a fresh worker (its own JIT feedback, so no call site
 * is shared between them):
 *   main       main's GuestMemory access path, copied below (no check)
 *   local      this GuestMemory without a presence map (a local map of ones: the main thread's view)
 *   shared     this GuestMemory with a shared presence map, every page present (a vCPU's view)
 * Loads: the sweep workload's step (two words per page, sequential, 64 MiB),
 * and random read-modify-writes of one word (the touch workload's access).
 * Figures are medians of 5 runs with (min-max); a ratio near 1.00 is the goal.
 */
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { fmt, repeat, timeMs, type Sample } from '../src/bench/stats.js';
import { markPage } from '../src/memory/dirty-log.js';
import { GuestMemory } from '../src/memory/guest-memory.js';
import { PAGE_SIZE } from '../src/memory/page.js';
import { PresenceMap } from '../src/memory/presence-map.js';
import { RamBlock } from '../src/memory/ram-block.js';
import { SweepWorkload } from '../src/guest/workloads/sweep.js';
import { xorshift32 } from '../src/guest/workloads/prng.js';

type Variant = 'main' | 'local' | 'shared';
type Load = 'sweep' | 'rmw';
const PAGES = (64 * 1024 * 1024) / PAGE_SIZE;
const WORDS = PAGE_SIZE / 4;
const RUNS = 5;

/** main's GuestMemory access path (one block), without the presence check. */
class MainGuestMemory {
  readonly totalPages: number;
  private readonly u32: Uint32Array;
  private readonly producer: Int32Array;
  constructor(block: RamBlock) {
    this.totalPages = block.pages;
    this.u32 = new Uint32Array(block.memory.buffer, 0, block.pages * WORDS);
    this.producer = block.log.producer;
  }
  blockOf(page: number): number {
    if (page < 0 || page >= this.totalPages) throw new RangeError(`page ${page}`);
    return 0;
  }
  readU32(page: number, word: number): number {
    this.blockOf(page);
    return this.u32[page * WORDS + word];
  }
  storeU32(page: number, word: number, value: number): void {
    this.blockOf(page);
    this.u32[page * WORDS + word] = value;
    markPage(this.producer, page);
  }
  storeWords(page: number, word: number, stride: number, values: Uint32Array): void {
    this.blockOf(page);
    let at = page * WORDS + word;
    for (let i = 0; i < values.length; i++, at += stride) this.u32[at] = values[i];
    markPage(this.producer, page);
  }
}

function memoryFor(variant: Variant): GuestMemory {
  const block = RamBlock.create('ram0', PAGES * PAGE_SIZE);
  if (variant === 'main') return new MainGuestMemory(block) as unknown as GuestMemory;
  return new GuestMemory([block], variant === 'shared' ? PresenceMap.create(PAGES) : undefined);
}

/** Millions of page accesses per second for `load` over `mem`. */
function measure(mem: GuestMemory, load: Load): number {
  const count = 20_000_000;
  if (load === 'sweep') {
    const sweep = SweepWorkload.create({ kind: 'sweep' }, mem.totalPages);
    return count / timeMs(() => {
      for (let n = 0; n < count; n += 64) sweep.step(mem, 0, 64);
    }) / 1e3;
  }
  let rng = 1;
  return count / timeMs(() => {
    for (let i = 0; i < count; i++) {
      rng = xorshift32(rng);
      const page = rng % PAGES;
      const word = rng >>> 22;
      mem.storeU32(page, word, mem.readU32(page, word) + 1);
    }
  }) / 1e3;
}

function runIn(variant: Variant, load: Load): Promise<Sample> {
  return new Promise((resolve, reject) => {
    const w = new Worker(new URL(import.meta.url), { workerData: { variant, load } });
    w.once('message', resolve);
    w.once('error', reject);
  });
}

async function main(): Promise<void> {
  const rows: { load: Load; variant: Variant; sample: Sample; ratio: number }[] = [];
  for (const load of ['sweep', 'rmw'] as const) {
    const base = await runIn('main', load);
    rows.push({ load, variant: 'main', sample: base, ratio: 1 });
    for (const variant of ['local', 'shared'] as const) {
      const s = await runIn(variant, load);
      rows.push({ load, variant, sample: s, ratio: s.median / base.median });
    }
  }
  if (process.argv.includes('--json')) {
    process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
    return;
  }
  process.stdout.write('| load | variant | M accesses/s | vs main |\n|---|---|---|---|\n');
  for (const r of rows) process.stdout.write(`| ${r.load} | ${r.variant} | ${fmt(r.sample)} | ${r.ratio.toFixed(2)} |\n`);
}

if (isMainThread) {
  await main();
} else {
  const { variant, load } = workerData as { variant: Variant; load: Load };
  const mem = memoryFor(variant);
  parentPort!.postMessage(repeat(RUNS, () => measure(mem, load))); // after one warm-up run
}
