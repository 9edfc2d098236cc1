/**
 * Real programs this project did not write (SQLite, zstd), migrated live at
 * several moments of their run, print byte for byte what they print under
 * node:wasi (DESIGN.md invariant 8). Each moment's stack depth (the bytes
 * of its unwound stack) is recorded in the test's diagnostics. The
 * instrumented modules are cached in node_modules/.cache, shared by the
 * test files (cold, SQLite's instrumentation takes about a minute).
 *
 * At each moment the source is throttled to a tenth of its speed (90 %,
 * Guest.throttle) before the migration starts: it still runs, and dirties
 * pages, through the whole pre-copy, but a loaded machine can no longer let
 * it reach its end before the migration begins (it did on CI, twice, when
 * the moment was close to the end). The destination runs unthrottled.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fileLimit, until } from '../waits.js';
import { decodeWasmVcpuState } from '../../src/guest/wasm-vcpu-state.js';
import { instrumentedProgram, migrateProgram, programGuest, referenceOutput, scratch, sharedCache } from './program-harness.js';

fileLimit(import.meta.url, 600_000);
const { dir } = scratch();

/** The source's throttle from the moment it is caught until it has migrated (see the header). */
const SLOWED_PERCENT = 90;

/** The programs, their arguments, and after how many lines of output each migration starts (six moments each: ten made the suite's longest file). */
const PROGRAMS = [
  { name: 'sqlite-load', args: ['60000', '7'], afterLines: [1, 8, 20, 33, 47, 55] },
  { name: 'zstd-roundtrip', args: ['16', '3', '7'], afterLines: [1, 8, 20, 33, 47, 55] },
] as const;

for (const p of PROGRAMS) {
  test(`${p.name} migrated live at ${p.afterLines.length} moments prints what it prints under node:wasi`, async (t) => {
    const module = await instrumentedProgram(p.name, sharedCache());
    const ref = await referenceOutput(p.name, p.args);
    assert.equal(ref.code, 0);
    const lines = ref.stdout.split('\n').length;
    for (const after of p.afterLines) {
      assert.ok(after < lines - 1, `${p.name} prints more than ${after} lines`);
      const src = await programGuest(module, p.name, p.args, dir);
      await src.guest.cont();
      await until(`${p.name} to print ${after} lines`, () => src.out.read().split('\n').length > after, 60_000, 1);
      src.guest.throttle(SLOWED_PERCENT);
      const dst = await migrateProgram(src.guest, src.program, dir);
      const [state] = src.guest.vcpuStateBytes();
      const m = module;
      const saved = decodeWasmVcpuState(state, m.mutableGlobals.map((g) => g.type), { maxPages: m.layout.guestMaxPages, unwindBytes: m.layout.unwindBufferBytes });
      t.diagnostic(`${p.name}: migrated after ${src.out.read().split('\n').length - 1} lines, unwound stack ${saved.unwound.length} bytes, downtime ${dst.downtimeMs.toFixed(1)} ms`);
      assert.equal(await dst.exited, 0);
      assert.ok(src.out.read().length < ref.stdout.length, `${p.name} finished before it migrated`);
      assert.equal(src.out.read() + dst.out.read(), ref.stdout, `${p.name} migrated after ${after} lines`);
      await Promise.all([src.guest.destroy(), dst.guest.destroy()]);
    }
  });
}
