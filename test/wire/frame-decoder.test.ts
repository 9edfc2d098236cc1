import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PAGE_SIZE } from '../../src/memory/page.js';
import { FRAME_HEADER_BYTES, WIRE_VERSION, crc32, decodeHeader, encodeHeader, writeFrameHeader } from '../../src/wire/format.js';
import { FrameDecoder, type FrameSink } from '../../src/wire/frame-decoder.js';
import { FrameWriter } from '../../src/wire/frame-writer.js';
import { jsPageSum } from '../../src/wire/page-checksum.js';
import { RECORD, Rec, encodeHead, encodeRecord } from '../../src/wire/records.js';
import { UUID, buildStream, rawRecord, rawXbzrle } from './stream-fixture.js';
import { fileLimit } from '../waits.js';

fileLimit(import.meta.url, 60_000);

/** A sink that keeps what the decoder delivered, checking every write is in bounds. */
function collector(pages: number) {
  const ram = new Uint8Array(pages * PAGE_SIZE);
  const records: [Rec, number][] = [];
  const sink: FrameSink = {
    pageData: (_b, offset, data) => {
      assert.ok(offset >= 0 && offset + data.length <= ram.length, `write ${offset}+${data.length} is inside RAM`);
      ram.set(data, offset);
    },
    pageSum: (_b, first, count) => jsPageSum(new Int32Array(ram.buffer, first * PAGE_SIZE, count * 1024)),
    record: (type, _block, head) => records.push([type, head.length]),
  };
  return { ram, records, sink };
}

test('the header round-trips, and its checks name both values', () => {
  const h = encodeHeader({ pageSize: PAGE_SIZE, uuid: UUID, vcpus: 3, blocks: [{ name: 'ram0', pages: 10 }, { name: 'vram', pages: 1 }] });
  assert.deepEqual(decodeHeader(h), {
    version: WIRE_VERSION, pageSize: PAGE_SIZE, uuid: UUID, vcpus: 3, verify: false, program: null, postcopy: false, resume: false, channels: 0, compression: null,
    blocks: [{ name: 'ram0', pages: 10, visiblePages: 10 }, { name: 'vram', pages: 1, visiblePages: 1 }],
  });
  const verifying = encodeHeader({ pageSize: PAGE_SIZE, uuid: UUID, vcpus: 0, blocks: [{ name: 'ram0', pages: 1 }], verify: true });
  assert.equal(decodeHeader(verifying).verify, true, 'the VERIFY flag round-trips');
  const unknownFlag = Buffer.from(verifying); unknownFlag.writeUInt16LE(0x8001, 10);
  assert.throws(() => decodeHeader(unknownFlag), { message: /header: unknown flags 0x8001 in version 4/ });
  const multifd = encodeHeader({ pageSize: PAGE_SIZE, uuid: UUID, vcpus: 1, blocks: [{ name: 'ram0', pages: 3 }], channels: 5, verify: true });
  assert.equal(decodeHeader(multifd).channels, 5, 'the channel count (flag MULTIFD) round-trips');
  assert.throws(() => encodeHeader({ pageSize: PAGE_SIZE, uuid: UUID, vcpus: 1, blocks: [{ name: 'ram0', pages: 3 }], channels: 65 }), /header: 65 channels, expected 0\.\.64/);
  const noChannels = Buffer.from(multifd);
  noChannels.writeUInt16LE(0, 36 + 4);
  noChannels.writeUInt32LE(crc32(noChannels.subarray(0, noChannels.length - 4)), noChannels.length - 4);
  assert.throws(() => decodeHeader(noChannels), /header: 0 channels, expected 1\.\.64/);
  assert.throws(() => encodeHeader({ pageSize: PAGE_SIZE, uuid: UUID, vcpus: 1, blocks: [{ name: 'ram0', pages: 3 }], channels: 2, postcopy: true }) && decodeHeader(
    encodeHeader({ pageSize: PAGE_SIZE, uuid: UUID, vcpus: 1, blocks: [{ name: 'ram0', pages: 3 }], channels: 2, postcopy: true })), /flags MULTIFD and POSTCOPY together/);
  const resuming = encodeHeader({ pageSize: PAGE_SIZE, uuid: UUID, vcpus: 0, blocks: [{ name: 'ram0', pages: 1 }], postcopy: true, resume: true });
  assert.equal(decodeHeader(resuming).resume, true, 'the RESUME flag round-trips');
  const resumeAlone = encodeHeader({ pageSize: PAGE_SIZE, uuid: UUID, vcpus: 0, blocks: [{ name: 'ram0', pages: 1 }], resume: true });
  assert.throws(() => decodeHeader(resumeAlone), { message: /flag RESUME without POSTCOPY/ });
  const badMagic = Buffer.from(h); badMagic[0] = 0x58;
  assert.throws(() => decodeHeader(badMagic), { code: 'ERR_FERRY_WIRE', message: /bad magic "XERRYMIG", expected "FERRYMIG"/ });
  const badVersion = Buffer.from(h); badVersion.writeUInt16LE(9, 8);
  assert.throws(() => decodeHeader(badVersion), { message: new RegExp(`stream version 9, this destination reads versions 3\\.\\.${WIRE_VERSION} \\(a newer ferry wrote it\\)`) });
  const badPage = Buffer.from(h); badPage.writeUInt32LE(8192, 12);
  assert.throws(() => decodeHeader(badPage), { message: /page size 8192, expected 4096/ });
  const badCheck = Buffer.from(h); badCheck[40] ^= 1;
  assert.throws(() => decodeHeader(badCheck), { message: /header: checksum/ });
});

