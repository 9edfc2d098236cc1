/**
 * The fault matrix: the destination process is killed (SIGKILL) at each
 * point of a migration, with random timing inside that point, several
 * times. Each run checks DESIGN.md invariants 3 and 6: before GO the
 * source runs again with its RAM intact (the sweep checker passes) and the
 * migration ends failed with a reason; after GO neither side resumes by
 * itself, a plain `cont` is refused, and one `cont` with the override
 * (`force`, QMP's `x-ferry-force`) on the source, which holds the whole
 * guest, recovers it. The source process killed: before GO the
 * destination discards what it loaded and never runs it; after GO it holds
 * the whole guest and runs on. Invariant 6 (one copy running) is checked in every
 * run on one clock: the destination process says when its guest started
 * running, the source's running intervals are watched here.
 * FERRY_FAULT_RUNS sets the runs per case.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { IncomingMigration } from '../../src/migration/incoming.js';
import { Migration } from '../../src/migration/migration.js';
import { MiB, RunLedger, adopt, assertDirtyLogsReleased, assertSweeps, destroyAll, epochMs, guest, listen, sleep } from './helpers.js';
import { bounded, fileLimit, until } from '../waits.js';

fileLimit(import.meta.url, 300_000 * Math.max(1, Number(process.env.FERRY_FAULT_RUNS ?? 2) / 2));

after(destroyAll);
const RUNS = Number(process.env.FERRY_FAULT_RUNS ?? 2);
const ferry = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const counts: Record<string, { runs: number; sourceIntact: number; clearReason: number; failedAfterGo: number; completedFirst: number; twoCopies: number }> = {};

/** Destination processes still alive: killed after the file, whatever failed. */
const children = new Set<ChildProcess>();
after(() => { for (const c of children) c.kill('SIGKILL'); });

/** A destination process; `ranFrom` is when its guest started running (it says so on stdout), `exitedAt` when it died. */
async function destination(): Promise<{ child: ChildProcess; uri: string; exited: Promise<void>; ranFrom: () => number | null; exitedAt: () => number }> {
  const child = spawn(process.execPath, [ferry, 'incoming', '--listen', 'tcp:127.0.0.1:0', '--seconds', '10', '--json'], { stdio: ['ignore', 'pipe', 'ignore'] });
  children.add(child);
  let out = '';
  let exitedAt = Infinity;
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  child.once('exit', () => { exitedAt = epochMs(); });
  const exited = new Promise<void>((r) => child.once('close', () => r()));
  await until('the destination process to print where it listens', () => out.includes('\n'), 30_000);
  const lines = () => out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { event: string; uri?: string; atMs?: number });
  const ranFrom = () => lines().find((l) => l.event === 'running')?.atMs ?? null;
  return { child, uri: lines()[0].uri!, exited, ranFrom, exitedAt: () => exitedAt };
}

type Point = 'before the header' | 'mid pass' | 'during switchover, before LOADED' | 'between LOADED and GO' | 'after GO';

async function runCase(point: Point): Promise<void> {
  counts[point] ??= { runs: 0, sourceIntact: 0, clearReason: 0, failedAfterGo: 0, completedFirst: 0, twoCopies: 0 };
  const c = counts[point];
  const src = await guest({ ram: 16 * MiB, vcpus: [{ kind: 'sweep', sweepsPerSec: 2 }] });
  await src.cont();
  const dest = await destination();
  const ledger = new RunLedger();
  ledger.watch('source', src);
  // Invariant 6, checked after every run whichever way it ended.
  const checkOneCopy = () => {
    const from = dest.ranFrom();
    if (from !== null) ledger.add('destination', from, dest.exitedAt());
    const overlaps = ledger.overlaps();
    c.twoCopies += overlaps > 0 ? 1 : 0;
    assert.equal(overlaps, 0, `${point}: two copies ran at once`);
  };
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
  const r = await bounded(`the migration to end (${point})`, m.done(), 60_000);
  await bounded(`the destination process to exit (${point})`, dest.exited, 30_000);
  c.runs++;
  if (r.status === 'completed' || (r.status === 'failed' && /destination|LOADED|RESUMED|connect/.test(r.error ?? ''))) c.clearReason++;
  if (point !== 'after GO') {
    assert.equal(r.status, 'failed', `${point}: ended ${r.status}`);
    assert.equal(r.afterGo, false);
    assertDirtyLogsReleased(src, point);
    assert.equal(src.runState, 'running', `${point}: the source runs again`);
    await src.pause();
    assertSweeps(src, `source after the destination died ${point}`);
    c.sourceIntact++;
    checkOneCopy();
    return;
  }
  // After GO: the destination died holding the guest, or completed first (RESUMED arrived before the kill).
  if (r.status === 'completed') {
    c.completedFirst++;
    assert.equal(src.runState, 'postmigrate');
    assert.notEqual(dest.ranFrom(), null, 'the destination said when its guest started running');
    c.sourceIntact++;
    checkOneCopy();
    return;
  }
  assert.equal(r.afterGo, true, `after GO: ${r.error}`);
  c.failedAfterGo++;
  assert.match(r.error ?? '', /after GO: the destination holds the guest; neither side resumes by itself/);
  assert.equal(src.runState, 'postmigrate', 'the source does not resume by itself');
  // Without the override, cont is refused: the destination might be running the guest (invariant 6).
  await assert.rejects(src.cont(), { code: 'ERR_FERRY_INVALID_STATE', message: /migrated away \(postmigrate\)/ });
  assert.equal(src.runState, 'postmigrate');
  // The destination process is known to be gone (killed above): one cont with the override on the side
  // that holds the whole guest recovers it.
  await src.cont({ force: true });
  await sleep(20);
  await src.pause();
  assertSweeps(src, 'source recovered with cont after GO');
  c.sourceIntact++;
  checkOneCopy();
}

