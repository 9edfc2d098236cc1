/**
 * The WASI device's clocks and its sleep: the guest clock and the wall
 * clock, poll_oneoff's deadlines, its pause (unwind) and its rewind at a
 * restored device, which waits only for the rest; and random_get's
 * generator against its reference.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { WasiDevice } from '../../src/wasm/wasi/wasi-device.js';
import { Errno } from '../../src/wasm/wasi/wasi-abi.js';
import { fileLimit } from '../waits.js';
import { Direct } from './wasi-harness.js';

fileLimit(import.meta.url, 60_000);

test('MONOTONIC and the CPU clocks read the guest clock, REALTIME the host wall clock; an unknown clock is INVAL', () => {
  const d = Direct.fresh();
  d.host.clockNs = 123_456_789n;
  for (const id of [1, 2, 3]) {
    assert.equal(d.wasi.clock_time_get(id, 0n, 8), 0);
    assert.equal(d.u64(8), 123_456_789n, `clock ${id}`);
  }
  assert.equal(d.wasi.clock_time_get(0, 0n, 8), 0);
  assert.equal(d.u64(8), d.host.wallNs);
  assert.equal(d.wasi.clock_time_get(4, 0n, 8), Errno.INVAL);
  assert.equal(d.wasi.clock_res_get(1, 16), 0);
  assert.equal(d.u64(16), 1000n);
  assert.equal(d.wasi.clock_res_get(9, 16), Errno.INVAL);
});

/** One clock subscription at `at`: userdata, clock id, timeout, flags (1 = absolute). */
function clockSub(d: Direct, at: number, userdata: bigint, id: number, timeout: bigint, flags = 0): void {
  d.bytes.fill(0, at, at + 48);
  d.spy.view.setBigUint64(at, userdata, true);
  d.spy.view.setUint32(at + 16, id, true);
  d.spy.view.setBigUint64(at + 24, timeout, true);
  d.spy.view.setUint16(at + 40, flags, true);
}

test('poll_oneoff paused mid-sleep keeps the deadline; restored and rewound, it sleeps only the rest and reports the event', () => {
  const d = Direct.fresh();
  d.host.clockNs = 1_000_000n;
  clockSub(d, 0, 0xabcdn, 1, 5_000_000n);
  d.host.sleepPlan.push({ pausedAtNs: 3_000_000n });
  d.bytes.fill(0xee, 1000, 1100);
  assert.equal(d.wasi.poll_oneoff(0, 1000, 1, 1096), 0);
  assert.deepEqual(d.host.asyncify, ['startUnwind']);
  assert.deepEqual(d.host.sleeps, [6_000_000n]);
  assert.ok(d.bytes.subarray(1000, 1100).every((b) => b === 0xee), 'no event written while unwinding');
  assert.equal(d.device.pendingSleepNs, 6_000_000n);

  const moved = new Direct(WasiDevice.restore(d.device.save()));
  moved.put(0, d.bytes.slice()); // the migrated memory
  moved.host.clockNs = 3_000_000n; // the guest clock stopped while paused
  moved.host.rewind = true;
  moved.host.sleepPlan.push({ pausedAtNs: 4_500_000n }); // paused again, on the way
  assert.equal(moved.wasi.poll_oneoff(0, 1000, 1, 1096), 0);
  assert.deepEqual(moved.host.asyncify, ['stopRewind', 'startUnwind']);
  moved.host.rewind = true;
  assert.equal(moved.wasi.poll_oneoff(0, 1000, 1, 1096), 0);
  assert.deepEqual(moved.host.sleeps, [6_000_000n, 6_000_000n], 'the saved deadline both times, never now + 5 ms');
  assert.deepEqual(moved.host.asyncify, ['stopRewind', 'startUnwind', 'stopRewind']);
  assert.equal(moved.u32(1096), 1);
  assert.equal(moved.u64(1000), 0xabcdn, 'userdata');
  assert.equal(moved.spy.view.getUint16(1008, true), 0, 'error');
  assert.equal(moved.bytes[1010], 0, 'type clock');
  assert.equal(moved.device.pendingSleepNs, null);
  assert.equal(moved.host.clockNs, 6_000_000n, 'slept 1.5 ms after the second pause: 5 ms of guest time in all');
});

