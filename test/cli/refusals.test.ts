/**
 * Refusals explained through the command line (issue 12, item 5): a
 * `ferry incoming` that will not take the guest (--ram, --vcpus, --max-ram)
 * tells a busy `ferry run --migrate-to` source why, and a `ferry migrate`
 * of a guest served by `ferry run --qmp` shows the reason too, after which
 * that source guest runs on with its RAM intact (its sweep checker passes).
 * Before the fix, the destination process exited at once and reset the
 * connection: the source said `write EPIPE`.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { startFerry, type FerryChild } from '../../src/client/children.js';
import { QmpClient } from '../../src/control/qmp-client.js';
import { bounded, fileLimit, until } from '../waits.js';

fileLimit(import.meta.url, 300_000);

const run = promisify(execFile);
const ferry = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const ENDS_MS = 60_000;

/** A destination process that refuses with `args`; its address and its end (exit code, last JSON line). */
async function refusingDestination(args: string[]): Promise<{ child: FerryChild; uri: string; ended: Promise<{ code: number | null; result: { status: string; error: string } }> }> {
  const child = await startFerry(['incoming', '--listen', 'tcp:127.0.0.1:0', '--json', ...args], /"event":"listening"/);
  const { uri } = JSON.parse(child.output.find((l) => l.includes('"listening"'))!) as { uri: string };
  const ended = new Promise<{ code: number | null; result: { status: string; error: string } }>((resolve) => {
    const done = () => resolve({ code: child.process.exitCode, result: JSON.parse(child.output.filter((l) => l.startsWith('{')).at(-1)!) });
    if (child.process.exitCode !== null) done();
    else child.process.once('exit', done);
  });
  return { child, uri, ended };
}

const CASES = [
  { refusal: 'ram-size', args: ['--ram', '16M'], reason: /header: the guest has 64 MiB of RAM; this destination expects 16 MiB \(--ram\)/ },
  { refusal: 'vcpus', args: ['--vcpus', '3'], reason: /header: the guest has 2 vCPUs; this destination expects 3 \(--vcpus\)/ },
  { refusal: 'max-ram', args: ['--max-ram', '16M'], reason: /header: the guest has 64 MiB of RAM; this destination accepts at most 16 MiB \(--max-ram\)/ },
] as const;

test('ferry run --migrate-to a destination that refuses: the source prints the destination\'s reason, not write EPIPE', async () => {
  for (const c of CASES) {
    const dest = await refusingDestination([...c.args]);
    try {
      // A busy 64 MiB guest at full speed: the first pass streams while the refusal travels back.
      const out = await run(process.execPath, [ferry, 'run', '--ram', '64M', '--vcpus', '2', '--workload', 'sweep', '--seconds', '0.5',
        '--migrate-to', dest.uri, '--json'], { timeout: ENDS_MS }).then(() => assert.fail(`${c.refusal}: the migration completed`), (e: { code: number; stdout: string }) => e);
      assert.equal(out.code, 1, `${c.refusal}: exit code 1, a failed migration`);
      const r = JSON.parse(out.stdout) as { status: string; error: string };
      assert.equal(r.status, 'failed');
      assert.match(r.error, new RegExp(`^the destination refused the stream \\(${c.refusal}\\): ${c.reason.source}$`), c.refusal);
      const { code, result } = await bounded(`${c.refusal}: the destination process to exit`, dest.ended, ENDS_MS);
      assert.equal(code, 1);
      assert.equal(result.status, 'failed');
      assert.match(result.error, c.reason);
    } finally {
      await dest.child.stop();
    }
  }
});

test('ferry migrate to a destination that refuses shows its reason; the source guest runs on intact', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-refusal-cli-'));
  const control = `unix:${join(dir, 'source.qmp')}`;
  const source = await startFerry(['run', '--ram', '64M', '--vcpus', '2', '--workload', 'sweep', '--qmp', control], /QMP control socket on/);
  const dest = await refusingDestination(['--ram', '32M']);
  let qmp: QmpClient | null = null;
  try {
    const out = await run(process.execPath, [ferry, 'migrate', '--qmp', control, '--to', dest.uri, '--json', '--baseline', '0'], { timeout: ENDS_MS })
      .then(() => assert.fail('the migration completed'), (e: { code: number; stdout: string }) => e);
    assert.equal(out.code, 1);
    const info = JSON.parse(out.stdout) as { status: string; 'error-desc': string; 'x-ferry-error-code': string };
    assert.equal(info.status, 'failed');
    assert.match(info['error-desc'], /^the destination refused the stream \(ram-size\): header: the guest has 64 MiB of RAM; this destination expects 32 MiB \(--ram\)$/);
    assert.equal(info['x-ferry-error-code'], 'ERR_FERRY_REFUSED');
    qmp = await QmpClient.connect(control);
    const status = (await qmp.execute('query-status')) as { status: string };
    assert.equal(status.status, 'running', 'the source guest runs on');
    // The sweep checker reads every vCPU's range: one monotone sequence with at most one step means no page was lost.
    const check = (await qmp.execute('x-ferry-check')) as { checked: number; ok: boolean; errors: string[] };
    assert.deepEqual(check, { checked: 2, ok: true, errors: [] });
    assert.equal(((await qmp.execute('query-status')) as { status: string }).status, 'running', 'and runs on after the check');
    const { code } = await bounded('the destination process to exit', dest.ended, ENDS_MS);
    assert.equal(code, 1);
  } finally {
    qmp?.close();
    await dest.child.stop();
    await source.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('ferry run without TLS options to a TLS ferry incoming is refused at once with a hint, and the destination says so', async () => {
  const { makeCerts } = await import('../transport/certs.js');
  const { writeFileSync } = await import('node:fs');
  const certs = makeCerts();
  const dir = mkdtempSync(join(tmpdir(), 'ferry-refusal-tls-'));
  const file = (name: string, text: string) => { writeFileSync(join(dir, name), text); return join(dir, name); };
  const dest = await startFerry(['incoming', '--listen', 'tcp:127.0.0.1:0', '--json',
    '--tls-cert', file('d.pem', certs.server.cert), '--tls-key', file('d.key', certs.server.key)], /"event":"listening"/);
  try {
    const { uri } = JSON.parse(dest.output.find((l) => l.includes('"listening"'))!) as { uri: string };
    const out = await run(process.execPath, [ferry, 'run', '--ram', '8M', '--seconds', '0.1', '--migrate-to', uri, '--json'], { timeout: ENDS_MS })
      .then(() => assert.fail('the migration completed'), (e: { code: number; stdout: string }) => e);
    assert.equal(out.code, 1);
    assert.match((JSON.parse(out.stdout) as { error: string }).error, /^the destination refused the stream \(tls\): this destination speaks TLS and the source sent plaintext .*--tls-ca/);
    await until('the destination to say it refused a plaintext source', () => dest.output.some((l) => /refused a source: this destination speaks TLS/.test(l)), ENDS_MS);
    assert.equal(dest.process.exitCode, null, 'the destination keeps listening for its source');
  } finally {
    await dest.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
