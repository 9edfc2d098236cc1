/**
 * The RAM iteration as a step machine: given a deadline and a byte budget,
 * send some of the current pass and say why it stopped. Driven by the
 * migration thread (threaded mode) or by the main event loop (`mainloop`
 * mode, which exists to reproduce the 2010 thread's experiment).
 *
 * A pass walks every block in ranges of 512 pages (2 MiB). Each range is
 * synced from the dirty log just before it is sent (the thread's point: the
 * shorter the time between sampling a page's dirtiness and sending it, the
 * fewer pages go twice). Pages never written are never dirty for a client,
 * so they are neither read nor sent; the first pass sends exactly the pages
 * ever written (a client starts with those). Within a range, runs of zero
 * pages become one ZERO record; other pages go as PAGES records of up to
 * 256 pages, copied once into the writer's slots. With verify, each page
 * sent updates the digest (ram-digest.ts) from that copy, the bytes sent.
 *
 * Several channels (multifd): each channel's sender walks only its stripe,
 * the ranges whose number across all blocks is its index modulo the
 * channels. A page therefore always travels on the same channel, whose
 * connection keeps the order of its passes: a page sent in two passes
 * lands in pass order without waiting on the other channels.
 *
 * XBZRLE (the capability; xbzrle-sender.ts): from the first pass on, a run
 * of dirty non-zero pages goes as its cache decides, each page whole, as a
 * delta or not at all; a zero run is cached as zeros. END's data totals
 * count the deltas (the destination counts them so), pass.normalPages not.
 * With compression too (a packer), the pages of a run that go whole go
 * through the packer as one packet each (COMPRESSED or PAGES); a delta is
 * never in a packet: each works alone as without the other.
 *
 * Growth: a block with a size word (memory/block-tail.ts; a WebAssembly
 * guest's memory.size) is walked only up to its pages in use, read once at
 * the start of each pass, before the pass syncs any range of the log. When
 * that grew since the stream last said (the header, or a GROW), a GROW
 * record goes right after PASS, before any page of the pass. So a page in
 * the grown range is sent only after its GROW: written before the read, it
 * is walked this pass, after the GROW; written after it, it stays dirty for
 * the next pass, whose read sees the new size. Pages past the size in use
 * are not sent (the destination refuses them): the program cannot see them
 * without growing, and a mark there waits in the client until a GROW
 * covers it.
 *
 * Over 300 lines: the step machine, its pass counters and the stripe and
 * growth rules share the cursor state; XBZRLE's part lives in
 * xbzrle-sender.ts behind one call per run.
 */
import { nextClearBit, nextSetBit } from '../memory/bits.js';
import type { DirtyLogClient } from '../memory/dirty-log.js';
import type { RamBlock } from '../memory/ram-block.js';
import { MAX_PAGES_PER_RECORD, type BlockTotals } from '../wire/format.js';
import { RECORD } from '../wire/records.js';
import { recordBytes, type FrameWriter } from '../wire/frame-writer.js';
import { pageHasher, type PageHasher } from '../wire/page-hash.js';
import { RamDigest } from './ram-digest.js';
import { xbzrleRunBytes, XbzrleSender, type XbzrleFigures } from './xbzrle-sender.js';

export const RANGE_PAGES = 512;

export type StepOutcome =
  | 'pass-done' // the pass is complete
  | 'blocked'   // the writer has no room: wait for the transport
  | 'budget'    // the byte budget is spent
  | 'time';     // the deadline passed

/** A channel's share of RAM: ranges g (numbered across blocks) with g % count === index. */
export interface Stripe {
  readonly index: number;
  readonly count: number;
}

export interface PassCounters {
  normalPages: number;
  zeroPages: number;
  bytes: number;
  /** Bytes charged to the bandwidth budget: `bytes`, unless zero pages are charged as in 2010 (see `zeroPageBudgetBytes`). */
  budgetBytes: number;
  /** Dirty pages taken from the log in this pass (what the pass found to send). */
  dirtyFound: number;
}

/**
 * What the session, the switchover and the figures read of whoever sends
 * the passes' pages: this module's RamSender on the main connection, or
 * the channels (channel-set.ts).
 */
