/**
 * A channel's compression of its packets (packet-compressor.ts) with a fake
 * codec and clock: a fixed method compresses every packet and sends raw
 * what does not shrink; `auto` starts raw, probes one packet in N once it
 * knows the codec's speed, turns compression on only when its link-bound
 * window says compressing pays and off when the ratio falls; the channels'
 * figures sum as query-migrate shows them.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sumCompression, type CompressionReport } from '../../src/migration/compression-stats.js';
import { PacketCompressor } from '../../src/migration/packet-compressor.js';
import type { PacketCodec } from '../../src/wire/compression.js';
import { compressionRows } from '../../src/client/figures.js';
import { fileLimit } from '../waits.js';

fileLimit(import.meta.url, 10_000);

const PACKET = new Uint8Array(128 * 4096);

/** A codec that takes `nsPerPacket` of the fake clock and shrinks a packet to `ratio` of it (null: it does not pay). */
function fake(clock: { ns: number }, ratio: () => number | null, nsPerPacket = 1e6): PacketCodec {
  return {
    method: 'zstd',
    compress: (src) => {
      clock.ns += nsPerPacket;
      const r = ratio();
      return r === null ? null : new Uint8Array(Math.ceil(src.length * r));
    },
    decompress: () => {},
  };
}

test('a fixed method compresses every packet; one that does not shrink goes raw, and the counters say which', () => {
  const clock = { ns: 0 };
  let pays = true;
  const c = new PacketCompressor(fake(clock, () => (pays ? 0.25 : null)), false, () => clock.ns);
  assert.equal(c.pack(PACKET)?.length, PACKET.length / 4);
  pays = false;
  assert.equal(c.pack(PACKET), null);
  assert.deepEqual({ ...c.counters }, {
    packets: 2, compressedPackets: 1, pages: 128, rawBytes: PACKET.length, compressedBytes: PACKET.length / 4, notShrunk: 1, busyNs: 2e6, probes: 0, probeNs: 0,
  });
});

test('auto: raw at first; after its first probe it probes one packet in N (rule 2); a link-bound window with a good ratio turns it on, a poor ratio off', () => {
  const clock = { ns: 0 };
  let ratio: number | null = 0.25;
  // 512 KiB per ms: 524 MB/s per CPU second.
  const c = new PacketCompressor(fake(clock, () => ratio), true, () => clock.ns);
  assert.equal(c.compressing, false);
  assert.notEqual(c.pack(PACKET), null, 'the first packet is a probe, sent compressed as it shrank');
  let probed = 0;
  for (let i = 0; i < 1000; i++) if (c.pack(PACKET) !== null) probed++;
  // N >= 49 x 10 GB/s (assumed sender) / 524 MB/s = 935: one more probe in 1000 packets.
  assert.equal(probed, 1, 'one packet in about 935 probed');
  assert.equal(c.counters.probes, 2);
  // A window where the channel waited for a 100 MB/s link: compressing gives min(100 x 4, 524) > 110.
  c.decide({ bytesPerSec: 100e6, linkBound: true, sendBytesPerSec: 2e9 });
  assert.equal(c.compressing, true, c.choice?.why);
  assert.match(c.choice!.why, /^compress: compressed 400 MB\/s = min\(link 100 MB\/s x ratio 4\.00, 1 threads x 524 MB\/s\), limited by the link, > raw 100 MB\/s x 1\.1$/);
  for (let i = 0; i < 10; i++) assert.notEqual(c.pack(PACKET), null, 'every packet compressed');
  // The senders keep up with the codec now (not link-bound): the last link-bound rate stands, so it stays on.
  c.decide({ bytesPerSec: 30e6, linkBound: false, sendBytesPerSec: 2e9 });
  assert.equal(c.compressing, true, c.choice?.why);
  // The data turned random: nothing shrinks, the ratio is 1, compression goes off.
  ratio = null;
  for (let i = 0; i < 10; i++) assert.equal(c.pack(PACKET), null);
  c.decide({ bytesPerSec: 30e6, linkBound: false, sendBytesPerSec: 2e9 });
  assert.equal(c.compressing, false, c.choice?.why);
  assert.match(c.choice!.why, /^raw: /);
});

test('auto on a link that is not the limit (the sender never waited) stays raw, whatever the ratio', () => {
  const clock = { ns: 0 };
  const c = new PacketCompressor(fake(clock, () => 0.1), true, () => clock.ns);
  c.pack(PACKET);
  c.decide({ bytesPerSec: 2e9, linkBound: false, sendBytesPerSec: 2e9 });
  assert.equal(c.compressing, false);
  assert.match(c.choice!.why, /^raw: the CPU limits, not the link/);
});

test("the channels' figures sum as query-migrate's compression object, and the summary table shows them", () => {
  const counters = (n: number) => ({ packets: 10 * n, compressedPackets: 4 * n, pages: 512 * n, rawBytes: 512 * 4096 * n, compressedBytes: 1024 * 1024 * n, notShrunk: n, busyNs: 1e6 * n, probes: n, probeNs: 1e5 * n });
  const report = (index: number, n: number, compressing: boolean): CompressionReport => ({ type: 'compression', index, counters: counters(n), method: 'zstd', compressing, why: `w${index}` });
  const s = sumCompression('auto (zstd)', true, [report(0, 1, true), null, report(2, 2, false)]);
  assert.deepEqual(s, {
    method: 'auto (zstd)', auto: true, pages: 1536, busy: 18, busyRate: 0.6, compressedSize: 3 * 1024 * 1024, compressionRate: 2, packets: 30, compressedPackets: 12,
    busyMs: 3, probes: 3, probeMs: 0.3, compressingChannels: 1, channels: 3, why: 'channel 0: w0',
  });
  const rows = compressionRows({
    status: 'completed',
    compression: {
      pages: s.pages, busy: s.busy, 'busy-rate': s.busyRate, 'compressed-size': s.compressedSize, 'compression-rate': s.compressionRate, 'x-ferry-method': s.method,
      'x-ferry-packets': s.packets, 'x-ferry-compressed-packets': s.compressedPackets, 'x-ferry-busy-ms': 3, 'x-ferry-probes': 3, 'x-ferry-probe-ms': 0,
      'x-ferry-compressing-channels': 1, 'x-ferry-channels': 3, 'x-ferry-why': s.why!,
    },
  });
  assert.deepEqual(rows.map(([k]) => k), ['compression', 'compression time', 'compression choice']);
  assert.match(rows[0][1], /^auto \(zstd\): .* in 12 packets compressed to 3\.0 MiB \(rate 2\.00\); 18 of 30 packets raw \(60\.0 %\)$/);
  assert.equal(rows[2][1], '1 of 3 channels compressing; channel 0: w0');
});
