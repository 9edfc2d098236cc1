/**
 * Post-copy, source side (DESIGN.md section 7): the pages the destination
 * lacks at GO, served on request first, then pushed in order, each once,
 * paced below the link's rate, until the destination says DONE.
 *
 *   source (migration thread)                      destination
 *   pause; sync; MISSING... VCPU... DEVICE... END ──▶ mark missing, load
 *         ◀──────────────────────────────────────── LOADED
 *   commit (postmigrate), GO ─────────────────────▶ resume at once
 *         ◀──────────────────────────────────────── RESUMED
 *         ◀─────────────── REQUEST p... (its vCPUs wait for p)
 *   PCPAGES p (requests first), PCPAGES (the push) ▶ check each page, install
 *   PEND sent (every missing page pushed) ────────▶ totals check
 *         ◀──────────────────────────────────────── DONE (every page here)
 *
 * The source's RAM is frozen after GO (the guest is postmigrate), so pages
 * are read straight from it. Nothing is discarded until DONE: the bitmap
 * of pages not yet sent, and RAM itself, stay whole. After a broken link
 * a recovery (postcopy-recovery.ts) replaces that bitmap with the
 * destination's (resume): what was in flight at the break goes again.
 *
 * Pacing, the rule: a request must not wait behind the push. The push
 * goes only while fewer than PUSH_INFLIGHT_BYTES are unacknowledged, and
 * at `max-postcopy-bandwidth`, or when that is 0 at 97 % of the bandwidth
 * measured before GO (not after: the push's own pace would then feed back
 * into it and ratchet it down). Why: at 1 Gbit/s the link's queue holds
 * 50 ms; a push at the link's full rate keeps it full, and every request
 * would wait those 50 ms. Below the rate the queue drains, and a request
 * waits behind at most the in-flight cap (2 MiB: 17 ms at 1 Gbit/s). What
 * it ignores: the destination's reads of its socket are assumed as fast as
 * the link (they are: it installs a page in microseconds).
 *
 * Why 97 % and not less: a vCPU that touches pages faster than the link
 * (the sweeper) is blocked for as long as the push runs, and the
 * issue holds that to 1.1 x missing bytes / link rate, so the push must
 * run at 91 % of the link's rate or more. The measured bandwidth is the
 * payload's (114-117 MB/s on the 1 Gbit/s veth, 125 MB/s raw): 90 % of it
 * was 83 % of the link, over the target by construction, and measured
 * 1-4 % past it in 2 of 6 runs; at 97 % every run met it by 5-8 %, with
 * request latency p99 0.8-7.5 ms (BENCHMARKS.md, post-copy at 1 Gbit/s).
 */
import { MigrationError } from '../errors.js';
import { nextClearBit, nextSetBit } from '../memory/bits.js';
import type { RamBlock } from '../memory/ram-block.js';
import { MAX_POSTCOPY_PAGES_PER_RECORD } from '../wire/format.js';
import { recordBytes } from '../wire/frame-writer.js';
import { RECORD, REQUEST_AGAIN } from '../wire/records.js';
import type { MigrationParameters } from './parameters.js';
import { RateLimiter } from './rate-limiter.js';
import type { StreamOut } from './stream-out.js';
import { Signal, type StopSignal, nowNs } from './waiter.js';

/** Bytes the push may have unacknowledged (see top). */
export const PUSH_INFLIGHT_BYTES = 2 * 1024 * 1024;
/** Times one page may be asked for again (its check failed at the destination) before the link is taken for broken. */
export const MAX_ASKS_AGAIN = 8;
/** Share of the measured bandwidth the push uses when max-postcopy-bandwidth is 0 (see top). */
export const PUSH_SHARE = 0.97;

/** The connection post-copy sends on: replaced when a broken link is recovered. */
export interface PostcopyLink {
  readonly out: StreamOut;
  /** Stops when this connection breaks (or the migration stops). */
  readonly abort: StopSignal;
}

export interface PostcopyParts extends PostcopyLink {
  readonly blocks: readonly RamBlock[];
  parameters(): MigrationParameters;
  /** Bytes sent and not yet acknowledged, now. */
  inflightBytes(): number;
  /** The bandwidth measured before GO, bytes/s (0: none measured). */
  readonly measuredBytesPerSec: number;
  /** Tests: corrupt the first this many page sends after their check is taken. */
  readonly corruptPages: number;
}

/** Post-copy's counters (query-migrate: postcopy-requests, postcopy-bytes). */
export interface PostcopySourceCounters {
  /** Pages missing at GO. */
  readonly missingAtGo: number;
  /** Pages sent after GO (a page asked again counts each time). */
  readonly sentPages: number;
  readonly bytes: number;
  /** Pages asked for by the destination. */
  readonly requests: number;
  /** Pages missing at GO not sent yet. */
  readonly unsentPages: number;
}

