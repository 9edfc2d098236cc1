/**
 * Real programs this project did not write (SQLite, zstd), migrated live at
 * several moments of their run, print byte for byte what they print under
 * node:wasi (DESIGN.md invariant 8). Each moment's stack depth (the bytes
 * of its unwound stack) is recorded in the test's diagnostics. The
 * instrumented modules are cached in node_modules/.cache, shared by the
 * test files (cold, SQLite's instrumentation takes about a minute).
 *
 * The moments are one run's: the program starts once, is migrated at the
 * first moment, its destination at the next, and so on (A to B to C ...),
 * and each guest's output is checked as it migrates on: what the guests
 * printed up to each moment is what node:wasi prints up to there, and all
 * of it together is node:wasi's output. (Each moment used to restart the
 * program, which ran it six times over: the suite's longest file. A
 * migration at a moment is the same migration either way; in a chain every
 * one but the first also moves a guest that arrived by migration.)
 *
 * At each moment the guest is throttled to a tenth of its speed (90 %,
 * Guest.throttle) before the migration starts: it still runs, and dirties
 * pages, through the whole pre-copy, but a loaded machine can no longer let
 * it reach its end before the migration begins (it did on CI, twice, when
 * the moment was close to the end). Each destination runs unthrottled.
 * Every other migration goes on two channels (multifd).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fileLimit, until } from '../waits.js';
import type { Guest } from '../../src/guest/guest.js';
import type { GuestProgram } from '../../src/guest/wasm-program.js';
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
    /** What the guests that have migrated on printed, in order. */
    let before = '';
    let at: { guest: Guest; out: { read(): string }; exited: Promise<number>; program: GuestProgram } = await programGuest(module, p.name, p.args, dir);
    await at.guest.cont();
    for (const [i, after] of p.afterLines.entries()) {
      assert.ok(after < lines - 1, `${p.name} prints more than ${after} lines`);
      const here = at;
      await until(`${p.name} to print ${after} lines`, () => (before + here.out.read()).split('\n').length > after, 60_000, 1);
      here.guest.throttle(SLOWED_PERCENT);
      // Every other moment migrates on two channels (multifd): the program's memory split across them.
      const channels = i % 2 === 1 ? 2 : 0;
      const dst = await migrateProgram(here.guest, here.program, dir, undefined, channels);
      assert.equal(dst.channels, channels, 'the channels the destination saw');
      const [state] = here.guest.vcpuStateBytes();
      const m = module;
      const saved = decodeWasmVcpuState(state, m.mutableGlobals.map((g) => g.type), { maxPages: m.layout.guestMaxPages, unwindBytes: m.layout.unwindBufferBytes });
      before += here.out.read();
      t.diagnostic(`${p.name}: migrated after ${before.split('\n').length - 1} lines, unwound stack ${saved.unwound.length} bytes, downtime ${dst.downtimeMs.toFixed(1)} ms${channels > 0 ? `, on ${channels} channels` : ''}`);
      assert.ok(before.length < ref.stdout.length, `${p.name} finished before it migrated after ${after} lines`);
      assert.equal(before, ref.stdout.slice(0, before.length), `${p.name}: the output up to its migration after ${after} lines`);
      await here.guest.destroy();
      at = dst;
    }
    assert.equal(await at.exited, 0);
    assert.equal(before + at.out.read(), ref.stdout, `${p.name} migrated at ${p.afterLines.join(', ')} lines`);
    await at.guest.destroy();
  });
}
