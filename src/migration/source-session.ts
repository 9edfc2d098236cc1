/**
 * The source side of one migration, run on the migration thread. It reads
 * as the algorithm does: connect, send the header, send passes until the
 * switchover rule holds, then switch over in two phases. The main thread is
 * asked only for what it owns (pausing the guest, its device sections,
 * committing the run state); vCPU state is read straight from the vCPUs'
 * shared control blocks, where each vCPU wrote it before acknowledging the
 * pause.
 */
import type net from 'node:net';
import { CancelledError, MigrationError } from '../errors.js';
import type { SavedSection } from '../guest/device-state.js';
import { VcpuControl } from '../guest/vcpu-control.js';
import type { DirtyLogClient } from '../memory/dirty-log.js';
import { PAGE_SIZE } from '../memory/page.js';
import { RamBlock } from '../memory/ram-block.js';
import { rebuildError, serializeError } from '../serialized-error.js';
import { openChannel, type OutgoingChannel } from '../transport/channel.js';
import { parseUri } from '../transport/uri.js';
import { encodeHeader } from '../wire/format.js';
import { FrameWriter, SLOT_BYTES, recordBytes } from '../wire/frame-writer.js';
import { RECORD, type RecordRow } from '../wire/records.js';
import { BandwidthEstimator } from './bandwidth.js';
import type { FromSource, SourceInit, ToSource } from './messages.js';
import type { MigrationParameters } from './parameters.js';
import { createPacer, type Pacer } from './pacing.js';
import { RateLimiter } from './rate-limiter.js';
import { RamSender } from './ram-sender.js';
import { ReturnPath } from './return-path.js';
import { decideSwitchover, type SwitchoverDecision } from './switchover-rule.js';
import { ramDigest } from './ram-digest.js';
import { SourceFigures } from './source-figures.js';
import type { SourceCounters } from './stats.js';
import { Signal, monoMs, nowNs, sleep, within } from './waiter.js';

/**
 * Fixed cost of a switchover beyond sending the rest, ms: pause acknowledgement
 * (~1 ms), device and vCPU state (~0), the destination's load check and the
 * LOADED/GO/RESUMED round trips on one host (~1-2 ms), as seen in `ferry demo`
 * on this machine, with margin.
 */
const DEFAULT_FIXED_SWITCHOVER_MS = 5;
/**
 * Time from the switchover decision to the vCPUs' acknowledgement of the
 * pause, ms: the guest still writes meanwhile. Measured (x-ferry-switchover
 * decisionToPausedMs) at 2.8-5.0 ms here with a migration's threads busy.
 */
const PAUSE_LEAD_MS = 5;
/** How often the figures go to the main thread, ms. */
const STATS_EVERY_MS = 100;
/** Shortest time between the starts of two passes, ms (see `pace`). */
const MIN_PASS_MS = 10;

export interface SourcePort {
  post(message: FromSource): void;
  onMessage(fn: (message: ToSource) => void): void;
}

export class SourceSession {
  private readonly blocks: RamBlock[];
  private readonly vcpus: VcpuControl[];
  private parameters: MigrationParameters;
  private channel: OutgoingChannel | null = null;
  private writer!: FrameWriter;
  private sender!: RamSender;
  private clients: DirtyLogClient[] = [];
  private readonly limiter: RateLimiter;
  private bandwidth: BandwidthEstimator;
  private readonly abort = new Signal<never>();
  private room = new Signal();
  /** The return path (sockets only); a save to file has none. */
  private back: ReturnPath | null = null;
  /** RESUMED arrived, or the file is synced: nothing can fail the migration any more. */
  private readonly resumed = new Signal();
  private readonly paused = new Signal<readonly SavedSection[]>();
  /** Whether the guest ran before the switchover pause: the destination runs it only then. */
  private wasRunning = true;
  private readonly committed = new Signal();
  /** Why the migration must stop (cancel, or a failure seen on the connection). */
  private abortError: Error | null = null;
  private switchoverNow = false;
  private goSent = false;
  private headerBytes = 0;
  private pass = 0;
  private pausedAtMs = 0;
  private pauseAckedAtMs = 0;
  /** When the sync behind the last decision was taken. */
  private decidedAtMs = 0;
  private readonly pacer: Pacer;
  private readonly figures: SourceFigures;
  private statsTimer: NodeJS.Timeout | null = null;

