/**
 * XBZRLE (src/wire/xbzrle.ts): QEMU's bytes for hand-made pages (derived
 * from the format by hand), QEMU's overflow points, round trips of random
 * page pairs (fast-check) checked against a byte-at-a-time model of QEMU's
 * encoder, and every refusal of the decoder, which leaves the page as it was.
 */
import assert from 'node:assert/strict';
import { randomFillSync } from 'node:crypto';
import { test } from 'node:test';
import fc from 'fast-check';
import { PAGE_SIZE } from '../../src/memory/page.js';
import { XBZRLE_MAX_DELTA_BYTES, xbzrleDecode, xbzrleEncode } from '../../src/wire/xbzrle.js';
import { jsXbzrleEncodeAt } from '../../src/wire/xbzrle-js-encoder.js';
import { fileLimit } from '../waits.js';
import { referenceEncode } from './xbzrle-reference.js';

fileLimit(import.meta.url, 60_000);

const out = new Uint8Array(XBZRLE_MAX_DELTA_BYTES);
const hex = (bytes: ArrayLike<number>) => Buffer.from(Array.from(bytes)).toString('hex');

/** A random old page and a copy of it. */
function pagePair(): { old: Uint8Array; now: Uint8Array } {
  const old = randomFillSync(new Uint8Array(PAGE_SIZE));
  return { old, now: old.slice() };
}

/** The two encoders: the WebAssembly kernel (behind xbzrleEncode) and the plain-JS one; every case runs on both. */
const ENCODERS: [string, (old: Uint8Array, now: Uint8Array, out: Uint8Array, limit?: number) => number][] = [
  ['kernel', xbzrleEncode],
  ['js', (old, now, o, limit = now.length) => jsXbzrleEncodeAt(old, 0, now, o, limit)],
];
let encode = ENCODERS[0][1];

/** Encode, and return the delta as hex (or the number QEMU returns: 0 equal, -1 overflow). */
function encodeHex(old: Uint8Array, now: Uint8Array, limit?: number): string | number {
  const n = encode(old, now, out, limit);
  return n > 0 ? hex(out.subarray(0, n)) : n;
}

const uleb = (v: number) => (v < 0x80 ? [v] : [(v & 0x7f) | 0x80, v >> 7]);

/** A byte that differs from `b`. */
const other = (b: number) => (b + 1) & 0xff;

/** A page pair from fast-check: runs of changes anywhere, the page's edges included. */
const changedPair = fc.record({
  seed: fc.integer({ min: 0, max: 0x7fffffff }),
  runs: fc.array(fc.record({ at: fc.oneof(fc.integer({ min: 0, max: PAGE_SIZE - 1 }), fc.constantFrom(0, 1, 2, 3, 4092, 4093, 4094, 4095)), len: fc.integer({ min: 1, max: 300 }), xor: fc.integer({ min: 1, max: 255 }) }), { maxLength: 60 }),
  holes: fc.array(fc.integer({ min: 0, max: PAGE_SIZE - 1 }), { maxLength: 40 }),
  limit: fc.oneof(fc.constant(PAGE_SIZE), fc.constant(XBZRLE_MAX_DELTA_BYTES), fc.integer({ min: 0, max: XBZRLE_MAX_DELTA_BYTES })),
  offsets: fc.tuple(fc.integer({ min: 0, max: 7 }), fc.integer({ min: 0, max: 7 })),
});

/** Old random (xorshift from `seed`); new: `runs` changed, then the `holes` equal again (single equal bytes inside changed runs). */
function build(seed: number, runs: { at: number; len: number; xor: number }[], holes: number[]): { old: Uint8Array; now: Uint8Array } {
  const old = new Uint8Array(PAGE_SIZE);
  let x = seed | 1;
  for (let i = 0; i < PAGE_SIZE; i++) { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; old[i] = x & 0xff; }
  const now = old.slice();
  for (const r of runs) for (let i = r.at; i < Math.min(PAGE_SIZE, r.at + r.len); i++) now[i] = old[i] ^ r.xor;
  for (const h of holes) now[h] = old[h];
  return { old, now };
}

