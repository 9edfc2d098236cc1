/**
 * An incoming migration seen from the destination's main thread: it starts
 * the loader thread, creates the guest around the RAM the loader fills
 * (vCPU workers start while pages arrive, so resuming costs no worker
 * start), loads device sections and vCPU states at the end, and resumes the
 * guest on GO. The guest stays in 'inmigrate' until then and is discarded
 * if anything fails. In post-copy it marks the missing pages before GO and
 * resumes with them missing (postcopy-active) until every page is here; a
 * failure then loses the guest: it is paused (it could not run on) and the
 * failure says so.
 */
import { EventEmitter } from 'node:events';
import { Worker } from 'node:worker_threads';
import { InvalidArgumentError, InvalidStateError, TransportError, WorkerFailedError, ferryCodeOf, isCancelled, type FerryError } from '../errors.js';
import { Guest } from '../guest/guest.js';
import { programRamOptions, type GuestProgram } from '../guest/wasm-program.js';
import { rebuildError, serializeError } from '../serialized-error.js';
import { createTracer } from '../trace.js';
import { checkTlsOptions, type TlsOptions } from '../transport/tls.js';
import { parseUri } from '../transport/uri.js';
import { MAX_VCPUS, PROGRAM_IDENTITY_RE, type StreamHeader } from '../wire/format.js';
import { prepareVcpuThreads } from '../guest/vcpu-threads.js';
import { incomingInPostcopy, incomingStateMachine, isIncomingFinished, type IncomingStatus } from './incoming-status.js';
import type { FromLoader, LoaderInit, LoaderStats, ProgramExpectation, ToLoader } from './messages.js';
import { DEFAULT_DESTINATION_PARAMETERS, PARAMETER_TABLE, withParameters, type DestinationParameters } from './parameters.js';
import { Signal } from './waiter.js';
import type { PreallocFigures } from './preallocation.js';
import { requireHugePages } from '../memory/huge-pages.js';

export type { IncomingStatus } from './incoming-status.js';
export type { ProgramExpectation } from './messages.js';

const trace = createTracer('incoming');

// The destination's limits are parameters (parameters.ts); these names stay for callers.
export const DEFAULT_MAX_GUEST_BYTES = PARAMETER_TABLE.maxGuestBytes.default;
export const DEFAULT_MAX_FRAME_BYTES = PARAMETER_TABLE.maxFrameBytes.default;
/** A full PAGES record: every source sends these. */
export const MIN_FRAME_BYTES = PARAMETER_TABLE.maxFrameBytes.min;
export const DEFAULT_IDLE_TIMEOUT_MS = PARAMETER_TABLE.idleTimeoutMs.default;
export const DEFAULT_PRESTART_VCPUS = 2;

/** The destination's limits (maxGuestBytes, maxFrameBytes, idleTimeoutMs; defaults and ranges in parameters.ts), and the rest. */
export interface IncomingOptions extends Partial<DestinationParameters> {
  /** TLS for the channel: the destination presents cert/key; with `ca` it requires a client certificate. */
  readonly tls?: TlsOptions;
  /** Listen on a non-loopback address without TLS (refused otherwise: anyone who can reach it could send a guest). */
  readonly allowInsecure?: boolean;
  /** Check the stream against this configuration (as QEMU's -m / -smp must match); default: take it from the stream. */
  readonly expect?: { readonly ramBytes?: number; readonly vcpus?: number };
  /**
   * vCPU threads to start now, while waiting, so that the switchover does not
   * wait for threads to start when the header arrives (default: the
   * expected vCPU count, else 2). 0 starts none.
   */
  readonly prestartVcpus?: number;
  /** Called with the new guest before any section is loaded: register device sections here. */
  readonly onGuest?: (guest: Guest) => void;
  /**
   * The WebAssembly program this destination runs: the stream must carry
   * its identity (else it is refused, before any page, as `program`), and
   * its RAM blocks are built with `ram` (the reserved tail, the mark map,
   * the size word). Without it, a stream that carries a program is refused.
   */
  readonly program?: ProgramExpectation;
  /** The WebAssembly program the guest runs (wasm-program.ts); it gives `program` (its identity and RAM layout) when that is not given. */
  readonly wasm?: GuestProgram;
  /** Tests only: cap preallocation (prealloc) below the free-memory cap, bytes. */
  readonly preallocMaxBytes?: number;
  /**
   * Advise the guest's RAM for transparent huge pages before any page is
   * loaded (memory/huge-pages.ts; `--huge-pages`). Refused at listen, with a
   * HugePagesUnavailableError saying why, where huge pages are not reachable.
   */
  readonly hugePages?: boolean;
}

