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
 *
 * A block may have a reserved tail (block-tail.ts): memory past its pages,
 * with a mark map (a second producer of its dirty log) and a size word
 * (`visiblePages`: how much of the block is in use).
 */
import { InvalidArgumentError, InvalidStateError, ReservationError } from '../errors.js';
import { NO_TAIL, checkTail, memoryPages, type BlockTail, type RamBlockOptions } from './block-tail.js';
import { DirtyLog, type DirtyLogShared } from './dirty-log.js';
import { MAX_BLOCK_BYTES, PAGE_SHIFT, PAGE_SIZE, pagesForBytes } from './page.js';
import { zeroScannerFor, type ZeroScanner } from './zero-scan.js';

export type { RamBlockOptions } from './block-tail.js';

/** What a thread needs to attach to a RAM block (structured-cloneable). */
export interface RamBlockShared {
  readonly name: string;
  readonly pages: number;
  readonly memory: WebAssembly.Memory;
  readonly log: DirtyLogShared;
  /** The reserved tail (absent: none). */
  readonly tail?: BlockTail;
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
  /** The reserved tail: its size, the mark map, the size word (block-tail.ts). */
  readonly tail: BlockTail;
  /** The size word (one Int32 over it), if the block has one. */
  private readonly sizeWord: Int32Array | null;
  private scanner: ZeroScanner | undefined;

  static create(name: string, sizeBytes: number, options: RamBlockOptions = {}): RamBlock {
    if (typeof name !== 'string' || !NAME_RE.test(name)) {
      throw new InvalidArgumentError(
        `RAM block name must be 1-64 characters of [A-Za-z0-9_.:-], got ${JSON.stringify(name)}`);
    }
    const what = `RAM block ${JSON.stringify(name)}`;
    const pages = pagesForBytes(what, sizeBytes, MAX_BLOCK_BYTES);
    const tail = checkTail(what, sizeBytes, options);
    const wasmPages = memoryPages(sizeBytes, tail.tailBytes);
    let memory: WebAssembly.Memory;
    let log: DirtyLog;
    try {
      memory = new WebAssembly.Memory({ initial: wasmPages, maximum: wasmPages, shared: true });
      const marks = tail.markMap === null ? undefined : { buffer: memory.buffer as unknown as SharedArrayBuffer, byteOffset: tail.markMap.offset };
      log = DirtyLog.create(pages, { maxClients: options.maxClients, marks });
    } catch (cause) {
      // A RangeError from the engine (the address space or a memory limit, e.g. ulimit -v): the host's refusal, said as such.
      if (!(cause instanceof RangeError)) throw cause;
      throw new ReservationError(
        `RAM block ${JSON.stringify(name)}: the host refused to reserve ${sizeBytes} bytes of shared memory (${cause.message})`, { cause });
    }
    return new RamBlock({ name, pages, memory, log: log.toShared(), tail });
  }

  constructor(shared: RamBlockShared) {
    this.name = shared.name;
    this.pages = shared.pages;
    this.byteLength = shared.pages * PAGE_SIZE;
    this.memory = shared.memory;
    this.log = new DirtyLog(shared.log);
    this.bytes = new Uint8Array(shared.memory.buffer, 0, this.byteLength);
    this.tail = shared.tail ?? NO_TAIL;
    const word = this.tail.sizeWord;
    this.sizeWord = word === null ? null : new Int32Array(shared.memory.buffer, word.offset, 1);
  }

  toShared(): RamBlockShared {
    return { name: this.name, pages: this.pages, memory: this.memory, log: this.log.toShared(), tail: this.tail };
  }

  /**
   * The pages in use now: the size word's value in 4 KiB pages, at most
   * `pages`; without a size word, all of them. Read with Atomics.load (the
   * owner of the word may bump it from another thread at any time).
   */
  visiblePages(): number {
    if (this.sizeWord === null) return this.pages;
    const units = Atomics.load(this.sizeWord, 0) >>> 0;
    return Math.min(this.pages, units * (this.tail.sizeWord!.unitBytes / PAGE_SIZE));
  }

  /**
   * Set the size in use to `n` pages (a destination applying the source's
   * size): a whole number of the size word's units, or all the block's
   * pages. Without a size word only `pages` itself is possible.
   */
  setVisiblePages(n: number): void {
    const units = this.sizeUnits(n);
    if (units !== null) Atomics.store(this.sizeWord!, 0, units);
  }

  /** `n` pages in use as size-word units (null: the block has no size word and `n` is all of it); throws, saying why, if it cannot hold them. */
  private sizeUnits(n: number): number | null {
    if (this.sizeWord === null) {
      if (n === this.pages) return null;
      throw new InvalidStateError(`RAM block ${JSON.stringify(this.name)} has no size word: its size in use is its ${this.pages} pages, not ${n}`);
    }
    const unitPages = this.tail.sizeWord!.unitBytes / PAGE_SIZE;
    if (!Number.isSafeInteger(n) || n < 0 || n > this.pages || (n % unitPages !== 0 && n !== this.pages)) {
      throw new InvalidArgumentError(
        `RAM block ${JSON.stringify(this.name)}: a size in use of ${n} pages is not a whole number of ${unitPages}-page units within its ${this.pages} pages`);
    }
    return Math.ceil(n / unitPages);
  }

  /**
   * Raise the size in use to `n` pages unless it is there already (checked
   * as setVisiblePages): a size that only grows, set from several threads
   * (a destination's channels each apply the same GROWs, each when it
   * reaches them). A compare-exchange loop, so a thread that applies an
   * older, smaller size after another applied a larger one never shrinks it.
   */
  growVisiblePages(n: number): void {
    const units = this.sizeUnits(n);
    if (units === null || this.sizeWord === null) return;
    for (let now = Atomics.load(this.sizeWord, 0) >>> 0; now < units;) {
      const seen = Atomics.compareExchange(this.sizeWord, 0, now, units) >>> 0;
      if (seen === now) return;
      now = seen;
    }
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
