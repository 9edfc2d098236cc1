/**
 * The fault matrix: the destination process is killed (SIGKILL) at each
 * point of a migration, with random timing inside that point, several
 * times. Each run checks DESIGN.md invariants 3 and 6: before GO the
 * source runs again with its RAM intact (the sweep checker passes) and the
 * migration ends failed with a reason; after GO neither side resumes by
 * itself and one `cont` on the source, which holds the whole guest,
 * recovers it. (Invariant 6, one copy running, is watched in migrate.test.ts
 * where both ends are in reach; here the destination is gone before the
 * source runs again.) FERRY_FAULT_RUNS sets the runs per case.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Migration } from '../../src/migration/migration.js';
import { MiB, assertSweeps, destroyAll, guest, listen, sleep } from './helpers.js';

after(destroyAll);
const RUNS = Number(process.env.FERRY_FAULT_RUNS ?? 2);
const ferry = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const counts: Record<string, { runs: number; sourceIntact: number; clearReason: number; failedAfterGo: number; completedFirst: number }> = {};

async function destination(): Promise<{ child: ChildProcess; uri: string; exited: Promise<void> }> {
  const child = spawn(process.execPath, [ferry, 'incoming', '--listen', 'tcp:127.0.0.1:0', '--seconds', '10', '--json'], { stdio: ['ignore', 'pipe', 'ignore'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  for (let i = 0; i < 400 && !out.includes('\n'); i++) await sleep(10);
  return { child, uri: (JSON.parse(out.split('\n')[0]) as { uri: string }).uri, exited };
}

type Point = 'before the header' | 'mid pass' | 'during switchover, before LOADED' | 'between LOADED and GO' | 'after GO';

async function runCase(point: Point): Promise<void> {
  const c = (counts[point] ??= { runs: 0, sourceIntact: 0, clearReason: 0, failedAfterGo: 0, completedFirst: 0 });
  const src = await guest({ ram: 16 * MiB, vcpus: [{ kind: 'sweep', sweepsPerSec: 2 }] });
  await src.cont();
  const dest = await destination();
  const kill = () => dest.child.kill('SIGKILL');
  if (point === 'before the header') {
    kill();
    await dest.exited;
  }
  // Mid pass: a slow link (a 16 MiB pass takes ~1 s) and a limit it cannot meet; elsewhere, a guest that converges.
  const parameters = point === 'mid pass' ? { downtimeLimitMs: 1, maxBandwidthBytesPerSec: 16 * MiB } : { downtimeLimitMs: 300 };
  const m = Migration.start(src, dest.uri, { ...parameters, switchoverTimeoutMs: 3000 }, {
    onLoaded: point === 'between LOADED and GO' ? async () => { await sleep(Math.random() * 5); kill(); await dest.exited; } : undefined,
  });
  if (point === 'mid pass') m.once('stats', () => void sleep(Math.random() * 100).then(kill));
  if (point === 'during switchover, before LOADED') m.on('status', (s) => { if (s === 'device') kill(); });
  if (point === 'after GO') src.on('runstate', (to) => { if (to === 'postmigrate') void sleep(Math.random() * 3).then(kill); });
  const r = await m.done();
  await dest.exited.catch(() => {});
  c.runs++;
  if (r.status === 'completed' || (r.status === 'failed' && /destination|LOADED|RESUMED|connect/.test(r.error ?? ''))) c.clearReason++;
  if (point !== 'after GO') {
    assert.equal(r.status, 'failed', `${point}: ended ${r.status}`);
    assert.equal(r.afterGo, false);
    assert.equal(src.runState, 'running', `${point}: the source runs again`);
    await src.pause();
    assertSweeps(src, `source after the destination died ${point}`);
    c.sourceIntact++;
    return;
  }
  // After GO: the destination died holding the guest, or completed first (RESUMED arrived before the kill).
  if (r.status === 'completed') {
    c.completedFirst++;
    assert.equal(src.runState, 'postmigrate');
    c.sourceIntact++;
    return;
  }
  assert.equal(r.afterGo, true, `after GO: ${r.error}`);
  c.failedAfterGo++;
  assert.match(r.error ?? '', /after GO: the destination holds the guest; neither side resumes by itself/);
  assert.equal(src.runState, 'postmigrate', 'the source does not resume by itself');
  await src.cont(); // one cont on the side that holds the whole guest recovers it
  await sleep(20);
  await src.pause();
  assertSweeps(src, 'source recovered with cont after GO');
  c.sourceIntact++;
}

for (const point of ['before the header', 'mid pass', 'during switchover, before LOADED', 'between LOADED and GO', 'after GO'] as const) {
  test(`fault matrix: destination killed ${point} (${RUNS} runs)`, async () => {
    for (let i = 0; i < RUNS; i++) await runCase(point);
  });
}

test('fault matrix: a new migration to a fresh destination succeeds after a failed one', async () => {
  const src = await guest({ ram: 8 * MiB, vcpus: [{ kind: 'sweep', sweepsPerSec: 20 }] });
  await src.cont();
  const dead = await destination();
  const m = Migration.start(src, dead.uri, { downtimeLimitMs: 1 });
  m.once('stats', () => dead.child.kill('SIGKILL'));
  assert.equal((await m.done()).status, 'failed');
  const incoming = await listen('tcp');
  assert.equal((await Migration.start(src, incoming.uri).done()).status, 'completed');
  (await incoming.done()).guest?.destroy();
  console.log(`# fault matrix counts: ${JSON.stringify(counts)}`);
  for (const [point, c] of Object.entries(counts)) {
    assert.equal(c.sourceIntact, c.runs, `${point}: source intact in every run`);
    assert.equal(c.clearReason, c.runs, `${point}: a failure reason in every run`);
  }
});