export interface PassSource {
  /** The current (or last) pass's counters. */
  readonly pass: PassCounters;
  /** Per block: pages sent so far, with data and as zero (END's totals). */
  readonly totals: readonly BlockTotals[];
  /** How far the current pass has walked through RAM, 0 to 1. */
  readonly passFraction: number;
  /** Dirty pages not yet sent. */
  readonly remainingPages: number;
  /** With verify: the digest of what was sent (VERIFY's). */
  readonly digest: { value(): Buffer } | null;
  /** Post-copy, the guest paused: every page not sent since it was last dirtied, per block. */
  takeMissing(): Int32Array[];
  /** With the capability xbzrle: its figures so far (summed over channels); null without. */
  xbzrleFigures(): XbzrleFigures | null;
}

/**
 * Several channels with compression (packet-compressor.ts): each run of
 * pages with data (at most `maxPages`) is a packet, offered to `pack`
 * once copied; its frame goes as COMPRESSED, null as PAGES.
 */
export interface PacketPacker {
  readonly maxPages: number;
  /** The frame to send for `raw`, or null to send it raw; valid until the next call. */
  pack(raw: Uint8Array): Uint8Array | null;
}

const ZERO_RECORD_BYTES = recordBytes(RECORD.Zero.headBytes);
const GROW_RECORD_BYTES = recordBytes(RECORD.Grow.headBytes);

export class RamSender implements PassSource {
  readonly totals: BlockTotals[];
  pass: PassCounters = { normalPages: 0, zeroPages: 0, bytes: 0, budgetBytes: 0, dirtyFound: 0 };
  private block = 0;
  private nextPage = 0;
  /** The range taken from the log and not yet fully sent. */
  private readonly taken = new Int32Array(RANGE_PAGES / 32);
  private rangeBase = 0;
  private rangeLen = 0;
  private pos = 0;
  /** The pass ends once the range in hand is sent (endAtRangeEnd): nothing taken is left behind. */
  private endingEarly = false;
  /** Per block: the pages in use the stream has said (the header's, then each GROW's). */
  readonly announced: number[];
  /** Per block: the pages in use read at the start of this pass; the pass walks up to here. */
  private readonly visible: number[];
  /** The ZERO head's fields, reused (a record per zero page in the 2010 reproduction). */
  private readonly zeroRun = { first: 0, count: 0 };
  /** With verify: the digest of what was sent, and the hash over the writer's slots. */
  readonly digest: RamDigest | null;
  private readonly hash: PageHasher | null;
  /** Per block: the number (across blocks) of its first range; the stripe's test. */
  private readonly firstRange: number[] = [];
  /** Several channels with compression: what packs each run of pages (null: PAGES as they are). */
  packer: PacketPacker | null = null;

  constructor(
    private readonly blocks: readonly RamBlock[],
    private readonly clients: readonly DirtyLogClient[],
    private readonly writer: FrameWriter,
    /**
     * 0 (ferry): runs of zero pages go as one ZERO record each. > 0 (the
     * benchmark's reproduction of the 2010 thread): every zero page goes as
     * its own record and is charged this many bytes of the bandwidth budget
     * (QEMU 2010 sent 9: an 8-byte address with flags, and the fill byte).
     * A parameter: it may change between steps.
     */
    public zeroPageBudgetBytes = 0,
    verify = false,
    /** Several channels: this sender's stripe; default: every range. */
    private readonly stripe: Stripe = { index: 0, count: 1 },
    /** With the capability xbzrle: the cache's size in bytes (this sender's share); null: off. */
    xbzrleCacheBytes: number | null = null,
  ) {
    let ranges = 0;
    for (const b of blocks) {
      this.firstRange.push(ranges);
      ranges += Math.ceil(b.pages / RANGE_PAGES);
    }
    this.totals = blocks.map(() => ({ normal: 0, zero: 0 }));
    this.announced = blocks.map((b) => b.visiblePages());
    this.visible = [...this.announced];
    this.digest = verify ? new RamDigest(blocks.map((b) => b.pages)) : null;
    this.hash = verify ? pageHasher(writer.memory) : null;
    this.xbzrle = xbzrleCacheBytes === null ? null : new XbzrleSender(xbzrleCacheBytes, this.hash);
  }

  /** With the capability xbzrle: the pages' cache and how they go (null: off). */
  readonly xbzrle: XbzrleSender | null;

  xbzrleFigures(): XbzrleFigures | null {
    return this.xbzrle?.figures() ?? null;
  }

  /** Wire bytes startPass may append: PASS, and a GROW per block. */
  get startPassBytes(): number {
    return recordBytes(RECORD.Pass.headBytes) + this.blocks.length * GROW_RECORD_BYTES;
  }

