/**
 * The sender's side of XBZRLE (the capability `xbzrle`): how a run of
 * dirty, non-zero pages goes once the first pass is over, each page as the
 * page cache decides (xbzrle-cache.ts `plan`, QEMU's save_xbzrle_page):
 * whole (PAGES, consecutive whole pages in one record), as a delta, or
 * not at all (unchanged since sent). The run's deltas go together, after
 * its whole pages, as one XBZRLERUN record (one frame and one check for
 * up to 256 pages, where a record per page held the destination below the
 * sweeping guest's dirty rate: bench/xbzrle-records.ts), or as one XBZRLE
 * record when there is only one. A pass sends each page at most once, so
 * this order within a run changes nothing, and a run's records are all
 * appended before sendRun returns: PASS, SYNC and the pass's end keep
 * their place with no flush of their own.
 * One per RamSender: on several channels each channel's thread has its
 * own, and since a page always travels on the same channel (its range's
 * stripe, ram-sender.ts), a cache per channel holds exactly what that
 * channel's connection delivered (docs/wire-format.md, "XBZRLE").
 *
 * The cache's one rule (xbzrle-cache.ts header) is kept here:
 * - `plan` sees the sender's stable copy of the pages (`copy`, taken from
 *   guest RAM once, before any decision), never RAM, which a vCPU may
 *   write meanwhile; a whole page is sent from that copy, so the bytes
 *   sent are the bytes the cache holds;
 * - `plan` is asked only for pages that will be sent as told: the caller
 *   checks the writer's room for the worst case (every page a record of
 *   its own) before the first page of the run.
 * With verify, each page's digest term is taken from the copy (for a
 * delta) or from the writer's slot (whole), the bytes the destination will
 * hold. After GO (post-copy) pages go as PCPAGES, never through here.
 */
import { PAGE_SIZE, WASM_PAGE_SIZE } from '../memory/page.js';
import { MAX_PAGES_PER_RECORD } from '../wire/format.js';
import { recordBytes, type FrameWriter } from '../wire/frame-writer.js';
import { XBZRLE_RUN_ENTRY_BYTES } from '../wire/records.js';
import { pageHasher, type PageHasher } from '../wire/page-hash.js';
import type { RamDigest } from './ram-digest.js';
import { XbzrleBatch } from './xbzrle-batch.js';
import { XBZRLE_SKIP, XBZRLE_WHOLE, XbzrleCache } from './xbzrle-cache.js';
import type { XbzrleCacheInfo } from './xbzrle-stats.js';

/** A delta no page takes (tests: `hostileDeltas`): a zero run of 4095 bytes, then a changed run of 2. */
const HOSTILE_DELTA = Uint8Array.from([0xff, 0x1f, 0x02, 0xaa, 0xbb]);

/**
 * Wire bytes a run of `pages` pages may take at most here: every page's
 * data (a delta is at most a page, with its entry's 6 bytes), and the
 * frames: at most one PAGES record per two pages (whole runs alternate
 * with deltas), and the deltas' records (one, or more where a record's
 * caps split them: at most 3 more for 256 pages of 4 KiB deltas).
 */
export function xbzrleRunBytes(pages: number): number {
  return pages * (PAGE_SIZE + XBZRLE_RUN_ENTRY_BYTES) + (Math.ceil(pages / 2) + 4) * recordBytes(4);
}


/** What the figures read of a sender's (or channels') XBZRLE: QEMU's counters, and the pages that went as deltas. */
export interface XbzrleFigures {
  readonly info: XbzrleCacheInfo;
  /** Pages sent as XBZRLE records (counted in END's data totals, not in query-migrate's `normal`). */
  readonly deltaPages: number;
}

/** Compression on the channel (ram-sender.ts PacketPacker): the frame to send for a packet's raw pages, or null to send them raw. */
export interface RunPacker {
  pack(raw: Uint8Array): Uint8Array | null;
}

