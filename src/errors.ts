/**
 * ferry's error classes. Each carries a stable `code` (checked by callers
 * instead of `instanceof`, so it survives two copies of this module and a
 * trip between threads: see serialized-error.ts) and an optional `cause`
 * chain. `assert` is for programmer mistakes only.
 *
 * A new class goes into ERROR_CLASSES below, so that it is rebuilt as
 * itself on the other side of a thread boundary (its round-trip test
 * iterates that list).
 */

/** What every ferry error class accepts besides its message. */
export interface FerryErrorOptions {
  readonly cause?: unknown;
  /** MigrationError only: whether the source had already committed (sent GO). */
  readonly afterGo?: boolean;
  /** RefusedError only: the refusal's name (wire/refusals.ts), e.g. "ram-size". */
  readonly refusal?: string;
}

export class FerryError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    // No `cause` property at all when none is given (`{ cause: undefined }` would make one).
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.name = new.target.name;
  }
}

/** A caller passed a value that is out of range, of the wrong type or unknown. */
export class InvalidArgumentError extends FerryError {
  constructor(message: string, options?: FerryErrorOptions) {
    super('ERR_FERRY_INVALID_ARGUMENT', message, options);
  }
}

/** The operation is not allowed in the object's current state. */
export class InvalidStateError extends FerryError {
  constructor(message: string, options?: FerryErrorOptions) {
    super('ERR_FERRY_INVALID_STATE', message, options);
  }
}

/** Something did not happen within its time limit. */
export class TimeoutError extends FerryError {
  constructor(message: string, options?: FerryErrorOptions) {
    super('ERR_FERRY_TIMEOUT', message, options);
  }
}

/** A worker thread (vCPU, migration, loader) failed or exited unexpectedly. */
export class WorkerFailedError extends FerryError {
  constructor(message: string, options?: FerryErrorOptions) {
    super('ERR_FERRY_WORKER_FAILED', message, options);
  }
}

/** A migration stream or return path broke a rule of docs/wire-format.md. */
export class WireError extends FerryError {
  constructor(message: string, options?: FerryErrorOptions) {
    super('ERR_FERRY_WIRE', message, options);
  }
}

/** A byte channel (socket, file, control socket) could not be opened, or broke. */
export class TransportError extends FerryError {
  constructor(message: string, options?: FerryErrorOptions) {
    super('ERR_FERRY_TRANSPORT', message, options);
  }
}

/** A JSON stream (QMP) held a value past its size cap. */
export class JsonStreamError extends FerryError {
  constructor(message: string, options?: FerryErrorOptions) {
    super('ERR_FERRY_JSON_STREAM', message, options);
  }
}

/** A migration failed; `afterGo` tells whether the source had already committed. */
export class MigrationError extends FerryError {
  readonly afterGo: boolean;
  constructor(message: string, options?: FerryErrorOptions) {
    super('ERR_FERRY_MIGRATION', message, options);
    this.afterGo = options?.afterGo ?? false;
  }
}

/** The user cancelled (migrate_cancel, `cancel()`): recognised by this code, never by the message. */
export class CancelledError extends FerryError {
  constructor(message: string, options?: FerryErrorOptions) {
    super('ERR_FERRY_CANCELLED', message, options);
  }
}

/** The host refused to reserve memory: guest RAM's address space, or a buffer beside it. */
export class ReservationError extends FerryError {
  constructor(message: string, options?: FerryErrorOptions) {
    super('ERR_FERRY_RESERVATION', message, options);
  }
}

/**
 * The migration policy cancelled the migration because its time budget
 * (x-ferry-timeout, `--timeout`) ran out (migration-policy.ts). It ends the
 * migration `cancelled`, as migrate_cancel does, but says why: its message
 * is the error-desc ("timed out after 300 s (timeout 300 s): not converging: ...").
 */
export class MigrationTimeoutError extends FerryError {
  constructor(message: string, options?: FerryErrorOptions) {
    super('ERR_FERRY_MIGRATION_TIMEOUT', message, options);
  }
}

/**
 * The migration policy's remedy ladder cancelled the migration: it made no
 * progress, or ran over its completion budget, and no allowed remedy was
 * left (remedies.ts). Ends the migration `cancelled`, saying why: the
 * trigger, what was tried, and what the user could allow ("gave up after
 * 42 s: no progress in 30 s at the most throttle (99 %); ...").
 */
export class MigrationGaveUpError extends FerryError {
  constructor(message: string, options?: FerryErrorOptions) {
    super('ERR_FERRY_MIGRATION_GAVE_UP', message, options);
  }
}

/**
 * The destination refused the stream: not a broken stream or link, but its
 * configuration or limits (RAM size, vCPUs, a size limit, the stream's
 * version, TLS or not). Thrown on the destination, and on the source when
 * the destination's REFUSED record arrives; `refusal` names the reason
 * (wire/refusals.ts) so that a caller can act on it.
 */
