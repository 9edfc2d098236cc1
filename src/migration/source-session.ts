/**
 * The source side of one migration, run on the migration thread. It reads
 * as the algorithm does: connect and send the header, then pass after pass
 * send the dirty pages, decide (the switchover rule, after a fresh sync;
 * while it says iterate, the policy: migration-policy.ts), record the pass
 * and the decisions, act on the policy's, until the rule says switch over;
 * then the two-phase switchover (switchover.ts). The main thread is asked only
 * for what it owns (pausing the guest, its device sections, committing the
 * run state); vCPU state is read straight from the vCPUs' shared control
 * blocks, where each vCPU wrote it before acknowledging the pause. How the
 * steps of a pass are paced is the pacer's (pacing.ts); the channel, socket
 * or file, is transport's (channel.ts); where the policy is asked is the
 * policy gate's (policy-gate.ts); post-copy's sending after GO is
 * postcopy-source.ts's; with several channels (multifd) the passes' pages
 * travel on the channels' own threads and connections (channel-set.ts),
 * and this connection carries a SYNC after each pass, the state, END and GO.
 * Over 300 lines: the return path's hooks and the two switchovers read the
 * same signals (running, resumed, the post-copy sender); they are the next
 * piece to move out.
 */
import { CancelledError, MigrationError, MigrationGaveUpError, MigrationTimeoutError, type RefusedError } from '../errors.js';
import { VcpuControl } from '../guest/vcpu-control.js';
import type { DirtyLogClient } from '../memory/dirty-log.js';
import { PAGE_SIZE } from '../memory/page.js';
import { RamBlock } from '../memory/ram-block.js';
import { rebuildError, serializeError } from '../serialized-error.js';
import { openChannel, type OutgoingChannel } from '../transport/channel.js';
import { parseUri } from '../transport/uri.js';
import { encodeHeader } from '../wire/format.js';
import { BandwidthEstimator } from './bandwidth.js';
import type { FromSource, SourceInit, ToSource } from './messages.js';
import type { PolicyDecision } from './migration-policy.js';
import type { MigrationParameters } from './parameters.js';
import { createPacer, restOfPass, type Pacer } from './pacing.js';
import { PolicyGate } from './policy-gate.js';
import { PostcopySource } from './postcopy-source.js';
import { LinkBrokenError, ResumeBitmap } from './postcopy-recovery.js';
import { RateLimiter } from './rate-limiter.js';
import { RamSender, type PassSource } from './ram-sender.js';
import { ChannelSet } from './channel-set.js';
import { RECORD } from '../wire/records.js';
import { sendWrittenMap } from './written-map.js';
import { ReturnPath, type ReturnPathHooks } from './return-path.js';
import { RoundTripEstimator } from './round-trip.js';
import { SourceFigures, type PassDecision } from './source-figures.js';
import type { SourceCounters } from './stats.js';
import { StreamOut } from './stream-out.js';
import { DEFAULT_FIXED_SWITCHOVER_MS, PAUSE_LEAD_MS, Switchover } from './switchover.js';
import { decideSwitchover, switchoverFixedMs, type SwitchoverInputs } from './switchover-rule.js';
import { passEndsEarly } from './early-pass-end.js';
import { Signal, StopSignal, monoMs, nowNs, within } from './waiter.js';

/** How often the figures go to the main thread, ms. */
const STATS_EVERY_MS = 100;

export interface SourcePort {
  post(message: FromSource): void;
  onMessage(fn: (message: ToSource) => void): void;
}

