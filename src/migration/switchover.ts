/**
 * The switchover, source side, once the switchover rule said so
 * (DESIGN.md section 2):
 *
 *   source (migration thread)        main thread          destination
 *   pause ──────────────────────────▶ pause the vCPUs,
 *         ◀──────────────── paused ── save device sections
 *   final pass (every dirty page left, no limit), [VERIFY],
 *   VCPU..., DEVICE..., END ──────────────────────────────▶ load, check totals
 *         ◀─────────────────────────────────────── LOADED
 *   commit ─────────────────────────▶ postmigrate
 *         ◀───────────── committed ──
 *   GO ───────────────────────────────────────────────────▶ resume
 *         ◀────────────────────────────────────── RESUMED
 *
 * A failure before GO resumes the source (the main thread does, on a
 * 'failed' that is not after GO); after GO the destination owns the guest
 * and nobody resumes by itself. A save to file has no LOADED or RESUMED:
 * it commits, appends GO and waits for the file to be synced to disk.
 * Post-copy's switchover (runPostcopy) has no final pass: the pages dirty
 * at the pause go as MISSING ranges before END, and after RESUMED they are
 * served and pushed (postcopy-source.ts, which draws that exchange).
 */
import { MigrationError } from '../errors.js';
import type { SavedSection } from '../guest/device-state.js';
import type { VcpuControl } from '../guest/vcpu-control.js';
import { rebuildError } from '../serialized-error.js';
import type { OutgoingChannel } from '../transport/channel.js';
import { recordBytes } from '../wire/frame-writer.js';
import { MAX_MISSING_RANGES } from '../wire/format.js';
import { RECORD } from '../wire/records.js';
import type { FromSource, ToSource } from './messages.js';
import type { MigrationParameters } from './parameters.js';
import { missingRanges } from './postcopy-source.js';
import type { PassSource } from './ram-sender.js';
import type { SourceFigures } from './source-figures.js';
import type { StreamOut } from './stream-out.js';
import { Signal, monoMs, within, yieldToLoop } from './waiter.js';

/**
 * The hosts' part of a switchover's fixed cost, ms: what the switchover
 * takes beyond its bytes and the link's round trips (those the rule adds:
 * switchover-rule.ts switchoverFixedMs). Its steps are hand-offs between
 * threads and processes: the pause, the destination's load and LOADED,
 * the commit, GO to RESUMED (the diagram above). Measured: on an idle
 * host 1-2 ms (`ferry demo`; the 5 ms this constant was before). With a
 * migration's threads busy, over the 1 Gbit/s veth where the byte term is
 * exact (its bytes in flight drain at the shaped rate), the downtime
 * minus the rule's byte term was 2.0-12.4 ms in 15 pre-copy completions
 * (median 6.3; one more 22.7, its bytes slow to load), GO to RESUMED
 * alone 2.6-9.6 ms; on this 2-core machine loaded by other work, 3-22 ms.
 * 10 ms covers 13 of the 15: the rule's estimate is to be kept, as its
 * bandwidth is the cautious one. Loopback hid the miss: its byte term
 * overstates the drain (the cautious bandwidth against a final pass that
 * has both cores), by more than the 5 ms understated the rest.
 */
export const DEFAULT_FIXED_SWITCHOVER_MS = 10;
/**
 * Time from the switchover decision to the vCPUs' acknowledgement of the
 * pause, ms: the guest still writes meanwhile. Measured (x-ferry-switchover
 * decisionToPausedMs) at 2.8-5.0 ms here with a migration's threads busy.
 * An input of the switchover rule.
 */
export const PAUSE_LEAD_MS = 5;

/** What the switchover uses of the session. */
export interface SwitchoverParts {
  post(message: FromSource): void;
  /** The live parameters (the timeouts). */
  parameters(): MigrationParameters;
  readonly abort: Promise<never>;
  readonly out: StreamOut;
  readonly channel: OutgoingChannel;
  /** Its digest (verify mode: non-null) goes in VERIFY after the final pass. */
  readonly sender: PassSource;
  readonly vcpus: readonly VcpuControl[];
  readonly figures: SourceFigures;
  /** LOADED on the return path; null for a file (nothing comes back). */
  readonly loaded: Promise<void> | null;
  /** RESUMED arrived (or the file is synced: this side resolves it); in post-copy, DONE arrived. */
  readonly resumed: Signal;
  /** RESUMED arrived: the destination runs the guest (in post-copy, before it has every page). */
  readonly running: Signal;
  /** Send the final pass: every dirty page left, without limits (the guest is paused). */
  finalPass(): Promise<void>;
}

