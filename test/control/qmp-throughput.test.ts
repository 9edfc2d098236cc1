/**
 * Issue 15's capabilities and parameters through QMP, as a QEMU client
 * sees them: multifd, xbzrle, multifd-compression and its levels set with
 * QEMU's commands and names, queried back, and a migration driven with
 * them whose query-migrate carries QEMU's `xbzrle-cache` object (cache-size,
 * bytes, pages, cache-miss, cache-miss-rate, encoding-rate, overflow) and
 * the `compression` object (pages, busy, busy-rate, compressed-size,
 * compression-rate; ferry's method, decision and why beside them), with
 * figures that agree with what happened: deltas sent, pages compressed to
 * fewer bytes than they hold. A value QEMU refuses is refused in its words.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { GuestController } from '../../src/control/controller.js';
import { QmpClient } from '../../src/control/qmp-client.js';
import { QmpServer } from '../../src/control/qmp-server.js';
import { IncomingMigration } from '../../src/migration/incoming.js';
import { MiB, adopt, address, assertSweeps, destroyAll, guest } from '../migration/helpers.js';
import { fileLimit, until } from '../waits.js';

fileLimit(import.meta.url, 120_000);
after(destroyAll);

const XBZRLE_FIELDS = ['bytes', 'cache-miss', 'cache-miss-rate', 'cache-size', 'encoding-rate', 'overflow', 'pages'];
const COMPRESSION_FIELDS = ['busy', 'busy-rate', 'compressed-size', 'compression-rate', 'pages'];

type Info = {
  status: string;
  ram?: { 'dirty-sync-count': number };
  'xbzrle-cache'?: Record<string, number>;
  compression?: Record<string, number | string>;
  'error-desc'?: string;
};

test('multifd, xbzrle and multifd-compression through QMP: set and queried in QEMU\'s names; query-migrate carries xbzrle-cache and compression, true to what was sent', async () => {
  const src = await guest({ ram: 16 * MiB, vcpus: [{ kind: 'sweep', pages: 1024, sweepsPerSec: 10 }] });
  await src.cont();
  const server = await QmpServer.listen(address('unix', 'qmp'), new GuestController(src));
  const incoming = await IncomingMigration.listen('tcp:127.0.0.1:0');
  const qmp = await QmpClient.connect(server.uri);
  try {
    const on = (names: string[]) => ({ capabilities: names.map((capability) => ({ capability, state: true })) });
    await qmp.execute('migrate-set-capabilities', on(['multifd', 'xbzrle']));
    const caps = (await qmp.execute('query-migrate-capabilities')) as { capability: string; state: boolean }[];
    for (const n of ['multifd', 'xbzrle']) assert.equal(caps.find((c) => c.capability === n)?.state, true, n);
    await assert.rejects(qmp.execute('migrate-set-parameters', { 'multifd-compression': 'brotli' }), /Parameter 'multifd-compression' does not accept value 'brotli'/);
    await assert.rejects(qmp.execute('migrate-set-parameters', { 'multifd-zlib-level': 10 }), /multifd-zlib-level/);
    await qmp.execute('migrate-set-parameters', {
      'multifd-channels': 2, 'multifd-compression': 'zlib', 'multifd-zlib-level': 1, 'xbzrle-cache-size': 8 * MiB, // holds the swept 4 MiB: deltas pay
      'downtime-limit': 1, 'max-bandwidth': 32 * MiB, // 1 ms against a sweeping guest: it passes on until told otherwise
    });
    const p = (await qmp.execute('query-migrate-parameters')) as Record<string, unknown>;
    assert.deepEqual([p['multifd-channels'], p['multifd-compression'], p['multifd-zlib-level'], p['xbzrle-cache-size']], [2, 'zlib', 1, 8 * MiB]);
    assert.equal(typeof p['multifd-zstd-level'], 'number', 'the zstd level is there too, unused');

    await qmp.execute('migrate', { uri: incoming.uri });
    const during = await until('query-migrate to show deltas, cache misses and compressed pages over three passes', async () => {
      const i = (await qmp.execute('query-migrate')) as Info;
      if (i.status === 'failed') assert.fail(`the migration failed: ${i['error-desc']}`);
      const x = i['xbzrle-cache'];
      return x !== undefined && x.pages > 50 && x['cache-miss'] > 50 && (i.ram?.['dirty-sync-count'] ?? 0) >= 3 && i;
    }, 60_000, 20);
    const x = during['xbzrle-cache']!;
    assert.deepEqual(Object.keys(x).sort(), XBZRLE_FIELDS, 'QEMU\'s XBZRLECacheStats, no more, no less');
    assert.equal(x['cache-size'], 8 * MiB);
    assert.ok(x.bytes > 0 && x.bytes < x.pages * 4096, `deltas are smaller than the pages they stand for: ${JSON.stringify(x)}`);
    assert.ok(x['cache-miss-rate'] >= 0 && x['cache-miss-rate'] <= 1, `a rate: ${x['cache-miss-rate']}`);
    const c = during.compression!;
    for (const k of COMPRESSION_FIELDS) assert.equal(typeof c[k], 'number', `compression.${k}: ${JSON.stringify(c)}`);
    assert.ok((c.pages as number) > 0 && (c['compressed-size'] as number) < (c.pages as number) * 4096, `pages went compressed into fewer bytes: ${JSON.stringify(c)}`);
    assert.ok((c['compression-rate'] as number) > 1, `the ratio of what was compressed: ${c['compression-rate']}`);

    await qmp.execute('migrate-set-parameters', { 'downtime-limit': 60_000 }); // now it may switch over
    const end = await until('query-migrate to say completed', async () => {
      const i = (await qmp.execute('query-migrate')) as Info;
      return (i.status === 'completed' || i.status === 'failed') && i;
    }, 60_000, 20);
    assert.equal(end.status, 'completed', end['error-desc']);
    assert.ok((end['xbzrle-cache']?.pages ?? 0) >= x.pages, 'the figures stay after completion, and only grow');
    const dest = await incoming.done();
    assert.equal(dest.status, 'resumed', dest.error ?? '');
    assert.equal(dest.stats?.channels, 2);
    const g = adopt(dest.guest)!;
    await g.pause();
    assertSweeps(g, 'destination');
  } finally {
    const left = (await qmp.execute('query-migrate')) as Info;
    if (left.status === 'active' || left.status === 'setup') await qmp.execute('migrate_cancel'); // a failed assertion above: end it here
    qmp.close();
    server.close();
  }
});
