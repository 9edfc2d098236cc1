/**
 * A real C program (test/fixtures/wasm/hello.c, built by clang for WASI and
 * committed): loaded through loadProgram (its worker and a cache of the
 * test's own), it prints what the uninstrumented program prints, marks
 * every page it changes, and, paused in the middle (deep in a recursion)
 * and resumed in a fresh instance over a copy of its memory, prints the
 * same again: source output followed by destination output.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ASYNCIFY_STATE } from '../../src/wasm/asyncify.js';
import { loadProgram, type InstrumentedModule } from '../../src/wasm/instrument.js';
import { fileLimit } from '../waits.js';
import { changedPages, clearMarks, ferryMemory, instantiate, markedPages, snapshot, type Run } from './harness.js';
import { exitCodeOf, wasiStub } from './wasi-stub.js';

fileLimit(import.meta.url, 60_000);

const BYTES = readFileSync(new URL('../../../test/fixtures/wasm/hello.wasm', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'ferry-wasm-program-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** The uninstrumented program's output. */
function referenceOutput(): string {
  let memory: WebAssembly.Memory | undefined;
  const stub = wasiStub(() => memory as WebAssembly.Memory);
  const instance = new WebAssembly.Instance(new WebAssembly.Module(BYTES), { wasi_snapshot_preview1: stub.imports });
  memory = instance.exports.memory as WebAssembly.Memory;
  assert.equal(exitCodeOf(() => (instance.exports._start as () => void)()), 0);
  return stub.output();
}

let loaded: Promise<InstrumentedModule> | undefined;
const program = () => (loaded ??= loadProgram(BYTES, { maxMemoryBytes: 256 * 65536, unwindBufferBytes: 65536 }, { dir }));

/** A run whose WASI stub marks what it writes, as ferry's WASI layer does. */
function start(p: InstrumentedModule, options: { memory?: WebAssembly.Memory; onOutput?: (text: string) => void; onYield?: (run: Run) => void }) {
  let run: Run | undefined;
  const mark = (address: number, length: number) => {
    if (run === undefined) return;
    for (let page = address >>> 12; page <= (address + length - 1) >>> 12; page++) run.u8[p.layout.marksOffset + page] = 1;
  };
  const stub = wasiStub(() => (run as Run).memory, { onOutput: options.onOutput, onHostWrite: mark });
  run = instantiate(p, { memory: options.memory, onYield: options.onYield, wasi: stub.imports });
  return { run, stub };
}

test('the instrumented program prints what the original prints, and every page it changes is marked', async () => {
  const p = await program();
  assert.deepEqual([...p.wasiImports].sort(), ['fd_close', 'fd_fdstat_get', 'fd_seek', 'fd_write', 'proc_exit']);
  assert.ok(p.mutableGlobals.some((g) => g.type === 'i32'), 'the stack pointer is a mutable global');
  const { run, stub } = start(p, {});
  run.exports.__ferry_init_data();
  clearMarks(run);
  const before = snapshot(run);
  assert.equal(exitCodeOf(() => run.exports._start()), 0);
  assert.equal(stub.output(), referenceOutput());
  assert.match(stub.output(), /^hello from a WASI program\nheap sum \d+\nfib\(20\) = 6765/);
  const changed = changedPages(before, snapshot(run));
  const marked = new Set(markedPages(run));
  assert.ok(changed.length > 700, `the heap of 3 MiB was written (${changed.length} pages)`);
  assert.deepEqual(changed.filter((page) => !marked.has(page)), [], 'no changed page is unmarked');
  assert.ok(run.view.getUint32(run.layout.sizeOffset, true) > p.initialPages, 'malloc grew the memory');
});

test('paused deep in a recursion and resumed in a fresh instance over a copy of memory, it prints the same', async () => {
  const p = await program();
  const { unwindDataOffset, unwindBufferOffset, unwindBufferBytes } = p.layout;
  const source = start(p, {
    onOutput: (text) => {
      if (text.includes('fib(22)')) source.run.view.setInt32(p.layout.pollOffset, 1, true); // a pause request
    },
    onYield: (run) => {
      run.view.setInt32(p.layout.pollOffset, 0, true);
      run.exports.asyncify_start_unwind(unwindDataOffset);
    },
  });
  source.run.view.setUint32(unwindDataOffset, unwindBufferOffset, true);
  source.run.view.setUint32(unwindDataOffset + 4, unwindBufferOffset + unwindBufferBytes, true);
  source.run.exports.__ferry_init_data();
  assert.equal(exitCodeOf(() => source.run.exports._start()), 0);
  assert.equal(source.run.exports.asyncify_get_state(), ASYNCIFY_STATE.unwinding, 'it paused');
  source.run.exports.asyncify_stop_unwind();
  const saved = source.run.view.getUint32(unwindDataOffset, true) - unwindBufferOffset;
  assert.ok(saved > 100, `the stack was saved (${saved} bytes)`);

  const memory = ferryMemory(p.layout);
  new Uint8Array(memory.buffer).set(source.run.u8);
  const destination = start(p, {
    memory,
    onYield: (run) => {
      if (run.exports.asyncify_get_state() === ASYNCIFY_STATE.rewinding) run.exports.asyncify_stop_rewind();
    },
  });
  const globals = (run: Run) => run.instance.exports as unknown as Record<string, { value: number | bigint }>;
  for (const g of p.mutableGlobals) globals(destination.run)[g.exportName].value = globals(source.run)[g.exportName].value;
  destination.run.exports.asyncify_start_rewind(unwindDataOffset);
  assert.equal(exitCodeOf(() => destination.run.exports._start()), 0);
  assert.ok(source.stub.output().includes('fib(22)') && !source.stub.output().includes('lcg'), 'the pause fell in the middle');
  assert.equal(source.stub.output() + destination.stub.output(), referenceOutput());
});
