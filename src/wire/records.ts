/**
 * Every record type of the stream and of its return path, one row each:
 * tag, name, direction, what the frame's block and page-count fields hold,
 * the head's size, and the head's encode and decode side by side. The
 * frame around a head (format.ts) and the rules a destination enforces
 * (frame-decoder.ts) take everything record-specific from here;
 * docs/wire-format.md draws the table.
 *
 *   tag  0          never valid
 *        0x01-0x3f  stream (source -> destination)
 *        0x41-0x7f  return path (destination -> source)
 *
 * A record type that comes later is one new row: a fixed head (`fixed`), or
 * a variable one whose length is capped before anything is allocated
 * (`variable`), in either direction, with or without a RAM block and page
 * data. PLANNED_RECORDS reserves the tags of those already foreseen. A
 * destination refuses a tag it has no row for (it cannot know what an
 * unknown record would have changed), so a source sends a new type only
 * when the user asked for the feature that needs it, and a row's layout
 * never changes without a WIRE_VERSION bump.
 *
 * Over 300 lines: one row per record type, each encode beside its decode,
 * is the point of the table.
 */
import { WireError } from '../errors.js';
import { PAGE_SIZE } from '../memory/page.js';
import {
  CHECK_BYTES, DIGEST_BYTES, FRAME_HEADER_BYTES, MAX_DEVICE_DATA_BYTES, MAX_ERROR_BYTES, MAX_MISSING_RANGES, MAX_POSTCOPY_PAGES_PER_RECORD,
  MAX_REQUEST_PAGES, MAX_VCPU_STATE_RECORD_BYTES, MAX_WRITTEN_RANGES, crc32, uuidBytes, uuidText, writeFrameHeader, type BlockTotals,
} from './format.js';
import { MAX_PACKET_BYTES } from './packet-codec.js';

/** Record tags. 0 is never valid. Stream: 0x01..0x3f; return path: 0x41..0x7f. */
// biome-ignore lint/suspicious/noConstEnum: tsc inlines the members as literals in hot paths (a plain enum is a property load at run time); tsc alone builds ferry, without isolatedModules
export const enum Rec {
  Pages = 1,
  Zero = 2,
  Pass = 3,
  Device = 4,
  Vcpu = 5,
  End = 6,
  Go = 7,
  Verify = 8,
  Grow = 0x0a,
  Channel = 0x0b,
  Sync = 0x0c,
  Compressed = 0x0d,
  Xbzrle = 0x0e,
  Missing = 0x0f,
  PcPages = 0x10,
  Pend = 0x11,
  Written = 0x12,
  XbzrleRun = 0x13,
  Ack = 0x41,
  Loaded = 0x42,
  Resumed = 0x43,
  Error = 0x44,
  Ready = 0x45,
  Request = 0x46,
  Refused = 0x47,
  Done = 0x48,
  RecvBitmap = 0x49,
  ResumeAck = 0x4a,
  Prealloc = 0x4b,
}

/** 'stream': source -> destination; 'return': the destination's return path. */
export type Direction = 'stream' | 'return';

export interface RecordRow<F> {
  readonly tag: Rec;
  readonly name: string;
  readonly direction: Direction;
  /** The frame's block field names a RAM block (< the header's blocks); otherwise it must be 0. */
  readonly perBlock: boolean;
  /** P = 1..MAX_PAGES_PER_RECORD pages of data follow the head; otherwise P must be 0. */
  readonly pageData: boolean;
  /**
   * With pageData: each page's CRC32 is in the head (post-copy's PCPAGES).
   * The decoder gathers the data instead of handing it to RAM, the frame's
   * check covers the frame and head only, and a page whose own check fails
   * is the receiver's to ask for again: the framing stays trustworthy.
   */
  readonly pageChecks: boolean;
  /** The head's exact size, bytes; null for a variable head of at most `maxHeadBytes`. */
  readonly headBytes: number | null;
  /** Largest head accepted in a stream of `blocks` RAM blocks, checked before allocating. */
  maxHeadBytes(blocks: number): number;
  /** The head's size for `fields`, bytes (throws a WireError for fields it cannot encode). */
  sizeOf(fields: F): number;
  /** Write the head of `fields` at `out[at, at + sizeOf(fields))`. */
  encode(fields: F, out: Buffer, at: number): void;
  /** Read a head whose frame checked (`blocks`: the stream's, for END); a WireError if malformed. */
  decode(head: Buffer, blocks?: number): F;
}

/** A row whose head always has `headBytes` bytes (checked exactly by the decoder). */
export interface FixedRecordRow<F> extends RecordRow<F> {
  readonly headBytes: number;
}

