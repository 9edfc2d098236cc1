/** Page geometry shared by every layer. */
import { InvalidArgumentError } from '../errors.js';

/** Guest page size in bytes (x86's base page, as QEMU's TARGET_PAGE_SIZE). */
export const PAGE_SIZE = 4096;
export const PAGE_SHIFT = 12;

/** Pages per 32-bit bitmap word. */
export const PAGES_PER_WORD = 32;

/** A WebAssembly memory grows in 64 KiB units. */
export const WASM_PAGE_SIZE = 65536;

/**
 * Largest RAM block: Node 20 caps both a shared WebAssembly.Memory (no
 * memory64 without a flag) and a Uint8Array view at 4 GiB.
 */
export const MAX_BLOCK_BYTES = 4 * 1024 ** 3;
export const MAX_BLOCK_PAGES = MAX_BLOCK_BYTES / PAGE_SIZE;

/** Validate a byte size for guest RAM and return its page count. */
export function pagesForBytes(what: string, bytes: number, maxBytes = MAX_BLOCK_BYTES): number {
  if (typeof bytes !== 'number' || !Number.isSafeInteger(bytes)) {
    throw new InvalidArgumentError(`${what}: size must be an integer number of bytes, got ${String(bytes)}`);
  }
  if (bytes <= 0) throw new InvalidArgumentError(`${what}: size must be positive, got ${bytes}`);
  if (bytes % PAGE_SIZE !== 0) {
    throw new InvalidArgumentError(`${what}: size ${bytes} is not a multiple of the ${PAGE_SIZE}-byte page`);
  }
  if (bytes > maxBytes) {
    throw new InvalidArgumentError(`${what}: size ${bytes} exceeds the ${maxBytes}-byte limit of one block`);
  }
  return bytes / PAGE_SIZE;
}

/** Number of 32-bit words for a bitmap of `pages` bits. */
export function wordsForPages(pages: number): number {
  return Math.ceil(pages / PAGES_PER_WORD);
}
