/**
 * Fuzzing XBZRLE's decoder with fast-check: arbitrary bytes, and valid
 * deltas mutated every way a delta can break (bit flips, truncation,
 * spliced garbage, bytes dropped or repeated, a length byte set to an
 * extreme). Each run: only XbzrleErrors escape, a refused delta leaves the
 * page as it was, nothing lands outside the page, and whatever is accepted
 * is exactly what QEMU's decoder (its model, xbzrle-reference.ts) accepts
 * and makes of it. Unmutated deltas always reproduce the new page.
 * `npm test` runs FERRY_FUZZ_RUNS (default 1,000); set it higher
 * (`FERRY_FUZZ_RUNS=10000 node --test dist/test/wire/xbzrle-fuzz.test.js`)
 * for a longer campaign.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { PAGE_SIZE } from '../../src/memory/page.js';
import { XBZRLE_MAX_DELTA_BYTES, xbzrleDecode, xbzrleEncode } from '../../src/wire/xbzrle.js';
import { fileLimit } from '../waits.js';
import { referenceDecode } from './xbzrle-reference.js';

fileLimit(import.meta.url, 60_000 * Math.max(1, Number(process.env.FERRY_FUZZ_RUNS ?? 0) / 5000));

const RUNS = Number(process.env.FERRY_FUZZ_RUNS ?? 1000);
const SEED = Number(process.env.FERRY_FUZZ_SEED ?? 20261125);
const GUARD = 64;

/** An old page from `seed` (xorshift), and a new one with `runs` changed. */
function pagePair(seed: number, runs: readonly (readonly [number, number])[]): { old: Uint8Array; now: Uint8Array } {
  const old = new Uint8Array(PAGE_SIZE);
  let x = seed | 1;
  for (let i = 0; i < PAGE_SIZE; i++) { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; old[i] = x & 0xff; }
  const now = old.slice();
  for (const [at, len] of runs) for (let i = at; i < Math.min(PAGE_SIZE, at + len); i++) now[i] = ~old[i] & 0xff;
  return { old, now };
}

type Mutation =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'splice'; at: number; bytes: number[] }
  | { kind: 'drop'; at: number; len: number }
  | { kind: 'repeat'; at: number; len: number }
  | { kind: 'extreme'; at: number; value: number }
  | { kind: 'nudge'; at: number; by: number };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('splice' as const), at: fc.nat(), bytes: fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 8 }) }),
  fc.record({ kind: fc.constant('drop' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 8 }) }),
  fc.record({ kind: fc.constant('repeat' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 300 }) }),
  fc.record({ kind: fc.constant('extreme' as const), at: fc.nat(), value: fc.constantFrom(0x00, 0x7f, 0x80, 0xff, 0x20, 0x1f) }),
  fc.record({ kind: fc.constant('nudge' as const), at: fc.nat(), by: fc.constantFrom(-1, 1) }),
);

function mutate(delta: number[], m: Mutation): number[] {
  const at = delta.length === 0 ? 0 : m.at % delta.length;
  const d = delta.slice();
  switch (m.kind) {
    case 'flip': if (d.length > 0) d[at] ^= 1 << m.bit; return d;
    case 'truncate': return d.slice(0, at);
    case 'splice': d.splice(at, 0, ...m.bytes); return d;
    case 'drop': d.splice(at, m.len); return d;
    case 'repeat': return [...d.slice(0, at + m.len), ...d.slice(at)];
    case 'extreme': if (d.length > 0) d[at] = m.value; return d;
    case 'nudge': if (d.length > 0) d[at] = (d[at] + m.by) & 0xff; return d;
  }
}

/** A delta as its runs: [zero run, new bytes] pairs. */
type Pairs = [number, number[]][];

function parsePairs(delta: Uint8Array): Pairs {
  const pairs: Pairs = [];
  const read = (at: number): [number, number] => (delta[at] < 0x80 ? [delta[at], 1] : [(delta[at] & 0x7f) | (delta[at + 1] << 7), 2]);
  for (let i = 0; i < delta.length;) {
    const [z, zl] = read(i);
    const [nz, nl] = read(i + zl);
    i += zl + nl;
    pairs.push([z, Array.from(delta.subarray(i, i + nz))]);
    i += nz;
  }
  return pairs;
}

/** Run-level mutations, where the decoder's arithmetic is: a length one off (with its bytes, or not), emptied, at its maximum, a pair more. */
const runMutation = fc.record({
  which: fc.nat(),
  field: fc.constantFrom('zero', 'changed'),
  change: fc.constantFrom('+1', '-1', '+1 with a byte', '-1 with a byte', 'empty', 'max'),
  append: fc.option(fc.tuple(fc.integer({ min: 0, max: 0x3fff }), fc.integer({ min: 0, max: 300 })), { nil: undefined }),
});

