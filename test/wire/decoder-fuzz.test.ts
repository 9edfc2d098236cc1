/**
 * Property-based fuzzing of the stream decoder with fast-check: valid
 * streams mutated every way the wire format can be broken (truncation,
 * bit flips, spliced garbage, oversized lengths, records swapped, moved
 * or repeated). Each run: only WireErrors escape, no write lands outside
 * RAM, and GO is delivered only by a stream whose every record checked.
 * `npm test` runs FERRY_FUZZ_RUNS (default 2,000); set it higher
 * (`FERRY_FUZZ_RUNS=20000 node --test dist/test/wire/decoder-fuzz.test.js`)
 * for a longer campaign.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { PAGE_SIZE } from '../../src/memory/page.js';
import { WireError } from '../../src/errors.js';
import { FRAME_HEADER_BYTES, HEADER_FIXED_BYTES, Rec, decodeEndHead } from '../../src/wire/format.js';
import { FrameDecoder } from '../../src/wire/frame-decoder.js';
import { jsPageSum } from '../../src/wire/page-checksum.js';
import { buildStream } from './stream-fixture.js';

const RUNS = Number(process.env.FERRY_FUZZ_RUNS ?? 2000);
const PAGES = 16;
const { bytes: VALID } = buildStream(PAGES);

/** Offsets of every frame in the valid stream (after the header). */
function frameOffsets(stream: Buffer): number[] {
  const offsets: number[] = [];
  let at = HEADER_FIXED_BYTES + stream.readUInt32LE(32) + 4;
  while (at < stream.length) {
    offsets.push(at);
    at += FRAME_HEADER_BYTES + stream.readUInt32LE(at + 4) + stream.readUInt32LE(at + 8) * PAGE_SIZE + 4;
  }
  return offsets;
}
const FRAMES = frameOffsets(VALID);
const frameAt = (i: number) => VALID.subarray(FRAMES[i], FRAMES[i + 1] ?? VALID.length);
const HEADER = VALID.subarray(0, FRAMES[0]);

type Mutation =
  | { kind: 'truncate'; at: number }
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'splice'; at: number; junk: Uint8Array }
  | { kind: 'u32'; at: number; value: number }
  | { kind: 'swap'; a: number; b: number }
  | { kind: 'repeat'; frame: number; times: number }
  | { kind: 'drop'; frame: number };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat(VALID.length) }),
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(VALID.length - 1), bit: fc.nat(7) }),
  fc.record({ kind: fc.constant('splice' as const), at: fc.nat(VALID.length), junk: fc.uint8Array({ minLength: 1, maxLength: 64 }) }),
  fc.record({ kind: fc.constant('u32' as const), at: fc.nat(VALID.length - 4), value: fc.oneof(fc.constant(0xffffffff), fc.constant(0x7fffffff), fc.nat(), fc.integer({ min: 0, max: 300 })) }),
  fc.record({ kind: fc.constant('swap' as const), a: fc.nat(FRAMES.length - 1), b: fc.nat(FRAMES.length - 1) }),
  fc.record({ kind: fc.constant('repeat' as const), frame: fc.nat(FRAMES.length - 1), times: fc.integer({ min: 1, max: 3 }) }),
  fc.record({ kind: fc.constant('drop' as const), frame: fc.nat(FRAMES.length - 1) }),
);

function apply(m: Mutation): Buffer {
  switch (m.kind) {
    case 'truncate': return Buffer.from(VALID.subarray(0, m.at));
    case 'flip': { const b = Buffer.from(VALID); b[m.at] ^= 1 << m.bit; return b; }
    case 'splice': return Buffer.concat([VALID.subarray(0, m.at), m.junk, VALID.subarray(m.at)]);
    case 'u32': { const b = Buffer.from(VALID); b.writeUInt32LE(m.value >>> 0, m.at); return b; }
    case 'swap': {
      const order = FRAMES.map((_, i) => i);
      [order[m.a], order[m.b]] = [order[m.b], order[m.a]];
      return Buffer.concat([HEADER, ...order.map(frameAt)]);
    }
    case 'repeat': return Buffer.concat([HEADER, ...FRAMES.flatMap((_, i) => Array.from({ length: i === m.frame ? m.times + 1 : 1 }, () => frameAt(i)))]);
    case 'drop': return Buffer.concat([HEADER, ...FRAMES.filter((_, i) => i !== m.frame).map((_, i) => frameAt(i >= m.frame ? i + 1 : i))]);
  }
}

