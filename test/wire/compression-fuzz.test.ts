/**
 * Property-based fuzzing of the packet decompressors with fast-check: into
 * each available codec's `decompress` go arbitrary bytes, arbitrary bytes
 * behind a valid header (a zstd frame header or an lz4 length prefix that
 * declares the packet's size, so the fuzz reaches the blocks), valid
 * frames of page-like data, and decompression bombs (a small input that
 * expands far past the packet: 64 MiB of zeros in zlib, zstd RLE blocks,
 * an lz4 match of 64 MiB, headers declaring up to 1 TiB), each mutated
 * (bit flips, truncation, spliced garbage, 32-bit fields overwritten with
 * extreme values, repeated ranges) or not, into a packet of any size.
 * Every run either fills the packet or throws a CompressionError; a frame
 * left intact decodes to its pages, and is refused in a packet of another
 * size; a bomb left intact is refused.
 * `npm test` runs FERRY_FUZZ_RUNS (default 500); set it higher
 * (`FERRY_FUZZ_RUNS=10000 node --test dist/test/wire/compression-fuzz.test.js`)
 * for a longer campaign.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { PAGE_SIZE } from '../../src/memory/page.js';
import { type CodecMethod, MAX_PACKET_BYTES, type PacketCodec, compressionUnavailable, makeCodec } from '../../src/wire/compression.js';
import { lz4Frame, rleBlocks, zlibZeros, zstdFrame } from './compression-frames.js';
import { type SampleKind, samplePages } from './page-samples.js';
import { fileLimit } from '../waits.js';

const RUNS = Number(process.env.FERRY_FUZZ_RUNS ?? 500);
fileLimit(import.meta.url, 60_000 * Math.max(1, RUNS / 2000));

const METHODS = (['zlib', 'zstd', 'lz4'] as const).filter((m) => compressionUnavailable(m) === null);
const codecs = new Map<CodecMethod, PacketCodec>(METHODS.map((m) => [m, makeCodec(m)]));
const BOMB_BYTES = 64 << 20;

/** Inputs are built from a recipe, so fast-check shrinks and prints recipes, not megabytes. */
type Base =
  | { readonly kind: 'bytes'; readonly bytes: Uint8Array }
  | { readonly kind: 'headed'; readonly bytes: Uint8Array }
  | { readonly kind: 'frame'; readonly data: SampleKind; readonly pages: number }
  | { readonly kind: 'bomb'; readonly declared: 'packet' | 'u32max' | 'tib' };

type Mutation =
  | { readonly op: 'flip'; readonly at: number; readonly bit: number }
  | { readonly op: 'truncate'; readonly at: number }
  | { readonly op: 'splice'; readonly at: number; readonly bytes: Uint8Array }
  | { readonly op: 'u32'; readonly at: number; readonly value: number }
  | { readonly op: 'repeat'; readonly at: number; readonly length: number };

const base: fc.Arbitrary<Base> = fc.oneof(
  fc.record({ kind: fc.constant('bytes' as const), bytes: fc.uint8Array({ maxLength: 2048 }) }),
  fc.record({ kind: fc.constant('headed' as const), bytes: fc.uint8Array({ maxLength: 2048 }) }),
  fc.record({ kind: fc.constant('frame' as const), data: fc.constantFrom<SampleKind>('zero', 'random', 'text', 'sweep', 'mixed'), pages: fc.constantFrom(1, 4, 32, 128) }),
  fc.record({ kind: fc.constant('bomb' as const), declared: fc.constantFrom('packet' as const, 'u32max' as const, 'tib' as const) }),
);

/**
 * Positions are fractions of the input (0..1), so they apply to inputs of
 * any size: half of them biased to the ends (fast-check's doubles: the
 * headers), half uniform (the blocks). Flips weigh most: half of them leave
 * a frame that decodes (neither deflate nor an lz4 block has a checksum),
 * which takes the fuzz deep into the decoders.
 */
const at = fc.oneof(fc.double({ min: 0, max: 1, noNaN: true }), fc.noBias(fc.integer({ min: 0, max: 0xffff })).map((n) => n / 0x10000));
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  { arbitrary: fc.record({ op: fc.constant('flip' as const), at, bit: fc.integer({ min: 0, max: 7 }) }), weight: 4 },
  fc.record({ op: fc.constant('truncate' as const), at }),
  fc.record({ op: fc.constant('splice' as const), at, bytes: fc.uint8Array({ minLength: 1, maxLength: 64 }) }),
  fc.record({ op: fc.constant('u32' as const), at, value: fc.constantFrom(0, 1, 0xff, 0xffff, 0x7fffffff, 0xffffffff, PAGE_SIZE, MAX_PACKET_BYTES, MAX_PACKET_BYTES + 1) }),
  fc.record({ op: fc.constant('repeat' as const), at, length: fc.integer({ min: 1, max: 256 }) }),
);

/** The packet's declared raw length: whole pages mostly, any length sometimes. */
const packetBytes = fc.oneof(fc.constantFrom(PAGE_SIZE, 4 * PAGE_SIZE, 32 * PAGE_SIZE, MAX_PACKET_BYTES), fc.integer({ min: 1, max: MAX_PACKET_BYTES }));

const samples = new Map<string, Uint8Array>();
function pagesOf(data: SampleKind, pages: number): Uint8Array {
  const key = `${data} ${pages}`;
  if (!samples.has(key)) samples.set(key, samplePages(data, pages, pages));
  return samples.get(key)!;
}

const frames = new Map<string, Uint8Array | null>();
function validFrame(method: CodecMethod, data: SampleKind, pages: number): Uint8Array | null {
  const key = `${method} ${data} ${pages}`;
  if (!frames.has(key)) {
    const frame = codecs.get(method)!.compress(pagesOf(data, pages), 1);
    frames.set(key, frame === null ? null : Uint8Array.from(frame));
  }
  return frames.get(key)!;
}

