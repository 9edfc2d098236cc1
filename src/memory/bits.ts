/**
 * Bit tricks over 32-bit bitmap words: population count and allocation-free
 * iteration of set bits and of runs of set bits with count-leading-zeros, so
 * clean memory is skipped a word (32 pages) at a time, never page by page.
 */

/** Number of set bits in a 32-bit word (SWAR popcount). */
export function popcount32(x: number): number {
  x = x - ((x >>> 1) & 0x55555555);
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  x = (x + (x >>> 4)) & 0x0f0f0f0f;
  return Math.imul(x, 0x01010101) >>> 24;
}

/** Index of the lowest set bit of a non-zero word. */
export function lowestBit(x: number): number {
  return 31 - Math.clz32(x & -x);
}

/** Count of set bits in `words[0..nwords)`. */
export function popcountWords(words: Int32Array | Uint32Array, from = 0, to = words.length): number {
  let n = 0;
  for (let i = from; i < to; i++) {
    const w = words[i];
    if (w !== 0) n += popcount32(w);
  }
  return n;
}

/**
 * Call `fn(page)` for each set bit of `words[fromWord..toWord)`; page numbers
 * are `bitIndex + base`. Returns the number of bits visited.
 */
export function forEachSetBit(
  words: Int32Array | Uint32Array,
  fromWord: number,
  toWord: number,
  base: number,
  fn: (page: number) => void,
): number {
  let n = 0;
  for (let i = fromWord; i < toWord; i++) {
    let w = words[i] | 0;
    while (w !== 0) {
      const bit = lowestBit(w);
      fn(base + i * 32 + bit);
      w &= w - 1;
      n++;
    }
  }
  return n;
}

/**
 * Call `fn(firstPage, count)` for each maximal run of set bits in
 * `words[fromWord..toWord)`, coalescing runs across word boundaries (Cloud
 * Hypervisor's MemoryRangeTable idea). Returns the number of runs.
 */
export function forEachRun(
  words: Int32Array | Uint32Array,
  fromWord: number,
  toWord: number,
  base: number,
  fn: (firstPage: number, count: number) => void,
): number {
  let runs = 0;
  let runStart = -1;
  let runEnd = -1;
  for (let i = fromWord; i < toWord; i++) {
    let w = words[i] | 0;
    const wordBase = base + i * 32;
    while (w !== 0) {
      const bit = lowestBit(w);
      // Length of the run of ones starting at `bit`: trailing ones of w >>> bit.
      const shifted = w >>> bit;
      const inverted = ~shifted;
      const len = inverted === 0 ? 32 - bit : lowestBit(inverted);
      const start = wordBase + bit;
      if (start === runEnd) {
        runEnd += len;
      } else {
        if (runStart >= 0) {
          fn(runStart, runEnd - runStart);
          runs++;
        }
        runStart = start;
        runEnd = start + len;
      }
      // Clear the bits of this run (len may be 32 when bit is 0).
      w = len + bit >= 32 ? 0 : w & ~(((1 << len) - 1) << bit);
    }
  }
  if (runStart >= 0) {
    fn(runStart, runEnd - runStart);
    runs++;
  }
  return runs;
}

/** First set bit at or after `from` and before `end` (bit indexes), or `end`. */
export function nextSetBit(words: Int32Array | Uint32Array, from: number, end: number): number {
  return nextBit(words, from, end, 0);
}

/** First clear bit at or after `from` and before `end`, or `end`. */
export function nextClearBit(words: Int32Array | Uint32Array, from: number, end: number): number {
  return nextBit(words, from, end, -1);
}

/** First bit at or after `from` whose value XOR `flip`'s is 1, skipping whole words. */
function nextBit(words: Int32Array | Uint32Array, from: number, end: number, flip: number): number {
  if (from >= end) return end;
  let i = from >>> 5;
  let w = ((words[i] | 0) ^ flip) & (-1 << (from & 31));
  for (;;) {
    if (w !== 0) {
      const bit = i * 32 + lowestBit(w);
      return Math.min(bit, end);
    }
    i++;
    if (i * 32 >= end) return end;
    w = (words[i] | 0) ^ flip;
  }
}
