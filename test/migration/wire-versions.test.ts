/**
 * Wire versions across releases, against streams committed in
 * test/fixtures (README.md there says how each was made): the saved guest
 * of every version read (MIN_WIRE_VERSION..WIRE_VERSION) loads, and every
 * older version's is refused at the header, before any page, with both
 * versions named.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { after, test } from 'node:test';
import { PAGE_SIZE } from '../../src/memory/page.js';
import { IncomingMigration } from '../../src/migration/incoming.js';
import { HEADER_FIXED_BYTES, MIN_WIRE_VERSION, WIRE_VERSION, crc32, decodeHeader } from '../../src/wire/format.js';
import { FrameDecoder, type FrameSink } from '../../src/wire/frame-decoder.js';
import { jsPageSum } from '../../src/wire/page-checksum.js';
import { Rec } from '../../src/wire/records.js';
import {
  FIXTURE_DATA_PAGES, FIXTURE_DEVICE, FIXTURE_HEARTBEAT_PAGE, FIXTURE_RAM_BYTES, fixtureDevice, fixturePage,
} from '../fixtures/fixture-guest.js';
import {
  PROGRAM_FIXTURE_BYTES, PROGRAM_FIXTURE_DATA_PAGES, PROGRAM_FIXTURE_GROWN_PAGES, PROGRAM_FIXTURE_HEARTBEAT_PAGE, PROGRAM_FIXTURE_IDENTITY,
  PROGRAM_FIXTURE_RAM, PROGRAM_FIXTURE_UNIT_PAGES, programFixturePage,
} from '../fixtures/program-fixture.js';
import { bounded, fileLimit } from '../waits.js';
import { adopt, destroyAll } from './helpers.js';

fileLimit(import.meta.url, 120_000);

after(destroyAll);

const fixture = (name: string) => fileURLToPath(new URL(`../../../test/fixtures/${name}`, import.meta.url));
/** Versions this destination reads, and the older ones it refuses. */
const READ = Array.from({ length: WIRE_VERSION - MIN_WIRE_VERSION + 1 }, (_, i) => MIN_WIRE_VERSION + i);
const OLDER = Array.from({ length: MIN_WIRE_VERSION - 1 }, (_, i) => i + 1);
const NEWEST_REFUSED = MIN_WIRE_VERSION - 1;
const refusal = (v: number) => new RegExp(`header: stream version ${v}, this destination reads versions ${MIN_WIRE_VERSION}\\.\\.${WIRE_VERSION} \\(`);
const REFUSAL = refusal(NEWEST_REFUSED);

/** Decode `bytes` into a RAM of the fixture's size; returns the record types delivered and any error. */
function decode(bytes: Buffer, ramBytes = FIXTURE_RAM_BYTES): { types: number[]; pageWrites: number; error: Error | null } {
  const ram = new Uint8Array(ramBytes);
  const types: number[] = [];
  let pageWrites = 0;
  const sink: FrameSink = {
    pageData: (_b, offset, data) => { pageWrites++; ram.set(data, offset); },
    pageSum: (_b, first, count) => jsPageSum(new Int32Array(ram.buffer, first * PAGE_SIZE, count * 1024)),
    record: (type) => types.push(type),
  };
  try {
    new FrameDecoder(sink, { stream: true }).feed(bytes);
    return { types, pageWrites, error: null };
  } catch (err) {
    return { types, pageWrites, error: err as Error };
  }
}

for (const v of READ) {
  test(`a committed stream of a version read here (v${v}) decodes record by record to GO`, () => {
    const bytes = readFileSync(fixture(`stream-v${v}.ferry`));
    assert.equal(bytes.readUInt16LE(8), v);
    const { types, error } = decode(bytes);
    assert.equal(error, null);
    for (const t of [Rec.Pass, Rec.Pages, Rec.Zero, Rec.Verify, Rec.Vcpu, Rec.Device, Rec.End]) assert.ok(types.includes(t), `record ${t} in the fixture`);
    assert.equal(types.at(-1), Rec.Go);
  });
}