test(`fuzz (fast-check, ${RUNS} runs): mutated streams give a wire error or decode cleanly, never write outside RAM, never GO unchecked`, () => {
  let rejected = 0;
  let completed = 0;
  fc.assert(
    fc.property(fc.array(mutation, { minLength: 1, maxLength: 3 }), fc.array(fc.integer({ min: 1, max: 20_000 }), { minLength: 1, maxLength: 8 }), (mutations, chunkSizes) => {
      let stream = VALID;
      for (const m of mutations) stream = m.kind === 'truncate' || m.kind === 'flip' || m.kind === 'splice' || m.kind === 'u32' ? applyTo(stream, m) : apply(m);
      const ram = new Uint8Array(PAGES * PAGE_SIZE);
      let go = false;
      const counted = { normal: 0, zero: 0 };
      const decoder = new FrameDecoder({
        pageData: (_b, offset, data) => {
          if (offset < 0 || offset + data.length > ram.length) throw new Error(`write ${offset}+${data.length} outside RAM`);
          ram.set(data, offset);
        },
        pageSum: (_b, first, count) => jsPageSum(new Int32Array(ram.buffer, first * PAGE_SIZE, count * 1024)),
        record: (type, _block, head, pages) => {
          // What the loader adds to the decoder's checks: END's totals against what arrived.
          if (type === Rec.Pages) counted.normal += pages;
          if (type === Rec.Zero) counted.zero += head.readUInt32LE(4);
          if (type === Rec.End) {
            const [t] = decodeEndHead(head, 1);
            if (t.normal !== counted.normal || t.zero !== counted.zero) throw new WireError('END: totals differ');
          }
          if (type === Rec.Go) go = true;
        },
      }, { stream: true });
      try {
        for (let at = 0, i = 0; at < stream.length; i++) {
          const n = chunkSizes[i % chunkSizes.length];
          decoder.feed(stream.subarray(at, at + n));
          at += n;
        }
      } catch (err) {
        assert.equal((err as { code?: string }).code, 'ERR_FERRY_WIRE', `only wire errors escape, got: ${(err as Error).stack}`);
        rejected++;
        return;
      }
      if (go) {
        completed++;
        assert.ok(decoder.atBoundary && !decoder.closed, 'GO only from a stream that decoded to the end');
      }
    }),
    { numRuns: RUNS, seed: Number(process.env.FERRY_FUZZ_SEED ?? 20261125) },
  );
  // Some mutations leave a valid stream (swapping a frame with itself, or two
  // records whose order does not matter): those may reach GO, checked.
  assert.ok(rejected > RUNS * 0.6, `mutations are effective: ${rejected} of ${RUNS} rejected, ${completed} reached GO`);
  console.log(`# decoder fuzz: ${RUNS} runs, ${rejected} rejected with a wire error, ${completed} reached GO after every check`);
});

/** Byte-level mutations apply to the current stream (so several can stack). */
function applyTo(stream: Buffer, m: Mutation): Buffer {
  const at = (n: number) => Math.min(n, Math.max(0, stream.length - 1));
  switch (m.kind) {
    case 'truncate': return Buffer.from(stream.subarray(0, Math.min(m.at, stream.length)));
    case 'flip': { const b = Buffer.from(stream); if (b.length > 0) b[at(m.at)] ^= 1 << m.bit; return b; }
    case 'splice': return Buffer.concat([stream.subarray(0, Math.min(m.at, stream.length)), m.junk, stream.subarray(Math.min(m.at, stream.length))]);
    case 'u32': { const b = Buffer.from(stream); if (b.length >= 4) b.writeUInt32LE(m.value >>> 0, Math.min(m.at, b.length - 4)); return b; }
    default: return stream;
  }
}