for (const [name, enc] of ENCODERS) {
  test(`${name}: QEMU bytes: changes at 3, 4 and 9 encode as 03 02 b3 b4 04 01 b9, the equal tail left out`, () => {
    encode = enc;
    const { old, now } = pagePair();
    now[3] = other(old[3]); now[4] = other(old[4]); now[9] = other(old[9]);
    assert.equal(encodeHex(old, now), `0302${hex([now[3], now[4]])}0401${hex([now[9]])}`);
  });

  test(`${name}: QEMU bytes: a change in the first byte has an empty first zero run; in the last byte, a 2-byte ULEB128 (4095 = ff 1f)`, () => {
    encode = enc;
    let { old, now } = pagePair();
    now[0] = other(old[0]);
    assert.equal(encodeHex(old, now), `0001${hex([now[0]])}`);
    ({ old, now } = pagePair());
    now[4095] = other(old[4095]);
    assert.equal(encodeHex(old, now), `ff1f01${hex([now[4095]])}`);
  });

  test(`${name}: QEMU bytes: runs of 128 and 200 (80 01, c8 01), and runs split by one equal byte`, () => {
    encode = enc;
    let { old, now } = pagePair();
    for (let i = 128; i < 328; i++) now[i] = other(old[i]);
    assert.equal(encodeHex(old, now), `8001c801${hex(now.subarray(128, 328))}`);
    ({ old, now } = pagePair());
    now[0] = other(old[0]); now[1] = other(old[1]); now[3] = other(old[3]);
    assert.equal(encodeHex(old, now), `0002${hex(now.subarray(0, 2))}0101${hex([now[3]])}`);
  });

  test(`${name}: an equal byte at each place in a word ends a changed run there`, () => {
    encode = enc;
    for (let k = 0; k < 8; k++) {
      const { old, now } = pagePair();
      for (let i = 100; i < 300; i++) now[i] = other(old[i]);
      now[200 + k] = old[200 + k];
      const before = 200 + k - 100;
      const after = 300 - (200 + k + 1);
      assert.equal(encodeHex(old, now), `64${hex(uleb(before))}${hex(now.subarray(100, 200 + k))}01${hex(uleb(after))}${hex(now.subarray(201 + k, 300))}`, `equal byte at ${200 + k}`);
    }
  });

  test(`${name}: equal pages encode to 0 bytes and write nothing`, () => {
    encode = enc;
    const { old } = pagePair();
    out.fill(0xee);
    assert.equal(encode(old, old.slice(), out), 0);
    assert.ok(out.every((b) => b === 0xee));
  });

  test(`${name}: the longest ULEB128: a page changed everywhere is 00 80 20 + the page (4099 bytes), an overflow under the default limit`, () => {
    encode = enc;
    const old = new Uint8Array(PAGE_SIZE);
    const now = new Uint8Array(PAGE_SIZE).fill(0x5a);
    assert.equal(encode(old, now, out), -1);
    assert.equal(encode(old, now, out, XBZRLE_MAX_DELTA_BYTES), 4099);
    assert.equal(hex(out.subarray(0, 3)), '008020');
    const page = old.slice();
    xbzrleDecode(out.subarray(0, 4099), page);
    assert.deepEqual(page, now);
  });

  test(`${name}: QEMU's overflow points: a delta of exactly 4096 bytes goes, 4097 does not; 4096 with an equal tail left does not either`, () => {
    encode = enc;
    const old = new Uint8Array(PAGE_SIZE);
    const now = old.slice().fill(1, 3); // zero run 3 (1 byte), changed run 4093 (2 bytes), 4093 bytes
    assert.equal(encode(old, now, out), 4096);
    now[2] = 1; // zero run 2, changed run 4094: 4097
    assert.equal(encode(old, now, out), -1);
    // Changed 0..4092, equal tail of 3: 1 + 2 + 4093 = 4096 bytes, but QEMU's
    // "d + 2 > dlen" check before the next zero run comes first.
    const head = old.slice().fill(1, 0, 4093);
    assert.equal(encode(old, head, out), -1);
    assert.equal(referenceEncode(old, head, PAGE_SIZE), -1);
  });

  test(`${name}: random pages overflow`, () => {
    encode = enc;
    for (let k = 0; k < 50; k++) {
      const old = randomFillSync(new Uint8Array(PAGE_SIZE));
      assert.equal(encode(old, randomFillSync(new Uint8Array(PAGE_SIZE)), out), -1);
    }
  });

  test(`${name}: fast-check: the same bytes and overflows as QEMU's encoder (its byte-level model), and every delta decodes to the new page`, () => {
    encode = enc;
    const seen = { equal: 0, delta: 0, overflow: 0 };
    fc.assert(fc.property(changedPair, ({ seed, runs, holes, limit, offsets }) => {
      const { old, now } = build(seed, runs, holes);
      // Pages at any byte offset in their buffers (unaligned ones take the copying path).
      const oldAt = new Uint8Array(PAGE_SIZE + 8).subarray(offsets[0], offsets[0] + PAGE_SIZE);
      const nowAt = new Uint8Array(PAGE_SIZE + 8).subarray(offsets[1], offsets[1] + PAGE_SIZE);
      oldAt.set(old);
      nowAt.set(now);
      const n = encode(oldAt, nowAt, out, limit);
      const expected = referenceEncode(old, now, limit);
      seen[n === -1 ? 'overflow' : n === 0 ? 'equal' : 'delta']++;
      if (expected === -1) return assert.equal(n, -1, 'an overflow where QEMU overflows');
      assert.equal(n, expected.length);
      assert.equal(hex(out.subarray(0, n)), hex(expected));
      const page = old.slice();
      xbzrleDecode(out.subarray(0, n), page);
      assert.deepEqual(page, now, 'the delta turns the old page into the new one');
    }), { numRuns: 400, seed: 20261125 });
    assert.ok(seen.equal > 0 && seen.delta > 100 && seen.overflow > 10, `every outcome is exercised: ${JSON.stringify(seen)}`);
  });
}

