/**
 * XBZRLE's page cache on the source, and the per-page decision the sender
 * asks of it (QEMU's migration/page_cache.c and ram.c save_xbzrle_page,
 * xbzrle_cache_zero_page). The cache holds, for some pages, the bytes the
 * destination holds now, so that a page sent again can go as a delta
 * against them (wire/xbzrle.ts).
 *
 * Layout: direct-mapped, one contiguous buffer allocated once, a power of
 * two number of page slots, followed by two scratch areas: the page being
 * encoded and its delta. The buffer is a WebAssembly memory, so that the
 * encoder's kernel (wire/xbzrle-kernel.ts) reads the old page in place and
 * writes the delta where `delta` shows it, nothing copied but the new
 * page, once. A page's slot is (page + salt(block)) mod slots, salt(0) =
 * 0, so a guest with one block maps as QEMU's (address / page size) mod
 * slots; other blocks are spread by a multiplicative salt instead of
 * QEMU's global RAM addresses. Each slot remembers its block, page and age
 * (the generation it was last used in, QEMU's dirty_sync_count: the sender
 * sets `generation` to its pass number).
 *
 * Sizes: rounded down to a power of two number of pages, at least one
 * page (QEMU's words refuse less), at most 2 GiB. QEMU's QMP refuses a size
 * that is not a power of two; this class rounds, the parameter table may
 * refuse as QEMU does.
 *
 * The decision (`plan`), QEMU's rules in order:
 * 1. A page not sent before (QEMU: before XBZRLE starts, after the first
 *    full pass) goes whole and is not cached: the bulk pass would only
 *    churn the cache.
 * 2. Miss: the page goes whole and is inserted, unless its slot holds a
 *    fresh page of another address (used in this generation or the one
 *    before: CACHED_PAGE_LIFETIME), which stays; in the last stage (the
 *    source paused: no pass follows) nothing is inserted.
 * 3. Hit: encode against the cached copy with the page's size as limit;
 *    unchanged is a skip (nothing sent), an overflow goes whole, else the
 *    delta goes. Unless skipped or in the last stage, the cache now holds
 *    the new bytes, whichever way they went.
 * 4. A zero page (sent as ZERO by the sender's own scan): after the first
 *    pass it is inserted as zeros (`zeroPage`), so a stale copy is never
 *    used and a later small write to it goes as a delta.
 *
 * The one rule the caller must keep (QEMU keeps it by copying the page to
 * current_buf first and sending whole pages from the cache): `now` is the
 * sender's own stable copy of the page, the very bytes it sends when told
 * WHOLE, never live guest RAM that a vCPU may write during the call; and
 * `plan` is called only for a page that will be sent as told. Otherwise the
 * cache and the destination disagree and a later delta corrupts the page.
 * A page sent by another path while cached is `forget`-ed.
 */
import { InvalidArgumentError, ReservationError } from '../errors.js';
import { PAGE_SIZE, WASM_PAGE_SIZE } from '../memory/page.js';
import { XBZRLE_MAX_DELTA_BYTES } from '../wire/xbzrle.js';
import { jsXbzrleEncodeAt } from '../wire/xbzrle-js-encoder.js';
import { xbzrleKernel, type XbzrleKernel } from '../wire/xbzrle-kernel.js';
import { XbzrleStats } from './xbzrle-stats.js';

/** `plan`'s answers besides a delta's length (> 0, the delta in `delta`). */
export const XBZRLE_WHOLE = -1;
export const XBZRLE_SKIP = 0;

/** QEMU's default `xbzrle-cache-size` (64 MiB). */
export const DEFAULT_XBZRLE_CACHE_BYTES = 64 * 1024 * 1024;

/**
 * Largest cache: 2 GiB. The slots and the scratch areas share one
 * WebAssembly memory, which holds at most 4 GiB, and a power of two number
 * of pages that leaves room for the scratch is at most half of that
 * (QEMU has no limit but the host's memory).
 */
export const MAX_XBZRLE_CACHE_BYTES = 2 * 1024 ** 3;

/** Scratch after the slots: the page being encoded, then its delta. */
const SCRATCH_BYTES = PAGE_SIZE + XBZRLE_MAX_DELTA_BYTES;

/** QEMU's refusal of a cache smaller than a page (migration/options.c). */
export const XBZRLE_CACHE_SIZE_REFUSAL = "Parameter 'xbzrle_cache_size' expects a power of two no less than the target page size";

