import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { Migration } from '../../src/migration/migration.js';
import { withParameters, DEFAULT_PARAMETERS } from '../../src/migration/parameters.js';
import { MiB, adopt, assertSweeps, destroyAll, guest, listen, sleep } from './helpers.js';
import { fileLimit } from '../waits.js';

fileLimit(import.meta.url, 300_000);

after(destroyAll);

test('mainloop mode (the 2010 reproduction) migrates correctly, one step per tick', async () => {
  const src = await guest({ ram: 8 * MiB, vcpus: [{ kind: 'sweep', sweepsPerSec: 5 }] });
  await src.cont();
  const incoming = await listen('tcp');
  const passes: number[] = [];
  const m = Migration.start(src, incoming.uri, { maxBandwidthBytesPerSec: 32 * MiB, mainloopStepCapMs: 50 }, { mode: 'mainloop', verify: true });
  m.on('pass', (p) => passes.push(p.pass));
  const r = await m.done();
  assert.equal(r.status, 'completed', r.error ?? '');
  assert.ok(passes.length >= 1);
  const dest = await incoming.done();
  assert.equal(dest.stats?.verified, true);
  const g = adopt(dest.guest)!;
  await sleep(20);
  await g.pause();
  assertSweeps(g, 'destination');
});

test('the CPU-share cap holds the migration thread to its share, by its own accounting', async () => {
  const src = await guest({ ram: 32 * MiB, vcpus: [{ kind: 'fill', data: 'random' }] });
  await src.cont();
  await sleep(200);
  const incoming = await listen('unix');
  const r = await Migration.start(src, incoming.uri, { cpuSharePercent: 30 }).done();
  assert.equal(r.status, 'completed', r.error ?? '');
  adopt((await incoming.done()).guest);
  const { threadBusyMs: busy, threadCapSleepMs: slept, totalTimeMs, setupTimeMs } = r.stats;
  assert.ok(slept > 0, 'the thread slept under the cap');
  const share = busy / (totalTimeMs - setupTimeMs);
  assert.ok(share <= 0.33, `busy share ${share.toFixed(2)} of the time since setup, for a 30 % cap`);
});

test('parameters are validated with messages that name them', () => {
  assert.throws(() => withParameters(DEFAULT_PARAMETERS, { downtimeLimitMs: 0 }), /downtimeLimitMs must be an integer in \[1, 2000000\], got 0/);
  assert.throws(() => withParameters(DEFAULT_PARAMETERS, { cpuSharePercent: 101 }), /cpuSharePercent must be an integer in \[1, 100\]/);
  assert.throws(() => withParameters(DEFAULT_PARAMETERS, { maxBandwidthBytesPerSec: -1 }), /maxBandwidthBytesPerSec/);
  assert.throws(() => withParameters(DEFAULT_PARAMETERS, { warpFactor: 9 }), /unknown migration parameter "warpFactor"/);
  assert.equal(withParameters(DEFAULT_PARAMETERS, { downtimeLimitMs: 30 }).downtimeLimitMs, 30);
});
