/**
 * Parsing and validation (issue 12, item 8), in-process: what a number
 * without a suffix means, negative values, the README's table of size and
 * number flags (it is the code's table), control-socket errors that say so,
 * and migrate-incoming on a guest that is a source.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, test } from 'node:test';
import { BENCH_USAGE } from '../../src/cli/bench.js';
import { DEMO_USAGE } from '../../src/cli/demo.js';
import { INCOMING_USAGE, parseIncomingArgs } from '../../src/cli/incoming.js';
import { MIGRATE_USAGE, parseMigrateArgs } from '../../src/cli/migrate.js';
import { COMMAND_FLAGS, NUMBER_FLAGS, flagTable, parseNumberFlag } from '../../src/cli/number-flags.js';
import { RUN_USAGE, parseRunArgs } from '../../src/cli/run.js';
import { GuestController } from '../../src/control/controller.js';
import { QmpClient } from '../../src/control/qmp-client.js';
import { COMMANDS, QmpError } from '../../src/control/qmp-commands.js';
import { QmpServer } from '../../src/control/qmp-server.js';
import { MiB, destroyAll, guest } from '../migration/helpers.js';
import { fileLimit } from '../waits.js';

fileLimit(import.meta.url, 60_000);
after(destroyAll);

const USAGE: Record<string, string> = { run: RUN_USAGE, demo: DEMO_USAGE, incoming: INCOMING_USAGE, migrate: MIGRATE_USAGE, bench: BENCH_USAGE };

test('--ram 3000 is 3000 MiB, as QEMU\'s -m; bandwidths and --max-ram read MiB too, --max-frame bytes; a suffix or B says otherwise', () => {
  assert.equal(parseNumberFlag(COMMAND_FLAGS.ram, '3000'), 3000 * MiB);
  assert.equal(parseNumberFlag(COMMAND_FLAGS.ram, '1.5'), 1.5 * MiB);
  assert.equal(parseNumberFlag(COMMAND_FLAGS.ram, '4G'), 4096 * MiB);
  assert.equal(parseNumberFlag(COMMAND_FLAGS.ram, '8192B'), 8192);
  assert.equal(parseRunArgs(['--max-bandwidth', '100']).parameters.maxBandwidthBytesPerSec, 100 * MiB);
  assert.equal(parseMigrateArgs(['--avail-switchover-bandwidth', '64']).parameters.availSwitchoverBandwidthBytesPerSec, 64 * MiB);
  assert.equal(parseIncomingArgs(['--max-ram', '512']).parameters.maxGuestBytes, 512 * MiB);
  assert.equal(parseIncomingArgs(['--max-frame', '2000000']).parameters.maxFrameBytes, 2_000_000);
  assert.equal(parseRunArgs(['--max-bandwidth', '100K']).parameters.maxBandwidthBytesPerSec, 100 * 1024);
});

test('a bad --ram is one line naming the flag and what it accepts', () => {
  for (const [text, message] of [
    ['0', /^--ram: expected a size in whole 4 KiB pages \(256M, 4G; a number alone is MiB\), at least 4K, got "0" \(0 bytes\)$/],
    ['5000B', /^--ram: expected a size in whole 4 KiB pages .*, got "5000B" \(5000 bytes\)$/],
    ['12 parsecs', /^--ram: cannot parse "12 parsecs"; write e\.g\. 256M, 4G or 3000 \(MiB\)$/],
    ['-1', /^--ram: cannot parse "-1" \(a size cannot be negative\)/],
  ] as const) {
    assert.throws(() => parseNumberFlag(COMMAND_FLAGS.ram, text), { code: 'ERR_FERRY_INVALID_ARGUMENT', message });
  }
});

test('a negative number is the flag\'s value, refused by the flag\'s own check (not Node\'s "ambiguous option")', () => {
  assert.throws(() => parseRunArgs(['--downtime-limit', '-5']), { code: 'ERR_FERRY_INVALID_ARGUMENT', message: '--downtime-limit: expected a whole number from 1 to 2000000, got "-5"' });
  assert.throws(() => parseIncomingArgs(['--idle-timeout', '-1']), { message: '--idle-timeout: expected a whole number from 1 to 3600000, got "-1"' });
  assert.throws(() => parseMigrateArgs(['--max-bandwidth', '-.5']), { message: /^--max-bandwidth: cannot parse "-\.5" \(a size cannot be negative\)/ });
  assert.equal(parseRunArgs(['--ram', '-1']).values.ram, '-1', 'the value reaches --ram\'s check');
  // A flag whose value is missing is still Node's error: only a dash and a digit are taken as a value.
  assert.throws(() => parseRunArgs(['--ram', '--json']), { code: 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' });
});

test('the README\'s table of size and number flags is the code\'s, and each row\'s commands take the flag', () => {
  const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
  const m = /<!-- number-flags[^\n]*-->\n([\s\S]*?)\n<!-- \/number-flags -->/.exec(readme);
  assert.ok(m !== null, 'the README has the table between its markers');
  assert.equal(m[1], flagTable(), `the README's table differs from the code's; it should read:\n${flagTable()}`);
  for (const rule of NUMBER_FLAGS) {
    for (const command of rule.commands) {
      assert.match(USAGE[command], new RegExp(`^  --${rule.flag} `, 'm'), `ferry ${command} --help lists --${rule.flag}`);
    }
  }
  const listed = new Set(NUMBER_FLAGS.flatMap((r) => r.commands.map((c) => `${c} --${r.flag}`)));
  for (const [command, usage] of Object.entries(USAGE)) {
    for (const [, flag, metavar] of usage.matchAll(/^ {2}--([a-z-]+) ([A-Z]+)\b/gm)) {
      if (['SIZE', 'N', 'S', 'MS', 'PCT'].includes(metavar)) assert.ok(listed.has(`${command} --${flag}`), `ferry ${command} --${flag} ${metavar} is in the table`);
    }
  }
});

test('control-socket errors say control socket, not migration URI', async () => {
  await assert.rejects(QmpClient.connect('foo:bar'), { code: 'ERR_FERRY_INVALID_ARGUMENT', message: 'control socket "foo:bar": unknown transport "foo"; use unix:PATH or tcp:HOST:PORT' });
  const ctl = new GuestController(null);
  await assert.rejects(QmpServer.listen('file:/tmp/x.qmp', ctl), { message: 'control socket "file:/tmp/x.qmp": a control socket is unix:PATH or tcp:HOST:PORT, not a file' });
  await assert.rejects(QmpServer.listen('tcp:nowhere', ctl), { message: /^control socket "tcp:nowhere": expected tcp:HOST:PORT/ });
});

test('migrate-incoming on a guest that runs here (a source) says it was not started to receive one', async () => {
  const g = await guest({ ram: 4 * MiB, vcpus: [] });
  const ctl = new GuestController(g);
  await assert.rejects(async () => COMMANDS['migrate-incoming'](ctl, { uri: 'tcp:127.0.0.1:0' }), (err: unknown) => {
    assert.ok(err instanceof QmpError);
    assert.equal(err.errorClass, 'GenericError');
    assert.match(err.message, /^'-incoming' was not specified on the command line: this guest runs here \(it is prelaunch\) and can only be a migration's source; start the destination with 'ferry incoming --qmp CONTROL'/);
    return true;
  });
  assert.equal(ctl.incoming, null, 'nothing was started');
});
