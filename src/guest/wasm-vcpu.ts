/**
 * The vCPU of a WebAssembly guest, run in its worker thread: it runs the
 * instrumented program (src/wasm/instrument.ts) over the guest's RAM block
 * and answers the same requests as every vCPU (vcpu-control.ts).
 *
 * Pausing. The main thread posts PAUSE on the control block, then sets the
 * poll word in the program's reserved region (layout.ts). The program polls
 * that word at every loop head and at the entry of every function that can
 * recurse, and calls `ferry.yield` when it is set; yield starts an Asyncify
 * unwind, the program's frames and locals go into the unwind buffer, and
 * `_start` returns here. A program asleep in `poll_oneoff` is woken by the
 * request itself (the sleep is an Atomics.wait on the request word) and
 * unwinds the same way. Then, as every vCPU does, this thread writes its
 * state and stores ACK: the program's stores and marks all precede it
 * (DESIGN.md invariant 1 across a pause). The state is the globals, the
 * unwound stack, the memory size and the guest clock; the system
 * interface's state goes to its own device area (wasm-device-area.ts).
 *
 * Resuming (here, or at a destination after loading the state): Asyncify
 * rewinds into `_start`, every frame is re-entered with its locals, and the
 * call that unwound (`ferry.yield` or `poll_oneoff`) finishes the rewind
 * and returns as if nothing happened.
 *
 * Longer than 300 lines: the request loop, the run, the yield (pause or
 * throttle), the host view and the state save share one set of fields
 * (the request served, the run's clocks, Asyncify's data); splitting them
 * would pass those around. The probe is its own module (poll-probe.ts).
 */
import { writeSync } from 'node:fs';
import type { WasmLayout } from '../wasm/layout.js';
import type { WasiConfig, WasiDevice as WasiDeviceType, WasiHost } from '../wasm/wasi/wasi-device.js';
import { WasiDevice, WasiExit } from '../wasm/wasi/wasi-device.js';
import { PollProbe } from './poll-probe.js';
import { DeviceArea } from './wasm-device-area.js';
import { decodeWasmVcpuState, encodeWasmVcpuState, type WasmGlobalType, type WasmVcpuMode } from './wasm-vcpu-state.js';
import { RequestKind, Stat, VcpuControl, requestKind } from './vcpu-control.js';

/** What a WebAssembly vCPU needs besides the control block and the RAM (structured-cloneable). */
export interface WasmVcpuInit {
  readonly module: WebAssembly.Module;
  readonly memory: WebAssembly.Memory;
  readonly layout: WasmLayout;
  readonly initialPages: number;
  readonly globals: readonly { readonly exportName: string; readonly type: WasmGlobalType }[];
  readonly wasi: WasiConfig;
  readonly devices: SharedArrayBuffer;
  /** File descriptors of the program's standard output and error. */
  readonly stdout: number;
  readonly stderr: number;
  /** Benchmark only: where a probed module's stretches between polls are timed (poll-probe.ts). */
  readonly probe?: SharedArrayBuffer;
}

/** Asyncify's states (binaryen src/passes/Asyncify.cpp): 0 normal, 1 unwinding, 2 rewinding. */
const Asyncify = { Normal: 0, Unwinding: 1, Rewinding: 2 } as const;

interface ProgramExports {
  readonly _start: () => void;
  readonly __ferry_init_data: () => void;
  readonly asyncify_start_unwind: (data: number) => void;
  readonly asyncify_stop_unwind: () => void;
  readonly asyncify_start_rewind: (data: number) => void;
  readonly asyncify_stop_rewind: () => void;
  /** Absent only in a benchmark's module built without Asyncify (asyncifyState). */
  readonly asyncify_get_state?: () => number;
  readonly [name: string]: unknown;
}

const nowNs = (): number => performance.now() * 1e6;
/** The longest run one throttle sleep answers for, ns: two of the throttle bell's 10 ms slices (wasm-program.ts). */
const THROTTLE_WINDOW_NS = 20_000_000;
/** The probe's site number for a sleep's start (poll-probe.ts): a stretch ends there, and the next starts when the sleep ends. */
const SLEEP_SITE = -2;

type WasiImports = ReturnType<WasiDeviceType['imports']>;

