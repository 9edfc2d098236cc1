/**
 * A RAM block: a named shared WebAssembly.Memory of whole 4 KiB pages (at
 * most 4 GiB), its dirty log and its zero-page scanner.
 *
 * Allocation is lazy: the operating system commits a page of the memory on
 * first touch, so a 16 GiB guest (four blocks) costs nothing until written.
 * The WebAssembly memory is rounded up to its 64 KiB unit; only `pages`
 * pages belong to the guest.
 *
 * Every write path marks the dirty log after storing data (dirty-log.ts):
 * `write` and `update` do it themselves; the raw `bytes` view is for reading
 * and for writers that take the `mark` duty (vCPU workloads, the loader).
 */
import { InvalidArgumentError, ReservationError } from '../errors.js';
import { DirtyLog, type DirtyLogShared } from './dirty-log.js';
import { MAX_BLOCK_BYTES, PAGE_SHIFT, PAGE_SIZE, WASM_PAGE_SIZE, pagesForBytes } from './page.js';
import { zeroScannerFor, type ZeroScanner } from './zero-scan.js';

/** What a thread needs to attach to a RAM block (structured-cloneable). */
export interface RamBlockShared {
  readonly name: string;
  readonly pages: number;
  readonly memory: WebAssembly.Memory;
  readonly log: DirtyLogShared;
}

const NAME_RE = /^[A-Za-z0-9_.:-]{1,64}$/;

export class RamBlock {
  readonly name: string;
  readonly pages: number;
  readonly byteLength: number;
  readonly memory: WebAssembly.Memory;
  readonly log: DirtyLog;
  /** Raw bytes of the block. Writers must mark what they write (see top). */
  readonly bytes: Uint8Array;
  private scanner: ZeroScanner | undefined;

  static create(name: string, sizeBytes: number, options: { maxClients?: number } = {}): RamBlock {
    if (typeof name !== 'string' || !NAME_RE.test(name)) {
      throw new InvalidArgumentError(
        `RAM block name must be 1-64 characters of [A-Za-z0-9_.:-], got ${JSON.stringify(name)}`);
    }
    const pages = pagesForBytes(`RAM block ${JSON.stringify(name)}`, sizeBytes, MAX_BLOCK_BYTES);
    const wasmPages = Math.ceil(sizeBytes / WASM_PAGE_SIZE);
    let memory: WebAssembly.Memory;
    let log: DirtyLog;
    try {
      memory = new WebAssembly.Memory({ initial: wasmPages, maximum: wasmPages, shared: true });
      log = DirtyLog.create(pages, options);
    } catch (cause) {
      // A RangeError from the engine (the address space or a memory limit, e.g. ulimit -v): the host's refusal, said as such.
      if (!(cause instanceof RangeError)) throw cause;
      throw new ReservationError(
        `RAM block ${JSON.stringify(name)}: the host refused to reserve ${sizeBytes} bytes of shared memory (${cause.message})`, { cause });
    }
    return new RamBlock({ name, pages, memory, log: log.toShared() });
  }

  constructor(shared: RamBlockShared) {
    this.name = shared.name;
    this.pages = shared.pages;
    this.byteLength = shared.pages * PAGE_SIZE;
    this.memory = shared.memory;
    this.log = new DirtyLog(shared.log);
    this.bytes = new Uint8Array(shared.memory.buffer, 0, this.byteLength);
  }

  toShared(): RamBlockShared {
    return { name: this.name, pages: this.pages, memory: this.memory, log: this.log.toShared() };
  }

  /** The zero-page scanner (WebAssembly SIMD, or the JS fallback). */
  get zero(): ZeroScanner {
    this.scanner ??= zeroScannerFor(this.memory, this.byteLength);
    return this.scanner;
  }

  /** Copy `data` into the block at `offset`, then mark the pages it covers. */
  write(offset: number, data: Uint8Array): void {
    this.checkSpan(offset, data.length);
    if (data.length === 0) return;
    this.bytes.set(data, offset);
    this.markBytes(offset, data.length);
  }

  /**
   * Hand `fn` a writable view of [offset, offset+length); the pages it covers
   * are marked after `fn` returns (or throws: it may have written some).
   */
  update<T>(offset: number, length: number, fn: (view: Uint8Array) => T): T {
    this.checkSpan(offset, length);
    try {
      return fn(this.bytes.subarray(offset, offset + length));
    } finally {
      if (length > 0) this.markBytes(offset, length);
    }
  }

  /** A copy of [offset, offset+length). */
  read(offset: number, length: number): Uint8Array {
    this.checkSpan(offset, length);
    return this.bytes.slice(offset, offset + length);
  }

  /** Mark the pages covering a byte span as written. */
  markBytes(offset: number, length: number): void {
    const first = offset >>> PAGE_SHIFT;
    const last = (offset + length - 1) >>> PAGE_SHIFT;
    this.log.markPages(first, last - first + 1);
  }

  private checkSpan(offset: number, length: number): void {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 ||
      offset + length > this.byteLength) {
      throw new InvalidArgumentError(
        `RAM block ${JSON.stringify(this.name)}: span ${offset}+${length} is outside its ${this.byteLength} bytes`);
    }
  }
}

/** Reserve every block of `specs`; a refusal says how far it got (about the host's limit). */
export function reserveBlocks(specs: readonly { readonly name: string; readonly size: number }[]): RamBlock[] {
  const blocks: RamBlock[] = [];
  try {
    for (const s of specs) blocks.push(RamBlock.create(s.name, s.size));
  } catch (err) {
    if (!(err instanceof ReservationError) || specs.length === 1) throw err;
    const total = specs.reduce((n, s) => n + s.size, 0);
    const reserved = blocks.reduce((n, b) => n + b.byteLength, 0);
    throw new ReservationError(`guest RAM of ${total} bytes: ${reserved} bytes in ${blocks.length} of ${specs.length} blocks reserved, then ${err.message}`, { cause: err });
  }
  return blocks;
}