export class XbzrleSender {
  readonly cache: XbzrleCache;
  /** The stable copy of the run being sent (up to one PAGES record's pages), in a memory of its own for the page hash. */
  private readonly copy: Uint8Array;
  private readonly copyPages: Uint8Array[];
  private readonly copyHash: PageHasher | null;
  /**
   * Pages go through the cache: from the first pass on. A deviation from
   * QEMU, whose bulk stage (its first round) sends every page whole and
   * uncached, so that its second round sends every page whole again while
   * it fills the cache: a guest that rewrites all of RAM between rounds
   * pays two full rounds before the first delta (the 512 MiB sweeper over
   * 1 Gbit/s: 1076 MB sent, 9.3 s). Here the first pass misses on every
   * page, sends it whole as QEMU would and caches it, so the second pass
   * sends deltas. The cost: each page of the first pass is copied once more
   * (into the cache), a few ms per 100 MiB; a first-pass miss is counted
   * in `cache-miss` (QEMU counts none in its bulk stage).
   */
  private started = false;
  /** The final pass, the source paused: nothing is cached any more (QEMU's last_stage). */
  private lastStage = false;
  /** The size asked for (the cache rounds it down to a power of two number of pages). */
  private sizeAsked: number;
  /** Pages sent as XBZRLE records so far, and in this pass. */
  deltaPages = 0;
  private passDeltas = 0;
  /** Tests only: send this many more deltas as a hostile one (a zero run to byte 4095, then 2 changed bytes: past the page's end). */
  hostileDeltas = 0;
  /** Of the last `sendRun`: pages that went whole, and as deltas. */
  lastWhole = 0;
  lastDeltas = 0;
  /** The run's deltas, sent together (xbzrle-batch.ts). */
  private readonly batch = new XbzrleBatch();

  constructor(sizeBytes: number, private readonly writerHash: PageHasher | null) {
    this.cache = new XbzrleCache(sizeBytes);
    this.sizeAsked = sizeBytes;
    const pages = (MAX_PAGES_PER_RECORD * PAGE_SIZE) / WASM_PAGE_SIZE;
    const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true }); // the page hash kernel takes shared memory (as the writer's)
    this.copy = new Uint8Array(memory.buffer);
    this.copyPages = Array.from({ length: MAX_PAGES_PER_RECORD }, (_, i) => this.copy.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE));
    this.copyHash = writerHash === null ? null : pageHasher(memory);
  }

  /** Whether pages go through the cache: from the first pass on (see `started`). */
  get active(): boolean {
    return this.started;
  }

  /**
   * Pass `n` begins; `lastStage`: it is the final one, the guest paused.
   * `pagesSent`: the pages the pass before sent whole or as zero; with its
   * deltas, they close a rate period (QEMU's migration_update_rates, run
   * at each dirty sync once a second has passed; here at each pass).
   */
  startPass(n: number, lastStage: boolean, pagesSent: number): void {
    if (n > 1) this.cache.stats.updateRates(pagesSent + this.passDeltas);
    this.passDeltas = 0;
    this.cache.generation = n;
    this.started = n >= 1;
    this.lastStage = lastStage;
  }

  /**
   * A new xbzrle-cache-size share (migrate-set-parameters): a new, empty
   * cache when it differs (QEMU's xbzrle_cache_resize); a failed
   * allocation keeps the old one.
   */
  resize(sizeBytes: number): void {
    if (sizeBytes === this.sizeAsked) return;
    this.cache.resize(sizeBytes);
    this.sizeAsked = sizeBytes;
  }

  /** Pages [first, first+count) of `block` went as ZERO: cached as zeros. */
  zeroPages(block: number, first: number, count: number): void {
    if (!this.started) return;
    for (let p = first; p < first + count; p++) this.cache.zeroPage(block, p, true);
  }

  /**
   * Send pages [first, first+count) of `block` (`src`: its bytes; none of
   * them zero; count <= MAX_PAGES_PER_RECORD) as the cache decides; the
   * writer must have room for xbzrleRunBytes(count). Returns wire bytes;
   * `lastWhole` and `lastDeltas` say how the pages went (the rest were
   * unchanged: nothing sent). With `packer` (compression on the
   * channel), each run of whole pages goes through it as one packet.
   */
  sendRun(writer: FrameWriter, block: number, src: Uint8Array, first: number, count: number, digest: RamDigest | null, packer: RunPacker | null = null): number {
    this.copy.set(src.subarray(first * PAGE_SIZE, (first + count) * PAGE_SIZE));
    let wire = 0;
    let runStart = -1;
    this.lastWhole = this.lastDeltas = 0;
    for (let i = 0; i < count; i++) {
      const length = this.cache.plan(block, first + i, this.copyPages[i], true, this.lastStage);
      if (length === XBZRLE_WHOLE) {
        if (runStart < 0) runStart = i;
        continue;
      }
      if (runStart >= 0) wire += this.whole(writer, block, first, runStart, i, digest, packer);
      runStart = -1;
      if (length === XBZRLE_SKIP) continue;
      if (this.hostileDeltas > 0) {
        this.hostileDeltas--;
        wire += this.batch.add(writer, block, first + i, HOSTILE_DELTA, HOSTILE_DELTA.length);
      } else {
        wire += this.batch.add(writer, block, first + i, this.cache.delta, length);
      }
      if (digest !== null) digest.setPages(this.copyHash!, i * PAGE_SIZE, block, first + i, 1);
      this.lastDeltas++;
    }
    if (runStart >= 0) wire += this.whole(writer, block, first, runStart, count, digest, packer);
    wire += this.batch.send(writer, block);
    this.deltaPages += this.lastDeltas;
    this.passDeltas += this.lastDeltas;
    return wire;
  }

  /** Copy pages [from, to) of the run whole, from the stable copy, as one PAGES record (or a packet: COMPRESSED or PAGES). */
  private whole(writer: FrameWriter, block: number, first: number, from: number, to: number, digest: RamDigest | null, packer: RunPacker | null): number {
    if (packer !== null) return this.packet(writer, block, first, from, to, digest, packer);
    const wire = writer.appendPages(block, first + from, to - from, this.copy, from);
    if (digest !== null) digest.setPages(this.writerHash!, writer.lastPageData, block, first + from, to - from);
    this.lastWhole += to - from;
    return wire;
  }

  /** Pages [from, to) of the run as one packet: staged from the stable copy, packed, hashed (verify) before a frame overwrites the slot. */
  private packet(writer: FrameWriter, block: number, first: number, from: number, to: number, digest: RamDigest | null, packer: RunPacker): number {
    const frame = packer.pack(writer.stagePages(block, first + from, to - from, this.copy, from));
    if (digest !== null) digest.setPages(this.writerHash!, writer.lastPageData, block, first + from, to - from);
    this.lastWhole += to - from;
    return frame === null ? writer.commitPages() : writer.commitCompressed(frame);
  }

  figures(): XbzrleFigures {
    return { info: this.cache.stats.info(), deltaPages: this.deltaPages };
  }
}