  constructor(private readonly init: SourceInit, private readonly port: SourcePort) {
    this.blocks = init.ram.map((s) => new RamBlock(s));
    this.vcpus = init.vcpuControls.map((b) => new VcpuControl(b));
    this.parameters = init.parameters;
    this.limiter = new RateLimiter(init.parameters.maxBandwidthBytesPerSec);
    this.bandwidth = new BandwidthEstimator(nowNs());
    this.figures = new SourceFigures(init.startedAtMs, this.blocks, this.vcpus);
    this.pacer = createPacer(init.mode, {
      parameters: () => this.parameters, figures: this.figures,
      flush: () => this.writer.flush(), heldBack: () => this.bandwidth.onHeldBack(),
      waitRoom: (bytes) => this.waitRoom(bytes), sleep: (ms) => this.sleep(ms),
    });
    port.onMessage((m) => this.onMessage(m));
  }

  /**
   * The whole migration. Resolves when it has ended, however it ended. The
   * end is reported only after the dirty-log clients are unregistered: the
   * main thread terminates this thread when it hears of the end, and a
   * thread terminated inside a dirty log's lock would leave the lock held
   * and every later sync of that block (the next migration's) waiting forever.
   */
  async run(): Promise<void> {
    let end: FromSource;
    try {
      await this.setup();
      for (this.pass = 1; ; this.pass++) {
        const started = monoMs();
        await this.sendPass();
        if (this.decide()) break;
        await this.pace(started);
      }
      await this.switchover();
      end = { type: 'completed', stats: this.stats() };
    } catch (err) {
      // A cancellation too: its CancelledError's code tells the main thread.
      end = { type: 'failed', error: serializeError(err), afterGo: this.goSent, stats: this.stats() };
    } finally {
      for (const c of this.clients) c.unregister();
      this.clients = [];
      this.back?.close();
      if (this.statsTimer !== null) clearInterval(this.statsTimer);
      this.channel?.destroy();
    }
    this.port.post(end);
  }

  // ---- the steps ----

  /**
   * Register with the dirty logs (each client starts with all ever-written
   * pages) and build the writer, then connect and send the header. The
   * local work comes first: it overlaps the connection's round trips.
   */
  private async setup(): Promise<void> {
    this.writer = new FrameWriter((chunk, release) => this.channel!.write(chunk, release));
    this.writer.onRelease = () => this.room.resolve();
    this.clients = this.blocks.map((b) => b.log.register());
    this.sender = new RamSender(this.blocks, this.clients, this.writer, this.pacer.zeroPageBudgetBytes());
    const header = encodeHeader({
      pageSize: PAGE_SIZE, uuid: this.init.uuid, vcpus: this.vcpus.length,
      blocks: this.blocks.map((b) => ({ name: b.name, pages: b.pages })),
    });
    this.channel = await openChannel(parseUri(this.init.uri), {
      timeoutMs: this.parameters.switchoverTimeoutMs, tls: this.init.tls, abort: this.abort.promise, onError: (reason) => this.fail(reason),
    });
    // A save to file has no return path.
    if (this.channel.socket !== null) await this.openReturnPath(this.channel.socket);
    this.headerBytes = header.length;
    this.channel.write(header, () => {});
    this.figures.setupDoneMs = monoMs();
    this.pacer.start();
    // Figures every 100 ms on a timer, so they stay true while the thread waits (for room, or at switchover).
    this.statsTimer = setInterval(() => this.port.post({ type: 'stats', stats: this.stats() }), STATS_EVERY_MS);
    this.port.post({ type: 'active' });
  }

  /**
   * Read the destination's records. Stream only once it said READY: a
   * refusal (busy, or with TLS a certificate it does not accept: TLS 1.3
   * checks the client's after the client thinks it has connected) then
   * reads as one, not as EPIPE.
   */
  private async openReturnPath(socket: net.Socket): Promise<void> {
    const back = new ReturnPath(socket, {
      onAck: (bytes) => this.bandwidth.onAck(bytes),
      onResumed: () => this.resumed.resolve(),
      fail: (reason) => this.fail(reason),
      inflightBytes: () => this.inflightBytes(),
      idleTimeoutMs: () => this.parameters.idleTimeoutMs,
      tls: this.init.tls !== undefined,
    });
    this.back = back;
    await within(back.ready.promise, this.parameters.switchoverTimeoutMs, 'waiting for the destination to accept (READY)', this.abort.promise);
    back.watchIdle();
  }

  /** One pass over RAM, within both budgets: bytes per window and the CPU share. */
  private async sendPass(options: { unlimited?: boolean } = {}): Promise<void> {
    const started = monoMs();
    await this.waitRoom(recordBytes(4));
    this.sender.startPass(this.pass);
    for (;;) {
      this.checkCancelled();
      const now = nowNs();
      this.bandwidth.tick(now);
      const allowance = options.unlimited ? Infinity : this.limiter.allowance(now);
      if (allowance === 0) {
        this.bandwidth.onHeldBack();
        this.writer.flush();
        await this.sleep(this.limiter.waitNs(now) / 1e6);
        continue;
      }
      const before = this.sender.pass.budgetBytes;
      const outcome = this.sender.step(now + this.pacer.stepNs(), allowance, nowNs);
      const busyNs = nowNs() - now;
      this.figures.busyNs += busyNs;
      if (!options.unlimited) this.limiter.consume(this.sender.pass.budgetBytes - before);
      if (outcome === 'pass-done') break;
      await this.pacer.between(outcome, options.unlimited === true);
    }
    this.writer.flush();
    if (!options.unlimited) this.recordPass(monoMs() - started);
  }