for (const v of OLDER) {
  test(`an older version's stream (v${v}) is refused at the header, before any page, naming both versions`, () => {
    const bytes = readFileSync(fixture(`stream-v${v}.ferry`));
    assert.equal(bytes.readUInt16LE(8), v);
    const { types, pageWrites, error } = decode(bytes);
    assert.match(error?.message ?? '', refusal(v));
    assert.deepEqual(types, []);
    assert.equal(pageWrites, 0);
  });
}

test(`why version 1 is refused: read as version ${MIN_WIRE_VERSION}, its first page record fails its check (the page sum changed)`, () => {
  const bytes = Buffer.from(readFileSync(fixture('stream-v1.ferry')));
  bytes.writeUInt16LE(MIN_WIRE_VERSION, 8);
  const end = HEADER_FIXED_BYTES + bytes.readUInt32LE(32);
  bytes.writeUInt32LE(crc32(bytes.subarray(0, end)), end);
  const { types, error } = decode(bytes);
  assert.match(error?.message ?? '', /PAGES: check 0x[0-9a-f]+, computed/);
  assert.deepEqual(types, [Rec.Pass], 'only the PASS before it was delivered');
});

test(`why version 2 is refused at the header: read as version ${MIN_WIRE_VERSION}, its VERIFY (a whole-RAM SHA-256) fails only after every page`, () => {
  const bytes = Buffer.from(readFileSync(fixture('stream-v2.ferry')));
  bytes.writeUInt16LE(MIN_WIRE_VERSION, 8);
  const end = HEADER_FIXED_BYTES + bytes.readUInt32LE(32);
  bytes.writeUInt32LE(crc32(bytes.subarray(0, end)), end);
  const { types, pageWrites, error } = decode(bytes);
  assert.match(error?.message ?? '', /VERIFY: head length 32, expected 16/);
  assert.ok(types.includes(Rec.Pages) && pageWrites > 0, 'pages were loaded before the refusal: too late for one');
});

for (const v of READ) {
  test(`a destination restores the committed v${v} file: RAM, device section, digest`, async () => {
    await restoresFixture(v);
  });
}

async function restoresFixture(v: number): Promise<void> {
  const loaded: { data?: string } = {};
  const m = await IncomingMigration.listen(`file:${fixture(`stream-v${v}.ferry`)}`, { onGuest: (g) => g.devices.register(fixtureDevice(loaded)) });
  const r = await bounded(`the restore of the v${v} file`, m.done(), 60_000);
  const g = adopt(r.guest);
  assert.equal(r.status, 'resumed', r.error ?? '');
  assert.equal(r.stats?.verified, true);
  assert.equal(loaded.data, FIXTURE_DEVICE.data);
  assert.ok(g !== null);
  await bounded('the restored guest to pause', g.pause(), 30_000);
  const ram = g.ram.read(0, FIXTURE_RAM_BYTES);
  for (let p = 0; p < FIXTURE_RAM_BYTES / PAGE_SIZE; p++) {
    if (p === FIXTURE_HEARTBEAT_PAGE) continue;
    const expected = p < FIXTURE_DATA_PAGES ? fixturePage(p) : new Uint8Array(PAGE_SIZE);
    assert.ok(Buffer.from(ram.subarray(p * PAGE_SIZE, (p + 1) * PAGE_SIZE)).equals(expected), `page ${p}`);
  }
}

