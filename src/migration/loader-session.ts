/**
 * The destination side of one migration, run on the loader thread (off the
 * main event loop). It accepts one connection, decodes the stream as it
 * arrives (the decoder checks every rule of docs/wire-format.md), writes
 * pages straight into guest RAM (ram-loader.ts), and asks the main thread
 * only for what it owns: creating the guest around the RAM, loading device sections and vCPU
 * states, resuming.
 *
 * It never resumes on partial state: the main thread resumes only on GO,
 * which the source sends only after this side answered LOADED, which it
 * does only after END's per-block totals matched what arrived and the main
 * thread accepted every section. In post-copy the main thread marks the
 * pages MISSING named before LOADED, resumes on GO, and the rest arrives
 * after it through postcopy-loader.ts, which says DONE at the end. After
 * GO a broken link pauses post-copy rather than failing it, and
 * migrate-recover listens for the source's new connection, answered with
 * the bitmap of pages still missing (postcopy-recovery.ts).
 * Over 300 lines: post-copy's hooks and its recovery share the exchanges,
 * the connection and the failure path; the record dispatch is the next
 * piece to move out.
 */
import { createReadStream } from 'node:fs';
import { MAX_MISSING_RANGES } from '../wire/format.js';
import { bitmapRanges } from './postcopy-recovery.js';
import type net from 'node:net';
import { CancelledError, MigrationError, RefusedError, TimeoutError, TransportError, WireError } from '../errors.js';
import type { SavedSection } from '../guest/device-state.js';
import { rebuildError, serializeError } from '../serialized-error.js';
import { listenOnce } from '../transport/socket.js';
import { formatUri, parseUri } from '../transport/uri.js';
import type { StreamHeader } from '../wire/format.js';
import { FrameDecoder } from '../wire/frame-decoder.js';
import { RECORD, Rec, encodeRecord } from '../wire/records.js';
import type { FromLoader, LoaderInit, LoaderStats, ToLoader } from './messages.js';
import { RamLoader } from './ram-loader.js';
import { IdleWatch, Signal, monoMs } from './waiter.js';
import { LINGER_MS, checkHeader, reasonRecord, refuseConnection } from './destination-refusals.js';
import { PostcopyLoader } from './postcopy-loader.js';
import { ChannelLoaders } from './channel-loaders.js';
import type { PageInstallerShared } from '../memory/page-installer.js';
import { refused } from '../wire/refusals.js';
import { createTracer } from '../trace.js';
import { Preallocation } from './preallocation.js';
import { adviseBlocks, hugePagesFigures, requireHugePages } from '../memory/huge-pages.js';

const trace = createTracer('incoming');

/** Acknowledge at least every this many bytes or this many ms (bandwidth estimate on the source). */
const ACK_EVERY_BYTES = 256 * 1024;
const ACK_EVERY_MS = 10;
/** Chunks smaller than this are acknowledged at once. */
const SMALL_CHUNK_BYTES = 64 * 1024;

export interface LoaderPort {
  post(message: FromLoader): void;
  onMessage(fn: (message: ToLoader) => void): void;
}

export class LoaderSession {
  private socket: net.Socket | null = null;
  /** Guest RAM, once the header arrived. */
  private ram: RamLoader | null = null;
  private decoder: FrameDecoder;
  private readonly devices: SavedSection[] = [];
  private vcpus: (Uint8Array | undefined)[] = [];
  private answer: Signal<ToLoader> | null = null;
  private lastAckBytes = 0;
  private lastAckMs = 0;
  private ackTimer: NodeJS.Timeout | null = null;
  private stopListening: (() => void) | null = null;
  private goReceived = false;
  private idle: IdleWatch | null = null;
  private finished = false;
  private stats = { records: 0, passes: 0, verified: null as boolean | null, verifyMs: 0 };
  private expectedDigest: Buffer | null = null;
  private queue: Promise<void> = Promise.resolve();
  /** Post-copy: MISSING's ranges so far, (first, count) pairs of global pages; null before any MISSING. */
  private missing: number[] | null = null;
  /** Post-copy, from LOADED on. */
  private postcopy: PostcopyLoader | null = null;
  private isFile = false;
  /** The first connection's header: a recovery's must name the same guest. */
  private header: StreamHeader | null = null;
  /** Post-copy paused (the link broke): migrate-recover's address comes here. */
  private recoverWanted: Signal<string> | null = null;
  /** A recovery's connection is accepted and its bitmap not yet sent: any failure pauses again. */
  private recovering = false;
  /** Resolved when the migration ended here (done or failed): a paused wait ends with it. */
  private readonly ended = new Signal();
  /** Several channels (header flag MULTIFD): their connections, decoded into RAM (channel-loaders.ts). */
  private channels: ChannelLoaders | null = null;
  /** Channels' connections that came before the header said how many to expect. */
  private early: net.Socket[] = [];
  /** The pass of the main connection's last SYNC (several channels). */
  private mainSync = 0;
  /** With prealloc: the threads touching the source's ever-written pages (preallocation.ts). */
  private prealloc: Preallocation | null = null;
  /** With hugePages: the bytes of RAM advised for huge pages (null: not asked). */
  private hugeAdvised: number | null = null;