test('a whole stream decodes the same whatever the chunking, into the same RAM', () => {
  const { bytes, ram } = buildStream(40);
  for (const size of [1, 7, 12, 4096, 65536, bytes.length]) {
    const c = collector(40);
    const d = new FrameDecoder(c.sink, { stream: true });
    for (let at = 0; at < bytes.length; at += size) d.feed(bytes.subarray(at, at + size));
    assert.ok(d.atBoundary);
    assert.deepEqual(c.records.map(([t]) => t), [Rec.Pass, Rec.Pages, Rec.Zero, Rec.Pages, Rec.Zero, Rec.Pages, Rec.Vcpu, Rec.Device, Rec.End, Rec.Go]);
    // Zero pages are not written by the decoder (the loader zeroes what it wrote); data pages match.
    for (const p of [0, 2, 4, 5, 39]) {
      assert.deepEqual(c.ram.subarray(p * PAGE_SIZE, (p + 1) * PAGE_SIZE), ram.subarray(p * PAGE_SIZE, (p + 1) * PAGE_SIZE), `page ${p}`);
    }
  }
});

const passHead = (pass: number) => encodeHead(RECORD.Pass, { pass });
const pagesHead = (first: number) => encodeHead(RECORD.Pages, { first });
const zeroHead = (first: number, count: number) => encodeHead(RECORD.Zero, { first, count });

function expectReject(bytes: Buffer, message: RegExp): void {
  const c = collector(64);
  const d = new FrameDecoder(c.sink, { stream: true });
  assert.throws(() => d.feed(bytes), { code: 'ERR_FERRY_WIRE', message });
  assert.ok(d.closed);
  assert.ok(!c.records.some(([t]) => t === Rec.Go), 'GO never delivered from a rejected stream');
}

test('each frame rule is enforced with a clear error', () => {
  const header = encodeHeader({ pageSize: PAGE_SIZE, uuid: UUID, vcpus: 1, blocks: [{ name: 'ram0', pages: 64 }] });
  const frame = (type: number, block: number, headLen: number, pages: number, head: Buffer = Buffer.alloc(headLen)) => {
    const f = Buffer.alloc(12 + head.length + 4);
    f.writeUInt8(type, 0); f.writeUInt16LE(block, 2); f.writeUInt32LE(headLen, 4); f.writeUInt32LE(pages, 8);
    head.copy(f, 12);
    f.writeUInt32LE(crc32(f.subarray(0, 12 + head.length)), 12 + head.length);
    return f;
  };
  expectReject(Buffer.concat([header, frame(0, 0, 0, 0)]), /unknown record type 0/);
  expectReject(Buffer.concat([header, frame(Rec.Loaded, 0, 0, 0)]), /unknown record LOADED here/);
  expectReject(Buffer.concat([header, frame(Rec.Pages, 0, 4, 257)]), /page count 257, expected 1\.\.256/);
  expectReject(Buffer.concat([header, frame(Rec.Pages, 3, 4, 1)]), /PAGES: block 3, the stream has 1/);
  expectReject(Buffer.concat([header, frame(Rec.Pages, 0, 4, 2, pagesHead(63))]), /pages 63\.\.64 are outside block ram0 of 64 pages/);
  expectReject(Buffer.concat([header, frame(Rec.Zero, 0, 8, 0, zeroHead(60, 5))]), /ZERO: run 60\+5 is outside block ram0/);
  expectReject(Buffer.concat([header, frame(Rec.Device, 0, 0x7fffffff, 0, Buffer.alloc(0))]), /DEVICE: head length 2147483647, expected at most/);
  expectReject(Buffer.concat([header, frame(Rec.Pass, 0, 4, 0, passHead(2)), frame(Rec.Pass, 0, 4, 0, passHead(2))]), /PASS: pass 2 after pass 2/);
  const vcpu = frame(Rec.Vcpu, 0, 3, 0, Buffer.from([0, 0, 0x7b]));
  expectReject(Buffer.concat([header, vcpu, vcpu]), /VCPU: state for vCPU 0 arrived twice/);
  expectReject(Buffer.concat([header, frame(Rec.Go, 0, 0, 0)]), /GO: before END/);
  expectReject(Buffer.concat([header, frame(Rec.Vcpu, 0, 2, 0, Buffer.from([5, 0]))]), /VCPU: index 5, the stream has 1 vCPUs/);
  const bad = frame(Rec.Pass, 0, 4, 0, passHead(1)); bad[bad.length - 1] ^= 0xff;
  expectReject(Buffer.concat([header, bad]), /PASS: check 0x[0-9a-f]+, computed/);
  const { bytes } = buildStream(64);
  const d = new FrameDecoder(collector(64).sink, { stream: true });
  assert.throws(() => d.feed(Buffer.concat([bytes, encodeRecord(RECORD.Pass, { pass: 2 })])), { message: /stream: data after GO/ });
  const flagged = frame(Rec.Pass, 0, 4, 0, passHead(1)); flagged[1] = 0x80;
  expectReject(Buffer.concat([header, flagged]), /PASS: unknown flags 0x80/);
  expectReject(Buffer.concat([header, frame(Rec.Zero, 0, 4, 0, Buffer.alloc(4))]), /ZERO: head length 4, expected 8/);
  expectReject(Buffer.concat([header, frame(Rec.Zero, 0, 8, 0, zeroHead(3, 0))]), /ZERO: run 3\+0 is outside block ram0/);
  expectReject(Buffer.concat([header, frame(Rec.Pass, 0, 4, 1, passHead(1))]), /PASS: page count 1, expected 0/);
  expectReject(Buffer.concat([header, frame(Rec.Pass, 2, 4, 0, passHead(1))]), /PASS: block field 2, expected 0/);
  expectReject(Buffer.concat([header, frame(Rec.Verify, 0, 15, 0)]), /VERIFY: head length 15, expected 16/);
  const end = frame(Rec.End, 0, 2 + 16, 0, Buffer.concat([Buffer.from([1, 0]), Buffer.alloc(16)]));
  expectReject(Buffer.concat([header, end, frame(Rec.Pass, 0, 4, 0, passHead(1))]), /PASS: record after END \(only GO may follow\)/);
  expectReject(Buffer.concat([header, end, end]), /END: record after END/);
  const oversized = new FrameDecoder(collector(64).sink, { stream: true, maxRecordBytes: 1024 });
  assert.throws(() => oversized.feed(Buffer.concat([header, frame(Rec.Pages, 0, 4, 1, pagesHead(0))])), /PAGES: a record of 4100 bytes exceeds the largest frame accepted here \(1024 bytes\)/);
  const back = new FrameDecoder(collector(64).sink, { stream: false });
  assert.throws(() => back.feed(frame(Rec.Pages, 0, 4, 1, pagesHead(0))), /unknown record PAGES here/, 'the return path carries only return records');
});