export class PostcopySource {
  /** Per block: pages not sent since GO. */
  private readonly unsent: Int32Array[];
  private readonly starts: number[] = [];
  private readonly totalPages: number;
  private readonly queue: number[] = [];
  /** Pages in the queue (a page asked twice before it is served is queued once: the queue is bounded by RAM). */
  private readonly queued: Int32Array;
  /** Pages asked for again, and how often. */
  private readonly asksAgain = new Map<number, number>();
  private readonly limiter = new RateLimiter(0);
  private wake = new Signal();
  private readonly done = new Signal();
  private cursorBlock = 0;
  private cursorPage = 0;
  private pushed = false;
  private pendSent = false;
  private corruptLeft: number;
  private link: PostcopyLink;
  /** Pages sent on this connection (PEND's count: what a broken link lost is not counted again). */
  private sentOnLink = 0;
  readonly missingAtGo: number;
  unsentPages: number;
  sentPages = 0;
  bytes = 0;
  requests = 0;

  /** `missing`: per block, the pages the destination lacks (taken over: cleared as they are sent). */
  constructor(private readonly p: PostcopyParts, missing: Int32Array[]) {
    this.unsent = missing;
    let at = 0;
    let n = 0;
    for (const [i, b] of p.blocks.entries()) {
      this.starts.push(at);
      at += b.pages;
      for (let q = nextSetBit(missing[i], 0, b.pages); q < b.pages; q = nextSetBit(missing[i], q + 1, b.pages)) n++;
    }
    this.totalPages = at;
    this.queued = new Int32Array(Math.ceil(at / 32));
    this.missingAtGo = n;
    this.unsentPages = n;
    this.corruptLeft = p.corruptPages;
    this.link = { out: p.out, abort: p.abort };
  }

  /**
   * Recovery: go on over `link`, sending exactly the pages the destination
   * says it lacks (RECVBITMAP's global ranges, checked by the caller): what
   * was in flight when the old link broke is sent again; requests queued
   * for the old link are dropped (the destination asks again after its
   * bitmap). Returns the pages now unsent.
   */
  resume(link: PostcopyLink, ranges: ArrayLike<number>): number {
    this.link = link;
    for (const bits of this.unsent) bits.fill(0);
    let n = 0;
    for (let i = 0; i < ranges.length; i += 2) {
      for (let page = ranges[i]; page < ranges[i] + ranges[i + 1]; page++) {
        const b = this.blockOf(page);
        const local = page - this.starts[b];
        this.unsent[b][local >>> 5] |= 1 << (local & 31);
        n++;
      }
    }
    this.unsentPages = n;
    this.queue.length = 0;
    this.queued.fill(0);
    this.cursorBlock = 0;
    this.cursorPage = 0;
    this.pushed = false;
    this.pendSent = false;
    this.sentOnLink = 0;
    this.wake = new Signal();
    return n;
  }

  /** Global page count (RECVBITMAP's ranges must fall within it). */
  get pages(): number {
    return this.totalPages;
  }

  /** Whether DONE came: every page is at the destination. */
  get finished(): boolean {
    return this.done.settled;
  }

  get counters(): PostcopySourceCounters {
    return { missingAtGo: this.missingAtGo, sentPages: this.sentPages, bytes: this.bytes, requests: this.requests, unsentPages: this.unsentPages };
  }

  /** REQUEST: global pages, each maybe with REQUEST_AGAIN. */
  onRequest(pages: ArrayLike<number>): void {
    for (let i = 0; i < pages.length; i++) {
      const page = pages[i] & ~REQUEST_AGAIN;
      if (page >= this.totalPages) throw new MigrationError(`REQUEST: page ${page} is outside guest RAM of ${this.totalPages} pages`);
      if ((pages[i] & REQUEST_AGAIN) !== 0) {
        const n = (this.asksAgain.get(page) ?? 0) + 1;
        if (n > MAX_ASKS_AGAIN) throw new MigrationError(`REQUEST: page ${page} asked for again ${n} times (its check kept failing at the destination)`);
        this.asksAgain.set(page, n);
      }
      const bit = 1 << (page & 31);
      if ((this.queued[page >>> 5] & bit) !== 0) continue;
      this.queued[page >>> 5] |= bit;
      this.queue.push(pages[i]);
    }
    this.requests += pages.length;
    this.wake.resolve();
  }

  /** An acknowledgement arrived: room in flight may be back. */
  onAck(): void {
    this.wake.resolve();
  }

  /** DONE: the destination holds every page. */
  onDone(): void {
    this.done.resolve();
    this.wake.resolve();
  }

  /** Serve requests and push until DONE; the first failure ends it. */
  async run(): Promise<void> {
    const abort = this.link.abort;
    while (!this.done.settled) {
      abort.check();
      if (this.queue.length > 0) {
        await this.serveRequests();
        continue;
      }
      const wait = this.pushSome();
      if (wait === 0) continue;
      if (typeof wait === 'object') {
        await this.link.out.waitRoom(wait.room);
        continue;
      }
      this.wake = new Signal();
      if (this.queue.length > 0 || this.done.settled) continue;
      await Promise.race([this.wake.promise, abort.promise, wait > 0 ? abort.sleep(wait) : new Promise(() => {})]);
    }
  }

