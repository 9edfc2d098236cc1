/**
 * WebAssembly programs as guests (issue 13): a program run by ferry prints
 * exactly what it prints under node:wasi; paused and resumed, or migrated
 * live mid-run (between two in-process sides), at moments inside a tight
 * loop, a sleep, heavy output, a deep recursion through indirect calls and
 * memory growth, it still prints exactly that (DESIGN.md invariant 8), and
 * at no moment do two copies run: the source prints nothing once its
 * destination runs (invariant 6). A client copying dirty pages while a
 * program runs holds an exact copy of its memory after a last sync, and at
 * every pause (invariant 1 for WebAssembly writers): the program's stores,
 * memory.fill, memory.copy and growth, and the system interface's host
 * writes (fd_read of files and standard input, random_get), run straight
 * through and paused and resumed (Asyncify unwinding and rewinding) while
 * the client copies. A host write the program itself never overwrites is
 * what host-writer (WebAssembly text, below) offers: in moments a later
 * store of the program to the same page can hide an unmarked host write.
 */
import assert from 'node:assert/strict';
import binaryen from 'binaryen';
import { test } from 'node:test';
import type { Guest } from '../../src/guest/guest.js';
import { decodeWasmVcpuState } from '../../src/guest/wasm-vcpu-state.js';
import { IncomingMigration } from '../../src/migration/incoming.js';
import { Migration } from '../../src/migration/migration.js';
import { loadProgram, type InstrumentedModule } from '../../src/wasm/instrument.js';
import { bounded, fileLimit, until } from '../waits.js';
import { program } from './harness.js';
import { OneCopy } from './one-copy.js';
import { pageCopy, sameBytes } from './page-copy.js';
import { instrumentedProgram, migrateProgram, programGuest, referenceOutput, saveAndRestore, scratch, sharedCache } from './program-harness.js';

fileLimit(import.meta.url, 240_000);
const { dir, cache: scratchCache } = scratch();
const cache = sharedCache();

/** The moments this file migrates at: each mode, long enough to be caught mid-run, short enough for a test. */
/** A sleep long enough (3 s of 5 ms sleeps) to be migrated or saved mid-run on a loaded machine. */
const SLOW_SLEEP = ['sleep', '600', '5'];
const MOMENTS: readonly (readonly string[])[] = [
  ['loop', '640'],
  ['sleep', '160', '5'],
  ['output', '60000'],
  ['deep', '120', '600'],
  ['grow', '200'],
];
/**
 * The same, with growth paced so that a migration catches it growing in
 * every pass (94 MiB over ~3 s), and a longer sleep: a throttle slows
 * only running code, so a sleeping program ends on the clock, and 0.8 s
 * of sleeps once ended before a migration on a loaded machine could.
 */
const MIGRATION_MOMENTS = MOMENTS.map((m) => (m[0] === 'grow' ? ['growslow', '200', '10'] : m[0] === 'sleep' ? SLOW_SLEEP : m));
/**
 * The source's throttle once it is caught mid-run, until it has migrated:
 * it runs on at a tenth of its speed, so a loaded machine cannot let it end
 * before the migration begins (600 rounds of deep, about 1 s, once did).
 */
const SLOWED_PERCENT = 90;

test('a program run by ferry prints what it prints under node:wasi', async () => {
  const module = await instrumentedProgram('moments', cache);
  for (const args of MOMENTS) {
    const ref = await referenceOutput('moments', args);
    assert.equal(ref.code, 0, `moments ${args.join(' ')} under node:wasi`);
    const g = await programGuest(module, 'moments', args, dir);
    await g.guest.cont();
    assert.equal(await g.exited, 0, `moments ${args.join(' ')} exit status`);
    assert.equal(g.out.read(), ref.stdout, `moments ${args.join(' ')}`);
    await g.guest.destroy();
  }
});

test('paused and resumed at moments mid-run, a program prints the same', async () => {
  const module = await instrumentedProgram('moments', cache);
  for (const args of MOMENTS) {
    const ref = await referenceOutput('moments', args);
    const g = await programGuest(module, 'moments', args, dir);
    await g.guest.cont();
    let pauses = 0;
    let done = false;
    void g.exited.then(() => { done = true; });
    while (!done && pauses < 20) {
      await new Promise((r) => setTimeout(r, 5 + Math.random() * 20));
      if (done) break;
      await g.guest.pause();
      pauses++;
      const [state] = g.guest.vcpuStateBytes();
      assert.ok(state.length > 0);
      await g.guest.resume();
    }
    assert.equal(await g.exited, 0);
    assert.equal(g.out.read(), ref.stdout, `moments ${args.join(' ')} after ${pauses} pauses`);
    assert.ok(pauses > 0 || args[0] === 'output', `moments ${args.join(' ')} was never caught running`);
    await g.guest.destroy();
  }
});

