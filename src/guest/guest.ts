/**
 * A guest: its RAM blocks, its vCPUs (worker threads, started once and
 * kept), its device-state registry and its run state. Nothing here knows
 * about migration; migration drives a guest through `pause`, `resume`,
 * `vcpuStates` and `loadVcpuStates`.
 * Over 300 lines: the run-state transitions and the pause handshake share
 * its state; the WebAssembly guests (issue 13) will move the vCPU start-up
 * and the throttle into their own pieces.
 */
import { EventEmitter } from 'node:events';
import type { Worker } from 'node:worker_threads';
import { InvalidArgumentError, InvalidStateError, TimeoutError, WorkerFailedError } from '../errors.js';
import { GuestMemory } from '../memory/guest-memory.js';
import { adviseBlocks, requireHugePages } from '../memory/huge-pages.js';
import { MAX_BLOCK_BYTES } from '../memory/page.js';
import { RamBlock, reserveBlocks, type RamBlockShared } from '../memory/ram-block.js';
import { rebuildError } from '../serialized-error.js';
import { createTracer } from '../trace.js';
import { DeviceRegistry } from './device-state.js';
import { GuestPages } from './guest-pages.js';
import { GuestRam } from './guest-ram.js';
import { runStateMachine, type RunState } from './run-state.js';
import type { StateMachine } from '../state-machine.js';
import { RequestKind, Stat, VcpuControl, newControlBuffer } from './vcpu-control.js';
import { decodeVcpuState, encodeVcpuState } from './vcpu-loop.js';
import type { VcpuInit, VcpuMessage, VcpuState } from './vcpu-messages.js';
import { takeVcpuThread } from './vcpu-threads.js';
import { checkProgramVcpuState, programRamSpec, programVcpu, ringDoorbell, ThrottleBell, wasiSection, type GuestProgram } from './wasm-program.js';
import { createWorkload, restoreWorkload, type WorkloadSpec } from './workloads/index.js';

export interface RamBlockSpec {
  readonly name: string;
  readonly size: number;
}

export interface GuestOptions {
  /** RAM blocks, or a total size split into blocks of at most 4 GiB named ram0, ram1, ... */
  readonly ram?: number | readonly RamBlockSpec[];
  /** Use these existing blocks as the guest's RAM instead (a destination's loader made them). */
  readonly adoptRam?: readonly RamBlockShared[];
  /** One workload per vCPU (default: one idle vCPU; [] for none). */
  readonly vcpus?: readonly WorkloadSpec[];
  /** Start in 'inmigrate' (a destination) instead of 'prelaunch'. */
  readonly incoming?: boolean;
  /** Default limit for a pause to be acknowledged by every vCPU (default 1000 ms). */
  readonly pauseTimeoutMs?: number;
  /** Run a WebAssembly program on one vCPU over one RAM block (wasm-program.ts); `ram` and `vcpus` are then ignored. */
  readonly program?: GuestProgram;
  /** Post-copy: how often a vCPU waiting for a page re-checks it and its requests, a safety net (default 100 ms; page-waits.ts). */
  readonly pageWaitSafetyMs?: number;
  /**
   * Advise the RAM it reserves for transparent huge pages before any vCPU
   * touches it (memory/huge-pages.ts; `ferry run --huge-pages`). Throws a
   * HugePagesUnavailableError, saying why, where they are not reachable.
   * Not with adoptRam (the loader advised those blocks, or not).
   */
  readonly hugePages?: boolean;
}

export interface VcpuStats {
  readonly busyNs: number;
  /** Throttle sleep slept, ns; `throttleAskedNs` is what was asked (a loaded machine oversleeps). */
  readonly throttleNs: number;
  readonly throttleAskedNs: number;
  readonly idleNs: number;
  /** Post-copy: time blocked waiting for missing pages, ns, and the number of waits (guest-pages.ts). */
  readonly pageWaitNs: number;
  readonly pageWaits: number;
  readonly guestNs: number;
  readonly pagesWritten: number;
  /** Pages this vCPU's marks found clean: its own dirty count (vcpu-control.ts Stat.PagesDirtied; 0 for a WebAssembly vCPU). */
  readonly pagesDirtied: number;
  /** Pages read by a `read` workload. */
  readonly pagesRead: number;
  readonly slices: number;
  readonly pauses: number;
}

/** Time allowed for vCPU workers to start (a worker start is ~31 ms here). */
const START_TIMEOUT_MS = 15_000;
const MAX_VCPUS = 64;
const trace = createTracer('guest');

