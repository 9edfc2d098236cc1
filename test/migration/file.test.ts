import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { IncomingMigration } from '../../src/migration/incoming.js';
import { Migration } from '../../src/migration/migration.js';
import { MiB, adopt, assertSweeps, destroyAll, guest, sleep } from './helpers.js';
import { fileLimit } from '../waits.js';

fileLimit(import.meta.url, 300_000);

after(destroyAll);
const dir = mkdtempSync(join(tmpdir(), 'ferry-file-'));

test('a live save to file is bounded, leaves the source paused, and restores into a guest that runs on', async () => {
  const src = await guest({ ram: 16 * MiB, vcpus: [{ kind: 'sweep', sweepsPerSec: 20 }] });
  await src.cont();
  await sleep(100);
  const path = join(dir, 'guest.ferry');
  const r = await Migration.start(src, `file:${path}`, {}, { verify: true }).done();
  assert.equal(r.status, 'completed', r.error ?? '');
  assert.equal(src.runState, 'postmigrate', 'the source stays paused after a save');
  assert.ok(statSync(path).size <= 2 * 16 * MiB + 1024 * 1024, 'the file holds at most RAM twice over');
  assert.equal(r.stats.passes.length, 1, 'one live pass');

  const restore = await IncomingMigration.listen(`file:${path}`);
  const result = await restore.done();
  assert.equal(result.status, 'resumed', result.error ?? '');
  assert.equal(result.stats?.verified, true);
  const g = adopt(result.guest)!;
  await sleep(30);
  await g.pause();
  assertSweeps(g, 'restored guest after running on');
});

test('a save can resume the source afterwards; a truncated file never resumes', async () => {
  const src = await guest({ ram: 8 * MiB, vcpus: [{ kind: 'sweep', sweepsPerSec: 20 }] });
  await src.cont();
  const path = join(dir, 'resume.ferry');
  const r = await Migration.start(src, `file:${path}`, {}, { resumeAfterSave: true }).done();
  assert.equal(r.status, 'completed');
  assert.equal(src.runState, 'running');
  const truncated = join(dir, 'truncated.ferry');
  const { readFileSync } = await import('node:fs');
  writeFileSync(truncated, readFileSync(path).subarray(0, statSync(path).size - 100));
  const restore = await IncomingMigration.listen(`file:${truncated}`);
  const result = await restore.done();
  assert.equal(result.status, 'failed');
  assert.equal(result.guest, null);
  assert.match(result.error ?? '', /ended before the migration completed/);
  await assert.rejects(IncomingMigration.listen(`file:${join(dir, 'missing.ferry')}`), /ENOENT/);
});

test('a save to a file that cannot be written fails and the source resumes', async () => {
  const src = await guest({ ram: 4 * MiB, vcpus: [{ kind: 'idle' }] });
  await src.cont();
  const r = await Migration.start(src, `file:${join(dir, 'no-such-dir', 'x.ferry')}`).done();
  assert.equal(r.status, 'failed');
  assert.match(r.error ?? '', /ENOENT/);
  assert.equal(src.runState, 'running');
});

test('a save to a full device (/dev/full) fails with ENOSPC; the source runs on intact', async () => {
  const src = await guest({ ram: 8 * MiB, vcpus: [{ kind: 'sweep', sweepsPerSec: 20 }] });
  await src.cont();
  const r = await Migration.start(src, 'file:/dev/full').done();
  assert.equal(r.status, 'failed');
  assert.match(r.error ?? '', /writing \/dev\/full failed: ENOSPC/);
  assert.equal(src.runState, 'running');
  await src.pause();
  assertSweeps(src, 'source after /dev/full');
});

/** A small tmpfs (root only): the disk fills partway through the save. */
function smallDisk(bytes: number): string | null {
  const mnt = mkdtempSync(join(tmpdir(), 'ferry-full-'));
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes}`, 'tmpfs', mnt]);
  return r.status === 0 ? mnt : null;
}

test('a disk that fills up during a save: the save fails with ENOSPC, the source runs on intact, the partial file never resumes', async (t) => {
  const mnt = smallDisk(6 * MiB);
  if (mnt === null) {
    t.skip('mounting a small tmpfs needs root');
    return;
  }
  try {
    for (const resumeAfterSave of [false, true]) {
      const src = await guest({ ram: 16 * MiB, vcpus: [{ kind: 'fill' }, { kind: 'sweep', sweepsPerSec: 20 }] });
      await src.cont();
      await sleep(200);
      const path = join(mnt, `guest-${resumeAfterSave}.ferry`);
      const r = await Migration.start(src, `file:${path}`, {}, { resumeAfterSave }).done();
      assert.equal(r.status, 'failed');
      assert.equal(r.afterGo, false);
      assert.match(r.error ?? '', /ENOSPC/);
      assert.equal(src.runState, 'running', 'nobody can restore a partial save: the source runs on');
      await src.pause();
      assertSweeps(src, 'source after the disk filled');
      const restore = await IncomingMigration.listen(`file:${path}`);
      const result = await restore.done();
      assert.equal(result.status, 'failed');
      assert.equal(result.guest, null);
      rmSync(path);
    }
  } finally {
    spawnSync('umount', [mnt]);
  }
});
