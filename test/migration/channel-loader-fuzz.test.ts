/**
 * Property-based fuzzing of a channel's loader with compressed packets
 * (channel-loaders.ts, frame-decoder.ts, the codecs), for each codec: a
 * valid channel stream (CHANNEL, PASS, COMPRESSED, PAGES, ZERO,
 * COMPRESSED, SYNC) is mutated at the byte level (the frame checks see
 * it) and inside its COMPRESSED records re-framed with valid checks
 * (flipped, truncated, extended data, and decompression bombs: frames
 * declaring 64 MiB or 1 GiB), then loaded. Each run: the channel fails
 * with a WireError naming the channel and the record, or is dropped as a
 * stranger (its CHANNEL broken: no thread started), or loads (its final
 * figures in, END's barrier); and a load whose RAM differs
 * from what was sent has a digest that differs too (VERIFY refuses it), so
 * no mutation forges a guest. `FERRY_CHANNEL_FUZZ_RUNS` runs per codec
 * (default 200). The channel's loader runs on this thread here, behind the
 * same messages as its own thread in a migration (channel-loader-thread.ts):
 * a thread per run would cost more than the run.
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type net from 'node:net';
import { deflateRawSync } from 'node:zlib';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import fc from 'fast-check';
import { ChannelLoaders } from '../../src/migration/channel-loaders.js';
import { inProcessChannelThread, type SpawnChannelThread } from '../../src/migration/channel-loader-thread.js';
import { Signal } from '../../src/migration/waiter.js';
import { RamLoader } from '../../src/migration/ram-loader.js';
import { makeCodec, type CodecMethod } from '../../src/wire/compression.js';
import { CHECK_BYTES, FRAME_HEADER_BYTES, decodeHeader, encodeHeader, type StreamHeader } from '../../src/wire/format.js';
import { FrameWriter } from '../../src/wire/frame-writer.js';
import { RECORD, Rec, encodeRecord } from '../../src/wire/records.js';
import { fileLimit } from '../waits.js';

fileLimit(import.meta.url, 60_000);

const RUNS = Number(process.env.FERRY_CHANNEL_FUZZ_RUNS ?? 200);
const UUID = '0f0f0f0f-1111-4222-8333-444444444444';
const PAGES = 160;
const MiB = 1024 * 1024;

/** The source's RAM: text-like pages (they compress), random ones (they do not: PAGES), zeros. */
const RAM = (() => {
  const ram = new Uint8Array(PAGES * 4096);
  const words = ['ferry ', 'migrates ', 'pages ', 'over ', 'channels, ', 'compressed '];
  let at = 0;
  for (let i = 0; at < 128 * 4096; i++) at += Buffer.from(words[(i * 7) % words.length]).copy(Buffer.from(ram.buffer), at);
  for (let i = 128 * 4096; i < 144 * 4096; i++) ram[i] = (i * 2654435761) >>> 24;
  return ram.subarray(0, PAGES * 4096);
})();

/** A valid channel stream for `method`, written by the source's own FrameWriter. */
function channelStream(method: CodecMethod): Buffer {
  const chunks: Buffer[] = [];
  const w = new FrameWriter((chunk, release) => { chunks.push(Buffer.from(chunk)); release(); });
  const codec = makeCodec(method);
  const packet = (first: number, count: number) => {
    const frame = codec.compress(w.stagePages(0, first, count, RAM));
    assert.ok(frame !== null, 'text compresses');
    w.commitCompressed(frame);
  };
  w.append(RECORD.Channel, { index: 0, channels: 1, uuid: UUID });
  w.append(RECORD.Pass, { pass: 1 });
  packet(0, 100);
  w.appendPages(0, 128, 16, RAM);
  w.append(RECORD.Zero, { first: 144, count: 16 });
  packet(100, 28);
  w.append(RECORD.Sync, { pass: 1 });
  w.flush();
  return Buffer.concat(chunks);
}

/** Offsets of the stream's records. */
function records(stream: Buffer): { at: number; size: number; type: number }[] {
  const out = [];
  for (let at = 0; at + FRAME_HEADER_BYTES <= stream.length;) {
    const size = FRAME_HEADER_BYTES + stream.readUInt32LE(at + 4) + stream.readUInt32LE(at + 8) * 4096 + CHECK_BYTES;
    out.push({ at, size, type: stream[at] });
    at += size;
  }
  return out;
}

const zstd = createRequire(import.meta.url)('zstd-napi') as { compress(b: Buffer): Buffer };
/** Frames that decompress to far more than a packet holds. */
const BOMBS: Record<CodecMethod, () => Uint8Array> = {
  zstd: () => zstd.compress(Buffer.alloc(64 * MiB)),
  zlib: () => deflateRawSync(Buffer.alloc(64 * MiB)),
  lz4: () => Uint8Array.from([0, 0, 0, 0x40, 0x1f, 0, 1, 0, 0xff, 0xff, 0xff, 0xff]), // a prefix declaring 1 GiB
};

type Mutation =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'u32'; at: number; value: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'data'; record: number; op: 'flip' | 'cut' | 'extend' | 'bomb'; at: number; bit: number };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.nat(7) }),
  fc.record({ kind: fc.constant('u32' as const), at: fc.nat(), value: fc.oneof(fc.constant(0xffffffff), fc.nat(), fc.integer({ min: 0, max: 300 })) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('data' as const), record: fc.nat(1), op: fc.constantFrom('flip', 'cut', 'extend', 'bomb'), at: fc.nat(), bit: fc.nat(7) }),
);

