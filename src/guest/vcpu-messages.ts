/** Data passed to a vCPU worker thread at start, and what it posts back (typed in one place). */
import type { PageWaitsShared } from '../memory/page-waits.js';
import type { PresenceMapShared } from '../memory/presence-map.js';
import type { RamBlockShared } from '../memory/ram-block.js';
import type { SerializedError } from '../serialized-error.js';
import type { WasmVcpuInit } from './wasm-vcpu.js';
import type { WorkloadSpec, WorkloadState } from './workloads/index.js';

export interface VcpuInit {
  readonly index: number;
  readonly control: SharedArrayBuffer;
  readonly ram: readonly RamBlockShared[];
  /** The workload to start with (ignored if a state is loaded before the first run, and for a program). */
  readonly workload: WorkloadSpec;
  /** Run this WebAssembly program instead of a workload. */
  readonly wasm?: WasmVcpuInit;
  /** Post-copy: which pages are here, and where this vCPU (slot `index`) waits for the others (guest-pages.ts). */
  readonly pages?: { readonly presence: PresenceMapShared; readonly waits: PageWaitsShared };
}

/** A vCPU's saved state: its guest clock and its workload's state. */
export interface VcpuState {
  readonly guestNs: number;
  readonly workload: WorkloadState;
}

/** Messages a vCPU worker posts to the main thread: a failure (the error, serialized), or a program's exit. */
export type VcpuMessage =
  | { readonly type: 'failed'; readonly index: number; readonly error: SerializedError }
  | { readonly type: 'exited'; readonly index: number; readonly code: number };
