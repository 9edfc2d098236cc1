/**
 * What an XBZRLE page costs as a record, not as a codec (bench/xbzrle.ts
 * measures the codec alone): the sender's side writing one XBZRLE record
 * per page (FrameWriter.appendXbzrle: frame header, the delta, CRC), and a
 * destination's whole path for each (FrameDecoder framing and CRC, the
 * record's decode, RamLoader.xbzrlePage: the delta applied, the marks and
 * counts), into resident memory, for the 512 MiB sweeping guest's pass:
 * 131,072 pages each changed in its first and last word (a 7-byte delta,
 * 31 bytes on the wire). In pages per second, median (min-max) of 5 runs,
 * beside the guest's own dirty rate at 3 sweeps/s (393,216 pages/s): a
 * pipeline slower than that cannot get ahead of it with deltas alone.
 *
 *   npx tsc -p . && node dist/bench/xbzrle-records.js
 */
import { EventEmitter } from 'node:events';
import type net from 'node:net';
import { fmt, repeat, timeMs } from '../src/bench/stats.js';
import { PAGE_SIZE } from '../src/memory/page.js';
import { ChannelLoaders } from '../src/migration/channel-loaders.js';
import { RamLoader } from '../src/migration/ram-loader.js';
import { decodeHeader, encodeHeader } from '../src/wire/format.js';
import { FrameWriter } from '../src/wire/frame-writer.js';
import { RECORD } from '../src/wire/records.js';
import { xbzrleEncode } from '../src/wire/xbzrle.js';

const PAGES = 131_072;
const RUNS = 5;
const UUID = '0f0f0f0f-1111-4222-8333-444444444444';
const SWEEPER_PAGES_PER_SEC = 3 * PAGES;
const header = decodeHeader(encodeHeader({ pageSize: PAGE_SIZE, uuid: UUID, vcpus: 0, blocks: [{ name: 'ram0', pages: PAGES }], channels: 1, compression: null, verify: false }));

/** The delta of a page whose first and last bytes changed. */
function sweepDelta(): Uint8Array {
  const old = new Uint8Array(PAGE_SIZE);
  const now = new Uint8Array(PAGE_SIZE);
  now[0] = 1;
  now[PAGE_SIZE - 1] = 1;
  const out = new Uint8Array(PAGE_SIZE);
  return out.slice(0, xbzrleEncode(old, now, out));
}

/** A channel's stream: CHANNEL, pass 1 with every page as ZERO (so a delta may follow), SYNC, pass 2 one delta per page; its records' time to write, ms. */
function stream(delta: Uint8Array): { chunks: Buffer[]; writeMs: number } {
  const chunks: Buffer[] = [];
  const w = new FrameWriter((chunk, release) => { chunks.push(Buffer.from(chunk)); release(); });
  w.append(RECORD.Channel, { index: 0, channels: 1, uuid: UUID });
  w.append(RECORD.Pass, { pass: 1 });
  w.append(RECORD.Zero, { first: 0, count: PAGES });
  w.append(RECORD.Sync, { pass: 1 });
  w.append(RECORD.Pass, { pass: 2 });
  w.flush(); // the first chunk: everything before the deltas
  const writeMs = timeMs(() => {
    for (let p = 0; p < PAGES; p++) {
      if (!w.hasRoom(64)) w.flush();
      w.appendXbzrle(0, p, delta, delta.length);
    }
  });
  w.append(RECORD.Sync, { pass: 2 });
  w.flush();
  return { chunks, writeMs };
}

/** The destination's time for the stream's deltas, ms, into memory touched beforehand. */
function applyMs(chunks: readonly Buffer[]): number {
  const ram = new RamLoader(header);
  ram.blocks[0].bytes.fill(0); // resident, as the destination's pages are by the second pass
  const loaders = new ChannelLoaders(header, ram, { fail: (err) => { throw err; }, allConnected: () => {}, onBytes: () => {} }, 16 * 1024 * 1024);
  const socket = Object.assign(new EventEmitter(), { destroy: () => {} }) as unknown as net.Socket;
  loaders.add(socket);
  socket.emit('data', chunks[0]); // CHANNEL, pass 1 and PASS 2
  const ms = timeMs(() => { for (const c of chunks.slice(1)) socket.emit('data', c); });
  if (ram.xbzrlePages !== PAGES) throw new Error(`applied ${ram.xbzrlePages} deltas, expected ${PAGES}`);
  return ms;
}

const delta = sweepDelta();
const write = repeat(RUNS, () => (PAGES * 1000) / stream(delta).writeMs);
const { chunks } = stream(delta);
if (chunks[0].length > 1024) throw new Error('the first chunk should hold only what comes before the deltas');
const apply = repeat(RUNS, () => (PAGES * 1000) / applyMs(chunks));
console.log(`delta ${delta.length} bytes, record ${delta.length + 24} bytes; ${PAGES} pages`);
console.log(`sender: records written      ${fmt(write, 0)} pages/s`);
console.log(`destination: records applied  ${fmt(apply, 0)} pages/s`);
console.log(`the sweeper at 3 sweeps/s     ${SWEEPER_PAGES_PER_SEC} pages/s`);