type RowBase<F> = Pick<RecordRow<F>, 'tag' | 'name' | 'direction' | 'encode' | 'decode'> & { perBlock?: boolean; pageData?: boolean; pageChecks?: boolean };

function fixed<F>(row: RowBase<F> & { headBytes: number }): FixedRecordRow<F> {
  return { perBlock: false, pageData: false, pageChecks: false, ...row, maxHeadBytes: () => row.headBytes, sizeOf: () => row.headBytes };
}

function variable<F>(row: RowBase<F> & Pick<RecordRow<F>, 'maxHeadBytes' | 'sizeOf'>): RecordRow<F> {
  return { perBlock: false, pageData: false, pageChecks: false, headBytes: null, ...row };
}

/** A list of u32 as a head, with its cap (MISSING, PCPAGES, REQUEST). */
function u32List(name: string, max: number, what: string) {
  return {
    sizeOf: (n: number) => {
      if (!Number.isInteger(n) || n < 1 || n > max) throw new WireError(`${name}: ${n} ${what}, expected 1..${max}`);
      return 4 * n;
    },
    read: (head: Buffer): Uint32Array => {
      if (head.length % 4 !== 0 || head.length === 0) throw new WireError(`${name}: head of ${head.length} bytes is not a list of ${what}`);
      const out = new Uint32Array(head.length / 4);
      for (let i = 0; i < out.length; i++) out[i] = head.readUInt32LE(4 * i);
      return out;
    },
    write: (list: ArrayLike<number>, out: Buffer, at: number) => {
      for (let i = 0; i < list.length; i++) out.writeUInt32LE(list[i], at + 4 * i);
    },
  };
}
const MISSING_LIST = u32List('MISSING', 2 * MAX_MISSING_RANGES, 'u32 (first, count pairs)');
const BITMAP_LIST = u32List('RECVBITMAP', 2 * MAX_MISSING_RANGES, 'u32 (first, count pairs)');
const REQUEST_LIST = u32List('REQUEST', MAX_REQUEST_PAGES, 'pages');
const WRITTEN_LIST = u32List('WRITTEN', 2 * MAX_WRITTEN_RANGES, 'u32 (first, count pairs)');
/** WRITTEN's flag: the ever-written map is complete after this record. */
export const WRITTEN_LAST = 1;
/** Most pages in one COMPRESSED record: a multifd packet (QEMU's 512 KiB). */
export const MAX_PACKET_PAGES = MAX_PACKET_BYTES / PAGE_SIZE;
/** A REQUEST entry's top bit: the copy that arrived was bad, send it again (else a page already sent is not sent twice). */
export const REQUEST_AGAIN = 0x8000_0000;

/** Most pages in one XBZRLERUN record: a multifd packet's 128 pages times 8 (deltas are small). */
export const MAX_XBZRLE_RUN_PAGES = 1024;
/** Largest XBZRLERUN head: a multifd packet (QEMU's 512 KiB), checked at the frame before a byte is allocated. */
export const MAX_XBZRLE_RUN_HEAD_BYTES = MAX_PACKET_BYTES;
/** An XBZRLERUN entry's fixed part: u32 page, u16 delta length. */
export const XBZRLE_RUN_ENTRY_BYTES = 6;

/** One page of an XBZRLERUN: its index in the record's block, its delta (1..4096 bytes). */
export interface XbzrleEntry { readonly page: number; readonly delta: Uint8Array }

/**
 * Walk an XBZRLERUN head without allocating: its count and every entry's
 * length are checked against the caps and the head's length (which the
 * entries must fill exactly) before the first `entry` call, so a record
 * malformed anywhere is refused before any of it is used. `entry(page,
 * from, end)`: the delta is `head[from, end)`. Returns the count. The
 * deltas themselves are the loader's to check (xbzrleDecodeAt).
 */
export function walkXbzrleRun(head: Buffer, entry: (page: number, from: number, end: number) => void): number {
  const count = checkXbzrleRun(head);
  for (let i = 0, at = 4; i < count; i++) {
    const from = at + XBZRLE_RUN_ENTRY_BYTES;
    at = from + head.readUInt16LE(at + 4);
    entry(head.readUInt32LE(from - XBZRLE_RUN_ENTRY_BYTES), from, at);
  }
  return count;
}