  constructor(private readonly init: LoaderInit, private readonly port: LoaderPort) {
    this.decoder = this.newDecoder();
    port.onMessage((m) => {
      if (m.type === 'cancel') this.fail(new CancelledError('cancelled on the destination'));
      else if (m.type === 'recover') this.recoverWanted?.resolve(m.uri);
      else this.answer?.resolve(m);
    });
  }

  private newDecoder(): FrameDecoder {
    return new FrameDecoder({
      header: (h) => this.onHeader(h),
      pageData: (block, offset, data) => this.ram!.pageData(block, offset, data),
      pageSum: (block, first, count) => this.ram!.pageSum(block, first, count),
      record: (type, block, head, pages, data) => this.onRecord(type, block, head, pages, data),
    }, { stream: true, maxRecordBytes: this.init.maxFrameBytes, written: this.init.prealloc === 1 });
  }

  async run(): Promise<void> {
    try {
      const uri = parseUri(this.init.uri);
      if (uri.kind === 'file') {
        this.isFile = true;
        await this.restoreFrom(uri.path);
        return;
      }
      const listener = await this.listen(this.init.uri, true);
      this.port.post({ type: 'listening', uri: formatUri(listener.address) });
      let socket: net.Socket | null = await listener.accepted;
      this.port.post({ type: 'connected' });
      while (socket !== null) {
        await this.serve(socket);
        await this.queue;
        socket = this.recoverWanted === null || this.finished ? null : await this.recoverLink();
      }
    } catch (err) {
      this.fail(err);
    }
  }

  /** `channels`: the stream may bring channels' connections (the first listen; a recovery's never does). */
  private async listen(uri: string, channels = false): Promise<Awaited<ReturnType<typeof listenOnce>>> {
    const listener = await listenOnce(parseUri(uri), {
      tls: this.init.tls, allowInsecure: this.init.allowInsecure, refuse: refuseConnection,
      channels: channels ? { firstByte: Rec.Channel, take: (socket) => this.onChannelSocket(socket) } : undefined,
      onRejected: (reason) => {
        trace('refused a source: %s', reason);
        this.port.post({ type: 'rejected', reason });
      },
    });
    this.stopListening = listener.close;
    if (this.finished) listener.close();
    return listener;
  }

  /** Read one connection until it closes (or breaks: in post-copy that pauses, and a recovery may follow). */
  private async serve(socket: net.Socket): Promise<void> {
    this.socket = socket;
    // PREALLOC, before READY so that the source knows before it streams: send the ever-written map (preallocation.ts).
    if (this.init.prealloc === 1 && this.header === null) socket.write(encodeRecord(RECORD.Prealloc, {}));
    // READY: this side accepted the connection (and, with TLS, the peer's credentials).
    socket.write(encodeRecord(RECORD.Ready, {}));
    this.watchIdle();
    const mine = () => this.socket === socket;
    await new Promise<void>((resolve) => {
      socket.on('data', (chunk: Buffer) => { if (mine()) this.onData(chunk); });
      socket.on('error', (err) => {
        if (mine()) this.broken(new TransportError(`connection to the source failed ${this.goReceived ? 'after GO' : 'before the migration completed'}: ${err.message}`, { cause: err }));
      });
      socket.on('close', () => {
        if (mine() && !this.finished) this.broken(new TransportError(this.goReceived ? 'the source closed the connection after GO' : 'the source closed the connection before the migration completed'));
        resolve();
      });
    });
  }

