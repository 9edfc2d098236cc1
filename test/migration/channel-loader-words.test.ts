/**
 * The stop word (channel-loader-words.ts): once the loader thread sets it,
 * a channel's loader applies no further record to the guest's RAM, even
 * with chunks still queued for it (a terminated worker may still decode
 * them), and does not report that as a channel's failure. Run on this
 * thread (channel-loader.ts), so what it writes is seen directly.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ChannelLoaderWords } from '../../src/migration/channel-loader-words.js';
import { ChannelLoader } from '../../src/migration/channel-loader.js';
import type { FromChannelLoader } from '../../src/migration/messages.js';
import { RamLoader } from '../../src/migration/ram-loader.js';
import { decodeHeader, encodeHeader } from '../../src/wire/format.js';
import { FrameWriter } from '../../src/wire/frame-writer.js';
import { RECORD } from '../../src/wire/records.js';

const UUID = '0f0f0f0f-1111-4222-8333-444444444444';
const header = decodeHeader(encodeHeader({ pageSize: 4096, uuid: UUID, vcpus: 0, blocks: [{ name: 'ram0', pages: 1024 }], channels: 2, compression: null, verify: true }));

function encode(write: (w: FrameWriter) => void): Buffer {
  const chunks: Buffer[] = [];
  const w = new FrameWriter((chunk, release) => { chunks.push(Buffer.from(chunk)); release(); });
  write(w);
  w.flush();
  return Buffer.concat(chunks);
}

test('after the stop word is set, a channel\'s loader writes no page of the chunks still queued, and reports no failure', () => {
  const source = new Uint8Array(1024 * 4096).fill(0xa5);
  const ram = new RamLoader(header);
  const words = ChannelLoaderWords.create();
  const said: FromChannelLoader[] = [];
  const loader = new ChannelLoader({ header, ram: ram.attachment(), maxRecordBytes: 1 << 24, words: words.shared, index: 0 }, (m) => said.push(m), 0);
  loader.feed(encode((w) => {
    w.append(RECORD.Channel, { index: 0, channels: 2, uuid: UUID });
    w.append(RECORD.Pass, { pass: 1 });
    w.appendPages(0, 0, 4, source);
  }));
  assert.ok(ram.blocks[0].bytes.subarray(0, 4 * 4096).every((b) => b === 0xa5), 'before the stop: written');
  words.stop();
  assert.ok(words.stopped);
  loader.feed(encode((w) => {
    w.appendPages(0, 4, 4, source);
    w.append(RECORD.Zero, { first: 0, count: 1 });
  }));
  assert.ok(ram.blocks[0].bytes.subarray(4 * 4096, 8 * 4096).every((b) => b === 0), 'after the stop: no page written');
  assert.ok(ram.blocks[0].bytes.subarray(0, 4096).every((b) => b === 0xa5), 'after the stop: no ZERO applied');
  assert.deepEqual(said.map((m) => m.type), ['channel', 'loaded'], 'no failure said, nothing more acknowledged');
});