export function splitRam(total: number): RamBlockSpec[] {
  if (typeof total !== 'number' || !Number.isSafeInteger(total) || total <= 0) {
    throw new InvalidArgumentError(`guest RAM size must be a positive integer number of bytes, got ${String(total)}`);
  }
  const blocks: RamBlockSpec[] = [];
  for (let at = 0, i = 0; at < total; at += MAX_BLOCK_BYTES, i++) {
    blocks.push({ name: `ram${i}`, size: Math.min(MAX_BLOCK_BYTES, total - at) });
  }
  return blocks;
}

interface Vcpu {
  readonly index: number;
  readonly control: VcpuControl;
  readonly worker: Worker;
}

export class Guest extends EventEmitter<{ runstate: [to: RunState, from: RunState]; error: [Error]; exit: [code: number] }> {
  readonly blocks: readonly RamBlock[];
  /** Raw page view of RAM (reading, checkers); writes go through `ram`. */
  readonly memory: GuestMemory;
  readonly ram: GuestRam;
  /** Post-copy: missing pages, installs, the vCPUs' requests and the figures (guest-pages.ts). */
  readonly pages: GuestPages;
  readonly devices = new DeviceRegistry();
  readonly pauseTimeoutMs: number;
  /** The WebAssembly program this guest runs, if any. */
  readonly program: GuestProgram | null;
  /** With hugePages: the bytes of its RAM advised for huge pages (null: not asked). */
  readonly hugePagesAdvised: number | null;
  /** The program's exit status once it has exited (its vCPU then idles; the guest can still migrate). */
  exitCode: number | null = null;
  private readonly states: StateMachine<RunState>;
  private readonly vcpus: Vcpu[] = [];
  /** A program's throttle doorbell (null: not a program). */
  private readonly bell: ThrottleBell | null;
  private failure: Error | null = null;
  /** Set once destroy() terminates the vCPU threads: their exits are its doing. */
  private destroying = false;

  static async create(options: GuestOptions): Promise<Guest> {
    const guest = new Guest(options);
    try {
      await guest.startVcpus(options.program !== undefined ? [] : options.vcpus ?? [{ kind: 'idle' }]);
    } catch (err) {
      await guest.destroy();
      throw err;
    }
    return guest;
  }

  private constructor(options: GuestOptions) {
    super();
    this.program = options.program ?? null;
    const program = this.program === null ? null : programRamSpec(this.program);
    const specs = program !== null ? [program] : typeof options.ram === 'number' ? splitRam(options.ram) : options.ram ?? [];
    if (!Array.isArray(specs) || specs.length === 0) {
      throw new InvalidArgumentError('guest RAM: give a total size or at least one block');
    }
    const names = new Set<string>();
    for (const s of specs) {
      if (names.has(s.name)) throw new InvalidArgumentError(`guest RAM: block name ${JSON.stringify(s.name)} is used twice`);
      names.add(s.name);
    }
    this.pauseTimeoutMs = checkTimeout(options.pauseTimeoutMs ?? 1000);
    const huge = options.hugePages === true && options.adoptRam === undefined ? requireHugePages('guest RAM (hugePages)') : null;
    this.blocks = options.adoptRam !== undefined ? options.adoptRam.map((s) => new RamBlock(s))
      : program !== null ? [RamBlock.create(program.name, program.size, program.options)] : reserveBlocks(specs);
    this.hugePagesAdvised = huge === null ? null : adviseBlocks(this.blocks, huge);
    this.memory = new GuestMemory(this.blocks);
    this.bell = this.program === null ? null : new ThrottleBell(this.blocks[0], this.program.instrumented.layout);
    this.states = runStateMachine(options.incoming === true ? 'inmigrate' : 'prelaunch');
    this.states.on('change', (to, from) => this.emit('runstate', to, from));
    const workloads = options.vcpus ?? [{ kind: 'idle' }];
    const vcpus = this.program !== null || !Array.isArray(workloads) ? 0 : Math.min(MAX_VCPUS, workloads.length);
    this.pages = new GuestPages(this.blocks, vcpus, {
      runState: () => this.states.state, program: this.program !== null, vcpuWaits: () => this.vcpuStats(),
    }, options.pageWaitSafetyMs);
    this.ram = new GuestRam(this.blocks, () => this.states.state, this.pages);
  }

  get runState(): RunState {
    return this.states.state;
  }

  get vcpuCount(): number {
    return this.vcpus.length;
  }