test('VERIFY comes once, only when the header announced it, after the last page and before END', () => {
  const plain = encodeHeader({ pageSize: PAGE_SIZE, uuid: UUID, vcpus: 0, blocks: [{ name: 'ram0', pages: 64 }] });
  const announced = encodeHeader({ pageSize: PAGE_SIZE, uuid: UUID, vcpus: 0, blocks: [{ name: 'ram0', pages: 64 }], verify: true });
  const verify = encodeRecord(RECORD.Verify, { digest: Buffer.alloc(16, 7) });
  const end = encodeRecord(RECORD.End, { totals: [{ normal: 0, zero: 0 }] });
  expectReject(Buffer.concat([plain, verify]), /VERIFY: the header did not announce it/);
  expectReject(Buffer.concat([announced, verify, verify]), /VERIFY: arrived twice/);
  expectReject(Buffer.concat([announced, end]), /END: the header announced VERIFY, none arrived/);
  expectReject(Buffer.concat([announced, verify, encodeRecord(RECORD.Zero, { first: 0, count: 1 })]), /ZERO: after VERIFY/);
  expectReject(Buffer.concat([announced, verify, encodeRecord(RECORD.Pass, { pass: 2 })]), /PASS: after VERIFY/);
  const c = collector(64);
  new FrameDecoder(c.sink, { stream: true }).feed(Buffer.concat([announced, verify, end, encodeRecord(RECORD.Go, { run: true })]));
  assert.deepEqual(c.records.map(([t]) => t), [Rec.Verify, Rec.End, Rec.Go]);
});

test('each header rule is enforced with a clear error', () => {
  const h = (blocks: { name: string; pages: number }[], vcpus = 1) => encodeHeader({ pageSize: PAGE_SIZE, uuid: UUID, vcpus, blocks });
  assert.throws(() => decodeHeader(h([])), /header: 0 RAM blocks, expected 1\.\.1024/);
  assert.throws(() => decodeHeader(h([{ name: 'ram0', pages: 1 }], 65)), /header: 65 vCPUs, expected at most 64/);
  assert.throws(() => decodeHeader(h([{ name: 'ram0', pages: 0 }])), /header: block ram0 has 0 pages/);
  assert.throws(() => decodeHeader(h([{ name: 'a', pages: 1 }, { name: 'a', pages: 1 }])), /header: block name "a" appears twice/);
  assert.throws(() => decodeHeader(h([{ name: 'bad name', pages: 1 }])), /header: block 0 has an invalid name "bad name"/);
  const long = Buffer.from(h([{ name: 'ram0', pages: 1 }]));
  long.writeUInt32LE(70_000, 32);
  assert.throws(() => decodeHeader(long), /header: body length 70000 is outside 4\.\.65536/);
});

