/**
 * The record table (src/wire/records.ts): every row round-trips, and the
 * table's shape holds (tags, directions, head sizes). The tests iterate the
 * table, so a new row is covered as soon as it has samples below (a row
 * without samples fails).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { WireError } from '../../src/errors.js';
import { CHECK_BYTES, FRAME_HEADER_BYTES, crc32 } from '../../src/wire/format.js';
import { FrameDecoder } from '../../src/wire/frame-decoder.js';
import { FrameWriter } from '../../src/wire/frame-writer.js';
import { PLANNED_RECORDS, RECORD, RECORD_TABLE, encodeHead, encodeRecord, recordRow, walkXbzrleRun, type RecordRow } from '../../src/wire/records.js';
import { REFUSALS, refusalCode, refusalName } from '../../src/wire/refusals.js';
import { fileLimit } from '../waits.js';
import { xbzrleRunHead } from './stream-fixture.js';

fileLimit(import.meta.url, 60_000);

/** Blocks in the stream the samples are decoded against (END's totals need it). */
const BLOCKS = 3;
const bytes = (n: number, seed = 1) => Uint8Array.from({ length: n }, (_, i) => (i * 7 + seed) & 0xff);

/** Fields per record name, extremes included. */
const SAMPLES: Readonly<Record<string, readonly unknown[]>> = {
  PAGES: [{ first: 0 }, { first: 0xffffffff }],
  ZERO: [{ first: 5, count: 1 }, { first: 0xffffffff, count: 0xffffffff }],
  PASS: [{ pass: 1 }, { pass: 0xffffffff }],
  DEVICE: [
    { name: 'app/x', version: 2, data: bytes(5) },
    { name: `${'é'.repeat(127)}x`, version: 0xffffffff, data: new Uint8Array(0) },
  ],
  VCPU: [{ index: 0, state: bytes(13) }, { index: 0xffff, state: new Uint8Array(0) }, { index: 63, state: bytes(64 * 1024, 3) }, { index: 1, state: bytes(4 * 1024 * 1024, 5) }],
  END: [{ totals: [{ normal: 0, zero: 0 }, { normal: 2 ** 40, zero: 1 }, { normal: Number.MAX_SAFE_INTEGER, zero: 2 ** 32 }] }],
  GO: [{ run: true }, { run: false }],
  VERIFY: [{ digest: Buffer.from(bytes(16, 9)) }],
  GROW: [{ pages: 0 }, { pages: 16 }, { pages: 0xffffffff }],
  CHANNEL: [{ index: 0, channels: 1, uuid: '00000000-0000-0000-0000-000000000000' }, { index: 0xffff, channels: 0xffff, uuid: 'ffeeddcc-bbaa-9988-7766-554433221100' }],
  SYNC: [{ pass: 1 }, { pass: 0xffffffff }],
  COMPRESSED: [{ first: 0, count: 1, data: bytes(1) }, { first: 0xffffffff, count: 128, data: bytes(128 * 4096, 7) }],
  XBZRLE: [{ page: 0, delta: bytes(1) }, { page: 0xffffffff, delta: bytes(4096, 3) }],
  // One page; a page's whole delta among small ones; the most pages (1024) filling the head to within a page of its 512 KiB cap.
  XBZRLERUN: [
    { entries: [{ page: 0, delta: bytes(1) }] },
    { entries: [{ page: 7, delta: bytes(3) }, { page: 0xffffffff, delta: bytes(4096, 5) }, { page: 2, delta: bytes(7, 2) }] },
    { entries: Array.from({ length: 1024 }, (_, i) => ({ page: i * 3, delta: bytes(500, i) })) },
  ],
  ACK: [{ bytes: 0 }, { bytes: Number.MAX_SAFE_INTEGER }],
  LOADED: [{}],
  RESUMED: [{}],
  ERROR: [{ reason: '' }, { reason: 'the destination refused: ünïcode' }, { reason: 'é'.repeat(2048) }],
  READY: [{}],
  MISSING: [{ ranges: new Uint32Array(0) }, { ranges: Uint32Array.from([0, 5, 10, 0xffffffff]) }],
  PCPAGES: [{ first: 3, checks: Uint32Array.from([1]) }, { first: 0xffffffff, checks: Uint32Array.from([0, 0xffffffff, 7]) }],
  PEND: [{ sent: 0 }, { sent: Number.MAX_SAFE_INTEGER }],
  WRITTEN: [{ last: true, ranges: new Uint32Array(0) }, { last: false, ranges: Uint32Array.from([0, 1, 3, 0xfffffffc]) }, { last: true, ranges: new Uint32Array(2 * 4096).fill(7) }],
  PREALLOC: [{}],
  REQUEST: [{ pages: Uint32Array.from([0]) }, { pages: Uint32Array.from([5, 0x80000007, 0x7fffffff]) }],
  DONE: [{}],
  RECVBITMAP: [{ ranges: Uint32Array.from([0, 1]) }, { ranges: Uint32Array.from([3, 5, 10, 0xffffffff]) }],
  RESUMEACK: [{ missing: 0 }, { missing: Number.MAX_SAFE_INTEGER }],
  REFUSED: [{ code: 1, reason: '' }, { code: 3, reason: 'guest RAM of 256 MiB: ünïcode' }, { code: 0xffff, reason: 'é'.repeat(2048) }],
};

