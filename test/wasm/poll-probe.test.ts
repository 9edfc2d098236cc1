/**
 * The poll probe (benchmark only, src/guest/poll-probe.ts): the recorder
 * times each stretch between polls with its sites, excludes what restart()
 * says is not running, and reports percentiles by count and by time; a
 * probed module calls the probe at every poll, names each site's function,
 * runs on ferry's runner with the figures filled in, and is never migrated.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { Guest } from '../../src/guest/guest.js';
import { CHECK_NS, newProbeBuffer, PollProbe, probeSiteNames, readProbe } from '../../src/guest/poll-probe.js';
import { Migration } from '../../src/migration/migration.js';
import { loadProgram } from '../../src/wasm/instrument.js';
import { bounded, fileLimit } from '../waits.js';
import { program, wat } from './harness.js';

fileLimit(import.meta.url, 60_000);

const dir = mkdtempSync(join(tmpdir(), 'ferry-wasm-probe-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('the recorder bounds each stretch between polls by CPU time, leaves out what restart() excludes, and keeps the longest with their sites', () => {
  let t = 0; // wall clock, ns
  let cpu = 0; // the process's CPU clock, ns
  let delay = 0; // the vCPU thread's time waiting on a run queue, ns
  const buffer = newProbeBuffer();
  const probe = new PollProbe(buffer, { wall: () => t, processCpu: () => cpu, thread: () => ({ cpu: t, runDelay: delay }) });
  probe.runStarts();
  const run = (ns: number) => { t += ns; cpu += ns; };
  // 99 stretches of 1 us; then one of 5 ms wall from site 7 to 8 in which the thread ran only 1 ms: it waited 4 ms
  // on a run queue while another thread of the process ran (so the process's CPU time does not tell);
  // a sleep of 1 s (not a stretch); one of 2 ms on the CPU throughout.
  for (let i = 0; i < 99; i++) {
    run(1_000);
    probe.hit(i === 98 ? 7 : 1);
  }
  run(1_000_000);
  t += 4_000_000;
  cpu += 4_000_000;
  delay += 4_000_000;
  probe.hit(8);
  t += 1e9;
  probe.restart();
  run(2_000_000);
  probe.hit(9);
  probe.runEnds();
  const f = readProbe(buffer);
  assert.equal(f.count, 101);
  assert.ok(f.p50Ns >= 1_000 && f.p50Ns < 1_100, `p50 ${f.p50Ns}`);
  const [first, second] = f.longest;
  assert.deepEqual(first, { ns: 2_000_000, wallNs: 2_000_000, from: -1, to: 9 });
  // The descheduled stretch counts its time on the CPU, bounded with at most CHECK_NS of what ran before it.
  assert.equal(second.wallNs, 5_000_000);
  assert.deepEqual([second.from, second.to], [7, 8]);
  assert.ok(second.ns >= 1_000_000 && second.ns <= 1_000_000 + CHECK_NS, `CPU bound ${second.ns}`);
  assert.equal(f.maxNs, 2_000_000);
  assert.ok(f.p99Ns >= second.ns && f.p99Ns < second.ns * 1.1, `p99 ${f.p99Ns}: the 100th of 101 stretches is the descheduled one`);
  // By time, the two long stretches hold 97 % of the run: a pause at a random moment waits up to 2 ms, p99.
  assert.ok(f.timeP99Ns >= 2_000_000 && f.timeP99Ns < 2_200_000, `time-weighted p99 ${f.timeP99Ns}`);
  assert.ok(f.overOneMs > 0.95 && f.overOneMs < 0.99, `share over 1 ms ${f.overOneMs}`);
  assert.equal(f.cpuPerWall, 1);
});

test('a probed module probes at every poll, names the sites, runs to its exit with figures, and is never migrated', async () => {
  const loops = 1000;
  const bytes = wat(program(`
    (func $work (param $n i32)
      (loop $again
        (i32.store (i32.const 0) (i32.add (i32.load (i32.const 0)) (i32.const 1)))
        (br_if $again (local.tee $n (i32.sub (local.get $n) (i32.const 1))))))
    (func (export "_start") (call $work (i32.const ${loops})))`, '1 4'));
  const options = { maxMemoryBytes: 4 * 65536, unwindBufferBytes: 4096 };
  const probed = await loadProgram(bytes, { ...options, steps: { probe: true } }, { dir: join(dir, 'cache') });
  assert.deepEqual(probed.partial, { marks: true, polls: true, asyncify: true, probe: true });
  assert.deepEqual(probeSiteNames(probed.module), ['work'], 'one poll, at the loop head of $work');
  const buffer = newProbeBuffer();
  const guest = await Guest.create({ program: { instrumented: probed, wasi: { args: ['t'], env: [], seed: 1n }, probe: buffer } });
  try {
    const exited = new Promise<number>((resolve) => guest.once('exit', resolve));
    await guest.cont();
    assert.equal(await bounded('the probed program to exit', exited, 20_000), 0);
    assert.equal(new DataView(guest.blocks[0].bytes.buffer).getInt32(0, true), loops);
    const f = readProbe(buffer);
    assert.equal(f.count, loops, 'a stretch from the start to the first poll, then between each two of the loop\'s');
    assert.ok(f.maxNs > 0 && f.longest.every((l) => (l.from === 0 || l.from === -1) && l.to === 0), JSON.stringify(f.longest));
    assert.throws(() => Migration.start(guest, 'tcp:127.0.0.1:1'), { code: 'ERR_FERRY_INVALID_ARGUMENT', message: /partially instrumented/ });
  } finally {
    await guest.destroy();
  }
});
