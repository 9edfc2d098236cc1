import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { Migration } from '../../src/migration/migration.js';
import { CAPABILITY_TABLE, defaultCapabilities } from '../../src/migration/capabilities.js';
import {
  DEFAULT_DESTINATION_PARAMETERS, DEFAULT_PARAMETERS, PARAMETER_TABLE, checkParameter, parameterRows, withParameters,
  type ParameterKey, type ParameterRow,
} from '../../src/migration/parameters.js';
import { until, fileLimit } from '../waits.js';
import { MiB, destroyAll, guest } from './helpers.js';
import { spySteps } from './step-spy.js';

fileLimit(import.meta.url, 120_000);
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
  // Every page written, so that the one live pass has all of RAM to send.
  await until('the guest to write all of its RAM twice', () => src.pagesWritten >= (2 * src.ramSize) / 4096, 30_000);
  return Migration.start(src, `file:${join(dir, name)}`, { maxBandwidthBytesPerSec: 4 * MiB, ...parameters }, { mode: 'mainloop', ...options });
}

const ROWS = Object.entries(PARAMETER_TABLE) as [ParameterKey, ParameterRow][];
/** STYLE.md habit 8: the unit is in the name (a switch has none). */
const UNIT_SUFFIX: Record<ParameterRow['unit'], RegExp> = {
  ms: /Ms$/, bytes: /Bytes$/, 'bytes/s': /BytesPerSec$/, percent: /Percent$/, bool: /^(?!.*(Ms|Bytes|BytesPerSec|Percent)$)/, 'MB/s': /MBPerSec$/,
  count: /(Channels|Threads|Level)$/, // what is counted is the unit
  choice: /^(?!.*(Ms|Bytes|BytesPerSec|Percent)$)/, // a name, no unit
};

test('every parameter row: its unit in its name, its default in its range, a side, and names that are unique', () => {
  for (const [key, row] of ROWS) {
    assert.match(key, UNIT_SUFFIX[row.unit], `${key} is in ${row.unit}`);
    assert.ok(Number.isSafeInteger(row.default) && row.min <= row.default && row.default <= row.max, `${key}: default ${row.default} in [${row.min}, ${row.max}]`);
    assert.ok(Object.keys(row.sides).length > 0, `${key} applies to some side`);
    assert.ok(row.origin.length > 0, `${key} says where its default comes from`);
    if (row.flagUnit === 's') assert.equal(row.unit, 'ms', `${key}: a flag in seconds is for a row in ms`);
  }
  const qmp = ROWS.flatMap(([, row]) => (row.qmp === null ? [] : [row.qmp]));
  assert.equal(new Set(qmp).size, qmp.length, 'QMP names are unique');
  for (const side of ['source', 'destination'] as const) {
    const flags = parameterRows(side).flatMap(([, row]) => (row.flag === null ? [] : [row.flag]));
    assert.equal(new Set(flags).size, flags.length, `${side} flags are unique`);
  }
});

test('the defaults of each side are its rows\' defaults, in table order', () => {
  const expect = (side: 'source' | 'destination') => Object.fromEntries(ROWS.filter(([, row]) => row.sides[side] !== undefined).map(([key, row]) => [key, row.default]));
  assert.deepEqual({ ...DEFAULT_PARAMETERS }, expect('source'));
  assert.deepEqual(Object.keys(DEFAULT_PARAMETERS), Object.keys(expect('source')));
  assert.deepEqual({ ...DEFAULT_DESTINATION_PARAMETERS }, expect('destination'));
  assert.ok(Object.isFrozen(DEFAULT_PARAMETERS) && Object.isFrozen(DEFAULT_DESTINATION_PARAMETERS));
  assert.deepEqual(defaultCapabilities(), Object.fromEntries(Object.entries(CAPABILITY_TABLE).map(([name, row]) => [name, row.default])));
});

test('the validator names the parameter as its caller knows it, and what was wrong', () => {
  assert.throws(() => checkParameter('downtimeLimitMs', 0, "Parameter 'downtime-limit'"), { message: "Parameter 'downtime-limit' must be an integer in [1, 2000000], got 0" });
  assert.throws(() => checkParameter('maxFrameBytes', 4096, 'maxFrameBytes'), { message: 'maxFrameBytes must be an integer of at least 1048580, got 4096' });
  assert.throws(() => checkParameter('cpuSharePercent', '50', 'x'), { message: 'x must be an integer in [1, 100], got "50"' });
  assert.throws(() => checkParameter('cpuSharePercent', 50.5, 'x'), /got 50.5/);
  assert.equal(checkParameter('cpuSharePercent', 50, 'x'), 50);
  // withParameters keeps to its base's side.
  assert.throws(() => withParameters(DEFAULT_PARAMETERS, { maxGuestBytes: 1 }), /unknown migration parameter "maxGuestBytes"; known: downtimeLimitMs, /);
  assert.throws(() => withParameters(DEFAULT_DESTINATION_PARAMETERS, { downtimeLimitMs: 1 }), /unknown migration parameter "downtimeLimitMs"; known: maxGuestBytes, maxFrameBytes, idleTimeoutMs, prealloc, preallocThreads$/);
  assert.equal(withParameters(DEFAULT_DESTINATION_PARAMETERS, { maxGuestBytes: 4096, idleTimeoutMs: undefined }).maxGuestBytes, 4096);
});

const capped = (ms: number) => (s: { allowedNs: number }) => s.allowedNs <= ms * 1e6;

// Given as parameters to Migration.start, or as MigrationOptions (their older place): both are honoured.
for (const [where, file, parameters, options] of [
  ['as parameters to Migration.start', 'start.ferry', { mainloopStepCapMs: 7, zeroPageBudgetBytes: 9 }, {}],
  ['as MigrationOptions (their older place)', 'options.ferry', {}, { mainloopStepCapMs: 7, zeroPageBudgetBytes: 9 }],
] as const) {
  test(`mainloopStepCapMs and zeroPageBudgetBytes given ${where} are honoured`, async () => {
    const spy = spySteps();
    let m: Migration | null = null;
    try {
      m = await slowMainloopSave(file, parameters, options);
      const first = await spy.waitFor(() => true, 'at all');
      assert.ok(first.allowedNs <= 7e6, `the first step may run ${first.allowedNs} ns, for a 7 ms cap`);
      assert.equal(first.zeroPageBudgetBytes, 9);
    } finally {
      spy.restore();
      m?.cancel();
      await m?.done();
    }
  });
}

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