test('migrated live mid-run, the source\'s output and then the destination\'s are the program\'s; one copy runs at a time', async () => {
  const module = await instrumentedProgram('moments', cache);
  for (const args of MIGRATION_MOMENTS) {
    const what = `moments ${args.join(' ')}`;
    const ref = await referenceOutput('moments', args);
    const src = await programGuest(module, 'moments', args, dir);
    const once = new OneCopy('source', src.guest);
    await src.guest.cont();
    // Wait until the program has printed something: it is then mid-run.
    await until(`${what} to print`, () => src.out.read().length > 0, 30_000, 2);
    src.guest.throttle(SLOWED_PERCENT);
    const dst = await migrateProgram(src.guest, src.program, dir, once.destination('source', src.out, 'destination')).catch((err: Error) => {
      throw new Error(`${what}: ${err.message}`, { cause: err });
    });
    assert.equal(src.guest.runState, 'postmigrate');
    assert.equal(await dst.exited, 0, `${what} at the destination`);
    const source = src.out.read();
    assert.ok(source.length < ref.stdout.length, `${what} finished before it migrated`);
    assert.equal(source + dst.out.read(), ref.stdout, what);
    once.check(what);
    await Promise.all([src.guest.destroy(), dst.guest.destroy()]);
  }
});

/**
 * A program whose pages only the system interface writes (it stores only
 * its iovec, on page 0): each round random_get fills one of the 4 KiB pages
 * from 128 KiB (its first 256 rounds grow memory by 64 KiB every 16 and
 * write into the newest part) and fd_read fills one of the pages from
 * 64 KiB with standard input, until its end. Nothing else ever writes those
 * pages: a host write left unmarked is lost from the copy for good, where
 * in moments a later store of the program to the same page may hide it.
 */
const HOST_WRITER = program(`
 (func (export "_start") (local $i i32)
  (loop $round
   (if (i32.and (i32.lt_u (local.get $i) (i32.const 256)) (i32.eqz (i32.and (local.get $i) (i32.const 15))))
    (then (drop (memory.grow (i32.const 1)))))
   (drop (call $random_get (i32.add (i32.const 131072) (i32.shl (i32.and (local.get $i) (i32.const 255)) (i32.const 12))) (i32.const 4096)))
   (i32.store (i32.const 0) (i32.add (i32.const 65536) (i32.shl (i32.and (local.get $i) (i32.const 15)) (i32.const 12))))
   (i32.store (i32.const 4) (i32.const 4096))
   (drop (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
   (local.set $i (i32.add (local.get $i) (i32.const 1)))
   (br_if $round (i32.lt_u (local.get $i) (i32.const 6000)))))`, '2',
`(import "wasi_snapshot_preview1" "random_get" (func $random_get (param i32 i32) (result i32)))
 (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))`);

/** The binary of a module in WebAssembly text, with Binaryen's default features (as a compiler for ferry's targets writes one). */
function mvpBinary(text: string): Uint8Array {
  const m = binaryen.parseText(text);
  try {
    return m.emitBinary();
  } finally {
    m.dispose();
  }
}

/**
 * The writers invariant 1 is checked on (DESIGN.md section 4), each run
 * straight through and again paused and resumed every few syncs while the
 * client copies (each pause unwinds the stack with Asyncify, each resume
 * rewinds it): the program's own stores with memory.fill, memory.copy and
 * growth; and the system interface's host writes, which mark their pages
 * through the vCPU's host view (wasm-vcpu.ts): fd_read's file contents and
 * standard input, random_get's bytes.
 */