  get ramSize(): number {
    return this.ram.size;
  }

  // ---- user-level commands (QMP `cont` / `stop`) ----

  /**
   * Run the guest. Refused while an incoming migration or a switchover is in
   * progress, and in 'postmigrate' (DESIGN.md invariant 6: the guest has
   * moved, and its other copy may run) unless `force`: the deliberate
   * override for when the other side is known to be gone (QMP `cont` with
   * `x-ferry-force`; QEMU itself allows it).
   */
  async cont(options: { force?: boolean } = {}): Promise<void> {
    const s = this.runState;
    if (s === 'running') return;
    if (s === 'inmigrate' || s === 'finish-migrate') {
      throw new InvalidStateError(`guest: cannot continue while ${s === 'inmigrate' ? 'waiting for an incoming migration' : 'a migration is switching over'}`);
    }
    if (s === 'postmigrate' && options.force !== true) {
      throw new InvalidStateError('guest: cannot continue a guest that has migrated away (postmigrate): its other copy may be running, ' +
        'and two copies must never run; force it only if the other side is known to be gone');
    }
    await this.resume();
  }

  /** Pause the guest (QMP `stop`). Refused during a switchover. */
  async stop(): Promise<void> {
    const s = this.runState;
    if (s === 'paused') return;
    if (s === 'finish-migrate') throw new InvalidStateError('guest: cannot stop while a migration is switching over');
    await this.pause('paused');
  }

  // ---- mechanism (used by migration and by the commands above) ----

  /**
   * Pause every vCPU and enter run state `to`. Resolves once every vCPU has
   * acknowledged: after that no vCPU writes RAM. If a vCPU does not
   * acknowledge within `timeoutMs` the pause is undone (vCPUs run again, the
   * state is unchanged) and a TimeoutError is thrown.
   */
  async pause(to: RunState = 'paused', options: { timeoutMs?: number } = {}): Promise<void> {
    const timeoutMs = checkTimeout(options.timeoutMs ?? this.pauseTimeoutMs);
    this.checkAlive();
    if (!this.states.can(to)) {
      throw new InvalidStateError(`guest: cannot pause into '${to}' from '${this.runState}'`);
    }
    if (this.runState === 'running') {
      const requests = this.post(RequestKind.Pause);
      const deadline = performance.now() + timeoutMs;
      const acked = await Promise.all(this.vcpus.map((v, i) => v.control.waitAck(requests[i], deadline)));
      this.checkAlive();
      const late = acked.flatMap((ok, i) => (ok ? [] : [i]));
      if (late.length > 0) {
        for (const v of this.vcpus) v.control.post(RequestKind.Run);
        throw new TimeoutError(`guest: vCPU ${late.join(', ')} did not acknowledge the pause within ${timeoutMs} ms`);
      }
    }
    this.states.transition(to);
  }

  /** Run every vCPU (loading any vCPU state placed by loadVcpuStates). */
  async resume(options: { timeoutMs?: number } = {}): Promise<void> {
    this.checkAlive();
    if (this.runState === 'running') return;
    if (!this.states.can('running')) {
      throw new InvalidStateError(`guest: cannot run from '${this.runState}'`);
    }
    const timeoutMs = checkTimeout(options.timeoutMs ?? this.pauseTimeoutMs);
    const requests = this.vcpus.map((v) => v.control.post(RequestKind.Run));
    const deadline = performance.now() + timeoutMs;
    const acked = await Promise.all(this.vcpus.map((v, i) => v.control.waitAck(requests[i], deadline)));
    this.checkAlive();
    if (acked.includes(false)) throw new TimeoutError(`guest: vCPUs did not start running within ${timeoutMs} ms`);
    this.states.transition('running');
  }

  /** Enter a run state that involves no vCPU change (e.g. 'postmigrate' from 'finish-migrate'). */
  setRunState(to: RunState): void {
    if (to === 'running' || (this.runState === 'running' && to !== 'shutdown')) {
      throw new InvalidStateError(`guest: use pause() / resume() to go from '${this.runState}' to '${to}'`);
    }
    this.states.transition(to);
  }

  /** The throttle in force, percent (the first vCPU's: throttle() sets them all alike). */
  get throttlePercent(): number {
    return this.vcpus[0]?.control.throttle() ?? 0;
  }