/** A slot used in this generation or the one before is not replaced by another page (QEMU's CACHED_PAGE_LIFETIME). */
const CACHED_PAGE_LIFETIME = 2;

/** Per-page bytes a delta costs besides itself by default: QEMU's encoding flag byte and 16-bit length. */
const QEMU_DELTA_OVERHEAD_BYTES = 3;

export interface XbzrleCacheOptions {
  /** Bytes counted in `stats.bytes` per delta sent, besides the delta (default 3, QEMU's). */
  readonly deltaOverheadBytes?: number;
  /** Encode with the plain-JS encoder even where the WebAssembly kernel runs (tests, comparisons). */
  readonly plainJs?: boolean;
}

/** The number of slots for `sizeBytes`: pages, rounded down to a power of two; refusals in QEMU's words. */
export function xbzrleCacheSlots(sizeBytes: number): number {
  if (typeof sizeBytes !== 'number' || !Number.isSafeInteger(sizeBytes) || sizeBytes < PAGE_SIZE) {
    throw new InvalidArgumentError(`${XBZRLE_CACHE_SIZE_REFUSAL} (${PAGE_SIZE} bytes), got ${String(sizeBytes)}`);
  }
  if (sizeBytes > MAX_XBZRLE_CACHE_BYTES) {
    throw new InvalidArgumentError(`xbzrle-cache-size ${sizeBytes} exceeds ferry's limit of ${MAX_XBZRLE_CACHE_BYTES} bytes (2 GiB: the cache is one WebAssembly memory)`);
  }
  return 2 ** Math.floor(Math.log2(sizeBytes / PAGE_SIZE));
}

export class XbzrleCache {
  readonly stats = new XbzrleStats(PAGE_SIZE);
  /** The current generation: the sender sets it to its pass number at each pass (QEMU: dirty_sync_count). */
  generation = 0;
  /** The last delta `plan` produced: its first `plan()` bytes. Valid until the next call; a new view after `resize`. */
  delta: Uint8Array = new Uint8Array(0);
  private readonly deltaOverheadBytes: number;
  private readonly plainJs: boolean;
  private slots = 0;
  private mask = 0;
  /** The slots, then the page being encoded (at `nowAt`), then the delta. */
  private data: Uint8Array = new Uint8Array(0);
  private nowAt = 0;
  /** The encoder's kernel on `data`'s memory; null where SIMD is missing (the plain-JS encoder then). */
  private kernel: XbzrleKernel | null = null;
  /** Per slot: the block it holds (-1: empty), the page, and the generation it was last used in. */
  private blockOf = new Int32Array(0);
  private pageOf = new Int32Array(0);
  private age = new Float64Array(0);

  constructor(sizeBytes: number = DEFAULT_XBZRLE_CACHE_BYTES, options: XbzrleCacheOptions = {}) {
    this.deltaOverheadBytes = options.deltaOverheadBytes ?? QEMU_DELTA_OVERHEAD_BYTES;
    this.plainJs = options.plainJs ?? false;
    this.resize(sizeBytes);
  }

  /** The cache's size in bytes, after rounding down to a power of two number of pages. */
  get sizeBytes(): number {
    return this.slots * PAGE_SIZE;
  }

  /**
   * A new size: a new buffer, nothing kept (as QEMU's xbzrle_cache_resize,
   * which replaces the cache with an empty one); the counters go on. On a
   * refusal or a failed allocation the cache stays as it was.
   */
  resize(sizeBytes: number): void {
    const slots = xbzrleCacheSlots(sizeBytes);
    const pages = Math.ceil((slots * PAGE_SIZE + SCRATCH_BYTES) / WASM_PAGE_SIZE);
    let memory: WebAssembly.Memory;
    try {
      memory = new WebAssembly.Memory({ initial: pages, maximum: pages });
    } catch (err) {
      throw new ReservationError(`xbzrle: could not allocate a ${slots * PAGE_SIZE}-byte page cache`, { cause: err });
    }
    this.slots = slots;
    this.mask = slots - 1;
    this.data = new Uint8Array(memory.buffer);
    this.nowAt = slots * PAGE_SIZE;
    this.delta = this.data.subarray(this.nowAt + PAGE_SIZE, this.nowAt + SCRATCH_BYTES);
    this.kernel = this.plainJs ? null : xbzrleKernel(memory);
    this.blockOf = new Int32Array(slots).fill(-1);
    this.pageOf = new Int32Array(slots);
    this.age = new Float64Array(slots);
    this.stats.cacheSizeBytes = this.sizeBytes;
  }

