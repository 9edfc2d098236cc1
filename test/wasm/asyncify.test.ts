/**
 * Execution state as data: a program paused inside ferry.yield, 14 frames
 * deep through call_indirect, unwinds into the reserved region; a second,
 * fresh instance over a copy of the memory, its globals restored through
 * the exports, rewinds and finishes with what an unpaused run gives. An
 * unwind that overflows the buffer is told apart as the runner must
 * (asyncify.ts), having written nothing of the program's.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ASYNCIFY_STATE } from '../../src/wasm/asyncify.js';
import { fileLimit } from '../waits.js';
import { instantiate, instrumentText, program, snapshot, type Run } from './harness.js';

fileLimit(import.meta.url, 60_000);

/**
 * _start calls $down(12): thirteen frames of $down through call_indirect, each
 * with locals and a frame on the memory stack ($sp), then $bottom, whose
 * loop polls. The result depends on every frame's locals.
 */
const PROGRAM = program(`
 (type $fn (func (param i32) (result i32)))
 (table 2 funcref)
 (elem (i32.const 0) $down $bottom)
 (global $sp (mut i32) (i32.const 65536))
 (global $acc (mut i64) (i64.const 0))
 (global $fixed i32 (i32.const 3))
 (func $down (param $n i32) (result i32) (local $x i32) (local $r i32) (local $f f64)
   (local.set $x (i32.add (i32.mul (local.get $n) (i32.const 3)) (global.get $fixed)))
   (local.set $f (f64.convert_i32_u (local.get $x)))
   (global.set $sp (i32.sub (global.get $sp) (i32.const 16)))
   (i32.store (global.get $sp) (local.get $x))
   (global.set $acc (i64.add (global.get $acc) (i64.extend_i32_u (local.get $n))))
   (local.set $r (call_indirect (type $fn) (i32.sub (local.get $n) (i32.const 1)) (select (i32.const 1) (i32.const 0) (i32.eqz (local.get $n)))))
   (local.set $r (i32.add (i32.mul (local.get $r) (i32.const 7)) (i32.add (local.get $x) (i32.load (global.get $sp)))))
   (local.set $r (i32.add (local.get $r) (i32.trunc_f64_u (local.get $f))))
   (global.set $sp (i32.add (global.get $sp) (i32.const 16)))
   (local.get $r))
 (func $bottom (param $n i32) (result i32) (local $i i32)
   (loop $l
     (global.set $acc (i64.add (global.get $acc) (i64.extend_i32_u (local.get $i))))
     (i32.store (i32.add (i32.const 1024) (i32.shl (local.get $i) (i32.const 2))) (local.get $i))
     (local.set $i (i32.add (local.get $i) (i32.const 1)))
     (br_if $l (i32.lt_u (local.get $i) (i32.const 1000))))
   (i32.const 11))
 (func $deep (param $n i32) (result i32) (local $a i64) (local $b i64) (local $c i64)
   (if (result i32) (local.get $n)
     (then (i32.add (call $deep (i32.sub (local.get $n) (i32.const 1))) (i32.const 1)))
     (else (call $bottom (i32.const 0)))))
 (func (export "_start") (i32.store (i32.const 16) (call_indirect (type $fn) (i32.const 12) (i32.const 0))))
 (func (export "deep_start") (i32.store (i32.const 16) (call $deep (i32.const 3000))))
`);

const result = instrumentText(PROGRAM);
const { unwindDataOffset, unwindBufferOffset, unwindBufferBytes } = result.layout;

/** A mutable global as the JS API gives it (@types/node types `value` read-only). */
type Globals = Record<string, { value: number | bigint }>;
const globalsOf = (run: Run) => run.instance.exports as unknown as Globals;
const state = (run: Run) => run.exports.asyncify_get_state();

/** Asyncify's {cur, end}, as a runner writes them before an unwind. */
function prepareUnwindData(run: Run): void {
  run.view.setUint32(unwindDataOffset, unwindBufferOffset, true);
  run.view.setUint32(unwindDataOffset + 4, unwindBufferOffset + unwindBufferBytes, true);
}

