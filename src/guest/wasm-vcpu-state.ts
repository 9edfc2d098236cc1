/**
 * A WebAssembly vCPU's saved state, as bytes (the VCPU record's payload):
 *
 *   0   "FWV1"            magic
 *   4   u8  mode          0 fresh (never ran), 1 unwound (paused mid-program), 2 exited
 *   5   u8  -             zero
 *   6   u16 globals       number of mutable globals that follow
 *   8   f64 guestNs       the guest clock
 *   16  i32 exitCode      meaningful when mode = exited
 *   20  u32 sizePages     the program's memory.size, 64 KiB pages
 *   24  u32 unwindBytes   bytes of the unwound stack at the end
 *   28  globals           per global: u8 type (0 i32, 1 i64, 2 f32, 3 f64), 8 bytes little-endian value
 *   ..  unwound stack     Asyncify's saved frames and locals, as it wrote them
 *
 * The program's memory is RAM (sent as pages); its globals, stack pointer
 * among them, and the unwound stack are the vCPU's registers.
 */
import { InvalidArgumentError } from '../errors.js';

export type WasmVcpuMode = 'fresh' | 'unwound' | 'exited';
export type WasmGlobalType = 'i32' | 'i64' | 'f32' | 'f64';

export interface WasmVcpuState {
  readonly mode: WasmVcpuMode;
  readonly guestNs: number;
  readonly exitCode: number;
  readonly sizePages: number;
  /** Values in the order of the module's mutable globals (i64 as bigint). */
  readonly globals: readonly (number | bigint)[];
  readonly unwound: Uint8Array;
}

const MAGIC = 0x31565746; // "FWV1" little-endian
const HEAD = 28;
const MODES: readonly WasmVcpuMode[] = ['fresh', 'unwound', 'exited'];
const TYPES: readonly WasmGlobalType[] = ['i32', 'i64', 'f32', 'f64'];

export function encodeWasmVcpuState(s: WasmVcpuState, types: readonly WasmGlobalType[]): Uint8Array {
  const out = new Uint8Array(HEAD + types.length * 9 + s.unwound.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, MAGIC, true);
  dv.setUint8(4, MODES.indexOf(s.mode));
  dv.setUint16(6, types.length, true);
  dv.setFloat64(8, s.guestNs, true);
  dv.setInt32(16, s.exitCode, true);
  dv.setUint32(20, s.sizePages, true);
  dv.setUint32(24, s.unwound.length, true);
  let at = HEAD;
  types.forEach((t, i) => {
    dv.setUint8(at, TYPES.indexOf(t));
    const v = s.globals[i];
    if (t === 'i32') dv.setInt32(at + 1, Number(v), true);
    else if (t === 'i64') dv.setBigInt64(at + 1, BigInt(v), true);
    else if (t === 'f32') dv.setFloat32(at + 1, Number(v), true);
    else dv.setFloat64(at + 1, Number(v), true);
    at += 9;
  });
  out.set(s.unwound, at);
  return out;
}

/** Decode and check a state against the module it is for (its global types, its memory maximum, its unwind buffer). */
export function decodeWasmVcpuState(bytes: Uint8Array, types: readonly WasmGlobalType[], limits: { maxPages: number; unwindBytes: number }): WasmVcpuState {
  const bad = (why: string): never => { throw new InvalidArgumentError(`WebAssembly vCPU state: ${why}`); };
  if (bytes.length < HEAD) bad(`${bytes.length} bytes, shorter than its ${HEAD}-byte head`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (dv.getUint32(0, true) !== MAGIC) bad('bad magic (not a WebAssembly vCPU state: is the destination running the same kind of guest?)');
  const mode = MODES[dv.getUint8(4)] ?? bad(`unknown mode ${dv.getUint8(4)}`);
  const count = dv.getUint16(6, true);
  if (count !== types.length) bad(`${count} globals, the module has ${types.length} mutable globals`);
  const guestNs = dv.getFloat64(8, true);
  if (!(guestNs >= 0) || !Number.isFinite(guestNs)) bad(`guest clock ${guestNs}`);
  const sizePages = dv.getUint32(20, true);
  if (sizePages > limits.maxPages) bad(`memory size ${sizePages} pages exceeds the maximum ${limits.maxPages}`);
  const unwindBytes = dv.getUint32(24, true);
  if (unwindBytes > limits.unwindBytes) bad(`unwound stack of ${unwindBytes} bytes exceeds the ${limits.unwindBytes}-byte buffer`);
  if (bytes.length !== HEAD + count * 9 + unwindBytes) bad(`${bytes.length} bytes, expected ${HEAD + count * 9 + unwindBytes}`);
  if (mode === 'unwound' && unwindBytes === 0) bad('paused mid-program with no unwound stack');
  const globals: (number | bigint)[] = [];
  let at = HEAD;
  for (const t of types) {
    if (TYPES[dv.getUint8(at)] !== t) bad(`global ${globals.length} has type ${TYPES[dv.getUint8(at)] ?? dv.getUint8(at)}, the module's is ${t}`);
    globals.push(t === 'i32' ? dv.getInt32(at + 1, true) : t === 'i64' ? dv.getBigInt64(at + 1, true)
      : t === 'f32' ? dv.getFloat32(at + 1, true) : dv.getFloat64(at + 1, true));
    at += 9;
  }
  return { mode, guestNs, exitCode: dv.getInt32(16, true), sizePages, globals, unwound: bytes.slice(at) };
}