function samplesOf(row: RecordRow<unknown>): readonly unknown[] {
  const samples = SAMPLES[row.name];
  assert.ok(samples !== undefined && samples.length > 0, `record ${row.name} (tag 0x${row.tag.toString(16)}) has no round-trip samples here`);
  return samples;
}

test('every record type round-trips: decode(encode(fields)) gives the fields, and the head has the row\'s size', () => {
  assert.deepEqual(Object.keys(SAMPLES).sort(), RECORD_TABLE.map((r) => r.name).sort(), 'samples for exactly the rows of the table');
  for (const row of RECORD_TABLE) {
    for (const fields of samplesOf(row)) {
      const head = encodeHead(row, fields);
      assert.equal(head.length, row.sizeOf(fields), `${row.name}: sizeOf`);
      if (row.headBytes !== null) assert.equal(head.length, row.headBytes, `${row.name}: the fixed head size`);
      assert.ok(head.length <= row.maxHeadBytes(BLOCKS), `${row.name}: a head of ${head.length} bytes is within the cap`);
      assert.deepEqual(row.decode(head, BLOCKS), fields, `${row.name}: round trip`);
    }
  }
});

test('every record type frames the same through encodeRecord and the frame writer, and the frame carries its head', () => {
  for (const row of RECORD_TABLE.filter((r) => !r.pageData)) {
    for (const fields of samplesOf(row)) {
      const frame = encodeRecord(row, fields, 0);
      const headLen = row.sizeOf(fields);
      assert.equal(frame.length, FRAME_HEADER_BYTES + headLen + CHECK_BYTES);
      assert.equal(frame.readUInt8(0), row.tag);
      assert.equal(frame.readUInt32LE(4), headLen);
      assert.equal(frame.readUInt32LE(8), 0);
      assert.deepEqual(row.decode(frame.subarray(FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + headLen), BLOCKS), fields);
      assert.equal(frame.readUInt32LE(FRAME_HEADER_BYTES + headLen), crc32(frame.subarray(0, FRAME_HEADER_BYTES + headLen)));
      const out: Buffer[] = [];
      const writer = new FrameWriter((chunk, release) => { out.push(Buffer.from(chunk)); release(); }, 2);
      assert.equal(writer.append(row, fields), frame.length);
      writer.flush();
      assert.deepEqual(Buffer.concat(out), frame, `${row.name}: the writer's bytes`);
    }
  }
});

test('return-path records round-trip through the decoder', () => {
  for (const row of RECORD_TABLE.filter((r) => r.direction === 'return')) {
    for (const fields of samplesOf(row)) {
      const got: unknown[] = [];
      const decoder = new FrameDecoder({ record: (type, _block, head) => got.push([type, recordRow(type)!.decode(head)]) }, { stream: false });
      decoder.feed(encodeRecord(row, fields));
      assert.deepEqual(got, [[row.tag, fields]], row.name);
    }
  }
});

test('the table: tags are unique, never 0, in their direction\'s range; fixed heads cap at their size; planned tags are free', () => {
  const inRange = (tag: number, direction: string) => (direction === 'stream' ? tag >= 0x01 && tag <= 0x3f : tag >= 0x41 && tag <= 0x7f);
  const tags = new Set<number>();
  const names = new Set<string>();
  for (const row of [...RECORD_TABLE, ...PLANNED_RECORDS]) {
    assert.ok(row.tag !== 0 && inRange(row.tag, row.direction), `${row.name}: tag 0x${row.tag.toString(16)} in the ${row.direction} range`);
    assert.ok(!tags.has(row.tag), `tag 0x${row.tag.toString(16)} used once`);
    assert.ok(!names.has(row.name), `name ${row.name} used once`);
    tags.add(row.tag);
    names.add(row.name);
  }
  for (const row of RECORD_TABLE) {
    assert.equal(recordRow(row.tag), row);
    if (row.headBytes !== null) assert.equal(row.maxHeadBytes(BLOCKS), row.headBytes, row.name);
    if (row.pageData) assert.ok(row.perBlock && row.direction === 'stream', `${row.name}: page data goes into a block`);
  }
  assert.equal(recordRow(0), undefined);
  for (const p of PLANNED_RECORDS) assert.equal(recordRow(p.tag), undefined, `${p.name} is not read yet`);
});

