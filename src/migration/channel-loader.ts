/**
 * One channel's loader (several channels, destination), run on the
 * channel's own thread as QEMU's multifd receiving threads: the loader
 * thread, which owns the connection (a socket cannot move between Node
 * threads), hands it the connection's bytes in order (channel-loaders.ts),
 * and this decodes them (FrameDecoder in channel mode), decompresses
 * COMPRESSED packets, applies XBZRLE deltas and ZERO runs, and writes the
 * pages into the guest's shared RAM through a RamLoader attached to the
 * loader thread's blocks and maps (ram-loader.ts), with counts and a
 * digest of its own.
 *
 * What it tells the loader thread (messages.ts): which channel the
 * connection is (CHANNEL, claimed in a shared word per index: a second
 * connection for the same index is a stranger), the bytes loaded after
 * each chunk (acknowledgements and flow control), each SYNC with its
 * figures so far (the barrier; END's totals and VERIFY add them up), the
 * first rule broken (nothing more is loaded then), and the end.
 *
 * A channel's pages are its stripe (docs/wire-format.md "Several
 * channels": the 2 MiB ranges, numbered across the blocks, that are its
 * index modulo the channels), and a page elsewhere is refused before a
 * byte of it is written: no two threads ever write the same page, so each
 * page's digest term and counts live in one thread's figures.
 */
import { CompressionError, WireError } from '../errors.js';
import { PAGE_SIZE } from '../memory/page.js';
import { serializeError } from '../serialized-error.js';
import { makeCodec, type PacketCodec } from '../wire/compression.js';
import { FrameDecoder } from '../wire/frame-decoder.js';
import { RECORD, Rec, walkXbzrleRun } from '../wire/records.js';
import type { ChannelLoaderInit, FromChannelLoader } from './messages.js';
import { RamLoader } from './ram-loader.js';
import { RANGE_PAGES } from './ram-sender.js';

export class ChannelLoader {
  private readonly ram: RamLoader;
  private readonly decoder: FrameDecoder;
  private readonly codec: PacketCodec | null;
  private readonly claims: Int32Array;
  /** Per block: the number (across blocks) of its first 2 MiB range (the stripe's test). */
  private readonly firstRange: number[] = [];
  private index: number | null = null;
  private failed = false;
  /** XBZRLERUN's stripe check, per page (bound once: nothing allocated per page), and the record's block. */
  private stripeBlock = 0;
  private readonly runStripe = (page: number): void => {
    this.checkStripe('XBZRLERUN', this.stripeBlock, page, 1);
  };

  constructor(private readonly init: ChannelLoaderInit, private readonly post: (m: FromChannelLoader) => void, private readonly threadId: number) {
    const h = init.header;
    this.ram = RamLoader.attach(h, init.ram);
    this.codec = h.compression === null ? null : makeCodec(h.compression);
    this.claims = new Int32Array(init.claims);
    let ranges = 0;
    for (const b of h.blocks) {
      this.firstRange.push(ranges);
      ranges += Math.ceil(b.pages / RANGE_PAGES);
    }
    this.decoder = new FrameDecoder({
      pageData: (block, offset, data) => {
        const first = Math.floor(offset / PAGE_SIZE);
        this.checkStripe('PAGES', block, first, Math.floor((offset + data.length - 1) / PAGE_SIZE) - first + 1);
        this.ram.pageData(block, offset, data);
      },
      pageSum: (block, first, count) => this.ram.pageSum(block, first, count),
      record: (type, block, head, pages) => this.onRecord(type, block, head, pages),
    }, { stream: true, channelOf: h, maxRecordBytes: init.maxRecordBytes });
  }

  /** The connection's next bytes: loaded, then acknowledged; after a broken rule, ignored. */
  feed(chunk: Uint8Array): void {
    if (this.failed) return;
    try {
      this.decoder.feed(chunk);
    } catch (err) {
      this.failed = true;
      this.post({ type: 'failed', error: serializeError(err) });
      return;
    }
    this.post({ type: 'loaded', bytes: chunk.length });
  }

