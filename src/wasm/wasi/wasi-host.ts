/**
 * What the WASI layer needs from whoever runs the program (the vCPU runner,
 * or a test's fake): the program's memory, the guest clock, the sleep that a
 * pause interrupts, the standard streams and the Asyncify controls. The
 * layer keeps no reference to any of it between calls: a device restored at
 * a destination is bound to the destination's host by `imports(host)`.
 */

export interface WasiMemory {
  /** The program's linear memory as bytes and as a little-endian DataView (one shared buffer; it never moves). */
  readonly bytes: Uint8Array;
  readonly view: DataView;
  /** Every write the host makes into guest memory must be reported here after the bytes are stored (it marks the dirty log). */
  written(addr: number, length: number): void;
  /**
   * The bytes the program may address: its memory.size in bytes, which
   * lies below ferry's reserved region (src/wasm/layout.ts). A pointer past
   * it is EFAULT, so that a program cannot make the layer write the marks
   * or the poll word. Default: `bytes.length` (a plain, unvirtualised memory).
   */
  addressable?(): number;
}

export interface WasiHost {
  readonly memory: WasiMemory;
  /** The guest's monotonic clock, ns: runs while the guest runs (and while it sleeps), stops while it is paused; continues at the destination. */
  guestNowNs(): bigint;
  /** Block until the guest clock reaches `deadlineNs` or a pause is requested (Atomics.wait inside; never a busy loop). */
  sleepUntil(deadlineNs: bigint): 'elapsed' | 'paused';
  /** Standard output and error: written synchronously (fs.writeSync) before the call returns. */
  write(fd: 1 | 2, bytes: Uint8Array): void;
  /** Asyncify, driven by the vCPU runner: is this call a re-run after a rewind; finish the rewind; start an unwind. */
  rewinding(): boolean;
  stopRewind(): void;
  startUnwind(): void;
  /** The host's wall clock, ns since 1970 (CLOCK_REALTIME). Default: Date.now() refined by performance.now(). */
  wallNowNs?(): bigint;
}

/** The host's wall clock in ns: millisecond wall time plus the sub-millisecond part of the monotonic clock. */
export function hostWallNowNs(): bigint {
  const ns = (performance.timeOrigin + performance.now()) * 1e6;
  return BigInt(Math.round(ns));
}
