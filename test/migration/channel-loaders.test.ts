/**
 * The destination's channels, each loaded on a thread of its own
 * (channel-loaders.ts, channel-loader.ts), over loopback TCP with real
 * worker threads: four channels' stripes land in RAM, each on its own
 * thread, END's totals and VERIFY's digest add up over them, and every
 * thread ends at close; a corrupt packet on channel 2 fails it naming
 * channel 2; a page outside a channel's stripe is refused; and a thread
 * that does not keep up has its socket paused, so what it holds stays
 * bounded.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, test } from 'node:test';
import { threadId } from 'node:worker_threads';
import type { ChannelThread, SpawnChannelThread } from '../../src/migration/channel-loader-thread.js';
import { ChannelLoaders } from '../../src/migration/channel-loaders.js';
import type { FromChannelLoader } from '../../src/migration/messages.js';
import { RamLoader } from '../../src/migration/ram-loader.js';
import { makeCodec } from '../../src/wire/compression.js';
import { CHECK_BYTES, FRAME_HEADER_BYTES, decodeHeader, encodeHeader } from '../../src/wire/format.js';
import { FrameWriter } from '../../src/wire/frame-writer.js';
import { RECORD, encodeRecord } from '../../src/wire/records.js';
import { bounded, fileLimit, until } from '../waits.js';

fileLimit(import.meta.url, 60_000);

const UUID = '0f0f0f0f-1111-4222-8333-444444444444';
const CHANNELS = 4;
const RANGE = 512;
const PAGES = CHANNELS * RANGE;
const MiB = 1024 * 1024;
const header = decodeHeader(encodeHeader({ pageSize: 4096, uuid: UUID, vcpus: 0, blocks: [{ name: 'ram0', pages: PAGES }], channels: CHANNELS, compression: 'zlib', verify: true }));

/** The source's RAM: per 512-page range, 128 random pages, 100 text-like ones (they compress), the rest zero. */
const RAM = (() => {
  const ram = new Uint8Array(PAGES * 4096);
  for (let r = 0; r < CHANNELS; r++) {
    const base = r * RANGE * 4096;
    for (let i = 0; i < 128 * 4096; i++) ram[base + i] = ((i + r) * 2654435761) >>> 24;
    const text = Buffer.from(`channel ${r} carries its stripe of pages; `.repeat(10_000));
    ram.set(text.subarray(0, 100 * 4096), base + 128 * 4096);
  }
  return ram;
})();

/** Channel k's stream: CHANNEL, PASS 1, its range as PAGES, COMPRESSED and ZERO, SYNC 1; `corrupt`: its COMPRESSED frame truncated (its check valid). */
function channelStream(k: number, corrupt = false): Buffer {
  const chunks: Buffer[] = [];
  const w = new FrameWriter((chunk, release) => { chunks.push(Buffer.from(chunk)); release(); });
  const first = k * RANGE;
  w.append(RECORD.Channel, { index: k, channels: CHANNELS, uuid: UUID });
  w.append(RECORD.Pass, { pass: 1 });
  w.appendPages(0, first, 128, RAM);
  const frame = makeCodec('zlib').compress(w.stagePages(0, first + 128, 100, RAM));
  assert.ok(frame !== null, 'text compresses');
  w.commitCompressed(corrupt ? frame.subarray(0, frame.length - 8) : frame);
  w.append(RECORD.Zero, { first: first + 228, count: RANGE - 228 });
  w.append(RECORD.Sync, { pass: 1 });
  w.flush();
  return Buffer.concat(chunks);
}