  private slotOf(block: number, page: number): number {
    return (page + Math.imul(block, 0x9e3779b1)) & this.mask;
  }

  /** The slot holding (block, page), or -1; a hit makes the slot fresh (QEMU's cache_is_cached). */
  lookup(block: number, page: number): number {
    const slot = this.slotOf(block, page);
    if (this.blockOf[slot] !== block || this.pageOf[slot] !== page) return -1;
    this.age[slot] = this.generation;
    return slot;
  }

  /**
   * Cache `bytes` (one page) as (block, page); false when its slot holds a
   * fresh page of another address, which stays (QEMU's cache_insert).
   */
  insert(block: number, page: number, bytes: Uint8Array): boolean {
    const slot = this.claim(block, page);
    if (slot < 0) return false;
    this.data.set(bytes, slot * PAGE_SIZE);
    return true;
  }

  /** The slot for (block, page), taken over unless a fresh other page holds it (-1). */
  private claim(block: number, page: number): number {
    const slot = this.slotOf(block, page);
    const other = this.blockOf[slot] !== block || this.pageOf[slot] !== page;
    if (this.blockOf[slot] >= 0 && other && this.age[slot] + CACHED_PAGE_LIFETIME > this.generation) return -1;
    this.blockOf[slot] = block;
    this.pageOf[slot] = page;
    this.age[slot] = this.generation;
    return slot;
  }

  /** The cached copy of (block, page), or null (tests and checks: a view, made per call). */
  cached(block: number, page: number): Uint8Array | null {
    const slot = this.slotOf(block, page);
    if (this.blockOf[slot] !== block || this.pageOf[slot] !== page) return null;
    return this.data.subarray(slot * PAGE_SIZE, (slot + 1) * PAGE_SIZE);
  }

  /** Drop (block, page) if cached: the page went by a path that did not tell the cache. */
  forget(block: number, page: number): void {
    const slot = this.slotOf(block, page);
    if (this.blockOf[slot] === block && this.pageOf[slot] === page) this.blockOf[slot] = -1;
  }

  /**
   * What to send for (block, page), whose bytes are now `now` (the
   * sender's stable copy; see the header): XBZRLE_WHOLE, XBZRLE_SKIP, or
   * the length of the delta in `delta`. `sentBefore`: the page was sent
   * earlier in this migration (QEMU: XBZRLE has started, after the first
   * pass). `lastStage`: the source is paused for the final pass.
   */
  plan(block: number, page: number, now: Uint8Array, sentBefore: boolean, lastStage = false): number {
    if (now.length !== PAGE_SIZE) throw new InvalidArgumentError(`xbzrle: a page is ${PAGE_SIZE} bytes, got ${now.length}`);
    if (!sentBefore) return XBZRLE_WHOLE;
    const slot = this.lookup(block, page);
    if (slot < 0) {
      this.stats.cacheMiss++;
      if (!lastStage) this.insert(block, page, now);
      return XBZRLE_WHOLE;
    }
    this.stats.pages++;
    const at = slot * PAGE_SIZE;
    const length = this.encode(at, now);
    if (!lastStage && length !== 0) this.data.set(now, at);
    if (length === 0) return XBZRLE_SKIP;
    if (length < 0) {
      this.stats.overflow++;
      this.stats.bytes += PAGE_SIZE;
      return XBZRLE_WHOLE;
    }
    this.stats.bytes += length + this.deltaOverheadBytes;
    return length;
  }

  /** `now` encoded against the slot at byte `at`, into `delta`, with the page's size as limit (QEMU's). */
  private encode(at: number, now: Uint8Array): number {
    if (this.kernel === null) return jsXbzrleEncodeAt(this.data, at, now, this.delta, PAGE_SIZE);
    this.data.set(now, this.nowAt);
    return this.kernel(at, this.nowAt, PAGE_SIZE, this.nowAt + PAGE_SIZE, PAGE_SIZE);
  }

  /**
   * (block, page) went as a zero page: cache it as zeros (QEMU's
   * xbzrle_cache_zero_page), when `sentBefore` (the sender passes true from its first pass on); a slot held by a
   * fresh other page stays (that slot never held this page's stale bytes).
   */
  zeroPage(block: number, page: number, sentBefore: boolean): void {
    if (!sentBefore) return;
    const slot = this.claim(block, page);
    if (slot >= 0) this.data.fill(0, slot * PAGE_SIZE, (slot + 1) * PAGE_SIZE);
  }
}