const WRITERS: readonly { readonly name: string; readonly args: readonly string[]; readonly grows: boolean }[] = [
  { name: 'moments', args: ['grow', '64'], grows: true },
  { name: 'moments', args: ['files', '/work', '60'], grows: false },
  { name: 'moments', args: ['random', '1500'], grows: false },
  { name: 'host-writer', args: [], grows: true },
];
const WRITER_WASI = {
  preopens: [{ guestPath: '/work', files: new Map<string, Uint8Array>() }],
  stdin: Uint8Array.from({ length: 1024 * 1024 }, (_, i) => (Math.imul(i, 2654435761) >>> 24) | 1),
};

/** Bytes of the stack a paused program's vCPU unwound. */
function unwoundBytes(m: InstrumentedModule, guest: Guest): number {
  const [state] = guest.vcpuStateBytes();
  const limits = { maxPages: m.layout.guestMaxPages, unwindBytes: m.layout.unwindBufferBytes };
  return decodeWasmVcpuState(state, m.mutableGlobals.map((x) => x.type), limits).unwound.length;
}

/**
 * Run a writer while a client copies its dirty pages (pausing and resuming
 * it at once and every 4 syncs if `pauses`, the copy checked at each
 * pause); after it ends and a last sync the copy is the whole block.
 */
async function copyWhileRunning(module: InstrumentedModule, w: (typeof WRITERS)[number], pauses: boolean): Promise<string> {
  const what = `${[w.name, ...w.args].join(' ')}${pauses ? ', paused and resumed' : ''}`;
  const g = await programGuest(module, w.name, w.args, dir, 1n, WRITER_WASI);
  const block = g.guest.blocks[0];
  // The client registers with the program stopped just after it started (its memory at its initial size), then copies while it runs.
  await g.guest.cont();
  await g.guest.pause();
  const c = pageCopy(block);
  await g.guest.resume();
  let [paused, unwound, syncs, copied, done] = [0, 0, 0, 0, false];
  void g.exited.then(() => { done = true; });
  try {
    for (; !done; syncs++) {
      copied += c.harvest();
      if (pauses && syncs % 4 === 0) {
        await g.guest.pause();
        copied += c.harvest(); // the writers are stopped: the copy is exact after this sync
        assert.ok(sameBytes(c.copy, block, 0, block.visiblePages()), `${what}: the copy differs from memory at pause ${++paused}`);
        if (unwoundBytes(module, g.guest) > 0) unwound++;
        await g.guest.resume();
      }
      await new Promise((r) => setImmediate(r));
    }
    assert.equal(await g.exited, 0, `${what}: exit status`);
    await g.guest.pause();
    copied += c.harvest();
    const end = block.visiblePages();
    if (pauses) assert.ok(unwound > 0, `${what}: no pause caught it with a stack to unwind (${paused} pauses)`);
    if (w.grows) {
      assert.ok(end > c.registeredPages, `${what}: memory did not grow past its ${c.registeredPages} pages at registration`);
      assert.ok(sameBytes(c.copy, block, c.registeredPages, end), `${what}: the copy differs from memory grown after registration`);
    }
    assert.ok(sameBytes(c.copy, block, 0, block.pages), `${what}: the copy differs from the program's memory`);
    return `${what}: ${syncs} syncs copied ${copied} pages, ${paused} pauses (${unwound} unwound a stack), ${c.registeredPages} -> ${end} pages in use`;
  } finally {
    c.release();
    await g.guest.destroy();
  }
}

test('a client copying dirty pages while a program writes memory (stores, bulk memory, growth, host writes) holds it exactly at each pause and after a last sync', async (t) => {
  const modules = {
    moments: await instrumentedProgram('moments', cache),
    'host-writer': await loadProgram(mvpBinary(HOST_WRITER), { maxMemoryBytes: 4 * 1024 * 1024 }, scratchCache),
  };
  for (const pauses of [false, true]) {
    for (const w of WRITERS) {
      await t.test(`${[w.name, ...w.args].join(' ')}${pauses ? ', paused and resumed' : ''}`, async (s) => s.diagnostic(await copyWhileRunning(modules[w.name as keyof typeof modules], w, pauses)));
    }
  }
});