export class SourceSession {
  private readonly blocks: RamBlock[];
  private readonly vcpus: VcpuControl[];
  private parameters: MigrationParameters;
  private channel: OutgoingChannel | null = null;
  private out!: StreamOut;
  private sender!: RamSender;
  /** Who sends the passes' pages: `sender` on this connection, or the channels. */
  private pages!: PassSource;
  /** Several channels (the capability multifd); null: the pages go on this connection. */
  private channels: ChannelSet | null = null;
  /** The channels' held-back count at the last look (the bandwidth estimate's link-limited windows). */
  private channelsHeldBack = 0;
  private clients: DirtyLogClient[] = [];
  private readonly limiter: RateLimiter;
  private readonly bandwidth: BandwidthEstimator;
  /** The link's round trip, from writes that met an empty link (round-trip.ts): an input of the switchover rule. */
  private readonly roundTrip = new RoundTripEstimator();
  private readonly pacer: Pacer;
  private readonly figures: SourceFigures;
  /** Why the migration must stop (cancel, or a failure seen on the connection). */
  private readonly abort = new StopSignal();
  /**
   * Ends the waits of the current connection: stopped with the migration,
   * and alone when the link breaks in post-copy (postcopy-recovery.ts),
   * where the migration pauses for a new connection instead of failing.
   */
  private link = new StopSignal();
  /** Bytes of the connections before this one, all taken as acknowledged: what the destination acknowledges counts from 0 on each. */
  private ackBase = 0;
  private bytesBefore = 0;
  /** Post-copy paused: the address `migrate` with resume gives. */
  private resumeWanted: Signal<string> | null = null;
  /** A recovery's connection is open and its bitmap not yet applied: any failure returns to postcopy-paused. */
  private recovering = false;
  /** The return path (sockets only); a save to file has none. */
  private back: ReturnPath | null = null;
  /** RESUMED arrived (DONE in post-copy), or the file is synced: nothing can fail the migration any more. */
  private readonly resumed = new Signal();
  /** RESUMED arrived: the destination runs the guest. */
  private readonly running = new Signal();
  /** migrate-start-postcopy came (with postcopy-ram on): switch to post-copy at the next chance. */
  private postcopyWanted = false;
  /** Post-copy's sender, from its switchover on. */
  private postcopy: PostcopySource | null = null;
  /** Set once the rule said switch over. */
  private switchover: Switchover | null = null;
  private pass = 0;
  /** When the sync behind the last decision was taken. */
  private decidedAtMs = 0;
  /** The last pass's dirty rate, pages/s (the lead time's dirtying, for passEndsEarly). */
  private lastDirtyRate = 0;
  /** Dirty pages the current pass left unreached when it ended early (early-pass-end.ts); 0 if it walked all of RAM. */
  private unreachedPages = 0;
  /** Where the policy is asked (policy-gate.ts). */
  private readonly gate: PolicyGate;
  private statsTimer: NodeJS.Timeout | null = null;

  constructor(private readonly init: SourceInit, private readonly port: SourcePort) {
    this.blocks = init.ram.map((s) => new RamBlock(s));
    this.vcpus = init.vcpuControls.map((b) => new VcpuControl(b));
    this.parameters = init.parameters;
    this.limiter = new RateLimiter(init.parameters.maxBandwidthBytesPerSec);
    this.bandwidth = new BandwidthEstimator(nowNs());
    this.figures = new SourceFigures(init.startedAtMs, this.blocks, this.vcpus, init.programIdentity === undefined);
    this.gate = new PolicyGate(init.startedAtMs, () => this.parameters, {
      autoConverge: init.autoConverge === true, dirtyLimit: init.dirtyLimit === true, postcopy: init.postcopy === true,
      ramBytes: this.blocks.reduce((n, b) => n + b.byteLength, 0),
      fixedCostMs: () => switchoverFixedMs(this.fixedCostInputs()),
    });
    this.pacer = createPacer(init.mode, {
      parameters: () => this.parameters, figures: this.figures,
      flush: () => this.out.writer.flush(), heldBack: () => this.bandwidth.onHeldBack(),
      waitRoom: (bytes) => this.out.waitRoom(bytes), sleep: (ms) => this.abort.sleep(ms),
    });
    port.onMessage((m) => this.onMessage(m));
  }

