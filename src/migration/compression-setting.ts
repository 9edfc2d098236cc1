/**
 * `multifd-compression` at `migrate`: which codec the channels use, or a
 * refusal. A fixed method whose optional package is not installed is
 * refused with the package's words (never a silent fallback to none);
 * `auto` picks among what is installed and says which and why:
 *
 *   zstd first (at level 1, QEMU's default, it compresses text-like pages
 *   about as well as zlib at several times its speed), then lz4 (faster,
 *   a poorer ratio), then zlib (always there: node:zlib).
 *
 * Compression applies with the capability multifd only, as in QEMU, where
 * multifd-compression without multifd does nothing.
 */
import { InvalidArgumentError } from '../errors.js';
import { type CodecMethod, type NativeLoader, compressionUnavailable } from '../wire/compression.js';
import type { ChannelCompressionInit } from './messages.js';
import { MULTIFD_COMPRESSION_CHOICES, type MigrationParameters } from './parameters.js';

/** The order `auto` tries the codecs in (see top). */
export const AUTO_ORDER: readonly CodecMethod[] = ['zstd', 'lz4', 'zlib'];

export function compressionSetting(parameters: MigrationParameters, multifd: boolean, loader?: NativeLoader): ChannelCompressionInit | null {
  const choice = MULTIFD_COMPRESSION_CHOICES[parameters.multifdCompression];
  if (!multifd || choice === 'none') return null;
  if (choice !== 'auto') {
    const why = compressionUnavailable(choice, loader);
    if (why !== null) {
      throw new InvalidArgumentError(`multifd-compression ${choice} cannot be used here: ${why} (install it, or choose another of ${MULTIFD_COMPRESSION_CHOICES.join(', ')})`);
    }
    return { method: choice, auto: false };
  }
  const skipped: string[] = [];
  for (const method of AUTO_ORDER) {
    const why = compressionUnavailable(method, loader);
    if (why === null) {
      const pick = `auto compresses with ${method} when compressing pays${skipped.length === 0 ? '' : ` (${skipped.join('; ')})`}`;
      return { method, auto: true, why: pick };
    }
    skipped.push(why);
  }
  throw new InvalidArgumentError('multifd-compression auto: no codec can be used here'); // zlib is always there: a programmer's mistake
}
