import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, test } from 'node:test';
import { InvalidArgumentError } from '../../src/errors.js';
import { Guest } from '../../src/guest/guest.js';
import { VcpuControl, newControlBuffer } from '../../src/guest/vcpu-control.js';
import type { VcpuMessage } from '../../src/guest/vcpu-messages.js';
import { prepareVcpuThreads, spareVcpuThreads, takeVcpuThread } from '../../src/guest/vcpu-threads.js';
import type { WorkloadSpec } from '../../src/guest/workloads/index.js';
import { RamBlock } from '../../src/memory/ram-block.js';
import { rebuildError } from '../../src/serialized-error.js';
import { checkSweep } from '../../src/guest/sweep-checker.js';
import type { SweepState } from '../../src/guest/workloads/sweep.js';
import { bounded, fileLimit, until } from '../waits.js';

fileLimit(import.meta.url, 60_000);

const MiB = 1024 * 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const guests: Guest[] = [];
async function guest(...args: Parameters<typeof Guest.create>): Promise<Guest> {
  const g = await Guest.create(...args);
  guests.push(g);
  return g;
}
after(async () => {
  await Promise.all(guests.map((g) => g.destroy()));
});

test('a guest starts in prelaunch (or inmigrate) with its vCPUs started and waiting', async () => {
  const g = await guest({ ram: 8 * MiB, vcpus: [{ kind: 'sweep' }, { kind: 'idle' }] });
  assert.equal(g.runState, 'prelaunch');
  assert.equal(g.vcpuCount, 2);
  assert.equal(g.pagesWritten, 0);
  const d = await guest({ ram: 8 * MiB, incoming: true });
  assert.equal(d.runState, 'inmigrate');
  await assert.rejects(d.cont(), { code: 'ERR_FERRY_INVALID_STATE', message: /waiting for an incoming migration/ });
});

test('no vCPU writes after pause() resolves, with a full-speed sweep on two vCPUs', async () => {
  const g = await guest({ ram: 16 * MiB, vcpus: [{ kind: 'sweep', pages: 2048 }, { kind: 'sweep', firstPage: 2048 }] });
  const client = g.blocks[0].log.register();
  const out = new Int32Array(g.blocks[0].pages / 32);
  for (let i = 0; i < 10; i++) {
    await g.cont();
    await sleep(5 + i);
    await g.pause();
    client.syncAndTake(0, g.blocks[0].pages, out);
    const written = g.pagesWritten;
    const snapshot = g.blocks[0].bytes.slice();
    await sleep(20);
    g.blocks[0].log.sync();
    assert.equal(client.dirtyPages, 0, `round ${i}: no page marked after the pause resolved`);
    assert.equal(g.pagesWritten, written, `round ${i}: no page counted after the pause resolved`);
    assert.equal(Buffer.compare(snapshot, g.blocks[0].bytes), 0, `round ${i}: RAM unchanged while paused`);
    for (const s of g.vcpuStates()) {
      const check = checkSweep(g.memory, s.workload as SweepState);
      assert.ok(check.ok, check.errors.join('\n'));
    }
  }
  assert.ok(g.pagesWritten > 0);
});

test('throttle: each vCPU sleeps the asked share of its slices, by its own accounting', async () => {
  const g = await guest({ ram: 8 * MiB, vcpus: [{ kind: 'sweep' }] });
  await g.cont();
  await sleep(100);
  await g.pause();
  assert.equal(g.vcpuStats()[0].throttleNs, 0, 'no throttle: no throttle sleep');
  const before = g.vcpuStats()[0];
  g.throttle(60);
  await g.cont();
  await sleep(400);
  await g.pause();
  const s = g.vcpuStats()[0];
  const busy = s.busyNs - before.busyNs;
  const idle = s.idleNs - before.idleNs;
  const asked = s.throttleAskedNs - before.throttleAskedNs;
  const slept = s.throttleNs - before.throttleNs;
  // Every slice asks for 60 % of its wall time as sleep (QEMU's throttle: working or idle), but the last, cut
  // short by the pause, may ask for none. A slice's wall time is its work and idle wait plus the loop's own
  // few instructions between steps, which no stat counts: so the share comes out at 60 % or a little above.
  const share = asked / (busy + idle + asked);
  assert.ok(share > 0.5 && share <= 0.61, `throttle share asked ${share.toFixed(3)} for 60 %`);
  // A sleep ends on time or late (a loaded machine), never early; only the last, one slice's worth, may be
  // cut short by the pause.
  assert.ok(slept >= asked / 2, `slept ${slept / 1e6} ms of the ${asked / 1e6} ms asked`);
  assert.ok(s.guestNs - before.guestNs >= busy + slept - 1e6, 'the guest clock runs while throttled');
  assert.throws(() => g.throttle(100), { code: 'ERR_FERRY_INVALID_ARGUMENT', message: /\[0, 99\]/ });
});

