/**
 * Parsing and validation through the `ferry` processes (issue 12, item 8):
 * every bad value is one line on stderr and exit code 2, and it is found
 * before anything starts: no guest runs, no socket is served, no child
 * process is started.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { fileLimit } from '../waits.js';

fileLimit(import.meta.url, 240_000);

const run = promisify(execFile);
const ferry = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'ferry-validation-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const psk = join(dir, 'key.bin');
writeFileSync(psk, 'k'.repeat(32));

/** `ferry ARGS` fails with exit code 2 and one line on stderr matching `message`; returns its stdout. */
async function refused(args: string[], message: RegExp): Promise<string> {
  const err = await run(process.execPath, [ferry, ...args], { timeout: 60_000 })
    .then(() => assert.fail(`ferry ${args.join(' ')} succeeded`), (e: { code: number; stdout: string; stderr: string }) => e);
  const what = `ferry ${args.join(' ')}`;
  assert.equal(err.code, 2, `${what}: exit code 2 (${err.stderr})`);
  const lines = err.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `${what}: one line, no stack trace: ${err.stderr}`);
  assert.match(lines[0], message, what);
  return err.stdout;
}

test('ferry demo --ram 0 (and other bad demo values) is one line and exit code 2, before any process starts', async () => {
  for (const [args, message] of [
    [['--ram', '0'], /^ferry: --ram: expected a size in whole 4 KiB pages .*got "0"/],
    [['--ram', '4K', '--vcpus', '2'], /^ferry: RAM of 1 pages is too small for 2 vCPUs$/],
    [['--workload', 'dance'], /^ferry: --workload: unknown workload "dance"/],
    [['--rate', '-3'], /^ferry: --rate: expected a number from 0\.000001 to 1000000000, got "-3"$/],
  ] as const) {
    const stdout = await refused(['demo', ...args], message);
    assert.doesNotMatch(stdout, /source:|pid/, 'no process was started');
  }
});

test('negative numbers are refused by the flag\'s own check, not Node\'s "ambiguous option"', async () => {
  await refused(['run', '--ram', '-1'], /^ferry: --ram: cannot parse "-1" \(a size cannot be negative\); write e\.g\. 256M, 4G or 3000 \(MiB\)$/);
  await refused(['run', '--downtime-limit', '-5'], /^ferry: --downtime-limit: expected a whole number from 1 to 2000000, got "-5"$/);
  await refused(['incoming', '--listen', 'tcp:127.0.0.1:0', '--max-ram', '-2G'], /^ferry: --max-ram: cannot parse "-2G" \(a size cannot be negative\)/);
});

test('ferry run --ram 3000 is a guest of 3000 MiB', async () => {
  const { stdout } = await run(process.execPath, [ferry, 'run', '--ram', '3000', '--workload', 'idle', '--seconds', '0.05', '--json'], { timeout: 60_000 });
  assert.equal((JSON.parse(stdout) as { ramBytes: number }).ramBytes, 3000 * 1024 * 1024);
});

test('bad addresses and TLS on a file: are refused before the guest runs or a socket is served', async () => {
  // --seconds 60: had the guest started, the refusal would come a minute later (and the test's bound would end it).
  const guestRan = /^guest:|page writes/m;
  assert.doesNotMatch(await refused(['run', '--seconds', '60', '--migrate-to', 'bogus'], /^ferry: migration URI "bogus": unknown transport ""/), guestRan);
  assert.doesNotMatch(await refused(['run', '--seconds', '60', '--migrate-to', `file:${join(dir, 'g.ferry')}`, '--tls-psk-file', psk],
    /^ferry: TLS applies to tcp: and unix: channels, not to file:.*g\.ferry: drop the --tls-\.\.\. options$/), guestRan);
  assert.doesNotMatch(await refused(['run', '--seconds', '60', '--migrate-to', 'tcp:127.0.0.1:1', '--tls-ca', join(dir, 'missing.pem')],
    /^ferry: --tls-ca: cannot read .*missing\.pem/), guestRan);
  assert.doesNotMatch(await refused(['run', '--qmp', 'unix:'], /^ferry: control socket "unix:": the path is empty$/), guestRan);
  const served = /QMP control socket on|listening on/;
  assert.doesNotMatch(await refused(['incoming', '--qmp', `unix:${join(dir, 'd.qmp')}`, '--listen', 'bogus'], /^ferry: migration URI "bogus"/), served);
  assert.doesNotMatch(await refused(['incoming', '--listen', `file:${join(dir, 'g.ferry')}`, '--tls-psk-file', psk], /^ferry: TLS applies to tcp: and unix: channels/), served);
});

test('control-socket errors say control socket; ferry migrate checks --to before connecting', async () => {
  await refused(['run', '--qmp', 'foo:bar'], /^ferry: control socket "foo:bar": unknown transport "foo"; use unix:PATH or tcp:HOST:PORT$/);
  await refused(['status', '--qmp', 'file:/tmp/x'], /^ferry: control socket "file:\/tmp\/x": a control socket is unix:PATH or tcp:HOST:PORT, not a file$/);
  // The control socket does not exist: had --to been checked after connecting, this would say "cannot reach".
  await refused(['migrate', '--qmp', `unix:${join(dir, 'none.qmp')}`, '--to', 'bogus'], /^ferry: migration URI "bogus": unknown transport ""/);
});
