/**
 * Marks on contents: every kind of store, and the bulk operations, mark
 * exactly the 4 KiB pages they write. Each case copies guest memory
 * before and after and checks that every changed page is marked; the
 * marks are also compared with the pages of the range written, which is
 * exact for a store (a store of the bytes already there is marked all the
 * same: extra marks are possible then, and only then).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BULK_CHUNK_BYTES } from '../../src/wasm/bulk-memory.js';
import { fileLimit } from '../waits.js';
import { changedPages, clearMarks, instantiate, instrumentText, markedPages, program, snapshot, type Run } from './harness.js';

fileLimit(import.meta.url, 60_000);

/** One exported function per kind of store: (p) stores a non-zero value at p (+ its offset). */
const STORES: readonly { readonly name: string; readonly bytes: number; readonly offset: number; readonly body: string }[] = [
  { name: 'i32.store', bytes: 4, offset: 0, body: '(i32.store (local.get $p) (i32.const 0x01020304))' },
  { name: 'i32.store8', bytes: 1, offset: 0, body: '(i32.store8 (local.get $p) (i32.const 0x7f))' },
  { name: 'i32.store16 offset=4096', bytes: 2, offset: 4096, body: '(i32.store16 offset=4096 (local.get $p) (i32.const 0x7f7f))' },
  { name: 'i64.store', bytes: 8, offset: 0, body: '(i64.store (local.get $p) (i64.const 0x0102030405060708))' },
  { name: 'i64.store8', bytes: 1, offset: 0, body: '(i64.store8 (local.get $p) (i64.const 9))' },
  { name: 'i64.store16', bytes: 2, offset: 0, body: '(i64.store16 (local.get $p) (i64.const 9))' },
  { name: 'i64.store32 offset=3', bytes: 4, offset: 3, body: '(i64.store32 offset=3 (local.get $p) (i64.const 9))' },
  { name: 'f32.store', bytes: 4, offset: 0, body: '(f32.store (local.get $p) (f32.const 1.5))' },
  { name: 'f64.store', bytes: 8, offset: 0, body: '(f64.store (local.get $p) (f64.const 1.5))' },
  { name: 'v128.store', bytes: 16, offset: 0, body: '(v128.store (local.get $p) (v128.const i32x4 1 2 3 4))' },
  { name: 'v128.store8_lane', bytes: 1, offset: 0, body: '(v128.store8_lane 3 (local.get $p) (v128.const i8x16 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16))' },
  { name: 'v128.store16_lane', bytes: 2, offset: 0, body: '(v128.store16_lane 1 (local.get $p) (v128.const i16x8 1 2 3 4 5 6 7 8))' },
  { name: 'v128.store32_lane', bytes: 4, offset: 0, body: '(v128.store32_lane 2 (local.get $p) (v128.const i32x4 1 2 3 4))' },
  { name: 'v128.store64_lane offset=8', bytes: 8, offset: 8, body: '(v128.store64_lane offset=8 1 (local.get $p) (v128.const i32x4 1 2 3 4))' },
  { name: 'i32.atomic.store', bytes: 4, offset: 0, body: '(i32.atomic.store (local.get $p) (i32.const 5))' },
  { name: 'i64.atomic.store16', bytes: 2, offset: 0, body: '(i64.atomic.store16 (local.get $p) (i64.const 5))' },
  { name: 'i32.atomic.rmw.add', bytes: 4, offset: 0, body: '(drop (i32.atomic.rmw.add (local.get $p) (i32.const 5)))' },
  { name: 'i64.atomic.rmw8.or_u', bytes: 1, offset: 0, body: '(drop (i64.atomic.rmw8.or_u (local.get $p) (i64.const 5)))' },
  { name: 'i32.atomic.rmw.cmpxchg', bytes: 4, offset: 0, body: '(drop (i32.atomic.rmw.cmpxchg (local.get $p) (i32.const 0) (i32.const 5)))' },
  { name: 'i64.atomic.rmw.cmpxchg', bytes: 8, offset: 0, body: '(drop (i64.atomic.rmw.cmpxchg (local.get $p) (i64.const 0) (i64.const 5)))' },
];

const storeFunctions = STORES.map((s, i) => `(func (export "s${i}") (param $p i32) ${s.body})`).join('\n');

const PROGRAM = program(`
 (data $seg "0123456789abcdef")
 (func (export "_start"))
 ${storeFunctions}
 (func (export "rmw_returns") (param $p i32) (result i32) (i32.atomic.rmw.add (local.get $p) (i32.const 5)))
 (func (export "nested") (param $a i32) (param $b i32)
   (i32.store (local.get $a) (block (result i32) (i32.store (local.get $b) (i32.const 0x55)) (i32.const 0x66))))
 (func (export "fill") (param $d i32) (param $v i32) (param $n i32) (memory.fill (local.get $d) (local.get $v) (local.get $n)))
 (func (export "copy") (param $d i32) (param $s i32) (param $n i32) (memory.copy (local.get $d) (local.get $s) (local.get $n)))
 (func (export "init") (param $d i32) (param $s i32) (param $n i32) (memory.init $seg (local.get $d) (local.get $s) (local.get $n)))
`, '64 64');

