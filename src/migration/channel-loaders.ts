/**
 * The destination's side of several channels (header flag MULTIFD): the
 * extra connections of one stream, each opened with CHANNEL, each loaded
 * on a thread of its own, as QEMU's multifd receiving threads
 * (channel-loader.ts: its FrameDecoder in channel mode, only PASS, GROW,
 * PAGES, ZERO, COMPRESSED, XBZRLE, XBZRLERUN and SYNC, straight into the shared guest
 * RAM). A COMPRESSED packet (header flag COMPRESSION) is decompressed by
 * the header's codec straight into its pages' place, and must fill them
 * exactly (packet-codec.ts); a codec this side cannot decode is refused at
 * the header, before any page. A channel's pages are its stripe of RAM
 * (ram-sender.ts), so no two channels (no two threads) write the same
 * page, and a page sent in two passes comes twice on the same connection,
 * in pass order.
 *
 * The sockets stay here, on the loader thread (a socket cannot move
 * between Node threads): each chunk goes to its channel's thread in order
 * (channel-loader-thread.ts: transferred, not copied, when it owns its
 * buffer), and the thread acknowledges the bytes it loaded. Flow control:
 * a channel whose thread holds MAX_HELD_BYTES or more not yet loaded has
 * its socket paused until the thread catches up, so what waits in memory
 * is bounded (at most the bound plus one chunk per channel) and TCP holds
 * the source back.
 *
 * The barrier: the main connection's SYNC n says every channel has sent
 * pass n; `reached(n)` resolves once every channel's own SYNC n has been
 * loaded on its thread. The loader waits for it before END's totals and
 * digest are checked (each channel's figures, reported with its SYNC,
 * added to the loader thread's: ram-loader.ts), so LOADED (and GO) come
 * only after every page landed.
 *
 * A channel that breaks a rule, fails, or closes inside a record fails the
 * migration, naming the channel; one that closes cleanly is done (a source
 * closes each after its last pass), and a wait for a pass it never synced
 * fails, naming it. A connection that never proved itself one of the
 * channels (its CHANNEL) is a stranger: dropped alone, its thread ended.
 * Every thread ends with the migration, whatever happened (`close`).
 */
import type net from 'node:net';
import { MigrationError, WireError } from '../errors.js';
import { rebuildError } from '../serialized-error.js';
import { compressionUnavailable } from '../wire/compression.js';
import type { StreamHeader } from '../wire/format.js';
import { refused } from '../wire/refusals.js';
import type { ChannelThreadFigures, FromChannelLoader } from './messages.js';
import type { RamLoader } from './ram-loader.js';
import { workerChannelThread, type ChannelThread, type SpawnChannelThread } from './channel-loader-thread.js';
import { Signal } from './waiter.js';

/** Bytes a channel's thread may hold not yet loaded before its socket is paused: a few 512 KiB packets, so the thread never waits for the socket. */
export const MAX_HELD_BYTES = 4 * 1024 * 1024;

interface Channel {
  readonly socket: net.Socket;
  readonly thread: ChannelThread;
  /** Its CHANNEL index, once its thread read and claimed it. */
  index: number | null;
  threadId: number;
  /** The pass of its last SYNC loaded (0: none). */
  synced: number;
  /** Its thread loaded every byte before the connection ended. */
  closed: boolean;
  /** Bytes handed to its thread, not yet loaded; and loaded. */
  held: number;
  loaded: number;
  paused: boolean;
  /** Pages its thread loaded (its figures at its last SYNC). */
  pages: number;
  /** The connection's error, if it failed before its thread said which channel it is. */
  error: Error | null;
  /** Its thread is gone. */
  exited: boolean;
}

export interface ChannelLoadersHost {
  /** A channel failed: the migration fails with this. */
  fail(err: Error): void;
  /** Every channel has said which it is: stop listening (a later connection can only be a stranger). */
  allConnected(): void;
  /** `length` bytes arrived on a channel and were loaded (the idle watch, the acknowledgements). */
  onBytes(length: number): void;
}

export interface ChannelLoadersOptions {
  /** Where each channel's loader runs (default: a worker thread of its own). */
  readonly spawn?: SpawnChannelThread;
  /** The flow control's bound (default MAX_HELD_BYTES). */
  readonly maxHeldBytes?: number;
}

export class ChannelLoaders {
  private readonly channels: Channel[] = [];
  private readonly byIndex: (Channel | undefined)[];
  private changed = new Signal();
  private failure: Error | null = null;
  /** One word per index: claimed by the first connection that names it (channel-loader.ts). */
  private readonly claims: SharedArrayBuffer;
  private readonly spawn: SpawnChannelThread;
  private readonly maxHeld: number;
  /** Threads not yet gone. */
  private alive = 0;
  private allExited = new Signal();

  constructor(
    private readonly header: StreamHeader,
    private readonly ram: RamLoader,
    private readonly host: ChannelLoadersHost,
    private readonly maxRecordBytes: number,
    options: ChannelLoadersOptions = {},
  ) {
    this.byIndex = new Array(header.channels).fill(undefined);
    if (header.compression !== null) checkCodec(header.compression);
    this.claims = new SharedArrayBuffer(4 * header.channels);
    this.spawn = options.spawn ?? workerChannelThread;
    this.maxHeld = options.maxHeldBytes ?? MAX_HELD_BYTES;
    this.allExited.resolve();
  }

  /** Channels that said which they are (CHANNEL). */
  get connected(): number {
    return this.byIndex.filter((c) => c !== undefined).length;
  }

  /** Bytes loaded on every channel (by their threads). */
  get bytes(): number {
    return this.channels.reduce((n, c) => n + c.loaded, 0);
  }

