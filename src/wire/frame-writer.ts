/**
 * Encodes frames into a ring of large send slots and hands each full slot
 * to the transport as one write (256 KiB - 1 MiB writes; one write per page
 * would cap loopback TCP at ~0.5 GB/s here).
 *
 * The slots live in a WebAssembly memory of the writer's own, so page data
 * is copied out of guest RAM once, into bytes the sender owns, and the page
 * sum runs over that copy (the kernel may read a buffer after `write()`
 * returns, and the guest may change its RAM meanwhile: checksumming RAM in
 * place could vouch for bytes that are not the ones sent). A slot is reused
 * only after the transport releases it (its write completed): that, and
 * `hasRoom`, is the backpressure.
 */
import { PAGE_SIZE } from '../memory/page.js';
import { CHECK_BYTES, FRAME_HEADER_BYTES, MAX_PAGES_PER_RECORD, crc32, writeFrameHeader } from './format.js';
import { pageSummer, type PageSummer } from './page-checksum.js';
import { MAX_XBZRLE_RUN_HEAD_BYTES, MAX_XBZRLE_RUN_PAGES, RECORD, encodeRecord, type RecordRow } from './records.js';

/** One slot: a full PAGES record of 256 pages plus room for small records. */
export const SLOT_BYTES = MAX_PAGES_PER_RECORD * PAGE_SIZE + 64 * 1024;
export const DEFAULT_SLOTS = 8;

/** Wire size of a record with a head of `headLen` bytes and `pages` pages. */
export function recordBytes(headLen: number, pages = 0): number {
  return FRAME_HEADER_BYTES + headLen + pages * PAGE_SIZE + CHECK_BYTES;
}

export type ChunkSink = (chunk: Buffer, release: () => void) => void;

export class FrameWriter {
  /** The slots' memory: page data is read from here after `appendPages` (the verify digest hashes the copy sent). */
  readonly memory: WebAssembly.Memory;
  private readonly bytes: Buffer;
  /** The same bytes as a plain Uint8Array: its subarray is cheaper than a Buffer's (a record per zero page in the 2010 mode). */
  private readonly u8: Uint8Array;
  private readonly view: DataView;
  /** The PAGES head's fields, reused (nothing is allocated per record). */
  private readonly pagesHead = { first: 0 };
  private readonly sum: PageSummer;
  private readonly busy: boolean[];
  private current = 0;
  private fill = 0;
  private freeCount: number;
  /** Wire bytes handed to the transport so far. */
  bytesOut = 0;
  /** Byte offset in `memory` of the last PAGES record's data (valid until the slot is handed on). */
  lastPageData = 0;
  /** Called when a slot is released (room may be back). */
  onRelease: (() => void) | null = null;
  /** The staged packet (stagePages): its record's start, block, first page and count; at < 0: none. */
  private readonly staged = { at: -1, block: 0, first: 0, count: 0 };

  constructor(private readonly sink: ChunkSink, readonly slots = DEFAULT_SLOTS) {
    const wasmPages = Math.ceil((slots * SLOT_BYTES) / 65536);
    this.memory = new WebAssembly.Memory({ initial: wasmPages, maximum: wasmPages, shared: true });
    this.bytes = Buffer.from(this.memory.buffer);
    this.u8 = new Uint8Array(this.memory.buffer);
    this.view = new DataView(this.memory.buffer);
    this.sum = pageSummer(this.memory);
    this.busy = new Array<boolean>(slots).fill(false);
    this.busy[0] = true; // the current slot is being filled
    this.freeCount = slots - 1;
  }

  /** Whether `bytes` more can be appended without waiting for a release. */
  hasRoom(bytes: number): boolean {
    if (this.current >= 0 && this.fill + bytes <= SLOT_BYTES) return true;
    return this.freeCount > 0;
  }

  /** Slots handed to the transport and not yet released. */
  get slotsInFlight(): number {
    return this.slots - this.freeCount - (this.current >= 0 ? 1 : 0);
  }

  /**
   * Append a PAGES record copying `count` pages from `src` (a block's
   * bytes), from its page `srcFirst` on (default: `first`; a sender's own
   * copy of the pages elsewhere). Returns wire bytes.
   */
  appendPages(block: number, first: number, count: number, src: Uint8Array, srcFirst = first): number {
    const pages = RECORD.Pages;
    const size = recordBytes(pages.headBytes, count);
    const at = this.reserve(size);
    writeFrameHeader(this.view, at, pages.tag, block, pages.headBytes, count);
    this.pagesHead.first = first;
    pages.encode(this.pagesHead, this.bytes, at + FRAME_HEADER_BYTES);
    const data = at + FRAME_HEADER_BYTES + pages.headBytes;
    const len = count * PAGE_SIZE;
    this.bytes.set(src.subarray(srcFirst * PAGE_SIZE, srcFirst * PAGE_SIZE + len), data);
    this.lastPageData = data;
    const seed = this.sum(data, len);
    const check = crc32(this.u8.subarray(at, data), seed);
    this.view.setUint32(data + len, check, true);
    this.fill += size;
    return size;
  }