  /** Each vCPU sleeps `percent` of every slice (0 to 99); a program's at its polls, its doorbell rung every slice meanwhile. */
  throttle(percent: number): void {
    if (!Number.isInteger(percent) || percent < 0 || percent > 99) {
      throw new InvalidArgumentError(`guest: throttle must be an integer percent in [0, 99], got ${String(percent)}`);
    }
    for (const v of this.vcpus) v.control.setThrottle(percent);
    this.bell?.ring(percent > 0 && this.runState !== 'shutdown');
  }

  /** Each vCPU's throttle in force, percent, by vCPU index. */
  get vcpuThrottles(): number[] {
    return this.vcpus.map((v) => v.control.throttle());
  }

  /** vCPU `index` alone sleeps `percent` of every slice (0 to 99); the others keep theirs (dirty-limit throttles each vCPU by its own rate). */
  throttleVcpu(index: number, percent: number): void {
    if (!Number.isInteger(index) || index < 0 || index >= this.vcpus.length) {
      throw new InvalidArgumentError(`guest: vCPU index must be an integer in [0, ${this.vcpus.length - 1}], got ${String(index)}`);
    }
    if (!Number.isInteger(percent) || percent < 0 || percent > 99) {
      throw new InvalidArgumentError(`guest: throttle must be an integer percent in [0, 99], got ${String(percent)}`);
    }
    this.vcpus[index].control.setThrottle(percent);
    this.bell?.ring(this.vcpus.some((v) => v.control.throttle() > 0) && this.runState !== 'shutdown');
  }

  /** The vCPUs' own saved states; the guest must be paused. */
  vcpuStates(): VcpuState[] {
    if (this.program !== null) throw new InvalidStateError('guest: a WebAssembly vCPU\'s state is binary (vcpuStateBytes)');
    return this.vcpuStateBytes().map(decodeVcpuState);
  }

  /** The vCPUs' saved states as the bytes each vCPU wrote; the guest must be paused. */
  vcpuStateBytes(): Uint8Array[] {
    if (this.runState === 'running') throw new InvalidStateError('guest: vCPU state is only defined while paused');
    return this.vcpus.map((v) => v.control.savedState());
  }

  /** Place states for the vCPUs to continue from at the next resume. */
  loadVcpuStates(states: readonly (VcpuState | Uint8Array)[]): void {
    if (this.runState === 'running') throw new InvalidStateError('guest: cannot load vCPU state while running');
    if (states.length !== this.vcpus.length) {
      throw new InvalidArgumentError(`guest: got ${states.length} vCPU states for ${this.vcpus.length} vCPUs`);
    }
    const encoded = states.map((s) => (s instanceof Uint8Array ? s : encodeVcpuState(s)));
    for (const bytes of encoded) {
      if (this.program !== null) {
        checkProgramVcpuState(this.program, bytes);
        continue;
      }
      const state = decodeVcpuState(bytes);
      if (typeof state.guestNs !== 'number' || !(state.guestNs >= 0)) {
        throw new InvalidArgumentError(`guest: vCPU state has no valid guest clock`);
      }
      restoreWorkload(state.workload, this.memory.totalPages); // validates before any vCPU sees it
    }
    encoded.forEach((bytes, i) => {
      this.vcpus[i].control.loadState(bytes);
    });
  }

  vcpuStats(): VcpuStats[] {
    return this.vcpus.map(({ control: c }) => ({
      busyNs: c.stat(Stat.BusyNs),
      throttleNs: c.stat(Stat.ThrottleNs),
      throttleAskedNs: c.stat(Stat.ThrottleAskedNs),
      idleNs: c.stat(Stat.IdleNs),
      pageWaitNs: c.stat(Stat.PageWaitNs),
      pageWaits: c.stat(Stat.PageWaits),
      guestNs: c.stat(Stat.GuestNs),
      pagesWritten: c.stat(Stat.PagesWritten),
      pagesDirtied: c.stat(Stat.PagesDirtied),
      pagesRead: c.stat(Stat.PagesRead),
      slices: c.stat(Stat.Slices),
      pauses: c.stat(Stat.Pauses),
    }));
  }

  /** @internal The vCPUs' shared control blocks (the migration thread reads saved vCPU state there). */
  vcpuControlBuffers(): SharedArrayBuffer[] {
    return this.vcpus.map((v) => v.control.buffer);
  }

  /** Pages written by all vCPUs so far: the guest's progress. */
  get pagesWritten(): number {
    return this.vcpus.reduce((n, v) => n + v.control.stat(Stat.PagesWritten), 0);
  }

