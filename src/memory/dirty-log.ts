/**
 * The dirty log of one RAM block: one producer bitmap that writers mark, and
 * several client bitmaps fed from it by sync. All Atomics code for the log
 * lives here (STYLE.md habit 10).
 *
 * Shared layout (every part is a SharedArrayBuffer, so any thread holding
 * the descriptor can mark, sync or take):
 *
 *   producer  Int32[words]            1 bit per page, set by writers
 *   clients   Int32[slots][words]     slot 0: ever written (never cleared)
 *                                      slots 1..: registered clients
 *   control   Int32[CONTROL_WORDS]    LOCK | ACTIVE | SYNCS | - | COUNT[slot]...
 *
 * Why the orderings are safe (DESIGN.md invariant 1):
 *
 * - Writer: store the page's data, then `Atomics.or` the page's bit into the
 *   producer word. The locked read-modify-write is sequentially consistent:
 *   the data store is visible to any thread that later observes the bit.
 *   A writer must never load the word, see its bit set and skip the mark:
 *   a harvester may exchange the word between that load and the data store
 *   (on x86 the load may even pass the earlier store), and the write would
 *   be lost. Losses were measured with that shortcut; marks are always
 *   unconditional.
 * - Harvester (sync): `Atomics.exchange(word, 0)` before anyone reads the
 *   pages the word covers. A bit harvested now was set after its data store,
 *   so the data is visible to the reader; a write that lands after the
 *   exchange sets the bit again and is seen by the next sync. The harvester
 *   may skip a word on a plain load of 0: a mark it did not see stays in the
 *   producer word for the next sync, so skipping loses nothing (the opposite
 *   of the writer's case, where the skip drops a mark).
 * - Clients: a harvested word is ORed into every active client bitmap, and
 *   each client's count grows by the bits that were new to it. Client bitmaps
 *   and counts change only under the per-log lock (sync, take, register),
 *   so one sync runs at a time per block and counts are exact; readers load
 *   a count with `Atomics.load`, O(1), and writers never touch them.
 * - A vCPU acknowledges a pause with an atomic store after its last mark
 *   (guest/vcpu-control.ts); a sync after the acknowledgement therefore sees
 *   every write the vCPU made.
 *
 * The mark map (mark-map.ts; a RAM block's option, for WebAssembly guests):
 * a second producer, one byte per page, that a writer marks with a plain
 * store. Every harvest (sync, take with sync, register) takes the map's
 * words for the producer words it harvests, under the lock, before them.
 * Why plain stores lose nothing there:
 *
 * - Writer: store the data, then store a non-zero byte at the page's map
 *   byte, both plain stores in program order. V8 emits WebAssembly stores
 *   in program order, and x86-64 does not reorder a store with an earlier
 *   store (TSO): any thread that sees the mark sees the data too.
 * - Harvester: per map word, a plain load, skip if 0, else
 *   `Atomics.exchange(word, 0)` (a locked XCHG: a full barrier), then the
 *   client reads the pages after the harvest. A mark the exchange returns
 *   was stored after its data, so the data is visible to that read. A mark
 *   stored after the exchange stays in the map for the next harvest; a
 *   word skipped on a plain load of 0 loses nothing either (its mark, not
 *   yet visible, is still there next time). This is the harvester's skip,
 *   which is safe; the writer never loads its byte to skip the store.
 * - Pause: the vCPU's acknowledgement is a locked store after its last
 *   mark, which drains its store buffer: a harvest after the
 *   acknowledgement sees every mark made before it.
 * - The map holds one byte per page of the block, so a harvest can never
 *   report a page past `pages` (the last 1-3 bytes are exchanged byte by
 *   byte: a word there would reach past the map).
 * - On a weakly ordered CPU (arm64) stores may become visible out of order:
 *   the writer would need a release fence between data and mark, which the
 *   WebAssembly rewriter does not emit. `markMapSupported()` says whether
 *   this CPU is x86-64; a guest that marks through the map refuses to start
 *   elsewhere.
 *
 * Over 300 lines: all Atomics code for the log stays in this module, its
 * orderings argued beside it (STYLE.md habit 10); the map's word-level
 * reading is mark-map.ts.
 *
 * No summary level: a clean sync of a 1 TiB-sized bitmap (32 MiB) measured
 * well under a rate-limit window on this machine (BENCHMARKS.md, `npm run
 * bench:memory`), and a summary would cost writers a second locked RMW per
 * mark. Blocks are at most 4 GiB (a 128 KiB bitmap), so a clean per-block
 * sync is tens of microseconds.
 */
