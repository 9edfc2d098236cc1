/**
 * What ferry refuses from a program's header alone (module-header.ts), each
 * with a message naming what was wrong: no Binaryen needed, so a bad file
 * is refused at once, before a worker starts. What needs the code itself
 * (exception handling, tail calls, a table mutated at run time...) is
 * refused by module-refusals.ts.
 *
 * A program is a WASI preview 1 command: it exports `_start` and its memory
 * as `memory` (a WASI host reads and writes through that export), it has
 * exactly one 32-bit memory of its own, unshared, and it imports only
 * `wasi_snapshot_preview1` functions. ferry gives it the rest: its memory
 * becomes `ferry.memory` and it gains `ferry.yield`.
 */
import { WasmModuleError } from '../errors.js';
import type { MemoryLimits, ModuleHeader } from './module-header.js';

export const WASI_MODULE = 'wasi_snapshot_preview1';

/** Export names the instrumented module adds: a program may not use them. */
export const RESERVED_EXPORT_PREFIXES: readonly string[] = ['__ferry_', 'asyncify_'];

export interface ProgramHeader {
  /** The program's own memory, as declared. */
  readonly memory: MemoryLimits;
  /** The wasi_snapshot_preview1 functions it imports, by name, in import order. */
  readonly wasiImports: readonly string[];
}

function listOf(names: readonly string[]): string {
  return names.length <= 1 ? names.join('') : `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}`;
}

/** The imports ferry does not provide, refused by name. */
function checkImports(header: ModuleHeader): string[] {
  const wasi: string[] = [];
  const foreign: string[] = [];
  for (const imp of header.imports) {
    const full = `${imp.module}.${imp.name}`;
    if (imp.module === 'wasi' && imp.name === 'thread-spawn') {
      throw new WasmModuleError('the module imports wasi.thread-spawn: a wasi-threads program, which ferry cannot run (a guest is one thread)');
    }
    if (imp.kind === 'memory') {
      throw new WasmModuleError(`the module imports its memory (${full}): ferry gives a program its memory itself, so the program must declare its own`);
    }
    if (imp.module === WASI_MODULE && imp.kind === 'function') wasi.push(imp.name);
    else foreign.push(imp.kind === 'function' ? full : `${full} (a ${imp.kind})`);
  }
  if (foreign.length > 0) {
    throw new WasmModuleError(`the module imports ${listOf(foreign)}, which ferry does not provide (only ${WASI_MODULE} functions)`);
  }
  return wasi;
}

function checkMemory(header: ModuleHeader): MemoryLimits {
  if (header.memories.length === 0) throw new WasmModuleError('the module has no memory: a WASI program declares one');
  if (header.memories.length > 1) {
    throw new WasmModuleError(`the module declares ${header.memories.length} memories (multi-memory), which ferry does not support: one memory is one RAM block`);
  }
  const memory = header.memories[0];
  if (memory.memory64) throw new WasmModuleError('the module uses a 64-bit memory (memory64), which Node 20 cannot run and ferry does not support');
  if (memory.shared) {
    throw new WasmModuleError('the module declares a shared memory (a threads build): ferry runs single-threaded programs and shares the memory itself');
  }
  if (memory.customPageSize) throw new WasmModuleError('the module declares a custom memory page size, which Node 20 cannot run');
  return memory;
}

function checkExports(header: ModuleHeader): void {
  const start = header.exports.find((e) => e.name === '_start');
  if (start === undefined || start.kind !== 'function') {
    throw new WasmModuleError('the module is not a WASI command: it exports no _start function (a reactor or a library cannot run as a guest)');
  }
  const memory = header.exports.find((e) => e.name === 'memory');
  if (memory === undefined || memory.kind !== 'memory') {
    throw new WasmModuleError('the module does not export its memory as "memory", as a WASI program must');
  }
  const reserved = header.exports.filter((e) => RESERVED_EXPORT_PREFIXES.some((p) => e.name.startsWith(p))).map((e) => e.name);
  if (reserved.length > 0) {
    throw new WasmModuleError(`the module exports ${listOf(reserved)}: names that start with ${RESERVED_EXPORT_PREFIXES.join(' or ')} are ferry's`);
  }
}

/** Refuse (WasmModuleError) a header ferry cannot run; else its memory and WASI imports. */
export function checkProgramHeader(header: ModuleHeader): ProgramHeader {
  const wasiImports = checkImports(header);
  const memory = checkMemory(header);
  checkExports(header);
  return { memory, wasiImports };
}
