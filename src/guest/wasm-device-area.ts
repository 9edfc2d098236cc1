/**
 * Where a WebAssembly vCPU and the main thread hand over the state of the
 * program's system interface (the WASI device): the vCPU owns the device
 * while it runs and writes its state here before acknowledging a pause; the
 * main thread's device section reads it while the guest is paused, and at a
 * destination writes a migrated state for the vCPU to take at its next RUN.
 *
 *   Int32 LEN    bytes of state that follow        vCPU (save) / main (load)
 *   Int32 LOAD   1: take the state at the next RUN  main / vCPU
 *   bytes        the state, at most MAX_DEVICE_AREA_BYTES
 *
 * The bytes and LEN are written before the seq-cst store that hands them
 * over: the vCPU's ACK for a save, LOAD for a load (and the REQUEST = RUN
 * that follows it), as in vcpu-control.ts.
 */
import { InvalidArgumentError } from '../errors.js';

/** Largest device state: a device section's cap (device-state.ts). */
export const MAX_DEVICE_AREA_BYTES = 16 * 1024 * 1024;
const LEN = 0;
const LOAD = 1;
const HEAD = 8;

export function newDeviceArea(): SharedArrayBuffer {
  return new SharedArrayBuffer(HEAD + MAX_DEVICE_AREA_BYTES);
}

export class DeviceArea {
  private readonly i32: Int32Array;
  private readonly bytes: Uint8Array;

  constructor(readonly buffer: SharedArrayBuffer) {
    this.i32 = new Int32Array(buffer, 0, 2);
    this.bytes = new Uint8Array(buffer, HEAD);
  }

  /** vCPU: the state as of this pause. */
  save(state: Uint8Array): void {
    this.check(state);
    this.bytes.set(state);
    Atomics.store(this.i32, LEN, state.length);
  }

  /** Main thread, guest paused: the state the vCPU saved last. */
  saved(): Uint8Array {
    return this.bytes.slice(0, Atomics.load(this.i32, LEN));
  }

  /** Main thread, guest paused: a state for the vCPU to take at its next RUN. */
  load(state: Uint8Array): void {
    this.check(state);
    this.bytes.set(state);
    Atomics.store(this.i32, LEN, state.length);
    Atomics.store(this.i32, LOAD, 1);
  }

  /** vCPU: the state placed by load(), once. */
  takeLoad(): Uint8Array | null {
    if (Atomics.exchange(this.i32, LOAD, 0) === 0) return null;
    return this.bytes.slice(0, Atomics.load(this.i32, LEN));
  }

  private check(state: Uint8Array): void {
    if (state.length > MAX_DEVICE_AREA_BYTES) {
      throw new InvalidArgumentError(`WebAssembly system interface state: ${state.length} bytes exceeds ${MAX_DEVICE_AREA_BYTES}`);
    }
  }
}