/** A loopback server whose connections go to `loaders`, and a client per stream that writes it whole and ends. */
async function connect(loaders: ChannelLoaders, streams: Buffer[]): Promise<{ clients: net.Socket[]; server: net.Server; accepted: net.Socket[] }> {
  const accepted: net.Socket[] = [];
  const server = net.createServer((s) => {
    accepted.push(s);
    loaders.add(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  const clients = streams.map((bytes) => {
    const c = net.connect(port, '127.0.0.1', () => c.end(bytes));
    c.on('error', () => {});
    return c;
  });
  return { clients, server, accepted };
}

const open: { close(): void }[] = [];
after(() => { for (const o of open) o.close(); });

function hosted(): { failures: Error[]; host: ConstructorParameters<typeof ChannelLoaders>[2] } {
  const failures: Error[] = [];
  return { failures, host: { fail: (err) => { failures.push(err); }, allConnected: () => {}, onBytes: () => {} } };
}

test('four channels: each channel\'s pages load on a thread of its own; RAM as sent, END\'s totals and the digest add up; every thread ends at close', async () => {
  const ram = new RamLoader(header);
  const { failures, host } = hosted();
  const loaders = new ChannelLoaders(header, ram, host, 16 * MiB);
  const { clients, server } = await connect(loaders, Array.from({ length: CHANNELS }, (_, k) => channelStream(k)));
  open.push(server, ...clients.map((c) => ({ close: () => c.destroy() })));
  try {
    await bounded('every channel\'s SYNC 1 and final figures', loaders.finish(1), 30_000);
    assert.deepEqual(failures, []);
    assert.ok(Buffer.compare(ram.blocks[0].bytes, RAM) === 0, 'RAM as sent');
    const threads = loaders.threads();
    assert.deepEqual(threads.map((t) => t.channel), [0, 1, 2, 3]);
    assert.equal(new Set(threads.map((t) => t.threadId)).size, CHANNELS, `a thread per channel: ${JSON.stringify(threads)}`);
    assert.ok(threads.every((t) => t.threadId !== threadId), 'none is the loader thread');
    assert.deepEqual(threads.map((t) => t.pages), [RANGE, RANGE, RANGE, RANGE], 'each thread loaded its stripe');
    ram.checkTotals([{ normal: CHANNELS * 228, zero: CHANNELS * (RANGE - 228) }]);
    assert.deepEqual(ram.totals(), { normalPages: CHANNELS * 228, zeroPages: CHANNELS * (RANGE - 228), xbzrlePages: 0, zeroPagesWritten: 0 });
    // The digest of one loader that loads the same RAM on this thread.
    const one = new RamLoader({ ...header, channels: 0 });
    one.blocks[0].bytes.set(RAM);
    one.loadedPages(0, 0, PAGES);
    assert.deepEqual(ram.digestValue(), one.digestValue(), 'the channels\' digests add up to the whole RAM\'s');
  } finally {
    loaders.close(0);
  }
  assert.equal(loaders.liveThreads, CHANNELS, 'the threads were running');
  await bounded('every channel thread to end', loaders.exited(), 10_000);
  assert.equal(loaders.liveThreads, 0);
});

test('a corrupt COMPRESSED packet on channel 2 fails the migration naming channel 2 and the record; every thread ends', async () => {
  const ram = new RamLoader(header);
  const { failures, host } = hosted();
  const loaders = new ChannelLoaders(header, ram, host, 16 * MiB);
  const { clients, server } = await connect(loaders, Array.from({ length: CHANNELS }, (_, k) => channelStream(k, k === 2)));
  open.push(server, ...clients.map((c) => ({ close: () => c.destroy() })));
  try {
    await until('the failure', () => failures.length > 0, 30_000);
    assert.equal(failures.length, 1);
    assert.match(failures[0].message, /^channel 2: COMPRESSED: pages 1152\.\.1251 of block ram0 \(\d+ bytes\): zlib: /);
    assert.equal((failures[0] as { code?: string }).code, 'ERR_FERRY_WIRE');
    await assert.rejects(loaders.reached(1), /channel 2: COMPRESSED/);
  } finally {
    loaders.close(0);
  }
  await bounded('every channel thread to end', loaders.exited(), 10_000);
  assert.equal(loaders.liveThreads, 0);
});

test('a page outside the channel\'s stripe is refused before it is written, naming the channel and the stripe', async () => {
  const ram = new RamLoader(header);
  const { failures, host } = hosted();
  const loaders = new ChannelLoaders(header, ram, host, 16 * MiB);
  const stray = Buffer.concat([
    encodeRecord(RECORD.Channel, { index: 1, channels: CHANNELS, uuid: UUID }), encodeRecord(RECORD.Pass, { pass: 1 }),
    channelStream(0).subarray(recordEnd(channelStream(0), 2)), // channel 0's pages, on channel 1
  ]);
  const { clients, server } = await connect(loaders, [stray]);
  open.push(server, ...clients.map((c) => ({ close: () => c.destroy() })));
  try {
    await until('the failure', () => failures.length > 0, 30_000);
    assert.match(failures[0].message, /^channel 1: PAGES: pages 0\.\.\d+ of block ram0 are not all in channel 1's stripe/);
    assert.ok(ram.blocks[0].bytes.subarray(0, 128 * 4096).every((b) => b === 0), 'nothing of them written');
  } finally {
    loaders.close(0);
  }
  await bounded('every channel thread to end', loaders.exited(), 10_000);
});

test('a page after a channel\'s last SYNC does not go unverified: END\'s barrier fails the migration naming the channel and the record', async () => {
  const ram = new RamLoader(header);
  const { failures, host } = hosted();
  const loaders = new ChannelLoaders(header, ram, host, 16 * MiB);
  // Channel 3 sends one more page of its stripe after its SYNC 1: written into RAM, in no pass END checks.
  const late = Buffer.concat([channelStream(3), encodeRecord(RECORD.Zero, { first: 3 * RANGE, count: 1 })]);
  const streams = [channelStream(0), channelStream(1), channelStream(2), late];
  const { clients, server, accepted } = await connect(loaders, streams);
  open.push(server, ...clients.map((c) => ({ close: () => c.destroy() })));
  try {
    // Every byte of every channel loaded (so the late page was written), then END's barrier.
    await until('every channel loaded to its end', () => loaders.bytes === streams.reduce((n, b) => n + b.length, 0), 30_000);
    assert.equal(accepted.length, CHANNELS);
    await assert.rejects(bounded('END\'s barrier', loaders.finish(1), 30_000), /^WireError: channel 3: ZERO after its SYNC 1, the last pass/);
    assert.equal(failures.length, 1);
    assert.match(failures[0].message, /^channel 3: ZERO after its SYNC 1/);
  } finally {
    loaders.close(0);
  }
  await bounded('every channel thread to end', loaders.exited(), 10_000);
});

/** Where the `n`th record of `stream` ends. */
function recordEnd(stream: Buffer, n: number): number {
  let at = 0;
  for (let i = 0; i < n; i++) at += FRAME_HEADER_BYTES + stream.readUInt32LE(at + 4) + stream.readUInt32LE(at + 8) * 4096 + CHECK_BYTES;
  return at;
}

test('flow control: a channel thread that does not keep up has its socket paused; what it holds stays within the bound, and all follows once it catches up', async () => {
  const BOUND = MiB;
  let held = 0;
  let total = 0;
  let ack: ((m: FromChannelLoader) => void) | null = null;
  let keepUp = false;
  const slow: SpawnChannelThread = () => ({
    data: (chunk) => {
      total += chunk.length;
      if (keepUp) ack!({ type: 'loaded', bytes: chunk.length });
      else held += chunk.length;
    },
    end: () => {},
    finish: () => {},
    onMessage: (fn) => { ack = fn; },
    onExit: () => {},
    terminate: () => {},
  } satisfies ChannelThread);
  const loaders = new ChannelLoaders(header, new RamLoader(header), hosted().host, 16 * MiB, { spawn: slow, maxHeldBytes: BOUND });
  // A proved channel (its CHANNEL), then bytes the slow thread never decodes.
  const bytes = Buffer.concat([encodeRecord(RECORD.Channel, { index: 0, channels: CHANNELS, uuid: UUID }), Buffer.alloc(32 * MiB, 7)]);
  const { clients, server, accepted } = await connect(loaders, [bytes]);
  open.push(server, ...clients.map((c) => ({ close: () => c.destroy() })));
  try {
    await until('the thread to hold the bound', () => loaders.heldBytes >= BOUND, 30_000);
    // Paused: bytes wait in the socket (and TCP holds the client back), none goes to the thread.
    await until('bytes to wait in the paused socket', () => accepted[0].isPaused() && accepted[0].readableLength > 0, 30_000);
    assert.ok(loaders.heldBytes < BOUND + 256 * 1024, `held ${loaders.heldBytes} bytes, bound ${BOUND}`);
    assert.equal(loaders.heldBytes, held);
    assert.ok(total < bytes.length / 2, `${total} of ${bytes.length} bytes forwarded while paused`);
    keepUp = true;
    const released = held;
    held = 0;
    ack!({ type: 'loaded', bytes: released });
    await until('every byte forwarded and loaded', () => total === bytes.length && loaders.heldBytes === 0, 30_000);
    assert.equal(loaders.bytes, bytes.length);
  } finally {
    loaders.close(0);
  }
});