test('poll_oneoff: the earliest clock is reported; absolute MONOTONIC and REALTIME deadlines; descriptors are ready at once', () => {
  const d = Direct.fresh();
  d.host.clockNs = 10_000n;
  clockSub(d, 0, 1n, 1, 9_000n);
  clockSub(d, 48, 2n, 1, 3_000n);
  clockSub(d, 96, 3n, 0, d.host.wallNs + 7_000n, 1);
  clockSub(d, 144, 4n, 1, 12_000n, 1);
  assert.equal(d.wasi.poll_oneoff(0, 1000, 4, 2000), 0);
  assert.deepEqual(d.host.sleeps, [12_000n], 'absolute monotonic 12 000 comes before 10 000 + 3 000');
  assert.equal(d.u32(2000), 1);
  assert.equal(d.u64(1000), 4n);
  d.host.sleeps.length = 0;
  assert.equal(d.wasi.poll_oneoff(0, 1000, 3, 2000), 0);
  assert.deepEqual(d.host.sleeps, [15_000n], 'relative 3 000 from the guest clock at 12 000');
  assert.equal(d.u64(1000), 2n);
  assert.equal(d.wasi.poll_oneoff(96, 1000, 1, 2000), 0);
  assert.equal(d.host.sleeps[1], 15_000n + 7_000n, 'absolute realtime: the wall-clock time left, from the guest clock');
  d.bytes.fill(0, 200, 248);
  d.bytes[208] = 1; // fd_read on stdin (fd 0)
  clockSub(d, 248, 6n, 1, 1_000_000n);
  const sleeps = d.host.sleeps.length;
  assert.equal(d.wasi.poll_oneoff(200, 1000, 2, 2000), 0);
  assert.equal(d.host.sleeps.length, sleeps, 'no sleep');
  assert.equal(d.u32(2000), 1);
  assert.equal(d.bytes[1010], 1, 'an fd_read event');
  assert.equal(d.wasi.poll_oneoff(0, 1000, 0, 2000), Errno.INVAL, 'no subscriptions');
  clockSub(d, 0, 1n, 7, 1n);
  assert.equal(d.wasi.poll_oneoff(0, 1000, 1, 2000), Errno.INVAL, 'an unknown clock');
});

test('a rewind that finds no pending sleep is the runner\'s mistake: a clear error, not a silent sleep', () => {
  const d = Direct.fresh();
  clockSub(d, 0, 1n, 1, 5n);
  d.host.rewind = true;
  assert.throws(() => d.wasi.poll_oneoff(0, 1000, 1, 2000), /poll_oneoff re-run by a rewind, but the device holds no pending sleep/);
});

/** xoshiro256** and splitmix64 as their authors define them, on bigints: the reference. */
function referenceRandom(seed: bigint): () => bigint {
  const M = (1n << 64n) - 1n;
  const rotl = (x: bigint, k: bigint) => ((x << k) | (x >> (64n - k))) & M;
  let x = seed;
  const split = () => {
    x = (x + 0x9e3779b97f4a7c15n) & M;
    let z = x;
    z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & M;
    z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & M;
    return z ^ (z >> 31n);
  };
  const s = [split(), split(), split(), split()];
  return () => {
    const result = (rotl((s[1] * 5n) & M, 7n) * 9n) & M;
    const t = (s[1] << 17n) & M;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3]; s[2] ^= t; s[3] = rotl(s[3], 45n);
    return result;
  };
}

test('random_get is xoshiro256** seeded by splitmix64: the reference outputs, little-endian, a request of n bytes taking ceil(n / 8)', () => {
  for (const seed of [0n, 1n, 42n, (1n << 64n) - 1n]) {
    const d = Direct.fresh({ seed });
    const next = referenceRandom(seed);
    const expected = new DataView(new ArrayBuffer(8 * 300));
    for (let i = 0; i < 300; i++) expected.setBigUint64(8 * i, next(), true);
    assert.equal(d.wasi.random_get(0, 8 * 299), 0);
    assert.equal(d.wasi.random_get(8 * 299, 3), 0, 'a short request takes a whole output');
    assert.deepEqual(d.bytes.subarray(0, 8 * 299 + 3), new Uint8Array(expected.buffer, 0, 8 * 299 + 3), `seed ${seed}`);
    assert.equal(d.wasi.random_get(5000, 8), 0);
    assert.equal(d.u64(5000), next(), 'the cut output\'s rest is dropped');
  }
});
