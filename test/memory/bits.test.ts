import assert from 'node:assert/strict';
import { test } from 'node:test';
import { forEachRun, forEachSetBit, popcount32, popcountWords } from '../../src/memory/bits.js';
import { fileLimit } from '../waits.js';

fileLimit(import.meta.url, 60_000);

function randomWords(n: number, density: number, seed: number): Int32Array {
  let x = seed;
  const rnd = () => {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    return x / 2 ** 32;
  };
  const w = new Int32Array(n);
  for (let i = 0; i < n * 32; i++) if (rnd() < density) w[i >>> 5] |= 1 << (i & 31);
  return w;
}

function naiveBits(words: Int32Array): number[] {
  const out: number[] = [];
  for (let i = 0; i < words.length * 32; i++) if ((words[i >>> 5] >>> (i & 31)) & 1) out.push(i);
  return out;
}

test('popcount32 counts set bits of any word', () => {
  for (const [w, n] of [[0, 0], [1, 1], [-1, 32], [0x80000000, 1], [0x55555555, 16], [0xf0f0, 8]] as const) {
    assert.equal(popcount32(w), n);
  }
});

test('forEachSetBit visits exactly the set bits, in order, at any density', () => {
  for (const density of [0, 0.01, 0.3, 0.97, 1]) {
    const words = randomWords(50, density, 7 + density * 100);
    const seen: number[] = [];
    const n = forEachSetBit(words, 0, words.length, 1000, (p) => seen.push(p - 1000));
    assert.deepEqual(seen, naiveBits(words));
    assert.equal(n, popcountWords(words));
  }
});

test('forEachRun coalesces runs across word boundaries and covers every set bit once', () => {
  for (const density of [0.05, 0.5, 0.9, 1]) {
    const words = randomWords(40, density, 3 + density * 10);
    const bits: number[] = [];
    let prevEnd = -2;
    forEachRun(words, 0, words.length, 0, (first, count) => {
      assert.ok(count > 0);
      assert.ok(first > prevEnd, 'runs are maximal: a gap separates them');
      for (let p = first; p < first + count; p++) bits.push(p);
      prevEnd = first + count;
    });
    assert.deepEqual(bits, naiveBits(words));
  }
  const full = new Int32Array(4).fill(-1);
  const runs: [number, number][] = [];
  forEachRun(full, 0, 4, 64, (f, c) => runs.push([f, c]));
  assert.deepEqual(runs, [[64, 128]]);
});

test('nextSetBit and nextClearBit find the next bit of each kind, within the end', async () => {
  const { nextClearBit, nextSetBit } = await import('../../src/memory/bits.js');
  const words = randomWords(6, 0.4, 99);
  const bits = naiveBits(words);
  const set = new Set(bits);
  for (const from of [0, 1, 31, 32, 33, 100, 150, 191]) {
    for (const end of [from, from + 1, 100, 192]) {
      if (end < from) continue;
      let s = from;
      while (s < end && !set.has(s)) s++;
      let c = from;
      while (c < end && set.has(c)) c++;
      assert.equal(nextSetBit(words, from, end), s, `set from ${from} to ${end}`);
      assert.equal(nextClearBit(words, from, end), c, `clear from ${from} to ${end}`);
    }
  }
});
