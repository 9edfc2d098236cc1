/**
 * QEMU's `zstd` multifd compression, with zstd-napi's low-level binding
 * (native-packages.ts says why that package). Level 1 is QEMU's
 * `multifd-zstd-level` default. Each packet is one zstd frame that declares
 * its content size (zstd's one-shot compression always writes it).
 *
 * Compression writes into one buffer per codec, sized by zstd's bound for
 * the largest packet: nothing is allocated per packet.
 *
 * Decompression checks, in this order, before zstd decodes a byte of
 * content: the frame header parses; it declares a content size, and that
 * size is the packet's declared length (a bomb declares far more: refused
 * here, with both numbers); the frame ends exactly where the data ends (no
 * truncation, no trailing bytes or second frame). Then zstd decodes into
 * `dst` itself, which it cannot write past (its one-shot decoder keeps no
 * window buffer: nothing is allocated whatever the frame declares), and
 * must fill it exactly.
 */
import {
  type PacketCodec, DEFAULT_MAX_RATIO, MAX_PACKET_BYTES, checkCompressArgs, checkDestination, corrupt, pays, sizeMismatch,
} from './packet-codec.js';
import { CompressionError } from '../errors.js';

/** The part of zstd-napi/binding this codec uses (binding.d.ts of zstd-napi 0.0.13). */
export interface ZstdBinding {
  CCtx: new () => { setParameter(param: number, value: number): void; compress2(dst: Uint8Array, src: Uint8Array): number };
  DCtx: new () => { decompress(dst: Uint8Array, src: Uint8Array): number };
  CParameter: { compressionLevel: number };
  compressBound(srcSize: number): number;
  getFrameContentSize(frame: Uint8Array): number | null;
  findFrameCompressedSize(frame: Uint8Array): number;
}

export class ZstdCodec implements PacketCodec {
  readonly method = 'zstd' as const;
  private readonly cctx: InstanceType<ZstdBinding['CCtx']>;
  private readonly dctx: InstanceType<ZstdBinding['DCtx']>;
  private readonly out: Uint8Array;

  constructor(private readonly zstd: ZstdBinding, level: number) {
    this.cctx = new zstd.CCtx();
    this.cctx.setParameter(zstd.CParameter.compressionLevel, level);
    this.dctx = new zstd.DCtx();
    this.out = new Uint8Array(zstd.compressBound(MAX_PACKET_BYTES));
  }

  compress(src: Uint8Array, maxRatio = DEFAULT_MAX_RATIO): Uint8Array | null {
    checkCompressArgs(this.method, src, maxRatio);
    const n = this.cctx.compress2(this.out, src);
    return pays(n, src.length, maxRatio) ? this.out.subarray(0, n) : null;
  }

  decompress(src: Uint8Array, dst: Uint8Array): void {
    checkDestination(this.method, src, dst);
    this.checkFrame(src, dst.length);
    let n: number;
    try {
      n = this.dctx.decompress(dst, src);
    } catch (err) {
      // zstd's words for a frame whose blocks decode past the size the frame declared.
      if (/Destination buffer is too small/.test((err as Error).message)) {
        throw new CompressionError(`zstd: the frame's blocks decode to more than the ${dst.length} bytes it declares (a decompression bomb or a corrupt frame)`, { cause: err });
      }
      throw corrupt(this.method, 'corrupt frame', err);
    }
    if (n !== dst.length) throw sizeMismatch(this.method, 'the frame decodes to', n, dst.length);
  }

  /** The frame's header and extent, checked against the packet before any content is decoded. */
  private checkFrame(src: Uint8Array, want: number): void {
    let declared: number | null;
    let frameLength: number;
    try {
      declared = this.zstd.getFrameContentSize(src);
    } catch (err) {
      throw corrupt(this.method, `not a zstd frame (first bytes ${hex(src)})`, err);
    }
    if (declared === null) throw new CompressionError(`zstd: the frame does not declare its content size (ferry's frames always do; the packet declares ${want} bytes)`);
    if (declared !== want) throw sizeMismatch(this.method, 'the frame declares', declared, want);
    try {
      frameLength = this.zstd.findFrameCompressedSize(src);
    } catch (err) {
      throw corrupt(this.method, `the frame is truncated or corrupt (${src.length} bytes)`, err);
    }
    if (frameLength !== src.length) {
      throw new CompressionError(`zstd: ${src.length - frameLength} bytes follow the frame (${frameLength} of ${src.length} bytes are the frame)`);
    }
  }
}

function hex(a: Uint8Array): string {
  return Buffer.from(a.subarray(0, 4)).toString('hex');
}
