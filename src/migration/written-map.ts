/**
 * The source's side of preallocation: its ever-written map, sent as WRITTEN
 * records right after the header to a destination that asked for it
 * (PREALLOC on the return path, before READY: docs/wire-format.md,
 * "Preallocation"). The map is each block's ever-written bitmap as the
 * migration's dirty-log clients registered (the first pass's plan): the
 * pages the first pass will find dirty. Ranges are coalesced runs, in
 * records of at most MAX_WRITTEN_RANGES, blocks in order; the last record
 * carries LAST (an empty one when nothing was ever written).
 *
 * Its size: 8 bytes per run of written pages, so at most 4 bytes per page
 * (every other page written), 32 KiB per record; a guest written in long
 * runs costs a few records. It is read from the bitmap a 32-page word at a
 * time (bits.ts), never from RAM.
 */
import type { RamBlock } from '../memory/ram-block.js';
import { MAX_WRITTEN_RANGES } from '../wire/format.js';
import { recordBytes } from '../wire/frame-writer.js';
import { RECORD } from '../wire/records.js';
import { missingRanges } from './postcopy-source.js';
import type { StreamOut } from './stream-out.js';

/** Append the ever-written map of `blocks` to `out` (waiting for room); returns the pages it names. */
export async function sendWrittenMap(out: StreamOut, blocks: readonly RamBlock[]): Promise<number> {
  let pending: { block: number; ranges: Uint32Array } | null = null;
  let pages = 0;
  const send = async (r: { block: number; ranges: Uint32Array }, last: boolean) => {
    const fields = { last, ranges: r.ranges };
    await out.waitRoom(recordBytes(RECORD.Written.sizeOf(fields)));
    out.writer.append(RECORD.Written, fields, r.block);
  };
  for (const [block, b] of blocks.entries()) {
    for (const ranges of missingRanges(b.log.everWrittenWords, b.pages, MAX_WRITTEN_RANGES)) {
      for (let i = 1; i < ranges.length; i += 2) pages += ranges[i];
      if (pending !== null) await send(pending, false);
      pending = { block, ranges };
    }
  }
  await send(pending ?? { block: blocks.length - 1, ranges: new Uint32Array(0) }, true);
  // Out now: on several channels nothing else is written on this connection until the first pass's SYNC.
  out.writer.flush();
  return pages;
}
