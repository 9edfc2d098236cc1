/**
 * The figures a completed migration reports (issue 12 item 9): nothing is
 * left to send once the final pass has sent every dirty page, and that
 * pass's pages are reported apart, in the switchover record.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { GuestController } from '../../src/control/controller.js';
import { queryMigrate, type MigrateInfo } from '../../src/control/query-migrate.js';
import { MiB, adopt, destroyAll, guest, listen } from './helpers.js';
import { bounded, fileLimit } from '../waits.js';

fileLimit(import.meta.url, 120_000);
after(destroyAll);

test('a completed migration reports 0 remaining, and the final pass\'s pages apart', async () => {
  // A guest that rewrites its 256 pages 20 times a second, and a pass held to 1 MiB/s: the pass over
  // those pages takes about a second, long enough for the vCPU to run on a loaded machine, so pages are
  // left at the decision; a limit of a minute makes that decision a switchover, and the final pass sends them.
  const src = await guest({ ram: 4 * MiB, vcpus: [{ kind: 'sweep', pages: 256, sweepsPerSec: 20 }] });
  await src.cont();
  const incoming = await listen('tcp');
  const ctl = new GuestController(src);
  ctl.setParameters({ downtimeLimitMs: 60_000, maxBandwidthBytesPerSec: MiB });
  const m = ctl.migrate(incoming.uri);
  const result = await bounded('the migration to end', m.done(), 60_000);
  assert.equal(result.status, 'completed', result.error ?? '');
  adopt((await bounded('the destination to end', incoming.done(), 30_000)).guest);

  const last = result.stats.passes.at(-1)!;
  const sw = result.stats.switchover!;
  assert.ok(last.remainingPages > 0 && sw.pagesAtDecision > 0, `the guest left pages for the final pass (${last.remainingPages} after the last live pass)`);
  assert.ok(sw.finalPages >= sw.pagesAtDecision && sw.finalBytes > 0, `the final pass's own figures: ${sw.finalPages} pages, ${sw.finalBytes} bytes`);
  assert.equal(result.stats.remainingBytes, 0, 'nothing remains once the final pass has sent every dirty page');
  const info = queryMigrate(ctl) as MigrateInfo;
  assert.equal(info.status, 'completed');
  assert.equal(info.ram?.remaining, 0, 'query-migrate: remaining 0 at completion');
  assert.equal(info['x-ferry-switchover']?.finalPages, sw.finalPages, 'query-migrate: the final pass\'s pages, apart');
});
