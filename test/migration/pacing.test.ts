import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MAINLOOP_TICK_MS, STEP_NS, createPacer, type PacerHost } from '../../src/migration/pacing.js';
import { DEFAULT_PARAMETERS, withParameters, type MigrationParameters } from '../../src/migration/parameters.js';
import { SLOT_BYTES } from '../../src/wire/frame-writer.js';
import { fileLimit } from '../waits.js';

fileLimit(import.meta.url, 60_000);

/** A host that records what the pacer asked for; its sleeps end at once. */
function host(parameters: { value: MigrationParameters }, busyNs = 0): PacerHost & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    parameters: () => parameters.value,
    figures: { busyNs, capSleepNs: 0 },
    flush: () => calls.push('flush'),
    heldBack: () => calls.push('held back'),
    waitRoom: async (bytes) => { calls.push(`room ${bytes}`); },
    sleep: async (ms) => { calls.push(`sleep ${ms}`); },
  };
}

test('the mainloop pacer reads its step cap and zero-page charge from the live parameters, and steps once per 100 ms tick', async () => {
  const p = { value: withParameters(DEFAULT_PARAMETERS, { mainloopStepCapMs: 50, zeroPageBudgetBytes: 9 }) };
  const h = host(p);
  const pacer = createPacer('mainloop', h);
  assert.equal(pacer.zeroPageBudgetBytes(), 9);
  assert.equal(pacer.stepNs(), 50e6);
  p.value = withParameters(p.value, { mainloopStepCapMs: 15, zeroPageBudgetBytes: 0 }); // set-parameters during the migration
  assert.equal(pacer.stepNs(), 15e6);
  assert.equal(pacer.zeroPageBudgetBytes(), 0);
  p.value = withParameters(p.value, { mainloopStepCapMs: 0 });
  assert.equal(pacer.stepNs(), Infinity, '0: no cap');
  await pacer.between('blocked', false);
  await pacer.between('time', false);
  assert.deepEqual(h.calls, ['flush', `sleep ${MAINLOOP_TICK_MS}`, `sleep ${MAINLOOP_TICK_MS}`]);
});

test('the thread pacer waits for room when blocked, and sleeps what the CPU-share cap owes', async () => {
  const p = { value: withParameters(DEFAULT_PARAMETERS, { cpuSharePercent: 50, mainloopStepCapMs: 50, zeroPageBudgetBytes: 9 }) };
  const h = host(p, 1e9); // 1 s busy since setup
  const pacer = createPacer('thread', h);
  assert.equal(pacer.zeroPageBudgetBytes(), 0, 'ferry sends zero runs');
  assert.equal(pacer.stepNs(), STEP_NS, 'the mainloop cap does not apply');
  pacer.start();
  await pacer.between('blocked', false);
  assert.deepEqual(h.calls.splice(0), ['held back', 'flush', `room ${SLOT_BYTES}`]);
  await pacer.between('budget', false);
  assert.equal(h.calls[0], 'flush');
  const slept = Number(/^sleep (.*)$/.exec(h.calls[1])![1]);
  assert.ok(slept > 1500 && slept <= 2000, `1 s busy at a 50 % share needs 2 s since setup (slept ${slept} ms)`);
  h.calls.length = 0;
  await pacer.between('time', true);
  assert.deepEqual(h.calls, ['flush'], 'the switchover pass only yields');
});
