/**
 * The channels of a migration on several channels (QEMU's multifd), as the
 * migration thread sees them: one thread and one connection each
 * (channel-sender.ts), started at setup, told to send each pass, and met
 * at a barrier at its end: runPass resolves only when every channel has
 * sent the pass and its SYNC, so the session's decision after a pass (and
 * the main connection's SYNC) comes after every page of it was handed to
 * a connection. It stands where a RamSender stands (PassSource): the
 * pass's counters are the channels' sums.
 *
 * A channel that fails fails the migration (before GO: the source runs
 * on). Stopping asks every channel to end, and waits for each thread to
 * exit before the dirty log clients are unregistered: a thread terminated
 * inside a dirty log's lock would leave every later sync waiting forever,
 * so a channel is terminated only if it has not ended within
 * STOP_WAIT_MS (it is then not inside a sync: a sync takes microseconds).
 */
import { Worker } from 'node:worker_threads';
import { MigrationError } from '../errors.js';
import type { DirtyLogClient } from '../memory/dirty-log.js';
import { rebuildError } from '../serialized-error.js';
import type { BlockTotals } from '../wire/format.js';
import { ChannelFigures } from './channel-figures.js';
import { SharedRateLimiter } from './shared-rate-limiter.js';
import type { ChannelInit, FromChannel, SourceInit, ToChannel } from './messages.js';
import type { MigrationParameters } from './parameters.js';
import type { PassCounters, PassSource } from './ram-sender.js';
import { Signal, within } from './waiter.js';
import { sumCompression, type CompressionReport, type CompressionStats } from './compression-stats.js';
import { sumXbzrleFigures, type XbzrleFigures } from './xbzrle-sender.js';

/** How long stop() waits for a channel's thread to end before terminating it, ms. */
const STOP_WAIT_MS = 5000;
/** How often the session is given control while a pass runs on the channels (its policy, its bandwidth windows), ms. */
const POLL_MS = 10;

const LANES = 4;

export class ChannelSet implements PassSource {
  pass: PassCounters = { normalPages: 0, zeroPages: 0, bytes: 0, budgetBytes: 0, dirtyFound: 0 };
  readonly totals: BlockTotals[];
  digest: { value(): Buffer } | null = null;
  /** CPU time the channels spent sending, ns (summed over channels). */
  busyNs = 0;
  private readonly workers: Worker[] = [];
  private readonly figures: ChannelFigures;
  private readonly buffer: SharedArrayBuffer;
  /** Per channel: its last pass's counters and totals, its digest at the end. */
  private readonly done: ({ pass: number; counters: PassCounters; totals: readonly BlockTotals[]; busyNs: number; xbzrle: XbzrleFigures | null } | null)[];
  private readonly digests: (Uint8Array | null)[];
  private readonly exited: Promise<void>[] = [];
  /** Resolved on each message from a channel (the waits re-check their condition). */
  private heard = new Signal();
  private connected = 0;
  private finished = 0;
  private failure: Error | null = null;
  private passesDone = 0;
  /** stop() was called: threads exit now, and that is no failure. */
  private stopping = false;
  /** Per channel: it said finished or failed. */
  private readonly ended: boolean[];
  /** Per channel: its last compression figures (with multifd-compression). */
  private readonly compressionReports: (CompressionReport | null)[];

  constructor(
    private readonly init: SourceInit,
    private readonly channels: number,
    private readonly clients: readonly DirtyLogClient[],
    /** Each block's pages in use as the stream's header said them (each channel's GROWs count from these). */
    private readonly inUse: readonly number[],
    /** A channel failed: the migration must stop with this. */
    private readonly onFailure: (err: Error) => void,
  ) {
    this.totals = init.ram.map(() => ({ normal: 0, zero: 0 }));
    this.buffer = ChannelFigures.create(channels);
    this.figures = new ChannelFigures(this.buffer, channels);
    this.done = new Array(channels).fill(null);
    this.digests = new Array(channels).fill(null);
    this.ended = new Array(channels).fill(false);
    this.compressionReports = new Array(channels).fill(null);
  }

  /** query-migrate's compression figures, summed over channels; null without compression. */
  get compression(): CompressionStats | null {
    const c = this.init.compression;
    if (c == null) return null;
    const sum = sumCompression(c.auto ? `auto (${c.method})` : c.method, c.auto, this.compressionReports);
    return sum.why === null && c.why !== undefined ? { ...sum, why: c.why } : sum;
  }

  /** Start every channel's thread and connection; resolves when all are connected. */
  async start(timeoutMs: number, abort: Promise<never>): Promise<void> {
    const limiter = SharedRateLimiter.create(this.init.parameters.maxBandwidthBytesPerSec);
    for (let index = 0; index < this.channels; index++) {
      const init: ChannelInit = {
        uri: this.init.uri, tls: this.init.tls, uuid: this.init.uuid, index, channels: this.channels, parameters: this.init.parameters,
        ram: this.init.ram, clientSlots: this.clients.map((c) => c.slot), verify: this.init.verify, figures: this.buffer, inUse: this.inUse,
        limiter,
        compression: this.init.compression,
        xbzrle: this.init.xbzrle === true,
      };
      const w = new Worker(new URL('./channel-sender-worker.js', import.meta.url), { workerData: init });
      w.on('message', (m: FromChannel) => this.onMessage(m));
      w.on('error', (err) => this.fail(new MigrationError(`channel ${index}: its thread failed: ${err.message}`, { cause: err })));
      this.exited.push(new Promise((resolve) => w.once('exit', () => {
        // A thread that ends without saying how (finished or failed) would leave the barrier waiting.
        if (!this.stopping && this.digests[index] === null && !this.ended[index]) this.fail(new MigrationError(`channel ${index}: its thread exited unexpectedly`));
        resolve();
      })));
      this.workers.push(w);
    }
    await within(this.until(() => this.connected === this.channels), timeoutMs, `connecting ${this.channels} channels`, abort);
  }

