/**
 * Memory-layer micro-benchmark: dirty marks, syncs, dirty-page iteration and
 * zero scan, each beside the limit it chases, measured in the same run.
 *
 *   npm run bench:memory            (prints a Markdown table; --json for JSON)
 *
 * Figures are medians of several runs with (min-max).
 */
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import { forEachRun, forEachSetBit } from '../src/memory/bits.js';
import { DirtyLog, markPage } from '../src/memory/dirty-log.js';
import { PAGE_SIZE } from '../src/memory/page.js';
import { RamBlock } from '../src/memory/ram-block.js';
import { jsZeroScanner, simdZeroScanner } from '../src/memory/zero-scan.js';
import { fmt, repeat, summarize, timeMs, type Sample } from '../src/bench/stats.js';

const GiB = 1024 ** 3;
const RUNS = 5;
const rows: { what: string; figure: string; unit: string; note: string; sample: Sample }[] = [];
function row(what: string, sample: Sample, unit: string, note = '', digits = 2): void {
  rows.push({ what, figure: fmt(sample, digits), unit, note, sample });
  if (!process.argv.includes('--json')) process.stderr.write(`  ${what}: ${fmt(sample, digits)} ${unit}\n`);
}

async function markRates(): Promise<void> {
  const pages = 1 << 20; // a 4 GiB block's log
  const log = DirtyLog.create(pages);
  const count = 20_000_000;
  row('dirty marks, one writer (main thread, Atomics.or)', repeat(RUNS, () => {
    const words = log.producer;
    const ms = timeMs(() => {
      let page = 0;
      for (let i = 0; i < count; i++) {
        markPage(words, page);
        page += 97;
        if (page >= pages) page -= pages;
      }
    });
    return count / ms / 1e3;
  }), 'M marks/s');
  // What a 2 MiB summary level would cost writers: a second locked RMW per mark.
  const summary = new Int32Array(new SharedArrayBuffer(pages / 512 / 8 + 4));
  row('dirty marks with a summary bit too (two Atomics.or)', repeat(RUNS, () => {
    const words = log.producer;
    const ms = timeMs(() => {
      let page = 0;
      for (let i = 0; i < count; i++) {
        markPage(words, page);
        const chunk = page >>> 9;
        Atomics.or(summary, chunk >>> 5, 1 << (chunk & 31));
        page += 97;
        if (page >= pages) page -= pages;
      }
    });
    return count / ms / 1e3;
  }), 'M marks/s', 'the cost a summary level puts on every writer');
  const perWriter: number[] = [];
  for (let r = 0; r < 3; r++) {
    const results = await Promise.all([0, 1].map((w) => new Promise<number>((resolve, reject) => {
      const worker = new Worker(new URL('./mark-worker.js', import.meta.url), {
        workerData: { producer: log.toShared().producer, pages, count, offset: w * 13 },
      });
      worker.once('message', (m: { seconds: number }) => { resolve(count / m.seconds / 1e6); void worker.terminate(); });
      worker.once('error', reject);
    })));
    perWriter.push(...results);
  }
  row('dirty marks per writer, two writer threads at once', summarize(perWriter), 'M marks/s', 'same words contended');
}


function syncRates(): void {
  const block = 1 << 20; // 4 GiB of pages
  const log = DirtyLog.create(block, { maxClients: 1 });
  const client = log.register();
  const out = new Int32Array(block / 32);
  row('clean sync, 4 GiB block (1 M pages)', repeat(RUNS * 4, () => timeMs(() => log.sync())), 'ms', '', 4);
  const eight = DirtyLog.create(2 << 20, { maxClients: 1 });
  eight.register();
  row('clean sync, 8 GiB bitmap (2 M pages)', repeat(RUNS * 4, () => timeMs(() => eight.sync())), 'ms', '', 4);
  const range = 512; // one 2 MiB range
  row('sync+take of a fully dirty 2 MiB range (512 pages)', repeat(RUNS * 20, () => {
    log.markPages(4096, range);
    return timeMs(() => client.syncAndTake(4096, range, out)) * 1000;
  }), 'us', '', 2);
  row('sync+take of a fully dirty 64 MiB range (16 K pages)', repeat(RUNS * 4, () => {
    log.markPages(0, 16384);
    return timeMs(() => client.syncAndTake(0, 16384, out)) * 1000;
  }), 'us', '', 1);
  // 1 TiB of pages: 256 M bits = 32 MiB of bitmap, allocated on its own.
  const tib = DirtyLog.create(256 << 20, { maxClients: 1 });
  tib.register();
  const tibSync = repeat(RUNS, () => timeMs(() => tib.sync()));
  row('clean sync, 1 TiB-sized bitmap (256 M pages, 32 MiB)', tibSync, 'ms', 'target: well under a 100 ms rate-limit window', 2);
  const summaryWords = new Int32Array((256 << 20) / 512 / 32);
  row('clean scan of a 2 MiB-chunk summary for 1 TiB (64 KiB)', repeat(RUNS * 4, () => timeMs(() => {
    let n = 0;
    for (let i = 0; i < summaryWords.length; i++) if (summaryWords[i] !== 0) n++;
    if (n < 0) throw new Error('unreachable');
  })), 'ms', 'what a summary level would save per clean sync', 4);
}

