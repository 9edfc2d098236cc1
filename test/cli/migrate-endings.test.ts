/**
 * `ferry migrate --report FILE` writes its report however the migration
 * ends, completed, failed or cancelled (by the user, or by `--timeout`),
 * exits 0 only when it completed, and says as its last line how it ended
 * when it did not. After every ending but completion, the source guest
 * runs on. `ferry run --migrate-to` ends the same way when its --timeout
 * runs out.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { QmpClient } from '../../src/control/qmp-client.js';
import type { MigrateInfo } from '../../src/control/query-migrate.js';
import { bounded, fileLimit, until } from '../waits.js';

fileLimit(import.meta.url, 240_000);

const ferry = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'ferry-endings-'));
const control = `unix:${join(dir, 'guest.qmp')}`;
const guest = spawn(process.execPath, [ferry, 'run', '--ram', '16M', '--workload', 'sweep', '--qmp', control], { stdio: ['ignore', 'pipe', 'inherit'] });
const guestClosed = new Promise<void>((resolve) => guest.once('close', () => resolve()));
let qmp: QmpClient;

before(async () => {
  let out = '';
  guest.stdout!.on('data', (d: Buffer) => { out += d; });
  await until('the guest to serve QMP', () => out.includes('QMP control socket on'), 30_000);
  qmp = await QmpClient.connect(control);
});
after(async () => {
  qmp?.close();
  guest.kill('SIGKILL');
  await bounded('the guest process to exit', guestClosed, 30_000);
  rmSync(dir, { recursive: true, force: true });
});

/** `ferry migrate` to `to` with a report; its exit code, last line of stdout, and the report's text. */
async function migrate(to: string, report: string, ...flags: string[]): Promise<{ code: number; last: string; html: string }> {
  const args = [ferry, 'migrate', '--qmp', control, '--to', to, '--baseline', '0', '--report', join(dir, report), ...flags];
  const { code, stdout } = await bounded(`ferry migrate to ${to}`, new Promise<{ code: number; stdout: string }>((resolve) => {
    execFile(process.execPath, args, (err, stdout) => resolve({ code: err === null ? 0 : Number((err as { code?: number }).code), stdout }));
  }), 120_000);
  return { code, last: stdout.trimEnd().split('\n').at(-1) ?? '', html: readFileSync(join(dir, report), 'utf8') };
}

async function assertRunning(what: string): Promise<void> {
  const { status } = (await qmp.execute('query-status')) as { status: string };
  assert.equal(status, 'running', `${what}: the source guest runs on`);
}

test('cancelled by --timeout: exit 1, the reason as the last line, the report written with it; the guest runs on', async () => {
  // 16 MiB at 1 MiB/s: the one live pass of a save takes 16 s; the budget is 1 s.
  const r = await migrate(`file:${join(dir, 'timeout.ferry')}`, 'timeout.html', '--max-bandwidth', '1M', '--timeout', '1');
  assert.equal(r.code, 1);
  assert.match(r.last, /^ferry migrate: migration cancelled: timed out after [\d.]+ s \(timeout 1 s\): too early to tell: no pass has ended yet$/);
  assert.match(r.html, /cancelled: timed out after/);
  await assertRunning('timeout');
});

test('failed (nobody listens): exit 1, the reason as the last line, the report written; the guest runs on', async () => {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  const r = await migrate(`tcp:127.0.0.1:${port}`, 'failed.html', '--timeout', '0');
  assert.equal(r.code, 1);
  assert.match(r.last, /^ferry migrate: migration failed: /);
  assert.match(r.html, /failed: /);
  await assertRunning('failed');
});

test('cancelled by the user (migrate_cancel): exit 1, the report written; the guest runs on', async () => {
  const running = migrate(`file:${join(dir, 'cancel.ferry')}`, 'cancel.html', '--max-bandwidth', '1M', '--timeout', '0');
  await until('the migration to be active', async () => ((await qmp.execute('query-migrate')) as MigrateInfo).status === 'active', 30_000);
  await qmp.execute('migrate_cancel');
  const r = await running;
  assert.equal(r.code, 1);
  assert.equal(r.last, 'ferry migrate: migration cancelled');
  assert.match(r.html, /cancelled/);
  await assertRunning('cancelled');
});

test('completed: exit 0 and the report written', async () => {
  const r = await migrate(`file:${join(dir, 'done.ferry')}`, 'done.html', '--max-bandwidth', '0'); // parameters stay set across migrations
  assert.equal(r.code, 0);
  assert.equal(r.last, `report written to ${join(dir, 'done.html')}`);
  assert.match(r.html, /completed/);
});

test('ferry run --migrate-to --timeout: cancelled, exit 1, the reason as the last line', async () => {
  const args = [ferry, 'run', '--ram', '16M', '--workload', 'sweep', '--seconds', '0.5', '--migrate-to', `file:${join(dir, 'run.ferry')}`,
    '--max-bandwidth', '1M', '--timeout', '1'];
  const { code, stdout } = await bounded('ferry run to end', new Promise<{ code: number; stdout: string }>((resolve) => {
    execFile(process.execPath, args, (err, stdout) => resolve({ code: err === null ? 0 : Number((err as { code?: number }).code), stdout }));
  }), 120_000);
  assert.equal(code, 1);
  assert.match(stdout.trimEnd().split('\n').at(-1) ?? '', /^ferry run: migration cancelled: timed out after [\d.]+ s \(timeout 1 s\): too early to tell: no pass has ended yet$/);
});