import { InvalidArgumentError, InvalidStateError } from '../errors.js';
import { popcount32, popcountWords } from './bits.js';
import { MarkMap } from './mark-map.js';
import { wordsForPages } from './page.js';

const LOCK = 0;
const ACTIVE = 1;
const SYNCS = 2;
const COUNT_BASE = 4;

const UNLOCKED = 0;
const LOCKED = 1;

/** Slot 0 holds the ever-written pages: a client that never clears. */
export const EVER_WRITTEN_SLOT = 0;
/** Default number of registered clients a log can hold at once. */
export const DEFAULT_MAX_CLIENTS = 7;

/** What a thread needs to attach to a dirty log (structured-cloneable). */
export interface DirtyLogShared {
  readonly pages: number;
  readonly slots: number;
  readonly producer: SharedArrayBuffer;
  readonly clients: SharedArrayBuffer;
  readonly control: SharedArrayBuffer;
  /** A mark map (mark-map.ts): `pages` bytes at `byteOffset` of `buffer`, harvested with the producer. */
  readonly marks?: MarkMapPlace;
}

/** Where a dirty log's mark map lives: a byte offset in a shared buffer (the block's memory). */
export interface MarkMapPlace {
  readonly buffer: SharedArrayBuffer;
  readonly byteOffset: number;
}

/**
 * Mark one page dirty. Call after the page's data is stored. Returns 1 when
 * this mark set the page's bit from 0 (the page is newly dirty since the
 * last harvest of its word, as an entry of a KVM dirty ring is), else 0:
 * `Atomics.or` returns the word it replaced, so the count costs no second
 * access. A writer that counts its own newly dirty pages measures its own
 * dirty rate (dirty-limit); the count is a statistic only, never a reason
 * to skip a mark.
 */
export function markPage(producer: Int32Array, page: number): number {
  const bit = 1 << (page & 31);
  return (Atomics.or(producer, page >>> 5, bit) & bit) === 0 ? 1 : 0;
}

/** Mark `count` pages from `first` dirty. Call after the data is stored. */
export function markPages(producer: Int32Array, first: number, count: number): void {
  let page = first;
  const end = first + count;
  while (page < end) {
    const bit = page & 31;
    const n = Math.min(32 - bit, end - page);
    const mask = n === 32 ? -1 : ((1 << n) - 1) << bit;
    Atomics.or(producer, page >>> 5, mask);
    page += n;
  }
}

/** Bits of word `w` (covering pages w*32..w*32+31) that lie in [first, end). */
function rangeMask(w: number, first: number, end: number): number {
  const lo = Math.max(first - w * 32, 0);
  const hi = Math.min(end - w * 32, 32);
  if (hi - lo >= 32) return -1;
  return ((1 << (hi - lo)) - 1) << lo;
}

export class DirtyLog {
  readonly pages: number;
  readonly words: number;
  /** Writers' bitmap; mark with markPage / markPages only. */
  readonly producer: Int32Array;
  private readonly shared: DirtyLogShared;
  private readonly control: Int32Array;
  private readonly slotWords: Int32Array[];
  /** Per-slot bits added during one harvest, published once at its end. */
  private readonly added: Int32Array;
  /** The mark map, harvested with the producer (see top), if the block has one. */
  private readonly marks: MarkMap | null;