export class WasmVcpu {
  private readonly ctl: VcpuControl;
  private readonly layout: WasmLayout;
  private readonly u8: Uint8Array;
  private readonly i32: Int32Array;
  private readonly area: DeviceArea;
  private readonly exports: ProgramExports;
  private device: WasiDeviceType;
  private wasi: WasiImports;
  private mode: WasmVcpuMode = 'fresh';
  private exitCode = 0;
  /** The RUN request being served; any change to the request word interrupts the program. */
  private serving = 0;
  private inInit = false;
  private runStartNs = 0;
  private guestAtStartNs = 0;
  /** Since when the program has run without a throttle sleep or a sleep of its own, ns. */
  private runningSinceNs = 0;
  /** Time of this run spent asleep (poll_oneoff, the throttle), ns: not busy. */
  private offCpuNs = 0;
  private readonly probe: PollProbe | null;

  constructor(private readonly init: WasmVcpuInit, control: SharedArrayBuffer, private readonly onExit: (code: number) => void) {
    this.ctl = new VcpuControl(control);
    this.layout = init.layout;
    this.u8 = new Uint8Array(init.memory.buffer);
    this.i32 = new Int32Array(init.memory.buffer);
    this.area = new DeviceArea(init.devices);
    this.device = WasiDevice.fresh(init.wasi);
    this.probe = init.probe === undefined ? null : new PollProbe(init.probe);
    const host = this.host();
    this.wasi = this.device.imports(host);
    const wasiImports: WasiImports = {};
    for (const name of Object.keys(this.wasi)) wasiImports[name] = (...args: never[]) => this.wasi[name](...args);
    const instance = new WebAssembly.Instance(init.module, {
      ferry: { memory: init.memory, yield: () => this.onYield(), probe: (site: number) => this.probe?.hit(site) },
      wasi_snapshot_preview1: wasiImports,
    });
    this.exports = instance.exports as unknown as ProgramExports;
  }

  /** Serve requests until EXIT. */
  run(): void {
    for (;;) {
      const request = this.ctl.request();
      const kind = requestKind(request);
      if (kind === RequestKind.Exit) {
        this.ctl.ack(request);
        return;
      }
      if (kind === RequestKind.Pause) {
        if (!this.ctl.acked(request)) this.pauseAck(request);
        this.ctl.waitChange(request);
        continue;
      }
      this.takeLoads();
      Atomics.store(this.i32, this.layout.pollOffset >>> 2, 0); // clear the doorbell, then look again
      if (this.ctl.request() !== request) continue;
      if (!this.ctl.acked(request)) this.ctl.ack(request);
      if (this.mode === 'exited') {
        this.ctl.waitChange(request);
        continue;
      }
      this.execute(request);
    }
  }

  // ---- running ----

  private execute(request: number): void {
    this.serving = request;
    this.runStartNs = nowNs();
    this.runningSinceNs = this.runStartNs;
    this.offCpuNs = 0;
    this.guestAtStartNs = this.ctl.stat(Stat.GuestNs);
    this.probe?.runStarts();
    const ex = this.exports;
    try {
      if (this.mode === 'fresh') {
        Atomics.store(this.i32, this.layout.sizeOffset >>> 2, this.init.initialPages);
        this.inInit = true;
        ex.__ferry_init_data(); // the data segments, once, with their marks; never at a destination
        this.inInit = false;
        this.mode = 'unwound';
        ex._start();
      } else {
        this.setUnwindData(this.unwoundLength());
        ex.asyncify_start_rewind(this.layout.unwindDataOffset);
        ex._start();
      }
      const state = this.asyncifyState();
      if (state === Asyncify.Unwinding) ex.asyncify_stop_unwind();
      else if (state === Asyncify.Normal) this.exited(0);
      else throw new Error('the program returned from _start while rewinding: its stack did not lead back to where it paused');
    } catch (err) {
      if (!(err instanceof WasiExit)) throw this.explain(err);
      this.exited(err.code);
    } finally {
      this.inInit = false;
      this.probe?.runEnds();
      const ran = nowNs() - this.runStartNs;
      this.ctl.addStat(Stat.BusyNs, ran - this.offCpuNs);
      this.ctl.addStat(Stat.Slices, 1);
      this.ctl.setStat(Stat.GuestNs, this.guestAtStartNs + ran);
    }
  }