  /** Stop the vCPU threads for good. */
  async destroy(): Promise<void> {
    if (this.runState === 'shutdown') return;
    this.bell?.ring(false);
    const requests = this.post(RequestKind.Exit);
    const deadline = performance.now() + 2000;
    await Promise.all(this.vcpus.map((v, i) => v.control.waitAck(requests[i], deadline)));
    this.destroying = true; // a thread terminated here exits with code 1: that is not a failure
    await Promise.all(this.vcpus.map((v) => v.worker.terminate()));
    this.states.transition('shutdown');
  }

  /** Post a request to every vCPU (a program's also gets its doorbell rung). Returns the requests. */
  private post(kind: RequestKind): number[] {
    const requests = this.vcpus.map((v) => v.control.post(kind));
    this.pages.kickAll(); // a vCPU waiting for a page sees the request at once (page-waits.ts)
    if (this.program !== null) ringDoorbell(this.blocks[0], this.program.instrumented.layout);
    return requests;
  }

  private async startVcpus(specs: readonly WorkloadSpec[]): Promise<void> {
    if (!Array.isArray(specs) || specs.length > MAX_VCPUS) {
      throw new InvalidArgumentError(`guest: vcpus must be a list of at most ${MAX_VCPUS} workloads`);
    }
    for (const spec of specs) createWorkload(spec, this.memory.totalPages); // clear errors before any thread starts
    const ram = this.blocks.map((b) => b.toShared());
    const pages = this.pages.vcpuShared();
    const inits: { init: Omit<VcpuInit, 'control'>; stateBytes?: number }[] = specs.map((workload, index) => ({ init: { index, ram, workload, pages } }));
    if (this.program !== null) {
      const p = programVcpu(this.program, this.blocks);
      this.devices.register(wasiSection(p.area));
      inits.push({ init: { index: 0, ram, workload: { kind: 'idle' }, wasm: p.init }, stateBytes: p.stateBytes });
    }
    // All threads start at once (each start costs ~30 ms of CPU; spares from vcpu-threads.ts cost nothing here).
    const started = inits.map(({ init, stateBytes }) => {
      const control = new VcpuControl(newControlBuffer(stateBytes));
      const first = control.post(RequestKind.Pause); // start paused: the worker acks when ready
      this.vcpus.push({ index: init.index, control, worker: this.startThread({ ...init, control: control.buffer }) });
      return control.waitAck(first, performance.now() + START_TIMEOUT_MS);
    });
    const acks = await Promise.all(started);
    this.checkAlive();
    const late = acks.indexOf(false);
    if (late >= 0) throw new TimeoutError(`guest: vCPU ${late} did not start within ${START_TIMEOUT_MS} ms`);
    trace('started %d vCPUs over %d bytes of RAM', inits.length, this.ram.size);
  }

  private startThread(init: VcpuInit): Worker {
    const { index } = init;
    const worker = takeVcpuThread(init);
    worker.unref();
    worker.on('message', (m: VcpuMessage) => {
      if (m.type === 'exited') {
        this.exitCode = m.code;
        this.emit('exit', m.code);
        return;
      }
      // The text shows where the vCPU threw (its stack), as it always did; the error itself is the cause.
      this.fail(new WorkerFailedError(`vCPU ${m.index} failed: ${m.error.stack ?? m.error.message}`, { cause: rebuildError(m.error) }));
    });
    worker.on('error', (err) => this.fail(new WorkerFailedError(`vCPU ${index} failed`, { cause: err })));
    worker.on('exit', (code) => {
      if (!this.destroying && code !== 0) this.fail(new WorkerFailedError(`vCPU ${index} exited with code ${code}`));
    });
    return worker;
  }

  private fail(err: Error): void {
    if (this.failure !== null || this.runState === 'shutdown') return;
    this.failure = err;
    trace('vCPU failure: %s', err.message);
    if (this.states.can('internal-error')) this.states.transition('internal-error');
    if (this.listenerCount('error') > 0) this.emit('error', err);
  }

  private checkAlive(): void {
    if (this.failure !== null) throw this.failure;
    if (this.runState === 'shutdown') throw new InvalidStateError('guest: it has been shut down');
  }
}

function checkTimeout(ms: unknown): number {
  if (typeof ms !== 'number' || !Number.isFinite(ms) || ms <= 0 || ms > 600_000) {
    throw new InvalidArgumentError(`pause timeout must be a number of milliseconds in (0, 600000], got ${String(ms)}`);
  }
  return ms;
}
