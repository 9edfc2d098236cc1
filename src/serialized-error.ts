/**
 * Errors across thread boundaries. Structured cloning keeps an Error's
 * message and stack but drops its class and its `code`, so every message
 * between threads that reports a failure carries this plain form instead:
 *
 *   { name, code, message, stack?, afterGo?, refusal?, cause?: { name, code, ... } }
 *
 * and the receiver rebuilds it as the class its code names (ERROR_CLASSES
 * in errors.ts): callers branch on `code` (or `instanceof`) on either side.
 *
 * Rules, in order: a known code rebuilds as its class; any other code (a
 * FerryError built with its own code, Node's `ECONNRESET`...) rebuilds as a
 * plain FerryError keeping the code and the original name; an error without
 * a code, or a thrown non-Error, gets UNCODED_ERROR. The cause chain is
 * kept to MAX_CAUSE_DEPTH links (a cycle ends there).
 */
import { ERROR_CLASSES, FerryError, UNCODED_ERROR, type FerryErrorOptions } from './errors.js';

export { UNCODED_ERROR };
/** Longest cause chain carried; deeper causes are dropped. */
export const MAX_CAUSE_DEPTH = 8;

export interface SerializedError {
  readonly name: string;
  readonly code: string;
  readonly message: string;
  readonly stack?: string;
  /** MigrationError's: whether the source had already committed (sent GO). */
  readonly afterGo?: boolean;
  /** RefusedError's: the refusal's name. */
  readonly refusal?: string;
  readonly cause?: SerializedError;
}

/** The plain form of anything thrown, to post to another thread. */
export function serializeError(err: unknown, depth = 0): SerializedError {
  if (!(err instanceof Error)) return { name: 'Error', code: UNCODED_ERROR, message: String(err) };
  const { code, afterGo, refusal } = err as { code?: unknown; afterGo?: unknown; refusal?: unknown };
  const out: { -readonly [K in keyof SerializedError]: SerializedError[K] } = {
    name: err.name,
    code: typeof code === 'string' ? code : UNCODED_ERROR,
    message: err.message,
  };
  if (err.stack !== undefined) out.stack = err.stack;
  if (typeof afterGo === 'boolean') out.afterGo = afterGo;
  if (typeof refusal === 'string') out.refusal = refusal;
  if (err.cause !== undefined && depth < MAX_CAUSE_DEPTH) out.cause = serializeError(err.cause, depth + 1);
  return out;
}

/** The error `s` describes, as its class (a plain FerryError for a code not in ERROR_CLASSES). */
export function rebuildError(s: SerializedError): FerryError {
  const options: { -readonly [K in keyof FerryErrorOptions]: FerryErrorOptions[K] } = {};
  if (s.cause !== undefined) options.cause = rebuildError(s.cause);
  if (s.afterGo !== undefined) options.afterGo = s.afterGo;
  if (s.refusal !== undefined) options.refusal = s.refusal;
  const Known = ERROR_CLASSES.get(s.code);
  const err = Known === undefined ? new FerryError(s.code, s.message, options) : new Known(s.message, options);
  if (Known === undefined) err.name = s.name;
  // Where it was thrown, never where it was rebuilt: with no stack carried, only the first line.
  err.stack = s.stack ?? `${err.name}: ${err.message}`;
  return err;
}