const zlibBomb = zlibZeros(BOMB_BYTES);
function bomb(method: CodecMethod, declared: 'packet' | 'u32max' | 'tib', packet: number): Uint8Array {
  const size = declared === 'packet' ? packet : declared === 'u32max' ? 0xffffffff : 2 ** 40;
  if (method === 'zlib') return zlibBomb;
  if (method === 'lz4') return lz4Frame(size >>> 0 === size ? size : 0xffffffff, BOMB_BYTES);
  return zstdFrame(size, rleBlocks(Math.max(BOMB_BYTES / 16, packet + 128 * 1024)));
}

/** The header that makes `bytes` reach the method's block decoder: a zstd frame header or an lz4 prefix declaring the packet. */
function headed(method: CodecMethod, bytes: Uint8Array, packet: number): Uint8Array {
  if (method === 'zlib') return bytes;
  const head = method === 'lz4' ? lz4Frame(packet, 10).subarray(0, 4) : zstdFrame(packet, []).subarray(0, 13);
  return Uint8Array.from([...head, ...bytes]);
}

function mutate(input: Uint8Array, m: Mutation): Uint8Array {
  const at = Math.min(input.length, Math.floor(m.at * input.length));
  switch (m.op) {
    case 'flip': {
      const out = Uint8Array.from(input);
      if (at < out.length) out[at] ^= 1 << m.bit;
      return out;
    }
    case 'truncate': return input.subarray(0, at);
    case 'splice': return Uint8Array.from([...input.subarray(0, at), ...m.bytes, ...input.subarray(at)]);
    case 'u32': {
      const out = Uint8Array.from(input);
      if (at + 4 <= out.length) new DataView(out.buffer).setUint32(at, m.value, true);
      return out;
    }
    case 'repeat': return Uint8Array.from([...input.subarray(0, at + m.length), ...input.subarray(at)]);
  }
}

function inputOf(method: CodecMethod, b: Base, packet: number): { input: Uint8Array; pages?: Uint8Array } {
  switch (b.kind) {
    case 'bytes': return { input: b.bytes };
    case 'headed': return { input: headed(method, b.bytes, packet) };
    case 'bomb': return { input: bomb(method, b.declared, packet) };
    case 'frame': {
      const frame = validFrame(method, b.data, b.pages);
      // Random pages that did not shrink at all are fed as they are: garbage to the decoder.
      return frame === null ? { input: pagesOf(b.data, b.pages) } : { input: frame, pages: pagesOf(b.data, b.pages) };
    }
  }
}

test(`fuzz (fast-check, ${RUNS} runs): every decompress fills the packet or throws a CompressionError; intact frames decode, intact bombs are refused`, { skip: METHODS.length === 0 }, () => {
  const counts = { runs: 0, rejected: 0, decoded: 0, bombsRefused: 0, framesDecoded: 0 };
  const perMethod = new Map(METHODS.map((m) => [m, { runs: 0, rejected: 0, bombs: 0 }]));
  fc.assert(
    fc.property(fc.constantFrom(...METHODS), base, fc.array(mutation, { maxLength: 3 }), packetBytes, fc.boolean(), (method, b, mutations, packet, ownSize) => {
      const { input: original, pages } = inputOf(method, b, packet);
      const input = mutations.reduce(mutate, original);
      // A frame (mutated or not) goes into a packet of its own size, or of another: for an intact frame, a wrong size must be refused.
      const dst = new Uint8Array(pages !== undefined && ownSize ? pages.length : packet).fill(0xa5);
      const intact = pages !== undefined && mutations.length === 0;
      const intactFrame = intact && dst.length === pages.length;
      counts.runs++;
      const mine = perMethod.get(method)!;
      mine.runs++;
      try {
        codecs.get(method)!.decompress(input, dst);
      } catch (err) {
        assert.equal((err as { code?: string }).code, 'ERR_FERRY_COMPRESSION', `only CompressionErrors escape, got: ${(err as Error).stack}`);
        assert.ok(!intactFrame, `an intact ${method} frame is refused: ${(err as Error).message}`);
        counts.rejected++;
        mine.rejected++;
        if (b.kind === 'bomb') {
          counts.bombsRefused++;
          mine.bombs++;
        }
        return;
      }
      assert.ok(!(b.kind === 'bomb' && mutations.length === 0), `an intact ${method} bomb decoded into ${dst.length} bytes`);
      assert.ok(!intact || intactFrame, `an intact ${method} frame of ${pages?.length} bytes decoded into a packet of ${dst.length}`);
      counts.decoded++;
      if (intactFrame) {
        assert.ok(Buffer.from(dst).equals(Buffer.from(pages)), `an intact ${method} frame decodes to its pages`);
        counts.framesDecoded++;
      }
    }),
    { numRuns: RUNS, seed: Number(process.env.FERRY_FUZZ_SEED ?? 20261125) },
  );
  assert.ok(counts.rejected > RUNS * 0.5, `mutations are effective: ${counts.rejected} of ${RUNS} rejected`);
  assert.ok(counts.bombsRefused > 0 && counts.framesDecoded > 0, `both bombs and frames ran: ${JSON.stringify(counts)}`);
  const each = [...perMethod].map(([m, c]) => `${m} ${c.runs} runs, ${c.rejected} rejected, ${c.bombs} bombs`).join('; ');
  console.log(`# compression fuzz: ${RUNS} runs, ${counts.rejected} rejected with a CompressionError (${counts.bombsRefused} of them bombs), ${counts.decoded} decoded (${counts.framesDecoded} intact frames, equal to their pages), 0 other exceptions (${each})`);
});
