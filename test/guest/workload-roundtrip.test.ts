import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { Guest } from '../../src/guest/guest.js';
import { checkSweep } from '../../src/guest/sweep-checker.js';
import { restoreWorkload, type WorkloadSpec, type WorkloadState } from '../../src/guest/workloads/index.js';
import type { SweepState } from '../../src/guest/workloads/sweep.js';
import { GuestMemory } from '../../src/memory/guest-memory.js';
import { RamBlock } from '../../src/memory/ram-block.js';
import { fileLimit, until } from '../waits.js';

fileLimit(import.meta.url, 60_000);

const RAM = 32 * 1024 * 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const guests: Guest[] = [];
after(async () => {
  await Promise.all(guests.map((g) => g.destroy()));
});

/** What says how far a workload has got (everything but clocks and pacing). */
function progress(s: WorkloadState): string {
  const { kind } = s;
  switch (kind) {
    case 'idle': return `idle ${String(s.beats)}`;
    case 'stress': return `stress ${String(s.counter)} ${String(s.cursor)} ${String(s.rng)}`;
    case 'fill': return `fill ${String(s.phase)} ${String(s.cursor)}`;
    case 'sweep': return `sweep ${String(s.value)} ${String(s.position)}`;
    case 'read': return `read ${String(s.reads)} ${String(s.cursor)} ${String(s.sum)}`;
    case 'touch': return `touch ${String(s.done)} ${String(s.rng)}`;
  }
}

const cases: [string, WorkloadSpec][] = [
  ['idle', { kind: 'idle', intervalMs: 1, heartbeatPage: 7 }],
  ['stress, sequential', { kind: 'stress', order: 'sequential', firstPage: 100, pages: 3000 }],
  ['stress, random', { kind: 'stress', order: 'random', seed: 42 }],
  ['fill, random then zero', { kind: 'fill', data: 'random', thenZero: true, fraction: 1 }],
  ['fill, text', { kind: 'fill', data: 'text', fraction: 0.5 }],
  ['sweep', { kind: 'sweep', firstPage: 16 }],
  ['read', { kind: 'read', firstPage: 16, pages: 1000 }],
  ['touch', { kind: 'touch', firstPage: 8, pages: 5000, lane: 3, seed: 9 }],
];

for (const [name, spec] of cases) {
  test(`${name}: its state round-trips into a second guest, which continues exactly`, async () => {
    const a = await Guest.create({ ram: RAM, vcpus: [spec] });
    const b = await Guest.create({ ram: RAM, incoming: true });
    guests.push(a, b);
    await a.cont();
    await sleep(15);
    await a.pause();
    const [saved] = a.vcpuStates();
    const snapshot = a.blocks[0].bytes.slice();

    // The second guest takes RAM and vCPU state, runs on, pauses.
    b.blocks[0].write(0, snapshot);
    b.loadVcpuStates([saved]);
    await b.resume();
    await until('the second guest\'s clock to continue past the saved one', () => b.vcpuStats()[0].guestNs > saved.guestNs, 10_000);
    await b.pause();
    const [after] = b.vcpuStates();
    assert.ok(after.guestNs > saved.guestNs, 'the guest clock continued from the saved one');

    // Replaying the saved state on a copy of the RAM reaches the same bytes.
    const replica = new GuestMemory([RamBlock.create('ram0', RAM)]);
    replica.blocks[0].write(0, snapshot);
    const w = restoreWorkload(saved.workload, replica.totalPages);
    const target = progress(after.workload);
    for (let steps = 0; progress(w.save()) !== target; steps++) {
      assert.ok(steps < 20_000_000, `replay reached ${target}`);
      w.step(replica, after.guestNs + steps * 1e9, 1); // a clock far enough on for one page per step
    }
    assert.equal(Buffer.compare(replica.blocks[0].bytes, b.blocks[0].bytes), 0, 'destination RAM equals the replay');
    if (after.workload.kind === 'sweep') {
      const check = checkSweep(b.memory, after.workload as SweepState);
      assert.ok(check.ok, check.errors.join('\n'));
    }
    assert.notEqual(progress(after.workload), 'idle 0');
  });
}

test('a paced sweep migrated by hand keeps passing the checker on the second guest', async () => {
  const a = await Guest.create({ ram: RAM, vcpus: [{ kind: 'sweep', sweepsPerSec: 20 }] });
  const b = await Guest.create({ ram: RAM, incoming: true });
  guests.push(a, b);
  await a.cont();
  await sleep(120);
  await a.pause();
  b.blocks[0].write(0, a.blocks[0].bytes);
  b.loadVcpuStates(a.vcpuStateBytes());
  await b.resume();
  await sleep(120);
  await b.pause();
  const [s] = b.vcpuStates();
  const check = checkSweep(b.memory, s.workload as SweepState);
  assert.ok(check.ok, check.errors.join('\n'));
  assert.ok((s.workload as SweepState).value >= 2, 'the sweep went on for several passes');
});

test('a vCPU state that does not fit the guest is refused before any vCPU sees it', async () => {
  const a = await Guest.create({ ram: RAM, incoming: true });
  guests.push(a);
  assert.throws(() => a.loadVcpuStates([{ guestNs: 0, workload: { kind: 'sweep', first: 0, pages: 1e9, value: 0, position: 0, pacer: null } }]),
    { message: /sweep: pages must be an integer/ });
  assert.throws(() => a.loadVcpuStates([{ guestNs: 0, workload: { kind: 'warp' as never } }]), { message: /unknown workload "warp"/ });
  assert.throws(() => a.loadVcpuStates([]), { message: /got 0 vCPU states for 1 vCPUs/ });
});
