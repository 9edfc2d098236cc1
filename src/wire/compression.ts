/**
 * Compression of multifd packets' page data (QEMU's `multifd-compression`,
 * issue 15): which methods exist, which can be used here, and a codec per
 * channel thread.
 *
 *   none  pages travel raw
 *   zlib  node:zlib raw deflate, always available (zlib-codec.ts)
 *   zstd  zstd-napi, an optional native package (zstd-codec.ts)
 *   lz4   lz4-napi, an optional native package (lz4-codec.ts)
 *
 * The codec interface, the size caps and how every decoder refuses are in
 * packet-codec.ts; whether compressing pays on a link is decided in
 * src/migration/compression-choice.ts (`auto`).
 */
import { InvalidArgumentError } from '../errors.js';
import { Lz4Codec, type Lz4Module } from './lz4-codec.js';
import { type NativeLoader, loadNative } from './native-packages.js';
import type { CodecMethod, CompressionMethod, PacketCodec } from './packet-codec.js';
import { ZlibCodec } from './zlib-codec.js';
import { type ZstdBinding, ZstdCodec } from './zstd-codec.js';

export { type CodecMethod, type CompressionMethod, type PacketCodec, DEFAULT_MAX_RATIO, MAX_PACKET_BYTES } from './packet-codec.js';
export type { NativeLoader } from './native-packages.js';

export const COMPRESSION_METHODS: readonly CompressionMethod[] = ['none', 'zlib', 'zstd', 'lz4'];

/**
 * Levels, as QEMU's parameters: `multifd-zlib-level` 0-9 and
 * `multifd-zstd-level` 0-20, both defaulting to 1 (migration/options.c:
 * DEFAULT_MIGRATE_MULTIFD_ZLIB_LEVEL, DEFAULT_MIGRATE_MULTIFD_ZSTD_LEVEL).
 * zstd reads 0 as its own default level, 3.
 */
export const ZLIB_LEVELS = { min: 0, max: 9, default: 1 } as const;
export const ZSTD_LEVELS = { min: 0, max: 20, default: 1 } as const;

export interface CodecOptions {
  readonly zstdLevel?: number;
  readonly zlibLevel?: number;
  /** How native packages are loaded (tests inject a failing one); default `require`. */
  readonly loader?: NativeLoader;
}

/**
 * null when `method` can be used here, else why not, in words naming the
 * package and its install error ("zstd needs the optional package
 * zstd-napi, which did not install: Cannot find module ...").
 */
export function compressionUnavailable(method: CompressionMethod, loader?: NativeLoader): string | null {
  switch (method) {
    case 'none':
    case 'zlib':
      return null;
    case 'zstd':
    case 'lz4':
      return loadNative(method, loader).reason ?? null;
    default:
      return `unknown compression method ${JSON.stringify(method)} (one of ${COMPRESSION_METHODS.join(', ')})`;
  }
}

/** A codec for one channel thread. Throws InvalidArgumentError naming why when `method` is unavailable or a level is out of range. */
export function makeCodec(method: CodecMethod, o: CodecOptions = {}): PacketCodec {
  switch (method) {
    case 'zlib':
      return new ZlibCodec(level('multifd-zlib-level', o.zlibLevel, ZLIB_LEVELS));
    case 'zstd': {
      const zstdLevel = level('multifd-zstd-level', o.zstdLevel, ZSTD_LEVELS);
      return new ZstdCodec(native(method, o.loader) as ZstdBinding, zstdLevel);
    }
    case 'lz4':
      return new Lz4Codec(native(method, o.loader) as Lz4Module);
    default:
      throw new InvalidArgumentError(compressionUnavailable(method) ?? `no codec for compression method ${JSON.stringify(method)}`);
  }
}

function native(method: 'zstd' | 'lz4', loader: NativeLoader | undefined): unknown {
  const { module, reason } = loadNative(method, loader);
  if (reason !== undefined) throw new InvalidArgumentError(`multifd-compression ${method} cannot be used here: ${reason}`);
  return module;
}

function level(name: string, value: number | undefined, range: { min: number; max: number; default: number }): number {
  if (value === undefined) return range.default;
  if (!Number.isInteger(value) || value < range.min || value > range.max) {
    throw new InvalidArgumentError(`${name} ${value} is not an integer from ${range.min} to ${range.max}`);
  }
  return value;
}