  /**
   * Post-copy paused: wait for migrate-recover's address, listen there, and
   * accept the source's recovery connection; null when the migration ended
   * meanwhile. A listen that fails stays paused, for another migrate-recover.
   */
  private async recoverLink(): Promise<net.Socket | null> {
    for (;;) {
      const wanted = this.recoverWanted!;
      const uri = await Promise.race([wanted.promise, this.ended.promise.then(() => null)]);
      if (uri === null || this.finished) return null;
      let listener: Awaited<ReturnType<typeof listenOnce>>;
      try {
        listener = await this.listen(uri);
      } catch (err) {
        this.recoverWanted = new Signal<string>();
        this.port.post({ type: 'postcopy-paused', reason: `listening on ${uri} for the recovery failed: ${(err as Error).message}` });
        continue;
      }
      this.port.post({ type: 'postcopy-recover-setup', uri: formatUri(listener.address) });
      const socket = await Promise.race([listener.accepted, this.ended.promise.then(() => null)]);
      listener.close();
      if (socket === null || this.finished) {
        socket?.destroy();
        return null;
      }
      this.recoverWanted = null;
      this.recovering = true;
      this.decoder = this.newDecoder();
      this.lastAckBytes = 0;
      this.port.post({ type: 'postcopy-recover' });
      return socket;
    }
  }

  /** Restore from a file saved by a migration to file: (no return path). */
  private async restoreFrom(path: string): Promise<void> {
    const file = createReadStream(path, { highWaterMark: 1024 * 1024 });
    await new Promise<void>((resolve) => {
      file.once('open', () => {
        this.port.post({ type: 'listening', uri: `file:${path}` });
        this.port.post({ type: 'connected' });
      });
      file.on('data', (chunk) => this.onData(chunk as Buffer));
      file.on('error', (err) => {
        this.fail(new TransportError(`reading ${path} failed: ${err.message}`, { cause: err }));
        resolve();
      });
      file.on('end', () => resolve());
    });
    await this.queue;
    if (!this.finished) this.fail(new WireError(`${path} ended before the migration completed (no GO)`));
  }

  private onData(chunk: Buffer): void {
    if (this.finished) return;
    try {
      this.decoder.feed(chunk);
    } catch (err) {
      this.fail(err);
      return;
    }
    this.afterBytes(chunk.length);
  }

  /** Bytes arrived and were loaded, on the main connection or a channel's: the idle watch, and the acknowledgements. */
  private afterBytes(length: number): void {
    const now = monoMs();
    this.idle?.touch(now);
    // A small chunk means the source is not streaming at full speed (a nearly
    // clean guest): acknowledge it at once, so that the source's switchover
    // decision does not wait for the timer.
    if (length < SMALL_CHUNK_BYTES || this.bytesIn - this.lastAckBytes >= ACK_EVERY_BYTES || now - this.lastAckMs >= ACK_EVERY_MS) {
      this.ack();
    } else {
      // A stream that goes quiet still gets its last bytes acknowledged.
      this.ackTimer ??= setTimeout(() => this.ack(), ACK_EVERY_MS);
    }
  }

  /** Tell the source how many bytes are read and loaded (its bandwidth estimate and bytes in flight). */
  private ack(): void {
    if (this.ackTimer !== null) clearTimeout(this.ackTimer);
    this.ackTimer = null;
    const bytes = this.bytesIn;
    if (this.finished || bytes === this.lastAckBytes) return;
    this.lastAckBytes = bytes;
    this.lastAckMs = monoMs();
    this.socket?.write(encodeRecord(RECORD.Ack, { bytes }));
  }

  /** Bytes read and loaded on this connection and the channels'. */
  private get bytesIn(): number {
    return this.decoder.bytes + (this.channels?.bytes ?? 0);
  }

  /** A connection that opened with CHANNEL: one of the stream's channels, or too early to tell. */
  private onChannelSocket(socket: net.Socket): void {
    if (this.channels !== null) this.channels.add(socket);
    else if (this.header === null && !this.finished) {
      socket.on('error', () => {}); // until the header says how many channels come: a reset now just ends it
      this.early.push(socket);
    } else socket.destroy(); // the stream announced no channels (its decoder refuses a CHANNEL on the main connection too)
  }

