/**
 * A live migration seen from the source's main thread: it starts the
 * migration thread, answers what only the main thread can do (pause the
 * guest, save device sections, commit), owns the status machine, and keeps
 * the latest statistics for query-migrate. The main event loop never waits
 * on the migration thread.
 * Over 300 lines: the status machine, the worker's messages and the
 * one-copy guard (mayHoldOnlyCopy) read the same fields; the answers to
 * the worker's messages are the next piece to move out.
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Worker } from 'node:worker_threads';
import {
  InvalidArgumentError, InvalidStateError, MigrationError, PostcopyUnsupportedError, WorkerFailedError, ferryCodeOf, isCancelled, type FerryError,
} from '../errors.js';
import { MULTIFD_MAINLOOP, MULTIFD_POSTCOPY, postcopyConflict } from './capabilities.js';
import type { Guest } from '../guest/guest.js';
import type { RunState } from '../guest/run-state.js';
import { rebuildError, serializeError } from '../serialized-error.js';
import { createTracer } from '../trace.js';
import { checkTlsOptions, type TlsOptions } from '../transport/tls.js';
import { parseUri } from '../transport/uri.js';
import { PROGRAM_IDENTITY_RE } from '../wire/format.js';
import type { FromSource, SourceInit, ToSource } from './messages.js';
import { DEFAULT_PARAMETERS, withParameters, type MigrationParameters } from './parameters.js';
import type { PassRecord, SourceCounters, SourceStats } from './stats.js';
import { emptyStats } from './stats.js';
import { inPostcopy, isFinished, migrationStateMachine, type MigrationStatus } from './status.js';
import { prepareAgainIfWanted, takeMigrationThread } from './migration-threads.js';
import { SourceSession } from './source-session.js';
import { refuseDirtyLimit, type DirtyLimitFigures } from './dirty-limit-controller.js';
import { MigrationThrottles } from './migration-throttles.js';
import type { ChannelCompressionInit } from './messages.js';
import { compressionSetting } from './compression-setting.js';
import { monoMs } from './waiter.js';

const trace = createTracer('migration');
const active = new WeakMap<Guest, Migration>();

/** What cannot work with post-copy, refused at `migrate` with why (the destination refuses the rest at the header). */
function refusePostcopy(guest: Guest, uri: string, options: MigrationOptions): void {
  if (parseUri(uri).kind === 'file') throw new InvalidArgumentError('postcopy-ram cannot be used with file: it needs a return path for the destination to ask for pages');
  if (guest.program !== null) {
    throw new PostcopyUnsupportedError('post-copy is not supported for WebAssembly program guests: their loads and stores are not checked ' +
      '(a check would cost the source too, as the code is the same on both sides)');
  }
  const conflict = postcopyConflict(options.verify === true, options.mode === 'mainloop');
  if (conflict !== null) throw new InvalidArgumentError(conflict);
}

/** What cannot work on several channels, refused at `migrate` with why. */
function refuseMultifd(uri: string, options: MigrationOptions): void {
  if (parseUri(uri).kind === 'file') {
    throw new InvalidArgumentError('multifd cannot be used with file: its channels are connections (QEMU writes them at fixed offsets with mapped-ram, which ferry does not have)');
  }
  if (options.postcopy === true) throw new InvalidArgumentError(MULTIFD_POSTCOPY);
  if (options.mode === 'mainloop') throw new InvalidArgumentError(MULTIFD_MAINLOOP);
}

/** Kept here, where callers found it (migration-threads.ts holds the spare). */
export { prepareMigrationThread } from './migration-threads.js';

export interface MigrationResult {
  readonly status: MigrationStatus;
  readonly stats: SourceStats;
  /** What a failure, or the policy's cancel, says to the user (null when completed, or cancelled by the user and the source resumed). */
  readonly error: string | null;
  /** The error that ended a failed or cancelled migration, rebuilt as its class: branch on its `code`. */
  readonly failure: FerryError | null;
  /** For a failure: whether it came after GO (then neither side resumes by itself). */
  readonly afterGo: boolean;
}

