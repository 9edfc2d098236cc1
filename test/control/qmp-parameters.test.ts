import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { GuestController } from '../../src/control/controller.js';
import { QmpClient } from '../../src/control/qmp-client.js';
import { QmpServer } from '../../src/control/qmp-server.js';
import { CAPABILITY_TABLE } from '../../src/migration/capabilities.js';
import { PARAMETER_TABLE, isPowerOfTwo, type ParameterKey, type ParameterRow } from '../../src/migration/parameters.js';
import { MiB, address, destroyAll, guest } from '../migration/helpers.js';
import { spySteps } from '../migration/step-spy.js';
import { fileLimit, until } from '../waits.js';

fileLimit(import.meta.url, 120_000);
after(destroyAll);

const dir = mkdtempSync(join(tmpdir(), 'ferry-qmp-params-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A QMP server on a controller with no guest (parameters and capabilities need none), and a client. */
async function serve(): Promise<{ ctl: GuestController; qmp: QmpClient; close(): void }> {
  const ctl = new GuestController(null);
  const server = await QmpServer.listen(address('unix', 'qmp'), ctl);
  try {
    const qmp = await QmpClient.connect(server.uri);
    return { ctl, qmp, close: () => { qmp.close(); server.close(); } };
  } catch (err) {
    server.close();
    throw err;
  }
}

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Every row of the parameter table with a QMP name: a new row is walked without touching this file. */
const QMP_ROWS = (Object.entries(PARAMETER_TABLE) as [ParameterKey, ParameterRow][]).filter(([, row]) => row.qmp !== null);

test('query-migrate-parameters answers every QMP row of the table, in table order, at its default', async () => {
  const { qmp, close } = await serve();
  try {
    const answer = (await qmp.execute('query-migrate-parameters')) as Record<string, number>;
    assert.deepEqual(Object.keys(answer), QMP_ROWS.map(([, row]) => row.qmp));
    for (const [, row] of QMP_ROWS) {
      assert.equal(answer[row.qmp!], row.unit === 'bool' ? row.default !== 0 : row.unit === 'choice' ? row.choices![row.default] : row.default, row.qmp!);
    }
  } finally {
    close();
  }
});

for (const [key, row] of QMP_ROWS.filter(([, r]) => r.unit === 'bool')) {
  const name = row.qmp!;
  test(`QMP ${name}: a switch, set both ways and queried back as a boolean; a number is refused by its QMP name and nothing changes`, async () => {
    const { ctl, qmp, close } = await serve();
    const query = async () => ((await qmp.execute('query-migrate-parameters')) as Record<string, unknown>)[name];
    try {
      const dflt = row.default !== 0;
      for (const value of [!dflt, dflt]) { // both ways, ending at the default
        assert.deepEqual(await qmp.execute('migrate-set-parameters', { [name]: value }), {});
        assert.equal(await query(), value);
        assert.equal((ctl.parameters as Record<string, number>)[key], value ? 1 : 0);
      }
      await assert.rejects(qmp.execute('migrate-set-parameters', { [name]: 1 }), { message: `Invalid parameter type for '${name}', expected: boolean` });
      await assert.rejects(qmp.execute('migrate-set-parameters', { [name]: true, 'no-such-parameter': 1 }), /Parameter 'no-such-parameter' is unexpected/);
      assert.equal(await query(), dflt);
    } finally {
      close();
    }
  });
}

for (const [key, row] of QMP_ROWS.filter(([, r]) => r.unit === 'choice')) {
  const name = row.qmp!;
  test(`QMP ${name}: every value by its name, queried back by its name; a name it does not know or a number is refused as QEMU refuses them, and nothing changes`, async () => {
    const { ctl, qmp, close } = await serve();
    const query = async () => ((await qmp.execute('query-migrate-parameters')) as Record<string, unknown>)[name];
    try {
      for (const [i, value] of [...row.choices!.entries(), [row.default, row.choices![row.default]] as const]) {
        assert.deepEqual(await qmp.execute('migrate-set-parameters', { [name]: value }), {});
        assert.equal(await query(), value);
        assert.equal((ctl.parameters as Record<string, number>)[key], i);
      }
      await assert.rejects(qmp.execute('migrate-set-parameters', { [name]: 'brotli' }), { message: `Parameter '${name}' does not accept value 'brotli'` });
      await assert.rejects(qmp.execute('migrate-set-parameters', { [name]: 1 }), { message: `Invalid parameter type for '${name}', expected: string` });
      assert.equal(await query(), row.choices![row.default]);
    } finally {
      close();
    }
  });
}

for (const [key, row] of QMP_ROWS.filter(([, r]) => r.unit !== 'bool' && r.unit !== 'choice')) {
  const name = row.qmp!;
  test(`QMP ${name}: set to its bounds and queried back; out of range or not an integer, refused by its QMP name and nothing changes`, async () => {
    const { ctl, qmp, close } = await serve();
    const query = async () => ((await qmp.execute('query-migrate-parameters')) as Record<string, number>)[name];
    try {
      for (const value of [row.min, row.max, row.default]) {
        assert.deepEqual(await qmp.execute('migrate-set-parameters', { [name]: value }), {});
        assert.equal(await query(), value);
        assert.equal((ctl.parameters as Record<string, number>)[key], value);
      }
      for (const bad of [row.min - 1, row.max + 1]) {
        // QEMU's own words where ferry answers as QEMU does (a max QEMU does not check gets ferry's).
        const qemus = row.qmpRefusal !== undefined && (bad < row.min || row.max < Number.MAX_SAFE_INTEGER);
        const powerOfTwo = row.powerOfTwoRefusal !== undefined && (bad < row.min || !isPowerOfTwo(bad));
        const refusal = powerOfTwo ? new RegExp(`^${escapeRegExp(row.powerOfTwoRefusal!)}$`) : qemus ? new RegExp(`^${escapeRegExp(row.qmpRefusal!)}$`)
          : new RegExp(`^Parameter '${escapeRegExp(name)}' must be an integer (in \\[${row.min}, ${row.max}\\]|of at least ${row.min}), got ${bad}$`);
        await assert.rejects(qmp.execute('migrate-set-parameters', { [name]: bad }), (err: Error) => {
          assert.match(err.message, refusal);
          assert.ok(!err.message.includes(key), `the refusal names ${key}: ${err.message}`);
          return true;
        });
      }
      await assert.rejects(qmp.execute('migrate-set-parameters', { [name]: 1.5 }), { message: `Invalid parameter type for '${name}', expected: integer` });
      // All or nothing: a refused value in a call sets none of the call's values.
      await assert.rejects(qmp.execute('migrate-set-parameters', { [name]: row.min, 'no-such-parameter': 1 }), /Parameter 'no-such-parameter' is unexpected/);
      assert.equal(await query(), row.default);
    } finally {
      close();
    }
  });
}

test('every capability of the table: query-migrate-capabilities answers it at its default; set and queried back both ways', async () => {
  const { ctl, qmp, close } = await serve();
  const query = async () => (await qmp.execute('query-migrate-capabilities')) as { capability: string; state: boolean }[];
  try {
    const names = Object.keys(CAPABILITY_TABLE);
    assert.deepEqual(await query(), Object.entries(CAPABILITY_TABLE).map(([capability, row]) => ({ capability, state: row.default })));
    for (const [capability, row] of Object.entries(CAPABILITY_TABLE)) {
      for (const state of [!row.default, row.default]) {
        assert.deepEqual(await qmp.execute('migrate-set-capabilities', { capabilities: [{ capability, state }] }), {});
        const answer = await query();
        assert.deepEqual(answer.map((c) => c.capability), names);
        assert.equal(answer.find((c) => c.capability === capability)?.state, state, capability);
        assert.equal(ctl.capabilities[capability as keyof typeof CAPABILITY_TABLE], state);
      }
      await assert.rejects(qmp.execute('migrate-set-capabilities', { capabilities: [{ capability, state: 'on' }] }), /needs 'capability' \(string\) and 'state' \(boolean\)/);
      // All or nothing: an unknown capability in the list sets none of it.
      await assert.rejects(qmp.execute('migrate-set-capabilities', { capabilities: [{ capability, state: !row.default }, { capability: 'x-warp', state: true }] }),
        /Parameter 'capability' does not accept value 'x-warp'/);
      assert.equal(ctl.capabilities[capability as keyof typeof CAPABILITY_TABLE], row.default);
    }
  } finally {
    close();
  }
});

test("xbzrle-cache-size: QEMU's default 64 MiB; a size that is not a power of two, or below a page, refused in QEMU's words; above ferry's 2 GiB in ferry's; nothing changes", async () => {
  const { ctl, qmp, close } = await serve();
  const words = "Parameter 'xbzrle_cache_size' expects a power of two no less than the target page size";
  const query = async () => ((await qmp.execute('query-migrate-parameters')) as Record<string, number>)['xbzrle-cache-size'];
  try {
    assert.equal(await query(), 64 * MiB);
    for (const bad of [3 * MiB, 2048, 0, 4096 * 3]) await assert.rejects(qmp.execute('migrate-set-parameters', { 'xbzrle-cache-size': bad }), { message: words });
    await assert.rejects(qmp.execute('migrate-set-parameters', { 'xbzrle-cache-size': 4 * 1024 * MiB }), { message: "Parameter 'xbzrle-cache-size' must be an integer in [4096, 2147483648], got 4294967296" });
    assert.equal(ctl.parameters.xbzrleCacheBytes, 64 * MiB);
    await qmp.execute('migrate-set-parameters', { 'xbzrle-cache-size': 512 * MiB });
    assert.equal(await query(), 512 * MiB);
    // The capability as QEMU names it, with multifd and post-copy (QEMU 8+ refuses multifd with it; ferry keeps a cache per channel).
    await qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'xbzrle', state: true }, { capability: 'multifd', state: true }] });
    assert.equal(ctl.capabilities.xbzrle, true);
    await qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'multifd', state: false }, { capability: 'postcopy-ram', state: true }] });
    assert.equal(ctl.capabilities['postcopy-ram'], true);
  } finally {
    close();
  }
});