test('a page bit flipped in transit fails its record check', () => {
  const { bytes } = buildStream(64);
  const headerLen = encodeHeader({ pageSize: PAGE_SIZE, uuid: UUID, vcpus: 1, blocks: [{ name: 'ram0', pages: 64 }] }).length;
  const firstPageData = headerLen + 20 /* PASS */ + 12 + 4 /* PAGES frame and head */;
  const inData = Buffer.from(bytes);
  inData[firstPageData + 100] ^= 0x01;
  expectReject(inData, /PAGES: check 0x[0-9a-f]+, computed/);
});

test('fuzz: truncated and bit-flipped streams never crash, never write outside RAM, never deliver GO', () => {
  const { bytes } = buildStream(24);
  let x = 0x9e3779b9;
  const rnd = (n: number) => {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    return (x >>> 0) % n;
  };
  let rejected = 0;
  const runs = 3000;
  for (let i = 0; i < runs; i++) {
    const mutated = Buffer.from(bytes.subarray(0, i % 3 === 0 ? rnd(bytes.length) : bytes.length));
    const flips = i % 3 === 0 ? 0 : 1 + rnd(4);
    for (let f = 0; f < flips; f++) mutated[rnd(mutated.length)] ^= 1 << rnd(8);
    const c = collector(24);
    const d = new FrameDecoder(c.sink, { stream: true });
    try {
      for (let at = 0; at < mutated.length; at += 1 + rnd(9000)) d.feed(mutated.subarray(at, at + 1 + rnd(9000)));
    } catch (err) {
      // A flipped version field is a refusal (refusals.ts): the stream's version is not read here.
      assert.ok(['ERR_FERRY_WIRE', 'ERR_FERRY_REFUSED'].includes((err as { code?: string }).code ?? ''), `only wire errors and refusals escape: ${(err as Error).message}`);
      rejected++;
    }
    const complete = c.records.some(([t]) => t === Rec.Go);
    if (complete) assert.ok(mutated.length === bytes.length && !d.closed, 'GO only from a stream that decoded cleanly');
  }
  assert.ok(rejected > runs * 0.9, `most mutations are rejected (${rejected} of ${runs})`);
});

/** A version 3 header, laid out by hand (blocks without their pages in use); `flags` as given. */
function v3Header(blocks: { name: string; pages: number }[], flags = 0): Buffer {
  const body = Buffer.concat([Buffer.from([blocks.length, 0, 1, 0]), ...blocks.map((b) => {
    const entry = Buffer.alloc(1 + b.name.length + 4);
    entry.writeUInt8(b.name.length, 0);
    entry.write(b.name, 1, 'ascii');
    entry.writeUInt32LE(b.pages, 1 + b.name.length);
    return entry;
  })]);
  const fixed = Buffer.alloc(36);
  fixed.write('FERRYMIG', 0, 'ascii');
  fixed.writeUInt16LE(3, 8);
  fixed.writeUInt16LE(flags, 10);
  fixed.writeUInt32LE(PAGE_SIZE, 12);
  Buffer.from(UUID.replaceAll('-', ''), 'hex').copy(fixed, 16);
  fixed.writeUInt32LE(body.length, 32);
  const all = Buffer.concat([fixed, body, Buffer.alloc(4)]);
  all.writeUInt32LE(crc32(all.subarray(0, 36 + body.length)), 36 + body.length);
  return all;
}

const IDENTITY = 'c0ffee'.repeat(10).concat('0123');

test('version 4\'s header: the program identity and each block\'s pages in use round-trip, and their rules name the values', () => {
  const h = encodeHeader({ pageSize: PAGE_SIZE, uuid: UUID, vcpus: 1, program: IDENTITY, blocks: [{ name: 'ram0', pages: 64, visiblePages: 16 }, { name: 'b', pages: 3 }] });
  assert.equal(h.readUInt16LE(10), 0x0002, 'the PROGRAM flag');
  const d = decodeHeader(h);
  assert.equal(d.program, IDENTITY);
  assert.deepEqual(d.blocks, [{ name: 'ram0', pages: 64, visiblePages: 16 }, { name: 'b', pages: 3, visiblePages: 3 }]);
  assert.throws(() => encodeHeader({ pageSize: PAGE_SIZE, uuid: UUID, vcpus: 0, program: 'ABC', blocks: [{ name: 'a', pages: 1 }] }),
    { code: 'ERR_FERRY_WIRE', message: /header: program identity "ABC" is not 64 lowercase hex characters/ });
  assert.throws(() => decodeHeader(encodeHeader({ pageSize: PAGE_SIZE, uuid: UUID, vcpus: 0, blocks: [{ name: 'ram0', pages: 10, visiblePages: 11 }] })),
    /header: block ram0 is in use to 11 pages, past its 10/);
  const short = Buffer.from(encodeHeader({ pageSize: PAGE_SIZE, uuid: UUID, vcpus: 0, blocks: [{ name: 'a', pages: 1 }] }));
  short.writeUInt16LE(0x0002, 10);
  short.writeUInt32LE(crc32(short.subarray(0, short.length - 4)), short.length - 4);
  assert.throws(() => decodeHeader(short), /header: body ends inside the program identity/);
});

