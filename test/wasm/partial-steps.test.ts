/**
 * The benchmark's partial modules (InstrumentOptions.steps): the steps
 * switched off are part of the identity (the cache never mixes a partial
 * module with the full one, whose identity they leave unchanged); a module
 * built without Asyncify runs on ferry's runner to its exit; a guest
 * running a partial module is refused by Migration.start.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { Guest } from '../../src/guest/guest.js';
import { Migration } from '../../src/migration/migration.js';
import { loadProgram } from '../../src/wasm/instrument.js';
import { programIdentity } from '../../src/wasm/program-identity.js';
import { bounded, fileLimit } from '../waits.js';
import { exportsOf, program, wat } from './harness.js';

fileLimit(import.meta.url, 60_000);

const dir = mkdtempSync(join(tmpdir(), 'ferry-wasm-partial-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const BYTES = wat(program('(func (export "_start") (i32.store (i32.const 0) (i32.const 42)))', '1 4'));
const OPTIONS = { maxMemoryBytes: 4 * 65536, unwindBufferBytes: 4096 };

test('the steps switched off are part of the identity; all steps on leave it unchanged', () => {
  const full = programIdentity(BYTES, OPTIONS);
  assert.equal(programIdentity(BYTES, { ...OPTIONS, steps: undefined }), full);
  const noAsyncify = programIdentity(BYTES, { ...OPTIONS, steps: { marks: true, polls: true, asyncify: false } });
  const noMarks = programIdentity(BYTES, { ...OPTIONS, steps: { marks: false, polls: true, asyncify: true } });
  assert.notEqual(noAsyncify, full);
  assert.notEqual(noMarks, full);
  assert.notEqual(noMarks, noAsyncify);
});

test('a module without Asyncify is cached apart, runs to its exit on the runner, and is never migrated', async () => {
  const cache = { dir: join(dir, 'cache') };
  const full = await loadProgram(BYTES, OPTIONS, cache);
  const partial = await loadProgram(BYTES, { ...OPTIONS, steps: { asyncify: false } }, cache);
  assert.equal(full.partial, undefined);
  assert.deepEqual(partial.partial, { marks: true, polls: true, asyncify: false });
  assert.notEqual(partial.identity, full.identity);
  assert.ok(exportsOf(full.module).some((e) => e.startsWith('asyncify_')));
  assert.ok(!exportsOf(partial.module).some((e) => e.startsWith('asyncify_')), 'the cache handed back the full module');
  const again = await loadProgram(BYTES, { ...OPTIONS, steps: { marks: true, polls: true, asyncify: false } }, cache);
  assert.equal(again.identity, partial.identity);
  const guest = await Guest.create({ program: { instrumented: partial, wasi: { args: ['t'], env: [], seed: 1n } } });
  try {
    const exited = new Promise<number>((resolve) => guest.once('exit', resolve));
    await guest.cont();
    assert.equal(await bounded('the partial program to exit', exited, 20_000), 0);
    assert.equal(new DataView(guest.blocks[0].bytes.buffer).getInt32(0, true), 42);
    assert.throws(() => Migration.start(guest, 'tcp:127.0.0.1:1'), { code: 'ERR_FERRY_INVALID_ARGUMENT', message: /partially instrumented/ });
  } finally {
    await guest.destroy();
  }
});