  /**
   * The whole migration; resolves when it ended, however it ended. The end
   * is posted only after release(): the main thread terminates this thread
   * when it hears of it, and a thread terminated inside a dirty log's lock
   * would leave every later sync of that block waiting forever.
   */
  async run(): Promise<void> {
    let end: FromSource;
    try {
      await this.setup();
      for (this.pass = 1; ; this.pass++) {
        const started = monoMs();
        const passMs = await this.sendPass();
        if (this.postcopyWanted) break; // within the pass or at its end: the pages not sent go as missing
        const decision = this.decide(passMs);
        // Only while iterating: nothing is cancelled at or after the decision to switch over.
        const policy = decision.switchover ? null : this.gate.afterPass(decision, passMs, this.pages.pass.bytes, this.pages.pass.dirtyFound);
        this.record(passMs, decision, policy);
        if (policy === null) break;
        if (policy.action.kind === 'pause-and-finish') {
          // The ladder's remedy: switch over now, however long the rest takes (exempt from the downtime limit, and labelled so).
          this.figures.pauseAndFinish = policy.action.reason;
          break;
        }
        this.act(policy);
        if (this.postcopyWanted) break; // the policy's post-copy
        await restOfPass(started, (ms) => this.abort.sleep(ms));
      }
      if (this.postcopyWanted) await this.postcopySwitchOver();
      else await this.switchOver();
      end = { type: 'completed', stats: this.stats() };
    } catch (err) {
      end = this.endOf(this.firstReason(err));
    } finally {
      await this.channels?.stop();
      this.release();
    }
    this.port.post(end);
  }

  // ---- the steps ----

  /**
   * Register with the dirty logs (each client starts with all ever-written
   * pages) and build the writer, then connect and send the header.
   */
  private async setup(): Promise<void> {
    this.out = new StreamOut(this.link.promise);
    this.out.onChunk = (bytes) => this.roundTrip.onWrite(bytes, this.bytesOut, this.inflightBytes() - bytes, monoMs(), this.channels?.bytesOut);
    this.clients = this.blocks.map((b) => b.log.register());
    // With xbzrle on several channels, each channel keeps its cache; this sender sends no page then.
    const cacheBytes = this.init.xbzrle === true && (this.init.channels ?? 0) === 0 ? this.parameters.xbzrleCacheBytes : null;
    this.sender = new RamSender(this.blocks, this.clients, this.out.writer, this.pacer.zeroPageBudgetBytes(), this.init.verify, undefined, cacheBytes);
    if (this.sender.xbzrle !== null) this.sender.xbzrle.hostileDeltas = this.init.hostileXbzrleDeltas ?? 0;
    this.pages = this.sender;
    const header = this.streamHeader(false);
    this.channel = await openChannel(parseUri(this.init.uri), {
      timeoutMs: this.parameters.switchoverTimeoutMs, tls: this.init.tls, abort: this.link.promise, onError: this.brokenOn(this.link),
    });
    if (this.channel.socket !== null) { // (a save to file has no return path)
      this.back = new ReturnPath(this.channel.socket, this.returnHooks());
      // Without TLS the header goes at once, before READY, so that a TLS destination can refuse it in words
      // (docs/wire-format.md, "Refusals"); with TLS the handshake spoke already and the header waits for READY.
      if (this.init.tls === undefined) this.out.start(this.channel, header);
      await this.back.opened(this.parameters.switchoverTimeoutMs, this.abort.promise);
    }
    if (!this.out.started) this.out.start(this.channel, header);
    if (this.back?.wantsWrittenMap === true) await sendWrittenMap(this.out, this.blocks); // the destination preallocates: its map first
    if ((this.init.channels ?? 0) > 0) await this.startChannels();
    this.figures.setupDoneMs = monoMs();
    this.pacer.start();
    // Figures every 100 ms on a timer, so they stay true while the thread waits (for room, or at switchover).
    this.statsTimer = setInterval(() => this.port.post({ type: 'stats', stats: this.stats() }), STATS_EVERY_MS);
    this.port.post({ type: 'active' });
  }

  /** Several channels: start them once the main connection is up (the destination knows from its header how many come). */
  private async startChannels(): Promise<void> {
    if (this.channel!.kind !== 'socket') throw new MigrationError('several channels (multifd) need a connection: tcp: or unix:');
    this.channels = new ChannelSet(this.init, this.init.channels!, this.clients, this.sender.announced, (err) => this.stop(err));
    this.pages = this.channels;
    await this.channels.start(this.parameters.switchoverTimeoutMs, this.abort.promise);
  }

