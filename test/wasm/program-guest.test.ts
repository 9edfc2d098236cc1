/**
 * WebAssembly programs as guests (issue 13): a program run by ferry prints
 * exactly what it prints under node:wasi; paused and resumed, or migrated
 * live mid-run (between two in-process sides), at moments inside a tight
 * loop, a sleep, heavy output, a deep recursion through indirect calls and
 * memory growth, it still prints exactly that (DESIGN.md invariant 8). A
 * client copying dirty pages while the program runs holds an exact copy of
 * its memory after a last sync (invariant 1 for WebAssembly writers).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PAGE_SIZE } from '../../src/memory/page.js';
import { IncomingMigration } from '../../src/migration/incoming.js';
import { Migration } from '../../src/migration/migration.js';
import { bounded, fileLimit, until } from '../waits.js';
import { instrumentedProgram, migrateProgram, programGuest, referenceOutput, saveAndRestore, scratch, sharedCache } from './program-harness.js';

fileLimit(import.meta.url, 240_000);
const { dir } = scratch();
const cache = sharedCache();

/** The moments this file migrates at: each mode, long enough to be caught mid-run, short enough for a test. */
const MOMENTS: readonly (readonly string[])[] = [
  ['loop', '640'],
  ['sleep', '160', '5'],
  ['output', '60000'],
  ['deep', '120', '600'],
  ['grow', '200'],
];
/** The same, with growth paced so that a migration catches it growing in every pass (94 MiB over ~3 s). */
const MIGRATION_MOMENTS = MOMENTS.map((m) => (m[0] === 'grow' ? ['growslow', '200', '10'] : m));

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

test('migrated live mid-run, the source\'s output and then the destination\'s are the program\'s', async () => {
  const module = await instrumentedProgram('moments', cache);
  for (const args of MIGRATION_MOMENTS) {
    const ref = await referenceOutput('moments', args);
    const src = await programGuest(module, 'moments', args, dir);
    await src.guest.cont();
    // Wait until the program has printed something: it is then mid-run.
    await until(`moments ${args.join(' ')} to print`, () => src.out.read().length > 0, 30_000, 2);
    const dst = await migrateProgram(src.guest, src.program, dir).catch((err: Error) => {
      throw new Error(`moments ${args.join(' ')}: ${err.message}`, { cause: err });
    });
    assert.equal(src.guest.runState, 'postmigrate');
    assert.equal(await dst.exited, 0, `moments ${args.join(' ')} at the destination`);
    const source = src.out.read();
    assert.ok(source.length < ref.stdout.length, `moments ${args.join(' ')} finished before it migrated`);
    assert.equal(source + dst.out.read(), ref.stdout, `moments ${args.join(' ')}`);
    await Promise.all([src.guest.destroy(), dst.guest.destroy()]);
  }
});

test('a client copying dirty pages while the program runs holds its memory exactly after a last sync', async () => {
  const module = await instrumentedProgram('moments', cache);
  const g = await programGuest(module, 'moments', ['grow', '64'], dir);
  const block = g.guest.blocks[0];
  const client = block.log.register();
  const copy = new Uint8Array(block.byteLength);
  const bits = new Int32Array(Math.ceil(block.pages / 32));
  const harvest = (): number => {
    const taken = client.syncAndTake(0, block.pages, bits);
    for (let w = 0; w < bits.length; w++) {
      for (let b = 0; b < 32; b++) {
        if ((bits[w] & (1 << b)) === 0) continue;
        const p = w * 32 + b;
        copy.set(block.bytes.subarray(p * PAGE_SIZE, (p + 1) * PAGE_SIZE), p * PAGE_SIZE);
      }
    }
    return taken;
  };
  try {
    await g.guest.cont();
    let copied = 0;
    let done = false;
    void g.exited.then(() => { done = true; });
    while (!done) {
      copied += harvest();
      await new Promise((r) => setImmediate(r));
    }
    await g.guest.pause();
    copied += harvest();
    assert.ok(copied > 0);
    assert.ok(block.log.everWrittenCount > 0);
    assert.ok(Buffer.from(copy).equals(Buffer.from(block.bytes)), 'the copy differs from the program\'s memory');
  } finally {
    client.unregister();
    await g.guest.destroy();
  }
});

test('migrated twice (A to B to C), a program prints what it prints unmigrated', async () => {
  const module = await instrumentedProgram('moments', cache);
  const args = ['loop', '1600'];
  const ref = await referenceOutput('moments', args);
  const a = await programGuest(module, 'moments', args, dir);
  await a.guest.cont();
  await until('moments to print at A', () => a.out.read().length > 0, 30_000, 2);
  const b = await migrateProgram(a.guest, a.program, dir);
  await until('moments to print at B', () => b.out.read().length > 0, 30_000, 2);
  const c = await migrateProgram(b.guest, b.program, dir);
  assert.equal(await c.exited, 0);
  assert.ok(a.out.read().length > 0 && b.out.read().length > 0, 'each of A and B ran part of it');
  assert.equal(a.out.read() + b.out.read() + c.out.read(), ref.stdout);
  await Promise.all([a.guest.destroy(), b.guest.destroy(), c.guest.destroy()]);
});

test('saved to a file mid-run and restored from it, a program prints what it prints unmigrated', async () => {
  const module = await instrumentedProgram('moments', cache);
  const args = ['sleep', '120', '5'];
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