  /** The header announced channels: take their connections (those that came early too). */
  private expectChannels(h: StreamHeader): void {
    if (this.isFile) throw new WireError('header: the stream announces channels (flag MULTIFD), which a file cannot carry');
    this.channels = new ChannelLoaders(h, this.ram!, {
      fail: (err) => this.fail(err),
      allConnected: () => this.stopListening?.(),
      onBytes: (length) => this.afterBytes(length),
    }, this.init.maxFrameBytes);
    for (const socket of this.early) this.channels.add(socket);
    this.early = [];
  }

  private onHeader(h: StreamHeader): void {
    if (h.resume || this.header !== null) {
      this.onResumeHeader(h);
      return;
    }
    this.header = h;
    checkHeader(h, this.init);
    if (h.postcopy && this.isFile) throw refused('postcopy', 'header: the stream may switch to post-copy, which a file cannot carry (it needs a return path to ask for pages)');
    if (h.postcopy && this.init.program !== undefined) {
      throw refused('postcopy', 'header: the stream may switch to post-copy (postcopy-ram), and post-copy is not supported for WebAssembly program guests: ' +
        'their loads and stores are not checked');
    }
    if (h.postcopy && this.init.prealloc === 1) {
      throw refused('postcopy', 'header: the stream may switch to post-copy (postcopy-ram), and this destination preallocates (--prealloc): ' +
        'post-copy\'s pages must not be touched before they arrive; run one without the other');
    }
    this.ram = new RamLoader(h, this.init.program?.ram);
    // Before any page is touched (preallocation's or the loader's): advice covers the faults to come.
    if (this.init.hugePages === true) this.hugeAdvised = adviseBlocks(this.ram.blocks, requireHugePages('hugePages'));
    if (this.init.prealloc === 1) {
      this.prealloc = new Preallocation(this.ram.blocks, {
        threads: this.init.preallocThreads, maxBytes: this.init.preallocMaxBytes, onChange: (figures) => this.port.post({ type: 'prealloc', figures }),
      });
    }
    if (h.channels > 0) this.expectChannels(h);
    else this.closeChannels(); // no channel will come: stop listening, drop any early one
    this.vcpus = new Array<Uint8Array | undefined>(h.vcpus).fill(undefined);
    this.port.post({ type: 'header', header: h, ram: this.ram.shared() });
  }

  /**
   * A recovery's header: it must resume the post-copy paused here (the
   * same UUID and geometry); then the bitmap of pages still missing
   * (RECVBITMAP, RESUMEACK), and every request still waiting again.
   */
  private onResumeHeader(h: StreamHeader): void {
    const held = this.header;
    if (!h.resume) throw refused('busy', 'header: this destination is paused in post-copy and takes only its source\'s recovery (a header with RESUME)');
    if (held === null || this.postcopy === null || !this.recovering) {
      throw refused('resume', 'header: the stream resumes a post-copy, and none is paused here');
    }
    const same = h.uuid === held.uuid && h.vcpus === held.vcpus && h.blocks.length === held.blocks.length &&
      h.blocks.every((b, i) => b.name === held.blocks[i].name && b.pages === held.blocks[i].pages);
    if (!same) throw refused('resume', `header: the stream resumes guest ${h.uuid}, and the post-copy paused here is guest ${held.uuid} (or its RAM differs)`);
    const pc = this.postcopy;
    const total = held.blocks.reduce((n, b) => n + b.pages, 0);
    const { records, missing } = bitmapRanges((from) => pc.nextMissing(from), total, MAX_MISSING_RANGES);
    for (const ranges of records) this.socket?.write(encodeRecord(RECORD.RecvBitmap, { ranges }));
    this.socket?.write(encodeRecord(RECORD.ResumeAck, { missing }));
    pc.resumeLink();
    this.recovering = false;
    this.port.post({ type: 'postcopy-recovered' });
  }

