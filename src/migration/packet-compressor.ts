/**
 * One channel's compression of its packets (`multifd-compression`): the
 * RamSender offers each run of pages with data (a packet, at most 128
 * pages: QEMU's 512 KiB) once it is copied, and gets back the frame to send
 * as COMPRESSED, or null to send the packet raw as PAGES.
 *
 * - A fixed method (zlib, zstd, lz4) compresses every packet; a packet
 *   whose frame is not below 90 % of its size (packet-codec.ts
 *   DEFAULT_MAX_RATIO) goes raw: adaptive, packet by packet.
 * - `auto` starts raw and lets compression-choice.ts decide, once per
 *   window of the channel's sending (`decide`), from what this channel
 *   measured: its link rate and whether it waited for the link (the
 *   caller's), and the compression speed and ratio of the packets it
 *   compressed in the window. While raw it compresses one packet in N as a
 *   probe (rule 2); a probe that shrank enough is sent compressed.
 *
 * Each channel decides for itself, over its own share of the link: with
 * the link split evenly among T channels, min(L/T x r, c) against L/T is
 * the rule's min(L x r, T x c) against L. When the channels outnumber the
 * cores, a channel's speed is counted at its share of a core
 * (`cpuShare`).
 *
 * Speeds are measured in wall time around each codec call: Node 20 has no
 * per-thread CPU clock (process.threadCpuUsage is Node 23). On a loaded
 * machine that reads a codec slower than it is, which only makes `auto`
 * compress less.
 */
import { PAGE_SIZE } from '../memory/page.js';
import type { PacketCodec } from '../wire/compression.js';
import { MAX_PACKET_PAGES } from '../wire/records.js';
import { type CompressionChoice, chooseCompression, probeEvery } from './compression-choice.js';
import type { PacketPacker } from './ram-sender.js';

/** What a channel counts of its packets (summed over channels for query-migrate). */
export interface CompressionCounters {
  /** Packets of pages with data (each went as COMPRESSED or PAGES). */
  packets: number;
  /** Of those, sent compressed; and the pages in them. */
  compressedPackets: number;
  pages: number;
  /** The compressed packets' pages as raw bytes, and as sent (frames only). */
  rawBytes: number;
  compressedBytes: number;
  /** Packets compressed whose frame did not shrink enough: sent raw after all. */
  notShrunk: number;
  /** Time in the codec, ns; and the probes' share of it (auto, while raw). */
  busyNs: number;
  probes: number;
  probeNs: number;
}

export function emptyCompressionCounters(): CompressionCounters {
  return { packets: 0, compressedPackets: 0, pages: 0, rawBytes: 0, compressedBytes: 0, notShrunk: 0, busyNs: 0, probes: 0, probeNs: 0 };
}

/** One window of the channel's sending, as the caller measured it. */
export interface LinkWindow {
  /** Bytes/s the channel's connection carried (as sent). */
  readonly bytesPerSec: number;
  /** Whether the channel waited for its link (or its share of max-bandwidth) in the window. */
  readonly linkBound: boolean;
  /** The channel's own speed sending raw: payload bytes per second of its busy time; 0 when not measured. */
  readonly sendBytesPerSec: number;
}

export class PacketCompressor implements PacketPacker {
  readonly maxPages = MAX_PACKET_PAGES;
  readonly counters = emptyCompressionCounters();
  /** Whether every packet is compressed now (a fixed method: always; auto: the rule's decision). */
  compressing: boolean;
  /** auto: the last decision and why (null before the first). */
  choice: CompressionChoice | null = null;
  private probeInterval = 1;
  private sinceProbe = 0;
  /** The window's samples: raw bytes compressed, bytes they went as (raw when not shrunk), ns in the codec. */
  private readonly sample = { raw: 0, sent: 0, ns: 0 };
  private speed = 0;
  private ratio = 0;
  /** The last link-bound rate (auto, while compressing: see compression-choice.ts rule 1). */
  private linkBoundRate = 0;

  constructor(
    private readonly codec: PacketCodec,
    readonly auto: boolean,
    private readonly clock: () => number,
    /** The share of a core one channel can count on: min(1, cores / channels). */
    private readonly cpuShare = 1,
  ) {
    this.compressing = !auto;
  }

  get method(): PacketCodec['method'] {
    return this.codec.method;
  }

  pack(raw: Uint8Array): Uint8Array | null {
    const c = this.counters;
    c.packets++;
    const probe = !this.compressing && ++this.sinceProbe >= this.probeInterval;
    if (!this.compressing && !probe) return null;
    const start = this.clock();
    const frame = this.codec.compress(raw);
    const ns = Math.max(1, this.clock() - start);
    c.busyNs += ns;
    this.sample.raw += raw.length;
    this.sample.sent += frame?.length ?? raw.length;
    this.sample.ns += ns;
    if (probe) this.afterProbe(ns);
    if (frame === null) c.notShrunk++;
    else {
      c.compressedPackets++;
      c.pages += raw.length / PAGE_SIZE;
      c.rawBytes += raw.length;
      c.compressedBytes += frame.length;
    }
    return frame;
  }

  private afterProbe(ns: number): void {
    this.counters.probes++;
    this.counters.probeNs += ns;
    this.sinceProbe = 0;
    // The first probe gives a speed: probe at rule 2's interval from now on, not every packet until the window ends.
    if (this.speed === 0) {
      this.speed = this.sample.raw / (this.sample.ns / 1e9);
      this.probeInterval = probeEvery({ sendBytesPerCpuSec: 0, compressBytesPerCpuSec: this.speed }).everyPackets;
    }
  }

  /** auto: decide again from the window just measured (rule 1), and how often to probe (rule 2). */
  decide(w: LinkWindow): void {
    if (!this.auto) return;
    const s = this.sample;
    if (s.ns > 0) {
      this.speed = s.raw / (s.ns / 1e9);
      this.ratio = s.raw / s.sent;
    }
    s.raw = s.sent = s.ns = 0;
    let linkBytesPerSec = w.bytesPerSec;
    let linkBound = w.linkBound;
    if (linkBound) this.linkBoundRate = linkBytesPerSec;
    else if (this.compressing && this.linkBoundRate > 0) {
      // Compressing senders that keep up no longer wait for the link: the rule reads the last link-bound rate.
      linkBytesPerSec = this.linkBoundRate;
      linkBound = true;
    }
    this.choice = chooseCompression({
      linkBytesPerSec, linkBound, compressBytesPerCpuSec: this.speed * this.cpuShare, ratio: this.ratio, threads: 1, compressing: this.compressing,
    });
    this.compressing = this.choice.compress;
    this.probeInterval = probeEvery({ sendBytesPerCpuSec: w.sendBytesPerSec, compressBytesPerCpuSec: this.speed }).everyPackets;
  }
}
