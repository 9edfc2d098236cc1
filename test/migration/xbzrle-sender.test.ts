/**
 * XBZRLE's sender side as records (src/migration/xbzrle-sender.ts,
 * xbzrle-batch.ts): a run's deltas go as one XBZRLERUN record after its
 * whole pages (one XBZRLE record for a single delta), a batch splits at
 * the record's caps, and a destination's channel loader (channel-loader.ts,
 * on this thread) fed what the sender wrote ends with the source's RAM,
 * byte for byte (invariant 2 on contents).
 */
import assert from 'node:assert/strict';
import { randomFillSync } from 'node:crypto';
import { test } from 'node:test';
import { PAGE_SIZE } from '../../src/memory/page.js';
import { ChannelLoader } from '../../src/migration/channel-loader.js';
import type { FromChannelLoader } from '../../src/migration/messages.js';
import { RamLoader } from '../../src/migration/ram-loader.js';
import { XbzrleBatch } from '../../src/migration/xbzrle-batch.js';
import { XbzrleSender, xbzrleRunBytes } from '../../src/migration/xbzrle-sender.js';
import { decodeHeader, encodeHeader, FRAME_HEADER_BYTES, MAX_PAGES_PER_RECORD } from '../../src/wire/format.js';
import { FrameWriter, SLOT_BYTES } from '../../src/wire/frame-writer.js';
import { MAX_XBZRLE_RUN_HEAD_BYTES, RECORD, Rec, encodeRecord } from '../../src/wire/records.js';
import { fileLimit } from '../waits.js';

fileLimit(import.meta.url, 60_000);

const PAGES = 64;
const UUID = '0f0f0f0f-1111-4222-8333-444444444444';
const header = decodeHeader(encodeHeader({ pageSize: PAGE_SIZE, uuid: UUID, vcpus: 0, blocks: [{ name: 'ram0', pages: PAGES }], channels: 1, compression: null, verify: false }));

/** Each frame's type and head in `bytes` (a channel's stream: no header). */
function frames(bytes: Buffer): { type: number; head: Buffer }[] {
  const out: { type: number; head: Buffer }[] = [];
  for (let at = 0; at < bytes.length;) {
    const headLen = bytes.readUInt32LE(at + 4);
    out.push({ type: bytes[at], head: bytes.subarray(at + FRAME_HEADER_BYTES, at + FRAME_HEADER_BYTES + headLen) });
    at += FRAME_HEADER_BYTES + headLen + bytes.readUInt32LE(at + 8) * PAGE_SIZE + 4;
  }
  return out;
}

/** A source block, an XbzrleSender, a writer, and a channel's loader fed each pass's bytes. */
function pair() {
  const src = new Uint8Array(PAGES * PAGE_SIZE);
  randomFillSync(src);
  const sender = new XbzrleSender(PAGES * PAGE_SIZE, null);
  let out: Buffer[] = [];
  const writer = new FrameWriter((chunk, release) => { out.push(Buffer.from(chunk)); release(); }, 2);
  const ram = new RamLoader(header);
  const messages: FromChannelLoader[] = [];
  const loader = new ChannelLoader({ header, ram: ram.attachment(), maxRecordBytes: 16 * 1024 * 1024, words: new SharedArrayBuffer(4), index: 0 }, (m) => messages.push(m), 0);
  writer.append(RECORD.Channel, { index: 0, channels: 1, uuid: UUID });
  /** Pass `n`: the runs of pages given, through the sender (as RamSender sends them once it is active: from pass 1); the frames sent. */
  const pass = (n: number, runs: readonly [number, number][]) => {
    sender.startPass(n, false, 0);
    writer.append(RECORD.Pass, { pass: n });
    for (const [first, count] of runs) {
      assert.ok(writer.hasRoom(xbzrleRunBytes(count)));
      if (sender.active) sender.sendRun(writer, 0, src, first, count, null);
      else writer.appendPages(0, first, count, src);
    }
    writer.append(RECORD.Sync, { pass: n });
    writer.flush();
    const bytes = Buffer.concat(out);
    out = [];
    loader.feed(bytes);
    const failed = messages.find((m) => m.type === 'failed');
    assert.equal(failed, undefined, JSON.stringify(failed));
    return frames(bytes).filter((f) => f.type !== Rec.Channel && f.type !== Rec.Pass && f.type !== Rec.Sync);
  };
  const same = () => Buffer.compare(Buffer.from(ram.blocks[0].bytes.subarray(0, src.length)), Buffer.from(src)) === 0;
  /** The channel's count of pages applied as deltas at its SYNC of pass `n`. */
  const deltasAt = (n: number) => messages.flatMap((m) => (m.type === 'synced' && m.pass === n ? [m.figures.xbzrlePages] : []))[0];
  return { src, sender, pass, same, deltasAt };
}

