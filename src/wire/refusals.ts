/**
 * Why a destination refuses a stream, as its REFUSED record carries it
 * (records.ts): a u16 code a source can act on, and words for the person
 * reading them. A refusal is about the destination's configuration or
 * limits, or about the stream's kind (its version, TLS or not), never about
 * a broken stream: a rule the stream broke, a bad check, a device section
 * that would not load are ERROR (docs/wire-format.md, "Refusals").
 *
 * One row per refusal. Code 0 is never valid; a code keeps its meaning
 * once assigned and is never reused. A source that reads a code it does
 * not know keeps the destination's words and names the refusal "unknown".
 */
import { RefusedError, WireError } from '../errors.js';

export const REFUSALS = {
  /** The stream's version is not one this destination reads (format.ts checkVersion). */
  version: { code: 1, means: "the stream's version is not one the destination reads" },
  /** The guest's RAM exceeds the destination's maxGuestBytes (--max-ram). */
  'max-ram': { code: 2, means: "the guest's RAM exceeds the destination's limit (--max-ram)" },
  /** The guest's RAM is not the size the destination expects (--ram, expect.ramBytes). */
  'ram-size': { code: 3, means: "the guest's RAM is not the size the destination expects (--ram)" },
  /** The guest's vCPU count is not the one the destination expects (--vcpus, expect.vcpus). */
  vcpus: { code: 4, means: "the guest's vCPU count is not the one the destination expects (--vcpus)" },
  /** A record exceeds the destination's maxFrameBytes (--max-frame). */
  'max-frame': { code: 5, means: "a record exceeds the destination's largest frame (--max-frame)" },
  /** One side speaks TLS and the other does not. */
  tls: { code: 6, means: 'one side speaks TLS and the other does not' },
  /** The destination already has its source (it takes one connection). */
  busy: { code: 7, means: 'the destination already has its source' },
  /** The stream's WebAssembly program (its identity in the header) is not the destination's, or one side has none. */
  program: { code: 8, means: "the stream's WebAssembly program is not the one the destination runs" },
  /** The stream may switch to post-copy and this destination cannot take it (a WebAssembly program guest, a file). */
  postcopy: { code: 9, means: 'the destination cannot take post-copy' },
  /** The stream resumes a post-copy (flag RESUME) the destination does not hold: none paused here, or another guest's (its UUID or geometry differs). */
  resume: { code: 10, means: 'the stream resumes a post-copy the destination does not hold' },
  /** The stream's compressed packets use a codec this destination cannot decode (unknown, or its optional package is not installed). */
  compression: { code: 11, means: "the destination cannot decode the stream's compression method" },
} as const satisfies Record<string, { readonly code: number; readonly means: string }>;

export type RefusalName = keyof typeof REFUSALS;

const BY_CODE = new Map<number, RefusalName>(Object.entries(REFUSALS).map(([name, r]) => [r.code, name as RefusalName]));

/** The name of refusal `code`, or 'unknown' for a code this version does not know (a newer destination's). */
export function refusalName(code: number): RefusalName | 'unknown' {
  return BY_CODE.get(code) ?? 'unknown';
}

/** The code of refusal `name`; a WireError for a name that is not a row. */
export function refusalCode(name: string): number {
  const row = (REFUSALS as Record<string, { code: number } | undefined>)[name];
  if (row === undefined) throw new WireError(`REFUSED: no refusal named ${JSON.stringify(name)}`);
  return row.code;
}

/** The destination's refusal `name`, with `message` saying what exactly. */
export function refused(name: RefusalName, message: string): RefusedError {
  return new RefusedError(message, { refusal: name });
}
