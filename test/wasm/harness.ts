/**
 * A minimal runner for instrumented test programs, in-process: the shared
 * memory of layout.totalPages, a `ferry.yield` that counts (and may pause
 * by unwinding), stub WASI functions, and readers of the mark map. Programs
 * are written in WebAssembly text (`program` wraps a body in what every
 * WASI command has: an exported memory and `_start`).
 */
import binaryen from 'binaryen';
import { PAGE_SIZE } from '../../src/memory/page.js';
import type { WasmLayout } from '../../src/wasm/layout.js';
import { rewriteProgram, type RewriteResult, type RewriteSteps } from '../../src/wasm/rewrite.js';

/** The binary of a module in WebAssembly text (every feature allowed), with a name section as compilers write one. */
export function wat(text: string): Uint8Array {
  const module = binaryen.parseText(text);
  const debugInfo = binaryen.getDebugInfo();
  try {
    module.setFeatures(binaryen.Features.All);
    binaryen.setDebugInfo(true);
    return module.emitBinary();
  } finally {
    binaryen.setDebugInfo(debugInfo);
    module.dispose();
  }
}

/**
 * A WASI-command-shaped module: `imports` (beside wasi's proc_exit), `memory`
 * (initial pages, optional max) exported, then `body` (which defines `_start`).
 */
export function program(body: string, memory = '1', imports = ''): string {
  return `(module\n (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))\n ${imports}\n (memory $mem ${memory})\n (export "memory" (memory $mem))\n${body}\n)`;
}

/** Small options for tests: a guest of at most 1 MiB, a 64 KiB unwind buffer. */
export const SMALL = { maxMemoryBytes: 16 * 65536, unwindBufferBytes: 65536 } as const;

export function instrumentText(text: string, options: { maxMemoryBytes?: number; unwindBufferBytes?: number } = SMALL, steps?: RewriteSteps): RewriteResult {
  return rewriteProgram(wat(text), options, steps);
}

export interface Run {
  readonly instance: WebAssembly.Instance;
  readonly memory: WebAssembly.Memory;
  readonly u8: Uint8Array;
  readonly view: DataView;
  readonly layout: WasmLayout;
  /** Calls of ferry.yield so far. */
  yields: number;
  readonly exports: Record<string, (...args: number[]) => number>;
}

export interface RunOptions {
  /** Use this memory (a copy of another run's) instead of a fresh one. */
  readonly memory?: WebAssembly.Memory;
  /** Called by ferry.yield, after counting. */
  readonly onYield?: (run: Run) => void;
  /** Virtual size to write before anything runs (default: the program's initial pages; not written when `memory` is given). */
  readonly sizePages?: number;
  /** The wasi_snapshot_preview1 imports (default: a proc_exit that throws). */
  readonly wasi?: Record<string, (...args: number[]) => number | bigint | undefined>;
}

/** An instrumented program: the rewrite's result, or loadProgram's. */
export interface Instrumented {
  readonly layout: WasmLayout;
  readonly initialPages: number;
  readonly wasm?: Uint8Array;
  readonly module?: WebAssembly.Module;
}

/** A fresh shared memory of the layout's size. */
export function ferryMemory(layout: WasmLayout): WebAssembly.Memory {
  return new WebAssembly.Memory({ initial: layout.totalPages, maximum: layout.totalPages, shared: true });
}

/** Instantiate `program` over a fresh shared memory (or `options.memory`). */
export function instantiate(program: Instrumented, options: RunOptions = {}): Run {
  const { layout } = program;
  const memory = options.memory ?? ferryMemory(layout);
  const view = new DataView(memory.buffer);
  if (options.memory === undefined || options.sizePages !== undefined) view.setUint32(layout.sizeOffset, options.sizePages ?? program.initialPages, true);
  const run = { memory, u8: new Uint8Array(memory.buffer), view, layout, yields: 0 } as Run & { instance: WebAssembly.Instance; exports: Run['exports'] };
  const module = program.module ?? new WebAssembly.Module(program.wasm as Uint8Array);
  run.instance = new WebAssembly.Instance(module, {
    ferry: { memory, yield: () => { run.yields++; options.onYield?.(run); } },
    wasi_snapshot_preview1: options.wasi ?? { proc_exit: (code: number) => { throw new Error(`proc_exit(${code})`); } },
  });
  run.exports = run.instance.exports as Run['exports'];
  return run;
}

/** The guest pages (4 KiB) whose mark is set. */
export function markedPages(run: Run): number[] {
  const out: number[] = [];
  const { marksOffset, marksBytes } = run.layout;
  for (let i = 0; i < marksBytes; i++) if (run.u8[marksOffset + i] !== 0) out.push(i);
  return out;
}

export function clearMarks(run: Run): void {
  run.u8.fill(0, run.layout.marksOffset, run.layout.marksOffset + run.layout.marksBytes);
}

/** A copy of guest RAM (below the reserved region). */
export function snapshot(run: Run): Uint8Array {
  return run.u8.slice(0, run.layout.reservedBase);
}

/** The 4 KiB pages whose bytes differ between two snapshots. */
export function changedPages(before: Uint8Array, after: Uint8Array): number[] {
  const out: number[] = [];
  for (let p = 0; p * PAGE_SIZE < before.length; p++) {
    const a = before.subarray(p * PAGE_SIZE, (p + 1) * PAGE_SIZE);
    const b = after.subarray(p * PAGE_SIZE, (p + 1) * PAGE_SIZE);
    if (!Buffer.from(a.buffer, a.byteOffset, a.length).equals(Buffer.from(b.buffer, b.byteOffset, b.length))) out.push(p);
  }
  return out;
}

interface ModuleDescriptor { readonly module?: string; readonly name: string; readonly kind: string }
const ModuleStatics = WebAssembly.Module as unknown as {
  imports(m: WebAssembly.Module): ModuleDescriptor[];
  exports(m: WebAssembly.Module): ModuleDescriptor[];
};

/** WebAssembly.Module.imports as "module.name:kind" (the typings of @types/node leave it out). */
export function importsOf(module: WebAssembly.Module): string[] {
  return ModuleStatics.imports(module).map((i) => `${i.module}.${i.name}:${i.kind}`);
}

/** WebAssembly.Module.exports, by name. */
export function exportsOf(module: WebAssembly.Module): string[] {
  return ModuleStatics.exports(module).map((e) => e.name);
}