  /** Bytes the channels have written, every connection's CHANNEL included. */
  get bytesOut(): number {
    return this.figures.totalBytesOut();
  }

  /** Times any channel was held back (compare two readings: the bandwidth estimate's link-limited windows). */
  get heldBack(): number {
    return this.figures.totalHeldBack();
  }

  /** Between passes every range is back in the log: what the clients hold. */
  get remainingPages(): number {
    return this.clients.reduce((n, c) => n + c.dirtyPages, 0);
  }

  /** Channels done with the current pass, as a share (a pass's progress within is each channel's own). */
  get passFraction(): number {
    return this.passesDone / this.channels;
  }

  /** With xbzrle: the channels' figures as one, as of each one's last pass (xbzrle-sender.ts sumXbzrleFigures). */
  xbzrleFigures(): XbzrleFigures | null {
    if (this.init.xbzrle !== true) return null;
    return sumXbzrleFigures(this.done.flatMap((d) => (d?.xbzrle == null ? [] : [d.xbzrle])));
  }

  takeMissing(): Int32Array[] {
    throw new MigrationError('post-copy does not run on several channels (multifd)');
  }

  /**
   * Pass `n` on every channel; resolves when every channel has sent it and
   * its SYNC (the barrier). `poll` runs every POLL_MS meanwhile (it may throw
   * to stop the migration).
   */
  async runPass(n: number, inUse: readonly number[], unlimited: boolean, poll: () => void): Promise<void> {
    this.passesDone = 0;
    this.post({ type: 'pass', pass: n, inUse, unlimited });
    const allDone = this.until(() => this.done.every((d) => d !== null && d.pass === n));
    for (;;) {
      const timer = new Promise<boolean>((resolve) => setTimeout(() => resolve(false), POLL_MS));
      if (await Promise.race([allDone.then(() => true), timer])) break;
      poll();
    }
    const sum: PassCounters = { normalPages: 0, zeroPages: 0, bytes: 0, budgetBytes: 0, dirtyFound: 0 };
    for (const t of this.totals) t.normal = t.zero = 0;
    this.busyNs = 0;
    for (const d of this.done) {
      for (const k of Object.keys(sum) as (keyof PassCounters)[]) sum[k] += d!.counters[k];
      d!.totals.forEach((t, i) => {
        this.totals[i].normal += t.normal;
        this.totals[i].zero += t.zero;
      });
      this.busyNs += d!.busyNs;
    }
    this.pass = sum;
  }

  /** No more passes: every channel drains its connection; the digests (verify) add up. */
  async finish(timeoutMs: number, abort: Promise<never>): Promise<void> {
    this.post({ type: 'finish' });
    await within(this.until(() => this.finished === this.channels), timeoutMs, 'the channels draining', abort);
    if (!this.init.verify) return;
    const sum = new Uint32Array(LANES);
    for (const d of this.digests) {
      const lanes = new DataView(d!.buffer, d!.byteOffset, d!.byteLength);
      for (let l = 0; l < LANES; l++) sum[l] = (sum[l] + lanes.getUint32(4 * l, true)) >>> 0;
    }
    const value = Buffer.alloc(4 * LANES);
    for (let l = 0; l < LANES; l++) value.writeUInt32LE(sum[l], 4 * l);
    this.digest = { value: () => value };
  }

  setParameters(parameters: MigrationParameters): void {
    this.post({ type: 'set-parameters', parameters });
  }

  /** End every channel; resolves when each thread has exited (see top). */
  async stop(): Promise<void> {
    this.stopping = true;
    this.post({ type: 'stop' });
    const ended = Promise.all(this.exited);
    const late = await Promise.race([ended.then(() => false), new Promise<boolean>((r) => setTimeout(() => r(true), STOP_WAIT_MS).unref())]);
    if (late) for (const w of this.workers) await w.terminate();
  }

  private post(m: ToChannel): void {
    for (const w of this.workers) w.postMessage(m);
  }

  private onMessage(m: FromChannel): void {
    switch (m.type) {
      case 'connected': this.connected++; break;
      case 'pass-done':
        this.done[m.index] = m;
        this.passesDone++;
        break;
      case 'finished':
        this.digests[m.index] = m.digest;
        this.ended[m.index] = true;
        this.finished++;
        break;
      case 'failed':
        this.ended[m.index] = true;
        this.fail(rebuildError(m.error));
        break;
      case 'compression': this.compressionReports[m.index] = m; break;
    }
    this.heard.resolve();
  }

  private fail(err: Error): void {
    this.failure ??= err;
    this.onFailure(err);
    this.heard.resolve();
  }

  /** Resolves when `done()` holds; rejects with the first channel's failure. */
  private async until(done: () => boolean): Promise<void> {
    while (!done()) {
      if (this.failure !== null) throw this.failure;
      this.heard = new Signal();
      await this.heard.promise;
    }
  }
}