test('x-ferry-mainloop-step-cap and x-ferry-zero-page-budget set during a migration take effect', async () => {
  const src = await guest({ ram: 16 * MiB, vcpus: [{ kind: 'sweep', sweepsPerSec: 20 }] });
  await src.cont();
  await until('the guest to write all of its RAM twice', () => src.pagesWritten >= (2 * src.ramSize) / 4096, 30_000);
  const ctl = new GuestController(src);
  const server = await QmpServer.listen(address('unix', 'qmp'), ctl);
  const qmp = await QmpClient.connect(server.uri);
  const spy = spySteps();
  try {
    await qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'x-ferry-mainloop', state: true }] });
    await qmp.execute('migrate-set-parameters', { 'max-bandwidth': 4 * MiB });
    await qmp.execute('migrate', { uri: `file:${join(dir, 'live.ferry')}` });
    const first = await spy.waitFor(() => true, 'at all');
    assert.equal(first.allowedNs, Infinity, 'no cap at first');
    await qmp.execute('migrate-set-parameters', { 'x-ferry-mainloop-step-cap': 7, 'x-ferry-zero-page-budget': 9 });
    assert.equal(((await qmp.execute('query-migrate')) as { status: string }).status, 'active');
    await spy.waitFor((s) => s.allowedNs <= 7e6, 'capped at 7 ms after migrate-set-parameters', 5);
    await spy.waitFor((s) => s.zeroPageBudgetBytes === 9, 'charging 9 bytes per zero page after migrate-set-parameters', 5);
  } finally {
    spy.restore();
    ctl.migration?.cancel();
    await ctl.migration?.done();
    qmp.close();
    server.close();
  }
});