  private onRecord(type: Rec, block: number, head: Buffer, pages: number, data: Uint8Array | null): void {
    this.stats.records++;
    switch (type) {
      case Rec.Missing: this.onMissing(block, head); break;
      case Rec.Written: {
        const { last, ranges } = RECORD.Written.decode(head);
        this.prealloc!.addRanges(block, ranges);
        if (last) this.prealloc!.mapComplete();
        break;
      }
      case Rec.PcPages: this.inPostcopy('PCPAGES').onPages(block, head, data!); break;
      case Rec.Pend: this.inPostcopy('PEND').onPend(RECORD.Pend.decode(head).sent); break;
      case Rec.Pages: this.ram!.loadedPages(block, RECORD.Pages.decode(head).first, pages); break;
      case Rec.XbzrleRun: this.ram!.xbzrleRun(block, head); break;
      case Rec.Xbzrle: {
        // Read in place (the decoder checked the head): no second decode, nothing allocated per page.
        this.ram!.xbzrlePage(block, head.readUInt32LE(0), head, 4, head.length);
        break;
      }
      case Rec.Zero: {
        const { first, count } = RECORD.Zero.decode(head);
        this.ram!.zeroRun(block, first, count);
        break;
      }
      case Rec.Pass: this.stats.passes++; break;
      case Rec.Sync: // several channels: the main connection's record of each pass
        this.mainSync = RECORD.Sync.decode(head).pass;
        this.stats.passes++;
        break;
      case Rec.Grow: this.ram!.grow(block, RECORD.Grow.decode(head).pages); break;
      case Rec.Device: {
        const section = RECORD.Device.decode(head);
        if (this.devices.some((d) => d.name === section.name)) throw new WireError(`DEVICE: section ${section.name} arrived twice`);
        this.devices.push(section);
        break;
      }
      case Rec.Vcpu: {
        const { index, state } = RECORD.Vcpu.decode(head);
        this.vcpus[index] = state;
        break;
      }
      case Rec.End: this.onEnd(head); break;
      case Rec.Verify: this.expectedDigest = RECORD.Verify.decode(head).digest; break;
      case Rec.Go: this.onGo(RECORD.Go.decode(head).run); break;
    }
  }

  /** END: with several channels, once every channel has loaded the last pass (the barrier); then the checks. */
  private onEnd(head: Buffer): void {
    const channels = this.channels;
    if (channels === null) {
      this.checkEnd(head);
      return;
    }
    const pass = this.mainSync;
    this.queue = this.queue.then(async () => {
      if (this.finished) return;
      try {
        await channels.finish(pass); // every channel's final figures in: END's totals and digest cover every page written
        if (!this.finished) this.checkEnd(head);
      } catch (err) {
        this.fail(err);
      }
    });
  }

  /** END's totals, the vCPUs, the digest; then ask the main thread to load the state, and say LOADED. */
  private checkEnd(head: Buffer): void {
    this.prealloc?.stop(); // every page is loaded: touching more is waste
    const ram = this.ram!;
    ram.checkTotals(RECORD.End.decode(head, ram.blocks.length).totals);
    // biome-ignore lint/complexity/useIndexOf: findIndex visits holes, indexOf skips them: a VCPU record whose index is past the header's count leaves holes
    const missing = this.vcpus.findIndex((v) => v === undefined);
    if (missing >= 0) throw new WireError(`END: no state for vCPU ${missing}`);
    if (this.expectedDigest !== null) {
      // The digest was kept as pages loaded (ram-digest.ts): comparing it reads no RAM.
      const t = monoMs();
      this.stats.verified = false;
      ram.checkDigest(this.expectedDigest);
      this.stats.verified = true;
      this.stats.verifyMs = monoMs() - t;
    }
    const pairs = this.missing === null ? null : Uint32Array.from(this.missing);
    this.exchange({ type: 'loaded', devices: this.devices, vcpus: this.vcpus as Uint8Array[], stats: this.snapshot(), missing: pairs }, (answer) => {
      if (answer.type !== 'load-ok') throw answer.type === 'load-failed' ? rebuildError(answer.error) : new Error(`unexpected ${answer.type}`);
      if (pairs !== null) this.startPostcopy(answer.pages);
      this.socket?.write(encodeRecord(RECORD.Loaded, {}));
    });
  }

  /** MISSING: gather its ranges as global pages (the main thread marks them before GO). */
  private onMissing(block: number, head: Buffer): void {
    const { ranges } = RECORD.Missing.decode(head);
    const start = this.ram!.blocks.slice(0, block).reduce((n, b) => n + b.pages, 0);
    this.missing ??= [];
    for (let i = 0; i < ranges.length; i += 2) this.missing.push(start + ranges[i], ranges[i + 1]);
  }

