/**
 * The demo's verdict follows its downtime: a migration whose downtime
 * exceeded the demo's limit does not pass, and says so.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { fileLimit } from '../waits.js';

fileLimit(import.meta.url, 120_000);

const run = promisify(execFile);
const ferry = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

test('ferry demo with a downtime limit no switchover can meet completes, but says the limit was exceeded and does not pass', async () => {
  // An idle guest has nothing left to send, and a 6 ms limit is above an idle host's switchover (5 ms), so the rule
  // switches over though its fixed cost (10 ms) says the limit cannot be met (switchover-rule.ts nothingLeft); a
  // switchover between two processes (pause, LOADED, GO and RESUMED round trips) takes several times that (21-40 ms seen here).
  const args = [ferry, 'demo', '--ram', '16M', '--workload', 'idle', '--downtime-limit', '6'];
  const outcome = await run(process.execPath, args, { timeout: 90_000, maxBuffer: 64 * 1024 * 1024 }).then(
    (r) => ({ code: 0, stdout: r.stdout }),
    (err: { code: number; stdout: string }) => ({ code: err.code, stdout: err.stdout }),
  );
  assert.match(outcome.stdout, /status\s+completed/, 'the migration itself completed');
  assert.match(outcome.stdout, /downtime limit\s+EXCEEDED: \d+ ms against a limit of 6 ms/);
  assert.doesNotMatch(outcome.stdout, /demo passed/);
  assert.match(outcome.stdout, /demo FAILED$/m);
  assert.equal(outcome.code, 1);
});