  /**
   * Stage a packet (several channels with compression): copy `count` pages
   * of `src` from its page `srcFirst` into the slot where a PAGES record's
   * data would go, and return a view of the copy (the codec reads it, the
   * verify digest hashes it at `lastPageData`). Nothing is appended until commitPages or
   * commitCompressed; the caller checked hasRoom for a PAGES record of
   * `count` pages, which a COMPRESSED one of them never exceeds.
   */
  stagePages(block: number, first: number, count: number, src: Uint8Array, srcFirst = first): Uint8Array {
    const at = this.reserve(recordBytes(RECORD.Pages.headBytes, count));
    const data = at + FRAME_HEADER_BYTES + RECORD.Pages.headBytes;
    const len = count * PAGE_SIZE;
    this.bytes.set(src.subarray(srcFirst * PAGE_SIZE, srcFirst * PAGE_SIZE + len), data);
    this.lastPageData = data;
    Object.assign(this.staged, { at, block, first, count });
    return this.u8.subarray(data, data + len);
  }

  /** The staged packet goes raw, as PAGES (its copy in place). Returns wire bytes. */
  commitPages(): number {
    const { at, block, first, count } = this.takeStaged();
    const pages = RECORD.Pages;
    writeFrameHeader(this.view, at, pages.tag, block, pages.headBytes, count);
    this.pagesHead.first = first;
    pages.encode(this.pagesHead, this.bytes, at + FRAME_HEADER_BYTES);
    const data = at + FRAME_HEADER_BYTES + pages.headBytes;
    const len = count * PAGE_SIZE;
    const check = crc32(this.u8.subarray(at, data), this.sum(data, len));
    this.view.setUint32(data + len, check, true);
    const size = recordBytes(pages.headBytes, count);
    this.fill += size;
    return size;
  }

  /**
   * The staged packet goes as COMPRESSED with `frame` (the codec's output,
   * outside this writer's memory), written over the staged copy: hash the
   * copy first. Returns wire bytes.
   */
  commitCompressed(frame: Uint8Array): number {
    const { at, block, first, count } = this.takeStaged();
    const row = RECORD.Compressed;
    const headLen = 8 + frame.length;
    if (headLen > count * PAGE_SIZE) throw new RangeError(`frame writer: a COMPRESSED frame of ${frame.length} bytes for ${count} pages does not shrink them`);
    writeFrameHeader(this.view, at, row.tag, block, headLen, 0);
    const head = at + FRAME_HEADER_BYTES;
    this.view.setUint32(head, first, true);
    this.view.setUint32(head + 4, count, true);
    this.u8.set(frame, head + 8);
    this.view.setUint32(head + headLen, crc32(this.u8.subarray(at, head + headLen)), true);
    const size = recordBytes(headLen);
    this.fill += size;
    return size;
  }

  private takeStaged(): { at: number; block: number; first: number; count: number } {
    const s = { ...this.staged };
    if (s.at < 0) throw new RangeError('frame writer: no packet staged');
    this.staged.at = -1;
    return s;
  }

  /**
   * Append a post-copy PCPAGES record copying `count` pages (1..16) from
   * `src`: the copy's CRC32 per page goes in the head; the frame's check
   * covers frame and head. `corrupt` (tests only): flip a byte of the copy
   * of page index `corrupt` after its check was taken. Returns wire bytes.
   */
  appendCheckedPages(block: number, first: number, count: number, src: Uint8Array, corrupt = -1): number {
    const row = RECORD.PcPages;
    const headLen = 4 + 4 * count;
    const size = recordBytes(headLen, count);
    const at = this.reserve(size);
    writeFrameHeader(this.view, at, row.tag, block, headLen, count);
    const head = at + FRAME_HEADER_BYTES;
    const data = head + headLen;
    this.bytes.set(src.subarray(first * PAGE_SIZE, (first + count) * PAGE_SIZE), data);
    this.view.setUint32(head, first, true);
    for (let i = 0; i < count; i++) {
      const page = data + i * PAGE_SIZE;
      this.view.setUint32(head + 4 + 4 * i, crc32(this.u8.subarray(page, page + PAGE_SIZE)), true);
    }
    if (corrupt >= 0 && corrupt < count) this.u8[data + corrupt * PAGE_SIZE + 100] ^= 0x40;
    this.view.setUint32(data + count * PAGE_SIZE, crc32(this.u8.subarray(at, data)), true);
    this.fill += size;
    return size;
  }

