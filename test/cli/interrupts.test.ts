/**
 * Signals on the processes that hold a guest or children (issue 12 items
 * 4, 6 and 7): `ferry run --migrate-to` cancels before GO and refuses past
 * GO; an interrupted `ferry demo` leaves no child process and no temporary
 * directory, nor does an interrupted `ferry bench` leave its scenario's; plain `ferry incoming` runs the arrived guest until Ctrl-C;
 * the command line refuses to replace a file with a socket. Checked as the
 * fault matrix checks: the source is intact before GO, and one copy runs.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Guest } from '../../src/guest/guest.js';
import type { IncomingMigration } from '../../src/migration/incoming.js';
import { Migration } from '../../src/migration/migration.js';
import { HeldLink } from '../migration/held-link.js';
import { MiB, RunLedger, adopt, assertSweeps, epochMs, guest, listen, sleep } from '../migration/helpers.js';
import { bounded, fileLimit, until } from '../waits.js';
import { cliTestDir, pidAlive, spawnFerry } from './ferry-process.js';

fileLimit(import.meta.url, 240_000);
const dir = cliTestDir('ferry-interrupts-');

/** A destination here that records whether its guest ever ran. */
async function destination(): Promise<{ incoming: IncomingMigration; ran: () => boolean; dest: () => Guest | null }> {
  const incoming = await listen('tcp');
  let ran = false;
  let destGuest: Guest | null = null;
  incoming.on('guest', (g) => {
    destGuest = adopt(g);
    g.on('runstate', (to) => { if (to === 'running') ran = true; });
  });
  return { incoming, ran: () => ran, dest: () => destGuest };
}

const SOURCE = ['run', '--ram', '16M', '--workload', 'sweep', '--rate', '10', '--seconds', '0.1'];

test('Ctrl-C on ferry run --migrate-to before GO cancels; the guest runs on, passes its check, and the process exits 130', async () => {
  const { incoming, ran } = await destination();
  const source = spawnFerry([...SOURCE, '--migrate-to', incoming.uri, '--downtime-limit', '1', '--max-bandwidth', '1M']);
  await until('pages to arrive at the destination', () => incoming.status === 'loading', 30_000);
  source.child.kill('SIGINT');
  assert.deepEqual(await source.exit('the source process to exit after SIGINT'), { code: 130, signal: null }, source.stderr());
  assert.match(source.stderr(), /ferry: SIGINT: cancelling the migration to tcp:127\.0\.0\.1:\d+/);
  assert.match(source.stdout(), /migration cancelled/);
  assert.match(source.stdout(), /sweep check: passed/, 'the source guest is intact');
  const r = await bounded('the destination to end', incoming.done(), 30_000);
  assert.equal(r.guest, null, 'the destination discarded the partial guest');
  assert.equal(ran(), false, 'the destination never ran it: one copy');
});

test('Ctrl-C on ferry run --migrate-to past GO is refused with a message; the migration completes; --force ends it at once', async () => {
  for (const force of [false, true]) {
    const { incoming, dest } = await destination();
    const link = await HeldLink.open(incoming.uri);
    try {
      const source = spawnFerry([...SOURCE, '--migrate-to', link.uri, '--switchover-timeout', '60000', ...(force ? ['--force'] : [])]);
      await until('the destination to run the guest, RESUMED held', () => dest()?.runState === 'running' && link.loadedPassed, 60_000);
      source.child.kill('SIGINT');
      if (force) {
        assert.deepEqual(await source.exit('the forced source to exit'), { code: 130, signal: null });
        assert.match(source.stderr(), /SIGINT with --force: ending now, past GO/);
      } else {
        await source.line(/ferry: SIGINT refused: the migration to tcp:127\.0\.0\.1:\d+ is past GO .* ending this process now could lose the guest/,
          'the source process to refuse SIGINT');
        assert.equal(source.alive(), true);
        link.release();
        assert.deepEqual(await source.exit('the source process to exit once the migration completed'), { code: 0, signal: null }, source.stderr());
        assert.match(source.stdout(), /migration completed/);
      }
      // Either way the destination holds the whole guest and runs it: the one copy.
      assert.equal(dest()!.runState, 'running');
      await dest()!.pause();
      assertSweeps(dest()!, `the destination (source ${force ? 'forced' : 'refused'})`);
    } finally {
      link.close();
    }
  }
});

