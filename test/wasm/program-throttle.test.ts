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

test('a throttled program sleeps its share at its polls, prints the same, pauses, and runs free again at 0', async () => {
  const module = await instrumentedProgram('moments', cache);
  const args = ['loop', '400'];
  const ref = await referenceOutput('moments', args);
  const g = await programGuest(module, 'moments', args, dir);
  await g.guest.cont();
  g.guest.throttle(75);
  let done = false;
  void g.exited.then(() => { done = true; });
  // Sleep is asked for 3 times what ran: at 75 %, sleep / (run + sleep) = 0.75.
  const stats = () => g.guest.vcpuStats()[0];
  await until('the throttled vCPU to sleep', () => stats().throttleAskedNs > 50e6 || done, 30_000);
  assert.ok(!done, 'the program ended before the throttle was seen: give it more work');
  for (let i = 0; i < 5 && !done; i++) {
    await g.guest.pause();
    const s = stats();
    const share = s.throttleNs / (s.throttleNs + s.busyNs);
    assert.ok(share > 0.5 && share < 0.9, `the throttle's share of the vCPU's time is ${share.toFixed(2)} (asked 0.75)`);
    await g.guest.resume();
    await new Promise((r) => setTimeout(r, 30));
  }
  g.guest.throttle(0);
  const asked = stats().throttleAskedNs;
  await new Promise((r) => setTimeout(r, 100));
  assert.ok(stats().throttleAskedNs - asked < 20e6, 'throttle 0: the vCPU stops sleeping (at most the sleep already under way)');
  assert.equal(await bounded('the program to exit', g.exited, 60_000), 0);
  assert.equal(g.out.read(), ref.stdout, 'throttled and paused, the program prints what it prints unthrottled');
});