  /**
   * Append an XBZRLE record: page `page` of `block` as the first `length`
   * bytes of `delta` (1..4096; the caller checked room for it). Written
   * here rather than through the row's encode, so nothing is allocated per
   * page. Returns wire bytes.
   */
  appendXbzrle(block: number, page: number, delta: Uint8Array, length: number): number {
    const row = RECORD.Xbzrle;
    if (length < 1 || length > PAGE_SIZE) throw new RangeError(`frame writer: an XBZRLE delta of ${length} bytes, expected 1..${PAGE_SIZE}`);
    const headLen = 4 + length;
    const size = recordBytes(headLen);
    const at = this.reserve(size);
    writeFrameHeader(this.view, at, row.tag, block, headLen, 0);
    const head = at + FRAME_HEADER_BYTES;
    this.view.setUint32(head, page, true);
    for (let i = 0; i < length; i++) this.u8[head + 4 + i] = delta[i];
    const end = head + headLen;
    this.view.setUint32(end, crc32(this.u8.subarray(at, end)), true);
    this.fill += size;
    return size;
  }

  /**
   * Append an XBZRLERUN record of `count` pages of `block` whose entries
   * (u32 page, u16 length, delta; records.ts) are `entries[0, length)`:
   * one frame, one set, one check for all (the caller keeps the caps and
   * checked room for it). Returns wire bytes.
   */
  appendXbzrleRun(block: number, entries: Uint8Array, length: number, count: number): number {
    const row = RECORD.XbzrleRun;
    const headLen = 4 + length;
    if (count < 1 || count > MAX_XBZRLE_RUN_PAGES || headLen > MAX_XBZRLE_RUN_HEAD_BYTES) {
      throw new RangeError(`frame writer: an XBZRLERUN of ${count} pages in ${headLen} bytes, expected 1..${MAX_XBZRLE_RUN_PAGES} pages in at most ${MAX_XBZRLE_RUN_HEAD_BYTES}`);
    }
    const size = recordBytes(headLen);
    const at = this.reserve(size);
    writeFrameHeader(this.view, at, row.tag, block, headLen, 0);
    const head = at + FRAME_HEADER_BYTES;
    this.view.setUint32(head, count, true);
    this.u8.set(entries.subarray(0, length), head + 4);
    const end = head + headLen;
    this.view.setUint32(end, crc32(this.u8.subarray(at, end)), true);
    this.fill += size;
    return size;
  }

  /** Append a record without page data (`block`: for a per-block record). Returns wire bytes. */
  append<F>(row: RecordRow<F>, fields: F, block = 0): number {
    if (row.pageData) throw new Error(`${row.name} carries page data: use appendPages`); // no string built per record
    const headLen = row.sizeOf(fields);
    const size = recordBytes(headLen);
    if (size > SLOT_BYTES) {
      // Too large for a slot (a big device section): a write of its own.
      this.flush();
      this.bytesOut += size;
      this.sink(encodeRecord(row, fields, block), () => {});
      return size;
    }
    const at = this.reserve(size);
    writeFrameHeader(this.view, at, row.tag, block, headLen, 0);
    row.encode(fields, this.bytes, at + FRAME_HEADER_BYTES);
    const end = at + FRAME_HEADER_BYTES + headLen;
    this.view.setUint32(end, crc32(this.u8.subarray(at, end)), true);
    this.fill += size;
    return size;
  }

  /** Hand the current slot's bytes to the transport. */
  flush(): void {
    if (this.current < 0 || this.fill === 0) return;
    const slot = this.current;
    const start = slot * SLOT_BYTES;
    const chunk = Buffer.from(this.memory.buffer, start, this.fill);
    this.bytesOut += this.fill;
    this.current = -1;
    this.fill = 0;
    this.takeFreeSlot();
    this.sink(chunk, () => this.release(slot));
  }

  /** Room for `size` bytes in the current slot; flushes to the next one if needed. */
  private reserve(size: number): number {
    if (this.current >= 0 && this.fill + size <= SLOT_BYTES) return this.current * SLOT_BYTES + this.fill;
    this.flush();
    if (this.current < 0) this.takeFreeSlot();
    if (this.current < 0) throw new RangeError('frame writer: no free slot (check hasRoom first)');
    return this.current * SLOT_BYTES;
  }

  private takeFreeSlot(): void {
    const i = this.busy.indexOf(false);
    if (i < 0) return;
    this.busy[i] = true;
    this.freeCount--;
    this.current = i;
    this.fill = 0;
  }

  private release(slot: number): void {
    this.busy[slot] = false;
    this.freeCount++;
    if (this.current < 0) this.takeFreeSlot();
    this.onRelease?.();
  }
}
