/**
 * A channel thread's compression (several channels with
 * `multifd-compression`): its codec and PacketCompressor, made at connect,
 * and for `auto` the windows of the channel's sending the rule decides on.
 *
 * A window is WINDOW_MS of a pass (the time between passes, waiting at the
 * barrier, is no sending and is not measured): the bytes the connection
 * took in it, whether the channel was held back by its link or its rate in
 * it, and its payload per busy second. At each window's end, and at the
 * end of each pass, the figures go to the migration thread (query-migrate).
 */
import { availableParallelism } from 'node:os';
import { PAGE_SIZE } from '../memory/page.js';
import { makeCodec } from '../wire/compression.js';
import type { BlockTotals } from '../wire/format.js';
import type { CompressionReport } from './compression-stats.js';
import type { ChannelCompressionInit } from './messages.js';
import type { MigrationParameters } from './parameters.js';
import { PacketCompressor } from './packet-compressor.js';

/** How long one window of `auto`'s measurements lasts, ms: long enough to hold several packets and a wait for the link, short enough to follow a guest's data changing. */
export const WINDOW_MS = 200;


/** What the channel reads at each look: cumulative figures of its own. */
export interface ChannelLook {
  readonly nowNs: number;
  readonly bytesOut: number;
  readonly heldBack: number;
  /** Pages sent with data so far (payload, whether compressed or not). */
  readonly dataPages: number;
  readonly busyNs: number;
}

export class ChannelCompression {
  readonly compressor: PacketCompressor;
  private start: ChannelLook | null = null;

  constructor(init: ChannelCompressionInit, parameters: MigrationParameters, channels: number, clock: () => number) {
    const codec = makeCodec(init.method, { zstdLevel: parameters.multifdZstdLevel, zlibLevel: parameters.multifdZlibLevel });
    this.compressor = new PacketCompressor(codec, init.auto, clock, Math.min(1, availableParallelism() / channels));
  }

  /** A pass starts: a new window (the wait at the barrier before it is not measured). */
  startPass(look: ChannelLook): void {
    this.start = look;
  }

  /** After a step: true when a window ended (auto decided again; the figures are due). */
  tick(look: ChannelLook): boolean {
    const s = this.start;
    if (s === null || look.nowNs - s.nowNs < WINDOW_MS * 1e6) return false;
    const seconds = (look.nowNs - s.nowNs) / 1e9;
    const busy = (look.busyNs - s.busyNs) / 1e9;
    const payload = (look.dataPages - s.dataPages) * PAGE_SIZE;
    this.compressor.decide({
      bytesPerSec: (look.bytesOut - s.bytesOut) / seconds,
      linkBound: look.heldBack > s.heldBack,
      sendBytesPerSec: busy > 0 ? payload / busy : 0,
    });
    this.start = look;
    return true;
  }

  /** The figures for the migration thread. */
  report(index: number): CompressionReport {
    const c = this.compressor;
    return { type: 'compression', index, counters: { ...c.counters }, method: c.method, compressing: c.compressing, why: c.choice?.why ?? null };
  }
}

/** Pages sent with data, over every block's totals. */
export function dataPages(totals: readonly BlockTotals[]): number {
  let n = 0;
  for (const t of totals) n += t.normal;
  return n;
}
