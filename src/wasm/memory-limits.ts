/**
 * The options in force for one program: how far its memory may grow (the
 * guest's maximum, which fixes the layout of ferry's reserved region above
 * it: layout.ts) and the size of the unwind buffer.
 *
 * The rule for the maximum, in order:
 *   1. `maxMemoryBytes` (--wasm-max-memory) when given: a multiple of
 *      64 KiB, at least the program's initial memory, and at most its
 *      declared maximum (raising it would let `memory.grow` succeed where
 *      the program was built to see it fail);
 *   2. else the program's declared maximum;
 *   3. else the largest maximum that leaves room for the reserved region
 *      within 4 GiB (the whole memory is reserved up front, but the
 *      operating system commits only the pages touched).
 * A maximum that leaves no room for the reserved region is refused, naming
 * the largest that would fit.
 */
import { InvalidArgumentError, WasmModuleError } from '../errors.js';
import { WASM_PAGE_SIZE } from '../memory/page.js';
import { DEFAULT_UNWIND_BUFFER_BYTES, MAX_WASM_MEMORY_BYTES, wasmLayout, type WasmLayout } from './layout.js';
import type { MemoryLimits } from './module-header.js';

export interface ResolvedOptions {
  readonly maxMemoryBytes: number;
  readonly unwindBufferBytes: number;
}

/** The largest guest maximum, in 64 KiB pages, whose layout fits in 4 GiB. */
export function largestGuestPages(unwindBufferBytes: number): number {
  for (let pages = MAX_WASM_MEMORY_BYTES / WASM_PAGE_SIZE; pages > 0; pages--) {
    try {
      wasmLayout(pages, unwindBufferBytes);
      return pages;
    } catch (err) {
      if (!(err instanceof InvalidArgumentError)) throw err;
    }
  }
  throw new InvalidArgumentError(`WebAssembly unwind buffer: ${unwindBufferBytes} bytes leave no room for a program`);
}

function checkOption(maxMemoryBytes: number, memory: MemoryLimits): number {
  const what = `WebAssembly maximum memory (--wasm-max-memory) ${maxMemoryBytes}`;
  if (!Number.isSafeInteger(maxMemoryBytes) || maxMemoryBytes <= 0 || maxMemoryBytes % WASM_PAGE_SIZE !== 0) {
    throw new InvalidArgumentError(`${what}: must be a positive multiple of ${WASM_PAGE_SIZE} bytes`);
  }
  const pages = maxMemoryBytes / WASM_PAGE_SIZE;
  if (pages < memory.initialPages) {
    throw new InvalidArgumentError(`${what} bytes is below the program's initial memory of ${memory.initialPages * WASM_PAGE_SIZE} bytes`);
  }
  if (memory.maximumPages !== undefined && pages > memory.maximumPages) {
    throw new InvalidArgumentError(`${what} bytes is above the program's declared maximum of ${memory.maximumPages * WASM_PAGE_SIZE} bytes`);
  }
  return pages;
}

/** The guest's maximum in pages, by the rule in the header. */
function guestMaxPages(memory: MemoryLimits, maxMemoryBytes: number | undefined, unwindBufferBytes: number): number {
  if (maxMemoryBytes !== undefined) return checkOption(maxMemoryBytes, memory);
  const largest = largestGuestPages(unwindBufferBytes);
  if (memory.maximumPages === undefined) {
    if (memory.initialPages > largest) {
      throw new WasmModuleError(`the module's initial memory of ${memory.initialPages * WASM_PAGE_SIZE} bytes leaves no room for ferry's reserved region within 4 GiB (at most ${largest * WASM_PAGE_SIZE} bytes)`);
    }
    return largest;
  }
  if (memory.maximumPages > largest) {
    throw new WasmModuleError(
      `the module declares a maximum memory of ${memory.maximumPages * WASM_PAGE_SIZE} bytes, which leaves no room for ferry's ` +
      `reserved region within 4 GiB: give --wasm-max-memory of at most ${largest * WASM_PAGE_SIZE} bytes`);
  }
  return memory.maximumPages;
}

/** The options in force and the layout they give, for a program whose memory is `memory`. */
export function resolveMemory(
  memory: MemoryLimits, options: { readonly maxMemoryBytes?: number; readonly unwindBufferBytes?: number } = {},
): { readonly options: ResolvedOptions; readonly layout: WasmLayout } {
  const unwindBufferBytes = options.unwindBufferBytes ?? DEFAULT_UNWIND_BUFFER_BYTES;
  wasmLayout(1, unwindBufferBytes); // its own check of the buffer's size, before any search
  const pages = guestMaxPages(memory, options.maxMemoryBytes, unwindBufferBytes);
  const layout = wasmLayout(pages, unwindBufferBytes);
  return { options: { maxMemoryBytes: pages * WASM_PAGE_SIZE, unwindBufferBytes }, layout };
}