test('the JS encoder reads the old page in place in a larger buffer, at any offset (aligned or not)', () => {
  const { old, now } = pagePair();
  for (const at of [100, 2000, 4095]) now[at] = other(old[at]);
  const cache = new Uint8Array(5 * PAGE_SIZE + 3);
  for (const at of [0, PAGE_SIZE, 3 * PAGE_SIZE + 1, 4 * PAGE_SIZE + 3]) {
    cache.set(old, at);
    const n = jsXbzrleEncodeAt(cache, at, now, out, PAGE_SIZE);
    assert.equal(hex(out.subarray(0, n)), hex(referenceEncode(old, now, PAGE_SIZE) as number[]), `old page at byte ${at}`);
  }
});

test('the encoder refuses pages of different or odd sizes, a short output and a limit past a whole delta', () => {
  const page = new Uint8Array(PAGE_SIZE);
  assert.throws(() => xbzrleEncode(page, new Uint8Array(2048), out), /old page is 4096 bytes, the new one 2048/);
  assert.throws(() => xbzrleEncode(new Uint8Array(4098), new Uint8Array(4098), out), /multiple of 4 bytes/);
  assert.throws(() => xbzrleEncode(page, page, new Uint8Array(100)), /output holds 100 bytes/);
  assert.throws(() => xbzrleEncode(page, page, out, 4100), /limit 4100 is outside 0\.\.4099/);
});

/** Decoding `delta` into a copy of a random page: the error's message, and the page checked unchanged. */
function refusal(delta: number[], size = PAGE_SIZE): string {
  const page = randomFillSync(new Uint8Array(size));
  const before = page.slice();
  try {
    xbzrleDecode(Uint8Array.from(delta), page);
  } catch (err) {
    assert.equal((err as { code?: string }).code, 'ERR_FERRY_XBZRLE', String(err));
    assert.deepEqual(page, before, 'a refused delta leaves the page as it was');
    return (err as Error).message;
  }
  assert.fail(`delta ${hex(delta)} was accepted`);
}

test('the decoder refuses every broken delta, naming what and where, and leaves the page as it was', () => {
  assert.match(refusal(new Array(4100).fill(1)), /4100 bytes, longer than any delta of a 4096-byte page \(at most 4099\)/);
  assert.match(refusal([0x80]), /zero run length at offset 0 is truncated/);
  assert.match(refusal([0x00, 0x85]), /changed run length at offset 1 is truncated/);
  assert.match(refusal([0x80, 0x80, 0x01]), /zero run length at offset 0 is longer than 2 bytes \(over 14 bits\)/);
  assert.match(refusal([0x00, 0x01, 0xaa, 0x00, 0x01, 0xbb]), /empty zero run at offset 3 \(only the first may be empty\)/);
  assert.match(refusal([0x05, 0x00]), /empty changed run at offset 1/);
  assert.match(refusal([0x81, 0x20, 0x01, 0xaa]), /zero run of 4097 bytes at offset 0 runs past the page's end/);
  assert.match(refusal([0xff, 0x1f, 0x02, 0xaa, 0xbb]), /changed run of 2 bytes at offset 2 runs past the page's end \(page byte 4095/);
  assert.match(refusal([0x00, 0x05, 0xaa, 0xbb]), /changed run of 5 bytes at offset 1 is truncated \(2 bytes left\)/);
  assert.match(refusal([0x00, 0x01, 0xaa, 0x04]), /trailing garbage: a zero run at offset 3 with no changed run after it/);
  // Valid up to its last run, then garbage: still nothing is written.
  assert.match(refusal([0x03, 0x02, 0xaa, 0xbb, 0x04, 0x01, 0x33, 0x00, 0x00]), /empty zero run at offset 7/);
});

test('the decoder accepts what QEMU accepts: an empty delta (the page unchanged) and a 2-byte ULEB128 of a small value', () => {
  const page = randomFillSync(new Uint8Array(PAGE_SIZE));
  const before = page.slice();
  xbzrleDecode(new Uint8Array(0), page);
  assert.deepEqual(page, before);
  xbzrleDecode(Uint8Array.from([0x85, 0x00, 0x01, 0x42]), page); // zero run 5, spelled in 2 bytes
  before[5] = 0x42;
  assert.deepEqual(page, before);
});

test('the decoder never writes outside its page: a page inside a larger buffer keeps its neighbours', () => {
  const buffer = new Uint8Array(3 * PAGE_SIZE).fill(0x77);
  const page = buffer.subarray(PAGE_SIZE, 2 * PAGE_SIZE);
  xbzrleDecode(Uint8Array.from([0x00, 0x01, 0xaa, 0xfe, 0x1f, 0x01, 0xbb]), page); // bytes 0 and 4095
  assert.equal(page[0], 0xaa);
  assert.equal(page[4095], 0xbb);
  assert.ok(buffer.subarray(0, PAGE_SIZE).every((b) => b === 0x77) && buffer.subarray(2 * PAGE_SIZE).every((b) => b === 0x77));
});