  /** The guest's pages are marked missing: install and ask through them from now on. */
  private startPostcopy(pages: PageInstallerShared | undefined): void {
    if (pages === undefined) throw new MigrationError('post-copy: the main thread gave no access to the guest\'s pages');
    this.postcopy = new PostcopyLoader(pages, this.ram!.blocks.map((b) => b.pages), {
      send: (record) => this.socket?.write(record),
      fail: (err) => this.fail(err),
      done: () => {
        this.finished = true;
        this.ended.resolve();
        if (this.ackTimer !== null) clearTimeout(this.ackTimer);
        this.idle?.stop();
        this.socket?.end(encodeRecord(RECORD.Done, {}));
        this.port.post({ type: 'done', stats: this.snapshot() });
      },
    });
  }

  /** GO: take over the guest, running it if it ran on the source (as QEMU's global run state). */
  private onGo(run: boolean): void {
    this.goReceived = true;
    const postcopy = this.postcopy;
    this.exchange({ type: 'go', run, postcopy: postcopy !== null }, (answer) => {
      if (answer.type !== 'resumed') throw answer.type === 'resume-failed' ? rebuildError(answer.error) : new Error(`unexpected ${answer.type}`);
      if (postcopy !== null) {
        // The guest runs with pages missing: RESUMED ends the downtime; the pages follow, and DONE ends it all.
        this.socket?.write(encodeRecord(RECORD.Resumed, {}));
        void postcopy.serve().catch((err: unknown) => this.fail(err));
        return;
      }
      this.finished = true;
      this.ended.resolve();
      if (this.ackTimer !== null) clearTimeout(this.ackTimer);
      this.idle?.stop();
      this.closeChannels();
      this.socket?.end(encodeRecord(RECORD.Resumed, {}));
      this.port.post({ type: 'done', stats: this.snapshot() });
    });
  }

  /** Ask the main thread something and act on its answer, in order. */
  private exchange(message: FromLoader, then: (answer: ToLoader) => void): void {
    this.queue = this.queue.then(async () => {
      // A failure seen meanwhile (even in bytes that came after this record) ends the exchanges.
      if (this.finished) return;
      const answer = new Signal<ToLoader>();
      this.answer = answer;
      this.port.post(message);
      try {
        const a = await answer.promise;
        if (!this.finished) then(a);
      } catch (err) {
        this.fail(err);
      }
    });
  }

  /** Post-copy's loader, for a record that belongs to post-copy: one before it began (GO's answer) is a broken stream. */
  private inPostcopy(what: string): PostcopyLoader {
    if (this.postcopy === null) throw new WireError(`${what}: arrived before post-copy began (before this side loaded and resumed)`);
    return this.postcopy;
  }

  /**
   * A source that goes silent before GO (hung, or its link dropped without
   * a reset) fails the migration here; so does one silent in post-copy
   * before every page arrived (its vCPUs would wait for ever).
   */
  private watchIdle(): void {
    const limit = this.init.idleTimeoutMs;
    this.idle?.stop();
    this.idle = new IdleWatch(() => limit, (idleMs) => {
      if (idleMs <= limit) return;
      if (!this.goReceived) this.fail(new TimeoutError(`the source sent nothing for ${Math.round(idleMs)} ms (idle timeout ${limit} ms)`));
      else if (this.postcopy !== null && !this.finished) {
        this.broken(new TimeoutError(`the source sent nothing for ${Math.round(idleMs)} ms in post-copy with pages still missing (idle timeout ${limit} ms)`));
      }
    });
  }

  /**
   * The connection broke (an error, its close, the idle watch): after GO
   * in post-copy that pauses it for a recovery (nothing is discarded; the
   * vCPUs that wait for pages keep waiting, interruptibly); before, it fails.
   */
  private broken(err: Error): void {
    if (this.finished) return;
    if (this.postcopy === null || !this.goReceived) this.fail(err);
    else this.pause(err.message);
  }