/** An XBZRLERUN head's structure (walkXbzrleRun): its count, or a WireError naming the entry at fault. */
function checkXbzrleRun(head: Buffer): number {
  if (head.length < 4) throw new WireError(`XBZRLERUN: head of ${head.length} bytes has no count`);
  const count = head.readUInt32LE(0);
  if (count < 1 || count > MAX_XBZRLE_RUN_PAGES) throw new WireError(`XBZRLERUN: ${count} pages, expected 1..${MAX_XBZRLE_RUN_PAGES}`);
  let at = 4;
  for (let i = 0; i < count; i++) {
    if (at + XBZRLE_RUN_ENTRY_BYTES > head.length) throw new WireError(`XBZRLERUN: entry ${i} of ${count} is truncated at head byte ${at} (a head of ${head.length} bytes)`);
    const length = head.readUInt16LE(at + 4);
    if (length < 1 || length > PAGE_SIZE) throw new WireError(`XBZRLERUN: entry ${i} (page ${head.readUInt32LE(at)}): a delta of ${length} bytes, expected 1..${PAGE_SIZE}`);
    at += XBZRLE_RUN_ENTRY_BYTES + length;
    if (at > head.length) throw new WireError(`XBZRLERUN: entry ${i} (page ${head.readUInt32LE(at - length - XBZRLE_RUN_ENTRY_BYTES)}): a delta of ${length} bytes runs past the head's ${head.length} bytes`);
  }
  if (at !== head.length) throw new WireError(`XBZRLERUN: ${count} entries end at head byte ${at}, the head has ${head.length}`);
  return count;
}

type Empty = Record<string, never>;
const none = fixed<Empty>;

export interface DeviceFields { readonly name: string; readonly version: number; readonly data: Uint8Array }

/** A DEVICE name's UTF-8 length, checked (1..255: it is sent after a u8 length) along with the data's size. */
function deviceNameBytes(f: DeviceFields): number {
  const n = Buffer.byteLength(f.name, 'utf8');
  if (n < 1 || n > 255) throw new WireError(`DEVICE: name ${JSON.stringify(f.name)} must be 1-255 bytes`);
  if (f.data.length > MAX_DEVICE_DATA_BYTES) throw new WireError(`DEVICE ${f.name}: ${f.data.length} bytes exceeds ${MAX_DEVICE_DATA_BYTES}`);
  return n;
}

