/**
 * What an XBZRLE page costs as a record, not as a codec (bench/xbzrle.ts
 * measures the codec alone): the sender's side writing one XBZRLE record
 * per page (FrameWriter.appendXbzrle: frame header, the delta, CRC), and a
 * destination's whole path for each (a channel's loader, ChannelLoader:
 * FrameDecoder framing and CRC, the record's checks, RamLoader.xbzrlePage:
 * the delta applied, the marks and counts), into resident memory, for
 * the 512 MiB sweeping guest's pass: 131,072 pages each changed in its
 * first and last word (a 7-byte delta, 31 bytes on the wire). In pages per second, median (min-max) of 5 runs,
 * beside the guest's own dirty rate at 3 sweeps/s (393,216 pages/s): a
 * pipeline slower than that cannot get ahead of it with deltas alone.
 *
 * Then the same pages batched as XBZRLERUN records (13 bytes a page, one
 * frame and check a record): 256 pages a record, as the sender makes them
 * (a run is at most 256 pages: xbzrle-batch.ts, xbzrle-sender.ts), and
 * 1024, the record's cap. The sender's side there is XbzrleBatch (entries
 * gathered, one record appended); the destination's is the same whole path
 * (RamLoader.xbzrleRun). Target: a destination at 1,000,000 pages/s or more.
 *
 *   npx tsc -p . && node dist/bench/xbzrle-records.js
 */
import { fmt, repeat, timeMs } from '../src/bench/stats.js';
import { PAGE_SIZE } from '../src/memory/page.js';
import { ChannelLoader } from '../src/migration/channel-loader.js';
import { RamLoader } from '../src/migration/ram-loader.js';
import { decodeHeader, encodeHeader } from '../src/wire/format.js';
import { FrameWriter } from '../src/wire/frame-writer.js';
import { RECORD } from '../src/wire/records.js';
import { XbzrleBatch } from '../src/migration/xbzrle-batch.js';
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

/** A channel's stream: CHANNEL, pass 1 with every page as ZERO (so a delta may follow), SYNC, pass 2 one delta per page (`perRecord` 1: XBZRLE records; more: XBZRLERUN records of that many); its records' time to write, ms. */
function stream(delta: Uint8Array, perRecord = 1): { chunks: Buffer[]; writeMs: number } {
  const chunks: Buffer[] = [];
  const w = new FrameWriter((chunk, release) => { chunks.push(Buffer.from(chunk)); release(); });
  w.append(RECORD.Channel, { index: 0, channels: 1, uuid: UUID });
  w.append(RECORD.Pass, { pass: 1 });
  w.append(RECORD.Zero, { first: 0, count: PAGES });
  w.append(RECORD.Sync, { pass: 1 });
  w.append(RECORD.Pass, { pass: 2 });
  w.flush(); // the first chunk: everything before the deltas
  const batch = new XbzrleBatch();
  const writeMs = timeMs(() => {
    if (perRecord === 1) {
      for (let p = 0; p < PAGES; p++) {
        if (!w.hasRoom(64)) w.flush();
        w.appendXbzrle(0, p, delta, delta.length);
      }
      return;
    }
    for (let p = 0; p < PAGES; p += perRecord) {
      if (!w.hasRoom(perRecord * (6 + delta.length) + 64)) w.flush();
      for (let i = p; i < p + perRecord; i++) batch.add(w, 0, i, delta, delta.length);
      batch.send(w, 0);
    }
  });
  w.append(RECORD.Sync, { pass: 2 });
  w.flush();
  return { chunks, writeMs };
}

/**
 * The destination's time for the stream's deltas, ms, into memory touched
 * beforehand: a channel's loader (channel-loader.ts) on this thread, as
 * its own thread runs it (ChannelLoaders moves each channel to a thread).
 */
function applyMs(chunks: readonly Buffer[]): number {
  const ram = new RamLoader(header);
  ram.blocks[0].bytes.fill(0); // resident, as the destination's pages are by the second pass
  let applied = -1;
  const init = { header, ram: ram.attachment(), maxRecordBytes: 16 * 1024 * 1024, words: new SharedArrayBuffer(4), index: 0 };
  const loader = new ChannelLoader(init, (m) => {
    if (m.type === 'failed') throw new Error(`the channel's loader failed: ${m.error.message}`);
    if (m.type === 'synced' && m.pass === 2) applied = m.figures.xbzrlePages;
  }, 0);
  loader.feed(chunks[0]); // CHANNEL, pass 1 and PASS 2
  const ms = timeMs(() => { for (const c of chunks.slice(1)) loader.feed(c); });
  if (applied !== PAGES) throw new Error(`applied ${applied} deltas, expected ${PAGES}`);
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
for (const perRecord of [256, 1024]) {
  const batchedWrite = repeat(RUNS, () => (PAGES * 1000) / stream(delta, perRecord).writeMs);
  const batched = stream(delta, perRecord).chunks;
  const batchedApply = repeat(RUNS, () => (PAGES * 1000) / applyMs(batched));
  console.log(`XBZRLERUN of ${perRecord} pages (${perRecord * (6 + delta.length) + 20} bytes a record):`);
  console.log(`  sender: records written      ${fmt(batchedWrite, 0)} pages/s`);
  console.log(`  destination: records applied  ${fmt(batchedApply, 0)} pages/s`);
}
console.log(`the sweeper at 3 sweeps/s     ${SWEEPER_PAGES_PER_SEC} pages/s`);
