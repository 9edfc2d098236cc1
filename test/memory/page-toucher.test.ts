/**
 * The touch plan (page-toucher.ts): exactly the wanted pages are touched,
 * never more than the budget, a stop holds; and a touch never loses a
 * concurrent write (the locked add of 0), checked on contents with the
 * toucher and a writer on the same words at once.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { TOUCH_CHUNK_PAGES, TouchPlan } from '../../src/memory/page-toucher.js';
import { bounded, fileLimit } from '../waits.js';

fileLimit(import.meta.url, 60_000);

const memoryOf = (pages: number) => {
  const units = Math.ceil(pages / 16);
  return new WebAssembly.Memory({ initial: units, maximum: units, shared: true });
};

/** Two blocks, the second not a whole number of chunks, with scattered ranges wanted. */
function plan(): { plan: TouchPlan; wanted: Set<string> } {
  const blocks = [{ memory: memoryOf(1200), pages: 1200 }, { memory: memoryOf(700), pages: 700 }];
  const p = TouchPlan.create(blocks);
  const wanted = new Set<string>();
  const want = (b: number, first: number, count: number) => {
    p.want(b, first, count);
    for (let q = first; q < first + count; q++) wanted.add(`${b}:${q}`);
  };
  want(0, 0, 1);
  want(0, 3, 40);
  want(0, 511, 2); // across a chunk's edge
  want(0, 1100, 100); // to the block's end
  want(1, 5, 1);
  want(1, 600, 99);
  return { plan: p, wanted };
}

function touchedSet(p: TouchPlan, pages: readonly number[]): Set<string> {
  const out = new Set<string>();
  pages.forEach((n, b) => {
    for (let q = 0; q < n; q++) if (p.isTouched(b, q)) out.add(`${b}:${q}`);
  });
  return out;
}

test('exactly the wanted pages are touched, counted once each, and their contents stay as they were', () => {
  const { plan: p, wanted } = plan();
  const words = new Int32Array(p.shared.blocks[0].memory.buffer);
  words[3 * 1024] = 0x1234_5678;
  p.arm(1_000_000);
  assert.equal(p.run(), wanted.size);
  assert.equal(p.touchedPages, wanted.size);
  assert.deepEqual(touchedSet(p, [1200, 700]), wanted);
  assert.equal(words[3 * 1024], 0x1234_5678, 'a touch adds 0');
  assert.equal(p.capped, false);
});

test('the budget caps the pages touched exactly, and says so; a stop before the first chunk touches nothing', () => {
  const { plan: p } = plan();
  p.arm(37);
  assert.equal(p.run(), 37);
  assert.equal(p.touchedPages, 37);
  assert.equal(p.capped, true);
  assert.equal(p.run(), 0, 'a second run finds the budget spent');
  const { plan: q } = plan();
  q.arm(1_000_000);
  q.stop();
  assert.equal(q.run(), 0);
  assert.equal(q.touchedPages, 0);
});

test('chunks are claimed from the top of RAM down (the loader writes from page 0 up)', () => {
  const { plan: p } = plan();
  p.arm(1_000_000);
  const order: string[] = [];
  p.run((b, first) => order.push(`${b}:${first}`));
  assert.deepEqual(order, ['1:512', '1:0', '0:1024', '0:512', '0:0']);
  assert.equal(TOUCH_CHUNK_PAGES, 512);
});

test('a toucher and a writer on the same words at once: the writer always reads back what it wrote (no write lost)', async () => {
  const pages = 16;
  const memory = memoryOf(pages);
  const stop = new SharedArrayBuffer(8);
  const worker = new Worker(new URL('./toucher-worker.js', import.meta.url), { workerData: { memory, pages, stop } });
  try {
    const words = new Int32Array(memory.buffer, 0, pages * 1024);
    const touches = bounded('the toucher to end', new Promise<number>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    }), 50_000);
    const flag = new Int32Array(stop);
    // Wait until it touches, then write while it makes 20,000 more rounds over the pages: the two really overlap.
    await bounded('the toucher to start', new Promise<void>((resolve) => {
      const poll = () => (Atomics.load(flag, 1) > 0 ? resolve() : setImmediate(poll));
      poll();
    }), 10_000);
    const until = Atomics.load(flag, 1) + 20_000;
    let lost = 0;
    let writes = 0;
    let round = 0;
    while (Atomics.load(flag, 1) < until) {
      round++;
      for (let p = 0; p < pages; p++) {
        const at = p * 1024;
        const value = (round << 4) | p;
        words[at] = value; // a plain store, as the loader's copy
        writes++;
        if (Atomics.load(words, at) !== value) lost++;
      }
    }
    Atomics.store(new Int32Array(stop), 0, 1);
    const touched = await touches;
    assert.ok(touched > 0, 'the toucher ran');
    assert.equal(lost, 0, `${lost} of ${writes} writes read back older values while ${touched} touches ran`);
    for (let p = 0; p < pages; p++) assert.equal(words[p * 1024], (round << 4) | p, `page ${p} holds the last write`);
  } finally {
    await worker.terminate();
  }
});