function mutate(stream: Buffer, m: Mutation, method: CodecMethod): Buffer {
  const b = Buffer.from(stream);
  switch (m.kind) {
    case 'flip': b[m.at % b.length] ^= 1 << m.bit; return b;
    case 'u32': b.writeUInt32LE(m.value >>> 0, m.at % (b.length - 3)); return b;
    case 'truncate': return b.subarray(0, m.at % b.length);
    case 'data': {
      const r = records(stream).filter((x) => x.type === Rec.Compressed)[m.record];
      if (r === undefined) return b;
      const head = stream.subarray(r.at + FRAME_HEADER_BYTES, r.at + r.size - CHECK_BYTES);
      const { first, count, data } = RECORD.Compressed.decode(head);
      let d = Buffer.from(data);
      if (m.op === 'flip') d[m.at % d.length] ^= 1 << m.bit;
      else if (m.op === 'cut') d = d.subarray(0, Math.max(1, m.at % d.length));
      else if (m.op === 'extend') d = Buffer.concat([d, Buffer.from([m.at & 0xff, m.bit])]);
      else d = Buffer.from(BOMBS[method]());
      return Buffer.concat([stream.subarray(0, r.at), encodeRecord(RECORD.Compressed, { first, count, data: d }), stream.subarray(r.at + r.size)]);
    }
  }
}

type Outcome = { kind: 'failed'; error: Error } | { kind: 'dropped' } | { kind: 'loaded'; ram: RamLoader };

/** Load `bytes` as channel 0 of `header`, then close it. */
async function load(header: StreamHeader, bytes: Buffer): Promise<Outcome> {
  const ram = new RamLoader(header);
  let failure: Error | null = null;
  // The loader's last word: every byte loaded up to the end, or a broken rule (then nothing more).
  const over = new Signal();
  let spawned = false;
  const spawn: SpawnChannelThread = (init) => {
    spawned = true;
    const t = inProcessChannelThread(init);
    t.onMessage((m) => { if (m.type === 'ended' || m.type === 'failed') over.resolve(); });
    return t;
  };
  const loaders = new ChannelLoaders(header, ram, { fail: (err) => { failure = err; }, allConnected: () => {}, onBytes: () => {} }, 16 * MiB, { spawn });
  const socket = Object.assign(new EventEmitter(), { destroy: () => {}, pause: () => {}, resume: () => {} }) as unknown as net.Socket;
  try {
    loaders.add(socket);
    socket.emit('data', bytes);
    socket.emit('close');
    // The proof (its CHANNEL, on this thread) is decided by now: a stranger gets no thread.
    if (!spawned) return { kind: 'dropped' };
    await over.promise;
    if (failure !== null) return { kind: 'failed', error: failure };
    try {
      await loaders.finish(1);
    } catch (err) {
      return { kind: 'failed', error: err as Error };
    }
    return { kind: 'loaded', ram };
  } finally {
    loaders.close(0);
  }
}

const CLEAR = /^channel 0: (CHANNEL|PASS|PAGES|ZERO|COMPRESSED|SYNC|frame|stream|the source closed it inside a record|closed after SYNC)\b/;

for (const method of ['zstd', 'lz4', 'zlib'] as const) {
  test(`channel loader fuzz, ${method} (fast-check, ${RUNS} runs): a WireError naming the channel and the record, or RAM as sent, or a digest that differs; bombs refused`, async () => {
    const header = decodeHeader(encodeHeader({ pageSize: 4096, uuid: UUID, vcpus: 0, blocks: [{ name: 'ram0', pages: PAGES }], channels: 1, compression: method, verify: true }));
    const valid = channelStream(method);
    const sent = await load(header, valid);
    assert.equal(sent.kind, 'loaded', 'the valid stream loads');
    const expected = (sent as { ram: RamLoader }).ram;
    assert.deepEqual(expected.blocks[0].bytes, RAM, 'RAM as sent');
    const digest = expected.digestValue();
    const counts = { failed: 0, dropped: 0, loaded: 0, forgedCaught: 0, bombs: 0 };
    await fc.assert(
      fc.asyncProperty(fc.array(mutation, { minLength: 1, maxLength: 2 }), async (mutations) => {
        const bytes = mutations.reduce((s, m) => mutate(s, m, method), valid);
        const o = await load(header, bytes);
        counts[o.kind]++;
        if (o.kind === 'failed') {
          assert.equal((o.error as { code?: string }).code, 'ERR_FERRY_WIRE', o.error.message);
          assert.match(o.error.message, CLEAR);
          if (/decompression bomb|more than/.test(o.error.message)) counts.bombs++;
          return;
        }
        if (o.kind === 'dropped') return;
        if (Buffer.compare(o.ram.blocks[0].bytes, RAM) !== 0) {
          assert.notDeepEqual(o.ram.digestValue(), digest, 'RAM that differs from what was sent has a digest that differs (VERIFY refuses it)');
          counts.forgedCaught++;
        }
      }),
      { numRuns: RUNS, seed: Number(process.env.FERRY_FUZZ_SEED ?? 20261128) },
    );
    assert.ok(counts.failed > RUNS * 0.5, `mutations are effective: ${JSON.stringify(counts)}`);
    assert.ok(counts.bombs > 0, `bombs were refused as such: ${JSON.stringify(counts)}`);
    console.log(`# channel loader fuzz ${method}: ${JSON.stringify(counts)}`);
  });
}
