/**
 * Compression on several channels (`multifd-compression`, packet-compressor.ts,
 * channel-loaders.ts): over 1, 2 and 4 channels with every method, what
 * lands is what the source held (invariant 2, on contents: RAM equal at
 * LOADED, the verify digests agree, the sweep checker finds every page in
 * pass order); pages that compress went compressed and random ones raw,
 * and query-migrate's figures say so.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import type { Guest } from '../../src/guest/guest.js';
import { Migration } from '../../src/migration/migration.js';
import { MULTIFD_COMPRESSION_CHOICES, type MultifdCompression } from '../../src/migration/parameters.js';
import { MiB, adopt, assertDirtyLogsReleased, assertSweeps, destroyAll, guest, listen, sameRam } from './helpers.js';
import { fileLimit, until } from '../waits.js';

fileLimit(import.meta.url, 120_000);

after(destroyAll);

/** A sweeping vCPU (pages rewritten every pass, with counters the checker reads: they compress) and one filling random data (it does not). */
async function source(): Promise<Guest> {
  const g = await guest({
    ram: 6 * MiB,
    vcpus: [
      { kind: 'sweep', pages: 512, sweepsPerSec: 10 },
      { kind: 'fill', firstPage: 512, data: 'random', fraction: 0.5 },
    ],
  });
  await g.cont();
  await until('every vCPU to have written', () => g.pagesWritten > 1024, 10_000);
  return g;
}

const index = (m: MultifdCompression) => MULTIFD_COMPRESSION_CHOICES.indexOf(m);

/** The guest migrates on from each destination to the next (one guest for the file: each migration's first pass sends all it ever wrote). */
let current: Guest | null = null;

for (const method of ['none', 'zstd', 'lz4', 'zlib', 'auto'] as const) {
  for (const channels of [1, 2, 4]) {
    test(`${method} on ${channels} channel(s): every page lands as the source held it, in pass order; the figures count what was compressed`, async () => {
      const src = current ?? await source();
      const incoming = await listen('tcp');
      let arrived: Guest | null = null;
      let sameAtLoaded: boolean | null = null;
      incoming.on('guest', (d: Guest) => { arrived = d; });
      incoming.on('status', (to) => { if (to === 'loaded' && arrived !== null) sameAtLoaded = sameRam(arrived, src); });
      const m = Migration.start(src, incoming.uri, { downtimeLimitMs: 100, multifdChannels: channels, multifdCompression: index(method) }, { verify: true, multifd: true });
      const result = await m.done();
      assert.equal(result.status, 'completed', result.error ?? '');
      const dest = await incoming.done();
      assert.equal(dest.status, 'resumed', dest.error ?? '');
      const g = adopt(dest.guest)!;
      assert.equal(sameAtLoaded, true, 'destination RAM when loaded equals source RAM at the pause');
      assert.equal(dest.stats?.verified, true, 'the digests of what was sent and what landed agree');
      assert.equal(dest.stats?.channels, channels);
      assertSweeps(src, 'source at the pause');
      assertDirtyLogsReleased(src, `the source after ${method} on ${channels} channel(s)`);
      await g.pause();
      assertSweeps(g, 'destination');
      await g.cont();
      current = g;
      const c = result.stats.compression ?? null;
      if (method === 'none') {
        assert.equal(c, null, 'no compression figures without compression');
        return;
      }
      assert.ok(c !== null, 'compression figures');
      assert.equal(c.channels, channels);
      assert.ok(c.packets > 0 && c.busy > 0, `${c.busy} of ${c.packets} packets raw: the random pages`);
      if (method === 'auto') {
        assert.match(c.method, /^auto \((zstd|lz4|zlib)\)$/);
        assert.ok(c.why !== null && c.why.length > 0, 'auto says why');
        return;
      }
      assert.equal(c.method, method);
      assert.ok(c.pages > 0 && c.compressedSize > 0, `${c.pages} pages compressed into ${c.compressedSize} bytes`);
      assert.ok(c.compressionRate > 2, `the swept pages compress (rate ${c.compressionRate})`);
      assert.ok(c.compressedSize < c.pages * 4096, 'compressed is smaller than raw');
    });
  }
}
