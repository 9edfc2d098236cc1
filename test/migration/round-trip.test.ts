/** The link's round trip from writes that met an empty link (round-trip.ts), with a fake clock. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PROBE_MAX_BYTES, RoundTripEstimator } from '../../src/migration/round-trip.js';
import { fileLimit } from '../waits.js';

fileLimit(import.meta.url, 10_000);

test('round trip: a small write made with nothing in flight is timed to the acknowledgement that covers it', () => {
  const r = new RoundTripEstimator();
  assert.equal(r.roundTripMs, null, 'nothing measured yet');
  r.onWrite(20, 1020, 0, 100); // a pass record after the link drained
  r.onAck(1000, 100.3); // an older acknowledgement: not this write's
  assert.equal(r.roundTripMs, null);
  r.onAck(1020, 100.4);
  assert.ok(Math.abs(r.roundTripMs! - 0.4) < 1e-9, `${r.roundTripMs}`);
  assert.equal(r.samples, 1);
});

test('round trip: writes behind a queue, large writes and a second write while one is timed are not probes; the smallest sample wins', () => {
  const r = new RoundTripEstimator();
  r.onWrite(20, 5_000_020, 4_000_000, 0); // 4 MB queued ahead: the delay would be the queue's
  r.onAck(5_000_020, 35);
  r.onWrite(PROBE_MAX_BYTES + 1, 6_000_000, 0, 40); // its own sending time would count
  r.onAck(6_000_000, 45);
  assert.equal(r.roundTripMs, null, 'no probe so far');
  r.onWrite(100, 6_000_100, 0, 50);
  r.onWrite(100, 6_000_200, 0, 50.5); // while the first is out: not timed on its own
  r.onAck(6_000_200, 52); // covers both: the first's sample, 2 ms
  r.onWrite(100, 6_000_300, 0, 60);
  r.onAck(6_000_300, 60.5);
  r.onWrite(100, 6_000_400, 0, 70);
  r.onAck(6_000_400, 73); // a busy moment: larger, ignored
  assert.equal(r.samples, 3);
  assert.equal(r.roundTripMs, 0.5);
});

test('round trip: with several channels a probe counts only if no channel wrote before its acknowledgement (acknowledgements count every connection\'s bytes)', () => {
  const r = new RoundTripEstimator();
  r.onWrite(20, 1020, 0, 0, 500); // 500 bytes written on the channels so far
  r.onAck(1020, 0.2, 600); // a channel wrote 100 more: the acknowledged total may be theirs
  assert.equal(r.roundTripMs, null);
  r.onWrite(20, 1040, 0, 1, 600);
  r.onAck(1040, 1.3, 600);
  assert.ok(Math.abs(r.roundTripMs! - 0.3) < 1e-9, `${r.roundTripMs}`);
});
