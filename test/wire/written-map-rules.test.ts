/**
 * The ever-written map's rules at the decoder (written-map-rules.ts): a
 * destination that asked takes WRITTEN first, blocks in order, ranges
 * coalesced and inside their block; a record over the cap, too many ranges,
 * is refused before its head is allocated.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PAGE_SIZE } from '../../src/memory/page.js';
import { FRAME_HEADER_BYTES, encodeHeader, writeFrameHeader } from '../../src/wire/format.js';
import { FrameDecoder } from '../../src/wire/frame-decoder.js';
import { RECORD, Rec, encodeRecord } from '../../src/wire/records.js';
import { UUID } from './stream-fixture.js';
import { fileLimit } from '../waits.js';

fileLimit(import.meta.url, 10_000);

const HEADER = encodeHeader({ pageSize: PAGE_SIZE, uuid: UUID, vcpus: 0, blocks: [{ name: 'a', pages: 100 }, { name: 'b', pages: 50 }] });
const written = (block: number, ranges: number[], last = false) => encodeRecord(RECORD.Written, { last, ranges }, block);

/** Decode the header and `frames` at a destination that asked (or not); the ranges it took per block, or the error. */
function decode(frames: Buffer[], asked = true): { taken: [number, number[]][]; error: string | null } {
  const taken: [number, number[]][] = [];
  const d = new FrameDecoder({
    record: (type, block, head) => { if (type === Rec.Written) taken.push([block, Array.from(RECORD.Written.decode(head).ranges)]); },
  }, { stream: true, written: asked });
  try {
    d.feed(Buffer.concat([HEADER, ...frames]));
    return { taken, error: null };
  } catch (err) {
    return { taken, error: (err as Error).message };
  }
}

test('a map in order is taken, across blocks and records, and the pass follows its LAST', () => {
  const r = decode([written(0, [0, 3, 10, 90]), written(1, []), written(1, [0, 1, 49, 1], true), encodeRecord(RECORD.Pass, { pass: 1 })]);
  assert.equal(r.error, null);
  assert.deepEqual(r.taken, [[0, [0, 3, 10, 90]], [1, []], [1, [0, 1, 49, 1]]]);
});

test('blocks out of order, ranges touching across records, a block past the stream\'s, WRITTEN after LAST: each refused by name', () => {
  const cases: [Buffer[], RegExp][] = [
    [[written(1, [0, 1]), written(0, [0, 1], true)], /^WRITTEN: block a \(0\) after block 1: blocks in order/],
    [[written(0, [0, 3]), written(0, [3, 1], true)], /^WRITTEN: range 3\+1 of block a .* touching the one before/],
    [[written(2, [0, 1], true)], /^WRITTEN: block 2, the stream has 2/],
    [[written(0, [0, 1], true), written(1, [0, 1], true)], /^WRITTEN: after the map's last record \(LAST\)/],
    [[written(1, [49, 2], true)], /^WRITTEN: range 49\+2 of block b \(50 pages\)/],
  ];
  for (const [frames, reason] of cases) assert.match(decode(frames).error ?? 'taken', reason);
});

test('too many ranges in one record: refused at its frame, by its head length, before the head is read', () => {
  const headLen = 4 + 8 * 4097;
  const frame = Buffer.alloc(FRAME_HEADER_BYTES);
  writeFrameHeader(new DataView(frame.buffer), 0, Rec.Written, 0, headLen, 0);
  assert.match(decode([frame]).error ?? 'taken', /^WRITTEN: head length 32780, expected at most 32772/);
});
