/**
 * DESIGN.md invariant 1 on contents for writers that mark through a RAM
 * block's mark map (plain byte stores; the ordering argument is in
 * src/memory/dirty-log.ts): writers store data, then the page's mark byte,
 * while this thread syncs and copies every dirty page in a loop; after the
 * writers stop and a last sync, the copy equals RAM. Once with plain JS
 * stores, once with the stores made by a WebAssembly module (`i32.store`
 * then `i32.store8`) over the block's own memory, as a rewritten guest does.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Worker } from 'node:worker_threads';
import binaryen from 'binaryen';
import { forEachSetBit, popcountWords } from '../../src/memory/bits.js';
import { markMapSupported } from '../../src/memory/mark-map.js';
import { RamBlock } from '../../src/memory/ram-block.js';
import { bounded, fileLimit } from '../waits.js';

fileLimit(import.meta.url, 90_000);

const PAGES = 1024; // 4 MiB: writers collide on pages, map words and bitmap words often
const WRITERS = 2;
const ROUNDS = 200;
const WRITES_PER_ROUND = 2048;

/**
 * run(x, count, pages, map, tag) -> x: `count` writes at pages of an
 * xorshift32 walk from `x` (mark-writer-worker.ts replays it), each the
 * data store, then the mark, in WebAssembly.
 */
const WRITER_WAT = `(module
  (import "env" "memory" (memory 1 65536 shared))
  (func (export "run") (param $x i32) (param $n i32) (param $pages i32) (param $map i32) (param $tag i32) (result i32)
    (local $page i32) (local $i i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $x (i32.xor (local.get $x) (i32.shl (local.get $x) (i32.const 13))))
        (local.set $x (i32.xor (local.get $x) (i32.shr_u (local.get $x) (i32.const 17))))
        (local.set $x (i32.xor (local.get $x) (i32.shl (local.get $x) (i32.const 5))))
        (local.set $page (i32.rem_u (local.get $x) (local.get $pages)))
        (i32.store
          (i32.shl (i32.add (i32.mul (local.get $page) (i32.const 1024)) (i32.and (i32.shr_u (local.get $x) (i32.const 20)) (i32.const 1023))) (i32.const 2))
          (i32.add (local.get $tag) (local.get $i)))
        (i32.store8 (i32.add (local.get $map) (local.get $page)) (i32.const 1))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (local.get $x)))`;

function writerModule(): Uint8Array {
  const module = binaryen.parseText(WRITER_WAT);
  try {
    module.setFeatures(binaryen.Features.Atomics);
    assert.ok(module.validate(), 'the writer module validates');
    return module.emitBinary();
  } finally {
    module.dispose();
  }
}

async function copyWhileWriting(wasm: Uint8Array | null): Promise<void> {
  const size = PAGES * 4096;
  const block = RamBlock.create('ram0', size, { tailBytes: PAGES, markMap: { offset: size } });
  const client = block.log.register();
  const copy = new Uint8Array(block.byteLength);
  const out = new Int32Array(PAGES / 32);
  const copyTaken = () => {
    client.syncAndTake(0, PAGES, out);
    forEachSetBit(out, 0, out.length, 0, (p) => copy.set(block.bytes.subarray(p * 4096, (p + 1) * 4096), p * 4096));
  };
  const barrier = new Int32Array(new SharedArrayBuffer(8));
  const workers = Array.from({ length: WRITERS }, (_, id) => new Worker(new URL('./mark-writer-worker.js', import.meta.url), {
    workerData: { block: block.toShared(), barrier: barrier.buffer, rounds: ROUNDS, writesPerRound: WRITES_PER_ROUND, seed: 4242 + id * 7919, id: id + 1, wasm },
  }));
  try {
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
    const bitmaps = await bounded('the writers\' bitmaps', Promise.all(touched), 30_000);
    assert.equal(mismatches, 0, `rounds whose copy differed from RAM: ${mismatches} of ${ROUNDS}`);
    assert.ok(concurrentHarvests > ROUNDS, `harvested while writers wrote (${concurrentHarvests} times)`);
    // Ever written covers exactly the pages some writer touched, counted exactly; the map is clean.
    const union = new Int32Array(PAGES / 32);
    for (const b of bitmaps) for (let i = 0; i < union.length; i++) union[i] |= b[i];
    block.log.sync();
    assert.deepEqual([...block.log.everWrittenWords], [...union]);
    assert.equal(block.log.everWrittenCount, popcountWords(union));
    assert.equal(client.dirtyPages, 0, 'nothing written since the last take');
    assert.ok(new Uint8Array(block.memory.buffer, size, PAGES).every((b) => b === 0), 'every mark harvested');
    assert.ok(Array.from(block.log.producer).every((w) => w === 0), 'nobody marked the producer bitmap');
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

test('the CPU check: the plain-store mark map is supported exactly on x86-64', () => {
  assert.equal(markMapSupported(), process.arch === 'x64');
});

test('invariant 1 with mark-map writers (plain JS stores): a client copying dirty pages after each sync holds an exact copy of RAM', async () => {
  await copyWhileWriting(null);
});

test('invariant 1 with mark-map writers (a WebAssembly module: i32.store, then i32.store8 of the mark): the copy equals RAM', async () => {
  await copyWhileWriting(writerModule());
});
