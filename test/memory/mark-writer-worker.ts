/**
 * Test helper thread: as writer-worker.ts, but it marks through the RAM
 * block's mark map (a plain byte store after the data store) instead of
 * the producer bitmap. `wasm` given: each round's writes are made by that
 * WebAssembly module over the block's own memory, its export
 * `run(x, count, pages, map, tag) -> x` (the same xorshift walk, an
 * `i32.store` of the data, then an `i32.store8` of the mark); otherwise by
 * plain stores through typed arrays. Posts the bitmap of pages it touched.
 *
 * Barrier words (Int32 in `barrier`): [0] writers arrived, [1] round open.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { RamBlock, type RamBlockShared } from '../../src/memory/ram-block.js';

interface Init {
  block: RamBlockShared;
  barrier: SharedArrayBuffer;
  rounds: number;
  writesPerRound: number;
  seed: number;
  id: number;
  wasm: Uint8Array | null;
}
const { block, barrier, rounds, writesPerRound, seed, id, wasm } = workerData as Init;
const ram = new RamBlock(block);
const map = ram.tail.markMap!.offset; // the options came with the shared block
const sync = new Int32Array(barrier);
const u32 = new Uint32Array(ram.memory.buffer, 0, ram.byteLength / 4);
const u8 = new Uint8Array(ram.memory.buffer);
const run = wasm === null ? null
  : (new WebAssembly.Instance(new WebAssembly.Module(wasm), { env: { memory: ram.memory } }).exports.run as (x: number, n: number, pages: number, map: number, tag: number) => number);
const touched = new Int32Array(Math.ceil(ram.pages / 32));
let x = seed >>> 0 || 1;
for (let round = 0; round < rounds; round++) {
  const tag = ((id << 28) | ((round * writesPerRound) & 0x0fffffff)) >>> 0;
  const from = x;
  if (run !== null) x = run(x, writesPerRound, ram.pages, map, tag) >>> 0;
  else {
    for (let i = 0; i < writesPerRound; i++) {
      x ^= x << 13; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
      const page = x % ram.pages;
      u32[page * 1024 + ((x >>> 20) & 1023)] = tag + i; // data store ...
      u8[map + page] = 1; // ... then the mark, both plain
    }
  }
  // The pages this round touched: the same walk again.
  for (let i = 0, y = from; i < writesPerRound; i++) {
    y ^= y << 13; y ^= y >>> 17; y ^= y << 5; y >>>= 0;
    const page = y % ram.pages;
    touched[page >>> 5] |= 1 << (page & 31);
  }
  Atomics.add(sync, 0, 1);
  Atomics.notify(sync, 0);
  Atomics.wait(sync, 1, round); // until the main thread opens round + 1
}
parentPort!.postMessage(touched);
