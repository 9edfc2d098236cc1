/**
 * The migration stream's layout: constants, the header and the frame
 * around each record. Each record type's head (its tag, its size, its
 * encode and decode) is one row of records.ts. docs/wire-format.md draws
 * both; these two modules are the authority. All integers are
 * little-endian.
 *
 *   stream   = header frame* [VERIFY] END GO   (source -> destination)
 *   post-copy: header frame* MISSING+ END GO PCPAGES* PEND PCPAGES*
 *   multifd:   header (MULTIFD) SYNC* devices [VERIFY] END GO, and on each
 *              of the channels' connections: CHANNEL (PASS GROW* (PAGES|ZERO|COMPRESSED|XBZRLE|XBZRLERUN)* SYNC)*
 *   prealloc:  header WRITTEN+ (the last with LAST) then as above, to a
 *              destination that asked with PREALLOC (before its READY)
 *   return   = frame*                        (destination -> source)
 *
 *   header:  0 magic "FERRYMIG" | 8 u16 version | 10 u16 flags (bit 0: VERIFY,
 *              bit 1: PROGRAM, bit 2: POSTCOPY, bit 3: RESUME, bit 4: MULTIFD,
 *              bit 5: COMPRESSION)
 *           12 u32 page size | 16 u8[16] guest UUID
 *           32 u32 body length N
 *           36 body (N bytes): u16 blocks, u16 vcpus, [PROGRAM: u8[32] the
 *              program's identity, a SHA-256], [MULTIFD: u16 channels],
 *              [COMPRESSION: u8 method (COMPRESSION_CODES)],
 *              per block: u8 name length, name (ASCII), u32 pages,
 *              u32 pages in use (<= pages)
 *           36+N u32 CRC32 of bytes [0, 36+N)
 *
 *   frame:   0 u8 type (0 is invalid) | 1 u8 flags (0) | 2 u16 block
 *            4 u32 head length H | 8 u32 page count P
 *           12 head (H bytes) | 12+H page data (P x 4096 bytes)
 *           then u32 check = CRC32 of bytes [0, 12+H) seeded with the
 *           page sum (page-checksum.ts) of the page data (0 if P = 0)
 *
 * Any incompatible change bumps WIRE_VERSION; a destination accepts
 * versions MIN_WIRE_VERSION..WIRE_VERSION (see `checkVersion` for why
 * versions 1 and 2 are refused). Version 3 has neither PROGRAM nor the
 * pages in use (every block is in use to its end); this ferry reads it.
 */
import { crc32 as zlibCrc32 } from 'node:zlib';
import { WireError } from '../errors.js';
import { MAX_BLOCK_PAGES, PAGE_SIZE } from '../memory/page.js';
import { refused } from './refusals.js';
import type { CodecMethod } from './packet-codec.js';

export const MAGIC = Buffer.from('FERRYMIG', 'ascii');
export const WIRE_VERSION = 4;
export const MIN_WIRE_VERSION = 3;
/**
 * Header flag: this stream ends with a VERIFY record (records.ts), so the
 * destination keeps the digest of what it loads from the first page on.
 */
export const HEADER_FLAG_VERIFY = 0x0001;
/**
 * Header flag (version 4): the guest is a WebAssembly program, whose
 * identity (PROGRAM_IDENTITY_BYTES) the body carries; the destination runs
 * its own copy of the program and refuses a stream of another.
 */
export const HEADER_FLAG_PROGRAM = 0x0002;
export const PROGRAM_IDENTITY_BYTES = 32;
/**
 * Header flag (version 4, added without a version bump: a reader of
 * version 4 without it refuses the flag as unknown, before any page): the
 * source has the capability postcopy-ram, so the stream may switch to
 * post-copy (MISSING before END, page records after GO). A destination that
 * cannot take post-copy refuses it at the header (REFUSED `postcopy`).
 */
export const HEADER_FLAG_POSTCOPY = 0x0004;
/**
 * Header flag (version 4, added as POSTCOPY was): this connection resumes
 * a post-copy whose link broke (QEMU's postcopy recovery). It is sent only
 * to a destination paused in post-copy, which checks the UUID and geometry
 * against the migration it holds, answers with RECVBITMAP and RESUMEACK,
 * and reads only PCPAGES and PEND after it (the stream is past GO).
 */
export const HEADER_FLAG_RESUME = 0x0008;
/**
 * Header flag (version 4, added as POSTCOPY was): the pages travel on
 * several channels (QEMU's multifd), whose count (1..MAX_CHANNELS) the
 * body carries: extra connections to the same address, each opened with a
 * CHANNEL record. This connection then carries no page: only SYNC at the
 * end of each pass (once every channel has sent its own SYNC of that pass),
 * the devices, VERIFY, END and GO.
 */