test('a run\'s deltas go as one XBZRLERUN after its whole pages, a lone delta as XBZRLE, and the destination ends with the source\'s RAM', () => {
  const { src, sender, pass, same, deltasAt } = pair();
  const first = pass(1, [[0, PAGES / 2], [PAGES / 2, PAGES / 2]]);
  assert.deepEqual(first.map((f) => f.type), [Rec.Pages, Rec.Pages], 'pass 1: misses go whole and are cached (from the first pass on)');
  assert.ok(same(), 'pass 1 (whole)');
  const unchanged = pass(2, [[0, PAGES / 2], [PAGES / 2, PAGES / 2]]);
  assert.deepEqual(unchanged.map((f) => f.type), [], 'pass 2: pages cached in pass 1 and unchanged go not at all');
  // Pass 3: pages 0-9 changed a little (deltas), page 10 rewritten (an overflow: whole), 11-15 unchanged, 16-19 changed.
  for (let p = 0; p < 20; p++) if (p < 11 || p > 15) src[p * PAGE_SIZE + 7] ^= 0x5a;
  randomFillSync(src, 10 * PAGE_SIZE, PAGE_SIZE);
  const third = pass(3, [[0, 20]]);
  assert.deepEqual(third.map((f) => f.type), [Rec.Pages, Rec.XbzrleRun], 'the whole page, then the 14 deltas in one record');
  assert.deepEqual(RECORD.XbzrleRun.decode(third[1].head).entries.map((e) => e.page), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 16, 17, 18, 19]);
  assert.equal(sender.lastDeltas, 14);
  assert.equal(sender.lastWhole, 1);
  assert.ok(same(), 'pass 3: RAM equal after the deltas');
  src[40 * PAGE_SIZE + 1] ^= 1;
  const fourth = pass(4, [[40, 1], [41, 3]]);
  assert.deepEqual(fourth.map((f) => f.type), [Rec.Xbzrle], 'a lone delta goes as XBZRLE; unchanged pages go not at all');
  assert.ok(same(), 'pass 4: RAM equal');
  assert.deepEqual([deltasAt(3), deltasAt(4)], [14, 15], 'the destination counted each delta (cumulative)');
});

test('a batch splits at the record\'s caps (1024 pages, 512 KiB of head), each part a valid record, and never outgrows a send slot', () => {
  const chunks: Buffer[] = [];
  const writer = new FrameWriter((chunk, release) => { chunks.push(Buffer.from(chunk)); release(); }, 4);
  const batch = new XbzrleBatch();
  const small = Uint8Array.from([0, 1, 9]);
  for (let p = 0; p < 1500; p++) {
    if (!writer.hasRoom(64)) writer.flush();
    batch.add(writer, 0, p, small, small.length);
  }
  batch.send(writer, 0);
  writer.flush();
  const counts = frames(Buffer.concat(chunks)).map((f) => (f.type === Rec.XbzrleRun ? RECORD.XbzrleRun.decode(f.head).entries.length : -1));
  assert.deepEqual(counts, [1024, 476], 'split at 1024 pages');
  chunks.length = 0;
  const big = new Uint8Array(4096).fill(1);
  for (let p = 0; p < 200; p++) {
    if (!writer.hasRoom(4200)) writer.flush();
    batch.add(writer, 0, p, big, big.length);
  }
  batch.send(writer, 0);
  writer.flush();
  const heads = frames(Buffer.concat(chunks)).map((f) => [f.type, f.head.length]);
  const perRecord = Math.floor((MAX_XBZRLE_RUN_HEAD_BYTES - 4) / 4102);
  assert.deepEqual(heads, [[Rec.XbzrleRun, 4 + perRecord * 4102], [Rec.XbzrleRun, 4 + (200 - perRecord) * 4102]], 'split before the head passes 512 KiB');
  assert.ok(xbzrleRunBytes(MAX_PAGES_PER_RECORD) <= SLOT_BYTES, 'the worst run fits in one slot');
});

test('on a channel, an XBZRLERUN with a page outside the channel\'s stripe is refused before any of its deltas is applied', () => {
  const two = decodeHeader(encodeHeader({ pageSize: PAGE_SIZE, uuid: UUID, vcpus: 0, blocks: [{ name: 'ram0', pages: 1024 }], channels: 2, compression: null, verify: false }));
  const ram = new RamLoader(two);
  const messages: FromChannelLoader[] = [];
  const loader = new ChannelLoader({ header: two, ram: ram.attachment(), maxRecordBytes: 16 * 1024 * 1024, words: new SharedArrayBuffer(4), index: 0 }, (m) => messages.push(m), 0);
  const delta = Uint8Array.from([0, 1, 9]);
  const run = (...pages: number[]) => encodeRecord(RECORD.XbzrleRun, { entries: pages.map((page) => ({ page, delta })) });
  // Channel 0's stripe is pages 0..511 (2 MiB ranges alternate between the 2 channels).
  loader.feed(Buffer.concat([encodeRecord(RECORD.Channel, { index: 0, channels: 2, uuid: UUID }), encodeRecord(RECORD.Pass, { pass: 1 }),
    encodeRecord(RECORD.Zero, { first: 0, count: 512 }), encodeRecord(RECORD.Sync, { pass: 1 }), encodeRecord(RECORD.Pass, { pass: 2 }), run(4, 5)]));
  assert.equal(messages.find((m) => m.type === 'failed'), undefined, 'a run inside the stripe loads');
  assert.equal(ram.blocks[0].bytes[4 * PAGE_SIZE], 9, 'its delta applied');
  loader.feed(run(6, 600));
  const failed = messages.find((m) => m.type === 'failed');
  assert.match(failed?.type === 'failed' ? failed.error.message : '', /^XBZRLERUN: pages 600\.\.600 of block ram0 are not all in channel 0's stripe/);
  assert.equal(ram.blocks[0].bytes[6 * PAGE_SIZE], 0, 'page 6, in the stripe and first in the record, was not touched');
});
