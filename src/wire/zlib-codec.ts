/**
 * QEMU's `zlib` multifd compression, with node:zlib: each packet is one raw
 * deflate stream (no zlib header or checksum: the frame checks and TLS
 * cover the data; QEMU keeps one deflate stream per channel across packets,
 * ferry compresses each packet alone so a loader needs no state from the
 * packets before). Level 1 is QEMU's `multifd-zlib-level` default.
 *
 * Decompression is capped with `maxOutputLength` = the packet's declared
 * length: node:zlib stops and throws once the output would pass it (it
 * grows its output in 16 KiB chunks up to that cap), so a bomb allocates
 * at most the cap. Bytes after the deflate stream's end are refused, from
 * the count of input the inflater consumed.
 */
import { deflateRawSync, inflateRawSync, type Inflate } from 'node:zlib';
import {
  type PacketCodec, DEFAULT_MAX_RATIO, checkCompressArgs, checkDestination, corrupt, pays, sizeMismatch,
} from './packet-codec.js';
import { CompressionError } from '../errors.js';

export class ZlibCodec implements PacketCodec {
  readonly method = 'zlib' as const;

  constructor(private readonly level: number) {}

  compress(src: Uint8Array, maxRatio = DEFAULT_MAX_RATIO): Uint8Array | null {
    checkCompressArgs(this.method, src, maxRatio);
    // node:zlib's synchronous API allocates its output per call; it offers no output buffer to reuse.
    const out = deflateRawSync(src, { level: this.level });
    return pays(out.length, src.length, maxRatio) ? out : null;
  }

  decompress(src: Uint8Array, dst: Uint8Array): void {
    checkDestination(this.method, src, dst);
    let result: { buffer: Buffer; engine: Inflate };
    try {
      // `info: true` also returns the engine, whose bytesWritten is the input it consumed.
      result = inflateRawSync(src, { maxOutputLength: dst.length, info: true } as object) as unknown as typeof result;
    } catch (err) {
      if ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') {
        throw new CompressionError(`zlib: the data inflates to more than the ${dst.length} bytes the packet declares (a decompression bomb or a corrupt stream)`, { cause: err });
      }
      throw corrupt(this.method, 'corrupt or truncated deflate data', err);
    }
    const { buffer, engine } = result;
    if (buffer.length !== dst.length) throw sizeMismatch(this.method, 'the data inflates to', buffer.length, dst.length);
    if (engine.bytesWritten !== src.length) {
      throw new CompressionError(`zlib: ${src.length - engine.bytesWritten} bytes follow the end of the deflate stream (${engine.bytesWritten} of ${src.length} used)`);
    }
    dst.set(buffer);
  }
}