test("dirty-limit with auto-converge is refused as QEMU 8.1 refuses it, either way round, and nothing changes", async () => {
  const { ctl, qmp, close } = await serve();
  const words = 'dirty-limit conflicts with auto-converge either of then available currently';
  try {
    await assert.rejects(qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'dirty-limit', state: true }, { capability: 'auto-converge', state: true }] }),
      { message: words });
    assert.equal(ctl.capabilities['dirty-limit'], false);
    await qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'auto-converge', state: true }] });
    await assert.rejects(qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'dirty-limit', state: true }] }), { message: words });
    assert.equal(ctl.capabilities['dirty-limit'], false);
    await qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'auto-converge', state: false }, { capability: 'dirty-limit', state: true }] });
    assert.equal(ctl.capabilities['dirty-limit'], true, 'one off and the other on in the same call goes');
    await assert.rejects(qmp.execute('migrate-set-parameters', { 'x-vcpu-dirty-limit-period': 0 }),
      { message: "Parameter 'x-vcpu-dirty-limit-period' expects a value between 1 and 1000" });
    await assert.rejects(qmp.execute('migrate-set-parameters', { 'vcpu-dirty-limit': 0 }),
      { message: "Parameter 'vcpu_dirty_limit' expects is invalid, it must greater then 1 MB/s" });
  } finally {
    close();
  }
});
