/**
 * Which --ram sizes are refused (cli/ram-limit.ts): beyond OVERCOMMIT_FACTOR
 * x physical memory without --overcommit, and whatever the host refuses to
 * reserve, each with a message naming the flag, the size and the limit;
 * and the 64 GiB idle guest on a 24 GiB host works without --overcommit,
 * verified migration included.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import os from 'node:os';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { OVERCOMMIT_FACTOR, checkRamSize } from '../../src/cli/ram-limit.js';
import { bounded, fileLimit, until } from '../waits.js';

fileLimit(import.meta.url, 180_000);

const run = promisify(execFile);
const ferry = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const GiB = 1024 ** 3;

/** Run ferry (after `shellPrefix` in a shell, e.g. a ulimit), expecting exit code `code`; returns its output. */
async function ferryFails(args: readonly string[], code: number, shellPrefix = ''): Promise<{ stdout: string; stderr: string }> {
  const [file, argv] = shellPrefix === '' ? [process.execPath, [ferry, ...args]]
    : ['/bin/sh', ['-c', `${shellPrefix} exec "$0" "$@"`, process.execPath, ferry, ...args]];
  try {
    await run(file, argv, { timeout: 60_000 });
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    assert.equal(e.code, code, `exit code of ferry ${args.join(' ')}: ${e.stderr}`);
    return e;
  }
  return assert.fail(`ferry ${args.join(' ')} succeeded`);
}

test(`checkRamSize refuses more than ${OVERCOMMIT_FACTOR} x physical memory without --overcommit, naming flag, size and limit`, () => {
  const physical = 24 * GiB;
  checkRamSize('64G', 64 * GiB, false, physical);
  checkRamSize('96G', 96 * GiB, false, physical);
  assert.throws(() => checkRamSize('97G', 97 * GiB, false, physical), {
    code: 'ERR_FERRY_INVALID_ARGUMENT',
    message: /^--ram 97G: 97\.0 GiB is more than 4 x this host's 24\.0 GiB of physical memory \(96\.0 GiB\); give --overcommit to reserve it anyway/,
  });
  checkRamSize('5T', 5 * 1024 * GiB, true, physical);
});

test('ferry run and ferry demo refuse --ram 5T before starting anything, with exit code 2', async () => {
  if (5 * 1024 * GiB <= OVERCOMMIT_FACTOR * os.totalmem()) return; // a host with more than 1.25 TiB would accept it
  for (const command of ['run', 'demo']) {
    const { stderr, stdout } = await ferryFails([command, '--ram', '5T'], 2);
    assert.match(stderr, /^ferry: --ram 5T: 5\.0 TiB is more than 4 x this host's [\d.]+ GiB of physical memory \([\d.]+ GiB\); give --overcommit/);
    assert.equal(stdout, '', `${command} started nothing`);
  }
});

test('a reservation the host refuses (ulimit -v) is a clear error naming --ram and how far it got, not an engine stack', async () => {
  const { stderr } = await ferryFails(['run', '--ram', '8G', '--overcommit', '--workload', 'idle', '--seconds', '0.1'], 2, 'ulimit -v 6000000;');
  assert.match(stderr, /^ferry: --ram 8G \(8\.0 GiB\): the host refused the reservation: .*RAM block "ram\d": the host refused to reserve 4294967296 bytes of shared memory/);
  assert.doesNotMatch(stderr, /RangeError|\n\s+at /, 'no stack');
});

test('a 64 GiB idle guest runs and migrates, verified, between two processes without --overcommit', async () => {
  const overcommit = 64 * GiB > OVERCOMMIT_FACTOR * os.totalmem() ? ['--overcommit'] : []; // only on a host under 16 GiB
  const dest = spawn(process.execPath, [ferry, 'incoming', '--listen', 'tcp:127.0.0.1:0', '--seconds', '0.2', '--json'], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  dest.stdout.on('data', (d: Buffer) => { out += d.toString(); });
  const exited = new Promise<string>((resolve) => dest.on('exit', () => resolve(out)));
  try {
    const listening = await until('the destination to say where it listens', () => out.includes('\n') && out, 30_000);
    const { uri } = JSON.parse(listening.split('\n')[0]) as { uri: string };
    const { stdout } = await run(process.execPath, [ferry, 'run', '--ram', '64G', ...overcommit, '--workload', 'idle', '--seconds', '0.2',
      '--migrate-to', uri, '--verify', '--json'], { timeout: 60_000 });
    const source = JSON.parse(stdout) as { status: string };
    assert.equal(source.status, 'completed');
    const final = JSON.parse((await bounded('the destination to exit', exited, 30_000)).trim().split('\n').pop()!) as { status: string; stats: { verified: boolean } };
    assert.equal(final.status, 'resumed');
    assert.equal(final.stats.verified, true);
  } finally {
    dest.kill();
  }
});
