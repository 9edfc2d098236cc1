/**
 * Page data for the codec tests and bench/compression.ts, deterministic
 * from a seed, shaped as the guests' workloads write it: zero pages, random
 * pages (fill data=random), text-like pages (fill data=text: words from a
 * small vocabulary), sweep pages (a counter in the first and last word of
 * an otherwise zero page, as the sweep workload) and a mix of all four.
 */
import { PAGE_SIZE } from '../../src/memory/page.js';
import { mix32, xorshift32 } from '../../src/guest/workloads/prng.js';

export type SampleKind = 'zero' | 'random' | 'text' | 'sweep' | 'mixed';
export const SAMPLE_KINDS: readonly SampleKind[] = ['zero', 'random', 'text', 'sweep', 'mixed'];

const WORDS = [
  'the', 'guest', 'page', 'memory', 'migration', 'dirty', 'bitmap', 'of', 'and', 'a', 'to', 'is', 'in',
  'bandwidth', 'downtime', 'switchover', 'source', 'destination', 'running', 'paused', 'zero', 'send',
].map((w) => new TextEncoder().encode(`${w} `));

function fillPage(out: Uint8Array, kind: Exclude<SampleKind, 'mixed'>, page: number, seed: number): void {
  let rng = mix32(seed ^ Math.imul(page + 1, 0x9e3779b1)) || 1;
  const words = new Uint32Array(out.buffer, out.byteOffset, PAGE_SIZE / 4);
  if (kind === 'zero') return;
  if (kind === 'sweep') {
    words[0] = words[words.length - 1] = seed + page;
    return;
  }
  if (kind === 'random') {
    for (let i = 0; i < words.length; i++) words[i] = rng = xorshift32(rng);
    return;
  }
  for (let at = 0; at < PAGE_SIZE;) {
    rng = xorshift32(rng);
    const w = WORDS[rng % WORDS.length];
    const n = Math.min(w.length, PAGE_SIZE - at);
    out.set(w.subarray(0, n), at);
    at += n;
  }
}

const MIX: readonly Exclude<SampleKind, 'mixed'>[] = ['random', 'text', 'zero', 'sweep'];

/** `pages` pages of `kind`, as one packet's page data. */
export function samplePages(kind: SampleKind, pages: number, seed = 1): Uint8Array {
  const out = new Uint8Array(pages * PAGE_SIZE);
  for (let p = 0; p < pages; p++) {
    fillPage(out.subarray(p * PAGE_SIZE, (p + 1) * PAGE_SIZE), kind === 'mixed' ? MIX[p % MIX.length] : kind, p, seed);
  }
  return out;
}