export const HEADER_FLAG_MULTIFD = 0x0010;
/**
 * Header flag (version 4, added as POSTCOPY was; only with MULTIFD): the
 * channels may carry COMPRESSED records (records.ts), whose codec the body
 * names (a u8 after the channel count, COMPRESSION_CODES). A destination
 * that cannot decode that codec refuses the stream at the header
 * (REFUSED `compression`), before any page.
 */
export const HEADER_FLAG_COMPRESSION = 0x0020;
/** The codec's byte in the header body; 0 is never valid. */
export const COMPRESSION_CODES: Readonly<Record<CodecMethod, number>> = { zlib: 1, zstd: 2, lz4: 3 };
const CODEC_OF_CODE: readonly (CodecMethod | undefined)[] = [undefined, 'zlib', 'zstd', 'lz4'];
/** Most channels a stream may announce (QEMU's multifd-channels goes to 255; ferry's threads are one per channel). */
export const MAX_CHANNELS = 64;
/** The flags each version knows; any other bit is refused. */
const KNOWN_HEADER_FLAGS: Readonly<Record<number, number>> = {
  3: HEADER_FLAG_VERIFY, 4: HEADER_FLAG_VERIFY | HEADER_FLAG_PROGRAM | HEADER_FLAG_POSTCOPY | HEADER_FLAG_RESUME | HEADER_FLAG_MULTIFD | HEADER_FLAG_COMPRESSION,
};
export const HEADER_FIXED_BYTES = 36;
export const MAX_HEADER_BODY_BYTES = 64 * 1024;
export const FRAME_HEADER_BYTES = 12;
export const CHECK_BYTES = 4;
/** Most pages in one PAGES record: 1 MiB of data, the size of a large write. */
export const MAX_PAGES_PER_RECORD = 256;
export const MAX_BLOCKS = 1024;
export const MAX_VCPUS = 64;

/** Most pages in one post-copy PCPAGES record (each with its own check in the head): 64 KiB, small enough that a request is not held up behind one. */
export const MAX_POSTCOPY_PAGES_PER_RECORD = 16;
/** Most ranges in one MISSING record (8 bytes each: 32 KiB). */
export const MAX_MISSING_RANGES = 4096;
/** Most ranges in one WRITTEN record (8 bytes each: 32 KiB), as MISSING's. */
export const MAX_WRITTEN_RANGES = 4096;
/** Most pages in one REQUEST record (4 bytes each). */
export const MAX_REQUEST_PAGES = 1024;
/** Caps of the variable record heads (records.ts), checked before allocating. */
export const MAX_DEVICE_DATA_BYTES = 16 * 1024 * 1024;
/**
 * 4 MiB since version 4 (64 KiB before): a WebAssembly guest's vCPU state
 * carries its unwound stack, up to its unwind buffer (1 MiB by default).
 */
export const MAX_VCPU_STATE_RECORD_BYTES = 4 * 1024 * 1024;
export const MAX_ERROR_BYTES = 4096;
/** VERIFY's digest: 128 bits (ram-digest.ts). */
export const DIGEST_BYTES = 16;

export interface BlockGeometry {
  readonly name: string;
  readonly pages: number;
  /**
   * Pages in use (0..pages) at the header: the block's size word
   * (memory/block-tail.ts); GROW records raise it. Pages past it carry
   * no record. Version 3: `pages`.
   */
  readonly visiblePages: number;
}

export interface StreamHeader {
  readonly version: number;
  readonly pageSize: number;
  readonly uuid: string;
  readonly blocks: readonly BlockGeometry[];
  readonly vcpus: number;
  /** HEADER_FLAG_VERIFY: a VERIFY record comes before END. */
  readonly verify: boolean;
  /** HEADER_FLAG_PROGRAM: the WebAssembly program's identity, 64 lowercase hex characters; null for none. */
  readonly program: string | null;
  /** HEADER_FLAG_POSTCOPY: the stream may switch to post-copy. */
  readonly postcopy: boolean;
  /** HEADER_FLAG_RESUME: this connection resumes a paused post-copy (only PCPAGES and PEND follow). */
  readonly resume: boolean;
  /** HEADER_FLAG_MULTIFD: the channels the pages travel on; 0 without the flag (the pages are on this connection). */
  readonly channels: number;
  /** HEADER_FLAG_COMPRESSION: the codec of the channels' COMPRESSED records; null without the flag. */
  readonly compression: CodecMethod | null;
}