  static create(pages: number, options: { maxClients?: number; marks?: MarkMapPlace } = {}): DirtyLog {
    const maxClients = options.maxClients ?? DEFAULT_MAX_CLIENTS;
    if (!Number.isSafeInteger(pages) || pages <= 0) {
      throw new InvalidArgumentError(`dirty log: page count must be a positive integer, got ${pages}`);
    }
    if (!Number.isInteger(maxClients) || maxClients < 1 || maxClients > 30) {
      throw new InvalidArgumentError(`dirty log: maxClients must be 1..30, got ${maxClients}`);
    }
    const words = wordsForPages(pages);
    const slots = maxClients + 1;
    return new DirtyLog({
      pages,
      slots,
      producer: new SharedArrayBuffer(words * 4),
      clients: new SharedArrayBuffer(words * 4 * slots),
      control: new SharedArrayBuffer((COUNT_BASE + slots) * 4),
      ...(options.marks === undefined ? {} : { marks: options.marks }),
    });
  }

  constructor(shared: DirtyLogShared) {
    this.shared = shared;
    this.pages = shared.pages;
    this.words = wordsForPages(shared.pages);
    this.producer = new Int32Array(shared.producer);
    this.control = new Int32Array(shared.control);
    this.slotWords = [];
    for (let s = 0; s < shared.slots; s++) {
      this.slotWords.push(new Int32Array(shared.clients, s * this.words * 4, this.words));
    }
    this.added = new Int32Array(shared.slots);
    this.marks = shared.marks === undefined ? null : new MarkMap(shared.marks.buffer, shared.marks.byteOffset, shared.pages);
  }

  toShared(): DirtyLogShared {
    return this.shared;
  }

  /** Number of syncs run so far, by any thread. */
  get syncCount(): number {
    return Atomics.load(this.control, SYNCS);
  }

  /** Clients registered now (ever-written not counted). */
  get clientCount(): number {
    return popcount32(Atomics.load(this.control, ACTIVE) & ~(1 << EVER_WRITTEN_SLOT));
  }

  /**
   * Whether some thread holds the lock now. A thread that ends while
   * holding it (a worker terminated mid-sync) would leave every later sync
   * waiting forever: checks use this to prove that does not happen.
   */
  get locked(): boolean {
    return Atomics.load(this.control, LOCK) !== UNLOCKED;
  }

  markPage(page: number): void {
    markPage(this.producer, page);
  }

  markPages(first: number, count: number): void {
    this.checkRange(first, count);
    markPages(this.producer, first, count);
  }

  /**
   * Fetch-and-clear the producer (and the mark map's bytes) over
   * [first, first+count) and OR it into every active client (ever-written
   * included). Whole words are harvested: bits just outside the range reach
   * the clients early, never lost.
   */
  sync(first = 0, count = this.pages - first): void {
    this.checkRange(first, count);
    this.lock();
    try {
      this.harvestLocked(first >>> 5, wordsForPages(first + count));
    } finally {
      this.unlock();
    }
  }

  /** Register a client; it starts with every ever-written page dirty. */
  register(): DirtyLogClient {
    this.lock();
    try {
      const active = Atomics.load(this.control, ACTIVE);
      let slot = 1;
      while (slot < this.shared.slots && (active & (1 << slot)) !== 0) slot++;
      if (slot >= this.shared.slots) {
        throw new InvalidStateError(`dirty log: all ${this.shared.slots - 1} client slots are in use`);
      }
      this.harvestLocked(0, this.words);
      this.slotWords[slot].set(this.slotWords[EVER_WRITTEN_SLOT]);
      Atomics.store(this.control, COUNT_BASE + slot, Atomics.load(this.control, COUNT_BASE + EVER_WRITTEN_SLOT));
      Atomics.or(this.control, ACTIVE, 1 << slot);
      return new DirtyLogClient(this, slot);
    } finally {
      this.unlock();
    }
  }

  /** Attach to a client registered by another thread. */
  client(slot: number): DirtyLogClient {
    if (!Number.isInteger(slot) || slot < 1 || slot >= this.shared.slots ||
      (Atomics.load(this.control, ACTIVE) & (1 << slot)) === 0) {
      throw new InvalidArgumentError(`dirty log: no registered client in slot ${slot}`);
    }
    return new DirtyLogClient(this, slot);
  }

  /** Pages written since the block was created, as of the last sync. */
  get everWrittenCount(): number {
    return Atomics.load(this.control, COUNT_BASE + EVER_WRITTEN_SLOT);
  }

