import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { Migration } from '../../src/migration/migration.js';
import { MiB, destroyAll, guest, sleep } from './helpers.js';
import { spySteps } from './step-spy.js';

after(destroyAll);

const dir = mkdtempSync(join(tmpdir(), 'ferry-params-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/**
 * A mainloop-mode save to file that cannot end by itself soon: a sweeping
 * guest of 16 MiB at 4 MiB/s takes seconds for its one live pass. Cancelled and
 * awaited by the caller.
 */
async function slowMainloopSave(name: string, parameters: Parameters<typeof Migration.start>[2], options: Parameters<typeof Migration.start>[3] = {}) {
  const src = await guest({ ram: 16 * MiB, vcpus: [{ kind: 'sweep', sweepsPerSec: 20 }] });
  await src.cont();
  // Every page written once, so that the one live pass has all of RAM to send.
  for (let i = 0; i < 1000 && src.pagesWritten < 2 * src.ramSize / 4096; i++) await sleep(10);
  assert.ok(src.pagesWritten >= 2 * src.ramSize / 4096, 'the guest wrote all of its RAM twice');
  return Migration.start(src, `file:${join(dir, name)}`, { maxBandwidthBytesPerSec: 4 * MiB, ...parameters }, { mode: 'mainloop', ...options });
}

const capped = (ms: number) => (s: { allowedNs: number }) => s.allowedNs <= ms * 1e6;

test('mainloopStepCapMs and zeroPageBudgetBytes given as parameters to Migration.start are honoured', async () => {
  const spy = spySteps();
  let m: Migration | null = null;
  try {
    m = await slowMainloopSave('start.ferry', { mainloopStepCapMs: 7, zeroPageBudgetBytes: 9 });
    const first = await spy.waitFor(() => true, 'at all');
    assert.ok(first.allowedNs <= 7e6, `the first step may run ${first.allowedNs} ns, for a 7 ms cap`);
    assert.equal(first.zeroPageBudgetBytes, 9);
  } finally {
    spy.restore();
    m?.cancel();
    await m?.done();
  }
});

test('the same, given as MigrationOptions (their older place), are still honoured', async () => {
  const spy = spySteps();
  let m: Migration | null = null;
  try {
    m = await slowMainloopSave('options.ferry', {}, { mainloopStepCapMs: 7, zeroPageBudgetBytes: 9 });
    const first = await spy.waitFor(() => true, 'at all');
    assert.ok(first.allowedNs <= 7e6, `the first step may run ${first.allowedNs} ns, for a 7 ms cap`);
    assert.equal(first.zeroPageBudgetBytes, 9);
  } finally {
    spy.restore();
    m?.cancel();
    await m?.done();
  }
});

test('mainloop parameters changed during a migration take effect at its next steps', async () => {
  const spy = spySteps();
  let m: Migration | null = null;
  try {
    m = await slowMainloopSave('live.ferry', {});
    const first = await spy.waitFor(() => true, 'at all');
    assert.equal(first.allowedNs, Infinity, 'no cap at first');
    assert.equal(m.status, 'active');
    m.setParameters({ mainloopStepCapMs: 7, zeroPageBudgetBytes: 9 });
    await spy.waitFor(capped(7), 'capped at 7 ms after set-parameters', 5);
    await spy.waitFor((s) => s.zeroPageBudgetBytes === 9, 'charging 9 bytes per zero page after set-parameters', 5);
  } finally {
    spy.restore();
    m?.cancel();
    await m?.done();
  }
});