export const RECORD = {
  /** Pages with data, copied from `first` on; the data follows the head (P pages). */
  Pages: fixed<{ first: number }>({
    tag: Rec.Pages, name: 'PAGES', direction: 'stream', perBlock: true, pageData: true, headBytes: 4,
    encode: (f, out, at) => { out.writeUInt32LE(f.first, at); },
    decode: (head) => ({ first: head.readUInt32LE(0) }),
  }),
  /** A run of `count` zero pages from `first` on. */
  Zero: fixed<{ first: number; count: number }>({
    tag: Rec.Zero, name: 'ZERO', direction: 'stream', perBlock: true, headBytes: 8,
    encode: (f, out, at) => { out.writeUInt32LE(f.first, at); out.writeUInt32LE(f.count, at + 4); },
    decode: (head) => ({ first: head.readUInt32LE(0), count: head.readUInt32LE(4) }),
  }),
  /** The start of pass `pass` (1, 2, ...). */
  Pass: fixed<{ pass: number }>({
    tag: Rec.Pass, name: 'PASS', direction: 'stream', headBytes: 4,
    encode: (f, out, at) => { out.writeUInt32LE(f.pass, at); },
    decode: (head) => ({ pass: head.readUInt32LE(0) }),
  }),
  /** A device section: u8 name length, name (UTF-8), u32 version, data. */
  Device: variable<DeviceFields>({
    tag: Rec.Device, name: 'DEVICE', direction: 'stream',
    maxHeadBytes: () => 1 + 255 + 4 + MAX_DEVICE_DATA_BYTES,
    sizeOf: (f) => 1 + deviceNameBytes(f) + 4 + f.data.length,
    encode: (f, out, at) => {
      const n = deviceNameBytes(f);
      out.writeUInt8(n, at);
      out.write(f.name, at + 1, n, 'utf8');
      out.writeUInt32LE(f.version, at + 1 + n);
      out.set(f.data, at + 5 + n);
    },
    decode: (head) => {
      const len = head.length >= 1 ? head.readUInt8(0) : 0;
      if (len < 1 || head.length < 5 + len) throw new WireError(`DEVICE: head of ${head.length} bytes is too short for a name of ${len}`);
      return { name: head.subarray(1, 1 + len).toString('utf8'), version: head.readUInt32LE(1 + len), data: new Uint8Array(head.subarray(5 + len)) };
    },
  }),
  /** vCPU `index`'s saved state: u16 index, state. */
  Vcpu: variable<{ index: number; state: Uint8Array }>({
    tag: Rec.Vcpu, name: 'VCPU', direction: 'stream',
    maxHeadBytes: () => 2 + MAX_VCPU_STATE_RECORD_BYTES,
    sizeOf: (f) => 2 + f.state.length,
    encode: (f, out, at) => { out.writeUInt16LE(f.index, at); out.set(f.state, at + 2); },
    decode: (head) => {
      if (head.length < 2) throw new WireError(`VCPU: head of ${head.length} bytes has no vCPU index`);
      return { index: head.readUInt16LE(0), state: new Uint8Array(head.subarray(2)) };
    },
  }),
  /** Per-block totals: u16 blocks, per block u64 pages sent with data, u64 pages sent as zero. */
  End: variable<{ totals: readonly BlockTotals[] }>({
    tag: Rec.End, name: 'END', direction: 'stream',
    maxHeadBytes: (blocks) => 2 + 16 * blocks,
    sizeOf: (f) => 2 + 16 * f.totals.length,
    encode: (f, out, at) => {
      out.writeUInt16LE(f.totals.length, at);
      f.totals.forEach((t, i) => {
        out.writeBigUInt64LE(BigInt(t.normal), at + 2 + 16 * i);
        out.writeBigUInt64LE(BigInt(t.zero), at + 10 + 16 * i);
      });
    },
    decode: (head, blocks = 0) => {
      if (head.length !== 2 + 16 * blocks || head.readUInt16LE(0) !== blocks) {
        throw new WireError(`END: totals for ${head.length >= 2 ? head.readUInt16LE(0) : '?'} blocks, expected ${blocks}`);
      }
      const totals = Array.from({ length: blocks }, (_, i) => ({
        normal: Number(head.readBigUInt64LE(2 + 16 * i)),
        zero: Number(head.readBigUInt64LE(10 + 16 * i)),
      }));
      return { totals };
    },
  }),
  /** Take over: u8 run, 1 to resume the guest (it ran on the source), anything else to stay paused. */
  Go: fixed<{ run: boolean }>({
    tag: Rec.Go, name: 'GO', direction: 'stream', headBytes: 1,
    encode: (f, out, at) => { out.writeUInt8(f.run ? 1 : 0, at); },
    decode: (head) => ({ run: head.readUInt8(0) === 1 }),
  }),
  /**
   * The source's digest of every page it sent, as last sent (ram-digest.ts):
   * four u32 lane sums of the pages' 128-bit terms. Only in a stream whose
   * header has HEADER_FLAG_VERIFY, after the last page, once.
   */
  Verify: fixed<{ digest: Buffer }>({
    tag: Rec.Verify, name: 'VERIFY', direction: 'stream', headBytes: DIGEST_BYTES,
    encode: (f, out, at) => {
      if (f.digest.length !== DIGEST_BYTES) throw new WireError(`VERIFY: a digest of ${f.digest.length} bytes, expected ${DIGEST_BYTES}`);
      out.set(f.digest, at);
    },
    decode: (head) => ({ digest: Buffer.from(head) }),
  }),
  /**
   * Block `block` is now in use to `pages` pages (u32; its size word, as a
   * WebAssembly guest's memory.grow moved it): more than before, at most the
   * block's pages, before any page of the new range, never after VERIFY.
   */
  Grow: fixed<{ pages: number }>({
    tag: Rec.Grow, name: 'GROW', direction: 'stream', perBlock: true, headBytes: 4,
    encode: (f, out, at) => { out.writeUInt32LE(f.pages, at); },
    decode: (head) => ({ pages: head.readUInt32LE(0) }),
  }),
  /**
   * The first record on each channel's connection (header flag MULTIFD):
   * u16 its index (0..channels-1), u16 the channels, the guest's UUID. The
   * destination matches it to the stream whose header announced them.
   */
  Channel: fixed<{ index: number; channels: number; uuid: string }>({
    tag: Rec.Channel, name: 'CHANNEL', direction: 'stream', headBytes: 20,
    encode: (f, out, at) => { out.writeUInt16LE(f.index, at); out.writeUInt16LE(f.channels, at + 2); uuidBytes(f.uuid).copy(out, at + 4); },
    decode: (head) => ({ index: head.readUInt16LE(0), channels: head.readUInt16LE(2), uuid: uuidText(head.subarray(4, 20)) }),
  }),
  /**
   * The end of pass `pass` (u32): on a channel, after the pass's last page
   * there; on the main connection, once every channel has sent its own. A
   * destination reads past the main connection's only when every channel's
   * has arrived (QEMU's multifd sync): the barrier that puts the devices,
   * END and GO after every page.
   */
  Sync: fixed<{ pass: number }>({
    tag: Rec.Sync, name: 'SYNC', direction: 'stream', headBytes: 4,
    encode: (f, out, at) => { out.writeUInt32LE(f.pass, at); },
    decode: (head) => ({ pass: head.readUInt32LE(0) }),
  }),
  /**
   * Several channels with compression (header flag COMPRESSION): `count`
   * pages of block `block` from `first` on (1..MAX_PACKET_PAGES, in the
   * clear), their data compressed together as one frame of the header's
   * codec (packet-codec.ts), which must decompress to exactly count x 4096
   * bytes. The frame's check covers the compressed bytes (they are the
   * head); VERIFY's digest covers the pages as decompressed.
   */
  Compressed: variable<{ first: number; count: number; data: Uint8Array }>({
    tag: Rec.Compressed, name: 'COMPRESSED', direction: 'stream', perBlock: true,
    maxHeadBytes: () => 8 + MAX_PACKET_BYTES,
    sizeOf: (f) => {
      if (f.count < 1 || f.count > MAX_PACKET_PAGES) throw new WireError(`COMPRESSED: ${f.count} pages, expected 1..${MAX_PACKET_PAGES}`);
      if (f.data.length < 1 || f.data.length > MAX_PACKET_BYTES) throw new WireError(`COMPRESSED: ${f.data.length} bytes of data, expected 1..${MAX_PACKET_BYTES}`);
      return 8 + f.data.length;
    },
    encode: (f, out, at) => { out.writeUInt32LE(f.first, at); out.writeUInt32LE(f.count, at + 4); out.set(f.data, at + 8); },
    decode: (head) => {
      if (head.length < 9) throw new WireError(`COMPRESSED: head of ${head.length} bytes, expected a first page, a count and data`);
      const count = head.readUInt32LE(4);
      if (count < 1 || count > MAX_PACKET_PAGES) throw new WireError(`COMPRESSED: ${count} pages, expected 1..${MAX_PACKET_PAGES}`);
      return { first: head.readUInt32LE(0), count, data: new Uint8Array(head.buffer, head.byteOffset + 8, head.length - 8) }; // a view: no copy
    },
  }),
  /**
   * A page sent again, as its XBZRLE delta (wire/xbzrle.ts) against the
   * copy this connection sent before: u32 page of block `block`, then the
   * delta (1..4096 bytes: QEMU's load_xbzrle refuses longer ones, and its
   * sender sends such a page whole). Where PAGES may go; the destination
   * applies it to the page as it holds it.
   */
  Xbzrle: variable<{ page: number; delta: Uint8Array }>({
    tag: Rec.Xbzrle, name: 'XBZRLE', direction: 'stream', perBlock: true,
    maxHeadBytes: () => 4 + PAGE_SIZE,
    sizeOf: (f) => {
      if (f.delta.length < 1 || f.delta.length > PAGE_SIZE) throw new WireError(`XBZRLE: a delta of ${f.delta.length} bytes, expected 1..${PAGE_SIZE}`);
      return 4 + f.delta.length;
    },
    encode: (f, out, at) => { out.writeUInt32LE(f.page, at); out.set(f.delta, at + 4); },
    decode: (head) => {
      if (head.length < 5) throw new WireError(`XBZRLE: head of ${head.length} bytes, expected a page and a delta of 1..${PAGE_SIZE} bytes`);
      return { page: head.readUInt32LE(0), delta: new Uint8Array(head.buffer, head.byteOffset + 4, head.length - 4) }; // a view: nothing copied
    },
  }),
  /**
   * A run of pages sent again as XBZRLE deltas, all of block `block`: u32
   * count (1..MAX_XBZRLE_RUN_PAGES), then per page u32 page, u16 the
   * delta's length (1..4096, as XBZRLE's), the delta; the head at most
   * MAX_XBZRLE_RUN_HEAD_BYTES, the entries filling it exactly. Where
   * XBZRLE may go; applied in order, as that many XBZRLE records would be,
   * with one frame and one check for all (walkXbzrleRun reads it without
   * allocating; this decode is for tests and tools).
   */
  XbzrleRun: variable<{ entries: readonly XbzrleEntry[] }>({
    tag: Rec.XbzrleRun, name: 'XBZRLERUN', direction: 'stream', perBlock: true,
    maxHeadBytes: () => MAX_XBZRLE_RUN_HEAD_BYTES,
    sizeOf: (f) => {
      const n = f.entries.length;
      if (n < 1 || n > MAX_XBZRLE_RUN_PAGES) throw new WireError(`XBZRLERUN: ${n} pages, expected 1..${MAX_XBZRLE_RUN_PAGES}`);
      let size = 4;
      for (const e of f.entries) {
        if (e.delta.length < 1 || e.delta.length > PAGE_SIZE) throw new WireError(`XBZRLERUN: page ${e.page}: a delta of ${e.delta.length} bytes, expected 1..${PAGE_SIZE}`);
        size += XBZRLE_RUN_ENTRY_BYTES + e.delta.length;
      }
      if (size > MAX_XBZRLE_RUN_HEAD_BYTES) throw new WireError(`XBZRLERUN: a head of ${size} bytes exceeds ${MAX_XBZRLE_RUN_HEAD_BYTES}`);
      return size;
    },
    encode: (f, out, at) => {
      out.writeUInt32LE(f.entries.length, at);
      let i = at + 4;
      for (const e of f.entries) {
        out.writeUInt32LE(e.page, i);
        out.writeUInt16LE(e.delta.length, i + 4);
        out.set(e.delta, i + XBZRLE_RUN_ENTRY_BYTES);
        i += XBZRLE_RUN_ENTRY_BYTES + e.delta.length;
      }
    },
    decode: (head) => {
      const entries: XbzrleEntry[] = [];
      walkXbzrleRun(head, (page, from, end) => { entries.push({ page, delta: new Uint8Array(head.buffer, head.byteOffset + from, end - from) }); });
      return { entries };
    },
  }),
  /**
   * Post-copy, before END: pages of block `block` the destination must treat
   * as missing (dirty at the source when it paused for post-copy): pairs of
   * u32 first page, u32 count, in order, at most MAX_MISSING_RANGES. Marks
   * the stream as post-copy (a MISSING with ranges or not comes first).
   */
  Missing: variable<{ ranges: ArrayLike<number> }>({
    tag: Rec.Missing, name: 'MISSING', direction: 'stream', perBlock: true,
    maxHeadBytes: () => 8 * MAX_MISSING_RANGES,
    sizeOf: (f) => (f.ranges.length === 0 ? 0 : MISSING_LIST.sizeOf(f.ranges.length)),
    encode: (f, out, at) => { MISSING_LIST.write(f.ranges, out, at); },
    decode: (head) => {
      if (head.length === 0) return { ranges: new Uint32Array(0) };
      const ranges = MISSING_LIST.read(head);
      if (ranges.length % 2 !== 0) throw new WireError(`MISSING: ${ranges.length} numbers, expected (first, count) pairs`);
      return { ranges };
    },
  }),
  /**
   * Post-copy pages, after GO: u32 first page of block `block`, then the
   * CRC32 of each of the P pages (1..MAX_POSTCOPY_PAGES_PER_RECORD), then
   * their data. The frame's check covers frame and head; each page's own
   * check is verified before it is installed (a bad page is asked again).
   */
  PcPages: variable<{ first: number; checks: ArrayLike<number> }>({
    tag: Rec.PcPages, name: 'PCPAGES', direction: 'stream', perBlock: true, pageData: true, pageChecks: true,
    maxHeadBytes: () => 4 + 4 * MAX_POSTCOPY_PAGES_PER_RECORD,
    sizeOf: (f) => 4 + 4 * f.checks.length,
    encode: (f, out, at) => {
      out.writeUInt32LE(f.first, at);
      for (let i = 0; i < f.checks.length; i++) out.writeUInt32LE(f.checks[i], at + 4 + 4 * i);
    },
    decode: (head) => {
      if (head.length < 8 || head.length % 4 !== 0) throw new WireError(`PCPAGES: head of ${head.length} bytes, expected a first page and one check per page`);
      const checks = new Uint32Array((head.length - 4) / 4);
      for (let i = 0; i < checks.length; i++) checks[i] = head.readUInt32LE(4 + 4 * i);
      return { first: head.readUInt32LE(0), checks };
    },
  }),
  /** Post-copy: the source has pushed every missing page; u64 post-copy pages sent before this record (the totals check). */
  Pend: fixed<{ sent: number }>({
    tag: Rec.Pend, name: 'PEND', direction: 'stream', headBytes: 8,
    encode: (f, out, at) => { out.writeBigUInt64LE(BigInt(f.sent), at); },
    decode: (head) => ({ sent: Number(head.readBigUInt64LE(0)) }),
  }),
  /**
   * The source's ever-written map, for a destination that asked for it
   * (PREALLOC) to preallocate: u32 flags (bit 0 LAST: the map's last
   * record), then (u32 first, u32 count) pairs of block `block`, 0..
   * MAX_WRITTEN_RANGES. Right after the header, blocks in order, ranges in
   * order and coalesced across a block's records (wire/written-map-rules.ts).
   */
  Written: variable<{ last: boolean; ranges: ArrayLike<number> }>({
    tag: Rec.Written, name: 'WRITTEN', direction: 'stream', perBlock: true,
    maxHeadBytes: () => 4 + 8 * MAX_WRITTEN_RANGES,
    sizeOf: (f) => {
      if (f.ranges.length % 2 !== 0) throw new WireError(`WRITTEN: ${f.ranges.length} numbers, expected (first, count) pairs`);
      return 4 + (f.ranges.length === 0 ? 0 : WRITTEN_LIST.sizeOf(f.ranges.length));
    },
    encode: (f, out, at) => {
      out.writeUInt32LE(f.last ? WRITTEN_LAST : 0, at);
      WRITTEN_LIST.write(f.ranges, out, at + 4);
    },
    decode: (head) => {
      if (head.length < 4 || (head.length - 4) % 8 !== 0) throw new WireError(`WRITTEN: head of ${head.length} bytes, expected flags and (first, count) pairs`);
      const flags = head.readUInt32LE(0);
      if ((flags & ~WRITTEN_LAST) !== 0) throw new WireError(`WRITTEN: unknown flags 0x${flags.toString(16)}`);
      return { last: flags === WRITTEN_LAST, ranges: head.length === 4 ? new Uint32Array(0) : WRITTEN_LIST.read(head.subarray(4)) };
    },
  }),
  /** Stream bytes read and loaded so far, u64. */
  Ack: fixed<{ bytes: number }>({
    tag: Rec.Ack, name: 'ACK', direction: 'return', headBytes: 8,
    encode: (f, out, at) => { out.writeBigUInt64LE(BigInt(f.bytes), at); },
    decode: (head) => ({ bytes: Number(head.readBigUInt64LE(0)) }),
  }),
  Loaded: none({ tag: Rec.Loaded, name: 'LOADED', direction: 'return', headBytes: 0, encode: () => {}, decode: () => ({}) }),
  Resumed: none({ tag: Rec.Resumed, name: 'RESUMED', direction: 'return', headBytes: 0, encode: () => {}, decode: () => ({}) }),
  /** Why the destination failed, UTF-8. */
  Error: variable<{ reason: string }>({
    tag: Rec.Error, name: 'ERROR', direction: 'return',
    maxHeadBytes: () => MAX_ERROR_BYTES,
    sizeOf: (f) => {
      const n = Buffer.byteLength(f.reason, 'utf8');
      if (n > MAX_ERROR_BYTES) throw new WireError(`ERROR: a reason of ${n} bytes exceeds ${MAX_ERROR_BYTES}`);
      return n;
    },
    encode: (f, out, at) => { out.write(f.reason, at, 'utf8'); },
    decode: (head) => ({ reason: head.toString('utf8') }),
  }),
  /**
   * Post-copy: pages the destination's vCPUs wait for, to be sent before the
   * background push: u32 global page numbers (the presence map's), 1..
   * MAX_REQUEST_PAGES; the top bit (REQUEST_AGAIN) asks again for a page
   * whose copy failed its check.
   */
  Request: variable<{ pages: ArrayLike<number> }>({
    tag: Rec.Request, name: 'REQUEST', direction: 'return',
    maxHeadBytes: () => 4 * MAX_REQUEST_PAGES,
    sizeOf: (f) => REQUEST_LIST.sizeOf(f.pages.length),
    encode: (f, out, at) => { REQUEST_LIST.write(f.pages, out, at); },
    decode: (head) => ({ pages: REQUEST_LIST.read(head) }),
  }),
  /** Post-copy: the destination holds every page and checked the totals: the migration is complete. */
  Done: none({ tag: Rec.Done, name: 'DONE', direction: 'return', headBytes: 0, encode: () => {}, decode: () => ({}) }),
  /**
   * Post-copy recovery, on a connection whose header carried RESUME: the
   * pages the destination still lacks, as (u32 first global page, u32 count)
   * pairs, in order across records, at most MAX_MISSING_RANGES per record.
   * Bytes in flight when the link broke are lost, so this, not what the
   * source sent, is what it sends from now on.
   */
  RecvBitmap: variable<{ ranges: ArrayLike<number> }>({
    tag: Rec.RecvBitmap, name: 'RECVBITMAP', direction: 'return',
    maxHeadBytes: () => 8 * MAX_MISSING_RANGES,
    sizeOf: (f) => BITMAP_LIST.sizeOf(f.ranges.length),
    encode: (f, out, at) => { BITMAP_LIST.write(f.ranges, out, at); },
    decode: (head) => {
      const ranges = BITMAP_LIST.read(head);
      if (ranges.length % 2 !== 0) throw new WireError(`RECVBITMAP: ${ranges.length} numbers, expected (first, count) pairs`);
      return { ranges };
    },
  }),
  /** Post-copy recovery: the bitmap is whole (u64: the pages it named); the requests still waiting follow as REQUEST. */
  ResumeAck: fixed<{ missing: number }>({
    tag: Rec.ResumeAck, name: 'RESUMEACK', direction: 'return', headBytes: 8,
    encode: (f, out, at) => { out.writeBigUInt64LE(BigInt(f.missing), at); },
    decode: (head) => ({ missing: Number(head.readBigUInt64LE(0)) }),
  }),
  /**
   * The destination preallocates: send the ever-written map (WRITTEN) right
   * after the header. Only before READY, and only from a destination told
   * to preallocate (an older source refuses the record: the user's choice).
   */
  Prealloc: none({ tag: Rec.Prealloc, name: 'PREALLOC', direction: 'return', headBytes: 0, encode: () => {}, decode: () => ({}) }),
  /** The destination accepted the connection (and the TLS peer): the source streams only after it. */
  Ready: none({ tag: Rec.Ready, name: 'READY', direction: 'return', headBytes: 0, encode: () => {}, decode: () => ({}) }),
  /** Why the destination will not load this stream: u16 refusal code (refusals.ts, 1..65535), UTF-8 reason. */
  Refused: variable<{ code: number; reason: string }>({
    tag: Rec.Refused, name: 'REFUSED', direction: 'return',
    maxHeadBytes: () => 2 + MAX_ERROR_BYTES,
    sizeOf: (f) => {
      if (!Number.isInteger(f.code) || f.code < 1 || f.code > 0xffff) throw new WireError(`REFUSED: code ${f.code}, expected 1..65535`);
      const n = Buffer.byteLength(f.reason, 'utf8');
      if (n > MAX_ERROR_BYTES) throw new WireError(`REFUSED: a reason of ${n} bytes exceeds ${MAX_ERROR_BYTES}`);
      return 2 + n;
    },
    encode: (f, out, at) => {
      out.writeUInt16LE(f.code, at);
      out.write(f.reason, at + 2, 'utf8');
    },
    decode: (head) => {
      const code = head.length >= 2 ? head.readUInt16LE(0) : 0;
      if (code === 0) throw new WireError(`REFUSED: ${head.length < 2 ? `head of ${head.length} bytes has no code` : 'code 0 is never valid'}`);
      return { code, reason: head.subarray(2).toString('utf8') };
    },
  }),
} as const;

