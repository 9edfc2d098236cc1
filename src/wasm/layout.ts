/**
 * Where a WebAssembly guest's memory puts the program's bytes and ferry's.
 *
 * The program's linear memory is one shared WebAssembly.Memory, created at
 * its whole size up front (the operating system commits a page only when it
 * is first touched, so the untouched part costs nothing). The program sees
 * only the bottom `guestMaxPages` 64 KiB pages, and of those only the
 * `memory.size` it has grown to: `memory.size` and `memory.grow` are
 * rewritten to read and bump the virtual size kept in SIZE below. Above the
 * program's maximum lies ferry's reserved region:
 *
 *   reservedBase + 0      POLL     i32   non-zero: a request waits (the vCPU polls it with an atomic load)
 *   reservedBase + 64     SIZE     i32   the program's memory.size, in 64 KiB pages
 *   reservedBase + 128    UNWIND   i32 cur, i32 end: Asyncify's data structure
 *   reservedBase + 4096   MARKS    u8[guest 4 KiB pages]: 1 = the page was written since the last harvest
 *   marks end (4 KiB-aligned)      the unwind buffer: the stack as Asyncify saves it, `unwindBufferBytes`
 *   the rest, to a 64 KiB boundary: unused
 *
 * The reserved region is not guest RAM: the RAM block's pages end at
 * reservedBase, so it is never sent, digested or compared. Stores are not
 * bounds-checked against the virtual size (that would cost a compare per
 * store): a store between the program's memory.size and its maximum does
 * not trap, as it would unvirtualised, and a store above its maximum lands
 * in this region instead of trapping. Only a faulty program does either,
 * and it harms only itself (its own marks, poll word or saved stack), never
 * the host or ferry's other state (DESIGN.md section 7).
 */
import { InvalidArgumentError } from '../errors.js';
import { PAGE_SIZE, WASM_PAGE_SIZE } from '../memory/page.js';

/** The largest memory a wasm32 module can have: 65536 pages of 64 KiB. */
export const MAX_WASM_MEMORY_BYTES = 4 * 1024 ** 3;
/** Default size of the unwind buffer (Asyncify's saved frames and locals). */
export const DEFAULT_UNWIND_BUFFER_BYTES = 1024 * 1024;
/** Largest unwind buffer: the unwound stack travels in a VCPU record, at most 4 MiB with the rest of the vCPU's state. */
export const MAX_UNWIND_BUFFER_BYTES = 3 * 1024 * 1024;

const POLL = 0;
const SIZE = 64;
const UNWIND = 128;
const MARKS = 4096;

export interface WasmLayout {
  /** The program's declared maximum (after --wasm-max-memory), 64 KiB pages. */
  readonly guestMaxPages: number;
  /** Byte offset of the reserved region = the end of guest RAM. */
  readonly reservedBase: number;
  /** 64 KiB pages of the whole memory: guest and reserved. */
  readonly totalPages: number;
  /** Byte offsets of the fields drawn above. */
  readonly pollOffset: number;
  readonly sizeOffset: number;
  readonly unwindDataOffset: number;
  readonly marksOffset: number;
  /** Bytes of the mark map: one per 4 KiB guest page. */
  readonly marksBytes: number;
  readonly unwindBufferOffset: number;
  readonly unwindBufferBytes: number;
}

const roundUp = (n: number, unit: number): number => Math.ceil(n / unit) * unit;

/** The layout for a program that may grow to `guestMaxPages` 64 KiB pages. */
export function wasmLayout(guestMaxPages: number, unwindBufferBytes = DEFAULT_UNWIND_BUFFER_BYTES): WasmLayout {
  if (!Number.isSafeInteger(guestMaxPages) || guestMaxPages < 1) {
    throw new InvalidArgumentError(`WebAssembly memory: the maximum must be at least one 64 KiB page, got ${guestMaxPages}`);
  }
  if (!Number.isSafeInteger(unwindBufferBytes) || unwindBufferBytes < PAGE_SIZE || unwindBufferBytes % PAGE_SIZE !== 0 ||
    unwindBufferBytes > MAX_UNWIND_BUFFER_BYTES) {
    throw new InvalidArgumentError(
      `WebAssembly unwind buffer: ${unwindBufferBytes} bytes must be a multiple of ${PAGE_SIZE} from ${PAGE_SIZE} to ${MAX_UNWIND_BUFFER_BYTES}`);
  }
  const reservedBase = guestMaxPages * WASM_PAGE_SIZE;
  const marksBytes = reservedBase / PAGE_SIZE;
  const unwindBufferOffset = reservedBase + roundUp(MARKS + marksBytes, PAGE_SIZE);
  const end = unwindBufferOffset + unwindBufferBytes;
  const totalPages = roundUp(end, WASM_PAGE_SIZE) / WASM_PAGE_SIZE;
  if (totalPages * WASM_PAGE_SIZE > MAX_WASM_MEMORY_BYTES) {
    const room = MAX_WASM_MEMORY_BYTES - (totalPages - guestMaxPages) * WASM_PAGE_SIZE;
    throw new InvalidArgumentError(
      `WebAssembly memory: a maximum of ${reservedBase} bytes leaves no room for ferry's reserved region of ` +
      `${(totalPages - guestMaxPages) * WASM_PAGE_SIZE} bytes within 4 GiB; the largest maximum is ${room} bytes`);
  }
  return {
    guestMaxPages, reservedBase, totalPages,
    pollOffset: reservedBase + POLL, sizeOffset: reservedBase + SIZE, unwindDataOffset: reservedBase + UNWIND,
    marksOffset: reservedBase + MARKS, marksBytes, unwindBufferOffset, unwindBufferBytes,
  };
}