  /** The stream header: the first connection's, or (`resume`) a post-copy recovery's. */
  private streamHeader(resume: boolean): Buffer {
    return encodeHeader({
      pageSize: PAGE_SIZE, uuid: this.init.uuid, vcpus: this.vcpus.length, verify: this.init.verify, program: this.init.programIdentity ?? null,
      postcopy: this.init.postcopy === true, resume, channels: resume ? 0 : this.init.channels ?? 0,
      compression: resume ? null : this.init.compression?.method ?? null,
      // Each block's pages in use as the sender read them: its first GROW, if any, is measured from these.
      blocks: this.blocks.map((b, i) => ({ name: b.name, pages: b.pages, visiblePages: resume ? b.pages : this.sender.announced[i] })),
    });
  }

  /**
   * What the return path calls (return-path.ts); `recovery`: a recovery's
   * bitmap hooks. Bound to the connection of now: an old connection's late
   * events (its close, after a recovery replaced it) reach nothing.
   */
  private returnHooks(recovery: Pick<ReturnPathHooks, 'onRecvBitmap' | 'onResumeAck'> = {}): ReturnPathHooks {
    const link = this.link;
    const live = <A extends unknown[]>(fn: (...args: A) => void) => (...args: A) => {
      if (link === this.link) fn(...args);
    };
    return {
      onRecvBitmap: recovery.onRecvBitmap === undefined ? undefined : live(recovery.onRecvBitmap),
      onResumeAck: recovery.onResumeAck === undefined ? undefined : live(recovery.onResumeAck),
      postcopy: () => this.postcopy !== null,
      onAck: live((bytes: number) => {
        this.bandwidth.onAck(this.ackBase + bytes);
        this.roundTrip.onAck(bytes, monoMs(), this.channels?.bytesOut);
        this.postcopy?.onAck();
      }),
      onResumed: live(() => {
        this.running.resolve();
        if (this.postcopy === null) this.resumed.resolve();
      }),
      onRequest: live((pages: ArrayLike<number>) => {
        if (this.postcopy === null) this.fail('the destination asked for pages (REQUEST) outside post-copy');
        else this.postcopy.onRequest(pages);
      }),
      onDone: live(() => {
        if (this.postcopy === null) return this.fail('the destination said DONE outside post-copy');
        this.resumed.resolve();
        this.postcopy.onDone();
      }),
      fail: live((reason: string) => this.fail(reason)),
      reported: live((reason: string) => this.stop(new MigrationError(reason, { afterGo: this.goSent }))),
      broken: live((reason: string) => this.broken(reason)),
      refused: live((err: RefusedError) => (this.recovering ? this.broken(err.message) : this.stop(err))),
      inflightBytes: () => this.inflightBytes(), idleTimeoutMs: () => this.parameters.idleTimeoutMs, tls: this.init.tls !== undefined,
    };
  }

  /** One pass over RAM within the byte budget (not the switchover pass: `unlimited`) and the pacer's; its duration, ms. */
  private async sendPass(options: { unlimited?: boolean } = {}): Promise<number> {
    if (this.channels !== null) return this.sendChannelPass(this.channels, options.unlimited === true);
    const started = monoMs();
    await this.out.waitRoom(this.sender.startPassBytes);
    this.sender.startPass(this.pass, undefined, options.unlimited === true);
    for (;;) {
      this.abort.check();
      if (!options.unlimited && this.postcopyWanted) break;
      if (!options.unlimited) this.act(this.gate.duringPass());
      const now = nowNs();
      this.bandwidth.tick(now);
      const allowance = options.unlimited ? Infinity : this.limiter.allowance(now);
      if (allowance === 0) {
        this.bandwidth.onHeldBack();
        this.out.writer.flush();
        await this.abort.sleep(this.limiter.waitNs(now) / 1e6);
        continue;
      }
      const before = this.sender.pass.budgetBytes;
      const outcome = this.sender.step(now + this.pacer.stepNs(), allowance, nowNs);
      this.figures.busyNs += nowNs() - now;
      if (!options.unlimited) this.limiter.consume(this.sender.pass.budgetBytes - before);
      if (outcome === 'pass-done') break;
      if (!options.unlimited && !this.sender.endsEarly && this.endsEarly(started)) this.sender.endAtRangeEnd();
      await this.pacer.between(outcome, options.unlimited === true);
    }
    // Before the decision's sync: what the clients still hold is what the pass never reached.
    this.unreachedPages = this.sender.endsEarly ? this.sender.remainingPages : 0;
    this.out.writer.flush();
    return monoMs() - started;
  }

