/**
 * A RAM block's reserved tail: bytes of its WebAssembly.Memory past the
 * block's last page, which belong to whoever runs in the memory (for a
 * WebAssembly guest, ferry's own data: src/wasm/layout.ts) and never to
 * guest RAM. The block's pages, its dirty log, its `bytes` view and its
 * zero scanner end where the tail begins, so the tail is never sent,
 * digested or compared.
 *
 *   0 ............ sizeBytes ................................ memory end
 *   | guest pages  | tail (tailBytes, then up to the 64 KiB unit) |
 *                    ^ markMap.offset: u8[pages]  (mark-map.ts)
 *                    ^ sizeWord.offset: i32, the size in use in unitBytes
 *
 * Two generic things may live in the tail, each optional:
 * - a mark map: one byte per block page, a second producer of the dirty log
 *   that writers mark with plain stores (dirty-log.ts argues why that is
 *   safe, and on which CPUs);
 * - a size word: how much of the block is in use, in units of `unitBytes`
 *   (a WebAssembly guest's `memory.size`, in 64 KiB pages). Pages past it
 *   are known zero and are never sent; a migration sends its growth.
 */
import { InvalidArgumentError } from '../errors.js';
import { MAX_BLOCK_BYTES, PAGE_SIZE, WASM_PAGE_SIZE } from './page.js';

/** How RamBlock.create lays out a block (all optional). */
export interface RamBlockOptions {
  /** Client slots of the dirty log (dirty-log.ts DEFAULT_MAX_CLIENTS). */
  readonly maxClients?: number;
  /** Bytes of memory past the block's pages, the reserved tail (default 0). */
  readonly tailBytes?: number;
  /** A byte map of marks in the tail, one byte per block page. */
  readonly markMap?: { readonly offset: number };
  /** An i32 in the tail holding the size in use, in units of `unitBytes` (a multiple of 4 KiB). */
  readonly sizeWord?: { readonly offset: number; readonly unitBytes: number };
}

/** The tail as every thread's RamBlock sees it (in RamBlockShared). */
export interface BlockTail {
  readonly tailBytes: number;
  readonly markMap: { readonly offset: number } | null;
  readonly sizeWord: { readonly offset: number; readonly unitBytes: number } | null;
}

export const NO_TAIL: BlockTail = { tailBytes: 0, markMap: null, sizeWord: null };

/** The 64 KiB pages of the memory for a block of `sizeBytes` with `tailBytes` after it. */
export function memoryPages(sizeBytes: number, tailBytes: number): number {
  return Math.ceil((sizeBytes + tailBytes) / WASM_PAGE_SIZE);
}

/** Check `options`' tail for a block of `sizeBytes` (what: the block, for messages). */
export function checkTail(what: string, sizeBytes: number, options: RamBlockOptions): BlockTail {
  const tailBytes = options.tailBytes ?? 0;
  if (!Number.isSafeInteger(tailBytes) || tailBytes < 0) {
    throw new InvalidArgumentError(`${what}: tailBytes must be a non-negative integer, got ${String(tailBytes)}`);
  }
  const end = memoryPages(sizeBytes, tailBytes) * WASM_PAGE_SIZE;
  if (end > MAX_BLOCK_BYTES) {
    throw new InvalidArgumentError(`${what}: ${sizeBytes} bytes and a tail of ${tailBytes} make ${end} bytes of memory, over the 4 GiB of one memory`);
  }
  const pages = sizeBytes / PAGE_SIZE;
  const markMap = options.markMap === undefined ? null : { offset: options.markMap.offset };
  if (markMap !== null) checkField(what, 'markMap', markMap.offset, pages, sizeBytes, sizeBytes + tailBytes);
  let sizeWord: BlockTail['sizeWord'] = null;
  if (options.sizeWord !== undefined) {
    const { offset, unitBytes } = options.sizeWord;
    checkField(what, 'sizeWord', offset, 4, sizeBytes, sizeBytes + tailBytes);
    if (!Number.isSafeInteger(unitBytes) || unitBytes < PAGE_SIZE || unitBytes % PAGE_SIZE !== 0) {
      throw new InvalidArgumentError(`${what}: sizeWord.unitBytes must be a positive multiple of ${PAGE_SIZE}, got ${String(unitBytes)}`);
    }
    if (markMap !== null && offset < markMap.offset + pages && markMap.offset < offset + 4) {
      throw new InvalidArgumentError(`${what}: the size word at ${offset} overlaps the mark map at ${markMap.offset}+${pages}`);
    }
    sizeWord = { offset, unitBytes };
  }
  return { tailBytes, markMap, sizeWord };
}

/** A tail field of `bytes` at `offset`: 4-byte aligned, inside [tailStart, tailEnd). */
function checkField(what: string, field: string, offset: number, bytes: number, tailStart: number, tailEnd: number): void {
  if (!Number.isSafeInteger(offset) || offset % 4 !== 0 || offset < tailStart || offset + bytes > tailEnd) {
    throw new InvalidArgumentError(
      `${what}: ${field} of ${bytes} bytes at offset ${String(offset)} must be 4-byte aligned and inside the tail [${tailStart}, ${tailEnd})`);
  }
}
