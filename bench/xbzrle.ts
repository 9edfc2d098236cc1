/**
 * XBZRLE's encoders (the WebAssembly kernel behind xbzrleEncode, which
 * copies both pages into its memory first, and the plain-JS fallback) and
 * its decoder (src/wire/xbzrle.ts) over 16 MiB of pages, each against its
 * old copy, in MB/s of pages (4 KiB counted per page whatever its delta's
 * size): pages changed by one 32-bit word, pages with
 * 10 % of their words changed at random places, random pages (the encoder
 * overflows: the page goes whole, nothing to decode) and equal pages. Beside
 * them, the floor: one read of each page pair (a word compare of the two).
 *
 *   node dist/bench/xbzrle.js     (a few seconds; median (min-max) of 5 runs)
 */
import { randomFillSync } from 'node:crypto';
import { PAGE_SIZE } from '../src/memory/page.js';
import { fmt, repeat, timeMs } from '../src/bench/stats.js';
import { XBZRLE_MAX_DELTA_BYTES, xbzrleDecode, xbzrleEncode } from '../src/wire/xbzrle.js';
import { jsXbzrleEncodeAt } from '../src/wire/xbzrle-js-encoder.js';

const PAGES = 4096; // 16 MiB of new pages and 16 MiB of old: past the caches, as a sender's pages are
const RUNS = 5;
const WORDS = PAGE_SIZE / 4;

interface Case {
  readonly old: Uint8Array;
  readonly now: Uint8Array;
  readonly deltas: Uint8Array[];
}

/** Old pages random; new ones a copy with `change` applied to each page's words. */
function makeCase(change: (words: Uint32Array) => void): Case {
  const old = new Uint8Array(PAGES * PAGE_SIZE);
  randomFillSync(old);
  const now = old.slice();
  for (let p = 0; p < PAGES; p++) change(new Uint32Array(now.buffer, p * PAGE_SIZE, WORDS));
  return { old, now, deltas: [] };
}

const page = (bytes: Uint8Array, p: number) => bytes.subarray(p * PAGE_SIZE, (p + 1) * PAGE_SIZE);
const cases: [string, Case][] = [
  ['one word changed', makeCase((w) => { w[(Math.random() * WORDS) | 0] ^= 0xdeadbeef; })],
  ['10 % of words changed', makeCase((w) => { for (let k = 0; k < WORDS / 10; k++) w[(Math.random() * WORDS) | 0] ^= 0x5a5a5a5a; })],
  ['random (overflows)', makeCase((w) => { randomFillSync(w); })],
  ['equal', makeCase(() => {})],
];

// Views made once: the bench measures the codec, not subarray().
for (const [, c] of cases) {
  const olds = Array.from({ length: PAGES }, (_, p) => page(c.old, p));
  const nows = Array.from({ length: PAGES }, (_, p) => page(c.now, p));
  const out = new Uint8Array(XBZRLE_MAX_DELTA_BYTES);
  for (let p = 0; p < PAGES; p++) {
    const n = xbzrleEncode(olds[p], nows[p], out);
    c.deltas.push(n > 0 ? out.slice(0, n) : new Uint8Array(0));
  }
  Object.assign(c, { olds, nows, out });
}

const mbps = (fn: () => void) => () => (PAGES * PAGE_SIZE) / timeMs(fn) / 1e3;
for (const [what, c] of cases) {
  const { olds, nows, out } = c as Case & { olds: Uint8Array[]; nows: Uint8Array[]; out: Uint8Array };
  const deltaBytes = c.deltas.reduce((s, d) => s + d.length, 0);
  const encode = repeat(RUNS, mbps(() => { for (let p = 0; p < PAGES; p++) xbzrleEncode(olds[p], nows[p], out); }));
  const js = repeat(RUNS, mbps(() => { for (let p = 0; p < PAGES; p++) jsXbzrleEncodeAt(olds[p], 0, nows[p], out, PAGE_SIZE); }));
  // Decoding writes the old copies forward; every run applies the same deltas to pages that already hold them (same work).
  const decode = repeat(RUNS, mbps(() => { for (let p = 0; p < PAGES; p++) xbzrleDecode(c.deltas[p], olds[p]); }));
  console.log(`${what}: encode ${fmt(encode, 0)} MB/s (plain JS ${fmt(js, 0)}), decode ${fmt(decode, 0)} MB/s, delta ${(deltaBytes / PAGES).toFixed(0)} bytes/page`);
}

const a = new Int32Array(cases[3][1].old.buffer);
const b = new Int32Array(cases[3][1].now.buffer);
const floor = repeat(RUNS, mbps(() => {
  let same = 0;
  for (let i = 0; i < a.length; i++) same += a[i] === b[i] ? 1 : 0;
  if (same !== a.length) throw new Error('equal pages differ');
}));
console.log(`floor (one word compare of each page pair): ${fmt(floor, 0)} MB/s`);
