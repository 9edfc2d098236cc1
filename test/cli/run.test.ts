import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parseSize } from '../../src/client/size.js';
import { bounded, fileLimit, until } from '../waits.js';

fileLimit(import.meta.url, 300_000);

const run = promisify(execFile);
const ferry = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

test('parseSize takes QEMU-style sizes and names what it cannot parse', () => {
  assert.equal(parseSize('256M'), 256 * 1024 ** 2);
  assert.equal(parseSize('4G'), 4 * 1024 ** 3);
  assert.equal(parseSize('64KiB'), 64 * 1024);
  assert.equal(parseSize('4096'), 4096);
  assert.equal(parseSize('1.5k'), 1536);
  assert.throws(() => parseSize('12 parsecs', '--ram'), { message: /--ram: cannot parse "12 parsecs"/ });
  assert.throws(() => parseSize('-4M'), { code: 'ERR_FERRY_INVALID_ARGUMENT' });
});

test('ferry run --json runs a sweep guest and reports a passing check', async () => {
  const { stdout } = await run(process.execPath, [ferry, 'run', '--ram', '32M', '--vcpus', '2', '--workload', 'sweep', '--seconds', '0.3', '--json']);
  const result = JSON.parse(stdout) as { sweepCheck: boolean; pagesWritten: number; everWrittenPages: number; vcpus: number };
  assert.equal(result.sweepCheck, true);
  assert.equal(result.vcpus, 2);
  assert.ok(result.pagesWritten > 0);
  assert.equal(result.everWrittenPages, 8192, 'two sweeps cover all of RAM');
});

test('ferry run rejects bad options with exit code 2 and a message naming the option', async () => {
  for (const [args, message] of [
    [['--ram', '12 parsecs'], /--ram: cannot parse/],
    [['--workload', 'dance'], /--workload: unknown workload "dance"/],
    [['--vcpus', '0'], /--vcpus: expected a whole number from 1 to 64/],
    [['--ram', '5000B'], /--ram: expected a size in whole 4 KiB pages/],
    [['--bogus'], /Unknown option '--bogus'/],
    // A migration parameter's flag, checked against the parameter table's range (parameter-flags.test.ts walks them all).
    [['--pause-timeout', '700000'], /--pause-timeout: expected a whole number from 1 to 600000, got "700000"/],
  ] as const) {
    await assert.rejects(run(process.execPath, [ferry, 'run', ...args]), (err: { code: number; stderr: string }) => {
      assert.equal(err.code, 2, `exit code for ${args.join(' ')}`);
      assert.match(err.stderr, message);
      return true;
    });
  }
});

test('ferry demo --json migrates between two processes through QMP and reports a verified, completed migration', async () => {
  const { stdout } = await run(process.execPath, [ferry, 'demo', '--ram', '32M', '--rate', '5', '--json'], { timeout: 60_000 });
  const result = JSON.parse(stdout) as {
    ok: boolean; status: string; sourceRunState: string;
    source: { downtime: number; ram: { transferred: number; total: number } };
    destination: { status: string; 'x-ferry-loader': { verified: boolean } };
    check: { checked: number; ok: boolean };
    controlLatency: { baseline: { samples: number; maxMs: number }; during: { samples: number; p99Ms: number } };
  };
  // The verdict follows the downtime against the demo's 300 ms limit (on a loaded machine a switchover may exceed it).
  assert.equal(result.ok, result.source.downtime <= 300, `ok is ${result.ok} with a downtime of ${result.source.downtime} ms`);
  assert.equal(result.status, 'completed');
  assert.equal(result.sourceRunState, 'postmigrate');
  assert.equal(result.destination.status, 'completed');
  assert.equal(result.destination['x-ferry-loader'].verified, true);
  assert.deepEqual(result.check, { checked: 2, ok: true, errors: [] });
  assert.ok(result.source.downtime > 0 && result.source.ram.transferred >= 32 * 1024 * 1024);
  assert.ok(result.controlLatency.baseline.samples > 50 && result.controlLatency.during.samples > 0, 'the stall probe ran before and during');
});