  private decide(): boolean {
    return this.switchoverNow;
  }

  /**
   * Re-sync every block (as QEMU does before deciding), then apply the
   * switchover rule. `dirtyRate`: pages found dirty again per second of the
   * pass just ended.
   */
  private evaluate(passMs: number): SwitchoverDecision & { dirtyRate: number } {
    for (const b of this.blocks) b.log.sync();
    this.decidedAtMs = monoMs();
    this.figures.dirtySyncs++;
    const remaining = this.sender.remainingPages;
    // Pages found dirty again after the pass, per second of the pass: what
    // the guest dirtied while it was sent (it saturates at RAM / pass time).
    const dirtyRate = (remaining * 1000) / Math.max(passMs, 1e-3);
    const d = decideSwitchover({
      remainingPages: remaining,
      dirtyPagesPerSec: dirtyRate,
      leadMs: PAUSE_LEAD_MS,
      cleanPages: this.blocks.reduce((n, b) => n + b.pages, 0) - remaining,
      inflightBytes: this.inflightBytes(),
      bandwidthBytesPerSec: this.parameters.availSwitchoverBandwidthBytesPerSec || this.bandwidth.forSwitchover(nowNs()),
      downtimeLimitMs: this.parameters.downtimeLimitMs,
      fixedCostMs: DEFAULT_FIXED_SWITCHOVER_MS,
      toFile: this.channel!.kind === 'file',
      measured: this.parameters.availSwitchoverBandwidthBytesPerSec > 0 || this.bandwidth.measured,
    });
    this.switchoverNow = d.switchover;
    return { ...d, dirtyRate };
  }

  /** Pause, send the rest and the state, then the two-phase commit: LOADED, commit, GO, RESUMED. */
  private async switchover(): Promise<void> {
    const limit = this.parameters.switchoverTimeoutMs;
    const pagesAtDecision = this.sender.remainingPages;
    this.port.post({ type: 'pause' });
    const devices = await within(this.paused.promise, this.parameters.pauseTimeoutMs + limit, 'pausing the guest', this.abort.promise);
    this.pass++;
    const finalStart = monoMs();
    await this.sendPass({ unlimited: true }); // no new writes: this takes every dirty page left
    const final = this.sender.pass;
    const finalPassMs = monoMs() - finalStart;
    if (this.init.verify) {
      const t = monoMs();
      const digest = ramDigest(this.blocks);
      this.figures.verifyMs = monoMs() - t;
      await this.append(RECORD.Verify, { digest });
    }
    for (const [i, v] of this.vcpus.entries()) await this.append(RECORD.Vcpu, { index: i, state: v.savedState() });
    for (const d of devices) await this.append(RECORD.Device, d);
    await this.append(RECORD.End, { totals: this.sender.totals });
    this.writer.flush();
    if (this.channel!.kind === 'file') {
      await this.finishFile();
      return;
    }
    const endSentMs = monoMs();
    await within(this.back!.loaded.promise, limit, 'waiting for the destination to load (LOADED)', this.abort.promise);
    const loadedMs = monoMs();
    this.port.post({ type: 'commit' });
    await within(this.committed.promise, limit, 'committing on the source', this.abort.promise);
    await this.waitRoom(recordBytes(RECORD.Go.headBytes));
    this.goSent = true;
    const goMs = monoMs();
    this.writer.append(RECORD.Go, { run: this.wasRunning });
    this.writer.flush();
    await within(this.resumed.promise, limit, 'waiting for the destination to resume (RESUMED)', this.abort.promise);
    const resumedMs = monoMs();
    const downtimeMs = resumedMs - this.pausedAtMs;
    this.figures.downtimeMs = downtimeMs;
    this.figures.switchover = {
      decisionToPausedMs: this.pauseAckedAtMs - this.decidedAtMs, pauseMs: this.pauseAckedAtMs - this.pausedAtMs,
      pagesAtDecision, finalPages: final.normalPages + final.zeroPages, finalBytes: final.bytes, finalPassMs, verifyMs: this.figures.verifyMs,
      loadedWaitMs: loadedMs - endSentMs, commitMs: goMs - loadedMs, resumeMs: resumedMs - goMs,
      expectedMs: this.figures.expectedDowntimeMs, downtimeMs,
    };
  }

