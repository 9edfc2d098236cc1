import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { forEachSetBit } from '../../src/memory/bits.js';
import { RamBlock } from '../../src/memory/ram-block.js';
import { fileLimit } from '../waits.js';

fileLimit(import.meta.url, 60_000);

const PAGES = 1024; // 4 MiB: writers collide on pages and words often
const WRITERS = 2;
const ROUNDS = 250;
const WRITES_PER_ROUND = 2048; // 2 x 250 x 2048 = 1.02 M writes

test('invariant 1 on contents: a client copying dirty pages after each sync holds an exact copy of RAM', async () => {
  const block = RamBlock.create('ram0', PAGES * 4096);
  const client = block.log.register();
  const copy = new Uint8Array(block.byteLength);
  const out = new Int32Array(PAGES / 32);
  const copyTaken = () => {
    client.syncAndTake(0, PAGES, out);
    forEachSetBit(out, 0, out.length, 0, (p) => copy.set(block.bytes.subarray(p * 4096, (p + 1) * 4096), p * 4096));
  };
  const barrier = new Int32Array(new SharedArrayBuffer(8));
  const workers = Array.from({ length: WRITERS }, (_, id) => new Worker(new URL('./writer-worker.js', import.meta.url), {
    workerData: { block: block.toShared(), barrier: barrier.buffer, rounds: ROUNDS, writesPerRound: WRITES_PER_ROUND, seed: 12345 + id * 7919, id: id + 1 },
  }));
  const touched = workers.map((w) => new Promise<Int32Array>((resolve, reject) => {
    w.once('message', resolve);
    w.once('error', reject);
  }));

  let concurrentHarvests = 0;
  let mismatches = 0;
  for (let round = 0; round < ROUNDS; round++) {
    // Harvest and copy while the writers write (bounded: the writers finish a round).
    for (let spins = 0; Atomics.load(barrier, 0) < (round + 1) * WRITERS && spins < 10_000_000; spins++) {
      copyTaken();
      concurrentHarvests++;
    }
    assert.equal(Atomics.load(barrier, 0), (round + 1) * WRITERS, 'writers reached the barrier');
    copyTaken(); // nobody writes now: one last sync, then the copy must equal RAM
    if (Buffer.compare(copy, block.bytes) !== 0) mismatches++;
    Atomics.store(barrier, 1, round + 1);
    Atomics.notify(barrier, 1);
  }
  const bitmaps = await Promise.all(touched);
  assert.equal(mismatches, 0, `rounds whose copy differed from RAM: ${mismatches} of ${ROUNDS}`);
  assert.ok(concurrentHarvests > ROUNDS, `harvested while writers wrote (${concurrentHarvests} times)`);

  // Ever written covers exactly the pages some writer touched.
  const union = new Int32Array(PAGES / 32);
  for (const b of bitmaps) for (let i = 0; i < union.length; i++) union[i] |= b[i];
  block.log.sync();
  assert.deepEqual([...block.log.everWrittenWords], [...union]);
  await Promise.all(workers.map((w) => w.terminate()));
});