export class RefusedError extends FerryError {
  readonly refusal: string;
  constructor(message: string, options?: FerryErrorOptions) {
    super('ERR_FERRY_REFUSED', message, options);
    this.refusal = options?.refusal ?? 'unknown';
  }
}

/**
 * A WebAssembly program's saved system-interface state (the WASI device
 * section) is malformed: too large, a wrong magic, version or checksum, or
 * contents that contradict themselves (a descriptor of a file that does not
 * exist). The message names what was wrong.
 */
export class WasiStateError extends FerryError {
  constructor(message: string, options?: FerryErrorOptions) {
    super('ERR_FERRY_WASI_STATE', message, options);
  }
}

/**
 * A WebAssembly program that ferry cannot run as a guest: not WebAssembly,
 * not a WASI command, an import ferry does not provide, a feature the
 * rewrite (src/wasm/) or Node 20 cannot handle. The message names what.
 */
export class WasmModuleError extends FerryError {
  constructor(message: string, options?: FerryErrorOptions) {
    super('ERR_FERRY_WASM_MODULE', message, options);
  }
}

/**
 * Post-copy (a guest running before all its pages have arrived) cannot
 * serve this guest or this access: a WebAssembly program guest (its loads
 * and stores are not checked), or a library-API read or write of a missing
 * page (the main thread must never block waiting for it). The message says
 * which and why.
 */
export class PostcopyUnsupportedError extends FerryError {
  constructor(message: string, options?: FerryErrorOptions) {
    super('ERR_FERRY_POSTCOPY_UNSUPPORTED', message, options);
  }
}

/**
 * An XBZRLE delta (wire/xbzrle.ts) that cannot be applied to its page: a
 * run past the page's end, a truncated length or run, an empty run, a
 * length over 14 bits, a delta longer than any page's, or bytes after the
 * last run. The message names which, and where in the delta.
 */
export class XbzrleError extends FerryError {
  constructor(message: string, options?: FerryErrorOptions) {
    super('ERR_FERRY_XBZRLE', message, options);
  }
}

/**
 * A compressed packet could not be decompressed into the size its header
 * declares: corrupt or truncated data, a frame declaring another size (a
 * decompression bomb declares far more), trailing bytes, or output longer
 * or shorter than declared (src/wire/compression.ts). The message names the
 * method and what was wrong.
 */
export class CompressionError extends FerryError {
  constructor(message: string, options?: FerryErrorOptions) {
    super('ERR_FERRY_COMPRESSION', message, options);
  }
}

/**
 * Huge pages were asked for (--huge-pages, `hugePages`) and cannot be had
 * here: the optional addon ferry-hugepages did not install, or the kernel's
 * transparent huge pages are missing or `never` (memory/huge-pages.ts). The
 * message says which, and what it would take.
 */
export class HugePagesUnavailableError extends FerryError {
  constructor(message: string, options?: FerryErrorOptions) {
    super('ERR_FERRY_HUGE_PAGES_UNAVAILABLE', message, options);
  }
}

/** A ferry error class, as the rebuilding side constructs it. */
export type FerryErrorClass = new (message: string, options?: FerryErrorOptions) => FerryError;

/** Every class with a fixed code, by code: what a serialized error is rebuilt as. */
export const ERROR_CLASSES: ReadonlyMap<string, FerryErrorClass> = new Map(
  ([
    InvalidArgumentError, InvalidStateError, TimeoutError, WorkerFailedError,
    WireError, TransportError, JsonStreamError, MigrationError, CancelledError, ReservationError, MigrationTimeoutError, MigrationGaveUpError, RefusedError,
    WasiStateError, WasmModuleError, PostcopyUnsupportedError, XbzrleError, CompressionError,
    HugePagesUnavailableError,
  ] as const).map((C) => [new C('').code, C]),
);

/** The code serialized-error.ts gives an error that had none (a plain Error, a RangeError, a thrown string). */
export const UNCODED_ERROR = 'ERR_FERRY_UNCODED';

/**
 * The ferry code of `err` (a FerryError from any copy of this module, or
 * rebuilt after crossing threads), else undefined: also for an error that
 * had no code before it crossed (UNCODED_ERROR).
 */
export function ferryCodeOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  if (!(err instanceof Error) || typeof code !== 'string' || code === UNCODED_ERROR) return undefined;
  return code.startsWith('ERR_FERRY_') ? code : undefined;
}

/** The codes of errors that end a migration `cancelled`: by the user, or by the policy (its time budget, its remedy ladder). */
const CANCELLATION_CODES: ReadonlySet<string> = new Set(['ERR_FERRY_CANCELLED', 'ERR_FERRY_MIGRATION_TIMEOUT', 'ERR_FERRY_MIGRATION_GAVE_UP']);

/** Whether `err` is a cancellation (by its code): the user's (CancelledError) or the policy's (MigrationTimeoutError, MigrationGaveUpError). */
export function isCancelled(err: unknown): boolean {
  return CANCELLATION_CODES.has(ferryCodeOf(err) ?? '');
}