  /** Post-copy paused: drop this connection (writing `record` to it first, a refusal), and wait for migrate-recover. */
  private pause(reason: string, record?: Buffer): void {
    if (this.recoverWanted !== null) return; // paused already
    this.recovering = false;
    this.idle?.stop();
    if (this.ackTimer !== null) clearTimeout(this.ackTimer);
    this.ackTimer = null;
    const socket = this.socket;
    this.socket = null;
    if (socket !== null && record !== undefined) {
      socket.end(record);
      setTimeout(() => socket.destroy(), LINGER_MS).unref();
    } else {
      socket?.destroy();
    }
    this.recoverWanted = new Signal<string>();
    trace('post-copy paused: %s', reason);
    const missing = this.postcopy?.missingPages ?? 0;
    this.port.post({
      type: 'postcopy-paused',
      reason: `${reason} (post-copy paused with ${missing} pages still at the source: recover with migrate-recover here and migrate with resume ` +
        'there; if the source is gone, the guest is lost: it cannot run on without them)',
    });
  }

  /**
   * End the migration here for `err`: its message goes to the source (in
   * REFUSED for a refusal, refusals.ts; else in ERROR), the error itself to
   * the main thread.
   */
  private fail(failure: unknown): void {
    if (this.finished) return;
    if (this.recovering && !(failure instanceof CancelledError)) {
      // A recovery's connection that breaks a rule (another guest, a bad stream) pauses again: the guest is still whole here.
      const reason = `the recovery failed: ${failure instanceof Error ? failure.message : String(failure)}`;
      // Said as REFUSED (never ERROR, which the source takes for a failure of the migration): the source pauses again too.
      const refusal = failure instanceof RefusedError ? failure : refused('resume', reason.slice(0, 1000));
      this.pause(reason, reasonRecord(refusal, refusal.message.slice(0, 1000)));
      return;
    }
    this.idle?.stop();
    this.finished = true;
    this.ended.resolve();
    this.prealloc?.close();
    const err = this.postcopy === null || !this.goReceived ? failure : this.lost(failure);
    const reason = err instanceof Error ? err.message : String(err);
    if (this.ackTimer !== null) clearTimeout(this.ackTimer);
    this.closeChannels();
    try {
      this.socket?.end(reasonRecord(err, reason.slice(0, 1000)));
    } catch {
      // the connection is already gone
    }
    // Keep reading (and discarding: onData ignores bytes once finished) until the source
    // closes, for at most LINGER_MS, so that it reads the reason (destination-refusals.ts).
    const socket = this.socket;
    if (socket !== null) setTimeout(() => socket.destroy(), LINGER_MS).unref();
    this.answer?.reject(err instanceof Error ? err : new Error(reason));
    this.port.post({ type: 'failed', error: serializeError(err), afterGo: this.goReceived, stats: this.snapshot() });
  }

  /**
   * The migration ended here: no more channels, and the early ones are
   * dropped. The channels close only after LINGER_MS, as the main
   * connection does after a failure: their close must not reach the source
   * before the reason said on the main one.
   */
  private closeChannels(): void {
    this.stopListening?.();
    this.channels?.close(LINGER_MS);
    for (const socket of this.early) socket.destroy();
    this.early = [];
  }

  /** A failure during post-copy loses the guest (DESIGN.md section 7): say so, and stop asking for pages. */
  private lost(failure: unknown): Error {
    const pc = this.postcopy!;
    pc.stop();
    const reason = failure instanceof Error ? failure.message : String(failure);
    return new MigrationError(`${reason} (during post-copy, with ${pc.missingPages} pages still at the source: the guest is lost here; it cannot run without them)`,
      { cause: failure, afterGo: true });
  }

  private snapshot(): LoaderStats {
    // With channels, the pages were loaded on the channels' threads: their figures are added in (ram-loader.ts).
    const t = this.ram?.totals();
    return {
      bytes: this.bytesIn, records: this.stats.records,
      normalPages: t?.normalPages ?? 0, zeroPages: t?.zeroPages ?? 0, zeroPagesWritten: t?.zeroPagesWritten ?? 0, xbzrlePages: t?.xbzrlePages ?? 0,
      passes: this.stats.passes, channels: this.channels?.connected ?? 0, channelThreads: this.channels?.threads(), verified: this.stats.verified, verifyMs: this.stats.verifyMs,
      postcopy: this.postcopy?.stats() ?? null, prealloc: this.prealloc?.figures() ?? null,
      hugePages: this.hugeAdvised === null ? null : hugePagesFigures(this.hugeAdvised),
    };
  }
}

