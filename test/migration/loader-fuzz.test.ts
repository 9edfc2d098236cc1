/**
 * Property-based fuzzing of the loader (the destination's whole input
 * path: decoder, END's totals, sections, the GO handshake) with fast-check.
 * Each mutated stream is restored by a real LoaderSession from a file; the
 * main thread's part is played by a port that accepts only the sections a
 * destination would (one vCPU, the device `app/x` at version 2). Each run:
 * the session ends once, failed with a reason that names the rule broken
 * or completed; nothing else escapes; RAM never grows past the limits; and
 * whenever it reaches GO, the guest it would run is exactly the one that
 * was sent (RAM, vCPU state, device), so no mutation forges a guest.
 * `npm test` runs FERRY_LOADER_FUZZ_RUNS (default 300); the campaign in
 * RELIABILITY.md ran 10,000.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { DeviceRegistry, type SavedSection } from '../../src/guest/device-state.js';
import { RamBlock } from '../../src/memory/ram-block.js';
import { MIN_FRAME_BYTES } from '../../src/migration/incoming.js';
import { LoaderSession } from '../../src/migration/loader-session.js';
import type { FromLoader, ProgramExpectation, ToLoader } from '../../src/migration/messages.js';
import type { PreallocFigures } from '../../src/migration/preallocation.js';
import { serializeError, type SerializedError } from '../../src/serialized-error.js';
import { buildStream, xbzrleRunHead, type StreamChanges } from '../wire/stream-fixture.js';
import { FUZZ_PROGRAM, PAGES, VALID, VALID_RAM, VALID_WRITTEN, WRITTEN_MAP, mutate, mutation, mutationsOf } from '../wire/stream-mutations.js';
import { fileLimit } from '../waits.js';

fileLimit(import.meta.url, 60_000 * Math.max(1, Number(process.env.FERRY_LOADER_FUZZ_RUNS ?? 0) / 500));

const RUNS = Number(process.env.FERRY_LOADER_FUZZ_RUNS ?? 300);
const MAX_GUEST_BYTES = 1024 * 1024;
/** Reasons the loader gives: a wire rule (record or part named first), a stream that ended early, a section refused. */
const CLEAR_REASON = /^(header|frame|stream|PAGES|ZERO|COMPRESSED|XBZRLE|XBZRLERUN|PASS|GROW|DEVICE|VCPU|VERIFY|END|GO|WRITTEN)\b|ended before the migration completed|device section|vCPU/;
/** The fuzzed stream's program (stream-mutations.ts), and its block's layout here: a size word in 4 KiB units after its pages. */
const PROGRAM: ProgramExpectation = { identity: FUZZ_PROGRAM, ram: { tailBytes: 4096, sizeWord: { offset: PAGES * 4096, unitBytes: 4096 } } };

interface Outcome {
  readonly ended: FromLoader[];
  readonly went: boolean;
  readonly ram: Uint8Array | null;
  /** The block's pages in use at the end (its size word, set from the header and GROW). */
  readonly visible: number | null;
  readonly devices: readonly SavedSection[];
  readonly vcpus: readonly Uint8Array[];
  /** Preallocation's figures when it ended (null: not asked). */
  readonly prealloc: PreallocFigures | null;
}

/** `prealloc`: restore as a destination that preallocates (it asked for the ever-written map: WRITTEN first), on one thread. */
async function restore(path: string, program?: ProgramExpectation, prealloc = false): Promise<Outcome> {
  let onMessage: (m: ToLoader) => void = () => {};
  const ended: FromLoader[] = [];
  let went = false;
  let block: RamBlock | null = null;
  let devices: readonly SavedSection[] = [];
  let vcpus: readonly Uint8Array[] = [];
  const init = { uri: `file:${path}`, maxGuestBytes: MAX_GUEST_BYTES, maxFrameBytes: MIN_FRAME_BYTES, idleTimeoutMs: 10_000, program, prealloc: prealloc ? 1 : 0, preallocThreads: 1 };
  const session = new LoaderSession(init, {
    onMessage: (fn) => { onMessage = fn; },
    post: (m) => {
      switch (m.type) {
        case 'header':
          assert.ok(m.ram.reduce((n, b) => n + b.pages * 4096, 0) <= MAX_GUEST_BYTES, 'RAM within the limit');
          block = new RamBlock(m.ram[0]);
          break;
        case 'loaded': {
          // As the destination's main thread: the sections it registered, all of them, and nothing else.
          devices = m.devices;
          vcpus = m.vcpus;
          const registry = new DeviceRegistry();
          registry.register({ name: 'app/x', version: 2, save: () => new Uint8Array(0), load: () => {} });
          queueMicrotask(() => {
            try {
              registry.loadAll(m.devices);
              onMessage({ type: 'load-ok' });
            } catch (err) {
              onMessage({ type: 'load-failed', error: serializeError(err) });
            }
          });
          break;
        }
        case 'go':
          went = true;
          queueMicrotask(() => onMessage({ type: 'resumed' }));
          break;
        case 'done':
        case 'failed':
          ended.push(m);
          break;
      }
    },
  });
  await session.run();
  const b = block as RamBlock | null;
  return { ended, went, ram: b?.bytes ?? null, visible: b?.visiblePages() ?? null, devices, vcpus, prealloc: ended[0]?.type === 'done' || ended[0]?.type === 'failed' ? ended[0].stats.prealloc : null };
}