export interface IncomingResult {
  readonly status: IncomingStatus;
  readonly guest: Guest | null;
  /** What a failure or cancellation says to the user (null when resumed). */
  readonly error: string | null;
  /** The error that ended it, rebuilt as its class (null when resumed): branch on its `code`. */
  readonly failure: FerryError | null;
  readonly stats: LoaderStats | null;
}

export class IncomingMigration extends EventEmitter<{ status: [IncomingStatus]; guest: [Guest]; rejected: [string] }> {
  private readonly states = incomingStateMachine();
  private worker!: Worker;
  private guestValue: Guest | null = null;
  private guestReady = new Signal<Guest>();
  private header: StreamHeader | null = null;
  private error: string | null = null;
  private failure: FerryError | null = null;
  private statsValue: LoaderStats | null = null;
  private preallocValue: PreallocFigures | null = null;
  private readonly finished = new Signal<IncomingResult>();
  /** The loader thread ended (it let go of the connection). */
  private readonly exited = new Signal();
  /** The address actually listened on (a tcp: port 0 becomes the real port); a recovery's once migrate-recover listens. */
  uri = '';
  private pausedFor: string | null = null;
  /** migrate-recover waits for the address its listener got (or for a pause: listening failed). */
  private recoverListening: Signal<string> | null = null;

  /** Listen on `uri` for one incoming migration; resolves once listening. */
  static async listen(uri: string, options: IncomingOptions = {}): Promise<IncomingMigration> {
    const where = parseUri(uri);
    const { maxGuestBytes, maxFrameBytes, idleTimeoutMs, prealloc, preallocThreads } = options;
    const limits = withParameters(DEFAULT_DESTINATION_PARAMETERS, { maxGuestBytes, maxFrameBytes, idleTimeoutMs, prealloc, preallocThreads });
    if (limits.prealloc === 1 && where.kind === 'file') {
      throw new InvalidArgumentError('preallocation (prealloc) needs the source\'s ever-written map, which it asks for over the connection: a file: stream has none');
    }
    if (options.tls !== undefined) checkTlsOptions(options.tls, 'destination');
    if (options.hugePages === true) requireHugePages('huge pages (hugePages)');
    const program = options.program ?? (options.wasm === undefined ? undefined : programExpectation(options.wasm));
    if (program !== undefined) checkProgram(program);
    const prestart = options.prestartVcpus ?? options.expect?.vcpus ?? DEFAULT_PRESTART_VCPUS;
    if (!Number.isSafeInteger(prestart) || prestart < 0) throw new InvalidArgumentError(`prestartVcpus must be an integer of at least 0, got ${String(prestart)}`);
    const m = new IncomingMigration(options);
    prepareVcpuThreads(Math.min(prestart, MAX_VCPUS));
    await m.start({ uri, ...limits, expect: options.expect, tls: options.tls, allowInsecure: options.allowInsecure, program, preallocMaxBytes: options.preallocMaxBytes, hugePages: options.hugePages });
    return m;
  }

  private constructor(private readonly options: IncomingOptions) {
    super();
    this.states.on('change', (to) => this.emit('status', to));
  }

  get status(): IncomingStatus {
    return this.states.state;
  }

  get guest(): Guest | null {
    return this.guestValue;
  }

  /** The loader's figures once the migration ended. */
  get stats(): LoaderStats | null {
    return this.statsValue;
  }

  /**
   * Preallocation's figures (prealloc): as it started, then as it ended (its
   * time apart from the migration's); null before the map came or without it.
   */
  get preallocation(): PreallocFigures | null {
    return this.preallocValue ?? this.statsValue?.prealloc ?? null;
  }

  get lastError(): string | null {
    return this.error;
  }

  /** The error that ended the migration (see IncomingResult.failure). */
  get lastFailure(): FerryError | null {
    return this.failure;
  }

  get streamHeader(): StreamHeader | null {
    return this.header;
  }

  /** Resolves when the migration ended: resumed here, or failed (the guest then discarded). */
  done(): Promise<IncomingResult> {
    return this.finished.promise;
  }