test('a head that cannot be encoded is refused with the record named', () => {
  const device = { version: 1, data: new Uint8Array(1) };
  assert.throws(() => encodeHead(RECORD.Device, { ...device, name: '' }), { code: 'ERR_FERRY_WIRE', message: /DEVICE: name "" must be 1-255 bytes/ });
  assert.throws(() => encodeHead(RECORD.Device, { ...device, name: 'é'.repeat(128) }), /DEVICE: name .* must be 1-255 bytes/);
  assert.throws(() => encodeHead(RECORD.Error, { reason: 'x'.repeat(4097) }), /ERROR: a reason of 4097 bytes exceeds 4096/);
  assert.throws(() => encodeHead(RECORD.Verify, { digest: Buffer.alloc(32) }), /VERIFY: a digest of 32 bytes, expected 16/);
  assert.throws(() => encodeHead(RECORD.Refused, { code: 0, reason: 'x' }), /REFUSED: code 0, expected 1\.\.65535/);
  assert.throws(() => encodeHead(RECORD.Refused, { code: 1, reason: 'x'.repeat(4097) }), /REFUSED: a reason of 4097 bytes exceeds 4096/);
  assert.throws(() => RECORD.Refused.decode(Buffer.alloc(1)), /REFUSED: head of 1 bytes has no code/);
  assert.throws(() => RECORD.Refused.decode(Buffer.from([0, 0, 0x61])), /REFUSED: code 0 is never valid/);
  assert.throws(() => RECORD.End.decode(encodeHead(RECORD.End, { totals: [{ normal: 1, zero: 0 }] }), 2), /END: totals for 1 blocks, expected 2/);
  assert.throws(() => RECORD.Vcpu.decode(Buffer.alloc(1)), (err) => err instanceof WireError && /VCPU: head of 1 bytes/.test(err.message));
  assert.throws(() => RECORD.Device.decode(Buffer.from([4, 0x61])), /DEVICE: head of 2 bytes is too short for a name of 4/);
  assert.throws(() => encodeHead(RECORD.Written, { last: true, ranges: [1, 2, 3] }), /WRITTEN: 3 numbers, expected \(first, count\) pairs/);
  assert.throws(() => encodeHead(RECORD.Written, { last: true, ranges: new Uint32Array(2 * 4097) }), /WRITTEN: 8194 u32 \(first, count pairs\), expected 1\.\.8192/);
  assert.throws(() => RECORD.Written.decode(Buffer.alloc(8)), /WRITTEN: head of 8 bytes, expected flags and \(first, count\) pairs/);
  assert.throws(() => RECORD.Written.decode(Buffer.from([2, 0, 0, 0])), /WRITTEN: unknown flags 0x2/);
  assert.throws(() => encodeHead(RECORD.Xbzrle, { page: 0, delta: new Uint8Array(0) }), /XBZRLE: a delta of 0 bytes, expected 1\.\.4096/);
  assert.throws(() => encodeHead(RECORD.Xbzrle, { page: 0, delta: new Uint8Array(4097) }), /XBZRLE: a delta of 4097 bytes, expected 1\.\.4096/);
  assert.throws(() => RECORD.Xbzrle.decode(Buffer.alloc(4)), /XBZRLE: head of 4 bytes, expected a page and a delta of 1\.\.4096 bytes/);
});

