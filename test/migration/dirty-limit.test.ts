/**
 * dirty-limit's rules (src/migration/dirty-limit.ts) as pure functions: the
 * trigger (auto-converge's, with the quota instead of a CPU throttle) and
 * the per-vCPU throttle that brings a vCPU's measured rate to the quota;
 * and its place in the policy (migration-policy.ts).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { dirtyLimitThrottle, dirtyLimitTrigger, NOT_LIMITED, PAGES_PER_MB, type DirtyLimitParameters, type DirtyLimitState } from '../../src/migration/dirty-limit.js';
import { decidePolicy } from '../../src/migration/migration-policy.js';
import { DEFAULT_PARAMETERS } from '../../src/migration/parameters.js';
import { fileLimit } from '../waits.js';

fileLimit(import.meta.url, 30_000);

const MiB = 2 ** 20;
const QEMU: DirtyLimitParameters = DEFAULT_PARAMETERS;
const period = (dirtied: number) => ({ dirtiedBytes: dirtied * MiB, sentBytes: 100 * MiB });
/** `mb` MB/s as pages per second. */
const mbps = (mb: number) => mb * PAGES_PER_MB;

test("QEMU 8.1's defaults: vcpu-dirty-limit 1 MB/s, x-vcpu-dirty-limit-period 1000 ms; MB is MiB (256 pages of 4 KiB)", () => {
  assert.equal(DEFAULT_PARAMETERS.vcpuDirtyLimitMBPerSec, 1);
  assert.equal(DEFAULT_PARAMETERS.vcpuDirtyLimitPeriodMs, 1000);
  assert.equal(PAGES_PER_MB, 256);
});

test('the trigger: two high periods (not necessarily consecutive) engage the quota; a later trigger changes nothing unless vcpu-dirty-limit changed', () => {
  let state: DirtyLimitState = NOT_LIMITED;
  const whys: (string | undefined)[] = [];
  for (const d of [60, 10, 60, 60, 60]) {
    const step = dirtyLimitTrigger(state, period(d), QEMU);
    state = step.state;
    whys.push(step.why);
  }
  assert.deepEqual(whys.map((w) => w !== undefined), [false, false, true, false, false]);
  assert.match(whys[2]!, /dirtied 60 MiB in a period that sent 100 MiB \(more than the 50 % trigger\) in 2 periods: every vCPU limited to 1 MB\/s/);
  assert.equal(state.quotaMBPerSec, 1);
  assert.equal(state.highPeriods, 0, 'the fifth period triggered again, with nothing to change');
  const changed = dirtyLimitTrigger({ quotaMBPerSec: 1, highPeriods: 1 }, period(60), { ...QEMU, vcpuDirtyLimitMBPerSec: 8 });
  assert.equal(changed.state.quotaMBPerSec, 8);
  assert.match(changed.why!, /the vCPUs' limit 1 -> 8 MB\/s/);
  assert.equal(dirtyLimitTrigger(NOT_LIMITED, period(50), QEMU).state.highPeriods, 0, 'exactly at the threshold is not high');
});

test('the throttle brings a writer to its quota in one step when its rate scales with its run time', () => {
  // 100 MB/s unthrottled, quota 25: run 25 % of the time.
  assert.equal(dirtyLimitThrottle({ dirtyPagesPerSec: mbps(100), throttlePercent: 0 }, 25), 75);
  // Measured at 75 %: 25 MB/s, on quota: it stays.
  assert.equal(dirtyLimitThrottle({ dirtyPagesPerSec: mbps(25), throttlePercent: 75 }, 25), 75);
  // Rounded up: 30 MB/s against 8 runs 26.7 % of the time, throttle 74 (73 would let 8.1 MB/s through).
  assert.equal(dirtyLimitThrottle({ dirtyPagesPerSec: mbps(30), throttlePercent: 0 }, 8), 74);
  // Never above 99: 1 GB/s against 1 MB/s would need 99.9 %.
  assert.equal(dirtyLimitThrottle({ dirtyPagesPerSec: mbps(1000), throttlePercent: 0 }, 1), 99);
  assert.equal(dirtyLimitThrottle({ dirtyPagesPerSec: mbps(50), throttlePercent: 99 }, 1), 99);
});

test('a vCPU under its quota is not slowed; one that slowed down is released by as much as its rate allows, one that stopped dirtying at once', () => {
  assert.equal(dirtyLimitThrottle({ dirtyPagesPerSec: mbps(0.5), throttlePercent: 0 }, 1), 0, 'under quota, unthrottled: stays at 0');
  assert.equal(dirtyLimitThrottle({ dirtyPagesPerSec: 0, throttlePercent: 0 }, 1), 0, 'a reader: 0');
  assert.equal(dirtyLimitThrottle({ dirtyPagesPerSec: 0, throttlePercent: 90 }, 1), 0, 'stopped dirtying: released at once');
  // At 80 % it dirtied 10 MB/s against 20: it may run 40 % of the time.
  assert.equal(dirtyLimitThrottle({ dirtyPagesPerSec: mbps(10), throttlePercent: 80 }, 20), 60);
  // Just under quota: released a little, not to 0.
  assert.equal(dirtyLimitThrottle({ dirtyPagesPerSec: mbps(9), throttlePercent: 90 }, 10), 89);
});

test('a paced vCPU whose rate does not yet respond: the run share shrinks geometrically until it does', () => {
  // Busy 4 % of the time at 100 MB/s: its rate holds until the throttle leaves it less than 4 %.
  const rateAt = (p: number) => (100 - p >= 4 ? mbps(100) : (mbps(100) * (100 - p)) / 4);
  let p = 0;
  const seen: number[] = [];
  for (let i = 0; i < 8; i++) {
    p = dirtyLimitThrottle({ dirtyPagesPerSec: rateAt(p), throttlePercent: p }, 50);
    seen.push(p);
  }
  assert.deepEqual(seen.slice(0, 5), [50, 75, 88, 94, 97]);
  assert.equal(seen.at(-1), 98, 'settles where it dirties at most the quota');
  assert.ok(rateAt(98) <= mbps(50));
});

test('the policy: with dirty-limit on, the trigger answers dirty-limit with its quota; the time budget still comes first', () => {
  const recent = [{ remainingBytes: 100 * MiB, dirtyBytesPerSec: 200 * MiB, bandwidthBytesPerSec: 100 * MiB }];
  const ask = (state: DirtyLimitState, elapsedMs = 1000, timeoutMs = 0) => decidePolicy({
    elapsedMs, timeoutMs, recent, dirtyLimit: { parameters: { ...QEMU, vcpuDirtyLimitMBPerSec: 4 }, state, period: period(80) },
  });
  const first = ask(NOT_LIMITED);
  assert.equal(first.action.kind, 'continue');
  assert.deepEqual(first.dirtyLimit, { quotaMBPerSec: 0, highPeriods: 1 });
  const second = ask(first.dirtyLimit!);
  assert.deepEqual(second.action, { kind: 'dirty-limit', quotaMBPerSec: 4, reason: second.action.kind === 'dirty-limit' ? second.action.reason : '' });
  assert.equal(second.autoConverge, undefined, 'auto-converge is off');
  assert.equal(ask(first.dirtyLimit!, 5000, 3000).action.kind, 'cancel');
  const off = decidePolicy({ elapsedMs: 1000, timeoutMs: 0, recent });
  assert.equal(off.dirtyLimit, undefined, 'no state when the capability is off');
});