test('ferry demo interrupted leaves no child process and no temporary directory', async () => {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    const demo = spawnFerry(['demo', '--ram', '16M', '--rate', '5']);
    const pids: number[] = [];
    try {
      const src = await demo.line(/^source: +pid \d+/, 'the demo to start its source process');
      const dst = await demo.line(/^destination: +pid \d+/, 'the demo to start its destination process');
      pids.push(Number(/pid (\d+)/.exec(src)![1]), Number(/pid (\d+)/.exec(dst)![1]));
      const tmp = /QMP unix:(.*)\/source\.qmp/.exec(src)![1];
      assert.equal(existsSync(tmp), true);
      demo.child.kill(signal);
      assert.deepEqual(await demo.exit(`the demo to exit after ${signal}`), { code: signal === 'SIGINT' ? 130 : 143, signal: null }, demo.stderr());
      assert.match(demo.stderr(), new RegExp(`ferry demo: ${signal}: stopping its guest processes and removing`));
      assert.deepEqual(pids.filter(pidAlive), [], 'no child process left');
      assert.equal(existsSync(tmp), false, 'no temporary directory left');
    } finally {
      for (const pid of pids.filter(pidAlive)) process.kill(pid, 'SIGKILL');
    }
  }
});

/** The processes whose parent is `pid`, and their command lines (from /proc). */
function childrenOf(pid: number): { pid: number; cmdline: string }[] {
  const out: { pid: number; cmdline: string }[] = [];
  for (const name of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) !== pid) continue;
      out.push({ pid: Number(name), cmdline: readFileSync(`/proc/${name}/cmdline`, 'utf8').replaceAll('\0', ' ') });
    } catch { /* exited meanwhile */ }
  }
  return out;
}

test('ferry bench interrupted stops the guest processes of its scenario and exits as the signal would', async () => {
  const bench = spawnFerry(['bench', '--smoke', '--only', 'idle', '--out', join(dir, 'bench.json'), '--report', join(dir, 'bench.html')]);
  let guests: number[] = [];
  try {
    guests = await until('the bench to start a scenario\'s source and destination', () => {
      assert.equal(bench.alive(), true, bench.stderr());
      const found = childrenOf(bench.child.pid!).filter((c) => / (run|incoming) .*--qmp /.test(c.cmdline)).map((c) => c.pid);
      return found.length === 2 && found;
    }, 120_000, 20);
    bench.child.kill('SIGTERM');
    assert.deepEqual(await bench.exit('the bench to exit after SIGTERM'), { code: 143, signal: null }, bench.stderr());
    assert.match(bench.stderr(), /ferry bench: SIGTERM: stopping the scenario's guest processes/);
    assert.deepEqual(guests.filter(pidAlive), [], 'no guest process left');
  } finally {
    for (const pid of guests.filter(pidAlive)) process.kill(pid, 'SIGKILL');
  }
});

test('plain ferry incoming runs the arrived guest until Ctrl-C, then checks it and exits 0; one copy runs', async () => {
  const dest = spawnFerry(['incoming', '--listen', 'tcp:127.0.0.1:0', '--json']);
  const listening = await dest.line(/"event":"listening"/, 'the destination to listen');
  const src = await guest({ ram: 16 * MiB, vcpus: [{ kind: 'sweep', sweepsPerSec: 10 }] });
  await src.cont();
  const ledger = new RunLedger();
  ledger.watch('source', src);
  const r = await bounded('the migration', Migration.start(src, (JSON.parse(listening) as { uri: string }).uri, { downtimeLimitMs: 300 }).done(), 60_000);
  assert.equal(r.status, 'completed');
  const running = JSON.parse(await dest.line(/"event":"running"/, 'the destination to run the guest')) as { atMs: number };
  // The old default stopped the guest 1 s after it arrived; now nothing but the user stops it.
  await sleep(2000);
  assert.equal(dest.alive(), true, 'the arrived guest still runs 2 s later');
  dest.child.kill('SIGINT');
  assert.deepEqual(await dest.exit('the destination to exit after SIGINT'), { code: 0, signal: null }, dest.stderr());
  ledger.add('destination', running.atMs, epochMs());
  const result = JSON.parse(dest.stdout().trim().split('\n').pop()!) as { event: string; status: string; check: boolean };
  assert.deepEqual([result.event, result.status, result.check], ['result', 'resumed', true]);
  assert.equal(src.runState, 'postmigrate');
  assert.equal(ledger.overlaps(), 0, 'never two copies running');
});

test('the command line refuses to replace a regular file with a socket, names it, and leaves it as it was', async () => {
  const file = join(dir, 'notes.txt');
  writeFileSync(file, 'keep me\n');
  for (const args of [['run', '--ram', '4M', '--qmp', `unix:${file}`], ['incoming', '--listen', `unix:${file}`]]) {
    const p = spawnFerry(args);
    assert.deepEqual(await p.exit(`ferry ${args[0]} to refuse`), { code: 2, signal: null });
    assert.match(p.stderr(), new RegExp(`${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} is a regular file; refusing to replace it`));
    assert.equal(readFileSync(file, 'utf8'), 'keep me\n');
  }
});
