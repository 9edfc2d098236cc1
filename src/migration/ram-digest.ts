/**
 * The verify mode's digest of guest RAM: SHA-256 over every block in order,
 * computed in each process (the source at pause, the destination before it
 * answers LOADED). Pages never written read as zero on both sides.
 */
import { createHash } from 'node:crypto';
import type { RamBlock } from '../memory/ram-block.js';

const PIECE = 64 * 1024 * 1024;

export function ramDigest(blocks: readonly RamBlock[]): Buffer {
  const hash = createHash('sha256');
  for (const b of blocks) {
    for (let at = 0; at < b.byteLength; at += PIECE) hash.update(b.bytes.subarray(at, Math.min(at + PIECE, b.byteLength)));
  }
  return hash.digest();
}
