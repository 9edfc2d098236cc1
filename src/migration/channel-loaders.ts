/**
 * The destination's side of several channels (header flag MULTIFD): the
 * extra connections of one stream, each opened with CHANNEL, each loaded
 * on a thread of its own, as QEMU's multifd receiving threads
 * (channel-loader.ts: only PASS, GROW, PAGES, ZERO, COMPRESSED, XBZRLE,
 * XBZRLERUN and SYNC, straight into the shared guest RAM, each channel its
 * own stripe, so no two threads write the same page). A codec this side
 * cannot decode is refused at the header, before any page.
 *
 * A connection gets a thread only once it proved itself one of the
 * channels, on this thread (channel-proof.ts: its CHANNEL, its index
 * unclaimed): a stranger is dropped, named, with the reason (host.dropped,
 * NODE_DEBUG=ferry:channels), costs no thread, and its bytes feed nothing
 * (the idle watch hears only proved channels' loaded bytes).
 *
 * The sockets stay here (a socket cannot move between Node threads): each
 * chunk goes to its channel's thread in order (channel-loader-thread.ts),
 * under flow control (channel-flow.ts).
 *
 * The barrier: the main connection's SYNC n says every channel has sent
 * pass n; at END, `finish(n)` waits until every channel loaded its own
 * SYNC n, then asks each for its final figures (it applies nothing more
 * then; a page after its last SYNC is a broken rule), which go into END's
 * totals and VERIFY's digest (ram-loader.ts): LOADED and GO come only
 * after every page landed, each one counted.
 *
 * A channel that breaks a rule, fails, or closes inside a record fails the
 * migration, naming the channel; one that closes cleanly is done (a source
 * closes each after its last pass). Every thread ends with the migration
 * (`close`: the stop word first, channel-loader-words.ts).
 */
import type net from 'node:net';
import { MigrationError, WireError } from '../errors.js';
import { rebuildError } from '../serialized-error.js';
import { compressionUnavailable } from '../wire/compression.js';
import type { StreamHeader } from '../wire/format.js';
import { refused } from '../wire/refusals.js';
import type { ChannelThreadFigures, FromChannelLoader } from './messages.js';
import type { LoadFigures, RamLoader } from './ram-loader.js';
import { createTracer } from '../trace.js';
import { ChannelFlow, MAX_HELD_BYTES } from './channel-flow.js';
import { ChannelLoaderWords } from './channel-loader-words.js';
import { proveChannel, unproven } from './channel-proof.js';
import { workerChannelThread, type ChannelThread, type SpawnChannelThread } from './channel-loader-thread.js';
import { Signal } from './waiter.js';

const trace = createTracer('channels');


interface Channel {
  readonly socket: net.Socket;
  readonly thread: ChannelThread;
  /** Its CHANNEL index (proved before its thread started). */
  readonly index: number;
  threadId: number;
  /** The pass of its last SYNC loaded (0: none); its thread loaded every byte before the connection ended. */
  synced: number;
  closed: boolean;
  readonly flow: ChannelFlow;
  /** Pages its thread loaded (its figures at its last SYNC, then its final ones). */
  pages: number;
  /** Its final figures arrived (END's barrier: `finish`); its thread is gone. */
  final: boolean;
  exited: boolean;
}

export interface ChannelLoadersHost {
  /** A channel failed: the migration fails with this. */
  fail(err: Error): void;
  /** Every channel has said which it is: stop listening (a later connection can only be a stranger). */
  allConnected(): void;
  /** `length` bytes arrived on a channel and were loaded (the idle watch, the acknowledgements). */
  onBytes(length: number): void;
  /** A stranger was dropped (no thread, the migration untouched): `why` names it ("an unproven connection from ADDR:PORT: ..."). */
  dropped?(why: string): void;
}