  /**
   * Start pass `n`: a PASS record, each block's pages in use read (and a
   * GROW for each that grew: see top), counters reset, cursor at the first
   * block. The writer must have room for `startPassBytes`. `inUse`: each
   * block's pages in use as read for every channel at once (so that all
   * channels announce the same sizes); default: read here.
   * `lastStage`: the final pass, the guest paused (XBZRLE caches nothing in it).
   */
  startPass(n: number, inUse?: readonly number[], lastStage = false): void {
    this.xbzrle?.startPass(n, lastStage, this.pass.normalPages + this.pass.zeroPages);
    this.pass = { normalPages: 0, zeroPages: 0, bytes: 0, budgetBytes: 0, dirtyFound: 0 };
    this.block = 0;
    this.nextPage = 0;
    this.rangeLen = 0;
    this.endingEarly = false;
    this.charge(this.writer.append(RECORD.Pass, { pass: n }));
    this.blocks.forEach((b, i) => {
      const visible = inUse?.[i] ?? b.visiblePages();
      this.visible[i] = visible;
      if (visible <= this.announced[i]) return;
      this.charge(this.writer.append(RECORD.Grow, { pages: visible }, i));
      this.announced[i] = visible;
    });
  }

  /** How far the current pass has walked through RAM, 0 to 1 (monotonic within a pass). */
  get passFraction(): number {
    let done = 0;
    let total = 0;
    this.visible.forEach((pages, i) => {
      total += pages;
      if (i < this.block) done += pages;
      else if (i === this.block) done += Math.min(this.nextPage, pages);
    });
    return total === 0 ? 1 : done / total;
  }

  /** Dirty pages not yet sent: the clients' counts plus the range in hand. */
  get remainingPages(): number {
    let n = 0;
    for (const c of this.clients) n += c.dirtyPages;
    if (this.rangeLen > 0) {
      for (let p = nextSetBit(this.taken, this.pos, this.rangeLen); p < this.rangeLen; p = nextSetBit(this.taken, p + 1, this.rangeLen)) n++;
    }
    return n;
  }

  /**
   * Post-copy, the guest paused: every page not sent since it was last
   * dirtied, per block (bit set: missing at the destination): the range in
   * hand from where the pass stopped, and each client's dirty pages after a
   * last sync (taken: the clients are empty afterwards). The range is dropped.
   */
  takeMissing(): Int32Array[] {
    const out = this.blocks.map((b) => new Int32Array(Math.ceil(b.pages / 32)));
    for (const [i, c] of this.clients.entries()) c.syncAndTake(0, this.blocks[i].pages, out[i]);
    if (this.rangeLen > 0) {
      const bits = out[this.block];
      for (let p = nextSetBit(this.taken, this.pos, this.rangeLen); p < this.rangeLen; p = nextSetBit(this.taken, p + 1, this.rangeLen)) {
        const g = this.rangeBase + p;
        bits[g >>> 5] |= 1 << (g & 31);
      }
      this.rangeLen = 0;
    }
    return out;
  }

  /**
   * End the pass before the end of RAM (early-pass-end.ts): once the range
   * in hand is sent, step says 'pass-done'. A pass cannot end inside a
   * range: its pages are taken from the log, and startPass drops a range.
   */
  endAtRangeEnd(): void {
    this.endingEarly = true;
  }

  /** The pass ended (or is to end) before the end of RAM: endAtRangeEnd was called. */
  get endsEarly(): boolean {
    return this.endingEarly;
  }

  /** Send until the pass ends, `deadlineNs` passes, `byteBudget` is spent or the writer is full. */
  step(deadlineNs: number, byteBudget: number, nowNs: () => number): StepOutcome {
    const startBytes = this.pass.budgetBytes;
    for (;;) {
      if (this.rangeLen === 0 && (this.endingEarly || !this.takeNextRange())) return 'pass-done';
      const p = nextSetBit(this.taken, this.pos, this.rangeLen);
      if (p === this.rangeLen) {
        this.rangeLen = 0;
        continue;
      }
      const runEnd = nextClearBit(this.taken, p, this.rangeLen);
      if (!this.sendRun(p, runEnd)) return 'blocked';
      if (this.pass.budgetBytes - startBytes >= byteBudget) return 'budget';
      if (nowNs() >= deadlineNs) return 'time';
    }
  }

