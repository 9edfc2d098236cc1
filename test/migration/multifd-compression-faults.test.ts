/**
 * Compression on several channels, when something is wrong: a COMPRESSED
 * record that is corrupt or a decompression bomb (with a valid frame
 * check: rewritten on the way by a proxy) fails the migration before GO
 * with an error naming the record, the channel and why, and the source
 * runs on, intact; a codec whose optional package is not installed is
 * refused at `migrate` (never a silent fallback), and a destination that
 * cannot decode the header's codec refuses the stream before any page;
 * `auto` on a slow link compresses text-like pages, and says why.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, test } from 'node:test';
import { createRequire } from 'node:module';
import type { Guest } from '../../src/guest/guest.js';
import { Migration } from '../../src/migration/migration.js';
import { MULTIFD_COMPRESSION_CHOICES, type MultifdCompression } from '../../src/migration/parameters.js';
import { CHECK_BYTES, FRAME_HEADER_BYTES, encodeHeader } from '../../src/wire/format.js';
import { SIMULATE_MISSING_ENV } from '../../src/wire/native-packages.js';
import { FrameDecoder } from '../../src/wire/frame-decoder.js';
import { RECORD, Rec, encodeRecord } from '../../src/wire/records.js';
import { refusalName } from '../../src/wire/refusals.js';
import { MiB, adopt, assertDirtyLogsReleased, destroyAll, guest, listen, sameRam } from './helpers.js';
import { bounded, fileLimit, until } from '../waits.js';

fileLimit(import.meta.url, 60_000);

after(destroyAll);

const index = (m: MultifdCompression) => MULTIFD_COMPRESSION_CHOICES.indexOf(m);

/**
 * A proxy to `target` that, on the connection of channel `channel` (its
 * CHANNEL record's index), hands the first COMPRESSED record to `rewrite`
 * and sends what it returns instead, re-framed with a valid check.
 */
class RewritingLink {
  uri = '';
  rewritten = false;
  private readonly sockets: net.Socket[] = [];
  private server!: net.Server;

  static async open(target: string, channelIndex: number, rewrite: (data: Buffer) => Buffer): Promise<RewritingLink> {
    const link = new RewritingLink();
    const port = Number(target.split(':').pop());
    link.server = net.createServer((up) => {
      const down = net.connect(port, '127.0.0.1');
      link.sockets.push(up, down);
      let pending = Buffer.alloc(0);
      let channel: boolean | null = null;
      let index = -1;
      up.on('data', (d: Buffer) => {
        channel ??= d[0] === Rec.Channel;
        if (!channel) {
          down.write(d);
          return;
        }
        pending = Buffer.concat([pending, d]);
        for (;;) {
          if (pending.length < FRAME_HEADER_BYTES) break;
          const size = FRAME_HEADER_BYTES + pending.readUInt32LE(4) + pending.readUInt32LE(8) * 4096 + CHECK_BYTES;
          if (pending.length < size) break;
          let record: Buffer = pending.subarray(0, size);
          pending = pending.subarray(size);
          if (record[0] === Rec.Channel) index = RECORD.Channel.decode(record.subarray(FRAME_HEADER_BYTES, size - CHECK_BYTES)).index;
          if (record[0] === Rec.Compressed && index === channelIndex && !link.rewritten) {
            link.rewritten = true;
            const { first, count, data } = RECORD.Compressed.decode(record.subarray(FRAME_HEADER_BYTES, size - CHECK_BYTES));
            record = encodeRecord(RECORD.Compressed, { first, count, data: rewrite(Buffer.from(data)) }, record.readUInt16LE(2));
          }
          down.write(record);
        }
      });
      down.on('data', (d) => up.write(d));
      for (const [a, b] of [[up, down], [down, up]]) {
        a.on('end', () => b.end());
        a.on('error', () => b.destroy());
        a.on('close', () => { if (!b.writableEnded) b.destroy(); });
      }
    });
    await new Promise<void>((r) => link.server.listen(0, '127.0.0.1', r));
    link.uri = `tcp:127.0.0.1:${(link.server.address() as net.AddressInfo).port}`;
    return link;
  }