/**
 * The mainloop parameters are also taken as options, their place before
 * they were parameters; the same names in `parameters` win.
 * @deprecated pass them in `parameters` (then migrate-set-parameters can change them).
 */
type OlderParameterOptions = Partial<Pick<MigrationParameters, 'mainloopStepCapMs' | 'zeroPageBudgetBytes'>>;

export interface MigrationOptions extends OlderParameterOptions {
  /** Digest RAM in each process at switchover; the destination resumes only if they match. */
  readonly verify?: boolean;
  /** QEMU's capability auto-converge: throttle the vCPUs while the guest dirties faster than the migration sends (auto-converge.ts). */
  readonly autoConverge?: boolean;
  /**
   * QEMU 8.1's capability dirty-limit: on the same trigger, limit each vCPU's
   * dirty rate to vcpu-dirty-limit, throttling each by its own measured rate
   * (dirty-limit.ts, dirty-limit-controller.ts). Not with autoConverge.
   */
  readonly dirtyLimit?: boolean;
  /**
   * QEMU's capability postcopy-ram: announced in the header (a destination
   * that cannot take post-copy refuses at once); startPostcopy() may then
   * switch to post-copy. Not over file:, not for WebAssembly program
   * guests, not with verify or the main-loop mode.
   */
  readonly postcopy?: boolean;
  /**
   * QEMU's capability multifd: the pages travel on the parameter
   * multifd-channels' connections, each with its own thread (channel-set.ts).
   * Not over file:, not with post-copy or the main-loop mode.
   */
  readonly multifd?: boolean;
  /**
   * QEMU's capability xbzrle: after the first pass, a page sent before goes
   * as its delta against a cache of what was sent (xbzrle-sender.ts), of
   * the parameter xbzrle-cache-size; with multifd, each channel keeps an
   * equal share (QEMU 8+ refuses multifd with xbzrle). Before GO only.
   */
  readonly xbzrle?: boolean;
  /** Tests only: corrupt the first this many post-copy page sends after their check is taken (the destination asks again). */
  readonly corruptPostcopyPages?: number;
  /** Tests only: with xbzrle on one connection, send the first this many deltas as a hostile one (a run past the page's end), with a valid check. */
  readonly hostileXbzrleDeltas?: number;
  /**
   * Called when the destination has answered LOADED, before the source
   * commits and sends GO: the last point at which a failure still resumes
   * the source. For fault injection in tests and for embedders' checks; a
   * throw fails the migration.
   */
  readonly onLoaded?: () => void | Promise<void>;
  /**
   * For a save to file: resume the source once the file is synced. By
   * default it stays paused (postmigrate), as after QEMU's migrate to file.
   */
  readonly resumeAfterSave?: boolean;
  /** 'thread' (default) or 'mainloop' (the benchmark's reproduction of the 2010 thread; see SourceInit). */
  readonly mode?: 'thread' | 'mainloop';
  /** TLS for the migration channel (see transport/tls.ts). */
  readonly tls?: TlsOptions;
  /**
   * The guest is this WebAssembly program (its identity: 64 lowercase hex
   * characters, a SHA-256): sent in the header, and a destination that does
   * not run the same program refuses the stream before any page.
   */
  readonly programIdentity?: string;
}

export class Migration extends EventEmitter<{ status: [MigrationStatus]; pass: [PassRecord]; stats: [SourceStats] }> {
  readonly uri: string;
  private readonly states = migrationStateMachine();
  private parameters: MigrationParameters;
  private worker: Worker | null = null;
  private latest: SourceCounters;
  /** Every live pass so far, in order: each arrives once, as its pass ends. */
  private readonly passes: PassRecord[] = [];
  private error: string | null = null;
  private failure: FerryError | null = null;
  private readonly finished: Promise<MigrationResult>;
  private finish!: (r: MigrationResult) => void;