test('a hostile XBZRLERUN head is refused whole, before any entry is used, naming what was wrong', () => {
  const d = bytes(3);
  const refuses = (head: Buffer, message: RegExp) => {
    const seen: number[] = [];
    assert.throws(() => walkXbzrleRun(head, (page) => seen.push(page)), (err) => err instanceof WireError && message.test(err.message), message.source);
    assert.deepEqual(seen, [], `${message.source}: no entry handed on`);
  };
  assert.equal(walkXbzrleRun(xbzrleRunHead(2, [[5, 3, d], [9, 3, d]]), () => {}), 2, 'the valid head walks');
  refuses(Buffer.alloc(3), /^XBZRLERUN: head of 3 bytes has no count$/);
  refuses(xbzrleRunHead(0, []), /^XBZRLERUN: 0 pages, expected 1\.\.1024$/);
  refuses(xbzrleRunHead(1025, [[0, 3, d]]), /^XBZRLERUN: 1025 pages, expected 1\.\.1024$/);
  refuses(xbzrleRunHead(0xffffffff, [[0, 3, d]]), /^XBZRLERUN: 4294967295 pages, expected 1\.\.1024$/);
  refuses(xbzrleRunHead(3, [[5, 3, d], [9, 3, d]]), /^XBZRLERUN: entry 2 of 3 is truncated at head byte 22 \(a head of 22 bytes\)$/);
  refuses(xbzrleRunHead(2, [[5, 3, d], [9, 0, new Uint8Array(0)]]), /^XBZRLERUN: entry 1 \(page 9\): a delta of 0 bytes, expected 1\.\.4096$/);
  refuses(xbzrleRunHead(1, [[5, 4097, new Uint8Array(4097)]]), /^XBZRLERUN: entry 0 \(page 5\): a delta of 4097 bytes, expected 1\.\.4096$/);
  refuses(xbzrleRunHead(2, [[5, 3, d], [9, 40, d]]), /^XBZRLERUN: entry 1 \(page 9\): a delta of 40 bytes runs past the head's 22 bytes$/);
  refuses(xbzrleRunHead(2, [[5, 2, d], [9, 3, d]]), /^XBZRLERUN: entry 1 \(page \d+\): /); // a length one short: the next entry is read from the delta's last byte on
  refuses(Buffer.concat([xbzrleRunHead(2, [[5, 3, d], [9, 3, d]]), Buffer.from([1])]), /^XBZRLERUN: 2 entries end at head byte 22, the head has 23$/);
  refuses(xbzrleRunHead(1, [[5, 3, d], [9, 3, d]]), /^XBZRLERUN: 1 entries end at head byte 13, the head has 22$/);
  assert.throws(() => encodeHead(RECORD.XbzrleRun, { entries: [] }), /XBZRLERUN: 0 pages, expected 1\.\.1024/);
  assert.throws(() => encodeHead(RECORD.XbzrleRun, { entries: [{ page: 3, delta: new Uint8Array(4097) }] }), /XBZRLERUN: page 3: a delta of 4097 bytes, expected 1\.\.4096/);
  assert.throws(() => encodeHead(RECORD.XbzrleRun, { entries: Array.from({ length: 200 }, (_, page) => ({ page, delta: new Uint8Array(4096) })) }), /XBZRLERUN: a head of 820404 bytes exceeds 524288/);
});

test('docs/wire-format.md lists every record type and every planned tag with its direction', () => {
  const doc = readFileSync(new URL('../../../docs/wire-format.md', import.meta.url), 'utf8');
  const listed = new Map<string, string>();
  for (const m of doc.matchAll(/^\| (0x[0-9a-f]{2}) \| ([A-Z]+) \| (stream|return) \|/gm)) listed.set(m[2], `${m[1]} ${m[3]}`);
  for (const row of [...RECORD_TABLE, ...PLANNED_RECORDS]) {
    assert.equal(listed.get(row.name), `0x${row.tag.toString(16).padStart(2, '0')} ${row.direction}`, `${row.name} in the document's tables`);
  }
  assert.equal(listed.size, RECORD_TABLE.length + PLANNED_RECORDS.length, 'no record in the document that the code does not know');
});

test('the refusal table: codes unique and never 0, names and codes map both ways, an unknown code is "unknown"; the document lists each', () => {
  const codes = new Set<number>();
  for (const [name, row] of Object.entries(REFUSALS)) {
    assert.ok(row.code >= 1 && row.code <= 0xffff && !codes.has(row.code), `${name}: code ${row.code} valid and used once`);
    codes.add(row.code);
    assert.equal(refusalName(refusalCode(name)), name);
  }
  assert.equal(refusalName(0xfffe), 'unknown');
  assert.throws(() => refusalCode('nonsense'), /REFUSED: no refusal named "nonsense"/);
  const doc = readFileSync(new URL('../../../docs/wire-format.md', import.meta.url), 'utf8');
  const listed = [...doc.matchAll(/^\| (\d+) \| ([a-z-]+) \| /gm)].map((m) => [m[2], Number(m[1])]);
  assert.deepEqual(listed, Object.entries(REFUSALS).map(([name, row]) => [name, row.code]), 'the document\'s refusal table is the code\'s');
});
