/**
 * A WebAssembly guest's side of the stream (issue 13), end to end in one
 * process: a RAM block laid out as a program's (a reserved tail with a
 * size word and a mark map: memory/block-tail.ts) migrates with its growth
 * (GROW, wire version 4), and the program's identity is checked at the
 * destination before any page (refused as `program`, the source running on
 * untouched). The guest here is a plain guest over such a block: the test
 * plays the program, bumping the size word and writing the new pages.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { RefusedError } from '../../src/errors.js';
import type { Guest } from '../../src/guest/guest.js';
import type { WorkloadSpec } from '../../src/guest/workloads/index.js';
import { RamBlock, type RamBlockOptions } from '../../src/memory/ram-block.js';
import type { IncomingOptions } from '../../src/migration/incoming.js';
import { Migration } from '../../src/migration/migration.js';
import { bounded, fileLimit } from '../waits.js';
import { MiB, adopt, assertDirtyLogsReleased, assertSweeps, destroyAll, guest, listen } from './helpers.js';

fileLimit(import.meta.url, 120_000);
after(destroyAll);

const ENDS_MS = 30_000;
/** The block: 2 MiB of program memory (32 units of 64 KiB), then its tail: the size word, then the mark map. */
const SIZE = 2 * MiB;
const PAGES = SIZE / 4096;
const UNIT_PAGES = 16;
const RAM: RamBlockOptions = { tailBytes: 4096 + PAGES, sizeWord: { offset: SIZE, unitBytes: 65536 }, markMap: { offset: SIZE + 4096 } };
const PROGRAM_A = 'a1'.repeat(32);
const PROGRAM_B = 'b2'.repeat(32);

/** Page `p`'s bytes as the test's "program" writes them in `round`. */
const pattern = (p: number, round: number) => Buffer.alloc(4096, ((p * 7 + round * 13) % 255) + 1);

/** A running guest over a program-like block in use to `units` units; `vcpus` run in its first unit. */
async function programGuest(units: number, vcpus: WorkloadSpec[]): Promise<{ g: Guest; block: RamBlock }> {
  const block = RamBlock.create('ram0', SIZE, RAM);
  block.setVisiblePages(units * UNIT_PAGES);
  const g = await guest({ ram: [{ name: 'ram0', size: SIZE }], adoptRam: [block.toShared()], vcpus });
  await g.cont();
  return { g, block: g.blocks[0] };
}

/** What the program does when it grows: the size word first, then its new pages (marked). */
function grow(block: RamBlock, units: number, round: number): void {
  const from = block.visiblePages();
  block.setVisiblePages(units * UNIT_PAGES);
  for (let p = from; p < units * UNIT_PAGES; p++) block.write(p * 4096, pattern(p, round));
}

test('a block that grows between passes and at the switchover arrives with the same contents and size in use (GROW before its pages)', async () => {
  const { g: src, block } = await programGuest(1, [{ kind: 'sweep', firstPage: 0, pages: UNIT_PAGES, sweepsPerSec: 200 }]);
  const incoming = await listen('unix', { program: { identity: PROGRAM_A, ram: RAM } });
  // Iterate (limit 1 ms: the sweep keeps pages dirty) while the block grows; then let it switch over.
  const m = Migration.start(src, incoming.uri, { downtimeLimitMs: 1 }, { programIdentity: PROGRAM_A });
  const grewAt: number[] = [];
  m.on('pass', (p) => {
    if (p.pass === 1) grow(block, 2, p.pass);
    else if (p.pass === 2) grow(block, 4, p.pass);
    else if (p.pass === 3) m.setParameters({ downtimeLimitMs: 10_000 });
    // Handled before the main thread pauses the guest: only the switchover pass can send this growth.
    if (p.decision.startsWith('switch over')) grow(block, 6, p.pass);
    grewAt.push(block.visiblePages());
  });
  const r = await bounded('the migration', m.done(), ENDS_MS);
  assert.equal(r.status, 'completed', r.error ?? '');
  assert.ok(r.stats.passes.length >= 4, `live passes: ${r.stats.passes.length}`);
  assert.equal(grewAt.at(-1), 6 * UNIT_PAGES, `grown in the switchover's pass record (${grewAt.join(', ')})`);
  const dest = await bounded('the destination', incoming.done(), ENDS_MS);
  const g = adopt(dest.guest);
  assert.equal(dest.status, 'resumed', dest.error ?? '');
  assert.ok(g !== null);
  await g.pause();
  const there = g.blocks[0];
  assert.equal(there.visiblePages(), 6 * UNIT_PAGES, 'in use as far as the source');
  assert.equal(new Int32Array(there.memory.buffer, SIZE, 1)[0], 6, 'the size word, in 64 KiB units');
  // Past the sweep's unit (which ran on at the destination: the sweep checker vouches for it), byte for byte.
  const grown = (b: RamBlock) => b.bytes.subarray(UNIT_PAGES * 4096);
  assert.equal(Buffer.compare(grown(there), grown(block)), 0, 'the same contents');
  for (let p = UNIT_PAGES; p < 6 * UNIT_PAGES; p++) assert.notEqual(block.bytes[p * 4096], 0, `page ${p} was written at the source`);
  assert.ok(there.bytes.subarray(6 * UNIT_PAGES * 4096).every((b) => b === 0), 'nothing past the pages in use');
  assertSweeps(g, 'the destination');
});

