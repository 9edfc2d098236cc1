/**
 * A throttled WebAssembly vCPU (issue 14: auto-converge must throttle a
 * program too): a program looks at nothing but its poll word, so while a
 * throttle is on the guest rings its doorbell every slice and the vCPU
 * sleeps its share at the poll that sees it, without unwinding. Throttled,
 * the program still prints exactly what it prints unthrottled
 * (invariant 8), its vCPU's own accounting shows the sleep in the share
 * asked, a pause still reaches it (also in the middle of a throttle sleep),
 * and throttle 0 stops the sleeping.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bounded, fileLimit, until } from '../waits.js';
import { instrumentedProgram, programGuest, referenceOutput, scratch, sharedCache } from './program-harness.js';

fileLimit(import.meta.url, 120_000);
const { dir } = scratch();
const cache = sharedCache();

test('a throttled program sleeps its share at its polls, prints the same, answers a pause mid-sleep, and runs free again at 0', async () => {
  const module = await instrumentedProgram('moments', cache);
  const args = ['loop', '1200'];
  const ref = await referenceOutput('moments', args);
  const g = await programGuest(module, 'moments', args, dir);
  let done = false;
  void g.exited.then(() => { done = true; });
  const stats = () => g.guest.vcpuStats()[0];
  await g.guest.cont();
  // Throttled after it has run a while: its first sleep answers for its last 20 ms at most, not for all it ran.
  await until('the program to print 3 lines', () => g.out.read().split('\n').length > 3 || done, 60_000);
  await g.guest.pause(); // (the vCPU's busy time is counted when it stops running)
  const s0 = stats();
  g.guest.throttle(75);
  await g.guest.resume();
  await until('the first throttle sleep', () => stats().throttleAskedNs > 0 || done, 60_000);
  assert.ok(stats().throttleAskedNs <= 3 * 20e6 * 1.01, `the first sleep asked ${stats().throttleAskedNs / 1e6} ms (at most 3 x 20 ms)`);
  // At 75 % each sleep asked is 3 times the run before it (capped at 20 ms of run): asked / (asked + busy) = 0.75,
  // counted from the vCPU's own accounting (what was asked, whatever cut a sleep short).
  await until('the throttled vCPU to ask for 200 ms of sleep', () => stats().throttleAskedNs > 200e6 || done, 60_000);
  assert.ok(!done, 'the program ended before the throttle was seen: give it more work');
  await g.guest.pause();
  const s = stats();
  const share = s.throttleAskedNs / (s.throttleAskedNs + s.busyNs - s0.busyNs);
  assert.ok(share > 0.6 && share < 0.8, `the throttle's share of the vCPU's time is ${share.toFixed(2)} (asked 0.75)`);
  // At 99 % a sleep is about 2 s (99 times a 20 ms run): a pause asked during one ends it, so less is slept than asked.
  g.guest.throttle(99);
  await g.guest.resume();
  // A sleep is under way when more has been asked than slept (a sleep's slept time is counted when it ends).
  const owed = () => stats().throttleAskedNs - stats().throttleNs;
  const before = owed();
  await until('a 99 % throttle sleep of over 0.5 s to be under way', () => owed() - before > 0.5e9 || done, 60_000);
  await bounded('a pause during a throttle sleep', g.guest.pause(), 10_000);
  assert.ok(owed() - before > 0.3e9, `the pause cut the sleep short: ${(owed() - before) / 1e6} ms asked and not slept`);
  // Throttle 0 also ends a sleep under way: the program then runs to its end at full speed.
  await g.guest.resume();
  g.guest.throttle(0);
  assert.equal(await bounded('the program to exit once free', g.exited, 60_000), 0);
  assert.equal(g.out.read(), ref.stdout, 'throttled and paused, the program prints what it prints unthrottled');
});
