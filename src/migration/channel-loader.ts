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
 * The loader thread proved the connection is channel `init.index` before
 * it started this thread (channel-proof.ts: its CHANNEL, the index
 * claimed); this decodes the stream from its first byte, that CHANNEL too.
 *
 * What it tells the loader thread (messages.ts): its thread (on its
 * CHANNEL), the bytes loaded after
 * each chunk (acknowledgements and flow control), each SYNC with its
 * figures so far (the barrier; END's totals and VERIFY add them up), the
 * first rule broken (nothing more is loaded then), the end, and, asked at
 * END's barrier (`finish`), its final figures: after them it applies
 * nothing more, so END's totals and VERIFY cover every page it wrote.
 *
 * A channel's records for a pass all come before its SYNC for that pass
 * (QEMU's multifd: a channel's packets precede its sync), so at END,
 * after its SYNC of the last pass, it has loaded nothing more: a page
 * loaded after its last SYNC belongs to no pass END checks, and `finish`
 * reports it as a broken rule naming the record (the loader thread fails
 * the migration naming the channel) instead of letting it go unverified.
 * The loader thread's stop word (channel-loader-words.ts) is checked
 * before each record is applied: after the migration ended, a thread
 * still decoding queued chunks writes nothing.
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
import { RECORD, Rec, recordRow, walkXbzrleRun } from '../wire/records.js';
import { ChannelLoaderWords } from './channel-loader-words.js';
import type { ChannelLoaderInit, FromChannelLoader } from './messages.js';
import { RamLoader } from './ram-loader.js';
import { RANGE_PAGES } from './ram-sender.js';

export class ChannelLoader {
  private readonly ram: RamLoader;
  private readonly decoder: FrameDecoder;
  private readonly codec: PacketCodec | null;
  private readonly words: ChannelLoaderWords;
  /** Per block: the number (across blocks) of its first 2 MiB range (the stripe's test). */
  private readonly firstRange: number[] = [];
  private index: number | null = null;
  private failed = false;
  /** Asked for its final figures (END): nothing more is applied. */
  private finished = false;
  /** The pass of its last SYNC, and the first record that wrote pages after it (null: none). */
  private synced = 0;
  private afterSync: string | null = null;
  /** XBZRLERUN's stripe check, per page (bound once: nothing allocated per page), and the record's block. */
  private stripeBlock = 0;
  private readonly runStripe = (page: number): void => {
    this.checkStripe('XBZRLERUN', this.stripeBlock, page, 1);
  };

  constructor(private readonly init: ChannelLoaderInit, private readonly post: (m: FromChannelLoader) => void, private readonly threadId: number) {
    const h = init.header;
    this.ram = RamLoader.attach(h, init.ram);
    this.codec = h.compression === null ? null : makeCodec(h.compression);
    this.words = new ChannelLoaderWords(init.words);
    let ranges = 0;
    for (const b of h.blocks) {
      this.firstRange.push(ranges);
      ranges += Math.ceil(b.pages / RANGE_PAGES);
    }
    this.decoder = new FrameDecoder({
      pageData: (block, offset, data) => {
        const first = Math.floor(offset / PAGE_SIZE);
        this.applying('PAGES');
        this.checkStripe('PAGES', block, first, Math.floor((offset + data.length - 1) / PAGE_SIZE) - first + 1);
        this.ram.pageData(block, offset, data);
      },
      pageSum: (block, first, count) => this.ram.pageSum(block, first, count),
      record: (type, block, head, pages) => this.onRecord(type, block, head, pages),
    }, { stream: true, channelOf: h, maxRecordBytes: init.maxRecordBytes });
  }

  /** The connection's next bytes: loaded, then acknowledged; after a broken rule, ignored. */
  feed(chunk: Uint8Array): void {
    if (this.failed || this.finished) return;
    try {
      this.decoder.feed(chunk);
    } catch (err) {
      this.failed = true;
      if (!this.words.stopped) this.post({ type: 'failed', error: serializeError(err) }); // stopped: the migration ended, not this channel
      return;
    }
    this.post({ type: 'loaded', bytes: chunk.length });
  }

  /** The connection ended: say whether between two records. */
  end(): void {
    this.post({ type: 'ended', atBoundary: !this.failed && this.decoder.atBoundary });
  }

  /**
   * END's barrier passed (every channel loaded its SYNC of the last pass):
   * apply nothing more, and say the final figures, and what was loaded
   * after the last SYNC (a broken rule: see top).
   */
  finish(): void {
    this.finished = true;
    const unsynced = this.afterSync === null ? null : `${this.afterSync} after its SYNC ${this.synced}, the last pass (a channel's records for a pass all come before its SYNC for it)`;
    this.post({ type: 'final', figures: this.ram.figures(), unsynced });
  }

  /** Before each record that writes RAM: not after the migration ended; and noted if after a SYNC. */
  private applying(what: string): void {
    if (this.words.stopped) throw STOPPED;
    if (this.synced > 0) this.afterSync ??= what;
  }

  private onRecord(type: Rec, block: number, head: Buffer, pages: number): void {
    if (this.words.stopped) throw STOPPED;
    if (type === Rec.Xbzrle || type === Rec.XbzrleRun || type === Rec.Zero || type === Rec.Compressed || type === Rec.Grow) this.applying(recordRow(type)!.name);
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
      case Rec.Sync:
        this.synced = RECORD.Sync.decode(head).pass;
        this.afterSync = null;
        this.post({ type: 'synced', pass: this.synced, figures: this.ram.figures() });
        break;
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

  /** CHANNEL: the one the loader thread proved (channel-proof.ts checked the rest). */
  private onChannel(head: Buffer): void {
    const { index } = RECORD.Channel.decode(head);
    if (index !== this.init.index) throw new WireError(`CHANNEL: index ${index}, the loader thread proved this connection channel ${this.init.index}`);
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

/** Thrown out of the decoder when the stop word is set (the decoder may wrap it): not a failure, the migration already ended. */
const STOPPED = new Error('the migration ended');
