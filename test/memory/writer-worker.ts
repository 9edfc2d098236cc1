/**
 * Test helper thread: in `rounds` rounds, writes `writesPerRound` random
 * pages of a RAM block (a 32-bit word at a random offset: the data store,
 * then the mark), then waits at a barrier so the main thread can check its
 * copy while nobody writes. Posts the bitmap of pages it touched at the end.
 *
 * Barrier words (Int32 in `barrier`): [0] writers arrived, [1] round open.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { markPage } from '../../src/memory/dirty-log.js';
import { RamBlock, type RamBlockShared } from '../../src/memory/ram-block.js';

interface Init {
  block: RamBlockShared;
  barrier: SharedArrayBuffer;
  rounds: number;
  writesPerRound: number;
  seed: number;
  id: number;
}
const { block, barrier, rounds, writesPerRound, seed, id } = workerData as Init;
const ram = new RamBlock(block);
const sync = new Int32Array(barrier);
const u32 = new Uint32Array(ram.memory.buffer, 0, ram.byteLength / 4);
const touched = new Int32Array(Math.ceil(ram.pages / 32));
let x = seed >>> 0 || 1;
for (let round = 0; round < rounds; round++) {
  for (let i = 0; i < writesPerRound; i++) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    const page = x % ram.pages;
    const word = (x >>> 20) & 1023;
    u32[page * 1024 + word] = ((id << 28) | ((round * writesPerRound + i) & 0x0fffffff)) >>> 0; // data store ...
    markPage(ram.log.producer, page); // ... then the mark
    touched[page >>> 5] |= 1 << (page & 31);
  }
  Atomics.add(sync, 0, 1);
  Atomics.notify(sync, 0);
  Atomics.wait(sync, 1, round); // until the main thread opens round + 1
}
parentPort!.postMessage(touched);