  /**
   * One pass on the channels, each over its stripe, then SYNC here once all
   * have sent theirs (channel-set.ts: the barrier). Meanwhile, every few ms,
   * what a step of sendPass does between steps: the policy within a pass,
   * the bandwidth windows.
   */
  private async sendChannelPass(channels: ChannelSet, unlimited: boolean): Promise<number> {
    const started = monoMs();
    const inUse = this.blocks.map((b) => b.visiblePages());
    await channels.runPass(this.pass, inUse, unlimited, () => {
      this.abort.check();
      if (!unlimited) this.act(this.gate.duringPass());
      const heldBack = channels.heldBack;
      if (heldBack !== this.channelsHeldBack) this.bandwidth.onHeldBack();
      this.channelsHeldBack = heldBack;
      this.bandwidth.tick(nowNs());
    });
    this.figures.busyNs = channels.busyNs;
    await this.out.append(RECORD.Sync, { pass: this.pass });
    this.out.writer.flush();
    return monoMs() - started;
  }

  /**
   * Re-sync every block (as QEMU does before deciding), then apply the
   * switchover rule (switchover-rule.ts, a pure function) to what is left.
   */
  private decide(passMs: number): PassDecision {
    for (const b of this.blocks) b.log.sync();
    this.decidedAtMs = monoMs();
    this.figures.dirtySyncs++;
    const remaining = this.pages.remainingPages;
    // Pages found dirty again after the pass, per second of the pass: what
    // the guest dirtied while it was sent (it saturates at RAM / pass time).
    // A pass that ended early left pages it never reached: dirty still, not again.
    const dirtyRate = (Math.max(0, remaining - this.unreachedPages) * 1000) / Math.max(passMs, 1e-3);
    this.lastDirtyRate = dirtyRate;
    const decision = decideSwitchover(this.switchoverInputs(remaining, dirtyRate, passMs));
    return { ...decision, dirtyRate, unreachedPages: this.unreachedPages };
  }

  /** What the switchover rule is asked of `remaining` dirty pages (after a sync, or before one: passEndsEarly). */
  private switchoverInputs(remaining: number, dirtyRate: number, passMs: number): SwitchoverInputs {
    const p = this.parameters;
    return {
      remainingPages: remaining, dirtyPagesPerSec: dirtyRate, leadMs: PAUSE_LEAD_MS,
      cleanPages: this.blocks.reduce((n, b) => n + b.pages, 0) - remaining, inflightBytes: this.inflightBytes(),
      bandwidthBytesPerSec: p.availSwitchoverBandwidthBytesPerSec || this.bandwidth.forSwitchover(nowNs()),
      measured: p.availSwitchoverBandwidthBytesPerSec > 0 || this.bandwidth.measured,
      downtimeLimitMs: p.downtimeLimitMs, ...this.fixedCostInputs(), toFile: this.channel!.kind === 'file', ...this.xbzrleCostInputs(passMs),
    };
  }

  /**
   * Within a live pass, after a step: whether it should end before the end
   * of RAM (early-pass-end.ts: QEMU's early sync, while a throttle is on).
   */
  private endsEarly(startedMs: number): boolean {
    if (!this.gate.throttling) return false; // passEndsEarly's first test, before the inputs are gathered
    const inputs = this.switchoverInputs(this.pages.remainingPages, this.lastDirtyRate, monoMs() - startedMs);
    return passEndsEarly({ ...inputs, throttling: this.gate.throttling, final: false });
  }

