/**
 * ferry's error classes. Each carries a stable `code` (checked by callers
 * instead of `instanceof`, so it survives two copies of this module) and an
 * optional `cause` chain. `assert` is for programmer mistakes only.
 */

export class FerryError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** A caller passed a value that is out of range, of the wrong type or unknown. */
export class InvalidArgumentError extends FerryError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_FERRY_INVALID_ARGUMENT', message, options);
  }
}

/** The operation is not allowed in the object's current state. */
export class InvalidStateError extends FerryError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_FERRY_INVALID_STATE', message, options);
  }
}

/** Something did not happen within its time limit. */
export class TimeoutError extends FerryError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_FERRY_TIMEOUT', message, options);
  }
}

/** A worker thread (vCPU) failed or exited unexpectedly. */
export class WorkerFailedError extends FerryError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_FERRY_WORKER_FAILED', message, options);
  }
}

/** A migration stream or return path broke a rule of docs/wire-format.md. */
export class WireError extends FerryError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_FERRY_WIRE', message, options);
  }
}

/** A migration failed; `afterGo` tells whether the source had already committed. */
export class MigrationError extends FerryError {
  readonly afterGo: boolean;
  constructor(message: string, options?: { cause?: unknown; afterGo?: boolean }) {
    super('ERR_FERRY_MIGRATION', message, options);
    this.afterGo = options?.afterGo ?? false;
  }
}