  /** Bytes handed to the channels' threads and not yet loaded (the flow control bounds it). */
  get heldBytes(): number {
    return this.channels.reduce((n, c) => n + c.held, 0);
  }

  /** Channels' threads still running. */
  get liveThreads(): number {
    return this.alive;
  }

  /** Resolves once every channel's thread is gone. */
  exited(): Promise<void> {
    return this.allExited.promise;
  }

  /** Each channel's thread and the pages it loaded (the figures). */
  threads(): ChannelThreadFigures[] {
    return this.byIndex.flatMap((c) => (c === undefined ? [] : [{ channel: c.index!, threadId: c.threadId, pages: c.pages }]));
  }

  /** A connection that opened with a CHANNEL record (socket.ts routes it here): a thread of its own loads it. */
  add(socket: net.Socket): void {
    if (this.failure !== null) {
      socket.destroy();
      return;
    }
    let thread: ChannelThread;
    try {
      thread = this.spawn({ header: this.header, ram: this.ram.attachment(), maxRecordBytes: this.maxRecordBytes, claims: this.claims });
    } catch (err) {
      socket.destroy();
      this.fail(new MigrationError(`a channel: its loader thread could not start: ${(err as Error).message}`, { cause: err }));
      return;
    }
    const c: Channel = {
      socket, thread, index: null, threadId: 0, synced: 0, closed: false, held: 0, loaded: 0, paused: false, pages: 0, error: null, exited: false,
    };
    if (this.alive++ === 0) this.allExited = new Signal();
    this.channels.push(c);
    thread.onMessage((m) => this.onMessage(c, m));
    thread.onExit((err) => this.onExit(c, err));
    socket.on('data', (chunk: Buffer) => {
      if (this.failure !== null || c.exited) return;
      c.held += chunk.length;
      thread.data(chunk);
      if (c.held >= this.maxHeld && !c.paused) {
        c.paused = true;
        socket.pause();
      }
    });
    socket.on('error', (err) => {
      c.error ??= err;
      if (c.index !== null) this.fail(new WireError(`${name(c)}: the connection failed: ${err.message}`, { cause: err }));
    });
    socket.on('close', () => { if (!c.exited) thread.end(); });
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

  /** The migration ended, either way: load nothing more, end every thread now, and close every channel after `lingerMs`. */
  close(lingerMs: number): void {
    this.failure ??= new WireError('the migration ended');
    for (const c of this.channels) {
      c.thread.terminate();
      setTimeout(() => c.socket.destroy(), lingerMs).unref();
    }
    this.changed.resolve();
  }

  private onMessage(c: Channel, m: FromChannelLoader): void {
    switch (m.type) {
      case 'channel': this.onChannel(c, m.index, m.threadId); break;
      case 'loaded': this.onLoaded(c, m.bytes); break;
      case 'synced':
        c.synced = m.pass;
        c.pages = m.figures.normalPages + m.figures.zeroPages;
        this.ram.addFigures(c.index!, m.figures);
        this.changed.resolve();
        break;
      case 'failed': {
        // A connection that has not proved itself one of this stream's channels (its CHANNEL) is a stranger: dropped alone.
        const err = rebuildError(m.error);
        if (c.index === null) this.drop(c);
        else this.fail(new WireError(`${name(c)}: ${err.message}`, { cause: err }));
        break;
      }
      case 'ended': this.onEnded(c, m.atBoundary); break;
    }
  }

  /** Its thread loaded `bytes`: acknowledged, and the socket resumed once the thread holds less than the bound. */
  private onLoaded(c: Channel, bytes: number): void {
    c.held -= bytes;
    c.loaded += bytes;
    if (c.paused && c.held < this.maxHeld) {
      c.paused = false;
      c.socket.resume();
    }
    if (this.failure === null) this.host.onBytes(bytes);
  }

  /** Its thread loaded every byte the connection brought before it ended. */
  private onEnded(c: Channel, atBoundary: boolean): void {
    c.closed = true;
    if (c.index === null) this.drop(c);
    else if (c.error !== null) this.fail(new WireError(`${name(c)}: the connection failed: ${c.error.message}`, { cause: c.error }));
    else if (!atBoundary) this.fail(new WireError(`${name(c)}: the source closed it inside a record`));
    this.changed.resolve();
  }

  private onExit(c: Channel, err: Error | null): void {
    c.exited = true;
    if (--this.alive === 0) this.allExited.resolve();
    if (err !== null && this.failure === null) {
      this.fail(new WireError(`${name(c)}: its loader thread failed: ${err.message}`, { cause: err }));
    }
  }

  /** A connection that never said it is one of the channels: closed, its thread ended, forgotten; the migration untouched. */
  private drop(c: Channel): void {
    c.socket.destroy();
    c.thread.terminate();
    const i = this.channels.indexOf(c);
    if (i >= 0) this.channels.splice(i, 1);
  }

  private fail(err: Error): void {
    if (this.failure !== null) return;
    this.failure = err;
    this.host.fail(err);
    this.changed.resolve();
  }

  /** Its thread claimed index `index` (channel-loader.ts: a second claim is refused there, as a stranger). */
  private onChannel(c: Channel, index: number, threadId: number): void {
    c.index = index;
    c.threadId = threadId;
    this.byIndex[index] = c;
    if (this.connected === this.header.channels) this.host.allConnected();
    this.changed.resolve();
  }
}

function name(c: Channel): string {
  return c.index === null ? 'a channel' : `channel ${c.index}`;
}

/** The header's codec must be one this side decodes: else a refusal before any page. */
function checkCodec(method: NonNullable<StreamHeader['compression']>): void {
  const why = compressionUnavailable(method);
  if (why !== null) throw refused('compression', `header: the stream's channels compress with ${method}, which this destination cannot decode: ${why}`);
}
