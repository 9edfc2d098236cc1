/**
 * One channel of a migration on several channels (QEMU's multifd), run on
 * its own thread: it opens its own connection to the destination (TLS
 * too), says which channel it is (CHANNEL), and then, pass after pass as
 * the migration thread asks, walks its stripe of RAM (ram-sender.ts:
 * the ranges whose number is its index modulo the channels), finding zero
 * pages and reading dirty ones itself, and ends each pass with SYNC. The
 * migration thread (channel-set.ts) keeps the barrier: it starts pass n+1
 * only after every channel said pass n was sent.
 *
 * Nothing comes back on a channel's connection: the destination answers
 * on the main one. So the channel watches its socket itself: an error or a
 * close before the migration told it to finish fails the migration (before
 * GO: a channel that dies alone fails it, and the source runs on).
 *
 * With `multifd-compression`, the channel compresses its own packets
 * (channel-compression.ts) and reports its figures to the migration thread.
 *
 * max-bandwidth is one budget for all the channels (shared-rate-limiter.ts),
 * as QEMU's; the CPU-share cap is each thread's own. Bytes written so far,
 * and how often the channel was held back by its link or its rate, are published in a shared array (channel-figures.ts) for the migration thread's figures, in-flight estimate
 * and bandwidth estimate.
 */
import type { BlockTotals } from '../wire/format.js';
import { RamBlock } from '../memory/ram-block.js';
import { MigrationError } from '../errors.js';
import { serializeError } from '../serialized-error.js';
import { openChannel, type OutgoingChannel } from '../transport/channel.js';
import { parseUri } from '../transport/uri.js';
import { RECORD, encodeRecord } from '../wire/records.js';
import { recordBytes } from '../wire/frame-writer.js';
import type { ChannelInit, FromChannel, ToChannel } from './messages.js';
import { createPacer, type Pacer } from './pacing.js';
import { RamSender, type PassCounters } from './ram-sender.js';
import { SharedRateLimiter } from './shared-rate-limiter.js';
import { StreamOut } from './stream-out.js';
import { Signal, StopSignal, nowNs } from './waiter.js';
import type { MigrationParameters } from './parameters.js';
import { ChannelFigures } from './channel-figures.js';
import { ChannelCompression, dataPages, type ChannelLook } from './channel-compression.js';
import { xbzrleCacheShare } from './xbzrle-sender.js';

const SYNC_BYTES = recordBytes(RECORD.Sync.headBytes);

export interface ChannelPort {
  post(message: FromChannel): void;
  onMessage(fn: (message: ToChannel) => void): void;
}

export class ChannelSender {
  private readonly stop = new StopSignal();
  private readonly blocks: RamBlock[];
  private channel: OutgoingChannel | null = null;
  private out!: StreamOut;
  private sender!: RamSender;
  private readonly limiter: SharedRateLimiter;
  private readonly pacer: Pacer;
  private parameters: MigrationParameters;
  private readonly figures = { busyNs: 0, capSleepNs: 0 };
  /** The migration thread's orders, in arrival order. */
  private readonly orders: ToChannel[] = [];
  private wake = new Signal();
  private finishing = false;
  private readonly shared: ChannelFigures;
  /** Times this channel was held back (its link, its rate): auto's windows read it. */
  private heldBackCount = 0;
  private compression: ChannelCompression | null = null;

  constructor(private readonly init: ChannelInit, private readonly port: ChannelPort) {
    this.blocks = init.ram.map((s) => new RamBlock(s));
    this.parameters = init.parameters;
    this.limiter = new SharedRateLimiter(init.limiter);
    this.shared = new ChannelFigures(init.figures, init.channels);
    this.pacer = createPacer('thread', {
      parameters: () => this.parameters, figures: this.figures,
      flush: () => this.out.writer.flush(), heldBack: () => this.heldBack(),
      waitRoom: (bytes) => this.out.waitRoom(bytes), sleep: (ms) => this.stop.sleep(ms),
    });
    port.onMessage((m) => {
      if (m.type === 'stop') this.stop.stop(new MigrationError(`channel ${init.index}: stopped`));
      else if (m.type === 'set-parameters') {
        this.parameters = m.parameters;
        this.resizeCache();
        this.limiter.setRate(m.parameters.maxBandwidthBytesPerSec); // every channel sets the same: one budget for all
      } else {
        this.orders.push(m);
        this.wake.resolve();
      }
    });
  }

  /** Connect, then serve the migration thread's orders until it says finish or stop; the end is posted. */
  async run(): Promise<void> {
    let end: FromChannel;
    try {
      await this.connect();
      this.port.post({ type: 'connected', index: this.init.index });
      for (;;) {
        const order = await this.nextOrder();
        if (order.type === 'finish') break;
        if (order.type === 'pass') await this.sendPass(order.pass, order.inUse, order.unlimited);
      }
      this.finishing = true;
      await this.out.drain();
      end = { type: 'finished', index: this.init.index, digest: this.sender.digest?.value() ?? null };
      this.publishBytes();
    } catch (err) {
      end = { type: 'failed', index: this.init.index, error: serializeError(err) };
    } finally {
      this.finishing = true;
      this.channel?.destroy();
    }
    this.port.post(end);
  }