  /** Send the start of dirty run [p, runEnd) of the range in hand; false if the writer is full. */
  private sendRun(p: number, runEnd: number): boolean {
    const block = this.blocks[this.block];
    const page = this.rangeBase + p;
    const perPage = this.zeroPageBudgetBytes > 0;
    const zeros = perPage ? (block.zero.isZeroPage(page) ? 1 : 0) : block.zero.zeroPages(page, runEnd - p);
    if (zeros > 0) {
      if (!this.writer.hasRoom(ZERO_RECORD_BYTES)) return false;
      this.zeroRun.first = page;
      this.zeroRun.count = zeros;
      const wire = this.writer.append(RECORD.Zero, this.zeroRun, this.block);
      this.pass.bytes += wire;
      this.pass.budgetBytes += perPage ? this.zeroPageBudgetBytes : wire;
      this.pass.zeroPages += zeros;
      this.totals[this.block].zero += zeros;
      this.digest?.clearPages(this.block, page, zeros);
      this.xbzrle?.zeroPages(this.block, page, zeros);
      this.pos = p + zeros;
      return true;
    }
    let n = 1;
    const max = Math.min(runEnd - p, this.packer?.maxPages ?? MAX_PAGES_PER_RECORD);
    while (n < max && !block.zero.isZeroPage(page + n)) n++;
    if (this.xbzrle?.active === true) return this.sendThroughCache(block, page, n, p);
    if (!this.writer.hasRoom(recordBytes(RECORD.Pages.headBytes, n))) return false;
    if (this.packer !== null) this.charge(this.sendPacket(page, n, block.bytes));
    else {
      this.charge(this.writer.appendPages(this.block, page, n, block.bytes));
      this.digest?.setPages(this.hash!, this.writer.lastPageData, this.block, page, n);
    }
    this.pass.normalPages += n;
    this.totals[this.block].normal += n;
    this.pos = p + n;
    return true;
  }

  /** A packet of `n` pages from `page`: copied once, packed from the copy, hashed (verify) before a frame overwrites it. */
  private sendPacket(page: number, n: number, src: Uint8Array): number {
    const frame = this.packer!.pack(this.writer.stagePages(this.block, page, n, src));
    this.digest?.setPages(this.hash!, this.writer.lastPageData, this.block, page, n);
    return frame === null ? this.writer.commitPages() : this.writer.commitCompressed(frame);
  }

  /** XBZRLE: pages [page, page+n) (none zero) as the cache decides (xbzrle-sender.ts); false if the writer is full. */
  private sendThroughCache(block: RamBlock, page: number, n: number, p: number): boolean {
    const x = this.xbzrle!;
    if (!this.writer.hasRoom(xbzrleRunBytes(n))) return false;
    this.charge(x.sendRun(this.writer, this.block, block.bytes, page, n, this.digest, this.packer));
    this.pass.normalPages += x.lastWhole;
    this.totals[this.block].normal += x.lastWhole + x.lastDeltas;
    this.pos = p + n;
    return true;
  }

  private charge(wireBytes: number): void {
    this.pass.bytes += wireBytes;
    this.pass.budgetBytes += wireBytes;
  }

  /** Ranges from the one at `page` of `block` to the next of this sender's stripe (0: it is). */
  private rangesToStripe(block: number, page: number): number {
    const { index, count } = this.stripe;
    if (count === 1) return 0;
    const g = this.firstRange[block] + page / RANGE_PAGES;
    return (index - (g % count) + count) % count;
  }

  /** Sync and take the next range with anything dirty, within the pages in use; false at the end of the pass. */
  private takeNextRange(): boolean {
    while (this.block < this.blocks.length) {
      const end = this.visible[this.block];
      if (this.nextPage >= end) {
        this.block++;
        this.nextPage = 0;
        continue;
      }
      const client = this.clients[this.block];
      // Clean memory: skip to the first range that may hold a dirty page, lock-free, in one loop.
      const next = client.nextMaybeDirty(this.nextPage);
      if (next >= end) {
        this.nextPage = end;
        continue;
      }
      this.nextPage = Math.max(this.nextPage, next - (next % RANGE_PAGES));
      const skip = this.rangesToStripe(this.block, this.nextPage);
      if (skip > 0) {
        this.nextPage += skip * RANGE_PAGES;
        continue;
      }
      const count = Math.min(RANGE_PAGES, end - this.nextPage);
      this.rangeBase = this.nextPage;
      this.nextPage += count;
      const found = client.syncAndTake(this.rangeBase, count, this.taken);
      if (found === 0) continue;
      this.pass.dirtyFound += found;
      this.rangeLen = count;
      this.pos = 0;
      return true;
    }
    return false;
  }
}
