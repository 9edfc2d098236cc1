/**
 * A run's XBZRLE deltas, gathered to go as one XBZRLERUN record
 * (records.ts): entries (u32 page, u16 length, delta) in a buffer of the
 * record's cap, allocated once; `send` appends them as one record (one
 * XBZRLE record for a single delta: 2 bytes smaller, the old record kept
 * in use). `add` sends the batch first when the new delta would pass a
 * cap (1024 pages, 512 KiB of head). Nothing is allocated per page.
 *
 * All deltas of a batch are of one block: the caller (xbzrle-sender.ts)
 * sends the batch before a run ends, and a run is of one block.
 */
import type { FrameWriter } from '../wire/frame-writer.js';
import { MAX_XBZRLE_RUN_HEAD_BYTES, MAX_XBZRLE_RUN_PAGES, XBZRLE_RUN_ENTRY_BYTES } from '../wire/records.js';

/** Room for entries after the head's count. */
const BATCH_BYTES = MAX_XBZRLE_RUN_HEAD_BYTES - 4;

export class XbzrleBatch {
  private readonly entries = new Uint8Array(BATCH_BYTES);
  private bytes = 0;
  /** Deltas gathered and not yet sent. */
  count = 0;

  /** Page `page`'s delta (`delta[0, length)`, 1..4096 bytes) joins the batch; a full batch goes first. Returns wire bytes sent. */
  add(writer: FrameWriter, block: number, page: number, delta: Uint8Array, length: number): number {
    let wire = 0;
    if (this.count === MAX_XBZRLE_RUN_PAGES || this.bytes + XBZRLE_RUN_ENTRY_BYTES + length > BATCH_BYTES) wire = this.send(writer, block);
    const b = this.entries;
    let at = this.bytes;
    b[at] = page;
    b[at + 1] = page >>> 8;
    b[at + 2] = page >>> 16;
    b[at + 3] = page >>> 24;
    b[at + 4] = length;
    b[at + 5] = length >>> 8;
    at += XBZRLE_RUN_ENTRY_BYTES;
    // A delta is mostly a few bytes (the sweeper's: 7): a loop beats making a view to set from. A long one costs
    // more in bytes copied than that view (the one allocation here, for deltas over 64 bytes only).
    if (length <= 64) for (let i = 0; i < length; i++) b[at + i] = delta[i];
    else b.set(delta.subarray(0, length), at);
    this.bytes = at + length;
    this.count++;
    return wire;
  }

  /** The batch as one XBZRLERUN record of `block` (one XBZRLE record for a single delta), then empty. Returns wire bytes. */
  send(writer: FrameWriter, block: number): number {
    const { count, bytes } = this;
    if (count === 0) return 0;
    this.count = this.bytes = 0;
    if (count > 1) return writer.appendXbzrleRun(block, this.entries, bytes, count);
    const b = this.entries;
    const page = (b[0] | (b[1] << 8) | (b[2] << 16) | (b[3] << 24)) >>> 0;
    return writer.appendXbzrle(block, page, b.subarray(XBZRLE_RUN_ENTRY_BYTES, bytes), bytes - XBZRLE_RUN_ENTRY_BYTES);
  }
}
