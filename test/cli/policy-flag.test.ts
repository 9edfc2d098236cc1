/** `--policy KEY=VALUE,...` (cli/policy-flag.ts): what it sets, and its refusals, each naming the key. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parsePolicy, policyUsage } from '../../src/cli/policy-flag.js';
import { fileLimit } from '../waits.js';

fileLimit(import.meta.url, 30_000);

test('--policy sets its rows: durations in s, ms, m or bare seconds, switches on and off', () => {
  assert.deepEqual(parsePolicy(undefined), {});
  assert.deepEqual(parsePolicy('progress-timeout=10s,budget-per-gib=2m,throttle=off,postcopy=on,postcopy-after=1.5,pause-and-finish=yes'), {
    progressTimeoutMs: 10_000, completionBudgetPerGiBMs: 120_000, policyThrottle: 0, policyPostcopy: 1, postcopyAfterMs: 1500, pauseAndFinish: 1,
  });
  assert.deepEqual(parsePolicy('progress-timeout=500ms'), { progressTimeoutMs: 500 });
  for (const key of ['progress-timeout', 'budget-per-gib', 'throttle', 'postcopy', 'postcopy-after', 'pause-and-finish']) {
    assert.match(policyUsage(24), new RegExp(`${key}=`), key);
  }
});

test('--policy refuses, naming what was wrong: an unknown key, a missing value, a bad switch or duration, a value out of range', () => {
  assert.throws(() => parsePolicy('progres-timeout=1s'), /--policy: unknown key "progres-timeout"; known: progress-timeout, /);
  assert.throws(() => parsePolicy('throttle'), /--policy: throttle needs a value \(throttle=\.\.\.\)/);
  for (const bad of ['maybe', 'constructor', 'toString']) {
    assert.throws(() => parsePolicy(`throttle=${bad}`), new RegExp(`--policy: throttle must be on or off, got "${bad}"`), bad);
  }
  assert.throws(() => parsePolicy('progress-timeout=soon'), /--policy: progress-timeout must be a duration such as 30s, 500ms or 2m, got "soon"/);
  assert.throws(() => parsePolicy('postcopy-after=31d'), /postcopy-after must be a duration/);
  assert.throws(() => parsePolicy('postcopy-after=1000000h'), /--policy postcopy-after \(in ms\) must be an integer in \[0, 2592000000\]/);
});