  /** Start migrating `guest` to `uri` (tcp:HOST:PORT or unix:PATH). */
  static start(guest: Guest, uri: string, parameters: Partial<MigrationParameters> = {}, options: MigrationOptions = {}): Migration {
    const partial = guest.program?.instrumented.partial;
    if (partial !== undefined) {
      throw new InvalidArgumentError(`this guest runs a benchmark's partially instrumented program (steps ${JSON.stringify(partial)}): it cannot be migrated`);
    }
    const running = active.get(guest);
    if (running !== undefined && !isFinished(running.status)) {
      throw new InvalidStateError(`a migration of this guest to ${running.uri} is already ${running.status}`);
    }
    if (options.dirtyLimit === true) refuseDirtyLimit(guest, options.autoConverge === true);
    if (options.postcopy === true) refusePostcopy(guest, uri, options);
    if (options.multifd === true) refuseMultifd(uri, options);
    const { mainloopStepCapMs, zeroPageBudgetBytes } = options;
    const asOptions = withParameters(DEFAULT_PARAMETERS, { mainloopStepCapMs, zeroPageBudgetBytes });
    const all = withParameters(asOptions, parameters);
    const compression = compressionSetting(all, options.multifd === true); // refuses a codec that is not installed
    const m = new Migration(guest, uri, all, options, compression);
    active.set(guest, m);
    m.begin();
    return m;
  }

  private committed = false;
  /** auto-converge's and dirty-limit's throttles on the guest (migration-throttles.ts). */
  private readonly throttles: MigrationThrottles;
  /** Set when end() begins: only one end runs, whatever reports it. */
  private ending = false;
  /** Why post-copy paused (the last break or failed recovery). */
  private pausedFor: string | null = null;
  private readonly isFile: boolean;
  /** The guest's run state before the switchover pause: what a failure returns it to. */
  private stateBeforePause: RunState | null = null;

  private constructor(
    private readonly guest: Guest, uri: string, parameters: MigrationParameters, private readonly options: MigrationOptions,
    private readonly compression: ChannelCompressionInit | null = null,
  ) {
    super();
    const parsed = parseUri(uri);
    this.isFile = parsed.kind === 'file';
    if (options.tls !== undefined) {
      if (this.isFile) throw new InvalidArgumentError('TLS applies to tcp: and unix: channels, not to file:');
      checkTlsOptions(options.tls, 'source');
    }
    if (options.programIdentity !== undefined && !PROGRAM_IDENTITY_RE.test(options.programIdentity)) {
      throw new InvalidArgumentError(`programIdentity must be 64 lowercase hex characters (a SHA-256), got ${JSON.stringify(options.programIdentity)}`);
    }
    if (guest.runState !== 'running' && guest.runState !== 'paused' && guest.runState !== 'prelaunch') {
      throw new InvalidStateError(`cannot migrate a guest that is ${guest.runState}`);
    }
    this.uri = uri;
    this.parameters = parameters;
    this.throttles = new MigrationThrottles(guest, options.autoConverge === true, () => this.parameters.vcpuDirtyLimitPeriodMs);
    this.latest = emptyStats(guest.ramSize);
    this.finished = new Promise((resolve) => { this.finish = resolve; });
    this.states.on('change', (to) => this.emit('status', to));
  }

  get status(): MigrationStatus {
    return this.states.state;
  }

  /** The latest figures, with the pass history (append-only: held answers see later passes too). */
  get stats(): SourceStats {
    return { ...this.latest, passes: this.passes };
  }

  /** The passes numbered `since` and later: a client that has the history up to pass n asks for n + 1. */
  passesSince(since: number): readonly PassRecord[] {
    let first = this.passes.length;
    while (first > 0 && this.passes[first - 1].pass >= since) first--;
    return this.passes.slice(first);
  }

  get lastError(): string | null {
    return this.error;
  }

  /** The error that ended the migration (see MigrationResult.failure). */
  get lastFailure(): FerryError | null {
    return this.failure;
  }