function mutateRuns(pairs: Pairs, m: typeof runMutation extends fc.Arbitrary<infer T> ? T : never): number[] {
  const p = pairs.map(([z, bytes]): [number, number[], number] => [z, bytes.slice(), bytes.length]);
  if (p.length > 0) {
    const run = p[m.which % p.length];
    const slot = m.field === 'zero' ? 0 : 2;
    const by = { '+1': 1, '-1': -1, '+1 with a byte': 1, '-1 with a byte': -1, empty: -run[slot], max: 0x3fff - run[slot] }[m.change];
    run[slot] += by;
    if (m.field === 'changed' && m.change.endsWith('byte')) by > 0 ? run[1].push(0xaa) : run[1].pop();
  }
  if (m.append) p.push([m.append[0], new Array(m.append[1]).fill(0x55), m.append[1]]);
  const uleb = (v: number) => (v < 0x80 ? [v] : [(v & 0x7f) | 0x80, (v >> 7) & 0x7f]);
  return p.flatMap(([z, bytes, nz]) => [...uleb(Math.max(0, z)), ...uleb(Math.max(0, nz)), ...bytes]);
}

const input = fc.oneof(
  { weight: 1, arbitrary: fc.record({ bytes: fc.uint8Array({ maxLength: XBZRLE_MAX_DELTA_BYTES + 8 }) }) },
  { weight: 3, arbitrary: fc.record({
    seed: fc.integer({ min: 1, max: 0x7fffffff }),
    // Runs anywhere, and often at the page's edges, where the end checks bite.
    runs: fc.array(fc.tuple(fc.oneof(fc.integer({ min: 0, max: PAGE_SIZE - 1 }), fc.integer({ min: PAGE_SIZE - 8, max: PAGE_SIZE - 1 }), fc.constant(0)), fc.integer({ min: 1, max: 200 })), { minLength: 1, maxLength: 20 }),
    runMutations: fc.array(runMutation, { maxLength: 2 }),
    mutations: fc.array(mutation, { maxLength: 3 }),
  }) },
);

test(`fuzz (fast-check, ${RUNS} runs): arbitrary and mutated deltas are refused with an XbzrleError or applied as QEMU applies them, inside the page`, () => {
  const counts = { rejected: 0, applied: 0, reproduced: 0 };
  const out = new Uint8Array(XBZRLE_MAX_DELTA_BYTES);
  fc.assert(fc.property(input, (c) => {
    let old: Uint8Array;
    let delta: Uint8Array;
    let now: Uint8Array | null = null;
    if ('bytes' in c) {
      old = pagePair(7, []).old;
      delta = c.bytes;
    } else {
      const pair = pagePair(c.seed, c.runs);
      old = pair.old;
      const n = xbzrleEncode(old, pair.now, out, XBZRLE_MAX_DELTA_BYTES);
      let bytes = Array.from(out.subarray(0, Math.max(0, n)));
      for (const m of c.runMutations) bytes = mutateRuns(parsePairs(Uint8Array.from(bytes)), m);
      for (const m of c.mutations) bytes = mutate(bytes, m);
      delta = Uint8Array.from(bytes);
      if (c.mutations.length === 0 && c.runMutations.length === 0) now = pair.now;
    }
    // The page inside a guarded buffer: a write outside it shows in the guards.
    const buffer = new Uint8Array(PAGE_SIZE + 2 * GUARD).fill(0x77);
    const page = buffer.subarray(GUARD, GUARD + PAGE_SIZE);
    page.set(old);
    const expected = delta.length > XBZRLE_MAX_DELTA_BYTES ? null : referenceDecode(delta, old);
    try {
      xbzrleDecode(delta, page);
    } catch (err) {
      assert.equal((err as { code?: string }).code, 'ERR_FERRY_XBZRLE', `only XbzrleErrors escape, got: ${(err as Error).stack}`);
      assert.equal(expected, null, `refused what QEMU applies: ${(err as Error).message}`);
      assert.deepEqual(page, old, 'a refused delta leaves the page as it was');
      counts.rejected++;
      return;
    }
    assert.ok(expected !== null, 'applied only what QEMU applies');
    assert.deepEqual(page, expected, 'applied as QEMU applies it');
    if (now !== null) {
      assert.deepEqual(page, now, 'a valid delta reproduces the new page');
      counts.reproduced++;
    }
    counts.applied++;
    assert.ok(buffer.subarray(0, GUARD).every((b) => b === 0x77) && buffer.subarray(GUARD + PAGE_SIZE).every((b) => b === 0x77), 'nothing written outside the page');
  }), { numRuns: RUNS, seed: SEED });
  assert.ok(counts.rejected > RUNS * 0.3 && counts.reproduced > RUNS * 0.03, `both outcomes are exercised: ${JSON.stringify(counts)}`);
  console.log(`# xbzrle fuzz: ${RUNS} runs (seed ${SEED}), ${counts.rejected} refused with an XbzrleError, ${counts.applied} applied as QEMU applies them (${counts.reproduced} unmutated, each reproducing its page)`);
});
