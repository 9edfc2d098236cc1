/**
 * A client of a RAM block's dirty log that keeps a copy of the block, as a
 * migration does: the check of DESIGN.md invariant 1 on contents.
 */
import { PAGE_SIZE } from '../../src/memory/page.js';
import type { RamBlock } from '../../src/memory/ram-block.js';

/**
 * A dirty-log client's copy of a block, as a migration keeps one: it
 * registers, copies every page in use then (a first pass), and after each
 * sync copies the pages that sync reported dirty.
 */
export function pageCopy(block: RamBlock): { copy: Uint8Array; registeredPages: number; harvest(): number; release(): void } {
  const client = block.log.register();
  const copy = new Uint8Array(block.byteLength);
  const registeredPages = block.visiblePages();
  copy.set(block.bytes.subarray(0, registeredPages * PAGE_SIZE));
  const bits = new Int32Array(Math.ceil(block.pages / 32));
  const harvest = (): number => {
    const taken = client.syncAndTake(0, block.pages, bits);
    for (let w = 0; w < bits.length; w++) {
      for (let b = 0; bits[w] !== 0 && b < 32; b++) {
        if ((bits[w] & (1 << b)) === 0) continue;
        const p = w * 32 + b;
        copy.set(block.bytes.subarray(p * PAGE_SIZE, (p + 1) * PAGE_SIZE), p * PAGE_SIZE);
      }
    }
    return taken;
  };
  return { copy, registeredPages, harvest, release: () => client.unregister() };
}

/** Whether pages [from, to) of the copy equal the block's. */
export function sameBytes(copy: Uint8Array, block: RamBlock, from: number, to: number): boolean {
  const [a, b] = [copy, block.bytes].map((x) => Buffer.from(x.buffer, x.byteOffset + from * PAGE_SIZE, (to - from) * PAGE_SIZE));
  return a.equals(b);
}