  /**
   * Whether this source may hold the only copy of the guest: it committed
   * (postmigrate) and the destination has not confirmed that it runs the
   * guest (RESUMED). True from the commit until the migration completes,
   * and for good after a failure past the commit (after GO nobody knows
   * whether the destination resumed). Ending the source then could lose the
   * guest, so the CLI and QMP `quit` refuse without an override.
   */
  get mayHoldOnlyCopy(): boolean {
    return this.committed && this.guest.runState === 'postmigrate' && this.status !== 'completed';
  }

  /**
   * auto-converge's CPU throttle, percent (query-migrate's
   * cpu-throttle-percentage); null when it is off (the capability is off
   * and the policy has not engaged it) or the migration ended.
   */
  get cpuThrottlePercentage(): number | null {
    return isFinished(this.status) ? null : this.throttles.cpuThrottlePercentage;
  }

  /** dirty-limit's figures of the last period (query-migrate); null unless it is engaged and the migration runs. */
  get dirtyLimitFigures(): DirtyLimitFigures | null {
    return isFinished(this.status) ? null : this.throttles.dirtyLimitFigures;
  }

  get currentParameters(): MigrationParameters {
    return this.parameters;
  }

  /** Resolves when the migration has ended (completed, failed or cancelled). */
  done(): Promise<MigrationResult> {
    return this.finished;
  }

  /** As done(), but rejects with `failure` (code ERR_FERRY_CANCELLED when cancelled) unless the migration completed. */
  async completed(): Promise<MigrationResult> {
    const r = await this.finished;
    if (r.failure !== null) throw r.failure;
    return r;
  }

  setParameters(changes: Partial<MigrationParameters>): void {
    this.parameters = withParameters(this.parameters, changes);
    this.post({ type: 'set-parameters', parameters: this.parameters });
  }

  /** Whether this migration has postcopy-ram (fixed at its start). */
  get postcopyCapability(): boolean {
    return this.options.postcopy === true;
  }

  /**
   * migrate-start-postcopy (QEMU's words for its refusals): switch to
   * post-copy at the next chance (within the pass being sent). Not an
   * error once the migration ended (QEMU: that would race with the command).
   */
  startPostcopy(): void {
    if (this.options.postcopy !== true) throw new InvalidStateError('Enable postcopy with migrate_set_capability before the start of migration');
    if (this.status === 'none') throw new InvalidStateError('Postcopy must be started after migration has been started');
    if (!isFinished(this.status)) this.post({ type: 'start-postcopy' });
  }

  /**
   * Cancel: works in every status, twice, and after the end (a no-op then),
   * except in post-copy, where it is refused with QEMU's words (9.1 and
   * later; 7.2 obeyed it and lost the guest): the source cannot resume.
   * In postcopy-paused it gives the migration up (failed, after GO): the
   * way out when no recovery can come.
   */
  cancel(): void {
    const s = this.status;
    if (s === 'postcopy-paused') {
      // Given up: no recovery will come (the destination failed, or was never told GO). It ends failed; the guest stays
      // postmigrate here, and `cont` with the override recovers it if the other copy is known to be gone.
      this.post({ type: 'cancel' });
      return;
    }
    if (inPostcopy(s)) throw new InvalidStateError('Postcopy migration in progress, cannot cancel.');
    if (isFinished(s) || s === 'cancelling' || s === 'none') return;
    this.states.transition('cancelling');
    this.post({ type: 'cancel' });
  }

  /**
   * `migrate` with resume (QEMU's words for its refusal): recover the
   * paused post-copy over a new connection to `uri` (the destination's
   * migrate-recover address). Its progress shows in the status:
   * postcopy-recover-setup, postcopy-recover, postcopy-active; a failure
   * returns to postcopy-paused, and this may be called again.
   */
  resume(uri: string): void {
    if (this.status !== 'postcopy-paused') throw new InvalidStateError('Cannot resume if there is no paused migration');
    const parsed = parseUri(uri);
    if (parsed.kind === 'file') throw new InvalidArgumentError('post-copy resumes over a connection (tcp: or unix:), not file:');
    this.post({ type: 'resume', uri });
  }

  /** Why post-copy is paused (the broken link, or the failed recovery), while it is; else null. */
  get pauseReason(): string | null {
    return this.status === 'postcopy-paused' ? this.pausedFor : null;
  }