/** What encodeHeader takes: a block's pages in use default to its pages, and no program to none. */
export type HeaderFields = Omit<StreamHeader, 'version' | 'verify' | 'program' | 'blocks' | 'postcopy' | 'resume' | 'channels' | 'compression'> & {
  readonly channels?: number;
  readonly compression?: CodecMethod | null;
  readonly verify?: boolean;
  readonly postcopy?: boolean;
  readonly resume?: boolean;
  readonly program?: string | null;
  readonly blocks: readonly (Omit<BlockGeometry, 'visiblePages'> & { readonly visiblePages?: number })[];
};

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const BLOCK_NAME_RE = /^[A-Za-z0-9_.:-]{1,64}$/;
export const PROGRAM_IDENTITY_RE = /^[0-9a-f]{64}$/;

/** A guest UUID's 16 bytes (the header's, CHANNEL's). */
export function uuidBytes(uuid: string): Buffer {
  if (!UUID_RE.test(uuid)) throw new WireError(`guest UUID ${JSON.stringify(uuid)} is not a UUID`);
  return Buffer.from(uuid.replaceAll('-', ''), 'hex');
}

/** 16 bytes as a UUID's text. */
export function uuidText(bytes: Uint8Array): string {
  const hex = Buffer.from(bytes.buffer, bytes.byteOffset, 16).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** CRC32 (zlib's), chainable: crc32(b, crc32(a, s)) === crc32(a ‖ b, s). */
export function crc32(data: Uint8Array, seed = 0): number {
  return zlibCrc32(data, seed) >>> 0;
}

export function encodeHeader(h: HeaderFields): Buffer {
  if (!UUID_RE.test(h.uuid)) throw new WireError(`header: guest UUID ${JSON.stringify(h.uuid)} is not a UUID`);
  const program = h.program ?? null;
  if (program !== null && !PROGRAM_IDENTITY_RE.test(program)) {
    throw new WireError(`header: program identity ${JSON.stringify(program)} is not ${PROGRAM_IDENTITY_BYTES * 2} lowercase hex characters`);
  }
  const channels = h.channels ?? 0;
  if (!Number.isInteger(channels) || channels < 0 || channels > MAX_CHANNELS) throw new WireError(`header: ${channels} channels, expected 0..${MAX_CHANNELS}`);
  const compression = h.compression ?? null;
  if (compression !== null && channels === 0) throw new WireError('header: compression without channels (COMPRESSED travels on channels only)');
  const names = h.blocks.map((b) => Buffer.from(b.name, 'ascii'));
  const bodyLen = 4 + (program === null ? 0 : PROGRAM_IDENTITY_BYTES) + (channels === 0 ? 0 : 2) + (compression === null ? 0 : 1) + names.reduce((n, name) => n + 1 + name.length + 8, 0);
  const buf = Buffer.alloc(HEADER_FIXED_BYTES + bodyLen + CHECK_BYTES);
  MAGIC.copy(buf, 0);
  buf.writeUInt16LE(WIRE_VERSION, 8);
  buf.writeUInt16LE((h.verify === true ? HEADER_FLAG_VERIFY : 0) | (program === null ? 0 : HEADER_FLAG_PROGRAM) |
    (h.postcopy === true ? HEADER_FLAG_POSTCOPY : 0) | (h.resume === true ? HEADER_FLAG_RESUME : 0) | (channels === 0 ? 0 : HEADER_FLAG_MULTIFD) |
    (compression === null ? 0 : HEADER_FLAG_COMPRESSION), 10);
  buf.writeUInt32LE(h.pageSize, 12);
  uuidBytes(h.uuid).copy(buf, 16);
  buf.writeUInt32LE(bodyLen, 32);
  let at = HEADER_FIXED_BYTES;
  buf.writeUInt16LE(h.blocks.length, at);
  buf.writeUInt16LE(h.vcpus, at + 2);
  at += 4;
  if (program !== null) at += buf.write(program, at, 'hex');
  if (channels !== 0) at = buf.writeUInt16LE(channels, at);
  if (compression !== null) at = buf.writeUInt8(COMPRESSION_CODES[compression], at);
  h.blocks.forEach((b, i) => {
    buf.writeUInt8(names[i].length, at);
    names[i].copy(buf, at + 1);
    at += 1 + names[i].length;
    buf.writeUInt32LE(b.pages, at);
    buf.writeUInt32LE(b.visiblePages ?? b.pages, at + 4);
    at += 8;
  });
  buf.writeUInt32LE(crc32(buf.subarray(0, at)), at);
  return buf;
}

/**
 * Which stream versions this destination reads; an older one is refused at
 * the header, before any page, with the reason:
 *
 * - Version 1 (ferry before 2860b5b): its page sum weighted the running
 *   sums with odd weights, which let some flips of bits 29-31 cancel out
 *   (the loader fuzz found one), so its records' checks vouch for less.
 *   Reading it would keep a second SIMD kernel alive only to accept a
 *   weaker check.
 * - Version 2 (ferry before the incremental digest): its VERIFY carries a
 *   SHA-256 of all RAM, which this ferry no longer computes (it read all
 *   of RAM inside the downtime), and its header does not announce VERIFY,
 *   which the destination must know before the first page to keep the
 *   new digest. Its VERIFY record comes only after every page: refusing
 *   it there would be after loading.
 *
 * An old file is restored by the ferry that saved it and saved again; a
 * live migration needs a destination at least as new as its source.
 * Version 3 is read: version 4 only added to it (the PROGRAM flag and its
 * identity, each block's pages in use, the GROW record, a larger VCPU cap),
 * and a version 3 stream means no program and every block in use to its end.
 */
function checkVersion(version: number): void {
  if (version >= MIN_WIRE_VERSION && version <= WIRE_VERSION) return;
  const reads = `versions ${MIN_WIRE_VERSION}..${WIRE_VERSION}`;
  const restore = 'restore it with the ferry that saved it, and save it again with this one';
  const why = version > WIRE_VERSION ? 'a newer ferry wrote it'
    : version === 1 ? `version 1's page check misses some bit flips: ${restore}`
      : version === 2 ? `version 2's VERIFY is a whole-RAM digest this ferry no longer computes: ${restore}`
        : 'no ferry wrote this version';
  throw refused('version', `header: stream version ${version}, this destination reads ${reads} (${why})`);
}

/**
 * Check the fixed part (magic, then version, then sizes); returns the body
 * length. A TLS handshake where the magic belongs (a record of type 0x16,
 * version 3.x) is a source that speaks TLS to a destination that does not:
 * refused as such, so that the message says what to change.
 */
export function decodeHeaderFixed(fixed: Buffer): number {
  if (fixed[0] === 0x16 && fixed[1] === 0x03) {
    throw refused('tls', 'header: the source speaks TLS (its first bytes are a TLS handshake) and this destination was started without TLS: ' +
      'give the destination --tls-cert and --tls-key (or --tls-psk-file), or drop the TLS options on the source');
  }
  if (!fixed.subarray(0, 8).equals(MAGIC)) {
    throw new WireError(`header: bad magic ${JSON.stringify(fixed.subarray(0, 8).toString('latin1'))}, expected "FERRYMIG"`);
  }
  const version = fixed.readUInt16LE(8);
  checkVersion(version);
  const flags = fixed.readUInt16LE(10);
  if ((flags & ~KNOWN_HEADER_FLAGS[version]) !== 0) throw new WireError(`header: unknown flags 0x${flags.toString(16)} in version ${version}`);
  const pageSize = fixed.readUInt32LE(12);
  if (pageSize !== PAGE_SIZE) throw new WireError(`header: page size ${pageSize}, expected ${PAGE_SIZE}`);
  const bodyLen = fixed.readUInt32LE(32);
  if (bodyLen < 4 || bodyLen > MAX_HEADER_BODY_BYTES) {
    throw new WireError(`header: body length ${bodyLen} is outside 4..${MAX_HEADER_BODY_BYTES}`);
  }
  return bodyLen;
}

/** Decode the whole header (fixed part, body and check). */
export function decodeHeader(all: Buffer): StreamHeader {
  const bodyLen = decodeHeaderFixed(all);
  const end = HEADER_FIXED_BYTES + bodyLen;
  const check = all.readUInt32LE(end);
  const actual = crc32(all.subarray(0, end));
  if (check !== actual) throw new WireError(`header: checksum 0x${check.toString(16)}, computed 0x${actual.toString(16)}`);
  const version = all.readUInt16LE(8);
  const flags = all.readUInt16LE(10);
  const uuid = uuidText(all.subarray(16, 32));
  let at = HEADER_FIXED_BYTES;
  const nblocks = all.readUInt16LE(at);
  const vcpus = all.readUInt16LE(at + 2);
  at += 4;
  if (nblocks < 1 || nblocks > MAX_BLOCKS) throw new WireError(`header: ${nblocks} RAM blocks, expected 1..${MAX_BLOCKS}`);
  if (vcpus > MAX_VCPUS) throw new WireError(`header: ${vcpus} vCPUs, expected at most ${MAX_VCPUS}`);
  let program: string | null = null;
  if ((flags & HEADER_FLAG_PROGRAM) !== 0) {
    if (at + PROGRAM_IDENTITY_BYTES > end) throw new WireError('header: body ends inside the program identity');
    program = all.subarray(at, at + PROGRAM_IDENTITY_BYTES).toString('hex');
    at += PROGRAM_IDENTITY_BYTES;
  }
  let channels = 0;
  if ((flags & HEADER_FLAG_MULTIFD) !== 0) {
    if (at + 2 > end) throw new WireError('header: body ends inside the channel count');
    channels = all.readUInt16LE(at);
    if (channels < 1 || channels > MAX_CHANNELS) throw new WireError(`header: ${channels} channels, expected 1..${MAX_CHANNELS}`);
    at += 2;
  }
  const compression = (flags & HEADER_FLAG_COMPRESSION) === 0 ? null : decodeCompression(all, at, end, channels);
  if (compression !== null) at += 1;
  const blocks = decodeBlocks(all, at, end, nblocks, version >= 4);
  const verify = (flags & HEADER_FLAG_VERIFY) !== 0;
  const postcopy = (flags & HEADER_FLAG_POSTCOPY) !== 0;
  const resume = (flags & HEADER_FLAG_RESUME) !== 0;
  if (resume && !postcopy) throw new WireError('header: flag RESUME without POSTCOPY (only a post-copy is resumed)');
  if (channels !== 0 && postcopy) throw new WireError('header: flags MULTIFD and POSTCOPY together (post-copy runs on one connection)');
  return { version, pageSize: PAGE_SIZE, uuid, blocks, vcpus, verify, program, postcopy, resume, channels, compression };
}

/** COMPRESSION's codec byte at `at`: only with MULTIFD (COMPRESSED travels on channels), a code this version knows. */
function decodeCompression(all: Buffer, at: number, end: number, channels: number): CodecMethod {
  if (channels === 0) throw new WireError('header: flag COMPRESSION without MULTIFD (compressed packets travel on channels only)');
  if (at + 1 > end) throw new WireError('header: body ends inside the compression method');
  const code = all.readUInt8(at);
  const method = CODEC_OF_CODE[code];
  if (method === undefined) throw refused('compression', `header: compression method ${code}, this destination knows 1 (zlib), 2 (zstd) and 3 (lz4)`);
  return method;
}

/** The body's blocks from `at` to `end`; `inUse`: each carries its pages in use (version 4). */
function decodeBlocks(all: Buffer, at: number, end: number, nblocks: number, inUse: boolean): BlockGeometry[] {
  const blocks: BlockGeometry[] = [];
  const seen = new Set<string>();
  const sizes = inUse ? 8 : 4;
  for (let i = 0; i < nblocks; i++) {
    if (at + 1 > end) throw new WireError(`header: body ends inside block ${i}`);
    const len = all.readUInt8(at);
    if (at + 1 + len + sizes > end) throw new WireError(`header: body ends inside block ${i}`);
    const name = all.subarray(at + 1, at + 1 + len).toString('latin1');
    if (!BLOCK_NAME_RE.test(name)) throw new WireError(`header: block ${i} has an invalid name ${JSON.stringify(name)}`);
    if (seen.has(name)) throw new WireError(`header: block name ${JSON.stringify(name)} appears twice`);
    seen.add(name);
    const pages = all.readUInt32LE(at + 1 + len);
    if (pages < 1 || pages > MAX_BLOCK_PAGES) throw new WireError(`header: block ${name} has ${pages} pages, expected 1..${MAX_BLOCK_PAGES}`);
    const visiblePages = inUse ? all.readUInt32LE(at + 5 + len) : pages;
    if (visiblePages > pages) throw new WireError(`header: block ${name} is in use to ${visiblePages} pages, past its ${pages}`);
    blocks.push({ name, pages, visiblePages });
    at += 1 + len + sizes;
  }
  if (at !== end) throw new WireError(`header: ${end - at} bytes left over in the body`);
  return blocks;
}

/** Write a frame header at `at` of `view`. */
export function writeFrameHeader(view: DataView, at: number, type: number, block: number, headLen: number, pages: number): void {
  view.setUint8(at, type);
  view.setUint8(at + 1, 0);
  view.setUint16(at + 2, block, true);
  view.setUint32(at + 4, headLen, true);
  view.setUint32(at + 8, pages, true);
}

/** Per-block totals carried by END: pages sent with data, and pages sent as zero. */
export interface BlockTotals {
  normal: number;
  zero: number;
}
