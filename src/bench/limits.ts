/**
 * The physical limits every benchmark figure is compared with, measured in
 * the same run on the same machine: the zero scan over resident memory,
 * copying pages, first touch of fresh memory, and loopback TCP between two
 * processes with large writes, received and discarded, into fresh
 * never-touched memory (what a destination pays), or into resident memory
 * on as many connections as a migration has channels (what a preallocated
 * destination pays); and first touch of fresh memory advised for huge pages
 * (what a destination with --huge-pages pays), where huge pages are
 * reachable (memory/huge-pages.ts).
 */
import { PAGE_SIZE } from '../memory/page.js';
import { adviseBlocks, hugePagesSupport, type HugePagesAddon } from '../memory/huge-pages.js';
import { RamBlock } from '../memory/ram-block.js';
import { zeroScannerFor } from '../memory/zero-scan.js';
import { measureLoopback } from './loopback-limit.js';
import { summarize, timeMs, type Sample } from './stats.js';

export interface Limits {
  /** GB/s: the zero scan (ferry's kernel) over resident zeroed memory. */
  readonly zeroScanGBps: Sample;
  /** GB/s: 4 KiB page copies between resident buffers. */
  readonly pageCopyGBps: Sample;
  /** GB/s: writing whole pages into fresh, never-touched memory (page faults included). */
  readonly firstTouchGBps: Sample;
  /** GB/s: the same into fresh memory advised for huge pages first (the advice timed too); null where huge pages are not reachable. */
  readonly firstTouchHugeGBps: Sample | null;
  /** Why huge pages are not reachable here (absent: they are). */
  readonly hugePagesUnreachable?: string;
  /** GB/s: loopback TCP between two processes, 1 MiB writes, received and discarded. */
  readonly loopbackGBps: Sample;
  /** GB/s: the same, received into fresh never-touched memory. */
  readonly loopbackFreshGBps: Sample;
  /** GB/s: the same into resident memory (a preallocated destination's), on 1, 2 and 4 connections at once (a migration's channels). */
  readonly loopbackResidentGBps: readonly { readonly streams: number; readonly gbps: Sample }[];
}

/** The connections the into-resident limit is measured on: the multifd rows' channels. */
export const RESIDENT_STREAMS = [1, 2, 4] as const;

/** The into-resident limit on `streams` connections (the row's channels; 1 without multifd). */
export function residentLimit(limits: Limits, streams: number): Sample {
  const found = limits.loopbackResidentGBps.find((l) => l.streams === streams);
  if (found === undefined) throw new Error(`no into-resident limit on ${streams} connections: measured on ${RESIDENT_STREAMS.join(', ')}`);
  return found.gbps;
}

/**
 * GB/s of writing `copy`'s whole pages into a fresh block of its size, over
 * `runs` runs; with `huge`, the block advised for huge pages first (the
 * advice timed with the writes: a destination pays it too).
 */
export function measureFirstTouch(copy: Uint8Array, runs: number, huge?: HugePagesAddon): Sample {
  const pages = copy.length / PAGE_SIZE;
  return summarize(Array.from({ length: runs }, () => {
    const fresh = RamBlock.create('fresh', copy.length);
    return copy.length / timeMs(() => {
      if (huge !== undefined) adviseBlocks([fresh], huge);
      for (let p = 0; p < pages; p++) fresh.bytes.set(copy.subarray(p * PAGE_SIZE, (p + 1) * PAGE_SIZE), p * PAGE_SIZE);
    }) / 1e6;
  }));
}

export async function measureLimits(o: { bytes: number; runs: number }): Promise<Limits> {
  const pages = o.bytes / PAGE_SIZE;
  const gbps = (ms: number) => o.bytes / ms / 1e6;
  const block = RamBlock.create('limits', o.bytes);
  block.bytes.fill(1);
  block.bytes.fill(0);
  const scanner = zeroScannerFor(block.memory, o.bytes);
  const runs = (fn: () => number) => summarize(Array.from({ length: o.runs }, fn));
  const zeroScanGBps = runs(() => gbps(timeMs(() => {
    if (scanner.zeroPages(0, pages) !== pages) throw new Error('not zero');
  })));
  const copy = new Uint8Array(o.bytes);
  copy.fill(1);
  const pageCopyGBps = runs(() => gbps(timeMs(() => {
    for (let p = 0; p < pages; p++) copy.set(block.bytes.subarray(p * PAGE_SIZE, (p + 1) * PAGE_SIZE), p * PAGE_SIZE);
  })));
  const firstTouchGBps = measureFirstTouch(copy, o.runs);
  const huge = hugePagesSupport();
  const firstTouchHugeGBps = huge.addon === undefined ? null : measureFirstTouch(copy, o.runs, huge.addon);
  const loopback: number[] = [];
  const loopbackFresh: number[] = [];
  const resident: number[][] = RESIDENT_STREAMS.map(() => []);
  for (let i = 0; i < o.runs; i++) {
    loopback.push(await measureLoopback('discard', o.bytes));
    loopbackFresh.push(await measureLoopback('fresh', o.bytes));
    for (const [k, streams] of RESIDENT_STREAMS.entries()) resident[k].push(await measureLoopback('resident', o.bytes, streams));
  }
  return {
    zeroScanGBps, pageCopyGBps, firstTouchGBps, firstTouchHugeGBps, ...(huge.reason === undefined ? {} : { hugePagesUnreachable: huge.reason }), loopbackGBps: summarize(loopback), loopbackFreshGBps: summarize(loopbackFresh),
    loopbackResidentGBps: RESIDENT_STREAMS.map((streams, k) => ({ streams, gbps: summarize(resident[k]) })),
  };
}