function iterationRates(): void {
  const pages = 1 << 20;
  const words = new Int32Array(pages / 32);
  for (const density of [0.01, 0.5, 1]) {
    let x = 1;
    words.fill(0);
    for (let p = 0; p < pages; p++) {
      x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
      if ((x >>> 0) / 2 ** 32 < density) words[p >>> 5] |= 1 << (p & 31);
    }
    let sink = 0;
    row(`dirty-page iteration (forEachSetBit), ${density * 100} % dirty`, repeat(RUNS, () => {
      const ms = timeMs(() => forEachSetBit(words, 0, words.length, 0, (p) => { sink += p; }));
      return pages / ms / 1e3;
    }), 'M pages scanned/s');
    row(`dirty-run iteration (forEachRun), ${density * 100} % dirty`, repeat(RUNS, () => {
      const ms = timeMs(() => forEachRun(words, 0, words.length, 0, (f, c) => { sink += f + c; }));
      return pages / ms / 1e3;
    }), 'M pages scanned/s');
    if (sink === -1) console.log(sink);
  }
}

function zeroScanRates(): void {
  const size = 1 * GiB;
  const block = RamBlock.create('bench', size);
  const pages = size / PAGE_SIZE;
  block.bytes.fill(1); // commit every page (resident), then zero it
  block.bytes.fill(0);
  const simd = simdZeroScanner(block.memory)!;
  const js = jsZeroScanner(block.memory.buffer, size);
  const gbps = (ms: number) => size / ms / 1e6;
  row('zero scan, WebAssembly SIMD kernel, resident 1 GiB', repeat(RUNS, () => gbps(timeMs(() => {
    if (simd.zeroPages(0, pages) !== pages) throw new Error('not zero');
  }))), 'GB/s', 'target >= 20 GB/s');
  row('zero scan, JS Int32Array OR fallback', repeat(RUNS, () => gbps(timeMs(() => {
    if (js.zeroPages(0, pages) !== pages) throw new Error('not zero');
  }))), 'GB/s');
  const zero = Buffer.alloc(PAGE_SIZE);
  const buf = Buffer.from(block.memory.buffer, 0, size);
  row('zero scan, Buffer.compare per page', repeat(RUNS, () => gbps(timeMs(() => {
    for (let p = 0; p < pages; p++) if (buf.compare(zero, 0, PAGE_SIZE, p * PAGE_SIZE, (p + 1) * PAGE_SIZE) !== 0) throw new Error('x');
  }))), 'GB/s');
  // The limits: one core's bulk read bandwidth. memchr (Buffer.indexOf on
  // a zero buffer) reads one stream, as the scan does; memcmp reads two.
  row('bulk read limit: memchr over resident 1 GiB (one stream)', repeat(RUNS, () => gbps(timeMs(() => {
    if (buf.indexOf(1) !== -1) throw new Error('not zero');
  }))), 'GB/s', 'the zero scan\'s limit');
  const simdRow = rows.find((r) => r.what.startsWith('zero scan, WebAssembly'))!;
  const limitRow = rows[rows.length - 1];
  row('zero scan SIMD / one-stream read limit', summarize([simdRow.sample.median / limitRow.sample.median]), 'ratio', 'medians of this run');
  const other = Buffer.alloc(size);
  row('bulk read limit: memcmp of two resident 1 GiB buffers', repeat(RUNS, () => (2 * size) / timeMs(() => {
    if (Buffer.compare(buf, other) !== 0) throw new Error('differ');
  }) / 1e6), 'GB/s', 'two streams');
  const copy = new Uint8Array(size);
  row('page copy (4 KiB set), resident', repeat(RUNS, () => gbps(timeMs(() => {
    for (let p = 0; p < pages; p++) copy.set(block.bytes.subarray(p * PAGE_SIZE, (p + 1) * PAGE_SIZE), p * PAGE_SIZE);
  }))), 'GB/s');
  const fresh = RamBlock.create('fresh', size);
  row('zero scan of never-touched memory (page faults), 1 GiB, once', summarize([gbps(timeMs(() => {
    simdZeroScanner(fresh.memory)!.zeroPages(0, pages);
  }))]), 'GB/s', 'why never-written pages are skipped, not scanned');
}

async function main(): Promise<void> {
  const machine = `${os.cpus().length} x ${os.cpus()[0]?.model ?? '?'}, ${(os.totalmem() / GiB).toFixed(0)} GiB, Node ${process.version}`;
  process.stderr.write(`ferry memory benchmark on ${machine}\n`);
  await markRates();
  syncRates();
  iterationRates();
  zeroScanRates();
  if (process.argv.includes('--json')) {
    console.log(JSON.stringify({ machine, runs: RUNS, rows: rows.map(({ what, sample, unit, note }) => ({ what, ...sample, unit, note })) }, null, 2));
  } else {
    console.log(`Machine: ${machine}\n`);
    console.log('| measurement | median (min-max) | unit | note |\n|---|---|---|---|');
    for (const r of rows) console.log(`| ${r.what} | ${r.figure} | ${r.unit} | ${r.note} |`);
  }
}

await main();