  /** Send every page asked for that is not sent yet, or that is asked again; then flush. */
  private async serveRequests(): Promise<void> {
    while (this.queue.length > 0) {
      const entry = this.queue.shift()!;
      const page = entry & ~REQUEST_AGAIN;
      this.queued[page >>> 5] &= ~(1 << (page & 31));
      const b = this.blockOf(page);
      const local = page - this.starts[b];
      const bits = this.unsent[b];
      const unsent = (bits[local >>> 5] & (1 << (local & 31))) !== 0;
      if (!unsent && (entry & REQUEST_AGAIN) === 0) continue; // sent already, and not asked again
      await this.link.out.waitRoom(recordBytes(8, 1));
      this.send(b, local, 1);
    }
    this.link.out.writer.flush();
  }

  private blockOf(page: number): number {
    let b = this.starts.length - 1;
    while (this.starts[b] > page) b--;
    return b;
  }

  /**
   * Push the next run of unsent pages if the pacing allows: returns 0 when
   * it sent (or there is more to do at once), > 0 ms to wait for the rate,
   * -1 to wait for a wake (an acknowledgement, a request, DONE), or the
   * room to wait for in the writer.
   */
  private pushSome(): number | { room: number } {
    if (this.pushed) return this.sendPend();
    const next = this.nextRun();
    if (next === null) {
      this.pushed = true;
      return 0;
    }
    if (this.p.inflightBytes() > PUSH_INFLIGHT_BYTES) return -1;
    const now = nowNs();
    this.limiter.setRate(this.p.parameters().maxPostcopyBandwidthBytesPerSec || Math.floor(PUSH_SHARE * this.p.measuredBytesPerSec));
    if (this.limiter.allowance(now) === 0) return Math.max(1, this.limiter.waitNs(now) / 1e6);
    const size = recordBytes(4 + 4 * next.count, next.count);
    if (!this.link.out.writer.hasRoom(size)) return { room: size };
    this.limiter.consume(this.send(next.block, next.first, next.count));
    this.link.out.writer.flush();
    return 0;
  }

  /** PEND once everything was pushed; then wait for DONE (or requests: a page asked again). */
  private sendPend(): number | { room: number } {
    if (this.pendSent) return -1;
    const size = recordBytes(RECORD.Pend.headBytes);
    if (!this.link.out.writer.hasRoom(size)) return { room: size };
    this.link.out.writer.append(RECORD.Pend, { sent: this.sentOnLink });
    this.link.out.writer.flush();
    this.pendSent = true;
    return -1;
  }

  /** The next run of unsent pages from the push's cursor (at most one record's), or null when none is left. */
  private nextRun(): { block: number; first: number; count: number } | null {
    while (this.cursorBlock < this.p.blocks.length) {
      const b = this.cursorBlock;
      const pages = this.p.blocks[b].pages;
      const first = nextSetBit(this.unsent[b], this.cursorPage, pages);
      if (first < pages) {
        const end = Math.min(nextClearBit(this.unsent[b], first, pages), first + MAX_POSTCOPY_PAGES_PER_RECORD);
        this.cursorPage = first;
        return { block: b, first, count: end - first };
      }
      this.cursorBlock++;
      this.cursorPage = 0;
    }
    return null;
  }

  /** Append PCPAGES for pages [first, first+count) of block `b` (room checked) and mark them sent; returns wire bytes. */
  private send(b: number, first: number, count: number): number {
    const corrupt = this.corruptLeft > 0 ? 0 : -1;
    if (corrupt === 0) this.corruptLeft--;
    const wire = this.link.out.writer.appendCheckedPages(b, first, count, this.p.blocks[b].bytes, corrupt);
    const bits = this.unsent[b];
    for (let q = first; q < first + count; q++) {
      if ((bits[q >>> 5] & (1 << (q & 31))) !== 0) this.unsentPages--;
      bits[q >>> 5] &= ~(1 << (q & 31));
    }
    this.sentPages += count;
    this.sentOnLink += count;
    this.bytes += wire;
    return wire;
  }
}

/** MISSING's ranges of one block's bitmap: (first, count) pairs, in records of at most `max` ranges. */
export function missingRanges(bits: Int32Array, pages: number, max: number): Uint32Array[] {
  const out: Uint32Array[] = [];
  let cur: number[] = [];
  for (let p = nextSetBit(bits, 0, pages); p < pages; ) {
    const end = nextClearBit(bits, p, pages);
    cur.push(p, end - p);
    if (cur.length === 2 * max) {
      out.push(Uint32Array.from(cur));
      cur = [];
    }
    p = nextSetBit(bits, end, pages);
  }
  if (cur.length > 0) out.push(Uint32Array.from(cur));
  return out;
}