/** A ferry.yield that pauses (unwinds) at its `at`-th call and stops rewinds. */
function pauseAt(at: number): (run: Run) => void {
  return (run) => {
    if (state(run) === ASYNCIFY_STATE.rewinding) {
      run.exports.asyncify_stop_rewind();
      return;
    }
    if (run.yields === at) {
      run.view.setInt32(run.layout.pollOffset, 0, true);
      run.exports.asyncify_start_unwind(unwindDataOffset);
    }
  };
}

test('a program paused 14 frames deep through call_indirect resumes in a fresh instance over a copy of memory with the unpaused result', () => {
  const reference = instantiate(result);
  reference.exports.__ferry_init_data();
  reference.exports._start();
  const expected = { memory: snapshot(reference), sp: globalsOf(reference).__ferry_global_0.value, acc: globalsOf(reference).__ferry_global_1.value };
  assert.equal(expected.acc, 78n + 499500n, 'the reference run is what the program computes');

  const source = instantiate(result, { onYield: pauseAt(500) });
  source.exports.__ferry_init_data();
  prepareUnwindData(source);
  source.view.setInt32(source.layout.pollOffset, 1, true);
  source.exports._start();
  assert.equal(state(source), ASYNCIFY_STATE.unwinding, '_start returned because the stack unwound');
  source.exports.asyncify_stop_unwind();
  assert.equal(state(source), ASYNCIFY_STATE.normal);
  const cur = source.view.getUint32(unwindDataOffset, true);
  assert.ok(cur - unwindBufferOffset >= 14 * 4, `the saved stack (${cur - unwindBufferOffset} bytes) holds at least a call index per frame`);
  assert.equal(source.view.getInt32(16, true), 0, 'the program had not finished');

  const copy = new WebAssembly.Memory({ initial: result.layout.totalPages, maximum: result.layout.totalPages, shared: true });
  new Uint8Array(copy.buffer).set(source.u8);
  const destination = instantiate(result, { memory: copy, onYield: pauseAt(-1) });
  for (const g of result.mutableGlobals) globalsOf(destination)[g.exportName].value = globalsOf(source)[g.exportName].value;
  destination.exports.asyncify_start_rewind(unwindDataOffset);
  destination.exports._start();
  assert.equal(state(destination), ASYNCIFY_STATE.normal);
  assert.equal(destination.yields, 1, 'the rewind re-entered ferry.yield once, where it had left');
  assert.equal(destination.view.getInt32(16, true), reference.view.getInt32(16, true));
  assert.ok(Buffer.from(snapshot(destination)).equals(Buffer.from(expected.memory)), 'guest memory equals the unpaused run\'s');
  assert.equal(globalsOf(destination).__ferry_global_0.value, expected.sp);
  assert.equal(globalsOf(destination).__ferry_global_1.value, expected.acc);
  assert.deepEqual(result.mutableGlobals, [{ exportName: '__ferry_global_0', type: 'i32' }, { exportName: '__ferry_global_1', type: 'i64' }],
    'every mutable global is exported, the immutable one is not');
});

test('an unwind that overflows the buffer is told apart (a trap while unwinding, or cur past end) and writes nothing of the program\'s', () => {
  const small = instrumentText(PROGRAM, { maxMemoryBytes: 16 * 65536, unwindBufferBytes: 4096 });
  const { unwindDataOffset: data, unwindBufferOffset: buffer } = small.layout;
  let before: Uint8Array | undefined;
  const run = instantiate(small, {
    onYield: (r) => {
      if (r.yields < 3010) return; // past the 3001 entry polls of $deep: in $bottom's loop
      r.view.setInt32(r.layout.pollOffset, 0, true);
      before = snapshot(r);
      r.exports.asyncify_start_unwind(data);
    },
  });
  run.view.setUint32(data, buffer, true);
  run.view.setUint32(data + 4, buffer + 4096, true);
  run.view.setInt32(run.layout.pollOffset, 1, true);
  let trapped = false;
  try {
    run.exports.deep_start();
    run.exports.asyncify_stop_unwind();
  } catch {
    trapped = true;
  }
  const overflowed = (trapped && state(run) === ASYNCIFY_STATE.unwinding) || run.view.getUint32(data, true) > run.view.getUint32(data + 4, true);
  assert.ok(trapped, 'Asyncify traps on the overflow');
  assert.ok(overflowed, 'the runner\'s rule recognises it');
  assert.ok(before !== undefined && Buffer.from(snapshot(run)).equals(Buffer.from(before)), 'guest memory is as it was at the pause');
});
