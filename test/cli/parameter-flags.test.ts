import assert from 'node:assert/strict';
import { test } from 'node:test';
import { INCOMING_USAGE, parseIncomingArgs } from '../../src/cli/incoming.js';
import { MIGRATE_USAGE, parseMigrateArgs } from '../../src/cli/migrate.js';
import { DEMO_USAGE } from '../../src/cli/demo.js';
import { COMMAND_LINE_DEFAULTS, parameterFlags, qmpArguments, sizeText } from '../../src/cli/parameter-flags.js';
import { RUN_USAGE, parseRunArgs } from '../../src/cli/run.js';
import { PARAMETER_TABLE, type ParameterKey, type ParameterRow, type Side } from '../../src/migration/parameters.js';
import { fileLimit } from '../waits.js';

fileLimit(import.meta.url, 60_000);

type Parse = (argv: string[]) => { parameters: Partial<Record<string, number>> };

/** The commands that take each side's parameters, with their argv parsing and usage text. */
const COMMANDS: Record<Side, { name: string; parse: Parse; usage: string }[]> = {
  source: [{ name: 'run', parse: parseRunArgs, usage: RUN_USAGE }, { name: 'migrate', parse: parseMigrateArgs, usage: MIGRATE_USAGE }],
  destination: [{ name: 'incoming', parse: parseIncomingArgs, usage: INCOMING_USAGE }],
};

const isSize = (row: ParameterRow) => row.unit === 'bytes' || row.unit === 'bytes/s';
/** A row's value as its flag writes it: seconds for a row whose flag is in seconds; a size in bytes says B (a number alone may be MiB). */
const perFlag = (row: ParameterRow) => (row.flagUnit === 's' ? 1000 : 1);
const asFlag = (row: ParameterRow, n: number) => (isSize(row) && n >= 0 ? `${n}B` : String(n / perFlag(row)));
/** What a source command uses when the flag is absent: its own default, else none (the guest's or the library's). */
const commandDefault = (side: Side, key: ParameterKey): number | undefined =>
  side === 'source' ? (COMMAND_LINE_DEFAULTS as Partial<Record<ParameterKey, number>>)[key] : undefined;
/** Every row with a flag, on every side it applies to: a new row is walked without touching this file. */
const FLAG_ROWS = (Object.entries(PARAMETER_TABLE) as [ParameterKey, ParameterRow][])
  .filter(([, row]) => row.flag !== null)
  .flatMap(([key, row]) => (Object.keys(row.sides) as Side[]).map((side) => ({ key, row, side, flag: `--${row.flag!}` })));

for (const { key, row, side, flag } of FLAG_ROWS) {
  for (const command of COMMANDS[side]) {
    test(`ferry ${command.name} ${flag}: its bounds are taken as ${key}, out of range is refused naming ${flag}, and its usage line shows the default`, () => {
      if (row.unit === 'bool') {
        for (const [text, value] of [['on', 1], ['off', 0], ['true', 1], ['no', 0]] as const) assert.equal(command.parse([flag, text]).parameters[key], value);
        for (const bad of ['1', 'maybe']) assert.throws(() => command.parse([flag, bad]), { message: `${flag}: expected on or off, got "${bad}"` });
        const line = command.usage.split('\n').find((l) => l.trimStart().startsWith(`${flag} on|off`));
        assert.ok(line?.includes(`(default ${row.default === 0 ? 'off' : 'on'}`), line);
        return;
      }
      if (row.unit === 'choice') {
        for (const [i, name] of row.choices!.entries()) assert.equal(command.parse([flag, name]).parameters[key], i);
        for (const bad of ['0', 'ZSTD', 'brotli']) {
          assert.throws(() => command.parse([flag, bad]), { message: `${flag}: expected one of ${row.choices!.join(', ')}, got "${bad}"` });
        }
        const line = command.usage.split('\n').find((l) => l.trimStart().startsWith(`${flag} ${row.choices!.join('|')}`));
        assert.ok(line?.includes(`(default ${row.choices![row.default]}`), line);
        return;
      }
      for (const value of [row.min, row.max, row.default]) {
        assert.equal(value % perFlag(row), 0, `${key}: ${value} is a whole number in the flag's unit`);
        assert.equal(command.parse([flag, asFlag(row, value)]).parameters[key], value);
      }
      if (isSize(row) && row.default % 1024 === 0 && row.default > 0) {
        assert.equal(command.parse([flag, `${row.default / 1024}K`]).parameters[key], row.default);
      }
      for (const bad of [row.min - perFlag(row), row.max + perFlag(row)]) {
        assert.throws(() => command.parse([flag, asFlag(row, bad)]), (err: Error & { code?: string }) => { // a value may start with -
          assert.equal(err.code, 'ERR_FERRY_INVALID_ARGUMENT');
          assert.ok(err.message.startsWith(`${flag}: `), err.message);
          return true;
        });
      }
      const own = commandDefault(side, key);
      assert.equal(command.parse([]).parameters[key], own, own === undefined ? 'a flag not given is left to the default' : "a flag not given takes the command's default");
      const line = command.usage.split('\n').find((l) => l.trimStart().startsWith(`${flag} `));
      assert.ok(line !== undefined, `usage of ferry ${command.name} lists ${flag}`);
      assert.ok(line.includes(row.sides[side]!), line);
      const shown = own ?? row.default;
      assert.ok(line.includes(`(default ${isSize(row) ? sizeText(shown) : asFlag(row, shown)}`), line);
    });
  }
}