for (const point of ['before the header', 'mid pass', 'during switchover, before LOADED', 'between LOADED and GO', 'after GO'] as const) {
  test(`fault matrix: destination killed ${point} (${RUNS} runs)`, async () => {
    for (let i = 0; i < RUNS; i++) await runCase(point);
  });
}

type SourcePoint = 'mid pass' | 'between LOADED and GO' | 'after GO';
const sourceCounts: Record<string, { runs: number; destinationDiscarded: number; destinationWhole: number; clearReason: number }> = {};

/** The source process (`ferry run --migrate-to`) is killed; the destination is here, watched. */
async function runSourceCase(point: SourcePoint): Promise<void> {
  sourceCounts[point] ??= { runs: 0, destinationDiscarded: 0, destinationWhole: 0, clearReason: 0 };
  const c = sourceCounts[point];
  const incoming = await IncomingMigration.listen('tcp:127.0.0.1:0');
  let ran = false;
  const limits = point === 'mid pass' ? ['--downtime-limit', '1', '--max-bandwidth', '16M'] : ['--downtime-limit', '300'];
  const source = spawn(process.execPath, [ferry, 'run', '--ram', '16M', '--workload', 'sweep', '--rate', '2', '--seconds', '0.2', '--migrate-to', incoming.uri, ...limits, '--json'], { stdio: 'ignore' });
  const kill = () => source.kill('SIGKILL');
  if (point === 'mid pass') incoming.on('status', (s) => { if (s === 'loading') void sleep(Math.random() * 300).then(kill); });
  if (point === 'between LOADED and GO') incoming.on('status', (s) => { if (s === 'loaded') kill(); }); // LOADED is not sent yet
  incoming.on('guest', (g) => g.on('runstate', (to) => {
    if (to !== 'running') return;
    ran = true;
    if (point === 'after GO') kill();
  }));
  const r = await incoming.done();
  await new Promise((resolve) => (source.exitCode !== null || source.signalCode !== null ? resolve(null) : source.once('exit', resolve)));
  c.runs++;
  if (point !== 'after GO') {
    assert.equal(r.status, 'failed', `source killed ${point}: the destination fails`);
    assert.match(r.error ?? '', /(the source closed the connection|connection to the source failed) before the migration completed/);
    c.clearReason++;
    assert.equal(r.guest, null, 'the partial guest is discarded');
    assert.equal(ran, false, 'the destination never ran on partial state');
    c.destinationDiscarded++;
    return;
  }
  // After GO the destination holds the whole guest and runs it on.
  assert.equal(r.status, 'resumed', `source killed after GO: ${r.error}`);
  c.clearReason++;
  const g = adopt(r.guest)!;
  await sleep(20);
  await g.pause();
  assertSweeps(g, 'destination after the source died past GO');
  c.destinationWhole++;
}

for (const point of ['mid pass', 'between LOADED and GO', 'after GO'] as const) {
  test(`fault matrix: source process killed ${point} (${RUNS} runs)`, async () => {
    for (let i = 0; i < RUNS; i++) await runSourceCase(point);
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
  console.log(`# fault matrix counts (destination killed): ${JSON.stringify(counts)}`);
  console.log(`# fault matrix counts (source killed): ${JSON.stringify(sourceCounts)}`);
  for (const [point, c] of Object.entries(counts)) {
    assert.equal(c.sourceIntact, c.runs, `${point}: source intact in every run`);
    assert.equal(c.clearReason, c.runs, `${point}: a failure reason in every run`);
    assert.equal(c.twoCopies, 0, `${point}: never two copies running`);
  }
  for (const [point, c] of Object.entries(sourceCounts)) {
    assert.equal(c.destinationDiscarded + c.destinationWhole, c.runs, `source killed ${point}: the destination discarded the partial guest or held the whole one`);
  }
});
