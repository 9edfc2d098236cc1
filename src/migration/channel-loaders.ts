/**
 * The destination's side of several channels (header flag MULTIFD): the
 * extra connections of one stream, each opened with CHANNEL, each decoded
 * by its own FrameDecoder (channel mode: only PASS, GROW, PAGES, ZERO,
 * COMPRESSED and SYNC) straight into guest RAM. A COMPRESSED packet
 * (header flag COMPRESSION) is decompressed by the header's codec straight
 * into its pages' place, and must fill them exactly (packet-codec.ts); a
 * codec this side cannot decode is refused at the header, before any page. A channel's pages are its stripe of RAM
 * (ram-sender.ts), so no two channels write the same page, and a page
 * sent in two passes comes twice on the same connection, in pass order.
 *
 * The barrier: the main connection's SYNC n says every channel has sent
 * pass n; `reached(n)` resolves once every channel's own SYNC n has been
 * loaded here. The loader waits for it before END's totals and digest are
 * checked, so LOADED (and GO) come only after every page landed.
 *
 * A channel that breaks a rule, fails, or closes inside a record fails the
 * migration; one that closes cleanly is done (a source closes each after
 * its last pass), and a wait for a pass it never synced fails, naming it.
 *
 * Deviation from QEMU's multifd, where each channel has a receiving
 * thread: here the channels are read and decoded on the loader thread (a
 * socket cannot move between Node threads). The destination's copy into
 * RAM is therefore one thread's; the source's scan and send are parallel.
 */
import type net from 'node:net';
import { CompressionError, WireError } from '../errors.js';
import { PAGE_SIZE } from '../memory/page.js';
import { compressionUnavailable, makeCodec, type PacketCodec } from '../wire/compression.js';
import type { StreamHeader } from '../wire/format.js';
import { refused } from '../wire/refusals.js';
import { FrameDecoder } from '../wire/frame-decoder.js';
import { RECORD, Rec } from '../wire/records.js';
import type { RamLoader } from './ram-loader.js';
import { Signal } from './waiter.js';

interface Channel {
  readonly socket: net.Socket;
  readonly decoder: FrameDecoder;
  /** Its CHANNEL index, once read. */
  index: number | null;
  /** The pass of its last SYNC (0: none). */
  synced: number;
  closed: boolean;
}

export interface ChannelLoadersHost {
  /** A channel failed: the migration fails with this. */
  fail(err: Error): void;
  /** Every channel has said which it is: stop listening (a later connection can only be a stranger). */
  allConnected(): void;
  /** `length` bytes arrived on a channel and were loaded (the idle watch, the acknowledgements). */
  onBytes(length: number): void;
}

export class ChannelLoaders {
  private readonly channels: Channel[] = [];
  private readonly byIndex: (Channel | undefined)[];
  private changed = new Signal();
  private failure: Error | null = null;
  /** The header's codec (flag COMPRESSION); null without. One for every channel: they are decoded on this one thread. */
  private readonly codec: PacketCodec | null;

  constructor(
    private readonly header: StreamHeader,
    private readonly ram: RamLoader,
    private readonly host: ChannelLoadersHost,
    private readonly maxRecordBytes: number,
  ) {
    this.byIndex = new Array(header.channels).fill(undefined);
    this.codec = header.compression === null ? null : codecFor(header.compression);
  }

  /** Channels that said which they are (CHANNEL). */
  get connected(): number {
    return this.byIndex.filter((c) => c !== undefined).length;
  }

  /** Bytes decoded on every channel. */
  get bytes(): number {
    return this.channels.reduce((n, c) => n + c.decoder.bytes, 0);
  }

  /** A connection that opened with a CHANNEL record (socket.ts routes it here). */
  add(socket: net.Socket): void {
    if (this.failure !== null) {
      socket.destroy();
      return;
    }
    const channel: Channel = { socket, decoder: this.decoder(() => channel), index: null, synced: 0, closed: false };
    this.channels.push(channel);
    socket.on('data', (chunk: Buffer) => {
      if (this.failure !== null) return;
      try {
        channel.decoder.feed(chunk);
      } catch (err) {
        // A connection that has not proved itself one of this stream's channels (its CHANNEL) is a stranger: dropped alone.
        if (channel.index === null) this.drop(channel);
        else this.fail(new WireError(`${this.name(channel)}: ${(err as Error).message}`, { cause: err }));
        return;
      }
      this.host.onBytes(chunk.length);
    });
    socket.on('error', (err) => {
      if (channel.index !== null) this.fail(new WireError(`${this.name(channel)}: the connection failed: ${err.message}`, { cause: err }));
    });
    socket.on('close', () => {
      channel.closed = true;
      if (channel.index === null) this.drop(channel);
      else if (!channel.decoder.atBoundary) this.fail(new WireError(`${this.name(channel)}: the source closed it inside a record`));
      this.changed.resolve();
    });
  }