  /** `ferry.yield`: the program saw the poll word set, or a rewind reached the call that unwound. */
  private onYield(): void {
    const ex = this.exports;
    if (this.asyncifyState() === Asyncify.Rewinding) {
      ex.asyncify_stop_rewind();
      return;
    }
    if (this.inInit) return; // the data segments are applied whole: the pause waits for _start
    if (this.ctl.request() === this.serving) {
      Atomics.store(this.i32, this.layout.pollOffset >>> 2, 0);
      // Nothing asked: the throttle's bell (guest.ts), or a stale word. A pause asked during the throttle's sleep unwinds.
      if (this.ctl.request() === this.serving) this.throttleSleep();
      if (this.ctl.request() === this.serving) return;
    }
    this.startUnwind();
  }

  /**
   * The throttle (vcpu-loop.ts's rule, QEMU's): sleep so that sleep / (run
   * + sleep) is its percent, over the run since the last sleep, at most
   * THROTTLE_WINDOW_NS of it (a throttle set late never charges the run
   * before it). VcpuControl.throttleSleep ends it early on throttle 0 or
   * a request.
   */
  private throttleSleep(): void {
    const now = nowNs();
    const ran = Math.min(now - this.runningSinceNs, THROTTLE_WINDOW_NS);
    const percent = this.ctl.throttle();
    if (percent > 0 && ran > 0) {
      const askedNs = (ran * percent) / (100 - percent);
      this.ctl.addStat(Stat.ThrottleAskedNs, askedNs);
      this.ctl.throttleSleep(this.serving, askedNs / 1e6);
      const slept = nowNs() - now;
      this.ctl.addStat(Stat.ThrottleNs, slept);
      this.offCpuNs += slept;
      this.probe?.restart();
    }
    this.runningSinceNs = nowNs();
  }

  /** Asyncify's state; Normal in a benchmark's module built without Asyncify (InstrumentOptions.steps), which runs but is never paused. */
  private asyncifyState(): number {
    return this.exports.asyncify_get_state === undefined ? Asyncify.Normal : this.exports.asyncify_get_state();
  }

  private startUnwind(): void {
    this.setUnwindData(0);
    this.exports.asyncify_start_unwind(this.layout.unwindDataOffset);
  }

  /** Asyncify's data structure: the next free byte of the buffer and its end. */
  private setUnwindData(used: number): void {
    const at = this.layout.unwindDataOffset >>> 2;
    this.i32[at] = this.layout.unwindBufferOffset + used;
    this.i32[at + 1] = this.layout.unwindBufferOffset + this.layout.unwindBufferBytes;
  }

  private unwoundLength(): number {
    return this.i32[this.layout.unwindDataOffset >>> 2] - this.layout.unwindBufferOffset;
  }

  private exited(code: number): void {
    this.mode = 'exited';
    this.exitCode = code;
    this.onExit(code);
  }

  /** A trap or an unwind past the buffer, said as such. */
  private explain(err: unknown): Error {
    const e = err instanceof Error ? err : new Error(String(err));
    // Asyncify's stop_unwind traps on cur > end after resetting its state: either sign means the buffer was too small.
    if (this.asyncifyState() === Asyncify.Unwinding || this.unwoundLength() > this.layout.unwindBufferBytes) {
      return new Error(`the program's stack did not fit the ${this.layout.unwindBufferBytes}-byte unwind buffer (raise --wasm-unwind-buffer)`, { cause: e });
    }
    return new Error(`the program trapped: ${e.message}`, { cause: e });
  }

  // ---- the system interface's view of this vCPU ----