type MainThreadAnswer = Extract<ToSource, { type: 'paused' | 'pause-failed' | 'committed' }>;

export class Switchover {
  private readonly paused = new Signal<readonly SavedSection[]>();
  private readonly committed = new Signal();
  /** Whether the guest ran before the pause: the destination runs it only then. */
  private wasRunning = true;
  private pausedAtMs = 0;
  private pauseAckedAtMs = 0;
  /** GO is on its way: past this point a failure resumes nobody, and cancel comes too late. */
  goSent = false;
  /** Limit for each answer, ms: the switchover timeout when the switchover began. */
  private readonly limitMs: number;

  /** `decidedAtMs`: when the sync behind the decision was taken. */
  constructor(private readonly s: SwitchoverParts, private readonly decidedAtMs: number) {
    this.limitMs = s.parameters().switchoverTimeoutMs;
  }

  /** The main thread's answers to 'pause' and 'commit'. */
  answer(m: MainThreadAnswer): void {
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
    }
  }

  /** Pause, send the rest and the state, then the two-phase commit: LOADED, commit, GO, RESUMED. */
  async run(): Promise<void> {
    const pagesAtDecision = this.s.sender.remainingPages;
    const devices = await this.pause();
    const finalStart = monoMs();
    await this.s.finalPass(); // no new writes: this takes every dirty page left
    const finalPassMs = monoMs() - finalStart;
    this.s.figures.finalPassSent = true;
    await this.sendState(devices);
    if (this.s.loaded === null) {
      await this.finishFile();
      return;
    }
    const endSentMs = monoMs();
    await this.wait(this.s.loaded, 'waiting for the destination to load (LOADED)');
    const loadedMs = monoMs();
    await this.commit();
    await this.sendGo();
    const goMs = monoMs();
    await this.wait(this.s.resumed.promise, 'waiting for the destination to resume (RESUMED)');
    const resumedMs = monoMs();
    const downtimeMs = resumedMs - this.pausedAtMs;
    const final = this.s.sender.pass;
    const f = this.s.figures;
    f.downtimeMs = downtimeMs;
    f.switchover = {
      decisionToPausedMs: this.pauseAckedAtMs - this.decidedAtMs, pauseMs: this.pauseAckedAtMs - this.pausedAtMs,
      pagesAtDecision, finalPages: final.normalPages + final.zeroPages, finalBytes: final.bytes, finalPassMs, verifyMs: f.verifyMs,
      loadedWaitMs: loadedMs - endSentMs, commitMs: goMs - loadedMs, resumeMs: resumedMs - goMs,
      expectedMs: f.expectedDowntimeMs, expectedFixedMs: f.expectedFixedMs, roundTripMs: f.roundTripMs, downtimeMs,
    };
  }

  /**
   * Post-copy's switchover: pause, take the pages not sent since they were
   * last dirtied (no final pass), MISSING, the state, END, LOADED, commit,
   * GO, RESUMED (the downtime ends here); then the server `prepare` made
   * of those pages (before GO: a request may follow RESUMED at once) sends
   * them until the destination says DONE.
   */
  async runPostcopy(prepare: (missing: Int32Array[]) => { run(): Promise<void> }): Promise<void> {
    const pagesAtDecision = this.s.sender.remainingPages;
    const devices = await this.pause(true);
    const missing = this.s.sender.takeMissing();
    await this.sendMissing(missing);
    const server = prepare(missing);
    this.s.figures.finalPassSent = true;
    await this.sendState(devices);
    const endSentMs = monoMs();
    await this.wait(this.s.loaded!, 'waiting for the destination to load (LOADED)');
    const loadedMs = monoMs();
    await this.commit();
    await this.sendGo();
    const goMs = monoMs();
    await this.wait(this.s.running.promise, 'waiting for the destination to resume (RESUMED)');
    const resumedMs = monoMs();
    const f = this.s.figures;
    f.downtimeMs = resumedMs - this.pausedAtMs;
    f.switchover = {
      decisionToPausedMs: this.pauseAckedAtMs - this.decidedAtMs, pauseMs: this.pauseAckedAtMs - this.pausedAtMs,
      pagesAtDecision, finalPages: 0, finalBytes: 0, finalPassMs: 0, verifyMs: 0,
      loadedWaitMs: loadedMs - endSentMs, commitMs: goMs - loadedMs, resumeMs: resumedMs - goMs,
      expectedMs: f.expectedDowntimeMs, downtimeMs: f.downtimeMs,
    };
    await server.run();
  }

  /** MISSING: per block, its missing pages as ranges (a block with none sends an empty one: the stream is post-copy from the first). */
  private async sendMissing(missing: readonly Int32Array[]): Promise<void> {
    const out = this.s.out;
    for (const [b, bits] of missing.entries()) {
      const records = missingRanges(bits, bits.length * 32, MAX_MISSING_RANGES);
      if (records.length === 0) records.push(new Uint32Array(0));
      for (const ranges of records) {
        await out.waitRoom(recordBytes(RECORD.Missing.sizeOf({ ranges })));
        out.writer.append(RECORD.Missing, { ranges }, b);
      }
    }
  }

  /** Ask the main thread to pause the guest (for post-copy: its status becomes postcopy-active); resolves with its device sections. */
  private pause(postcopy = false): Promise<readonly SavedSection[]> {
    this.s.post({ type: 'pause', postcopy });
    return within(this.paused.promise, this.s.parameters().pauseTimeoutMs + this.limitMs, 'pausing the guest', this.s.abort);
  }

  /**
   * After the final pass: [VERIFY], the vCPU states, the device sections, END
   * with the totals. VERIFY carries the digest the sender kept page by page
   * (ram-digest.ts): nothing of RAM is read here.
   */
  private async sendState(devices: readonly SavedSection[]): Promise<void> {
    const out = this.s.out;
    const digest = this.s.sender.digest;
    if (digest !== null) {
      const t = monoMs();
      await out.append(RECORD.Verify, { digest: digest.value() });
      this.s.figures.verifyMs = monoMs() - t;
    }
    for (const [i, v] of this.s.vcpus.entries()) await out.append(RECORD.Vcpu, { index: i, state: v.savedState() });
    for (const d of devices) await out.append(RECORD.Device, d);
    await out.append(RECORD.End, { totals: this.s.sender.totals });
    out.writer.flush();
  }

  /** The main thread commits: the source is postmigrate, never to resume by itself. */
  private async commit(): Promise<void> {
    this.s.post({ type: 'commit' });
    await this.wait(this.committed.promise, 'committing on the source');
  }

  private async sendGo(): Promise<void> {
    await this.s.out.waitRoom(recordBytes(RECORD.Go.headBytes));
    // One turn of this thread's event loop first: a connection that broke while the main thread
    // committed (a destination that died after LOADED) is seen now, and the migration fails before GO,
    // where the source resumes, rather than after it, where nobody may resume by itself.
    await Promise.race([yieldToLoop(), this.s.abort]);
    this.goSent = true;
    this.s.out.writer.append(RECORD.Go, { run: this.wasRunning });
    this.s.out.writer.flush();
  }

  /** A save to file commits, writes GO, then waits for the file to be synced to disk. */
  private async finishFile(): Promise<void> {
    await this.commit();
    await this.s.out.append(RECORD.Go, { run: this.wasRunning });
    await this.s.out.drain();
    const channel = this.s.channel;
    await within(Promise.race([channel.finish(), this.s.abort]), this.limitMs, `syncing ${channel.name}`);
    this.s.resumed.resolve();
    this.s.figures.downtimeMs = monoMs() - this.pausedAtMs;
  }

  private wait<T>(promise: Promise<T>, what: string): Promise<T> {
    return within(promise, this.limitMs, what, this.s.abort);
  }
}