test('a version 3 header still decodes (no program, every block in use to its end); version 3 knows no PROGRAM flag', () => {
  assert.deepEqual(decodeHeader(v3Header([{ name: 'ram0', pages: 10 }, { name: 'vram', pages: 2 }])), {
    version: 3, pageSize: PAGE_SIZE, uuid: UUID, vcpus: 1, verify: false, program: null, postcopy: false, resume: false, channels: 0, compression: null,
    blocks: [{ name: 'ram0', pages: 10, visiblePages: 10 }, { name: 'vram', pages: 2, visiblePages: 2 }],
  });
  assert.equal(decodeHeader(v3Header([{ name: 'ram0', pages: 1 }], 1)).verify, true);
  assert.throws(() => decodeHeader(v3Header([{ name: 'ram0', pages: 1 }], 2)), /header: unknown flags 0x2 in version 3/);
});

test('GROW and the pages in use: no page past them, growth only up to the block, never down, never after VERIFY', () => {
  const header = (verify = false) => encodeHeader({ pageSize: PAGE_SIZE, uuid: UUID, vcpus: 1, verify, blocks: [{ name: 'ram0', pages: 64, visiblePages: 16 }] });
  const ram = new Uint8Array(64 * PAGE_SIZE).fill(3);
  const frames = (fill: (w: FrameWriter) => void) => {
    const out: Buffer[] = [];
    const w = new FrameWriter((chunk, release) => { out.push(Buffer.from(chunk)); release(); }, 2);
    fill(w);
    w.flush();
    return Buffer.concat(out);
  };
  const grow = (pages: number, block = 0) => encodeRecord(RECORD.Grow, { pages }, block);
  expectReject(Buffer.concat([header(), frames((w) => w.appendPages(0, 15, 2, ram))]), /PAGES: pages 15\.\.16 are past block ram0's 16 pages in use/);
  expectReject(Buffer.concat([header(), encodeRecord(RECORD.Zero, { first: 10, count: 7 })]), /ZERO: pages 10\.\.16 are past block ram0's 16 pages in use/);
  expectReject(Buffer.concat([header(), grow(16)]), /GROW: block ram0 to 16 pages, in use to 16 already \(a block never shrinks\)/);
  expectReject(Buffer.concat([header(), grow(32), grow(20)]), /GROW: block ram0 to 20 pages, in use to 32 already/);
  expectReject(Buffer.concat([header(), grow(65)]), /GROW: block ram0 to 65 pages, past its 64/);
  expectReject(Buffer.concat([header(), grow(32, 1)]), /GROW: block 1, the stream has 1/);
  expectReject(Buffer.concat([header(true), encodeRecord(RECORD.Verify, { digest: Buffer.alloc(16) }), grow(32)]), /GROW: after VERIFY/);
  const c = collector(64);
  const d = new FrameDecoder(c.sink, { stream: true });
  d.feed(Buffer.concat([header(), grow(32), frames((w) => w.appendPages(0, 16, 16, ram)), encodeRecord(RECORD.Zero, { first: 0, count: 32 }), grow(64),
    frames((w) => w.appendPages(0, 63, 1, ram))]));
  assert.deepEqual(c.records.map(([t]) => t), [Rec.Grow, Rec.Pages, Rec.Zero, Rec.Grow, Rec.Pages]);
  assert.ok(d.atBoundary && !d.closed);
});

test('a VCPU record may carry 4 MiB of state (an unwound WebAssembly stack), not a byte more', () => {
  const header = encodeHeader({ pageSize: PAGE_SIZE, uuid: UUID, vcpus: 1, blocks: [{ name: 'ram0', pages: 1 }] });
  const c = collector(1);
  new FrameDecoder(c.sink, { stream: true }).feed(Buffer.concat([header, encodeRecord(RECORD.Vcpu, { index: 0, state: new Uint8Array(4 * 1024 * 1024) })]));
  assert.deepEqual(c.records, [[Rec.Vcpu, 4 * 1024 * 1024 + 2]]);
  const over = encodeRecord(RECORD.Vcpu, { index: 0, state: new Uint8Array(4 * 1024 * 1024 + 1) });
  expectReject(Buffer.concat([header, over]), /VCPU: head length 4194307, expected at most 4194306/);
});

test('MISSING: only with the POSTCOPY flag; its ranges run in order across records of a block, so a stream cannot repeat them without end', () => {
  const header = (postcopy: boolean) => encodeHeader({ pageSize: PAGE_SIZE, uuid: UUID, vcpus: 0, blocks: [{ name: 'ram0', pages: 64 }], postcopy });
  const missing = (...pairs: number[]) => encodeRecord(RECORD.Missing, { ranges: Uint32Array.from(pairs) });
  const feed = (postcopy: boolean, ...records: Buffer[]) => new FrameDecoder(collector(64).sink, { stream: true }).feed(Buffer.concat([header(postcopy), ...records]));
  feed(true, missing(0, 4, 10, 2), missing(20, 44));
  assert.throws(() => feed(false, missing(0, 1)), /MISSING: .*POSTCOPY/);
  assert.throws(() => feed(true, missing(0, 1), missing(0, 1)), /MISSING: range 0\+1 of block ram0 \(64 pages\) is empty, out of order or outside it/);
  assert.throws(() => feed(true, missing(10, 2), missing(11, 1)), /MISSING: range 11\+1 .* out of order/);
  assert.throws(() => feed(true, missing(60, 5)), /MISSING: range 60\+5 .* outside it/);
});

test('several channels (flag MULTIFD): a channel opens with CHANNEL and carries only the pages\' records and SYNC of its PASS; the main connection carries none of those but SYNC', () => {
  const header = encodeHeader({ pageSize: PAGE_SIZE, uuid: UUID, vcpus: 1, channels: 2, blocks: [{ name: 'ram0', pages: 8 }] });
  const plain = encodeHeader({ pageSize: PAGE_SIZE, uuid: UUID, vcpus: 1, blocks: [{ name: 'ram0', pages: 8 }] });
  const channel = encodeRecord(RECORD.Channel, { index: 1, channels: 2, uuid: UUID });
  const pass = (n: number) => encodeRecord(RECORD.Pass, { pass: n });
  const sync = (n: number) => encodeRecord(RECORD.Sync, { pass: n });
  const zero = encodeRecord(RECORD.Zero, { first: 0, count: 2 });
  const onChannel = (bytes: Buffer, pattern: RegExp | null) => {
    const c = collector(8);
    const d = new FrameDecoder(c.sink, { stream: true, channelOf: decodeHeader(header) });
    if (pattern === null) {
      d.feed(bytes);
      return c.records.map(([t]) => t);
    }
    assert.throws(() => d.feed(bytes), pattern);
    return [];
  };
  assert.deepEqual(onChannel(Buffer.concat([channel, pass(1), zero, sync(1), pass(2), sync(2)]), null), [Rec.Channel, Rec.Pass, Rec.Zero, Rec.Sync, Rec.Pass, Rec.Sync]);
  onChannel(Buffer.concat([pass(1), channel]), /PASS: a channel opens with CHANNEL/);
  onChannel(Buffer.concat([channel, channel]), /CHANNEL: CHANNEL again/);
  onChannel(Buffer.concat([channel, encodeRecord(RECORD.End, { totals: [{ normal: 0, zero: 0 }] })]), /END: not on a channel's connection/);
  onChannel(Buffer.concat([channel, pass(1), sync(2)]), /SYNC: pass 2 after PASS 1/);
  onChannel(Buffer.concat([channel, pass(1), sync(1), sync(1)]), /SYNC: pass 1 after PASS 1 and SYNC 1/);
  expectReject(Buffer.concat([header, pass(1)]), /PASS: on the main connection of a stream whose pages travel on 2 channels/);
  expectReject(Buffer.concat([header, zero]), /ZERO: on the main connection/);
  expectReject(Buffer.concat([header, sync(2), sync(1)]), /SYNC: pass 1 after SYNC and SYNC 2/);
  expectReject(Buffer.concat([plain, sync(1)]), /SYNC: the header did not announce channels/);
  expectReject(Buffer.concat([plain, channel]), /CHANNEL: the header did not announce channels/);
});

test('compression (flag COMPRESSION, only with MULTIFD): the header names the codec; COMPRESSED travels only on a channel of a stream that announced it, within its block and its pages in use', () => {
  const blocks = [{ name: 'ram0', pages: 300, visiblePages: 200 }];
  const header = encodeHeader({ pageSize: PAGE_SIZE, uuid: UUID, vcpus: 1, channels: 2, compression: 'zstd', blocks });
  assert.equal(decodeHeader(header).compression, 'zstd', 'the codec round-trips');
  for (const method of ['zlib', 'lz4'] as const) assert.equal(decodeHeader(encodeHeader({ pageSize: PAGE_SIZE, uuid: UUID, vcpus: 1, channels: 1, compression: method, blocks })).compression, method);
  assert.throws(() => encodeHeader({ pageSize: PAGE_SIZE, uuid: UUID, vcpus: 1, compression: 'zstd', blocks }), /header: compression without channels/);
  const badCode = Buffer.from(header);
  badCode.writeUInt8(9, 36 + 4 + 2); // after blocks, vcpus and the channel count
  badCode.writeUInt32LE(crc32(badCode.subarray(0, badCode.length - 4)), badCode.length - 4);
  assert.throws(() => decodeHeader(badCode), { code: 'ERR_FERRY_REFUSED', message: /header: compression method 9, this destination knows 1 \(zlib\), 2 \(zstd\) and 3 \(lz4\)/ });
  const alone = Buffer.from(encodeHeader({ pageSize: PAGE_SIZE, uuid: UUID, vcpus: 1, blocks }));
  alone.writeUInt16LE(0x0020, 10);
  alone.writeUInt32LE(crc32(alone.subarray(0, alone.length - 4)), alone.length - 4);
  assert.throws(() => decodeHeader(alone), /flag COMPRESSION without MULTIFD/);
  const plainChannels = encodeHeader({ pageSize: PAGE_SIZE, uuid: UUID, vcpus: 1, channels: 2, blocks });
  const channel = encodeRecord(RECORD.Channel, { index: 0, channels: 2, uuid: UUID });
  const packed = (first: number, count: number) => encodeRecord(RECORD.Compressed, { first, count, data: Uint8Array.from([1, 2, 3]) });
  const onChannel = (h: Buffer, bytes: Buffer) => {
    const c = collector(300);
    new FrameDecoder(c.sink, { stream: true, channelOf: decodeHeader(h) }).feed(bytes);
    return c.records.map(([t]) => t);
  };
  const pass = encodeRecord(RECORD.Pass, { pass: 1 });
  assert.deepEqual(onChannel(header, Buffer.concat([channel, pass, packed(72, 128)])), [Rec.Channel, Rec.Pass, Rec.Compressed]);
  assert.throws(() => onChannel(plainChannels, Buffer.concat([channel, pass, packed(0, 1)])), /COMPRESSED: the header did not announce compression \(flag COMPRESSION\)/);
  assert.throws(() => onChannel(header, Buffer.concat([channel, pass, packed(150, 100)])), /COMPRESSED: pages 150\.\.249 are past block ram0's 200 pages in use/);
  assert.throws(() => onChannel(header, Buffer.concat([channel, pass, packed(299, 2)])), /COMPRESSED: pages 299\.\.300 are outside block ram0 of 300 pages/);
  const tooMany = encodeRecord(RECORD.Compressed, { first: 0, count: 1, data: Uint8Array.from([1]) });
  tooMany.writeUInt32LE(129, 12 + 4);
  tooMany.writeUInt32LE(crc32(tooMany.subarray(0, tooMany.length - 4)), tooMany.length - 4);
  assert.throws(() => onChannel(header, Buffer.concat([channel, pass, tooMany])), /COMPRESSED: 129 pages, expected 1\.\.128/);
  expectReject(Buffer.concat([header, packed(0, 1)]), /COMPRESSED: on the main connection of a stream whose pages travel on 2 channels/);
  expectReject(Buffer.concat([encodeHeader({ pageSize: PAGE_SIZE, uuid: UUID, vcpus: 1, blocks }), packed(0, 1)]), /COMPRESSED: the header did not announce channels/);
});

test('XBZRLERUN goes where XBZRLE may, every page inside the block and its pages in use; its head is capped at 512 KiB at the frame and refused whole when malformed, before the sink sees it', () => {
  const header = (o: { verify?: boolean; channels?: number } = {}) =>
    encodeHeader({ pageSize: PAGE_SIZE, uuid: UUID, vcpus: 0, blocks: [{ name: 'ram0', pages: 8, visiblePages: 4 }], ...o });
  const run = (...pages: number[]) => encodeRecord(RECORD.XbzrleRun, { entries: pages.map((page) => ({ page, delta: Uint8Array.from([0, 1, 9]) })) });
  const pass = encodeRecord(RECORD.Pass, { pass: 1 });
  const c = collector(8);
  new FrameDecoder(c.sink, { stream: true }).feed(Buffer.concat([header(), pass, run(3, 0, 2)]));
  assert.deepEqual(c.records, [[Rec.Pass, 4], [Rec.XbzrleRun, 4 + 3 * 9]], 'delivered with its head; the deltas are the loader\'s to check');
  const refusedBeforeSink = (bytes: Buffer, message: RegExp) => {
    const got = collector(8);
    assert.throws(() => new FrameDecoder(got.sink, { stream: true }).feed(bytes), { code: 'ERR_FERRY_WIRE', message });
    assert.ok(!got.records.some(([t]) => t === Rec.XbzrleRun), `${message.source}: never delivered`);
  };
  refusedBeforeSink(Buffer.concat([header(), pass, run(1, 4)]), /^XBZRLERUN: pages 4\.\.4 are past block ram0's 4 pages in use/);
  refusedBeforeSink(Buffer.concat([header(), pass, run(8)]), /^XBZRLERUN: page 8 is outside block ram0 of 8 pages/);
  refusedBeforeSink(Buffer.concat([header(), pass, encodeRecord(RECORD.XbzrleRun, { entries: [{ page: 0, delta: Uint8Array.from([0, 1, 9]) }] }, 1)]), /^XBZRLERUN: block 1, the stream has 1/);
  // The frame alone is refused for a head over the cap: nothing of the head is read or allocated.
  const over = Buffer.alloc(FRAME_HEADER_BYTES);
  writeFrameHeader(new DataView(over.buffer), 0, Rec.XbzrleRun, 0, 512 * 1024 + 1, 0);
  refusedBeforeSink(Buffer.concat([header(), pass, over]), /^XBZRLERUN: head length 524289, expected at most 524288 \(at byte/);
  const tooMany = Buffer.alloc(4 + 9);
  tooMany.writeUInt32LE(1025, 0);
  tooMany.writeUInt16LE(3, 8);
  refusedBeforeSink(Buffer.concat([header(), pass, rawRecord(Rec.XbzrleRun, tooMany)]), /^XBZRLERUN: 1025 pages, expected 1\.\.1024/);
  const short = Buffer.from(run(1, 2).subarray(FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + 4 + 18 - 1));
  refusedBeforeSink(Buffer.concat([header(), pass, rawRecord(Rec.XbzrleRun, short)]), /^XBZRLERUN: entry 1 \(page 2\): a delta of 3 bytes runs past the head's 21 bytes/);
  const pageOver = Buffer.from(run(1).subarray(FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + 13));
  pageOver.writeUInt16LE(4097, 8);
  refusedBeforeSink(Buffer.concat([header(), pass, rawRecord(Rec.XbzrleRun, pageOver)]), /^XBZRLERUN: entry 0 \(page 1\): a delta of 4097 bytes, expected 1\.\.4096/);
  expectReject(Buffer.concat([header({ verify: true }), encodeRecord(RECORD.Verify, { digest: Buffer.alloc(16) }), run(0)]), /XBZRLERUN: after VERIFY/);
  expectReject(Buffer.concat([header(), encodeRecord(RECORD.End, { totals: [{ normal: 0, zero: 0 }] }), run(0)]), /XBZRLERUN: record after END/);
  expectReject(Buffer.concat([header({ channels: 2 }), run(0)]), /XBZRLERUN: on the main connection of a stream whose pages travel on 2 channels/);
  const onChannel = new FrameDecoder(collector(8).sink, { stream: true, channelOf: decodeHeader(header({ channels: 2 })) });
  onChannel.feed(Buffer.concat([encodeRecord(RECORD.Channel, { index: 0, channels: 2, uuid: UUID }), pass, run(1, 3)]));
  assert.equal(onChannel.records, 3);
});

test('XBZRLE goes where PAGES may: inside the block and its pages in use, on a channel (not on the main connection of a MULTIFD stream), never after VERIFY, END or a post-copy GO; its head is capped at a page', () => {
  const header = (o: { verify?: boolean; channels?: number; postcopy?: boolean } = {}) =>
    encodeHeader({ pageSize: PAGE_SIZE, uuid: UUID, vcpus: 0, blocks: [{ name: 'ram0', pages: 8, visiblePages: 4 }], ...o });
  const x = (page: number, delta = Uint8Array.from([0, 1, 9])) => encodeRecord(RECORD.Xbzrle, { page, delta });
  const c = collector(8);
  new FrameDecoder(c.sink, { stream: true }).feed(Buffer.concat([header(), encodeRecord(RECORD.Pass, { pass: 1 }), x(3), x(0, new Uint8Array(4096).fill(1))]));
  assert.deepEqual(c.records, [[Rec.Pass, 4], [Rec.Xbzrle, 7], [Rec.Xbzrle, 4100]], 'delivered with their heads; the delta is the loader\'s to check');
  expectReject(Buffer.concat([header(), x(4)]), /XBZRLE: pages 4\.\.4 are past block ram0's 4 pages in use/);
  expectReject(Buffer.concat([header(), x(8)]), /XBZRLE: page 8 is outside block ram0 of 8 pages/);
  expectReject(Buffer.concat([header(), rawXbzrle(0, new Uint8Array(0))]), /XBZRLE: head of 4 bytes, expected a page and a delta of 1\.\.4096 bytes/);
  expectReject(Buffer.concat([header(), rawXbzrle(0, new Uint8Array(4097))]), /XBZRLE: head length 4101, expected at most 4100/);
  expectReject(Buffer.concat([header({ verify: true }), encodeRecord(RECORD.Verify, { digest: Buffer.alloc(16) }), x(0)]), /XBZRLE: after VERIFY/);
  expectReject(Buffer.concat([header(), encodeRecord(RECORD.End, { totals: [{ normal: 0, zero: 0 }] }), x(0)]), /XBZRLE: record after END/);
  // After a post-copy GO (which was delivered: the guest runs there), only PCPAGES and PEND.
  assert.throws(() => new FrameDecoder(collector(8).sink, { stream: true }).feed(Buffer.concat([header({ postcopy: true }), encodeRecord(RECORD.Missing, { ranges: new Uint32Array(0) }),
    encodeRecord(RECORD.End, { totals: [{ normal: 0, zero: 0 }] }), encodeRecord(RECORD.Go, { run: true }), x(0)])), /XBZRLE: after GO of a post-copy stream/);
  expectReject(Buffer.concat([header({ channels: 2 }), x(0)]), /XBZRLE: on the main connection of a stream whose pages travel on 2 channels/);
  const onChannel = new FrameDecoder(collector(8).sink, { stream: true, channelOf: decodeHeader(header({ channels: 2 })) });
  onChannel.feed(Buffer.concat([encodeRecord(RECORD.Channel, { index: 0, channels: 2, uuid: UUID }), encodeRecord(RECORD.Pass, { pass: 1 }), x(1)]));
  assert.equal(onChannel.records, 3);
});
