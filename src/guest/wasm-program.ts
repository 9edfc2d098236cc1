/**
 * A guest whose vCPU runs a WebAssembly (WASI) program: the pieces the
 * guest needs for it, kept out of guest.ts. The program's linear memory is
 * the guest's one RAM block (layout.ts: the program's pages, then ferry's
 * reserved region as the block's tail); its one vCPU runs the instrumented
 * module (wasm-vcpu.ts); its system interface is the device section `wasi`.
 */
import { InvalidArgumentError } from '../errors.js';
import { markMapSupported } from '../memory/mark-map.js';
import type { RamBlock, RamBlockOptions } from '../memory/ram-block.js';
import { WASM_PAGE_SIZE } from '../memory/page.js';
import type { InstrumentedModule } from '../wasm/instrument.js';
import type { WasmLayout } from '../wasm/layout.js';
import { WasiDevice, type WasiConfig } from '../wasm/wasi/wasi-device.js';
import type { DeviceSection } from './device-state.js';
import { DeviceArea, newDeviceArea } from './wasm-device-area.js';
import { decodeWasmVcpuState } from './wasm-vcpu-state.js';
import type { WasmVcpuInit } from './wasm-vcpu.js';

/** What a guest needs to run a program: the instrumented module, and the system interface's configuration (unused at a destination, which loads its state). */
export interface GuestProgram {
  readonly instrumented: InstrumentedModule;
  readonly wasi: WasiConfig;
  /** Where the program's standard output and error go: file descriptors of this process (default 1 and 2). */
  readonly stdio?: { readonly stdout?: number; readonly stderr?: number };
  /** Benchmark only, with a probed module (InstrumentOptions.steps.probe): the buffer of poll-probe.ts the vCPU times its stretches between polls into. */
  readonly probe?: SharedArrayBuffer;
}

/** The name of the program's RAM block. */
export const PROGRAM_BLOCK = 'wasm';
/** The device section holding the system interface's state. */
export const WASI_SECTION = 'wasi';
/** Room for a vCPU state besides the unwound stack (globals, clock). */
const STATE_HEAD_ROOM = 64 * 1024;

/** How the program's RAM block is laid out: the same on both sides of a migration. */
export function programRamOptions(layout: WasmLayout): RamBlockOptions {
  return {
    tailBytes: layout.totalPages * WASM_PAGE_SIZE - layout.reservedBase,
    markMap: { offset: layout.marksOffset },
    sizeWord: { offset: layout.sizeOffset, unitBytes: WASM_PAGE_SIZE },
  };
}

/** The RAM block spec of a program: its memory up to its maximum. */
export function programRamSpec(program: GuestProgram): { name: string; size: number; options: RamBlockOptions } {
  if (!markMapSupported()) {
    throw new InvalidArgumentError(`WebAssembly guests need an x86-64 host: their dirty marks rely on its store order (this is ${process.arch})`);
  }
  const layout = program.instrumented.layout;
  return { name: PROGRAM_BLOCK, size: layout.reservedBase, options: programRamOptions(layout) };
}

/** The program's vCPU: its init (for the worker) and the size its control block needs. */
export function programVcpu(program: GuestProgram, blocks: readonly RamBlock[]): { init: WasmVcpuInit; stateBytes: number; area: DeviceArea } {
  const m = program.instrumented;
  if (blocks.length !== 1 || blocks[0].name !== PROGRAM_BLOCK) {
    throw new InvalidArgumentError(`a WebAssembly guest has one RAM block named ${PROGRAM_BLOCK}, got ${blocks.map((b) => b.name).join(', ')}`);
  }
  const area = new DeviceArea(newDeviceArea());
  const init: WasmVcpuInit = {
    module: m.module, memory: blocks[0].memory, layout: m.layout, initialPages: m.initialPages,
    globals: m.mutableGlobals, wasi: program.wasi, devices: area.buffer,
    stdout: program.stdio?.stdout ?? 1, stderr: program.stdio?.stderr ?? 2,
    ...(program.probe !== undefined ? { probe: program.probe } : {}),
  };
  return { init, stateBytes: m.layout.unwindBufferBytes + STATE_HEAD_ROOM, area };
}

/** The system interface as a device section: saved by the vCPU at each pause, loaded before its next run. */
export function wasiSection(area: DeviceArea): DeviceSection {
  return {
    name: WASI_SECTION, version: 1, save: () => area.saved(),
    // Checked whole here, before the destination acknowledges LOADED: a bad section fails the migration while the source can still resume.
    load: (data) => {
      WasiDevice.restore(data);
      area.load(data);
    },
  };
}

/** Check a migrated vCPU state against the program before any vCPU sees it. */
export function checkProgramVcpuState(program: GuestProgram, bytes: Uint8Array): void {
  const m = program.instrumented;
  decodeWasmVcpuState(bytes, m.mutableGlobals.map((g) => g.type), { maxPages: m.layout.guestMaxPages, unwindBytes: m.layout.unwindBufferBytes });
}

/** How often a throttled program's doorbell rings, ms: QEMU's throttle slice (CPU_THROTTLE_TIMESLICE_NS, 10 ms). */
export const THROTTLE_SLICE_MS = 10;

/**
 * A throttled program's doorbell, rung every THROTTLE_SLICE_MS: a program
 * looks at nothing but its poll word, so the throttle reaches it there
 * (its vCPU sleeps its share at the poll that sees the bell: wasm-vcpu.ts).
 */
export class ThrottleBell {
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly block: RamBlock, private readonly layout: WasmLayout) {}

  ring(on: boolean): void {
    if (on && this.timer === null) {
      this.timer = setInterval(() => ringDoorbell(this.block, this.layout), THROTTLE_SLICE_MS);
      this.timer.unref();
    } else if (!on && this.timer !== null) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }
}

/** Ring the program's doorbell: it polls this word and comes to its vCPU loop when it is set. */
export function ringDoorbell(block: RamBlock, layout: WasmLayout): void {
  Atomics.store(new Int32Array(block.memory.buffer, layout.pollOffset, 1), 0, 1);
}
