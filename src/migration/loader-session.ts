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
 * after it through postcopy-loader.ts, which says DONE at the end.
 * Over 300 lines: post-copy's hooks share the exchanges and the failure
 * path; the record dispatch is the next piece to move out.
 */
import { createReadStream } from 'node:fs';
import type net from 'node:net';
import { CancelledError, MigrationError, TimeoutError, TransportError, WireError } from '../errors.js';
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
import type { PageInstallerShared } from '../memory/page-installer.js';
import { refused } from '../wire/refusals.js';
import { createTracer } from '../trace.js';

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
  private readonly decoder: FrameDecoder;
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

  constructor(private readonly init: LoaderInit, private readonly port: LoaderPort) {
    this.decoder = new FrameDecoder({
      header: (h) => this.onHeader(h),
      pageData: (block, offset, data) => this.ram!.pageData(block, offset, data),
      pageSum: (block, first, count) => this.ram!.pageSum(block, first, count),
      record: (type, block, head, pages, data) => this.onRecord(type, block, head, pages, data),
    }, { stream: true, maxRecordBytes: init.maxFrameBytes });
    port.onMessage((m) => {
      if (m.type === 'cancel') this.fail(new CancelledError('cancelled on the destination'));
      else this.answer?.resolve(m);
    });
  }

  async run(): Promise<void> {
    try {
      const uri = parseUri(this.init.uri);
      if (uri.kind === 'file') {
        this.isFile = true;
        await this.restoreFrom(uri.path);
        return;
      }
      const listener = await listenOnce(uri, {
        tls: this.init.tls, allowInsecure: this.init.allowInsecure, refuse: refuseConnection,
        onRejected: (reason) => {
          trace('refused a source: %s', reason);
          this.port.post({ type: 'rejected', reason });
        },
      });
      this.stopListening = listener.close;
      if (this.finished) listener.close();
      this.port.post({ type: 'listening', uri: formatUri(listener.address) });
      const socket = await listener.accepted;
      this.socket = socket;
      // READY: this side accepted the connection (and, with TLS, the peer's credentials).
      socket.write(encodeRecord(RECORD.Ready, {}));
      this.port.post({ type: 'connected' });
      this.watchIdle();
      await new Promise<void>((resolve) => {
        socket.on('data', (chunk: Buffer) => this.onData(chunk));
        socket.on('error', (err) => this.fail(new TransportError(`connection to the source failed ${this.goReceived ? 'after GO' : 'before the migration completed'}: ${err.message}`, { cause: err })));
        socket.on('close', () => {
          if (!this.finished) this.fail(new TransportError(this.goReceived ? 'the source closed the connection after GO' : 'the source closed the connection before the migration completed'));
          resolve();
        });
      });
      await this.queue;
    } catch (err) {
      this.fail(err);
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
    const now = monoMs();
    this.idle?.touch(now);
    try {
      this.decoder.feed(chunk);
    } catch (err) {
      this.fail(err);
      return;
    }
    // A small chunk means the source is not streaming at full speed (a nearly
    // clean guest): acknowledge it at once, so that the source's switchover
    // decision does not wait for the timer.
    if (chunk.length < SMALL_CHUNK_BYTES || this.decoder.bytes - this.lastAckBytes >= ACK_EVERY_BYTES || now - this.lastAckMs >= ACK_EVERY_MS) {
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
    if (this.finished || this.decoder.bytes === this.lastAckBytes) return;
    this.lastAckBytes = this.decoder.bytes;
    this.lastAckMs = monoMs();
    this.socket?.write(encodeRecord(RECORD.Ack, { bytes: this.decoder.bytes }));
  }

  private onHeader(h: StreamHeader): void {
    checkHeader(h, this.init);
    if (h.postcopy && this.isFile) throw refused('postcopy', 'header: the stream may switch to post-copy, which a file cannot carry (it needs a return path to ask for pages)');
    if (h.postcopy && this.init.program !== undefined) {
      throw refused('postcopy', 'header: the stream may switch to post-copy (postcopy-ram), and post-copy is not supported for WebAssembly program guests: ' +
        'their loads and stores are not checked');
    }
    this.ram = new RamLoader(h, this.init.program?.ram);
    this.vcpus = new Array<Uint8Array | undefined>(h.vcpus).fill(undefined);
    this.port.post({ type: 'header', header: h, ram: this.ram.shared() });
  }

  private onRecord(type: Rec, block: number, head: Buffer, pages: number, data: Uint8Array | null): void {
    this.stats.records++;
    switch (type) {
      case Rec.Missing: this.onMissing(block, head); break;
      case Rec.PcPages: this.inPostcopy('PCPAGES').onPages(block, head, data!); break;
      case Rec.Pend: this.inPostcopy('PEND').onPend(RECORD.Pend.decode(head).sent); break;
      case Rec.Pages: this.ram!.loadedPages(block, RECORD.Pages.decode(head).first, pages); break;
      case Rec.Zero: {
        const { first, count } = RECORD.Zero.decode(head);
        this.ram!.zeroRun(block, first, count);
        break;
      }
      case Rec.Pass: this.stats.passes++; break;
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

  private onEnd(head: Buffer): void {
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
      if (this.ackTimer !== null) clearTimeout(this.ackTimer);
      this.idle?.stop();
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
    this.idle = new IdleWatch(() => limit, (idleMs) => {
      if (idleMs <= limit) return;
      if (!this.goReceived) this.fail(new TimeoutError(`the source sent nothing for ${Math.round(idleMs)} ms (idle timeout ${limit} ms)`));
      else if (this.postcopy !== null && !this.finished) {
        this.fail(new TimeoutError(`the source sent nothing for ${Math.round(idleMs)} ms in post-copy with pages still missing (idle timeout ${limit} ms)`));
      }
    });
  }

  /**
   * End the migration here for `err`: its message goes to the source (in
   * REFUSED for a refusal, refusals.ts; else in ERROR), the error itself to
   * the main thread.
   */
  private fail(failure: unknown): void {
    this.idle?.stop();
    if (this.finished) return;
    this.finished = true;
    const err = this.postcopy === null || !this.goReceived ? failure : this.lost(failure);
    const reason = err instanceof Error ? err.message : String(err);
    if (this.ackTimer !== null) clearTimeout(this.ackTimer);
    this.stopListening?.();
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

  /** A failure during post-copy loses the guest (DESIGN.md section 7): say so, and stop asking for pages. */
  private lost(failure: unknown): Error {
    const pc = this.postcopy!;
    pc.stop();
    const reason = failure instanceof Error ? failure.message : String(failure);
    return new MigrationError(`${reason} (during post-copy, with ${pc.missingPages} pages still at the source: the guest is lost here; it cannot run without them)`,
      { cause: failure, afterGo: true });
  }

  private snapshot(): LoaderStats {
    const ram = this.ram;
    return {
      bytes: this.decoder.bytes, records: this.stats.records,
      normalPages: ram?.normalPages ?? 0, zeroPages: ram?.zeroPages ?? 0, zeroPagesWritten: ram?.zeroPagesWritten ?? 0,
      passes: this.stats.passes, verified: this.stats.verified, verifyMs: this.stats.verifyMs,
      postcopy: this.postcopy?.stats() ?? null,
    };
  }
}