  /** Resolves when every channel has loaded its SYNC of `pass` (the barrier); rejects if one cannot. */
  async reached(pass: number): Promise<void> {
    for (;;) {
      if (this.failure !== null) throw this.failure;
      const behind = this.byIndex.findIndex((c) => c === undefined || c.synced < pass);
      if (behind < 0) return;
      const c = this.byIndex[behind];
      if (c?.closed === true) throw new WireError(`channel ${behind}: closed after SYNC ${c.synced}, and the main connection's SYNC says pass ${pass} was sent on it`);
      this.changed = new Signal();
      await this.changed.promise;
    }
  }

  /** The migration ended, either way: read nothing more, and close every channel after `lingerMs`. */
  close(lingerMs: number): void {
    this.failure ??= new WireError('the migration ended');
    for (const c of this.channels) setTimeout(() => c.socket.destroy(), lingerMs).unref();
    this.changed.resolve();
  }

  /** A connection that never said it is one of the channels: closed, forgotten, the migration untouched. */
  private drop(c: Channel): void {
    c.socket.destroy();
    const i = this.channels.indexOf(c);
    if (i >= 0) this.channels.splice(i, 1);
  }

  private name(c: Channel): string {
    return c.index === null ? 'a channel' : `channel ${c.index}`;
  }

  private fail(err: Error): void {
    if (this.failure !== null) return;
    this.failure = err;
    this.host.fail(err);
    this.changed.resolve();
  }

  private decoder(channel: () => Channel): FrameDecoder {
    return new FrameDecoder({
      pageData: (block, offset, data) => this.ram.pageData(block, offset, data),
      pageSum: (block, first, count) => this.ram.pageSum(block, first, count),
      record: (type, block, head, pages) => this.onRecord(channel(), type, block, head, pages),
    }, { stream: true, channelOf: this.header, maxRecordBytes: this.maxRecordBytes });
  }

  private onRecord(c: Channel, type: Rec, block: number, head: Buffer, pages: number): void {
    switch (type) {
      case Rec.Channel: this.onChannel(c, head); break;
      case Rec.Pages: this.ram.loadedPages(block, RECORD.Pages.decode(head).first, pages); break;
      case Rec.Xbzrle: {
        const { page, delta } = RECORD.Xbzrle.decode(head);
        this.ram.xbzrlePage(block, page, delta);
        break;
      }
      case Rec.Zero: {
        const { first, count } = RECORD.Zero.decode(head);
        this.ram.zeroRun(block, first, count);
        break;
      }
      case Rec.Compressed: this.loadCompressed(block, head); break;
      case Rec.Grow: {
        // Every channel announces the same sizes, but not at the same moment: a block only grows.
        const grown = RECORD.Grow.decode(head).pages;
        if (grown > this.ram.blocks[block].visiblePages()) this.ram.grow(block, grown);
        break;
      }
      case Rec.Sync:
        c.synced = RECORD.Sync.decode(head).pass;
        this.changed.resolve();
        break;
    }
  }

  /** A COMPRESSED packet (its frame checked, its pages in the block and in use: frame-decoder.ts) into its pages' place. */
  private loadCompressed(block: number, head: Buffer): void {
    const { first, count, data } = RECORD.Compressed.decode(head);
    const b = this.ram.blocks[block];
    try {
      this.codec!.decompress(data, b.bytes.subarray(first * PAGE_SIZE, (first + count) * PAGE_SIZE));
    } catch (err) {
      if (!(err instanceof CompressionError)) throw err;
      throw new WireError(`COMPRESSED: pages ${first}..${first + count - 1} of block ${b.name} (${data.length} bytes): ${err.message}`, { cause: err });
    }
    this.ram.loadedPages(block, first, count);
  }

  private onChannel(c: Channel, head: Buffer): void {
    const { index, channels, uuid } = RECORD.Channel.decode(head);
    const h = this.header;
    if (uuid !== h.uuid) throw new WireError(`CHANNEL: guest ${uuid}, the stream is guest ${h.uuid}`); // a stranger: dropped (above)
    if (channels !== h.channels) throw new WireError(`CHANNEL: ${channels} channels, the header announced ${h.channels}`);
    if (index >= channels) throw new WireError(`CHANNEL: index ${index}, expected 0..${channels - 1}`);
    if (this.byIndex[index] !== undefined) throw new WireError(`CHANNEL: channel ${index} connected twice`);
    c.index = index;
    this.byIndex[index] = c;
    if (this.connected === channels) this.host.allConnected();
    this.changed.resolve();
  }
}

/** The codec of the header's method, or a refusal before any page: this side cannot decode it. */
function codecFor(method: NonNullable<StreamHeader['compression']>): PacketCodec {
  const why = compressionUnavailable(method);
  if (why !== null) throw refused('compression', `header: the stream's channels compress with ${method}, which this destination cannot decode: ${why}`);
  return makeCodec(method);
}