/**
 * Several channels' figures as one (query-migrate's `xbzrle-cache` is the
 * migration's): sizes and counts add up; the two rates are the channels'
 * mean (each channel's stripe is an equal share of RAM; ferry does not
 * weigh them by the pages each sent in the period). Before any channel
 * ended a pass, every figure is 0.
 */
export function sumXbzrleFigures(all: readonly XbzrleFigures[]): XbzrleFigures {
  const n = Math.max(1, all.length);
  const add = (k: keyof XbzrleCacheInfo) => all.reduce((n, f) => n + f.info[k], 0);
  return {
    info: {
      'cache-size': add('cache-size'), bytes: add('bytes'), pages: add('pages'), 'cache-miss': add('cache-miss'),
      'cache-miss-rate': add('cache-miss-rate') / n, 'encoding-rate': add('encoding-rate') / n, overflow: add('overflow'),
    },
    deltaPages: all.reduce((n, f) => n + f.deltaPages, 0),
  };
}

/**
 * One channel's cache of xbzrle-cache-size on `channels` channels: an
 * equal share, at least a page (each cache then rounds down to a power of
 * two number of pages: 512 MiB on 3 channels is 3 x 128 MiB). ferry's own
 * rule: QEMU 8+ refuses multifd with xbzrle; the parameter stays the
 * memory the migration may use for it.
 */
export function xbzrleCacheShare(totalBytes: number, channels: number): number {
  return Math.max(PAGE_SIZE, Math.floor(totalBytes / Math.max(1, channels)));
}