  /** Whether `page` was ever written, as of the last sync. */
  isEverWritten(page: number): boolean {
    return (Atomics.load(this.slotWords[EVER_WRITTEN_SLOT], page >>> 5) & (1 << (page & 31))) !== 0;
  }

  /**
   * The ever-written bitmap (read it after a sync; do not write it). Bits
   * only ever get set, so a concurrent sync never invalidates what was read.
   */
  get everWrittenWords(): Int32Array {
    return this.slotWords[EVER_WRITTEN_SLOT];
  }

  /**
   * The first page at or after `fromPage` in a 32-page word that may hold a
   * dirty page for client `slot`, or `pages`. Read without the lock: a word
   * is skipped only if the producer and the client's bitmap both read clean.
   * Safe for the same reason a harvester may skip a clean word: a mark not
   * seen now stays in the producer (or, ORed in by another thread's sync, in
   * the client's bitmap) for the next pass. Makes a pass over clean memory
   * lock-free, and one tight loop rather than a call per range. With a mark
   * map, its bytes for the word must read clean too.
   */
  nextMaybeDirty(slot: number, fromPage: number): number {
    const producer = this.producer;
    const bits = this.slotWords[slot];
    const words = this.words;
    const marks = this.marks;
    for (let w = fromPage >>> 5; w < words; w++) {
      if ((producer[w] | bits[w]) !== 0 || marks?.any(w) === true) return Math.max(fromPage, w << 5);
    }
    return this.pages;
  }

  /** @internal */
  countOf(slot: number): number {
    return Atomics.load(this.control, COUNT_BASE + slot);
  }

  /** @internal Copy-and-clear a client's bits in range into `out` (see DirtyLogClient.take). */
  takeFor(slot: number, first: number, count: number, out: Int32Array | Uint32Array, syncFirst: boolean): number {
    this.checkRange(first, count);
    const fromWord = first >>> 5;
    const toWord = wordsForPages(first + count);
    if (out.length < toWord - fromWord) {
      throw new InvalidArgumentError(`dirty log: output holds ${out.length} words, range needs ${toWord - fromWord}`);
    }
    this.lock();
    try {
      this.checkActive(slot);
      if (syncFirst) this.harvestLocked(fromWord, toWord);
      const bits = this.slotWords[slot];
      const end = first + count;
      let taken = 0;
      for (let w = fromWord; w < toWord; w++) {
        const word = bits[w];
        if (word === 0) {
          out[w - fromWord] = 0;
          continue;
        }
        const mask = w === fromWord || w === toWord - 1 ? rangeMask(w, first, end) : -1;
        const t = word & mask;
        out[w - fromWord] = t;
        if (t !== 0) {
          bits[w] = word & ~mask;
          taken += popcount32(t);
        }
      }
      if (taken !== 0) Atomics.sub(this.control, COUNT_BASE + slot, taken);
      return taken;
    } finally {
      this.unlock();
    }
  }

  /** @internal Mark pages dirty in one client only (e.g. a page to resend). */
  setFor(slot: number, first: number, count: number): void {
    this.checkRange(first, count);
    this.lock();
    try {
      this.checkActive(slot);
      const bits = this.slotWords[slot];
      const end = first + count;
      let added = 0;
      for (let w = first >>> 5; w < wordsForPages(end); w++) {
        const old = bits[w];
        const now = old | rangeMask(w, first, end);
        if (now !== old) {
          bits[w] = now;
          added += popcount32(now ^ old);
        }
      }
      if (added !== 0) Atomics.add(this.control, COUNT_BASE + slot, added);
    } finally {
      this.unlock();
    }
  }

  /** @internal */
  unregister(slot: number): void {
    this.lock();
    try {
      this.checkActive(slot);
      Atomics.and(this.control, ACTIVE, ~(1 << slot));
      this.slotWords[slot].fill(0);
      Atomics.store(this.control, COUNT_BASE + slot, 0);
    } finally {
      this.unlock();
    }
  }

