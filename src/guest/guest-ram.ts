/**
 * The guest's RAM as the embedding application sees it: guest-physical byte
 * addresses over all blocks, with every write marked dirty (and so ever
 * written). Writes are refused unless the guest may change (running or not
 * yet started): while it is paused, for switchover or otherwise, the RAM
 * must stay as its vCPUs left it.
 * In post-copy, an access of a page that has not arrived is refused
 * (guest-pages.ts): the main thread never waits for a page.
 */
import { InvalidArgumentError, InvalidStateError } from '../errors.js';
import type { RamBlock } from '../memory/ram-block.js';
import type { GuestPages } from './guest-pages.js';
import type { RunState } from './run-state.js';

export class GuestRam {
  readonly size: number;
  private readonly starts: number[] = [];

  constructor(readonly blocks: readonly RamBlock[], private readonly runState: () => RunState, private readonly pages?: GuestPages) {
    let at = 0;
    for (const b of blocks) {
      this.starts.push(at);
      at += b.byteLength;
    }
    this.size = at;
  }

  /** Copy `length` bytes from guest address `addr`. */
  read(addr: number, length: number): Uint8Array {
    this.checkSpan(addr, length);
    this.pages?.checkLibraryAccess('reads', addr, length);
    const out = new Uint8Array(length);
    this.eachPiece(addr, length, (block, offset, done, n) => out.set(block.bytes.subarray(offset, offset + n), done));
    return out;
  }

  /** Write `data` at guest address `addr` (may span blocks). */
  write(addr: number, data: Uint8Array): void {
    this.checkWritable();
    this.checkSpan(addr, data.length);
    this.pages?.checkLibraryAccess('writes', addr, data.length);
    this.eachPiece(addr, data.length, (block, offset, done, n) => block.write(offset, data.subarray(done, done + n)));
  }

  /**
   * Give `fn` a writable view of [addr, addr+length) inside one block; the
   * pages are marked when `fn` returns. Do not keep the view.
   */
  update<T>(addr: number, length: number, fn: (view: Uint8Array) => T): T {
    this.checkWritable();
    this.checkSpan(addr, length);
    this.pages?.checkLibraryAccess('writes', addr, length);
    const b = this.blockAt(addr);
    const offset = addr - this.starts[b];
    if (offset + length > this.blocks[b].byteLength) {
      throw new InvalidArgumentError(`guest RAM: update of ${addr}+${length} crosses the end of block ${this.blocks[b].name}`);
    }
    return this.blocks[b].update(offset, length, fn);
  }

  private checkWritable(): void {
    const state = this.runState();
    if (state !== 'running' && state !== 'prelaunch') {
      throw new InvalidStateError(`guest RAM: writes are refused while the guest is ${state}`);
    }
  }

  private checkSpan(addr: number, length: number): void {
    if (!Number.isSafeInteger(addr) || !Number.isSafeInteger(length) || addr < 0 || length < 0 || addr + length > this.size) {
      throw new InvalidArgumentError(`guest RAM: span ${addr}+${length} is outside its ${this.size} bytes`);
    }
  }

  private blockAt(addr: number): number {
    let b = this.blocks.length - 1;
    while (this.starts[b] > addr) b--;
    return b;
  }

  private eachPiece(addr: number, length: number, fn: (block: RamBlock, offset: number, done: number, n: number) => void): void {
    let done = 0;
    while (done < length) {
      const b = this.blockAt(addr + done);
      const offset = addr + done - this.starts[b];
      const n = Math.min(length - done, this.blocks[b].byteLength - offset);
      fn(this.blocks[b], offset, done, n);
      done += n;
    }
  }
}
