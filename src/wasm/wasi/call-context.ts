/**
 * What every WASI call implementation receives: the device's state, the
 * host it is bound to, and checked access to the program's memory. A call
 * returns an errno (0 for success) or throws ErrnoError/GuestFault, which
 * wasi-imports.ts turns into the errno; arguments arrive unsigned (i32 as
 * 0..2^32-1, i64 as a bigint the call converts).
 */
import type { MemoryAccess } from './memory-access.js';
import { fail } from './wasi-errno.js';
import type { WasiHost } from './wasi-host.js';
import type { WasiState } from './wasi-state.js';

export interface CallContext {
  readonly state: WasiState;
  readonly host: WasiHost;
  readonly mem: MemoryAccess;
  /** CLOCK_REALTIME: the host's wall clock, ns. */
  readonly wallNowNs: () => bigint;
}

// biome-ignore lint/suspicious/noExplicitAny: each call declares its own (number | bigint) parameters
export type WasiCall = (ctx: CallContext, ...args: any[]) => number;

/** A u64 argument (an i64 that arrives as a signed bigint). */
export const u64 = (x: bigint): bigint => BigInt.asUintN(64, x);

/** A u64 argument that must fit a safe integer (offsets, sizes): else `errno`. */
export function safeU64(x: bigint, errno: number): number {
  const v = BigInt.asUintN(64, x);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail(errno);
  return Number(v);
}