/** Start a migration that the destination must refuse as `program`; the source runs on with its RAM as it was. */
async function refusedProgram(source: string | undefined, destination: string | undefined, reason: RegExp): Promise<void> {
  // An idle vCPU beats on page 15; pages 0-14 hold data, which the refusal must leave as it was.
  const { g: src, block } = await programGuest(1, [{ kind: 'idle', heartbeatPage: 15, intervalMs: 5 }]);
  for (let p = 0; p < 15; p++) block.write(p * 4096, pattern(p, 0));
  const before = Buffer.from(block.bytes.subarray(0, 15 * 4096));
  const options: IncomingOptions = destination === undefined ? {} : { program: { identity: destination, ram: RAM } };
  const incoming = await listen('tcp', options);
  const m = Migration.start(src, incoming.uri, {}, source === undefined ? {} : { programIdentity: source });
  const err = await bounded('the refusal at the source', m.completed().then(() => assert.fail('completed'), (e: unknown) => e), ENDS_MS);
  assert.ok(err instanceof RefusedError, `a RefusedError, got ${String(err)}`);
  assert.equal(err.refusal, 'program');
  assert.match(err.message, reason);
  const r = await bounded('the source\'s end', m.done(), ENDS_MS);
  assert.equal(r.afterGo, false);
  const dest = await bounded('the destination\'s end', incoming.done(), ENDS_MS);
  assert.equal(dest.guest, null, 'the destination made no guest');
  assert.equal(dest.stats?.normalPages ?? 0, 0, 'refused before any page');
  await bounded('the destination to let go of the connection', incoming.released(), ENDS_MS);
  assertDirtyLogsReleased(src, 'after the refusal');
  assert.equal(src.runState, 'running', 'the source runs on');
  await src.pause();
  assert.ok(Buffer.from(block.bytes.subarray(0, 15 * 4096)).equals(before), 'the source\'s RAM is as it was');
  assert.equal(block.visiblePages(), UNIT_PAGES, 'and its size in use');
}

test('a program\'s stream to a destination without a program is refused before any page, naming both; the source runs on untouched', async () => {
  await refusedProgram(PROGRAM_A, undefined,
    /^the destination refused the stream \(program\): header: the stream's program is a1a1a1a1a1a1, this destination's is none \(start the destination with the same WebAssembly program\)$/);
});

test('a stream without a program to a program\'s destination is refused before any page, naming both', async () => {
  await refusedProgram(undefined, PROGRAM_B,
    /^the destination refused the stream \(program\): header: the stream's program is none, this destination's is b2b2b2b2b2b2 \(the source runs no WebAssembly program\)$/);
});

test('two different programs: refused before any page, both identities named', async () => {
  await refusedProgram(PROGRAM_A, PROGRAM_B,
    /^the destination refused the stream \(program\): header: the stream's program is a1a1a1a1a1a1, this destination's is b2b2b2b2b2b2 \(both sides need the same module, built with the same instrumentation\)$/);
});

test('a program identity that is not a SHA-256 in hex is refused by both ends\' options', async () => {
  const { g } = await programGuest(1, []);
  assert.throws(() => Migration.start(g, 'tcp:127.0.0.1:1', {}, { programIdentity: 'A1'.repeat(32) }),
    { code: 'ERR_FERRY_INVALID_ARGUMENT', message: /programIdentity must be 64 lowercase hex characters \(a SHA-256\), got "A1A1/ });
  await assert.rejects(listen('tcp', { program: { identity: 'abc', ram: RAM } }), { code: 'ERR_FERRY_INVALID_ARGUMENT', message: /program\.identity must be 64 lowercase hex characters/ });
});
