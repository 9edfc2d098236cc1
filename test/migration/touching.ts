/**
 * A guest for post-copy's tests (invariant 7): 8 MiB of pseudo-random bytes
 * whose two vCPUs touch pages at random, and what their touches leave with
 * every page present (replayed without migration), to compare contents.
 */
import type { Guest } from '../../src/guest/guest.js';
import { replayTouches, type TouchSpec } from '../../src/guest/workloads/index.js';
import { xorshift32 } from '../../src/guest/workloads/prng.js';
import { GuestMemory } from '../../src/memory/guest-memory.js';
import { PAGE_SIZE } from '../../src/memory/page.js';
import { RamBlock } from '../../src/memory/ram-block.js';
import { guest } from './helpers.js';

export const PAGES = 2048;

/** The guest, throttled to 95 % so that most touches are left for the destination, and running. */
export async function touchingGuest(touches: number): Promise<{ g: Guest; initial: Uint8Array; specs: TouchSpec[] }> {
  const specs: TouchSpec[] = [
    { kind: 'touch', pages: PAGES, lane: 0, seed: 11, touches },
    { kind: 'touch', pages: PAGES, lane: 1, seed: 12, touches },
  ];
  const g = await guest({ ram: PAGES * PAGE_SIZE, vcpus: specs });
  const words = new Uint32Array(PAGES * 1024);
  let x = 777;
  for (let i = 0; i < words.length; i++) words[i] = x = xorshift32(x);
  const initial = new Uint8Array(words.buffer);
  g.ram.write(0, initial);
  g.throttle(95);
  await g.cont();
  return { g, initial, specs };
}

/** What the touches leave over `initial` with every page present. */
export function replayed(initial: Uint8Array, specs: TouchSpec[]): Uint8Array {
  const block = RamBlock.create('ram0', PAGES * PAGE_SIZE);
  block.bytes.set(initial);
  replayTouches(specs, new GuestMemory([block]));
  return block.bytes;
}

/** Pages whose bytes differ between `a` and `b`. */
export function differingPages(a: Uint8Array, b: Uint8Array): number[] {
  const out: number[] = [];
  for (let p = 0; p < a.length / PAGE_SIZE; p++) {
    if (Buffer.compare(a.subarray(p * PAGE_SIZE, (p + 1) * PAGE_SIZE), b.subarray(p * PAGE_SIZE, (p + 1) * PAGE_SIZE)) !== 0) out.push(p);
  }
  return out;
}