test('migrated twice (A to B to C), a program prints what it prints unmigrated; one copy runs at a time', async () => {
  const module = await instrumentedProgram('moments', cache);
  const args = ['loop', '1600'];
  const ref = await referenceOutput('moments', args);
  const a = await programGuest(module, 'moments', args, dir);
  const once = new OneCopy('A', a.guest);
  await a.guest.cont();
  await until('moments to print at A', () => a.out.read().length > 0, 30_000, 2);
  const b = await migrateProgram(a.guest, a.program, dir, once.destination('A', a.out, 'B'));
  await until('moments to print at B', () => b.out.read().length > 0, 30_000, 2);
  const c = await migrateProgram(b.guest, b.program, dir, once.destination('B', b.out, 'C'));
  assert.equal(await c.exited, 0);
  assert.ok(a.out.read().length > 0 && b.out.read().length > 0, 'each of A and B ran part of it');
  assert.equal(a.out.read() + b.out.read() + c.out.read(), ref.stdout);
  once.check('A to B to C');
  await Promise.all([a.guest.destroy(), b.guest.destroy(), c.guest.destroy()]);
});

test('saved to a file mid-run and restored from it, a program prints what it prints unmigrated', async () => {
  const module = await instrumentedProgram('moments', cache);
  const args = SLOW_SLEEP;
  const ref = await referenceOutput('moments', args);
  const src = await programGuest(module, 'moments', args, dir);
  await src.guest.cont();
  await until('moments to print', () => src.out.read().length > 0, 30_000, 2);
  const restored = await saveAndRestore(src.guest, src.program, dir);
  assert.equal(src.guest.runState, 'postmigrate');
  assert.equal(await restored.exited, 0);
  assert.ok(src.out.read().length < ref.stdout.length, 'it finished before it was saved');
  assert.equal(src.out.read() + restored.out.read(), ref.stdout);
  await Promise.all([src.guest.destroy(), restored.guest.destroy()]);
});

test('at resume the destination\'s memory, data segments included, equals the source\'s; then it continues', async () => {
  const module = await instrumentedProgram('moments', cache);
  const args = ['deep', '120', '600'];
  const ref = await referenceOutput('moments', args);
  const src = await programGuest(module, 'moments', args, dir);
  await src.guest.cont();
  await until('moments to print', () => src.out.read().length > 0, 30_000, 2);
  await src.guest.stop(); // migrated while stopped, it arrives stopped: both memories can be compared at rest
  const dst = await migrateProgram(src.guest, src.program, dir);
  assert.equal(dst.guest.runState, 'paused');
  const [a, b] = [src.guest.blocks[0], dst.guest.blocks[0]];
  assert.equal(b.visiblePages(), a.visiblePages());
  assert.ok(Buffer.from(a.bytes).equals(Buffer.from(b.bytes)), 'the destination\'s memory differs from the source\'s');
  await dst.guest.cont();
  assert.equal(await dst.exited, 0);
  assert.equal(src.out.read() + dst.out.read(), ref.stdout);
  await Promise.all([src.guest.destroy(), dst.guest.destroy()]);
});

test('a migration refused by a destination running another program leaves the program running here, to the same output', async () => {
  const module = await instrumentedProgram('moments', cache);
  const other = await instrumentedProgram('call-dense', cache);
  const args = ['sleep', '60', '5'];
  const ref = await referenceOutput('moments', args);
  const src = await programGuest(module, 'moments', args, dir);
  await src.guest.cont();
  await until('moments to print', () => src.out.read().length > 0, 30_000, 2);
  const incoming = await IncomingMigration.listen('tcp:127.0.0.1:0', { wasm: { instrumented: other, wasi: { args: ['call-dense', '1'], env: [], seed: 1n } } });
  const r = await bounded('the refused migration to end', Migration.start(src.guest, incoming.uri, {}).done(), 30_000);
  assert.equal(r.status, 'failed');
  assert.match(r.error ?? '', /refused.*program/);
  await bounded('the destination to end', incoming.done(), 30_000);
  assert.equal(src.guest.runState, 'running', 'the source runs on');
  assert.equal(await src.exited, 0);
  assert.equal(src.out.read(), ref.stdout, 'its output is whole, as if nothing happened');
  await src.guest.destroy();
});

test('a running program destroyed (as after its migration) is not reported as failed: its threads end by destroy, not by an error', async () => {
  const module = await instrumentedProgram('moments', cache);
  const g = await programGuest(module, 'moments', ['loop', '640'], dir);
  const errors: Error[] = [];
  g.guest.on('error', (err: Error) => errors.push(err));
  await g.guest.cont();
  await until('the program to run', () => g.out.read().length > 0, 30_000);
  await g.guest.destroy();
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(errors.map((e) => e.message), []);
});