test('the guest clock stops while paused', async () => {
  const g = await guest({ ram: 8 * MiB, vcpus: [{ kind: 'idle', intervalMs: 5 }] });
  await g.cont();
  await until('the guest clock to pass 30 ms while running', () => g.vcpuStats()[0].guestNs > 30e6, 10_000);
  await g.pause();
  const t = g.vcpuStates()[0].guestNs;
  await sleep(100);
  const from = performance.now();
  await g.cont();
  await g.pause();
  const ranMs = performance.now() - from;
  const t2 = g.vcpuStates()[0].guestNs;
  // Between the two pauses the guest ran at most `ranMs` of wall time; the 100 ms paused before it never count.
  assert.ok(t2 - t <= (ranMs + 1) * 1e6, `clock did not count the 100 ms pause (${(t2 - t) / 1e6} ms in ${ranMs.toFixed(1)} ms of running)`);
});

test('a pause that is not acknowledged in time is undone and reported', async () => {
  const g = await guest({ ram: 8 * MiB, vcpus: [{ kind: 'sweep' }] });
  await g.cont();
  let timeouts = 0;
  for (let i = 0; i < 50 && timeouts === 0; i++) {
    try {
      await g.pause('paused', { timeoutMs: 0.001 });
      await g.cont();
    } catch (err) {
      assert.equal((err as { code: string }).code, 'ERR_FERRY_TIMEOUT');
      assert.match((err as Error).message, /did not acknowledge the pause within 0.001 ms/);
      timeouts++;
    }
  }
  assert.equal(timeouts, 1, 'a 1 us pause deadline was missed at least once in 50 tries');
  assert.equal(g.runState, 'running');
  const written = g.pagesWritten;
  await until('the vCPUs to write again after the failed pause', () => g.pagesWritten > written, 10_000);
  await assert.rejects(g.pause('paused', { timeoutMs: -1 }), { message: /pause timeout must be a number of milliseconds/ });
  assert.equal(g.runState, 'running');
  await g.pause();
});

test('RAM API writes are refused while paused and marked while running', async () => {
  const g = await guest({ ram: 8 * MiB, vcpus: [] });
  g.ram.write(4096 * 3, Uint8Array.of(1)); // prelaunch: allowed
  await g.cont();
  g.ram.update(4096 * 9, 10, (v) => v.fill(2));
  await g.stop();
  assert.throws(() => g.ram.write(0, Uint8Array.of(1)), { code: 'ERR_FERRY_INVALID_STATE', message: /refused while the guest is paused/ });
  assert.throws(() => g.ram.update(0, 1, () => {}), { code: 'ERR_FERRY_INVALID_STATE' });
  g.blocks[0].log.sync();
  assert.equal(g.blocks[0].log.everWrittenCount, 2);
  assert.ok(g.blocks[0].log.isEverWritten(3) && g.blocks[0].log.isEverWritten(9));
  assert.deepEqual([...g.ram.read(4096 * 9, 3)], [2, 2, 2]);
});