/** Every row, in tag order. */
export const RECORD_TABLE: readonly RecordRow<unknown>[] = Object.values(RECORD).sort((a, b) => a.tag - b.tag);

const BY_TAG: (RecordRow<unknown> | undefined)[] = new Array(256).fill(undefined);
for (const row of RECORD_TABLE) BY_TAG[row.tag] = row;

/** The row of tag `tag`, if this version reads it. */
export function recordRow(tag: number): RecordRow<unknown> | undefined {
  return BY_TAG[tag];
}

/**
 * Tags reserved for records already foreseen (docs/wire-format.md, "Planned
 * records"). Each becomes one row when its feature lands; until then a
 * destination refuses it as an unknown record. A tag is never reused.
 */
export const PLANNED_RECORDS: readonly { readonly tag: number; readonly name: string; readonly direction: Direction }[] = [
  { tag: 0x09, name: 'MODULE', direction: 'stream' },
];

/** A head on its own (tests, and records too large for a send slot). */
export function encodeHead<F>(row: RecordRow<F>, fields: F): Buffer {
  const head = Buffer.alloc(row.sizeOf(fields));
  row.encode(fields, head, 0);
  return head;
}

/** A whole record without page data, as one Buffer (the return path, tests). */
export function encodeRecord<F>(row: RecordRow<F>, fields: F, block = 0): Buffer {
  const headLen = row.sizeOf(fields);
  const buf = Buffer.alloc(FRAME_HEADER_BYTES + headLen + CHECK_BYTES);
  writeFrameHeader(new DataView(buf.buffer, buf.byteOffset, buf.length), 0, row.tag, block, headLen, 0);
  row.encode(fields, buf, FRAME_HEADER_BYTES);
  const end = FRAME_HEADER_BYTES + headLen;
  buf.writeUInt32LE(crc32(buf.subarray(0, end)), end);
  return buf;
}