  close(): void {
    this.server.close();
    for (const s of this.sockets) s.destroy();
  }
}

/** Text-like pages (they compress) written once, and a vCPU sweeping. */
async function textSource(): Promise<Guest> {
  const g = await guest({ ram: 8 * MiB, vcpus: [{ kind: 'fill', data: 'text', fraction: 0.75 }, { kind: 'sweep', firstPage: 1536, pages: 256, sweepsPerSec: 5 }] });
  await g.cont();
  await until('the guest to write its text', () => g.pagesWritten >= 1536, 20_000);
  return g;
}

const zstd = createRequire(import.meta.url)('zstd-napi') as { compress(b: Buffer): Buffer };

for (const [what, rewrite, reason] of [
  ['a truncated frame', (data: Buffer) => data.subarray(0, data.length - 8), /truncated or corrupt/],
  ['a decompression bomb (a frame declaring 64 MiB)', () => zstd.compress(Buffer.alloc(64 * MiB)), /the frame declares 67108864 bytes, the packet declares \d+ \(more than the packet holds: a decompression bomb/],
] as const) {
  test(`a COMPRESSED record carrying ${what} on channel 2 of 4, with a valid check, fails the migration before GO naming channel 2 and the record; the source runs on, intact`, async () => {
    const src = await textSource();
    const incoming = await listen('tcp');
    const link = await RewritingLink.open(incoming.uri, 2, rewrite);
    try {
      const m = Migration.start(src, link.uri, { multifdChannels: 4, multifdCompression: index('zstd') }, { multifd: true });
      const result = await m.done();
      assert.ok(link.rewritten, 'a COMPRESSED record was rewritten');
      assert.equal(result.status, 'failed');
      assert.equal(result.afterGo, false);
      const dest = await incoming.done();
      assert.equal(dest.status, 'failed');
      assert.equal(dest.guest, null, 'nothing resumed at the destination');
      for (const [side, error] of [['destination', dest.error], ['source', result.error]] as const) {
        assert.match(error ?? '', /channel 2: COMPRESSED: pages \d+\.\.\d+ of block \S+ \(\d+ bytes\): zstd: /, `${side}: ${error}`);
        assert.match(error ?? '', reason, `${side}: ${error}`);
      }
      assert.equal(src.runState, 'running', 'the source runs on');
      assertDirtyLogsReleased(src, 'the source after the refused record');
    } finally {
      link.close();
    }
    // Intact: it migrates again, every page as it holds them.
    const again = await listen('tcp');
    let arrived: Guest | null = null;
    let sameAtLoaded: boolean | null = null;
    again.on('guest', (d: Guest) => { arrived = d; });
    again.on('status', (to) => { if (to === 'loaded' && arrived !== null) sameAtLoaded = sameRam(arrived, src); });
    const r2 = await Migration.start(src, again.uri, { multifdChannels: 2, multifdCompression: index('zstd') }, { verify: true, multifd: true }).done();
    assert.equal(r2.status, 'completed', r2.error ?? '');
    const d2 = await again.done();
    adopt(d2.guest);
    assert.equal(sameAtLoaded, true);
    assert.equal(d2.stats?.verified, true);
  });
}

test('a codec whose optional package is not installed is refused at migrate, naming the package; auto picks another and says so', async () => {
  const src = await guest({ ram: 4 * MiB, vcpus: [{ kind: 'fill', data: 'text', fraction: 0.5 }] });
  await src.cont();
  process.env[SIMULATE_MISSING_ENV] = 'zstd,lz4';
  try {
    for (const method of ['zstd', 'lz4'] as const) {
      assert.throws(() => Migration.start(src, 'tcp:127.0.0.1:9', { multifdCompression: index(method) }, { multifd: true }), {
        code: 'ERR_FERRY_INVALID_ARGUMENT',
        message: new RegExp(`^multifd-compression ${method} cannot be used here: ${method} needs the optional package ${method}-napi, which did not install`),
      });
    }
    const incoming = await listen('tcp');
    const m = Migration.start(src, incoming.uri, { multifdChannels: 2, multifdCompression: index('auto') }, { multifd: true });
    const result = await m.done();
    assert.equal(result.status, 'completed', result.error ?? '');
    adopt((await incoming.done()).guest);
    const c = result.stats.compression!;
    assert.equal(c.method, 'auto (zlib)', 'auto fell back to zlib, always there');
    assert.equal(src.runState, 'postmigrate');
    assert.ok(c.why !== null);
  } finally {
    delete process.env[SIMULATE_MISSING_ENV];
  }
});

test('a destination that cannot decode the header\'s codec refuses the stream at the header (REFUSED compression), before any page', async () => {
  process.env[SIMULATE_MISSING_ENV] = 'lz4'; // before the destination's loader thread starts: it copies the environment
  const incoming = await listen('tcp');
  const port = Number(incoming.uri.split(':').pop());
  const socket = net.connect(port, '127.0.0.1');
  try {
    const refusal = new Promise<{ code: number; reason: string }>((resolve, reject) => {
      const decoder = new FrameDecoder({ record: (type, _b, head) => { if (type === Rec.Refused) resolve(RECORD.Refused.decode(head)); } }, { stream: false });
      socket.on('data', (d) => decoder.feed(d));
      socket.on('error', reject);
    });
    socket.write(encodeHeader({ pageSize: 4096, uuid: '11111111-2222-4333-8444-555555555555', vcpus: 0, blocks: [{ name: 'ram', pages: 16 }], channels: 1, compression: 'lz4' }));
    const { code, reason } = await bounded('the destination to refuse', refusal, 10_000);
    assert.equal(refusalName(code), 'compression');
    assert.match(reason, /header: the stream's channels compress with lz4, which this destination cannot decode: lz4 needs the optional package lz4-napi/);
    const dest = await incoming.done();
    assert.equal(dest.status, 'failed');
  } finally {
    delete process.env[SIMULATE_MISSING_ENV];
    socket.destroy();
  }
});

test('auto on a slow link (max-bandwidth 4 MiB/s) compresses text-like pages once it measured the link and the codec, and says why; RAM lands whole', async () => {
  const src = await textSource();
  const incoming = await listen('tcp');
  let arrived: Guest | null = null;
  let sameAtLoaded: boolean | null = null;
  incoming.on('guest', (d: Guest) => { arrived = d; });
  incoming.on('status', (to) => { if (to === 'loaded' && arrived !== null) sameAtLoaded = sameRam(arrived, src); });
  const m = Migration.start(src, incoming.uri, { maxBandwidthBytesPerSec: 4 * MiB, multifdChannels: 2, multifdCompression: index('auto') }, { verify: true, multifd: true });
  await until('auto to compress on a channel', () => (m.stats.compression?.compressingChannels ?? 0) > 0, 30_000);
  const during = m.stats.compression!;
  assert.match(during.why ?? '', /^channel \d: compress: compressed [\d.]+ MB\/s = min\(link [\d.]+ MB\/s x ratio [\d.]+, 1 threads x [\d.]+ MB\/s\), limited by the link, > raw/);
  const result = await m.done();
  assert.equal(result.status, 'completed', result.error ?? '');
  const dest = await incoming.done();
  adopt(dest.guest);
  assert.equal(sameAtLoaded, true);
  assert.equal(dest.stats?.verified, true);
  const c = result.stats.compression!;
  assert.ok(c.compressedPackets > c.probes, `${c.compressedPackets} packets compressed, more than the ${c.probes} probes`);
  assert.ok(c.compressionRate > 2, `text compresses (rate ${c.compressionRate})`);
});
