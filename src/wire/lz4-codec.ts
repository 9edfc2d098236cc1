/**
 * lz4 multifd compression (the issue adds it; QEMU has none), with
 * lz4-napi: an LZ4 block prefixed with its raw length (u32 little-endian),
 * lz4_flex's `compress_prepend_size` format:
 *
 *   0      4                      C
 *   +------+----------------------+
 *   | N LE | LZ4 block (sequences)|     decodes to exactly N bytes
 *   +------+----------------------+
 *
 * lz4 has no levels (lz4_flex implements the fast compressor only).
 *
 * The decoder allocates the prefix's N bytes and would decode fewer without
 * complaint, so the prefix is checked against the packet's declared length
 * before the package is called (a bomb declares up to 4 GiB), and the
 * output's length after. lz4-napi returns a fresh Buffer both ways (its API
 * takes no output buffer): one allocation of the packet's size per call,
 * copied into `dst`.
 */
import {
  type PacketCodec, DEFAULT_MAX_RATIO, asBuffer, checkCompressArgs, checkDestination, corrupt, pays, sizeMismatch,
} from './packet-codec.js';
import { CompressionError } from '../errors.js';

/** The part of lz4-napi this codec uses (index.d.ts of lz4-napi 2.10). */
export interface Lz4Module {
  compressSync(data: Buffer): Buffer;
  uncompressSync(data: Buffer): Buffer;
}

/** The raw-length prefix, and the smallest block after it (one token byte). */
const PREFIX = 4;
const MIN_FRAME = PREFIX + 1;

export class Lz4Codec implements PacketCodec {
  readonly method = 'lz4' as const;

  constructor(private readonly lz4: Lz4Module) {}

  compress(src: Uint8Array, maxRatio = DEFAULT_MAX_RATIO): Uint8Array | null {
    checkCompressArgs(this.method, src, maxRatio);
    const out = this.lz4.compressSync(asBuffer(src));
    return pays(out.length, src.length, maxRatio) ? out : null;
  }

  decompress(src: Uint8Array, dst: Uint8Array): void {
    checkDestination(this.method, src, dst);
    if (src.length < MIN_FRAME) throw new CompressionError(`lz4: ${src.length} bytes of data, fewer than a length prefix and one token (${MIN_FRAME})`);
    const declared = new DataView(src.buffer, src.byteOffset, PREFIX).getUint32(0, true);
    if (declared !== dst.length) throw sizeMismatch(this.method, 'the block declares', declared, dst.length);
    let out: Buffer;
    try {
      out = this.lz4.uncompressSync(asBuffer(src));
    } catch (err) {
      throw corrupt(this.method, 'corrupt or truncated block', err);
    }
    if (out.length !== dst.length) throw sizeMismatch(this.method, 'the block decodes to', out.length, dst.length);
    dst.set(out);
  }
}
