/**
 * What every packet codec shares (compression.ts chooses one): the method
 * names, the codec interface the channel threads call, the size caps and
 * the checks that make every decoder refuse the same way.
 *
 * A multifd packet carries up to 128 pages (512 KiB, QEMU's packet size).
 * Its header declares how many raw bytes its page data holds; a compressed
 * packet's data is one codec frame that must decompress to exactly that:
 *
 *   packet header (declares raw length N, method)  |  frame of C bytes
 *                                                     └─ decompress ─▶ exactly N bytes, else CompressionError
 *
 * A codec is not shared between threads: each channel thread makes its own
 * (its buffers and native contexts are reused from call to call).
 */
import { PAGE_SIZE } from '../memory/page.js';
import { CompressionError, InvalidArgumentError } from '../errors.js';

/** QEMU's `multifd-compression` values we support (its qpl, uadk and qatzip need hardware), plus lz4. */
export type CompressionMethod = 'none' | 'zlib' | 'zstd' | 'lz4';
export type CodecMethod = Exclude<CompressionMethod, 'none'>;

/** The most page data one packet holds: 128 pages (QEMU's MULTIFD_PACKET_SIZE, 512 KiB). */
export const MAX_PACKET_BYTES = 128 * PAGE_SIZE;

/**
 * The default `maxRatio`: a packet is sent compressed only if its frame is
 * smaller than 90 % of the raw data. Below a 10 % saving the destination's
 * decompression (CPU on the side that is also writing into fresh memory)
 * costs more than the few bytes it saves on the link, and the sender's
 * header then tells the loader to copy the page data as it is.
 */
export const DEFAULT_MAX_RATIO = 0.9;

export interface PacketCodec {
  readonly method: CodecMethod;
  /**
   * Compress `src`; null when the result would not be smaller than
   * `src.length * maxRatio` (default 0.9: send raw). The result may be a
   * view of the codec's own buffer: valid until the next `compress` call.
   */
  compress(src: Uint8Array, maxRatio?: number): Uint8Array | null;
  /**
   * Decompress `src` into exactly `dst` (whose length the packet header
   * declares, at most 128 x 4096). Throws CompressionError naming what was
   * wrong when the data is corrupt, or would produce more or fewer bytes
   * than dst.length (a bomb or a truncation); never allocates more than
   * dst.length for output.
   */
  decompress(src: Uint8Array, dst: Uint8Array): void;
}

/** Programmer mistakes in what a sender passes: a ratio outside (0, 1], a packet over the cap. */
export function checkCompressArgs(method: CodecMethod, src: Uint8Array, maxRatio: number): void {
  if (!(maxRatio > 0 && maxRatio <= 1)) throw new InvalidArgumentError(`${method}: maxRatio ${maxRatio} is not in (0, 1]`);
  if (src.length > MAX_PACKET_BYTES) throw new InvalidArgumentError(`${method}: a packet of ${src.length} bytes is over the ${MAX_PACKET_BYTES}-byte cap`);
}

/** Whether a frame of `size` bytes is worth sending for `rawLength` raw bytes. */
export function pays(size: number, rawLength: number, maxRatio: number): boolean {
  return size < rawLength * maxRatio;
}

/**
 * The declared raw length must be what a packet can hold: checked before
 * anything is decoded (the length comes from the stream, so this is a
 * stream error, not a programmer's).
 */
export function checkDestination(method: CodecMethod, src: Uint8Array, dst: Uint8Array): void {
  if (dst.length === 0 || dst.length > MAX_PACKET_BYTES) {
    throw new CompressionError(`${method}: the packet declares ${dst.length} raw bytes; a packet holds 1 to ${MAX_PACKET_BYTES}`);
  }
  if (src.length === 0) throw new CompressionError(`${method}: the compressed data is empty, the packet declares ${dst.length} raw bytes`);
}

/** A CompressionError for data that declares or yields `got` bytes where the packet declares `want`. */
export function sizeMismatch(method: CodecMethod, what: string, got: number, want: number): CompressionError {
  const hint = got > want ? ' (more than the packet holds: a decompression bomb or a corrupt header)' : ' (fewer: truncated or corrupt)';
  return new CompressionError(`${method}: ${what} ${got} bytes, the packet declares ${want}${hint}`);
}

/** A CompressionError for data a decoder refused, keeping the decoder's own words. */
export function corrupt(method: CodecMethod, what: string, cause: unknown): CompressionError {
  const why = cause instanceof Error ? cause.message : String(cause);
  return new CompressionError(`${method}: ${what}: ${why}`, { cause });
}

/** A Node Buffer over the same bytes as `a` (no copy): what native packages typed for Buffer accept. */
export function asBuffer(a: Uint8Array): Buffer {
  return Buffer.isBuffer(a) ? a : Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}