  /** Harvest producer words [fromWord, toWord), and the mark map's for them, into every active slot. Lock held. */
  private harvestLocked(fromWord: number, toWord: number): void {
    const producer = this.producer;
    const marks = this.marks;
    const active = Atomics.load(this.control, ACTIVE) | (1 << EVER_WRITTEN_SLOT);
    const slots = this.slotWords;
    const nslots = slots.length;
    const added = this.added;
    added.fill(0);
    for (let w = fromWord; w < toWord; w++) {
      let bits = marks === null ? 0 : marks.take(w);
      // Plain load first: a clean word costs no locked instruction, and a
      // mark missed here stays in the producer for the next sync (see top).
      if (producer[w] !== 0) bits |= Atomics.exchange(producer, w, 0);
      if (bits === 0) continue;
      for (let s = 0; s < nslots; s++) {
        if ((active & (1 << s)) === 0) continue;
        const client = slots[s];
        const old = client[w];
        const now = old | bits;
        if (now !== old) {
          client[w] = now;
          added[s] += popcount32(now ^ old);
        }
      }
    }
    for (let s = 0; s < nslots; s++) {
      if (added[s] !== 0) Atomics.add(this.control, COUNT_BASE + s, added[s]);
    }
    Atomics.add(this.control, SYNCS, 1);
  }

  private checkActive(slot: number): void {
    if ((Atomics.load(this.control, ACTIVE) & (1 << slot)) === 0) {
      throw new InvalidStateError(`dirty log: client in slot ${slot} is not registered`);
    }
  }

  private checkRange(first: number, count: number): void {
    if (!Number.isInteger(first) || !Number.isInteger(count) || first < 0 || count < 0 || first + count > this.pages) {
      throw new InvalidArgumentError(
        `dirty log: page range ${first}+${count} is outside the block's ${this.pages} pages`);
    }
  }

  /**
   * One sync at a time per block. Hold times are microseconds (one range),
   * so spin briefly, then sleep on the lock word until the holder's notify.
   * Node lets the main thread `Atomics.wait`; the wait is bounded by the
   * holder's short critical section.
   */
  private lock(): void {
    for (let spins = 0; ; spins++) {
      if (Atomics.compareExchange(this.control, LOCK, UNLOCKED, LOCKED) === UNLOCKED) return;
      if (spins > 100) Atomics.wait(this.control, LOCK, LOCKED, 1);
    }
  }

  private unlock(): void {
    Atomics.store(this.control, LOCK, UNLOCKED);
    Atomics.notify(this.control, LOCK, 1);
  }

  /** Count of bits set in a client's bitmap, by scanning (tests only). */
  scanCount(slot: number): number {
    return popcountWords(this.slotWords[slot]);
  }
}

/**
 * One consumer of a dirty log (migration, replication, a test). Its count is
 * O(1) to read and exact after every sync.
 */
export class DirtyLogClient {
  constructor(readonly log: DirtyLog, readonly slot: number) {}

  /** Dirty pages this client holds (as of the last sync). */
  get dirtyPages(): number {
    return this.log.countOf(this.slot);
  }

  /**
   * Sync [first, first+count) from the producer, then fetch-and-clear this
   * client's dirty bits in that range into `out` (word 0 of `out` is the word
   * holding page `first`; bits outside the range are 0). Returns the number
   * of pages taken. The caller reads those pages after this returns.
   */
  syncAndTake(first: number, count: number, out: Int32Array | Uint32Array): number {
    return this.log.takeFor(this.slot, first, count, out, true);
  }

  /** As syncAndTake, without syncing first. */
  take(first: number, count: number, out: Int32Array | Uint32Array): number {
    return this.log.takeFor(this.slot, first, count, out, false);
  }

  /**
   * The first page at or after `fromPage` in a 32-page word that may hold a
   * dirty page for this client, or the block's page count (lock-free; see
   * DirtyLog.nextMaybeDirty).
   */
  nextMaybeDirty(fromPage: number): number {
    return this.log.nextMaybeDirty(this.slot, fromPage);
  }


  /** Make pages dirty again for this client only (e.g. a send that failed). */
  redirty(first: number, count: number): void {
    this.log.setFor(this.slot, first, count);
  }

  unregister(): void {
    this.log.unregister(this.slot);
  }
}