  /** As done(), but rejects with `failure` (code ERR_FERRY_CANCELLED when cancelled) unless the guest resumed here. */
  async resumed(): Promise<IncomingResult> {
    const r = await this.finished.promise;
    if (r.failure !== null) throw r.failure;
    return r;
  }

  /**
   * Resolves once the loader thread let go of the connection and ended.
   * After a failure it keeps reading until the source closes (for at most
   * 2 s), so that the source reads why, REFUSED or ERROR, rather than a
   * reset connection. A process about to exit after a failure waits for
   * this; it holds the process open until then.
   */
  async released(): Promise<void> {
    this.worker.ref();
    await this.exited.promise;
  }

  cancel(): void {
    if (isIncomingFinished(this.status)) return;
    this.post({ type: 'cancel' });
  }

  /**
   * migrate-recover (QEMU's words for its refusal): listen on `uri` for the
   * source's recovery of a paused post-copy (the source then runs `migrate`
   * with resume to this address); resolves with the address listened on
   * (a tcp: port 0 becomes the real port). A recovery that fails returns to
   * postcopy-paused, and this may be called again.
   */
  async recover(uri: string): Promise<string> {
    if (this.status !== 'postcopy-paused') throw new InvalidStateError('Migrate recover can only be run when postcopy is paused.');
    if (this.recoverListening !== null) throw new InvalidStateError('Migrate recovery is triggered already');
    if (parseUri(uri).kind === 'file') throw new InvalidArgumentError('post-copy recovers over a connection (tcp: or unix:), not file:');
    const listening = new Signal<string>();
    this.recoverListening = listening;
    this.post({ type: 'recover', uri });
    const address = await listening.promise;
    this.uri = address;
    return address;
  }

  /** Why post-copy is paused (the broken link, or the failed recovery), while it is; else null. */
  get pauseReason(): string | null {
    return this.status === 'postcopy-paused' ? this.pausedFor : null;
  }

  private async start(init: LoaderInit): Promise<void> {
    const listening = new Signal<string>();
    this.worker = new Worker(new URL('./loader-worker.js', import.meta.url), { workerData: init });
    this.worker.on('exit', () => this.exited.resolve());
    let queue = Promise.resolve();
    this.worker.on('message', (m: FromLoader) => {
      if (m.type === 'listening') listening.resolve(m.uri);
      else if (m.type === 'failed' && !listening.settled) listening.reject(listenFailure(rebuildError(m.error)));
      // A message out of order (a transition the table refuses) fails this side rather than the process.
      queue = queue.then(() => this.onMessage(m)).catch((err: unknown) =>
        this.end('failed', new WorkerFailedError(`the loader thread's message ${m.type} failed: ${(err as Error).message}`, { cause: err })));
    });
    this.worker.on('error', (err) => {
      listening.reject(err);
      queue = queue.then(() => this.end('failed', new WorkerFailedError(`the loader thread failed: ${err.message}`, { cause: err })));
    });
    this.uri = await listening.promise;
  }

