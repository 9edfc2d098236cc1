/**
 * Checked access to the program's memory for the WASI calls. Every read
 * and write is bounds-checked against the memory the program may address
 * (a range outside it is GuestFault, EFAULT to the program), and every
 * write goes through `store`, which stores the bytes and then reports the
 * span to `memory.written`, so the dirty log sees each host write into
 * guest memory (invariant 1; issue 13's "marking helper"). No other code in
 * this folder writes guest memory.
 *
 * The views are read from `memory` at each access, never kept: an
 * unshared memory's buffer is replaced when the program grows it.
 */
import { Errno, IOVEC_BYTES } from './wasi-abi.js';
import { ErrnoError, GuestFault } from './wasi-errno.js';
import type { WasiMemory } from './wasi-host.js';

export interface Iovec {
  readonly buf: number;
  readonly len: number;
}

/** iovecs per call at most (wasi-libc's and Linux's IOV_MAX). */
export const IOV_MAX = 1024;

const utf8 = new TextDecoder('utf-8', { fatal: true });
const utf8Encoder = new TextEncoder();

export class MemoryAccess {
  constructor(private readonly memory: WasiMemory) {}

  private limit(): number {
    return this.memory.addressable?.() ?? this.memory.bytes.length;
  }

  /** Throws GuestFault unless [addr, addr + length) lies in the addressable memory. */
  check(addr: number, length: number): void {
    if (addr < 0 || length < 0 || addr + length > this.limit()) throw new GuestFault(addr, length);
  }

  u8(addr: number): number {
    this.check(addr, 1);
    return this.memory.view.getUint8(addr);
  }

  u16(addr: number): number {
    this.check(addr, 2);
    return this.memory.view.getUint16(addr, true);
  }

  u32(addr: number): number {
    this.check(addr, 4);
    return this.memory.view.getUint32(addr, true);
  }

  u64(addr: number): bigint {
    this.check(addr, 8);
    return this.memory.view.getBigUint64(addr, true);
  }

  /** A copy of [addr, addr + length). */
  read(addr: number, length: number): Uint8Array {
    this.check(addr, length);
    return this.memory.bytes.slice(addr, addr + length);
  }

  /** A path or name: UTF-8, else EILSEQ. */
  string(addr: number, length: number): string {
    const bytes = this.read(addr, length);
    try {
      return utf8.decode(bytes);
    } catch {
      throw new ErrnoError(Errno.ILSEQ);
    }
  }

  /** `count` iovecs from `addr`, each buffer checked; more than IOV_MAX is INVAL (readv(2)). */
  iovecs(addr: number, count: number): Iovec[] {
    if (count > IOV_MAX) throw new ErrnoError(Errno.INVAL);
    this.check(addr, count * IOVEC_BYTES);
    const out: Iovec[] = [];
    for (let i = 0; i < count; i++) {
      const buf = this.u32(addr + i * IOVEC_BYTES);
      const len = this.u32(addr + i * IOVEC_BYTES + 4);
      this.check(buf, len);
      out.push({ buf, len });
    }
    return out;
  }

  /** The one write into guest memory: store, then report the span (after the bytes are there). */
  store(addr: number, data: Uint8Array): void {
    this.check(addr, data.length);
    if (data.length === 0) return;
    this.memory.bytes.set(data, addr);
    this.memory.written(addr, data.length);
  }

  storeU32(addr: number, value: number): void {
    this.store(addr, record(4, (v) => v.setUint32(0, value, true)));
  }

  storeU64(addr: number, value: bigint): void {
    this.store(addr, record(8, (v) => v.setBigUint64(0, value, true)));
  }

  /** UTF-8 strings, each followed by NUL, back to back at `buf`; their addresses as u32s at `ptrs`. */
  storeStrings(ptrs: number, buf: number, strings: readonly string[]): void {
    const encoded = strings.map((s) => utf8Encoder.encode(`${s}\0`));
    const total = encoded.reduce((n, e) => n + e.length, 0);
    this.check(ptrs, strings.length * 4);
    this.check(buf, total);
    const table = new Uint8Array(strings.length * 4);
    const view = new DataView(table.buffer);
    const joined = new Uint8Array(total);
    let at = 0;
    encoded.forEach((e, i) => {
      view.setUint32(i * 4, buf + at, true);
      joined.set(e, at);
      at += e.length;
    });
    this.store(ptrs, table);
    this.store(buf, joined);
  }
}

/** A little-endian record of `size` bytes, filled by `fill`: what `store` then writes in one span. */
export function record(size: number, fill: (view: DataView) => void): Uint8Array {
  const bytes = new Uint8Array(size);
  fill(new DataView(bytes.buffer));
  return bytes;
}

/** Bytes of `strings` as args/environ lay them out: each UTF-8 with its NUL. */
export function stringsBytes(strings: readonly string[]): number {
  return strings.reduce((n, s) => n + utf8Encoder.encode(s).length + 1, 0);
}