const result = instrumentText(PROGRAM, { maxMemoryBytes: 64 * 65536, unwindBufferBytes: 65536 });

/** Run `fn` and return [changed pages, marked pages], marks cleared before. */
function observe(run: Run, fn: () => void): { changed: number[]; marked: number[] } {
  clearMarks(run);
  const before = snapshot(run);
  fn();
  return { changed: changedPages(before, snapshot(run)), marked: markedPages(run) };
}

function pagesOf(from: number, bytes: number): number[] {
  const out: number[] = [];
  for (let p = from >>> 12; p <= (from + bytes - 1) >>> 12; p++) out.push(p);
  return out;
}

test('every kind of store marks exactly the pages it writes, straddling a page boundary too', () => {
  const run = instantiate(result);
  STORES.forEach((s, i) => {
    // Aligned in the middle of page 5, then as close to the end of page 9 as the alignment allows (atomics must be aligned).
    const straddle = s.name.includes('atomic') ? 10 * 4096 - s.bytes - s.offset : 10 * 4096 - 1 - s.offset;
    for (const p of [5 * 4096 + 64, straddle, 63 * 4096 + 4096 - 16 - s.offset]) {
      run.u8.fill(0, p, p + s.offset + 16); // what an earlier case left here could equal what this one writes
      const { changed, marked } = observe(run, () => run.exports[`s${i}`](p));
      assert.ok(changed.length > 0, `${s.name} at ${p} wrote something`);
      assert.deepEqual(marked, pagesOf(p + s.offset, s.bytes), `${s.name} at ${p}: the marks are the pages of [ea, ea + ${s.bytes})`);
      assert.ok(changed.every((page) => marked.includes(page)), `${s.name} at ${p}: every changed page is marked`);
    }
  });
});

test('a read-modify-write still returns the old value, and a store inside another store\'s operand marks both', () => {
  const run = instantiate(result);
  run.view.setInt32(8192, 37, true);
  assert.equal(run.exports.rmw_returns(8192), 37);
  assert.equal(run.view.getInt32(8192, true), 42);
  const { marked } = observe(run, () => run.exports.nested(3 * 4096, 7 * 4096 + 8));
  assert.deepEqual(marked, [3, 7]);
  assert.equal(run.view.getInt32(3 * 4096, true), 0x66, 'the outer store wrote its value at its own pointer');
  assert.equal(run.view.getInt32(7 * 4096 + 8, true), 0x55);
});

test('memory.fill over more than a chunk writes every byte, marks every page it wrote and polls between chunks', () => {
  const run = instantiate(result);
  const start = 4096 + 100;
  const length = 2 * BULK_CHUNK_BYTES + 5000;
  run.view.setInt32(run.layout.pollOffset, 1, true);
  const { changed, marked } = observe(run, () => run.exports.fill(start, 0xab, length));
  assert.ok(run.u8.subarray(start, start + length).every((x) => x === 0xab));
  assert.equal(run.u8[start - 1], 0);
  assert.equal(run.u8[start + length], 0);
  assert.deepEqual(changed, pagesOf(start, length));
  assert.deepEqual(marked, pagesOf(start, length));
  assert.equal(run.yields, 2, 'three chunks, a poll between each two');
});

test('memory.copy of overlapping ranges over a chunk, both directions, gives memmove\'s result and marks the destination', () => {
  const run = instantiate(result);
  const length = BULK_CHUNK_BYTES + 3 * 4096 + 17;
  for (let i = 0; i < 3 * BULK_CHUNK_BYTES; i++) run.u8[i] = (i * 7 + (i >>> 12)) & 0xff;
  for (const [dst, src] of [[50_000, 10_000], [10_000, 50_000]]) {
    const expected = snapshot(run);
    expected.copyWithin(dst, src, src + length);
    const { changed, marked } = observe(run, () => run.exports.copy(dst, src, length));
    assert.ok(Buffer.from(snapshot(run)).equals(Buffer.from(expected)), `copy ${src} -> ${dst} equals copyWithin`);
    assert.deepEqual(marked, pagesOf(dst, length));
    assert.ok(changed.every((p) => marked.includes(p)));
  }
});

test('memory.init copies from a passive segment and marks; out-of-bounds bulk operations trap having written nothing', () => {
  const run = instantiate(result);
  const { marked } = observe(run, () => run.exports.init(4096 * 12 - 3, 2, 10));
  assert.equal(Buffer.from(run.u8.subarray(4096 * 12 - 3, 4096 * 12 + 7)).toString(), '23456789ab');
  assert.deepEqual(marked, [11, 12]);
  const size = 64 * 65536;
  for (const [name, call] of [
    ['fill past the size', () => run.exports.fill(size - 10, 1, 11)],
    ['copy from past the size', () => run.exports.copy(0, size - 10, 11)],
    ['init past the segment', () => run.exports.init(0, 10, 7)],
  ] as const) {
    const { changed, marked: m } = observe(run, () => assert.throws(call, /unreachable|out of bounds/, name));
    assert.deepEqual([changed, m], [[], []], `${name}: nothing written, nothing marked`);
  }
});
