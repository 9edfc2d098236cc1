/**
 * The `auto` compression rule and the probing rule
 * (src/migration/compression-choice.ts) as pure functions, with the
 * issue's arithmetic.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  AUTO_MARGIN_ON, PROBE_CPU_SHARE, chooseCompression, probeEvery,
} from '../../src/migration/compression-choice.js';
import { fileLimit } from '../waits.js';

fileLimit(import.meta.url, 30_000);

const GBIT = 125e6;
/** Text over the 1 Gbit/s link, 2 threads of zstd-1 at 300 MB/s, ratio 3 (issue 15). */
const textOverGbit = { linkBytesPerSec: GBIT, linkBound: true, compressBytesPerCpuSec: 300e6, ratio: 3, threads: 2 };

test('text over 1 Gbit/s with 2 threads of zstd-1 at 300 MB/s and ratio 3: compress, at 375 MB/s limited by the link', () => {
  const c = chooseCompression(textOverGbit);
  assert.equal(c.compress, true, c.why);
  assert.equal(c.rawBytesPerSec, GBIT);
  assert.equal(c.compressedBytesPerSec, 375e6, 'min(125 x 3, 2 x 300)');
  assert.equal(c.why, 'compress: compressed 375 MB/s = min(link 125 MB/s x ratio 3.00, 2 threads x 300 MB/s), limited by the link, > raw 125 MB/s x 1.1');
});

test('the compressed rate is capped by the threads, and by the cores when fewer', () => {
  const slow = chooseCompression({ ...textOverGbit, compressBytesPerCpuSec: 100e6 });
  assert.equal(slow.compressedBytesPerSec, 200e6, 'min(375, 2 x 100)');
  assert.match(slow.why, /limited by compression speed/);
  assert.equal(chooseCompression({ ...textOverGbit, threads: 4, cores: 2, compressBytesPerCpuSec: 50e6 }).compressedBytesPerSec, 100e6, '2 cores x 50');
  assert.equal(chooseCompression({ ...textOverGbit, threads: 4, cores: 2, compressBytesPerCpuSec: 50e6 }).compress, false, '100 MB/s compressed < 125 raw');
});

test('random data never compresses: the ratio of packets sent raw is 1', () => {
  for (const ratio of [1, 1.02]) {
    for (const compressing of [false, true]) {
      const c = chooseCompression({ ...textOverGbit, ratio, compressing });
      assert.equal(c.compress, false, `ratio ${ratio}, compressing ${compressing}: ${c.why}`);
    }
  }
  assert.match(chooseCompression({ ...textOverGbit, ratio: 1 }).why, /^raw: compressed 125 MB\/s = min\(link 125 MB\/s x ratio 1\.00, 2 threads x 300 MB\/s\), limited by the link, <= raw 125 MB\/s x 1\.1$/);
});

test('unlimited loopback at 2 GB/s: no compression, whether the senders waited for it or not', () => {
  const loopback = { ...textOverGbit, linkBytesPerSec: 2e9 };
  const bound = chooseCompression(loopback);
  assert.equal(bound.compress, false, bound.why);
  assert.equal(bound.compressedBytesPerSec, 600e6, 'the threads compress 600 MB/s, a third of the link');
  const busy = chooseCompression({ ...loopback, linkBound: false });
  assert.equal(busy.compress, false);
  assert.equal(busy.why, 'raw: the CPU limits, not the link (senders busy, never waiting for the link, at 2000 MB/s)');
});

test('busy senders never compress, even with a slow link figure and a high ratio', () => {
  const c = chooseCompression({ ...textOverGbit, linkBound: false, ratio: 10 });
  assert.equal(c.compress, false);
  assert.match(c.why, /the CPU limits, not the link/);
});

test('the margin: on only above 10 % gain, then stays on down to 5 % (no flapping around the border)', () => {
  // Ratio r on a link-bound 125 MB/s: compressed = 125 x r (the threads are faster).
  const at = (ratio: number, compressing: boolean) => chooseCompression({ ...textOverGbit, ratio, compressing }).compress;
  assert.equal(AUTO_MARGIN_ON, 0.1);
  assert.equal(at(1.1, false), false, 'exactly 10 % does not turn it on');
  assert.equal(at(1.11, false), true);
  assert.equal(at(1.08, true), true, '8 % keeps it on');
  assert.equal(at(1.05, true), true, 'exactly 5 % keeps it on');
  assert.equal(at(1.04, true), false, 'below 5 % turns it off');
  assert.match(chooseCompression({ ...textOverGbit, ratio: 1.04, compressing: true }).why, /^raw: .* < raw 125 MB\/s x 1\.05$/);
  assert.match(chooseCompression({ ...textOverGbit, ratio: 1.08, compressing: true }).why, />= raw 125 MB\/s x 1\.05$/);
});

test('nothing measured yet: raw, saying what is missing', () => {
  assert.equal(chooseCompression({ ...textOverGbit, ratio: 0 }).why, 'raw: no compressed sample measured yet');
  assert.equal(chooseCompression({ ...textOverGbit, compressBytesPerCpuSec: 0 }).why, 'raw: no compressed sample measured yet');
  assert.equal(chooseCompression({ ...textOverGbit, linkBytesPerSec: 0 }).why, 'raw: no link rate measured yet');
  assert.equal(chooseCompression({ ...textOverGbit, ratio: Number.NaN }).compress, false);
});

test('probing costs at most 2 % of a sender: one packet in ceil(49 x send speed / compression speed)', () => {
  // A sender at 2 GB/s of CPU, compression at 1 GB/s (zstd-1 on random data): probe 1 in 98.
  const p = probeEvery({ sendBytesPerCpuSec: 2e9, compressBytesPerCpuSec: 1e9 });
  assert.equal(p.everyPackets, 98);
  assert.equal(p.why, 'probe 1 packet in 98: compressing at 1000 MB/s against sending at 2000 MB/s keeps probing under 2 % of a sender\'s CPU');
  // The share, for packets of any size B: a probe's B / c over N packets' B / s plus the probe.
  for (const [s, c] of [[2e9, 1e9], [3e9, 300e6], [500e6, 4e9], [10e9, 20e6], [1e9, 1e9]]) {
    const n = probeEvery({ sendBytesPerCpuSec: s, compressBytesPerCpuSec: c }).everyPackets;
    const share = (1 / c) / (n / s + 1 / c);
    assert.ok(share <= PROBE_CPU_SHARE + 1e-12, `s ${s}, c ${c}: 1 in ${n} costs ${(share * 100).toFixed(2)} %`);
    if (n > 1) assert.ok((1 / c) / ((n - 1) / s + 1 / c) > PROBE_CPU_SHARE, `s ${s}, c ${c}: 1 in ${n - 1} would cost more than 2 %`);
  }
  assert.equal(probeEvery({ sendBytesPerCpuSec: 100e6, compressBytesPerCpuSec: 10e9 }).everyPackets, 1, 'compression 100x faster than sending: every packet');
});

test('probing before anything is measured: the next packet; without a send speed, the longest interval (10 GB/s assumed)', () => {
  assert.deepEqual(probeEvery({ sendBytesPerCpuSec: 2e9, compressBytesPerCpuSec: 0 }), { everyPackets: 1, why: 'probe the next packet: no compression speed measured yet' });
  const p = probeEvery({ sendBytesPerCpuSec: 0, compressBytesPerCpuSec: 1e9 });
  assert.equal(p.everyPackets, 490);
  assert.match(p.why, /sending at 10000 MB\/s \(assumed: not measured yet\)/);
});
