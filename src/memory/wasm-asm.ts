/**
 * A tiny assembler for ferry's WebAssembly kernels: each is one exported
 * function over an imported shared memory (a RAM block, or a buffer of the
 * migration's own). The kernels are small enough to write as bytes, which
 * keeps the build free of a WebAssembly toolchain; each kernel's module has
 * its text form in a comment beside it.
 */

export const OP = {
  block: 0x02, loop: 0x03, brIf: 0x0d, ret: 0x0f, end: 0x0b,
  localGet: 0x20, localSet: 0x21, localTee: 0x22, globalGet: 0x23, globalSet: 0x24,
  i32Const: 0x41, i64Const: 0x42, i32Eqz: 0x45, i32Ne: 0x47, i32LtU: 0x49, i32Add: 0x6a,
  i64Add: 0x7c, i64Mul: 0x7e, i64Or: 0x84, i64Xor: 0x85, i64Shl: 0x86, i64ShrU: 0x88,
  i32WrapI64: 0xa7, i64ExtendI32U: 0xad,
  simd: 0xfd, void: 0x40,
} as const;

/** SIMD opcodes (after the 0xfd prefix, LEB128-encoded). */
export const SIMD = {
  v128Load: 0x00, v128Const: 0x0c, i8x16Shuffle: 0x0d, i64x2Splat: 0x12, i32x4ExtractLane: 0x1b, i64x2ExtractLane: 0x1d,
  v128Or: 0x50, v128Xor: 0x51, v128AnyTrue: 0x53, i32x4Add: 0xae, i32x4Mul: 0xb5,
  i64x2Shl: 0xcb, i64x2ShrU: 0xcd, i64x2Add: 0xce, i64x2Mul: 0xd5, i64x2ExtmulLowI32x4U: 0xde,
} as const;

export const TYPE = { i32: 0x7f, i64: 0x7e, v128: 0x7b } as const;

export function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}

export function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const byte = n & 0x7f;
    n >>= 7;
    const done = (n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0);
    out.push(done ? byte : byte | 0x80);
    if (done) return out;
  }
}

/** Signed LEB128 of a 64-bit value (an `i64.const` immediate). */
export function sleb64(n: bigint): number[] {
  let v = BigInt.asIntN(64, n);
  const out: number[] = [];
  for (;;) {
    const byte = Number(v & 0x7fn);
    v >>= 7n;
    const done = (v === 0n && (byte & 0x40) === 0) || (v === -1n && (byte & 0x40) !== 0);
    out.push(done ? byte : byte | 0x80);
    if (done) return out;
  }
}

/** A SIMD instruction: the prefix, then the opcode. */
export function simd(op: number, ...immediates: number[]): number[] {
  return [OP.simd, ...uleb(op), ...immediates];
}

/** v128.load from local `ptr` at a constant offset (alignment 2^4). */
export function v128Load(ptr: number, offset: number): number[] {
  return [OP.localGet, ptr, ...simd(SIMD.v128Load, 4, ...uleb(offset))];
}

function section(id: number, body: number[]): number[] {
  return [id, ...uleb(body.length), ...body];
}

function name(s: string): number[] {
  return [...uleb(s.length), ...Buffer.from(s, 'utf8')];
}

export interface KernelSpec {
  readonly exportName: string;
  readonly params: readonly number[];
  readonly result: number;
  /** Local groups after the params: [count, type] pairs. */
  readonly locals: readonly (readonly [number, number])[];
  /** The body's instructions, ending with `end`. */
  readonly code: readonly number[];
  /** Mutable i32 globals (initially 0), exported under these names: global i is `names[i]`. */
  readonly globals?: readonly string[];
}

/** A module importing `env.memory` (shared, up to 4 GiB) and exporting one function. */
export function kernelModuleBytes(spec: KernelSpec): Uint8Array {
  const locals = [...uleb(spec.locals.length), ...spec.locals.flatMap(([n, t]) => [...uleb(n), t])];
  const body = [...locals, ...spec.code];
  const globals = spec.globals ?? [];
  return Uint8Array.from([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, [1, 0x60, ...uleb(spec.params.length), ...spec.params, 1, spec.result]),
    ...section(2, [1, ...name('env'), ...name('memory'), 0x02, 0x03, ...uleb(1), ...uleb(65536)]),
    ...section(3, [1, 0]),
    ...(globals.length === 0 ? [] : section(6, [...uleb(globals.length), ...globals.flatMap(() => [TYPE.i32, 0x01, OP.i32Const, 0, OP.end])])),
    ...section(7, [
      ...uleb(1 + globals.length), ...name(spec.exportName), 0x00, 0,
      ...globals.flatMap((g, i) => [...name(g), 0x03, ...uleb(i)]),
    ]),
    ...section(10, [1, ...uleb(body.length), ...body]),
  ]);
}

/** Compile once; null where the engine lacks what the kernel needs (e.g. SIMD). */
export function compileKernel(spec: KernelSpec): WebAssembly.Module | null {
  try {
    return new WebAssembly.Module(kernelModuleBytes(spec));
  } catch {
    return null;
  }
}