  private begin(): void {
    this.states.transition('setup');
    const init: SourceInit = {
      uri: this.uri,
      parameters: this.parameters,
      ram: this.guest.blocks.map((b) => b.toShared()),
      vcpuControls: this.guest.vcpuControlBuffers(),
      uuid: randomUUID(),
      verify: this.options.verify === true,
      programIdentity: this.options.programIdentity ?? this.guest.program?.instrumented.identity,
      mode: this.options.mode ?? 'thread',
      tls: this.options.tls,
      startedAtMs: monoMs(),
      autoConverge: this.options.autoConverge === true,
      dirtyLimit: this.options.dirtyLimit === true,
      postcopy: this.options.postcopy === true,
      channels: this.options.multifd === true ? this.parameters.multifdChannels : 0,
      compression: this.compression,
      xbzrle: this.options.xbzrle === true,
      corruptPostcopyPages: this.options.corruptPostcopyPages,
      hostileXbzrleDeltas: this.options.hostileXbzrleDeltas,
    };
    // Handle messages one at a time, in order: a failure reported while the
    // guest is being paused must see the pause finished, to undo it.
    let queue = Promise.resolve();
    const receive = (m: FromSource) => {
      queue = queue.then(() => this.onMessage(m));
    };
    if (init.mode === 'mainloop') {
      // The same session, on this thread: its steps run on the main event loop.
      let deliver: ((m: ToSource) => void) | null = null;
      this.sendToSource = (m) => queueMicrotask(() => deliver?.(m));
      const session = new SourceSession(init, { post: (m) => queueMicrotask(() => receive(m)), onMessage: (fn) => { deliver = fn; } });
      void session.run();
      return;
    }
    // The next spare thread starts when this migration ends (not now: its start would compete with this one for the CPU).
    const worker = takeMigrationThread(init);
    this.worker = worker;
    this.sendToSource = (m) => worker.postMessage(m);
    worker.on('message', receive);
    // Through the same queue: a thread that exits right after reporting
    // 'completed' must be seen as completed, not as having died.
    // A thread that died after the commit may have sent GO: then nobody
    // can tell whether the destination runs, so the source must not resume.
    worker.on('error', (err) => {
      queue = queue.then(() => this.end('failed', new WorkerFailedError(`the migration thread failed: ${err.message}`, { cause: err }), this.committed));
    });
    worker.on('exit', () => {
      queue = queue.then(() => (isFinished(this.status) ? undefined : this.end('failed', new WorkerFailedError('the migration thread exited early'), this.committed)));
    });
  }

  private async onMessage(m: FromSource): Promise<void> {
    switch (m.type) {
      case 'active':
        if (this.status === 'setup') this.states.transition('active');
        break;
      case 'pass':
        this.passes.push(m.pass);
        this.emit('pass', m.pass);
        break;
      case 'stats':
        this.updateStats(m.stats);
        break;
      case 'throttle':
        if (isFinished(this.status) || this.ending) break; // the throttle ends with the migration
        trace('throttle: %s', m.why);
        this.throttles.throttle(m.percent);
        break;
      case 'dirty-limit':
        if (isFinished(this.status) || this.ending) break; // the limit ends with the migration
        trace('dirty-limit: %s', m.why);
        this.throttles.limitDirtyRate(m.quotaMBPerSec);
        break;
      case 'pause':
        await this.pauseForSwitchover(m.postcopy);
        break;
      case 'postcopy-paused':
        if (isFinished(this.status)) break;
        this.pausedFor = m.reason;
        trace('post-copy paused: %s', m.reason);
        this.states.transition('postcopy-paused');
        break;
      case 'postcopy-recover-setup':
      case 'postcopy-recover':
        if (!isFinished(this.status)) this.states.transition(m.type);
        break;
      case 'postcopy-recovered':
        if (!isFinished(this.status)) this.states.transition('postcopy-active');
        break;
      case 'commit':
        try {
          await this.options.onLoaded?.();
          if (this.status !== 'device' && this.status !== 'postcopy-active') throw new MigrationError(`commit asked while ${this.status}`);
          this.guest.setRunState('postmigrate');
          this.committed = true;
          this.post({ type: 'committed' });
        } catch (err) {
          this.post({ type: 'commit-failed', error: serializeError(err) });
        }
        break;
      case 'completed':
        this.updateStats(m.stats);
        if (this.isFile && this.options.resumeAfterSave === true && this.stateBeforePause === 'running') await this.guest.resume();
        await this.end('completed', null, false);
        break;
      case 'failed': {
        this.updateStats(m.stats);
        const failure = rebuildError(m.error);
        await this.end(isCancelled(failure) ? 'cancelled' : 'failed', failure, m.afterGo);
        break;
      }
    }
  }