  /** With XBZRLE: what a page cost in the last pass, in bytes and in time (switchover-rule.ts); nothing without. */
  private xbzrleCostInputs(passMs: number): { bytesPerPage?: number; pagesPerSec?: number } {
    const { bytes, dirtyFound } = this.pages.pass;
    if (this.init.xbzrle !== true || dirtyFound === 0) return {};
    return { bytesPerPage: bytes / dirtyFound, pagesPerSec: (dirtyFound * 1000) / Math.max(passMs, 1e-3) };
  }

  /** What the switchover's fixed cost is made of (switchover-rule.ts switchoverFixedMs): the hosts' part, and the link's round trip as measured so far. */
  private fixedCostInputs(): { fixedCostMs: number; roundTripMs: number | null } {
    return { fixedCostMs: DEFAULT_FIXED_SWITCHOVER_MS, roundTripMs: this.roundTrip.roundTripMs };
  }

  /**
   * Do what the policy decided within or after a pass: continue, throttle
   * or limit the dirty rate (the main thread applies it), switch to
   * post-copy (as migrate-start-postcopy), or cancel (through stop(): a
   * failure that came first stays the reason).
   */
  private act(policy: PolicyDecision | null): void {
    const action = policy?.action;
    if (action?.kind === 'throttle') this.port.post({ type: 'throttle', percent: action.percent, why: action.reason });
    if (action?.kind === 'dirty-limit') this.port.post({ type: 'dirty-limit', quotaMBPerSec: action.quotaMBPerSec, why: action.reason });
    if (action?.kind === 'postcopy' && this.init.postcopy === true) this.postcopyWanted = true; // the pass ends at its next step
    if (action?.kind === 'cancel') this.stop(action.code === 'timeout' ? new MigrationTimeoutError(action.reason) : new MigrationGaveUpError(action.reason));
    this.abort.check();
  }

  /** Record the pass and its decisions, and post the record (once: the main thread keeps the history). */
  private record(passMs: number, decision: PassDecision, policy: PolicyDecision | null): void {
    const record = this.figures.recordPass(this.pass, this.pages, passMs, decision, this.inflightBytes(), policy);
    this.port.post({ type: 'pass', pass: record });
    this.port.post({ type: 'stats', stats: this.stats() });
  }

  /** The two-phase switchover (switchover.ts), with what it needs of this session. */
  private async switchOver(): Promise<void> {
    this.switchover = this.newSwitchover();
    await this.switchover.run();
  }

  private newSwitchover(): Switchover {
    return new Switchover({
      post: (m) => this.port.post(m), parameters: () => this.parameters, abort: this.link.promise,
      out: this.out, channel: this.channel!, sender: this.pages, vcpus: this.vcpus, figures: this.figures,
      loaded: this.back?.loaded.promise ?? null, resumed: this.resumed, running: this.running,
      finalPass: async () => {
        this.pass++;
        await this.sendPass({ unlimited: true });
        await this.channels?.finish(this.parameters.switchoverTimeoutMs, this.abort.promise); // drained, their digests summed
      },
    }, this.decidedAtMs);
  }

  /**
   * Post-copy's switchover (switchover.ts runPostcopy), then serving and
   * pushing the missing pages until DONE (postcopy-source.ts); after GO a
   * broken link pauses it until a recovery (postcopy-recovery.ts).
   */
  private async postcopySwitchOver(): Promise<void> {
    this.decidedAtMs = monoMs(); // the decision is post-copy's, now (no switchover rule was asked)
    this.switchover = this.newSwitchover();
    const measured = this.bandwidth.measured ? this.bandwidth.forSwitchover(nowNs()) : 0;
    try {
      await this.switchover.runPostcopy((missing) => {
        this.postcopy = new PostcopySource({
          blocks: this.blocks, out: this.out, parameters: () => this.parameters, abort: this.link,
          inflightBytes: () => this.inflightBytes(), measuredBytesPerSec: measured, corruptPages: this.init.corruptPostcopyPages ?? 0,
        }, missing);
        return this.postcopy;
      });
    } catch (err) {
      if (!(err instanceof LinkBrokenError)) {
        this.abort.check(); // the migration itself failed (the destination's ERROR, a bad record): as it is
        if (!this.goSent) throw err;
        // Past GO a wait that timed out (RESUMED never came: a link gone silent, no reset) pauses too: the destination may run the guest.
        this.link.stop(err as Error);
        await this.recoverUntilDone(new LinkBrokenError((err as Error).message));
        return;
      }
      await this.recoverUntilDone(err);
    }
  }

