/**
 * Compressed frames built by hand, byte by byte, for the codec tests and
 * the fuzz campaign: what no compressor would write but a hostile stream
 * may hold (a zstd frame declaring any size, blocks that expand past what
 * their header says: decompression bombs).
 */
import { deflateRawSync } from 'node:zlib';

/** A zstd block: raw bytes, or one byte repeated `size` times (RLE; at most 128 KiB per block). */
export type ZstdBlock = { readonly rle: number; readonly size: number } | { readonly raw: Uint8Array };

/**
 * A zstd frame (RFC 8878 section 3.1.1): magic, a frame header declaring
 * `declared` content bytes (8-byte field, single segment) or no size at all
 * (null: a window descriptor of 512 KiB instead), then the blocks.
 */
export function zstdFrame(declared: number | null, blocks: readonly ZstdBlock[]): Uint8Array {
  const parts: number[] = [0x28, 0xb5, 0x2f, 0xfd];
  if (declared === null) {
    parts.push(0x00, 0x48); // no content size, not single segment; window 2^(10+9)
  } else {
    parts.push(0xe0); // content size in 8 bytes, single segment
    let v = BigInt(declared);
    for (let i = 0; i < 8; i++, v >>= 8n) parts.push(Number(v & 0xffn));
  }
  blocks.forEach((b, i) => {
    const last = i === blocks.length - 1 ? 1 : 0;
    const size = 'raw' in b ? b.raw.length : b.size;
    const header = last | (('raw' in b ? 0 : 1) << 1) | (size << 3);
    parts.push(header & 0xff, (header >>> 8) & 0xff, (header >>> 16) & 0xff);
    if ('raw' in b) parts.push(...b.raw);
    else parts.push(b.rle);
  });
  return Uint8Array.from(parts);
}

/** RLE blocks of byte `byte` adding up to `total` bytes. */
export function rleBlocks(total: number, byte = 0x61): ZstdBlock[] {
  const blocks: ZstdBlock[] = [];
  for (let left = total; left > 0; left -= 128 * 1024) blocks.push({ rle: byte, size: Math.min(left, 128 * 1024) });
  return blocks;
}

/**
 * An lz4-napi frame: a u32 LE length prefix of `declared`, then an LZ4 block
 * that decodes to exactly `decodesTo` bytes (at least 10): one literal, one
 * match repeating it (offset 1) for all but the last 5 bytes, 5 literals.
 */
export function lz4Frame(declared: number, decodesTo: number): Uint8Array {
  const match = decodesTo - 6;
  const parts: number[] = [declared & 0xff, (declared >>> 8) & 0xff, (declared >>> 16) & 0xff, (declared >>> 24) & 0xff];
  parts.push(0x10 | Math.min(match - 4, 15), 0x61, 0x01, 0x00);
  if (match - 4 >= 15) {
    let extra = match - 4 - 15;
    for (; extra >= 255; extra -= 255) parts.push(255);
    parts.push(extra);
  }
  parts.push(0x50, 0x62, 0x62, 0x62, 0x62, 0x62);
  return Uint8Array.from(parts);
}

/** Raw deflate of `total` zero bytes: about 1 KiB per MiB. */
export function zlibZeros(total: number): Uint8Array {
  return deflateRawSync(new Uint8Array(total), { level: 9 });
}
