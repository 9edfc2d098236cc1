/**
 * The memory the program sees: memory.size and memory.grow read and bump
 * the virtual size (never the real memory, which is the whole layout from
 * the start), data segments are applied by __ferry_init_data only (with
 * marks), and instantiating the module again leaves the memory alone.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { WASM_PAGE_SIZE } from '../../src/memory/page.js';
import { fileLimit } from '../waits.js';
import { exportsOf, importsOf, instantiate, instrumentText, markedPages, program } from './harness.js';

fileLimit(import.meta.url, 60_000);

const PROGRAM = program(`
 (data (i32.const 5000) "first segment")
 (data (i32.const 70000) "second")
 (data $passive "not applied")
 (func (export "_start"))
 (func (export "size") (result i32) (memory.size))
 (func (export "grow") (param $n i32) (result i32) (memory.grow (local.get $n)))
 (func (export "wait") (result i32) (memory.atomic.wait32 (i32.const 0) (i32.const 0) (i64.const 0)))
`, '2');

const result = instrumentText(PROGRAM, { maxMemoryBytes: 6 * WASM_PAGE_SIZE, unwindBufferBytes: 4096 });

test('the instrumented module imports ferry.memory, ferry.yield and the WASI functions, and exports what the runner needs', () => {
  const module = new WebAssembly.Module(result.wasm);
  assert.deepEqual(importsOf(module).sort(), [
    'ferry.memory:memory', 'ferry.yield:function', 'wasi_snapshot_preview1.proc_exit:function',
  ]);
  const exports = exportsOf(module);
  for (const name of ['_start', 'memory', '__ferry_init_data', 'asyncify_start_unwind', 'asyncify_stop_unwind', 'asyncify_start_rewind',
    'asyncify_stop_rewind', 'asyncify_get_state']) assert.ok(exports.includes(name), `exports ${name}`);
  assert.equal(result.initialPages, 2);
  assert.deepEqual(result.wasiImports, ['proc_exit']);
  assert.throws(() => instantiate(result, { memory: new WebAssembly.Memory({ initial: 1, maximum: result.layout.totalPages, shared: true }) }),
    /memory/i, 'a memory smaller than the layout is refused at instantiation');
});

test('memory.size reads the virtual size and memory.grow bumps it, up to the maximum and no further', () => {
  const run = instantiate(result);
  const physical = run.memory.buffer.byteLength;
  assert.equal(run.exports.size(), 2);
  assert.equal(run.exports.grow(0), 2);
  assert.equal(run.exports.grow(3), 2, 'grow returns the old size');
  assert.equal(run.exports.size(), 5);
  assert.equal(run.view.getUint32(run.layout.sizeOffset, true), 5, 'the size lives in the reserved region');
  assert.equal(run.exports.grow(2), -1, 'past the maximum of 6 pages: -1');
  assert.equal(run.exports.grow(0xffffffff), -1, 'a huge delta does not wrap around');
  assert.equal(run.exports.size(), 5, 'a failed grow changes nothing');
  assert.equal(run.exports.grow(1), 5);
  assert.equal(run.exports.size(), 6);
  assert.equal(run.memory.buffer.byteLength, physical, 'the real memory never grows');
  assert.ok(run.u8.subarray(2 * WASM_PAGE_SIZE, 6 * WASM_PAGE_SIZE).every((b) => b === 0), 'the pages added are zero');
  run.view.setUint32(run.layout.sizeOffset, 4, true);
  assert.equal(run.exports.size(), 4, 'the runner sets the size (a destination writes the migrated one)');
});

test('data segments are applied by __ferry_init_data only, marking their pages; instantiating again keeps later writes', () => {
  const run = instantiate(result);
  assert.equal(run.u8[5000], 0, 'instantiation applies nothing');
  assert.deepEqual(markedPages(run), []);
  run.exports.__ferry_init_data();
  const text = (at: number, n: number) => Buffer.from(run.u8.subarray(at, at + n)).toString();
  assert.equal(text(5000, 13), 'first segment');
  assert.equal(text(70000, 6), 'second');
  assert.deepEqual(markedPages(run), [1, 17], 'the pages of each segment are marked');
  assert.ok(!Buffer.from(run.u8.subarray(0, run.layout.reservedBase)).includes('not applied'), 'a passive segment stays passive');
  run.u8.set(Buffer.from('written since'), 5000);
  const again = instantiate(result, { memory: run.memory });
  assert.equal(text(5000, 13), 'written since', 'a second instance over the same memory re-applies nothing');
  assert.equal(again.exports.size(), 2, 'and keeps the size');
});

test('memory.atomic.wait traps as it does on the program\'s own unshared memory (it would block forever on a shared one)', () => {
  const run = instantiate(result);
  assert.throws(() => run.exports.wait(), /unreachable/);
});