  /** postcopy-paused until `migrate` with resume names an address; recover there and go on; again after every break. */
  private async recoverUntilDone(first: LinkBrokenError): Promise<void> {
    for (let broke = first; ; ) {
      this.back?.close();
      this.channel?.destroy();
      this.resumeWanted = new Signal<string>();
      this.port.post({ type: 'postcopy-paused', reason: broke.message });
      const uri = await Promise.race([this.resumeWanted.promise, this.abort.promise]);
      try {
        await this.recover(uri);
        await this.postcopy!.run();
        return;
      } catch (err) {
        if (!(err instanceof LinkBrokenError)) throw err;
        broke = err;
      }
    }
  }

  /**
   * One recovery: connect to `uri`, send the header with RESUME, take the
   * destination's bitmap of the pages it lacks (RECVBITMAP, RESUMEACK) and
   * send those from now on. Any failure here is a LinkBrokenError: paused again.
   */
  private async recover(uri: string): Promise<void> {
    this.port.post({ type: 'postcopy-recover-setup' });
    const link = new StopSignal();
    this.link = link;
    this.bytesBefore += this.out.bytesOut;
    this.ackBase = this.bandwidth.ackedBytes;
    const out = new StreamOut(link.promise);
    this.out = out;
    const bitmap = new ResumeBitmap(this.postcopy!.pages);
    const applied = new Signal<number>();
    const timeoutMs = this.parameters.switchoverTimeoutMs;
    this.recovering = true;
    try {
      this.channel = await openChannel(parseUri(uri), { timeoutMs, tls: this.init.tls, abort: link.promise, onError: this.brokenOn(link) });
      if (this.channel.socket === null) throw new MigrationError(`${uri} is not a connection: post-copy resumes over tcp: or unix:`);
      this.back = new ReturnPath(this.channel.socket, this.returnHooks({
        onRecvBitmap: (ranges) => bitmap.add(ranges),
        // At once, in the return path's order: the requests that follow RESUMEACK must find the new bitmap.
        onResumeAck: (missing) => {
          if (applied.settled) throw new Error('RESUMEACK: arrived twice');
          const ranges = bitmap.close(missing);
          this.recovering = false; // at once: what follows on this connection (an ERROR) is no longer the recovery's
          applied.resolve(this.postcopy!.resume({ out, abort: link }, ranges));
        },
      }));
      const header = this.streamHeader(true);
      if (this.init.tls === undefined) out.start(this.channel, header);
      await this.back.opened(timeoutMs, link.promise);
      if (!out.started) out.start(this.channel, header);
      this.port.post({ type: 'postcopy-recover' });
      await within(applied.promise, timeoutMs, 'waiting for the destination\'s received bitmap (RESUMEACK)', link.promise);
    } catch (err) {
      this.abort.check();
      throw err instanceof LinkBrokenError ? err : new LinkBrokenError(`recovering over ${uri} failed: ${(err as Error).message}`);
    } finally {
      this.recovering = false;
    }
    this.port.post({ type: 'postcopy-recovered' });
  }

  // ---- plumbing ----

  private onMessage(m: ToSource): void {
    switch (m.type) {
      case 'paused':
      case 'pause-failed':
      case 'committed':
        this.switchover?.answer(m);
        break;
      case 'commit-failed':
        this.fail(`committing on the source failed: ${m.error.message}`, rebuildError(m.error));
        break;
      case 'cancel':
        // Past GO the destination owns the guest: too late to cancel; but a paused post-copy may be given up (migration.ts cancel).
        if (!this.goSent) this.stop(new CancelledError('cancelled'));
        else if (this.resumeWanted !== null && !this.resumeWanted.settled) {
          this.stop(new MigrationError('migrate_cancel while post-copy was paused: no recovery will come', { afterGo: true }));
        }
        break;
      case 'start-postcopy':
        if (this.init.postcopy === true) this.postcopyWanted = true;
        break;
      case 'resume':
        this.resumeWanted?.resolve(m.uri);
        break;
      case 'set-parameters':
        this.parameters = m.parameters;
        this.limiter.setRate(m.parameters.maxBandwidthBytesPerSec);
        if (this.sender !== undefined) this.sender.zeroPageBudgetBytes = this.pacer.zeroPageBudgetBytes();
        this.resizeCache();
        this.channels?.setParameters(m.parameters);
        break;
    }
  }