  private async pauseForSwitchover(postcopy: boolean): Promise<void> {
    const pausedAtMs = monoMs();
    try {
      if (this.status !== 'active') throw new MigrationError(`switchover asked while ${this.status}`);
      this.stateBeforePause = this.guest.runState;
      await this.guest.pause('finish-migrate', { timeoutMs: this.parameters.pauseTimeoutMs });
      const ackedAtMs = monoMs();
      const devices = this.guest.devices.saveAll();
      this.states.transition(postcopy ? 'postcopy-active' : 'device');
      this.post({ type: 'paused', devices, pausedAtMs, ackedAtMs, wasRunning: this.stateBeforePause === 'running' });
    } catch (err) {
      this.post({ type: 'pause-failed', error: serializeError(err) });
    }
  }

  /**
   * End the migration. Before GO the source guest resumes if it was paused
   * for switchover: in finish-migrate, or in postmigrate if this migration
   * committed but the migration thread reports that GO was never sent.
   * After GO nobody resumes it by itself. `failure`: what ended it (null
   * when completed); its message becomes `error`, except a cancel by the
   * user (migrate_cancel needs no words; the policy's cancel says why).
   */
  private async end(status: 'completed' | 'failed' | 'cancelled', failure: FerryError | null, afterGo: boolean): Promise<void> {
    if (isFinished(this.status) || this.ending) return;
    this.ending = true;
    this.throttles.end(); // whatever the outcome (QEMU: cpu_throttle_stop, cancel-vcpu-dirty-limit)
    const error = status === 'completed' || ferryCodeOf(failure) === 'ERR_FERRY_CANCELLED' ? null : failure?.message ?? null;
    this.error = error;
    this.failure = failure;
    const rs = this.guest.runState;
    if (status !== 'completed' && !afterGo && (rs === 'finish-migrate' || (rs === 'postmigrate' && this.committed))) {
      try {
        // Back to what it was: a guest that was running runs again; one
        // stopped by the user (or never started) stays so, as QEMU does.
        if (this.stateBeforePause === 'running') await this.guest.resume();
        else this.guest.setRunState(this.stateBeforePause ?? 'paused');
      } catch (err) {
        this.error = `${error ?? 'cancelled'}; resuming the source failed: ${(err as Error).message}`;
      }
    }
    trace('migration %s%s', status, error === null ? '' : `: ${error}`);
    if (status === 'cancelled' && this.status !== 'cancelling') this.states.transition('cancelling');
    if (status === 'failed' && afterGo) {
      this.error = inPostcopy(this.status)
        ? `${error} (during post-copy: the guest is lost; the destination lacks pages that only this side held, and this side stays paused, never to resume by itself)`
        : `${error} (after GO: the destination holds the guest; neither side resumes by itself)`;
    }
    this.states.transition(status);
    void this.worker?.terminate();
    if (status !== 'completed') prepareAgainIfWanted(); // ready for the next attempt
    this.finish({ status, stats: this.stats, error: this.error, failure, afterGo });
  }

  private updateStats(stats: SourceCounters): void {
    this.latest = stats;
    this.emit('stats', this.stats);
  }

  private sendToSource: (m: ToSource) => void = () => {};

  private post(m: ToSource): void {
    this.sendToSource(m);
  }
}