test('bad guest arguments get clear errors', async () => {
  await assert.rejects(Guest.create({ ram: -4096 }), { message: /positive integer/ });
  await assert.rejects(Guest.create({ ram: 5000 }), { message: /not a multiple of the 4096-byte page/ });
  await assert.rejects(Guest.create({ ram: 8 * MiB, vcpus: [{ kind: 'nope' } as never] }), { message: /unknown workload "nope"/ });
  await assert.rejects(Guest.create({ ram: 8 * MiB, vcpus: [{ kind: 'stress', rateMiBps: -5 }] }), { message: /rateMiBps must be a number in \(0, / });
  await assert.rejects(Guest.create({ ram: 8 * MiB, vcpus: [{ kind: 'sweep', sweepsPerSec: 0 }] }), { message: /sweepsPerSec/ });
  await assert.rejects(Guest.create({ ram: 8 * MiB, vcpus: [{ kind: 'sweep', pages: 1e9 }] }), { message: /sweep: pages must be an integer/ });
  await assert.rejects(Guest.create({ ram: [{ name: 'a', size: 4096 }, { name: 'a', size: 4096 }] }), { message: /used twice/ });
  await assert.rejects(Guest.create({ ram: 8 * MiB, vcpus: [{ kind: 'fill', data: 'gold' as never }] }), { message: /fill: data must be one of zero, random, text/ });
});

test('device sections save and load with version checks', async () => {
  const g = await guest({ ram: 4 * MiB, vcpus: [] });
  let value = 'before';
  g.devices.register({
    name: 'app/state', version: 3, minVersion: 2,
    save: () => new TextEncoder().encode(value),
    load: (data) => { value = new TextDecoder().decode(data); },
  });
  assert.throws(() => g.devices.register({ name: 'app/state', version: 1, save: () => new Uint8Array(), load: () => {} }), /already registered/);
  assert.throws(() => g.devices.register({ name: 'x', version: 1, minVersion: 2, save: () => new Uint8Array(), load: () => {} }), /minVersion <= version/);
  const [saved] = g.devices.saveAll();
  assert.equal(saved.version, 3);
  value = 'changed';
  g.devices.load(saved);
  assert.equal(value, 'before');
  assert.throws(() => g.devices.load({ ...saved, version: 1 }), { message: /version 1, expected 2\.\.3/ });
  assert.throws(() => g.devices.load({ ...saved, name: 'other' }), { message: /unknown device section "other"/ });
});

test('vCPU threads started ahead of need are taken by the next guest, which runs as any other', async () => {
  prepareVcpuThreads(2);
  assert.equal(spareVcpuThreads(), 2);
  const g = await guest({ ram: 4 * 1024 * 1024, vcpus: [{ kind: 'sweep', firstPage: 0, pages: 512, sweepsPerSec: 50 }, { kind: 'sweep', firstPage: 512, pages: 512, sweepsPerSec: 50 }] });
  assert.equal(spareVcpuThreads(), 0, 'both spares were taken');
  await g.cont();
  await new Promise((r) => setTimeout(r, 50));
  await g.pause();
  assert.ok(g.pagesWritten > 0, 'the spare threads run the workload');
  for (const s of g.vcpuStates()) assert.ok(checkSweep(g.memory, s.workload as SweepState).ok);
});

test('a vCPU thread that fails reports its error, rebuilt on the main thread as its class with its stack', { timeout: 30_000 }, async () => {
  const block = RamBlock.create('ram0', MiB);
  const control = new VcpuControl(newControlBuffer());
  const worker = takeVcpuThread({ index: 3, control: control.buffer, ram: [block.toShared()], workload: { kind: 'teleport' } as unknown as WorkloadSpec });
  try {
    const [m] = (await bounded('the failing vCPU thread\'s message', once(worker, 'message'), 20_000)) as [VcpuMessage];
    assert.equal(m.index, 3);
    if (m.type !== 'failed') throw new Error(`expected a failure, got ${m.type}`);
    const err = rebuildError(m.error);
    assert.ok(err instanceof InvalidArgumentError, `rebuilt as its class: ${err.name}`);
    assert.equal(err.code, 'ERR_FERRY_INVALID_ARGUMENT');
    assert.match(err.message, /unknown workload "teleport"/);
    assert.match(err.stack ?? '', /vcpu-loop\.js/, 'the stack is where the vCPU threw');
  } finally {
    await worker.terminate();
  }
});