export interface ChannelLoadersOptions {
  /** Where each channel's loader runs (default: a worker thread of its own). */
  readonly spawn?: SpawnChannelThread;
  /** The flow control's bound (default MAX_HELD_BYTES). */
  readonly maxHeldBytes?: number;
}

export class ChannelLoaders {
  private readonly byIndex: (Channel | undefined)[];
  private changed = new Signal();
  private failure: Error | null = null;
  /** The stop word (channel-loader-words.ts). */
  private readonly words: ChannelLoaderWords;
  private readonly spawn: SpawnChannelThread;
  private readonly maxHeld: number;
  /** Connections still proving themselves: each one's cancel. */
  private readonly proving: Set<() => void>;
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
    this.words = ChannelLoaderWords.create();
    this.proving = new Set();
    this.spawn = options.spawn ?? workerChannelThread;
    this.maxHeld = options.maxHeldBytes ?? MAX_HELD_BYTES;
    this.allExited.resolve();
  }

  /** Channels that proved which they are (CHANNEL). */
  get connected(): number {
    return this.byIndex.filter((c) => c !== undefined).length;
  }

  /** The proved channels. */
  private get all(): Channel[] {
    return this.byIndex.filter((c) => c !== undefined);
  }

  /** Bytes loaded on every channel (by their threads). */
  get bytes(): number {
    return this.all.reduce((n, c) => n + c.flow.loaded, 0);
  }

  /** Bytes handed to the channels' threads and not yet loaded (the flow control bounds it). */
  get heldBytes(): number {
    return this.all.reduce((n, c) => n + c.flow.held, 0);
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
    return this.byIndex.flatMap((c) => (c === undefined ? [] : [{ channel: c.index, threadId: c.threadId, pages: c.pages }]));
  }

  /** A connection whose first byte is CHANNEL's (socket.ts routes it here): once it proved which channel it is, a thread of its own loads it. */
  add(socket: net.Socket): void {
    if (this.failure !== null) {
      socket.destroy();
      return;
    }
    const who = unproven(socket);
    const cancel = proveChannel(socket, this.header, (index) => this.byIndex[index] !== undefined, (r) => {
      this.proving.delete(cancel);
      if ('error' in r) {
        trace('dropped %s: %s', who, r.error.message);
        socket.destroy();
        this.host.dropped?.(`${who}: ${r.error.message}`);
      } else if (this.failure !== null) socket.destroy();
      else this.start(socket, r.index, r.chunks);
    });
    this.proving.add(cancel);
  }

  /** Channel `index`, proved (`chunks`: its bytes read so far, its CHANNEL first): its thread, its flow. */
  private start(socket: net.Socket, index: number, chunks: Buffer[]): void {
    let thread: ChannelThread;
    try {
      thread = this.spawn({ header: this.header, ram: this.ram.attachment(), maxRecordBytes: this.maxRecordBytes, words: this.words.shared, index });
    } catch (err) {
      socket.destroy();
      this.fail(new MigrationError(`channel ${index}: its loader thread could not start: ${(err as Error).message}`, { cause: err }));
      return;
    }
    const c: Channel = { socket, thread, index, threadId: 0, synced: 0, closed: false, flow: new ChannelFlow(socket, thread, this.maxHeld), pages: 0, final: false, exited: false };
    this.byIndex[index] = c;
    trace('channel %d proved (%s): a thread of its own', index, unproven(socket));
    if (this.alive++ === 0) this.allExited = new Signal();
    thread.onMessage((m) => this.onMessage(c, m));
    thread.onExit((err) => this.onExit(c, err));
    for (const chunk of chunks) this.onData(c, chunk);
    socket.on('data', (chunk: Buffer) => this.onData(c, chunk));
    socket.on('error', (err) => this.fail(new WireError(`${name(c)}: the connection failed: ${err.message}`, { cause: err })));
    socket.on('close', () => { if (!c.exited) thread.end(); });
    if (!c.flow.paused) socket.resume();
    if (this.connected === this.header.channels) this.host.allConnected();
    this.changed.resolve();
  }

  /** A chunk of channel `c`'s connection to its thread (none once the migration failed or its thread is gone). */
  private onData(c: Channel, chunk: Buffer): void {
    if (this.failure === null && !c.exited) c.flow.data(chunk);
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

  /**
   * END: once every channel loaded its SYNC of `pass` (the barrier), each
   * says its final figures and applies nothing more; they go into END's
   * totals and digest (ram-loader.ts). A channel that loaded pages after
   * its last SYNC fails the migration, naming it (channel-loader.ts).
   */
  async finish(pass: number): Promise<void> {
    await this.reached(pass);
    for (const c of this.all) c.thread.finish();
    for (;;) {
      if (this.failure !== null) throw this.failure;
      const waiting = this.all.find((c) => !c.final);
      if (waiting === undefined) return;
      if (waiting.exited) throw new WireError(`${name(waiting)}: its loader thread ended before it said its final figures`);
      this.changed = new Signal();
      await this.changed.promise;
    }
  }

  /** The migration ended, either way: load nothing more (the stop word, before any thread is asked to end), end every thread now, and close every channel after `lingerMs`. */
  close(lingerMs: number): void {
    this.failure ??= new WireError('the migration ended');
    this.words.stop();
    for (const cancel of [...this.proving]) cancel();
    for (const c of this.all) {
      c.thread.terminate();
      setTimeout(() => c.socket.destroy(), lingerMs).unref();
    }
    this.changed.resolve();
  }

  private onMessage(c: Channel, m: FromChannelLoader): void {
    switch (m.type) {
      case 'channel': c.threadId = m.threadId; break;
      case 'loaded':
        c.flow.acknowledged(m.bytes);
        if (this.failure === null) this.host.onBytes(m.bytes);
        break;
      case 'synced':
        c.synced = m.pass;
        this.setFigures(c, m.figures);
        break;
      case 'failed': {
        const err = rebuildError(m.error);
        this.fail(new WireError(`${name(c)}: ${err.message}`, { cause: err }));
        break;
      }
      case 'ended': this.onEnded(c, m.atBoundary); break;
      case 'final':
        if (m.unsynced !== null) this.fail(new WireError(`${name(c)}: ${m.unsynced}`));
        else {
          c.final = true;
          this.setFigures(c, m.figures);
        }
        break;
    }
  }

  /** Channel `c`'s figures so far (they replace its last): into END's totals and digest (ram-loader.ts). */
  private setFigures(c: Channel, figures: LoadFigures): void {
    c.pages = figures.normalPages + figures.zeroPages;
    this.ram.addFigures(c.index, figures);
    this.changed.resolve();
  }

  /** Its thread loaded every byte the connection brought before it ended. */
  private onEnded(c: Channel, atBoundary: boolean): void {
    c.closed = true;
    if (!atBoundary) this.fail(new WireError(`${name(c)}: the source closed it inside a record`));
    this.changed.resolve();
  }

  private onExit(c: Channel, err: Error | null): void {
    c.exited = true;
    if (--this.alive === 0) this.allExited.resolve();
    this.changed.resolve();
    if (err !== null && this.failure === null) {
      this.fail(new WireError(`${name(c)}: its loader thread failed: ${err.message}`, { cause: err }));
    }
  }

  private fail(err: Error): void {
    if (this.failure !== null) return;
    trace('failed: %s', err.message);
    this.failure = err;
    this.host.fail(err);
    this.changed.resolve();
  }
}

function name(c: Channel): string {
  return `channel ${c.index}`;
}

/** The header's codec must be one this side decodes: else a refusal before any page. */
function checkCodec(method: NonNullable<StreamHeader['compression']>): void {
  const why = compressionUnavailable(method);
  if (why !== null) throw refused('compression', `header: the stream's channels compress with ${method}, which this destination cannot decode: ${why}`);
}