  /** The connection ended: say whether between two records. */
  end(): void {
    this.post({ type: 'ended', atBoundary: !this.failed && this.decoder.atBoundary });
  }

  private onRecord(type: Rec, block: number, head: Buffer, pages: number): void {
    switch (type) {
      case Rec.Channel: this.onChannel(head); break;
      case Rec.Pages: this.ram.loadedPages(block, RECORD.Pages.decode(head).first, pages); break;
      case Rec.Xbzrle: {
        const page = head.readUInt32LE(0); // read in place (the decoder checked the head): nothing allocated per page
        this.checkStripe('XBZRLE', block, page, 1);
        this.ram.xbzrlePage(block, page, head, 4, head.length);
        break;
      }
      case Rec.XbzrleRun:
        // Every page in the stripe before any delta is applied (a page elsewhere is refused before a byte of it is written).
        this.stripeBlock = block;
        walkXbzrleRun(head, this.runStripe);
        this.ram.xbzrleRun(block, head);
        break;
      case Rec.Zero: {
        const { first, count } = RECORD.Zero.decode(head);
        this.checkStripe('ZERO', block, first, count);
        this.ram.zeroRun(block, first, count);
        break;
      }
      case Rec.Compressed: this.loadCompressed(block, head); break;
      case Rec.Grow: this.ram.growTo(block, RECORD.Grow.decode(head).pages); break;
      case Rec.Sync: this.post({ type: 'synced', pass: RECORD.Sync.decode(head).pass, figures: this.ram.figures() }); break;
    }
  }

  /** A COMPRESSED packet (its frame checked, its pages in the block and in use: frame-decoder.ts) into its pages' place. */
  private loadCompressed(block: number, head: Buffer): void {
    const { first, count, data } = RECORD.Compressed.decode(head);
    this.checkStripe('COMPRESSED', block, first, count);
    const b = this.ram.blocks[block];
    try {
      this.codec!.decompress(data, b.bytes.subarray(first * PAGE_SIZE, (first + count) * PAGE_SIZE));
    } catch (err) {
      if (!(err instanceof CompressionError)) throw err;
      throw new WireError(`COMPRESSED: pages ${first}..${first + count - 1} of block ${b.name} (${data.length} bytes): ${err.message}`, { cause: err });
    }
    this.ram.loadedPages(block, first, count);
  }

  /** CHANNEL: this stream's, an index in range, and the first connection to claim it (else a stranger: the loader thread drops it). */
  private onChannel(head: Buffer): void {
    const { index, channels, uuid } = RECORD.Channel.decode(head);
    const h = this.init.header;
    if (uuid !== h.uuid) throw new WireError(`CHANNEL: guest ${uuid}, the stream is guest ${h.uuid}`);
    if (channels !== h.channels) throw new WireError(`CHANNEL: ${channels} channels, the header announced ${h.channels}`);
    if (index >= channels) throw new WireError(`CHANNEL: index ${index}, expected 0..${channels - 1}`);
    if (Atomics.compareExchange(this.claims, index, 0, 1) !== 0) throw new WireError(`CHANNEL: channel ${index} connected twice`);
    this.index = index;
    this.post({ type: 'channel', index, threadId: this.threadId });
  }

  /** Pages [first, first+count) of `block` must lie in this channel's stripe (see top). */
  private checkStripe(what: string, block: number, first: number, count: number): void {
    const n = this.init.header.channels;
    const last = first + count - 1;
    for (let r = Math.floor(first / RANGE_PAGES); r <= Math.floor(last / RANGE_PAGES); r++) {
      if ((this.firstRange[block] + r) % n !== this.index) {
        throw new WireError(`${what}: pages ${first}..${last} of block ${this.ram.blocks[block].name} are not all in channel ${this.index}'s stripe ` +
          `(the 2 MiB ranges numbered ${this.index} modulo ${n}: a page always travels on the same channel)`);
      }
    }
  }
}
