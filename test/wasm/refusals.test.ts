/**
 * Every refusal gives its message, naming what was wrong: from the header
 * (before Binaryen), from the code, and from the options. A refusal is a
 * WasmModuleError (ERR_FERRY_WASM_MODULE), or an InvalidArgumentError for
 * a bad option; through loadProgram's worker it arrives as itself.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InvalidArgumentError, WasmModuleError } from '../../src/errors.js';
import { loadProgram } from '../../src/wasm/instrument.js';
import { wasmLayout } from '../../src/wasm/layout.js';
import { largestGuestPages, resolveMemory } from '../../src/wasm/memory-limits.js';
import { rewriteProgram } from '../../src/wasm/rewrite.js';
import { fileLimit } from '../waits.js';
import { SMALL, program, wat } from './harness.js';

fileLimit(import.meta.url, 60_000);

const START = '(func (export "_start"))';

function refuses(bytes: Uint8Array, message: RegExp, options: Parameters<typeof rewriteProgram>[1] = SMALL): void {
  assert.throws(() => rewriteProgram(bytes, options), (err: unknown) => {
    assert.ok(err instanceof WasmModuleError, `a WasmModuleError, got ${String(err)}`);
    assert.equal(err.code, 'ERR_FERRY_WASM_MODULE');
    assert.match(err.message, message);
    return true;
  });
}

test('not WebAssembly, a component, a truncated file: refused before Binaryen, naming what was found', () => {
  refuses(Buffer.from('#!/bin/sh\necho hi\n'), /not WebAssembly: the file does not start with the magic 00 61 73 6d .* it starts with 23 21 2f 62/);
  refuses(new Uint8Array(0), /starts with nothing \(empty\)/);
  refuses(Uint8Array.from([0, 0x61, 0x73, 0x6d, 0x0d, 0, 1, 0]), /a WebAssembly component/);
  refuses(Uint8Array.from([0, 0x61, 0x73, 0x6d, 2, 0, 0, 0]), /version 2, expected 1/);
  const good = wat(program(START));
  refuses(good.subarray(0, good.length - 3), /runs past the end of the file/);
});

test('imports ferry does not provide are named; wasi-threads and an imported memory have messages of their own', () => {
  refuses(wat(program(START, '1', '(import "env" "foo" (func $foo))')), /imports env\.foo, which ferry does not provide/);
  refuses(wat(program(START, '1', '(import "env" "foo" (func $foo)) (import "env" "g" (global $g i32))')),
    /imports (env\.foo and env\.g \(a global\)|env\.g \(a global\) and env\.foo), which ferry does not provide/);
  refuses(wat(program(START, '1', '(import "wasi" "thread-spawn" (func $s (param i32) (result i32)))')), /wasi\.thread-spawn: a wasi-threads program/);
  refuses(wat(`(module (import "env" "memory" (memory 1)) (export "memory" (memory 0)) ${START})`), /imports its memory \(env\.memory\)/);
});

test('memories ferry cannot take: none, several, 64-bit, shared, a maximum too large for the reserved region', () => {
  refuses(wat(`(module ${START})`), /has no memory/);
  refuses(wat(`(module (memory 1) (memory 1) (export "memory" (memory 0)) ${START})`), /declares 2 memories \(multi-memory\)/);
  refuses(wat(`(module (memory i64 1) (export "memory" (memory 0)) ${START})`), /64-bit memory \(memory64\)/);
  refuses(wat(program(START, '1 2 shared')), /shared memory \(a threads build\)/);
  refuses(wat(program(START, '1 65536')), /declares a maximum memory of 4294967296 bytes, which leaves no room .* at most \d+ bytes/, {});
});

test('not a WASI command: no _start, no exported memory, a _start with values, a start function, a name ferry reserves', () => {
  refuses(wat('(module (memory 1) (export "memory" (memory 0)) (func (export "main")))'), /not a WASI command: it exports no _start/);
  refuses(wat(`(module (memory 1) ${START})`), /does not export its memory as "memory"/);
  refuses(wat(program('(func (export "_start") (param i32))')), /_start takes or returns values/);
  refuses(wat(program(`${START} (func $init) (start $init)`)), /has a start function \(init\), which runs at every instantiation/);
  refuses(wat(program(`${START} (func (export "__ferry_init_data"))`)), /exports __ferry_init_data: names that start with __ferry_/);
});

test('code ferry cannot instrument is refused naming the instruction and its function', () => {
  refuses(wat(program(`(tag $e) (func $f (export "_start") (throw $e))`)), /uses exception handling, which Asyncify cannot unwind through \(throw \$e in function f\)/);
  refuses(wat(program('(func $f (export "_start") (return_call $f))')), /uses tail calls \(return_call in function f\)/);
  refuses(wat(program('(type $s (struct (field i32))) (func $f (export "_start") (drop (struct.new $s (i32.const 1))))')), /garbage collection \(GC\)/);
  refuses(wat(program('(func $f (export "_start") (drop (string.const "x")))')), /stringref strings, which ferry does not support \(string.const/);
  refuses(wat(program('(table $t 1 funcref) (func $f (export "_start") (table.set $t (i32.const 0) (ref.null func)))')),
    /a table mutated at run time.*\(table\.set \$t in function f\)/);
  refuses(wat(program('(func $f (export "_start") (local funcref))')), /function f has a local of type funcref, which Asyncify cannot save/);
  refuses(wat(program(`(global $v (mut v128) (v128.const i32x4 0 0 0 0)) ${START}`)), /mutable global 0 \(v\) is of type v128/);
  refuses(wat(program('(func $f (export "_start") (drop (i32x4.relaxed_trunc_f32x4_s (v128.const i32x4 0 0 0 0))))')),
    /uses WebAssembly features Node 20 cannot run/);
});

test('a binary Binaryen cannot read, or an invalid module, is refused as not valid', () => {
  const good = wat(program('(func (export "_start") (drop (i32.const 42)))'));
  const at = Buffer.from(good).indexOf(Buffer.from([0x41, 0x2a, 0x1a]));
  assert.ok(at > 0, 'found i32.const 42; drop');
  const badOpcode = Uint8Array.from(good);
  badOpcode[at + 2] = 0xd7;
  refuses(badOpcode, /not a valid WebAssembly module/);
  const badTypes = Uint8Array.from(good);
  badTypes[at + 2] = 0x45; // i32.eqz: leaves a value the function does not return
  refuses(badTypes, /not a valid WebAssembly module/);
});

test('a data segment outside the initial memory is refused (the original would not instantiate)', () => {
  refuses(wat(program('(data (i32.const 65530) "0123456789") (func (export "_start"))')),
    /data segment 0 .* of 10 bytes at offset 65530 lies outside its initial memory of 65536 bytes/);
});

test('without a declared maximum or an option, the maximum is the largest that leaves room for the reserved region', () => {
  const limits = { initialPages: 1, shared: false, memory64: false, customPageSize: false };
  const { options, layout } = resolveMemory(limits, { unwindBufferBytes: 65536 });
  assert.equal(options.maxMemoryBytes, largestGuestPages(65536) * 65536);
  assert.ok(layout.totalPages <= 65536, 'the whole memory fits in 4 GiB');
  assert.throws(() => wasmLayout(layout.guestMaxPages + 1, 65536), /leaves no room/, 'one page more would not');
  assert.equal(resolveMemory({ ...limits, maximumPages: 7 }).options.maxMemoryBytes, 7 * 65536, 'a declared maximum is taken as it is');
});

test('bad options name the option and the limit they break', () => {
  const bytes = wat(program(START, '2 8'));
  assert.throws(() => rewriteProgram(bytes, { maxMemoryBytes: 100_000 }), InvalidArgumentError);
  assert.throws(() => rewriteProgram(bytes, { maxMemoryBytes: 100_000 }), /--wasm-max-memory\) 100000: must be a positive multiple of 65536/);
  assert.throws(() => rewriteProgram(bytes, { maxMemoryBytes: 65536 }), /below the program's initial memory of 131072 bytes/);
  assert.throws(() => rewriteProgram(bytes, { maxMemoryBytes: 16 * 65536 }), /above the program's declared maximum of 524288 bytes/);
  assert.throws(() => rewriteProgram(bytes, { unwindBufferBytes: 1000 }), /unwind buffer: 1000 bytes must be a multiple of 4096 from 4096 to 3145728/);
});

test('loadProgram refuses the same way, from the header at once and from the code through its worker', async () => {
  await assert.rejects(loadProgram(wat(program(START, '1', '(import "env" "foo" (func $foo))')), SMALL, null),
    (err: unknown) => err instanceof WasmModuleError && /env\.foo/.test(err.message));
  await assert.rejects(loadProgram(wat(program('(func $f (export "_start") (return_call $f))')), SMALL, null),
    (err: unknown) => err instanceof WasmModuleError && /tail calls/.test(err.message));
});
