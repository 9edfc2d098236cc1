/**
 * The two ways a WASI call fails inside the layer, both caught at the
 * import boundary (wasi-imports.ts) and turned into an error number for the
 * program, never into a JavaScript exception: `ErrnoError` carries the
 * number a check chose; `GuestFault` is a pointer or length outside the
 * program's memory (EFAULT).
 */
import { Errno } from './wasi-abi.js';

export class ErrnoError extends Error {
  readonly errno: number;
  constructor(errno: number) {
    super(`WASI errno ${errno}`);
    this.errno = errno;
  }
}

export class GuestFault extends ErrnoError {
  constructor(readonly addr: number, readonly length: number) {
    super(Errno.FAULT);
  }
}

/** Throw `errno` (a shorthand that reads as a statement: `if (!dir) fail(Errno.NOTDIR)`). */
export function fail(errno: number): never {
  throw new ErrnoError(errno);
}
