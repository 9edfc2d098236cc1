/**
 * What a vCPU runs. A workload is deterministic from its state: `save()`
 * returns everything needed, and `restoreWorkload(save())` in another guest
 * continues exactly where it stopped. Contents written depend only on the
 * state, never on timing; timing decides only how many pages a step writes.
 *
 * Steps are restartable (post-copy, DESIGN.md invariant 7): any GuestMemory
 * access may throw a MissingPage signal before it touches its page, and the
 * vCPU loop then waits for the page and calls `step` again. So a step
 * changes its saved state for a page only after that page's last access
 * (compute the next cursor, generator or counter in locals; commit them
 * after the store), and counts in `pagesDone` the pages it wrote (or read)
 * before the signal (a `finally`). Pacing credit taken for pages not written is given
 * back (pacerRefund).
 */
import { InvalidArgumentError } from '../../errors.js';
import type { GuestMemory } from '../../memory/guest-memory.js';

export type WorkloadKind = 'idle' | 'stress' | 'fill' | 'sweep' | 'read' | 'touch';
export const WORKLOAD_KINDS: readonly WorkloadKind[] = ['idle', 'stress', 'fill', 'sweep', 'read', 'touch'];

export interface IdleSpec {
  kind: 'idle';
  /** Guest page incremented at each heartbeat (default 0). */
  heartbeatPage?: number;
  /** Guest-time interval between heartbeats (default 100 ms). */
  intervalMs?: number;
}

export interface StressSpec {
  kind: 'stress';
  firstPage?: number;
  /** Working set in pages (default: the rest of RAM from firstPage). */
  pages?: number;
  /** Target write rate in MiB/s of pages; omitted: unlimited. */
  rateMiBps?: number;
  order?: 'sequential' | 'random';
  seed?: number;
}

export interface FillSpec {
  kind: 'fill';
  /** Fraction of RAM (from firstPage) to fill once, in (0, 1] (default 1). */
  fraction?: number;
  data?: 'zero' | 'random' | 'text';
  firstPage?: number;
  /** After filling, zero the same pages again (non-zero pages become zero). */
  thenZero?: boolean;
  seed?: number;
}

export interface SweepSpec {
  kind: 'sweep';
  firstPage?: number;
  pages?: number;
  /** Pace as whole sweeps per second of guest time; omitted with pagesPerSec: full speed. */
  sweepsPerSec?: number;
  pagesPerSec?: number;
  /**
   * What the rest of each page holds: 'zero' (default), or 'random', written
   * with the page's first counter (its first sweep), so that later sweeps
   * change 8 bytes of a page of random data (XBZRLE's case where deltas
   * must pay without zero pages or compressible data).
   */
  data?: 'zero' | 'random';
}

export interface ReadSpec {
  kind: 'read';
  firstPage?: number;
  /** Pages read over and over, in order (default: the rest of RAM from firstPage). */
  pages?: number;
  /** Pace in pages per second of guest time; omitted: full speed. */
  pagesPerSec?: number;
}

export interface TouchSpec {
  kind: 'touch';
  firstPage?: number;
  pages?: number;
  /** Which eighth of each page's words this vCPU owns (0..7, default 0): vCPUs of different lanes may share pages. */
  lane?: number;
  /** Stop after this many touches (default: never). */
  touches?: number;
  seed?: number;
}

export type WorkloadSpec = IdleSpec | StressSpec | FillSpec | SweepSpec | ReadSpec | TouchSpec;

/** A workload's saved state: JSON, with its kind and parameters inside. */
export interface WorkloadState {
  readonly kind: WorkloadKind;
  readonly [key: string]: unknown;
}

export interface Workload {
  readonly kind: WorkloadKind;
  /**
   * Write at most `maxPages` pages, as many as the workload's pace allows
   * at guest time `nowNs`. Returns the number of pages written (0: nothing
   * due yet, or nothing left to do).
   */
  step(mem: GuestMemory, nowNs: number, maxPages: number): number;
  /** Pages written (read, if `readsOnly`) by this instance so far, a step stopped by a MissingPage signal included. */
  readonly pagesDone: number;
  save(): WorkloadState;
  /** True for a workload that writes nothing: `step` then returns pages read, counted as Stat.PagesRead. */
  readonly readsOnly?: boolean;
}

/** Validation helpers shared by the workload modules. */
export function checkInt(what: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new InvalidArgumentError(`${what} must be an integer in [${min}, ${max}], got ${String(v)}`);
  }
  return v;
}

export function checkRate(what: string, v: unknown, max: number): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0 || v > max) {
    throw new InvalidArgumentError(`${what} must be a number in (0, ${max}], got ${String(v)}`);
  }
  return v;
}

export function checkOneOf<T extends string>(what: string, v: unknown, allowed: readonly T[]): T {
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
    throw new InvalidArgumentError(`${what} must be one of ${allowed.join(', ')}, got ${JSON.stringify(v)}`);
  }
  return v as T;
}

/** Resolve a [firstPage, firstPage+pages) range against guest RAM. */
export function checkRange(kind: string, totalPages: number, firstPage: unknown, pages: unknown): { first: number; pages: number } {
  const first = checkInt(`${kind}: firstPage`, firstPage ?? 0, 0, totalPages - 1);
  const n = checkInt(`${kind}: pages`, pages ?? totalPages - first, 1, totalPages - first);
  return { first, pages: n };
}