  private async onMessage(m: FromLoader): Promise<void> {
    switch (m.type) {
      case 'listening':
        break;
      case 'connected':
        this.states.transition('connected');
        break;
      case 'rejected':
        this.emit('rejected', m.reason);
        break;
      case 'header':
        this.header = m.header;
        this.states.transition('loading');
        try {
          const guest = await Guest.create({
            ram: m.header.blocks.map((b) => ({ name: b.name, size: b.pages * 4096 })),
            adoptRam: m.ram,
            vcpus: Array.from({ length: m.header.vcpus }, () => ({ kind: 'idle' as const })),
            program: this.options.wasm,
            incoming: true,
          });
          this.guestValue = guest;
          this.options.onGuest?.(guest);
          this.emit('guest', guest);
          this.guestReady.resolve(guest);
        } catch (err) {
          this.guestReady.reject(err as Error);
        }
        break;
      case 'loaded':
        try {
          const guest = await this.guestReady.promise;
          guest.devices.loadAll(m.devices);
          guest.loadVcpuStates(m.vcpus);
          // Post-copy: before the vCPUs first run (invariant 7); the loader installs through the same map.
          for (let i = 0; m.missing !== null && i < m.missing.length; i += 2) guest.pages.markRangeMissing(m.missing[i], m.missing[i + 1]);
          this.states.transition('loaded');
          this.post({ type: 'load-ok', pages: m.missing === null ? undefined : guest.pages.installerShared() });
        } catch (err) {
          this.post({ type: 'load-failed', error: serializeError(err) });
        }
        break;
      case 'go':
        try {
          if (m.run) await this.guestValue!.resume();
          else this.guestValue!.setRunState('paused');
          if (m.postcopy) this.states.transition('postcopy-active');
          this.post({ type: 'resumed' });
        } catch (err) {
          this.post({ type: 'resume-failed', error: serializeError(err) });
        }
        break;
      case 'done':
        this.statsValue = m.stats;
        await this.end('resumed', null);
        break;
      case 'prealloc':
        this.preallocValue = m.figures;
        trace('preallocation %s: %d of %d pages in %d ms', m.figures.status, m.figures.touchedPages, m.figures.mapPages, m.figures.ms);
        break;
      case 'postcopy-paused':
        if (isIncomingFinished(this.status)) break;
        this.pausedFor = m.reason;
        this.recoverListening?.reject(new TransportError(m.reason));
        this.recoverListening = null;
        trace('post-copy paused: %s', m.reason);
        if (this.status !== 'postcopy-paused') this.states.transition('postcopy-paused'); // (a recovery that could not listen stays paused)
        break;
      case 'postcopy-recover-setup':
        this.recoverListening?.resolve(m.uri ?? '');
        this.recoverListening = null;
        this.states.transition('postcopy-recover-setup');
        break;
      case 'postcopy-recover':
        this.states.transition('postcopy-recover');
        break;
      case 'postcopy-recovered':
        this.states.transition('postcopy-active');
        break;
      case 'failed': {
        this.statsValue = m.stats;
        const failure = rebuildError(m.error);
        await this.end(isCancelled(failure) ? 'cancelled' : 'failed', failure);
        break;
      }
    }
  }

  private async end(status: 'resumed' | 'failed' | 'cancelled', failure: FerryError | null): Promise<void> {
    if (this.finished.settled) return;
    const error = failure?.message ?? null;
    this.error = error;
    this.failure = failure;
    trace('incoming migration %s%s', status, error === null ? '' : `: ${error}`);
    if (status !== 'resumed' && this.guestValue !== null && this.guestValue.runState === 'inmigrate') {
      await this.guestValue.destroy(); // never resumed on partial state: discard it
      this.guestValue = null;
    }
    if (status !== 'resumed' && incomingInPostcopy(this.status) && this.guestValue?.runState === 'running') {
      // Pages it needs will never come: stop it rather than leave its vCPUs waiting as if it ran.
      await this.guestValue.pause().catch(() => {});
    }
    this.states.transition(status);
    this.recoverListening?.reject(new InvalidStateError(`the incoming migration ended (${status}) before the recovery listened`));
    this.recoverListening = null;
    // The loader thread ends by itself once its connection closes (after a
    // failure it lingers to let the source read the reason); never wait on it.
    this.worker.unref();
    setTimeout(() => void this.worker.terminate(), 10_000).unref();
    this.finished.resolve({ status, guest: this.guestValue, error: this.error, failure, stats: this.statsValue });
  }

  private post(m: ToLoader): void {
    this.worker.postMessage(m);
  }
}

/** What the stream of a guest running `program` must carry, and how its RAM is laid out. */
function programExpectation(program: GuestProgram): ProgramExpectation {
  return { identity: program.instrumented.identity, ram: programRamOptions(program.instrumented.layout) };
}

/** A destination's program: an identity as the header carries it, and RAM options (checked when the blocks are made). */
function checkProgram(program: ProgramExpectation): void {
  if (typeof program.identity !== 'string' || !PROGRAM_IDENTITY_RE.test(program.identity)) {
    throw new InvalidArgumentError(`program.identity must be 64 lowercase hex characters (a SHA-256), got ${JSON.stringify(program.identity)}`);
  }
  if (typeof program.ram !== 'object' || program.ram === null) throw new InvalidArgumentError('program.ram must be the RAM block options of the program\'s layout');
}

/** Why listening failed: a ferry error as it is (its code tells), anything else as a TransportError. */
function listenFailure(err: FerryError): FerryError {
  return ferryCodeOf(err) === undefined ? new TransportError(err.message, { cause: err }) : err;
}
