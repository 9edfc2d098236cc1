/**
 * query-migrate's `compression` figures (QEMU's CompressionStats), summed
 * over the channels' reports (channel-compression.ts), with ferry's own:
 *
 *   pages              pages sent compressed
 *   busy               packets sent raw: their frame did not shrink enough,
 *                      or `auto` sent them raw. QEMU counts the times no
 *                      compression thread was free, which cannot happen
 *                      here: each channel compresses its own packets.
 *   busy-rate          busy / packets
 *   compressed-size    bytes of the compressed packets as sent (frames)
 *   compression-rate   their raw bytes / compressed-size (QEMU's ratio)
 *
 * and, as x-ferry-*: the method, the packets, the time in the codec and in
 * probes, and for `auto` how many channels compress now and the first's
 * reason (compression-choice.ts's words with their figures).
 */
import type { CodecMethod } from '../wire/compression.js';
import { type CompressionCounters, emptyCompressionCounters } from './packet-compressor.js';

export interface CompressionStats {
  readonly method: string;
  readonly auto: boolean;
  readonly pages: number;
  readonly busy: number;
  readonly busyRate: number;
  readonly compressedSize: number;
  readonly compressionRate: number;
  readonly packets: number;
  readonly compressedPackets: number;
  readonly busyMs: number;
  readonly probes: number;
  readonly probeMs: number;
  /** Channels compressing every packet now, of `channels` (a fixed method: all). */
  readonly compressingChannels: number;
  readonly channels: number;
  /** auto: why the first channel that decided compresses or not, with its figures; null before any decision or with a fixed method. */
  readonly why: string | null;
}

/** A channel's figures so far (its message to the migration thread), and (auto) whether it compresses now and why. */
export interface CompressionReport {
  readonly type: 'compression';
  readonly index: number;
  readonly counters: CompressionCounters;
  readonly method: CodecMethod;
  readonly compressing: boolean;
  readonly why: string | null;
}

/** The channels' last reports (missing ones count as nothing yet) summed. */
export function sumCompression(method: string, auto: boolean, reports: readonly (CompressionReport | null)[]): CompressionStats {
  const c = emptyCompressionCounters();
  let compressing = 0;
  let why: string | null = null;
  for (const r of reports) {
    if (r === null) continue;
    for (const k of Object.keys(c) as (keyof typeof c)[]) c[k] += r.counters[k];
    if (r.compressing) compressing++;
    if (why === null && r.why !== null) why = `channel ${r.index}: ${r.why}`;
  }
  const busy = c.packets - c.compressedPackets;
  return {
    method, auto, pages: c.pages, busy, busyRate: c.packets === 0 ? 0 : busy / c.packets, compressedSize: c.compressedBytes,
    compressionRate: c.compressedBytes === 0 ? 0 : c.rawBytes / c.compressedBytes, packets: c.packets, compressedPackets: c.compressedPackets,
    busyMs: c.busyNs / 1e6, probes: c.probes, probeMs: c.probeNs / 1e6, compressingChannels: compressing, channels: reports.length, why,
  };
}