  /**
   * A pass shorter than MIN_PASS_MS is followed by a wait for the rest:
   * passes over a nearly clean guest would otherwise spin the thread (and
   * flood the main thread with statistics) while nothing changes.
   */
  private async pace(startedMs: number): Promise<void> {
    const left = MIN_PASS_MS - (monoMs() - startedMs);
    if (left > 0) await this.sleep(left);
  }

  /** A save to file commits, writes GO, then waits for the file to be synced to disk. */
  private async finishFile(): Promise<void> {
    const limit = this.parameters.switchoverTimeoutMs;
    this.port.post({ type: 'commit' });
    await within(this.committed.promise, limit, 'committing on the source', this.abort.promise);
    await this.waitRoom(recordBytes(RECORD.Go.headBytes));
    this.writer.append(RECORD.Go, { run: this.wasRunning });
    this.writer.flush();
    while (this.writer.slotsInFlight > 0) {
      this.room = new Signal();
      if (this.writer.slotsInFlight === 0) break;
      await Promise.race([this.room.promise, this.abort.promise]);
    }
    await within(Promise.race([this.channel!.finish(), this.abort.promise]), limit, `syncing ${this.channel!.name}`);
    this.resumed.resolve();
    this.figures.downtimeMs = monoMs() - this.pausedAtMs;
  }

  // ---- plumbing ----

  /** Wait until the writer can take `bytes` more (slots come back as the transport completes writes). */
  private async waitRoom(bytes: number): Promise<void> {
    while (!this.writer.hasRoom(Math.min(bytes, SLOT_BYTES))) {
      this.room = new Signal();
      if (this.writer.hasRoom(Math.min(bytes, SLOT_BYTES))) return;
      await Promise.race([this.room.promise, this.abort.promise]);
    }
  }

  /** Append a record without page data, waiting for room. */
  private async append<F>(row: RecordRow<F>, fields: F): Promise<void> {
    await this.waitRoom(recordBytes(row.sizeOf(fields)));
    this.writer.append(row, fields);
  }

  private onMessage(m: ToSource): void {
    switch (m.type) {
      case 'paused':
        this.pausedAtMs = m.pausedAtMs;
        this.pauseAckedAtMs = m.ackedAtMs;
        this.wasRunning = m.wasRunning;
        this.paused.resolve(m.devices);
        break;
      case 'pause-failed': {
        const cause = rebuildError(m.error);
        this.paused.reject(new MigrationError(`pausing the guest failed: ${cause.message}`, { cause }));
        break;
      }
      case 'committed':
        this.committed.resolve();
        break;
      case 'commit-failed':
        this.fail(`committing on the source failed: ${m.error.message}`, rebuildError(m.error));
        break;
      case 'cancel':
        // Past GO the destination owns the guest: too late to cancel.
        if (!this.goSent) this.stop(new CancelledError('cancelled'));
        break;
      case 'set-parameters':
        this.parameters = m.parameters;
        this.limiter.setRate(m.parameters.maxBandwidthBytesPerSec);
        if (this.sender !== undefined) this.sender.zeroPageBudgetBytes = this.pacer.zeroPageBudgetBytes();
        break;
    }
  }

  private fail(reason: string, cause?: Error): void {
    this.stop(new MigrationError(reason, { afterGo: this.goSent, cause }));
  }

  /** Stop the migration: the first reason sticks; every wait ends with it. */
  private stop(err: Error): void {
    if (this.abortError !== null || this.resumed.settled) return;
    this.abortError = err;
    this.abort.reject(err);
    this.channel?.destroy();
  }

  private checkCancelled(): void {
    if (this.abortError !== null) throw this.abortError;
  }

  /** Sleep `ms`, or until the migration stops. */
  private async sleep(ms: number): Promise<void> {
    await Promise.race([sleep(ms), this.abort.promise]);
  }

  private inflightBytes(): number {
    return Math.max(0, this.headerBytes + this.writer.bytesOut - this.bandwidth.ackedBytes);
  }

  private recordPass(durationMs: number): void {
    const record = this.figures.recordPass(this.pass, this.sender, durationMs, this.evaluate(durationMs), this.inflightBytes());
    this.port.post({ type: 'pass', pass: record });
    this.port.post({ type: 'stats', stats: this.stats() });
  }

  stats(): SourceCounters {
    return this.figures.snapshot({
      sender: this.sender, writer: this.writer, bandwidth: this.bandwidth, headerBytes: this.headerBytes, pass: this.pass,
      dirtyPages: () => this.clients.reduce((n, c) => n + c.dirtyPages, 0),
      inflightBytes: () => this.inflightBytes(),
    });
  }
}