test("a command refuses the other side's flags", () => {
  for (const side of ['source', 'destination'] as const) {
    const other = side === 'source' ? 'destination' : 'source';
    for (const { row, flag } of FLAG_ROWS.filter((r) => r.side === other && r.row.sides[side] === undefined)) {
      for (const command of COMMANDS[side]) {
        assert.throws(() => command.parse([flag, String(row.default)]), { code: 'ERR_PARSE_ARGS_UNKNOWN_OPTION' }, `ferry ${command.name} ${flag}`);
      }
    }
  }
});

test('flags read sizes for sizes and rates, whole numbers for the rest; QMP names for ferry migrate', () => {
  const flags = parameterFlags('source');
  assert.deepEqual(flags.parse({ 'max-bandwidth': '100M', 'downtime-limit': '50', 'cpu-share': '30' }),
    { downtimeLimitMs: 50, maxBandwidthBytesPerSec: 100 * 1024 ** 2, cpuSharePercent: 30 });
  assert.throws(() => flags.parse({ 'downtime-limit': '50ms' }), { message: '--downtime-limit: expected a whole number from 1 to 2000000, got "50ms"' });
  assert.throws(() => parseIncomingArgs(['--max-frame', '4K']), { message: '--max-frame: expected a size of at least 1M + 4, got "4K"' });
  assert.deepEqual(qmpArguments({ downtimeLimitMs: 50, maxBandwidthBytesPerSec: 1, cpuSharePercent: 30 }),
    { 'downtime-limit': 50, 'max-bandwidth': 1, 'x-ferry-cpu-share': 30 });
  assert.deepEqual(qmpArguments({ maxGuestBytes: 1 }), {}, 'a row without a QMP name is not sent');
  assert.deepEqual([64 * 1024 ** 3, 16 * 1024 ** 2 + 4096, 1024 ** 2 + 4, 0, 100].map(sizeText), ['64G', '16M + 4K', '1M + 4', '0', '100']);
});

test('--timeout is in whole seconds (x-ferry-timeout in ms): 300 s unless given for ferry run and ferry migrate, 60 s for ferry demo; 0 is none', () => {
  for (const parse of [parseRunArgs, parseMigrateArgs]) {
    assert.equal(parse([]).parameters.timeoutMs, 300_000);
    assert.equal(parse(['--timeout', '30']).parameters.timeoutMs, 30_000);
    assert.equal(parse(['--timeout', '0']).parameters.timeoutMs, 0);
    assert.throws(() => parse(['--timeout', '1.5']), { message: '--timeout: expected a whole number from 0 to 2592000, got "1.5"' });
    assert.throws(() => parse(['--timeout', '30s']), { message: '--timeout: expected a whole number from 0 to 2592000, got "30s"' });
  }
  assert.deepEqual(qmpArguments({ timeoutMs: 30_000 }), { 'x-ferry-timeout': 30_000 });
  assert.match(RUN_USAGE, /--timeout SECONDS +cancel the migration if it has not switched over after this long \(default 300; 0: none\)/);
  assert.match(DEMO_USAGE, /--timeout SECONDS +cancel the migration if it has not switched over after this long \(default 60; 0: none\)/);
  assert.match(DEMO_USAGE, /--downtime-limit MS/);
});

test('--xbzrle (the capability) for ferry run and ferry migrate, documented in their usage; --xbzrle-cache-size takes a power of two only, as QEMU', () => {
  for (const [parse, usage] of [[parseRunArgs, RUN_USAGE], [parseMigrateArgs, MIGRATE_USAGE]] as const) {
    assert.equal(parse(['--xbzrle']).values.xbzrle, true);
    assert.equal(parse([]).values.xbzrle, false);
    assert.match(usage, /--xbzrle +.*deltas/);
    assert.equal(parse(['--xbzrle-cache-size', '512M']).parameters.xbzrleCacheBytes, 512 * 1024 ** 2);
    assert.throws(() => parse(['--xbzrle-cache-size', '3M']), { message: '--xbzrle-cache-size: expected a power of two (64M, 512M), got "3M"' });
  }
  assert.deepEqual(qmpArguments({ xbzrleCacheBytes: 512 * 1024 ** 2 }), { 'xbzrle-cache-size': 512 * 1024 ** 2 });
});