  /** With xbzrle: this channel's share of xbzrle-cache-size (xbzrle-sender.ts); null: off. */
  private cacheShare(): number | null {
    return this.init.xbzrle === true ? xbzrleCacheShare(this.parameters.xbzrleCacheBytes, this.init.channels) : null;
  }

  /** A new xbzrle-cache-size: a new, empty cache of the new share (between steps: this thread's); one that cannot be allocated leaves the old. */
  private resizeCache(): void {
    const share = this.cacheShare();
    try {
      if (share !== null) this.sender?.xbzrle?.resize(share);
    } catch {
      // QEMU refuses the parameter then; here the set-parameters was taken, and the old cache serves on.
    }
  }

  private async connect(): Promise<void> {
    const { index, channels, uuid } = this.init;
    this.out = new StreamOut(this.stop.promise);
    const clients = this.blocks.map((b, i) => b.log.client(this.init.clientSlots[i]));
    this.sender = new RamSender(this.blocks, clients, this.out.writer, 0, this.init.verify, { index, count: channels }, this.cacheShare());
    this.init.inUse.forEach((pages, i) => { this.sender.announced[i] = pages; });
    if (this.init.compression != null) {
      this.compression = new ChannelCompression(this.init.compression, this.parameters, channels, nowNs);
      this.sender.packer = this.compression.compressor;
    }
    this.channel = await openChannel(parseUri(this.init.uri), {
      timeoutMs: this.parameters.switchoverTimeoutMs, tls: this.init.tls, abort: this.stop.promise, onError: (reason) => this.fail(reason),
    });
    const socket = this.channel.socket!;
    socket.on('error', (err) => this.fail(`the connection failed: ${err.message}`));
    socket.on('close', () => this.fail('the destination closed the connection'));
    socket.on('data', () => this.fail('the destination sent bytes on a channel (it answers on the main connection only)'));
    this.out.start(this.channel, encodeRecord(RECORD.Channel, { index, channels, uuid }));
    this.pacer.start();
  }

  private fail(reason: string): void {
    if (!this.finishing) this.stop.stop(new MigrationError(`channel ${this.init.index}: ${reason}`));
    this.wake.resolve();
  }

  private async nextOrder(): Promise<ToChannel> {
    while (this.orders.length === 0) {
      this.wake = new Signal();
      await Promise.race([this.wake.promise, this.stop.promise]);
    }
    return this.orders.shift()!;
  }

  private publishBytes(): void {
    this.shared.setBytesOut(this.init.index, this.out.bytesOut);
  }

  private heldBack(): void {
    this.heldBackCount++;
    this.shared.heldBack(this.init.index);
  }

  /** What compression's windows read (channel-compression.ts). */
  private look(): ChannelLook {
    return { nowNs: nowNs(), bytesOut: this.out.bytesOut, heldBack: this.heldBackCount, dataPages: dataPages(this.sender.totals), busyNs: this.figures.busyNs };
  }

  /** Pass `n` over this channel's stripe, ended by SYNC; `unlimited`: the switchover pass (no byte budget, no CPU cap). */
  private async sendPass(n: number, inUse: readonly number[], unlimited: boolean): Promise<void> {
    await this.out.waitRoom(this.sender.startPassBytes);
    this.sender.startPass(n, inUse, unlimited);
    this.compression?.startPass(this.look());
    for (;;) {
      this.stop.check();
      const now = nowNs();
      const allowance = unlimited ? Infinity : this.limiter.allowance(now);
      if (allowance === 0) {
        this.heldBack();
        this.out.writer.flush();
        await this.stop.sleep(this.limiter.waitNs(now) / 1e6);
        continue;
      }
      const before = this.sender.pass.budgetBytes;
      const outcome = this.sender.step(now + this.pacer.stepNs(), allowance, nowNs);
      this.figures.busyNs += nowNs() - now;
      if (!unlimited) this.limiter.consume(this.sender.pass.budgetBytes - before);
      this.publishBytes();
      if (this.compression?.tick(this.look()) === true) this.port.post(this.compression.report(this.init.index));
      if (outcome === 'pass-done') break;
      await this.pacer.between(outcome, unlimited);
    }
    await this.out.waitRoom(SYNC_BYTES);
    this.out.writer.append(RECORD.Sync, { pass: n });
    this.out.writer.flush();
    this.publishBytes();
    if (this.compression !== null) this.port.post(this.compression.report(this.init.index));
    this.port.post({ type: 'pass-done', index: this.init.index, pass: n, counters: { ...this.sender.pass }, totals: copyTotals(this.sender.totals), busyNs: this.figures.busyNs, xbzrle: this.sender.xbzrleFigures() });
  }
}

function copyTotals(totals: readonly BlockTotals[]): BlockTotals[] {
  return totals.map((t) => ({ normal: t.normal, zero: t.zero }));
}

export type { PassCounters };