  private get goSent(): boolean {
    return this.switchover?.goSent ?? false;
  }

  /**
   * The reason the migration stopped for first (a cancel, say), over `err`,
   * a later consequence of it that reached a wait first (a channel the
   * destination closed because of the cancel).
   */
  private firstReason(err: unknown): unknown {
    try {
      this.abort.check();
    } catch (first) {
      return first;
    }
    return err;
  }

  /** How the migration ended, if not completed, for the main thread: a cancellation too (CancelledError's code tells). */
  private endOf(err: unknown): FromSource {
    // Before GO the source runs on and its dirty pages remain: "0 remaining" holds only for a migration that ended at the destination.
    if (!this.goSent) this.figures.finalPassSent = false;
    return { type: 'failed', error: serializeError(err), afterGo: this.goSent, stats: this.stats() };
  }

  private release(): void {
    for (const c of this.clients) c.unregister();
    this.clients = [];
    this.back?.close();
    if (this.statsTimer !== null) clearInterval(this.statsTimer);
    this.channel?.destroy();
  }

  private fail(reason: string, cause?: Error): void {
    if (this.recovering) this.broken(reason);
    else this.stop(new MigrationError(reason, { afterGo: this.goSent, cause }));
  }

  /**
   * The connection broke: in post-copy after GO the migration pauses for a
   * recovery (only this connection's waits end); before GO it fails.
   */
  private broken(reason: string): void {
    if (this.postcopy === null || !this.goSent || this.postcopy.finished) this.fail(reason);
    else if (this.link.stop(new LinkBrokenError(reason))) this.channel?.destroy();
  }

  /** `broken`, for the connection of `link` only (a channel's late error after it was replaced reaches nothing). */
  private brokenOn(link: StopSignal): (reason: string) => void {
    return (reason) => {
      if (link === this.link) this.broken(reason);
    };
  }

  /** Stop the migration: the first reason sticks; every wait ends with it. Nothing fails after RESUMED. */
  private stop(err: Error): void {
    if (this.resumed.settled) return;
    this.link.stop(err);
    if (this.abort.stop(err)) this.channel?.destroy();
  }

  private inflightBytes(): number {
    return Math.max(0, this.ackBase + this.bytesOut - this.bandwidth.ackedBytes);
  }

  /** Bytes written on this connection and on the channels'. */
  private get bytesOut(): number {
    return this.out.bytesOut + (this.channels?.bytesOut ?? 0);
  }

  /** A new xbzrle-cache-size: a new, empty cache (between steps: this thread's); one that cannot be allocated leaves the old (QEMU would refuse the parameter). */
  private resizeCache(): void {
    try {
      this.sender?.xbzrle?.resize(this.parameters.xbzrleCacheBytes);
    } catch {
      // the old cache serves on
    }
  }

  stats(): SourceCounters {
    const dirtyPages = () => this.clients.reduce((n, c) => n + c.dirtyPages, 0);
    const out = this.out === undefined ? undefined : { bytesOut: this.bytesBefore + this.bytesOut };
    const s = this.figures.snapshot({ sender: this.pages, out, bandwidth: this.bandwidth, pass: this.pass, dirtyPages, inflightBytes: () => this.inflightBytes() });
    const postcopy = this.postcopy?.counters ?? null;
    const compression = this.channels?.compression ?? null;
    const c = compression === null ? s : { ...s, compression };
    return postcopy === null ? c : { ...c, postcopy, remainingBytes: postcopy.unsentPages * PAGE_SIZE };
  }
}