/** A hostile or broken ever-written map, at a destination that asked for it (the last column: it preallocates). */
const WRITTEN_CASES: [string, StreamChanges, RegExp, string, undefined, true][] = [
  ['no map where one was asked for', {}, /^PASS: before the ever-written map's last WRITTEN \(this destination asked for it with PREALLOC\)/],
  ['a range past the RAM', { written: [[PAGES - 1, 2]] }, /^WRITTEN: range 15\+2 of block ram0 \(16 pages\) is empty, out of order, overlapping or touching the one before, or outside it/],
  ['a range starting past the RAM', { written: [[0xffff_fff0, 1]] }, /^WRITTEN: range 4294967280\+1 of block ram0/],
  ['overlapping ranges', { written: [[0, 4, 2, 4]] }, /^WRITTEN: range 2\+4 of block ram0 .* overlapping/],
  ['overlapping ranges across records', { written: [[0, 4], [3, 1]] }, /^WRITTEN: range 3\+1 of block ram0 .* overlapping/],
  ['an empty range', { written: [[0, 0]] }, /^WRITTEN: range 0\+0 of block ram0 \(16 pages\) is empty/],
  ['a map that never ends (no LAST before the pass)', { written: [[0, 1], [2, 1]], writtenWithoutLast: true }, /^PASS: before the ever-written map's last WRITTEN/],
].map(([what, changes, reason]) => [what as string, changes as StreamChanges, reason as RegExp, 'ERR_FERRY_WIRE', undefined, true]);

/** A hostile XBZRLERUN (a run of deltas in one record): each refused naming the record, and the page where one is at fault. */
function xbzrleRunCases(wire: string): [string, StreamChanges, RegExp, string][] {
  const ok = Uint8Array.from([0, 1, 9]);
  const past = Uint8Array.from([0xff, 0x1f, 0x02, 1, 2]);
  const run = (count: number, entries: [number, number, Uint8Array][], first = false): StreamChanges => ({ xbzrleRun: { head: xbzrleRunHead(count, entries), first } });
  return [
    ['an XBZRLERUN of more pages than its cap', run(1025, [[0, 3, ok]]), /^XBZRLERUN: 1025 pages, expected 1\.\.1024/, wire],
    ['an XBZRLERUN whose second delta runs past its page', run(2, [[2, 3, ok], [0, 5, past]]), /^XBZRLERUN: page 0 of block ram0: XBZRLE delta: changed run of 2 bytes at offset 2 runs past the page's end \(page byte 4095, page of 4096\)/, wire],
    ['a truncated XBZRLERUN (fewer entries than its count)', run(3, [[0, 3, ok], [2, 3, ok]]), /^XBZRLERUN: entry 2 of 3 is truncated at head byte 22/, wire],
    ['an XBZRLERUN whose lengths do not fill its head', run(1, [[0, 2, ok]]), /^XBZRLERUN: 1 entries end at head byte 12, the head has 13/, wire],
    ['an XBZRLERUN delta longer than a page', run(1, [[0, 4097, new Uint8Array(4097).fill(1)]]), /^XBZRLERUN: entry 0 \(page 0\): a delta of 4097 bytes, expected 1\.\.4096/, wire],
    ['an XBZRLERUN delta before its page arrived', run(1, [[0, 3, ok]], true), /^XBZRLERUN: page 0 of block ram0 has not arrived before/, wire],
    ['an XBZRLERUN page outside the block', run(2, [[0, 3, ok], [99, 3, ok]]), /^XBZRLERUN: page 99 is outside block ram0 of 16 pages/, wire],
    ['an XBZRLERUN head over its 512 KiB cap', { xbzrleRun: { head: Buffer.alloc(512 * 1024 + 1) } }, /^XBZRLERUN: head length 524289, expected at most 524288/, wire],
  ];
}

test('each loader rule is enforced with a clear error, and the guest is never run', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-loader-rules-'));
  // The code too: a wire rule is the loader's WireError; a device section the main thread refused comes back as its InvalidArgumentError.
  const wire = 'ERR_FERRY_WIRE';
  const refused = 'ERR_FERRY_INVALID_ARGUMENT';
  const program = 'ERR_FERRY_REFUSED';
  const cases: [string, StreamChanges, RegExp, string, ProgramExpectation?, true?][] = [
    ['a program\'s stream at a destination without one', { program: FUZZ_PROGRAM }, /^header: the stream's program is f0f0f0f0f0f0, this destination's is none \(start the destination with the same WebAssembly program\)$/, program],
    ['a stream without a program at a program\'s destination', {}, /^header: the stream's program is none, this destination's is f0f0f0f0f0f0 \(the source runs no WebAssembly program\)$/, program, PROGRAM],
    ['another program', { program: 'ab'.repeat(32) }, /^header: the stream's program is abababababab, this destination's is f0f0f0f0f0f0 \(both sides need the same module/, program, PROGRAM],
    ['a block in use to part of it, at a destination without a size word', { grow: true }, /^header: block ram0 in use to 4 pages: RAM block "ram0" has no size word/, wire],
    ['END totals that differ from what arrived', { end: { normal: PAGES - 3, zero: 2 } }, /END: block ram0 totals 13 data \+ 2 zero pages, received 14 \+ 2/, wire],
    ['a vCPU without state at END', { vcpus: 2 }, /END: no state for vCPU 1/, wire],
    ['a device section twice', { devices: [{ name: 'app/x', version: 2, data: 'a' }, { name: 'app/x', version: 2, data: 'b' }] }, /DEVICE: section app\/x arrived twice/, wire],
    ['a device section of an unknown version', { devices: [{ name: 'app/x', version: 3, data: 'a' }] }, /device section app\/x: version 3, expected 2/, refused],
    ['an unknown device section', { devices: [{ name: 'app/x', version: 2, data: 'a' }, { name: 'app/y', version: 1, data: 'a' }] }, /unknown device section "app\/y"/, refused],
    ['a registered device section missing', { devices: [] }, /device section app\/x is registered here but missing from the stream/, refused],
    ['an XBZRLE delta running past the page', { xbzrle: { page: 0, delta: Uint8Array.from([0xff, 0x1f, 0x02, 1, 2]) } }, /^XBZRLE: page 0 of block ram0: XBZRLE delta: changed run of 2 bytes at offset 2 runs past the page's end \(page byte 4095, page of 4096\)/, wire],
    ['an XBZRLE delta longer than a page', { xbzrle: { page: 0, delta: new Uint8Array(4097).fill(1) } }, /^XBZRLE: head length 4101, expected at most 4100/, wire],
    ['an XBZRLE delta with bytes after its last run', { xbzrle: { page: 2, delta: Uint8Array.from([0, 1, 9, 5]) } }, /^XBZRLE: page 2 of block ram0: XBZRLE delta: trailing garbage/, wire],
    ['an XBZRLE delta before its page arrived', { xbzrle: { page: 0, delta: Uint8Array.from([0, 1, 7]), first: true } }, /^XBZRLE: page 0 of block ram0 has not arrived before/, wire],
    ['an XBZRLE delta for a page outside the block', { xbzrle: { page: 99, delta: Uint8Array.from([0, 1, 7]) } }, /^XBZRLE: page 99 is outside block ram0 of 16 pages/, wire],
    ...xbzrleRunCases(wire),
    ['a RAM digest that differs', { verify: Buffer.alloc(16, 1) }, /verify: RAM digest [0-9a-f]{32} of the pages loaded differs from the source's (01){16} of the pages sent/, wire],
    ['an ever-written map to a destination that did not ask for it', { written: [[0, 1]] }, /^WRITTEN: this destination did not ask for the ever-written map \(PREALLOC\)/, wire],
  ];
  try {
    for (const [what, changes, reason, code, expected, prealloc] of [...cases, ...WRITTEN_CASES]) {
      const path = join(dir, 'case');
      writeFileSync(path, buildStream(PAGES, changes).bytes);
      const o = await restore(path, expected, prealloc === true);
      assert.equal(o.ended.length, 1, what);
      assert.equal(o.ended[0].type, 'failed', `${what}: refused`);
      const { error } = o.ended[0] as { error: SerializedError };
      assert.match(error.message, reason, what);
      assert.equal(error.code, code, `${what}: ${error.message}`);
      assert.equal(o.went, false, `${what}: never run`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test(`loader fuzz (fast-check, ${RUNS} runs): a clear failure or the exact guest that was sent, never a forged one`, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-loader-fuzz-'));
  const counts = { runs: 0, failed: 0, resumed: 0 };
  // The unmutated stream restores (the harness can tell success from failure).
  writeFileSync(join(dir, 'valid'), VALID);
  const valid = await restore(join(dir, 'valid'), PROGRAM);
  assert.equal(valid.ended[0]?.type, 'done', JSON.stringify(valid.ended));
  assert.equal(valid.visible, PAGES, 'in use to 4 pages at the header, to all 16 after its GROW');
  try {
    await fc.assert(
      fc.asyncProperty(fc.array(mutation, { minLength: 1, maxLength: 3 }), async (mutations) => {
        const path = join(dir, `s${counts.runs++}`);
        writeFileSync(path, mutate(mutations));
        const o = await restore(path, PROGRAM);
        rmSync(path);
        assert.equal(o.ended.length, 1, `the session ends exactly once: ${JSON.stringify(o.ended)}`);
        const end = o.ended[0];
        if (end.type === 'failed') {
          counts.failed++;
          assert.match(end.error.message, CLEAR_REASON, 'a reason naming what was wrong');
          assert.ok(['ERR_FERRY_WIRE', 'ERR_FERRY_INVALID_ARGUMENT', 'ERR_FERRY_REFUSED'].includes(end.error.code), `a wire rule, a refused section or a refused version: ${end.error.code}`);
          return;
        }
        assert.equal(end.type, 'done');
        assert.ok(o.went, 'done only after GO');
        counts.resumed++;
        // It would run: it must be the guest that was sent.
        assert.ok(o.ram !== null && Buffer.compare(o.ram.subarray(0, VALID_RAM.length), VALID_RAM) === 0, 'RAM is the RAM sent');
        assert.equal(o.visible, PAGES, 'in use as far as the source said');
        assert.deepEqual(o.devices.map((d) => [d.name, d.version, Buffer.from(d.data).toString()]), [['app/x', 2, 'hello']]);
        assert.deepEqual(o.vcpus.map((v) => Buffer.from(v).toString()), ['{"guestNs":0}']);
      }),
      { numRuns: RUNS, seed: Number(process.env.FERRY_FUZZ_SEED ?? 20261125) },
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  assert.ok(counts.failed > RUNS * 0.6, `mutations are effective: ${JSON.stringify(counts)}`);
  console.log(`# loader fuzz: ${JSON.stringify(counts)}`);
});

const WRITTEN_RUNS = Math.ceil(RUNS / 3);
const writtenMutations = mutationsOf(VALID_WRITTEN);
const MAP_PAGES = WRITTEN_MAP.flat().filter((_, i) => i % 2 === 1).reduce((n, c) => n + c, 0);

test(`loader fuzz with the ever-written map (fast-check, ${WRITTEN_RUNS} runs, a destination that preallocates): a clear failure or the exact guest, and never a page touched outside the map`, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-loader-fuzz-written-'));
  const counts = { runs: 0, failed: 0, resumed: 0 };
  writeFileSync(join(dir, 'valid'), VALID_WRITTEN);
  const valid = await restore(join(dir, 'valid'), PROGRAM, true);
  assert.equal(valid.ended[0]?.type, 'done', JSON.stringify(valid.ended));
  assert.equal(valid.prealloc?.mapPages, MAP_PAGES, 'the map as sent');
  try {
    await fc.assert(
      fc.asyncProperty(fc.array(writtenMutations.mutation, { minLength: 1, maxLength: 3 }), async (mutations) => {
        const path = join(dir, `s${counts.runs++}`);
        writeFileSync(path, writtenMutations.mutate(mutations));
        const o = await restore(path, PROGRAM, true);
        rmSync(path);
        assert.equal(o.ended.length, 1, `the session ends exactly once: ${JSON.stringify(o.ended)}`);
        const p = o.prealloc;
        // The decoder refuses a range outside the block before the map reaches the touchers.
        if (p !== null) assert.ok(p.mapPages <= PAGES && p.touchedPages <= p.mapPages, `within the block: ${JSON.stringify(p)}`);
        const end = o.ended[0];
        if (end.type === 'failed') {
          counts.failed++;
          assert.match(end.error.message, CLEAR_REASON, 'a reason naming what was wrong');
          return;
        }
        counts.resumed++;
        assert.ok(o.ram !== null && Buffer.compare(o.ram.subarray(0, VALID_RAM.length), VALID_RAM) === 0, 'RAM is the RAM sent');
      }),
      { numRuns: WRITTEN_RUNS, seed: Number(process.env.FERRY_FUZZ_SEED ?? 20261128) },
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  assert.ok(counts.failed > WRITTEN_RUNS * 0.6, `mutations are effective: ${JSON.stringify(counts)}`);
  console.log(`# loader fuzz with the map: ${JSON.stringify(counts)}`);
});