  private host(): WasiHost {
    const u8 = this.u8;
    const marks = this.layout.marksOffset;
    const ex = () => this.exports;
    return {
      memory: {
        bytes: u8.subarray(0, this.layout.reservedBase),
        view: new DataView(this.init.memory.buffer, 0, this.layout.reservedBase),
        // The program's memory.size: the system interface never writes beyond it (nor into ferry's region above).
        addressable: () => Atomics.load(this.i32, this.layout.sizeOffset >>> 2) * 65_536,
        written: (addr: number, length: number) => {
          if (length <= 0) return;
          for (let p = addr >>> 12, last = (addr + length - 1) >>> 12; p <= last; p++) u8[marks + p] = 1;
        },
      },
      guestNowNs: () => BigInt(Math.round(this.guestAtStartNs + (nowNs() - this.runStartNs))),
      sleepUntil: (deadlineNs: bigint) => this.sleepUntil(deadlineNs),
      write: (fd: 1 | 2, bytes: Uint8Array) => writeAll(fd === 1 ? this.init.stdout : this.init.stderr, bytes),
      rewinding: () => this.asyncifyState() === Asyncify.Rewinding,
      stopRewind: () => ex().asyncify_stop_rewind(),
      startUnwind: () => this.startUnwind(),
    };
  }

  /** Sleep on the request word until the guest clock reaches the deadline, or a request interrupts. */
  private sleepUntil(deadlineNs: bigint): 'elapsed' | 'paused' {
    this.probe?.hit(SLEEP_SITE);
    for (;;) {
      const now = this.guestAtStartNs + (nowNs() - this.runStartNs);
      const leftMs = (Number(deadlineNs) - now) / 1e6;
      if (leftMs <= 0) return 'elapsed';
      const t = nowNs();
      this.ctl.waitChange(this.serving, leftMs);
      this.ctl.addStat(Stat.IdleNs, nowNs() - t);
      this.offCpuNs += nowNs() - t;
      this.runningSinceNs = nowNs();
      this.probe?.restart();
      if (this.ctl.request() !== this.serving) return 'paused';
    }
  }

  // ---- state ----

  private pauseAck(request: number): void {
    const seen = nowNs();
    const types = this.init.globals.map((g) => g.type);
    const state = encodeWasmVcpuState({
      mode: this.mode,
      guestNs: this.ctl.stat(Stat.GuestNs),
      exitCode: this.exitCode,
      sizePages: Atomics.load(this.i32, this.layout.sizeOffset >>> 2),
      globals: this.init.globals.map((g) => (this.exports[g.exportName] as WebAssembly.Global).value as number | bigint),
      unwound: this.mode === 'unwound' ? this.u8.slice(this.layout.unwindBufferOffset, this.layout.unwindBufferOffset + this.unwoundLength()) : new Uint8Array(0),
    }, types);
    this.ctl.saveState(state);
    this.area.save(this.device.save());
    this.ctl.addStat(Stat.Pauses, 1);
    this.ctl.setStat(Stat.MaxPauseAckNs, Math.max(this.ctl.stat(Stat.MaxPauseAckNs), nowNs() - seen));
    this.ctl.ack(request);
  }

  /** A state placed by the main thread (a destination's, or a reload): the device first, then the vCPU. */
  private takeLoads(): void {
    const device = this.area.takeLoad();
    if (device !== null) {
      this.device = WasiDevice.restore(device);
      this.wasi = this.device.imports(this.host());
    }
    const loaded = this.ctl.takeLoad();
    if (loaded === null) return;
    const l = this.layout;
    const s = decodeWasmVcpuState(loaded, this.init.globals.map((g) => g.type), { maxPages: l.guestMaxPages, unwindBytes: l.unwindBufferBytes });
    this.init.globals.forEach((g, i) => {
      (this.exports[g.exportName] as { value: number | bigint }).value = s.globals[i];
    });
    this.u8.set(s.unwound, l.unwindBufferOffset);
    this.setUnwindData(s.unwound.length);
    Atomics.store(this.i32, l.sizeOffset >>> 2, s.sizePages);
    this.mode = s.mode;
    this.exitCode = s.exitCode;
    this.ctl.setStat(Stat.GuestNs, s.guestNs);
    if (s.mode === 'exited') this.onExit(s.exitCode); // it ended before it moved: say so here too
  }
}

/** Write all of `bytes` to a standard stream now (a worker's process.stdout could lose output at exit). */
function writeAll(fd: number, bytes: Uint8Array): void {
  let at = 0;
  let waits = 0;
  while (at < bytes.length) {
    try {
      at += writeSync(fd, bytes, at, bytes.length - at);
    } catch (err) {
      // A non-blocking pipe that is full: wait for the reader, bounded (a reader gone for 10 s loses the rest).
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN' || ++waits > 10_000) throw err;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
    }
  }
}
