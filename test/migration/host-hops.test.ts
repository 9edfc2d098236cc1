/** The hosts' hand-off time between threads (host-hops.ts), with a fake clock. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HOP_SAMPLES, HostHops } from '../../src/migration/host-hops.js';
import { fileLimit } from '../waits.js';

fileLimit(import.meta.url, 10_000);

test('host hops: a ping\'s round trip, less the time this thread spent in send steps meanwhile, averaged over the recent ones', () => {
  const h = new HostHops();
  assert.equal(h.hopMs, null, 'nothing measured yet');
  const a = h.ping(0, 0)!;
  assert.equal(h.ping(0.5, 0), null, 'one ping out at a time');
  h.pong(a, 1, 0);
  assert.equal(h.hopMs, 1);
  const b = h.ping(10, 7e6);
  h.pong(b!, 14, 7e6 + 3e6); // 4 ms, of which 3 in a send step: 1 ms waiting for the main thread
  assert.equal(h.hopMs, 1);
  const c = h.ping(20, 0);
  h.pong(c! + 1, 21, 0); // not the pending ping's answer: ignored
  h.pong(c!, 24, 0);
  assert.equal(h.hopMs, 2, '(1 + 1 + 4) / 3');
});

test('host hops: only the last HOP_SAMPLES count, so a busy spell long past is forgotten', () => {
  const h = new HostHops();
  for (let i = 0; i < HOP_SAMPLES + 4; i++) {
    const at = i * 100;
    h.pong(h.ping(at, 0)!, at + (i < 4 ? 10 : 0.5), 0);
  }
  assert.equal(h.hopMs, 0.5);
});
