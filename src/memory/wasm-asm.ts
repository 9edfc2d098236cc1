/**
 * A tiny assembler for ferry's WebAssembly kernels: each is one exported
 * function over an imported shared memory (a RAM block, or a buffer of the
 * migration's own). The kernels are small enough to write as bytes, which
 * keeps the build free of a WebAssembly toolchain; each kernel's module has
 * its text form in a comment beside it.
 */

export const OP = {
  block: 0x02, loop: 0x03, brIf: 0x0d, end: 0x0b,
  localGet: 0x20, localSet: 0x21, localTee: 0x22,
  i32Const: 0x41, i32Eqz: 0x45, i32Ne: 0x47, i32LtU: 0x49, i32Add: 0x6a,
  simd: 0xfd, void: 0x40,
} as const;

/** SIMD opcodes (after the 0xfd prefix, LEB128-encoded). */
export const SIMD = {
  v128Load: 0x00, v128Const: 0x0c, i32x4ExtractLane: 0x1b,
  v128Or: 0x50, v128AnyTrue: 0x53, i32x4Add: 0xae, i32x4Mul: 0xb5,
} as const;

export const TYPE = { i32: 0x7f, v128: 0x7b } as const;

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
}

/** A module importing `env.memory` (shared, up to 4 GiB) and exporting one function. */
export function kernelModuleBytes(spec: KernelSpec): Uint8Array {
  const locals = [...uleb(spec.locals.length), ...spec.locals.flatMap(([n, t]) => [...uleb(n), t])];
  const body = [...locals, ...spec.code];
  return Uint8Array.from([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, [1, 0x60, ...uleb(spec.params.length), ...spec.params, 1, spec.result]),
    ...section(2, [1, ...name('env'), ...name('memory'), 0x02, 0x03, ...uleb(1), ...uleb(65536)]),
    ...section(3, [1, 0]),
    ...section(7, [1, ...name(spec.exportName), 0x00, 0]),
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