test('ferry incoming without --listen, and ferry run to an unreachable destination, fail clearly', async () => {
  await assert.rejects(run(process.execPath, [ferry, 'incoming']), (err: { code: number; stderr: string }) => {
    assert.equal(err.code, 2);
    assert.match(err.stderr, /--listen URI is required/);
    return true;
  });
  await assert.rejects(run(process.execPath, [ferry, 'run', '--ram', '4M', '--seconds', '0.1', '--migrate-to', 'tcp:127.0.0.1:1']),
    (err: { code: number; stdout: string }) => {
      assert.equal(err.code, 1);
      assert.match(err.stdout, /migration failed: cannot reach the destination at 127\.0\.0\.1:1/);
      return true;
    });
});

test('ferry migrate drives a guest served by ferry run --qmp in another process', async () => {
  const { mkdtempSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { spawn } = await import('node:child_process');
  const control = join(mkdtempSync(join(tmpdir(), 'ferry-cli-')), 'guest.qmp');
  const source = spawn(process.execPath, [ferry, 'run', '--ram', '16M', '--workload', 'sweep', '--rate', '10', '--qmp', `unix:${control}`], { stdio: ['ignore', 'pipe', 'inherit'] });
  const dest = spawn(process.execPath, [ferry, 'incoming', '--listen', 'tcp:127.0.0.1:0', '--seconds', '0.2', '--json'], { stdio: ['ignore', 'pipe', 'inherit'] });
  let destOut = '';
  dest.stdout.on('data', (d: Buffer) => { destOut += d.toString(); });
  const destExited = new Promise<string>((resolve) => dest.on('exit', () => resolve(destOut)));
  try {
    const listening = await until('the destination process to print where it listens', () => destOut.includes('\n') && destOut, 30_000);
    const { uri } = JSON.parse(listening.split('\n')[0]) as { uri: string };
    await bounded('the source process to open its QMP control socket', new Promise<void>((resolve) => source.stdout.on('data', (d: Buffer) => { if (d.toString().includes('QMP control socket')) resolve(); })), 30_000);
    const before = JSON.parse((await run(process.execPath, [ferry, 'status', '--qmp', `unix:${control}`, '--json'])).stdout) as { status: string; migration: object };
    assert.deepEqual(before, { status: 'running', migration: {} });
    const { stdout } = await run(process.execPath, [ferry, 'migrate', '--qmp', `unix:${control}`, '--to', uri, '--verify', '--json', '--baseline', '0.2'], { timeout: 30_000 });
    const info = JSON.parse(stdout) as { status: string; downtime: number; ram: { total: number }; controlLatency: { baseline: { samples: number } } };
    assert.equal(info.status, 'completed');
    assert.equal(info.ram.total, 16 * 1024 * 1024);
    assert.ok(info.controlLatency.baseline.samples > 10, 'a control-latency baseline was probed');
    const after = JSON.parse((await run(process.execPath, [ferry, 'status', '--qmp', `unix:${control}`, '--json'])).stdout) as { status: string; migration: { status: string } };
    assert.equal(after.status, 'postmigrate');
    assert.equal(after.migration.status, 'completed');
    const result = await bounded('the destination process to exit', destExited, 30_000);
    const final = JSON.parse(result.trim().split('\n').pop()!) as { status: string; check: boolean; stats: { verified: boolean } };
    assert.equal(final.status, 'resumed');
    assert.equal(final.check, true);
    assert.equal(final.stats.verified, true);
    await assert.rejects(run(process.execPath, [ferry, 'migrate', '--qmp', 'unix:/nonexistent/ferry.qmp', '--to', uri]), /cannot reach the control socket/);
  } finally {
    source.kill();
    dest.kill();
  }
});

test('ferry incoming on a busy port says so and how to fix it, with exit code 2', async () => {
  const net = await import('node:net');
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  try {
    await assert.rejects(run(process.execPath, [ferry, 'incoming', '--listen', `tcp:127.0.0.1:${port}`]), (err: { code: number; stderr: string }) => {
      assert.equal(err.code, 2);
      assert.match(err.stderr, /cannot listen on 127\.0\.0\.1:\d+: .*EADDRINUSE.*pick another port/);
      return true;
    });
  } finally {
    server.close();
  }
});