test(`a destination refuses the committed v${NEWEST_REFUSED} file before loading any page, and no guest runs`, async () => {
  const m = await IncomingMigration.listen(`file:${fixture(`stream-v${NEWEST_REFUSED}.ferry`)}`, { onGuest: (g) => g.devices.register(fixtureDevice()) });
  const r = await bounded(`the refusal of the v${NEWEST_REFUSED} file`, m.done(), 60_000);
  adopt(r.guest);
  assert.equal(r.status, 'failed');
  assert.equal(r.guest, null);
  assert.match(r.error ?? '', REFUSAL);
  assert.equal(r.failure?.code, 'ERR_FERRY_REFUSED', 'a refusal: the version is not read here');
  assert.equal((r.failure as { refusal?: string } | null)?.refusal, 'version');
  assert.equal(r.stats?.normalPages ?? 0, 0);
});

// ---- version 4's program fixture: a program identity, pages in use, a GROW ----

const PROGRAM_STREAM = fixture('stream-v4-program.ferry');

test('the committed v4 program stream: its header names the program and the pages in use, and a GROW comes before the grown pages', () => {
  const bytes = readFileSync(PROGRAM_STREAM);
  const header = decodeHeader(bytes);
  assert.equal(header.program, PROGRAM_FIXTURE_IDENTITY);
  assert.deepEqual(header.blocks, [{ name: 'ram0', pages: PROGRAM_FIXTURE_BYTES / PAGE_SIZE, visiblePages: PROGRAM_FIXTURE_UNIT_PAGES }]);
  const { types, error } = decode(bytes, PROGRAM_FIXTURE_BYTES);
  assert.equal(error, null);
  const grow = types.indexOf(Rec.Grow);
  assert.ok(grow > types.indexOf(Rec.Pass, 1) && grow < types.lastIndexOf(Rec.Pages), `GROW in the final pass, before its pages: ${types.join(' ')}`);
  assert.equal(types.at(-1), Rec.Go);
});

test('a destination running the program restores the v4 program file: the grown size, RAM, device section, digest', async () => {
  const loaded: { data?: string } = {};
  const m = await IncomingMigration.listen(`file:${PROGRAM_STREAM}`, {
    program: { identity: PROGRAM_FIXTURE_IDENTITY, ram: PROGRAM_FIXTURE_RAM }, onGuest: (g) => g.devices.register(fixtureDevice(loaded)),
  });
  const r = await bounded('the restore of the program file', m.done(), 60_000);
  const g = adopt(r.guest);
  assert.equal(r.status, 'resumed', r.error ?? '');
  assert.equal(r.stats?.verified, true);
  assert.equal(loaded.data, FIXTURE_DEVICE.data);
  assert.ok(g !== null);
  await bounded('the restored guest to pause', g.pause(), 30_000);
  assert.equal(g.blocks[0].visiblePages(), PROGRAM_FIXTURE_GROWN_PAGES);
  const ram = g.blocks[0].bytes;
  for (let p = 0; p < PROGRAM_FIXTURE_BYTES / PAGE_SIZE; p++) {
    if (p === PROGRAM_FIXTURE_HEARTBEAT_PAGE) continue;
    const expected = PROGRAM_FIXTURE_DATA_PAGES.includes(p) ? programFixturePage(p) : new Uint8Array(PAGE_SIZE);
    assert.ok(Buffer.from(ram.subarray(p * PAGE_SIZE, (p + 1) * PAGE_SIZE)).equals(expected), `page ${p}`);
  }
});

test('a destination without the program refuses the v4 program file before any page, naming the program', async () => {
  const m = await IncomingMigration.listen(`file:${PROGRAM_STREAM}`, { onGuest: (g) => g.devices.register(fixtureDevice()) });
  const r = await bounded('the refusal of the program file', m.done(), 60_000);
  adopt(r.guest);
  assert.equal(r.status, 'failed');
  assert.equal(r.guest, null);
  assert.equal((r.failure as { refusal?: string } | null)?.refusal, 'program');
  assert.match(r.error ?? '', new RegExp(`^header: the stream's program is ${PROGRAM_FIXTURE_IDENTITY.slice(0, 12)}, this destination's is none`));
  assert.equal(r.stats?.normalPages ?? 0, 0);
});
