/**
 * The one door to Binaryen (npm `binaryen` 132, its JavaScript build).
 *
 * The package's typings lag its code: some functions exist only untyped
 * (getNumDataSegments, getDataSegmentInfo, the raw C API `_Binaryen...`),
 * and getFunctionInfo aborts the whole Binaryen instance in this build
 * (an assertion on the function's type), so it is never used here. What
 * ferry uses beyond the typings is declared below, once, with its types.
 *
 * Two ways Binaryen fails: a Fatal() (a bad binary, a pass that refuses)
 * throws a JavaScript object whose message getExceptionMessage reads, and
 * the instance lives on; an assertion aborts the instance for good. That
 * is why loadProgram runs the rewrite in a worker of its own
 * (instrument-worker.ts): a broken instance dies with the worker.
 *
 * Loading this module loads Binaryen (about 1 s, 15 MB of JavaScript), so
 * only the rewrite imports it, never loadProgram's warm path.
 */
import binaryenDefault from 'binaryen';

export type Binaryen = typeof binaryenDefault;
export type BinaryenModule = binaryenDefault.Module;
export type ExpressionRef = number;
export type FunctionRef = number;
export type Type = number;

export interface DataSegmentInfo {
  readonly name: string;
  /** The constant offset of an active segment; null for a passive one. */
  readonly offset: number | null;
  readonly data: ArrayBuffer;
  readonly passive: boolean;
}

/** Module methods that exist in Binaryen 132's code but not in its typings. */
interface ModuleExtras {
  getNumDataSegments(): number;
  getDataSegmentByIndex(index: number): number;
  getDataSegmentInfo(segment: number): DataSegmentInfo;
}

/** The raw C API functions ferry calls (pointers are numbers; strings are C strings). */
interface RawApi {
  _BinaryenFunctionAddVar(func: FunctionRef, type: Type): number;
  getExceptionMessage(e: unknown): [string, string] | string;
}

type Get = (e: ExpressionRef) => ExpressionRef;
type Put = (e: ExpressionRef, child: ExpressionRef) => void;
/** getX/setX pairs for the child slots named K. */
type Slots<K extends string> = { readonly [P in K as `get${P}`]: Get } & { readonly [P in K as `set${P}`]: Put };
/** An expression class with `count` operands (Block's children, Call's operands). */
interface Operands {
  getNumOperands(e: ExpressionRef): number;
  getOperandAt(e: ExpressionRef, i: number): ExpressionRef;
  setOperandAt(e: ExpressionRef, i: number, child: ExpressionRef): void;
}
type Memory = { getOffset(e: ExpressionRef): number; getBytes(e: ExpressionRef): number };

/** The expression classes (static getters and setters) the typings leave out. */
interface ExpressionClasses {
  readonly Block: { getNumChildren(e: ExpressionRef): number; getChildAt(e: ExpressionRef, i: number): ExpressionRef;
    setChildAt(e: ExpressionRef, i: number, child: ExpressionRef): void };
  readonly If: Slots<'Condition' | 'IfTrue' | 'IfFalse'>;
  readonly Loop: Slots<'Body'>;
  readonly Break: Slots<'Condition' | 'Value'>;
  readonly Switch: Slots<'Condition' | 'Value'>;
  readonly Call: Operands & { getTarget(e: ExpressionRef): string; isReturn(e: ExpressionRef): boolean };
  readonly CallIndirect: Operands & Slots<'Target'> & { isReturn(e: ExpressionRef): boolean };
  readonly LocalSet: Slots<'Value'>;
  readonly GlobalSet: Slots<'Value'>;
  readonly Load: Slots<'Ptr'>;
  readonly Store: Slots<'Ptr' | 'Value'> & Memory;
  readonly AtomicRMW: Slots<'Ptr' | 'Value'> & Memory;
  readonly AtomicCmpxchg: Slots<'Ptr' | 'Expected' | 'Replacement'> & Memory;
  readonly AtomicWait: Slots<'Ptr' | 'Expected' | 'Timeout'>;
  readonly AtomicNotify: Slots<'Ptr' | 'NotifyCount'>;
  readonly SIMDExtract: Slots<'Vec'>;
  readonly SIMDReplace: Slots<'Vec' | 'Value'>;
  readonly SIMDShuffle: Slots<'Left' | 'Right'>;
  readonly SIMDTernary: Slots<'A' | 'B' | 'C'>;
  readonly SIMDShift: Slots<'Vec' | 'Shift'>;
  readonly SIMDLoad: Slots<'Ptr'>;
  readonly SIMDLoadStoreLane: Slots<'Ptr' | 'Vec'> & { getOp(e: ExpressionRef): number; getOffset(e: ExpressionRef): number;
    isStore(e: ExpressionRef): boolean };
  readonly MemoryInit: Slots<'Dest' | 'Offset' | 'Size'> & { getSegment(e: ExpressionRef): string };
  readonly MemoryCopy: Slots<'Dest' | 'Source' | 'Size'>;
  readonly MemoryFill: Slots<'Dest' | 'Value' | 'Size'>;
  readonly Unary: Slots<'Value'>;
  readonly Binary: Slots<'Left' | 'Right'>;
  readonly Select: Slots<'IfTrue' | 'IfFalse' | 'Condition'>;
  readonly Drop: Slots<'Value'>;
  readonly Return: Slots<'Value'>;
  readonly MemoryGrow: Slots<'Delta'>;
  readonly TupleMake: Operands;
  readonly TupleExtract: Slots<'Tuple'>;
  readonly RefIsNull: Slots<'Value'>;
  readonly RefAs: Slots<'Value'>;
  readonly RefEq: Slots<'Left' | 'Right'>;
  readonly TableGet: Slots<'Index'>;
  readonly Function: {
    getName(f: FunctionRef): string; getParams(f: FunctionRef): Type; getResults(f: FunctionRef): Type;
    getNumVars(f: FunctionRef): number; getVar(f: FunctionRef, i: number): Type;
    getBody(f: FunctionRef): ExpressionRef; setBody(f: FunctionRef, body: ExpressionRef): void;
  };
  readBinary(bytes: Uint8Array, features?: number): BinaryenModule;
  readonly Store8LaneVec128: number;
  readonly Store16LaneVec128: number;
  readonly Store32LaneVec128: number;
  readonly Store64LaneVec128: number;
}

export const binaryen = binaryenDefault as Omit<Binaryen, 'readBinary'> & ExpressionClasses;
const raw = binaryenDefault as unknown as RawApi;

/** What Node 20's V8 compiles: `Features.All` would let Binaryen emit encodings it cannot. */
export const NODE20_FEATURES: number =
  binaryen.Features.MVP | binaryen.Features.MutableGlobals | binaryen.Features.SignExt |
  binaryen.Features.NontrappingFPToInt | binaryen.Features.BulkMemory | binaryen.Features.BulkMemoryOpt |
  binaryen.Features.SIMD128 | binaryen.Features.Multivalue | binaryen.Features.ReferenceTypes |
  binaryen.Features.Atomics;

export function extras(module: BinaryenModule): ModuleExtras {
  return module as unknown as ModuleExtras;
}

/** The message of something Binaryen threw (a Fatal()), or of a JavaScript error. */
export function binaryenMessage(e: unknown): string {
  if (e instanceof Error) return e.message;
  const message = (e as { message?: unknown } | null)?.message;
  if (typeof message === 'string' && message !== '') return message;
  try {
    const m = raw.getExceptionMessage(e);
    return Array.isArray(m) ? m.filter((s) => s !== '').join(': ') : String(m);
  } catch {
    return String(e);
  }
}

/** Run `fn` with what Binaryen prints to stderr captured, and return both. */
export function capturingStderr<T>(fn: () => T): { readonly value: T; readonly printed: string } {
  const write = process.stderr.write;
  let printed = '';
  process.stderr.write = ((chunk: string | Uint8Array) => {
    printed += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
    return true;
  }) as typeof process.stderr.write;
  try {
    return { value: fn(), printed };
  } finally {
    process.stderr.write = write;
  }
}

/** The validator's complaints with `features` in force, or undefined if the module is valid. */
export function validationErrors(module: BinaryenModule, features: number): string | undefined {
  const before = module.getFeatures();
  module.setFeatures(features);
  try {
    const { value, printed } = capturingStderr(() => module.validate());
    return value ? undefined : (printed.trim() || 'the validator gave no reason');
  } finally {
    module.setFeatures(before);
  }
}

/**
 * What Binaryen printed to stderr without a newline: its instance buffers a
 * line until the newline (the reader's "[parse exception: ...]" has none).
 * Validating a one-function invalid module prints a line, which flushes it.
 */
function pendingStderr(): string {
  const probe = new binaryen.Module();
  try {
    probe.addFunction('probe', binaryen.none, binaryen.i32, [], probe.nop());
    const { printed } = capturingStderr(() => probe.validate());
    const end = printed.indexOf('[wasm-validator');
    return (end < 0 ? '' : printed.slice(0, end)).trim();
  } finally {
    probe.dispose();
  }
}

/** Read a binary module with every feature allowed (the checks come after, with messages of ours); a failure names Binaryen's reason. */
export function readModule(bytes: Uint8Array): BinaryenModule {
  try {
    return binaryen.readBinary(bytes, binaryen.Features.All);
  } catch (err) {
    const detail = pendingStderr();
    throw new Error(detail === '' ? binaryenMessage(err) : `${binaryenMessage(err)}: ${detail}`, { cause: err });
  }
}

export interface FunctionView {
  readonly ref: FunctionRef;
  readonly name: string;
  /** An import (it has no body). */
  readonly imported: boolean;
}

/** Every function of the module, imports first, in index order. */
export function functionsOf(module: BinaryenModule): FunctionView[] {
  const out: FunctionView[] = [];
  for (let i = 0; i < module.getNumFunctions(); i++) {
    const ref = module.getFunctionByIndex(i);
    out.push({ ref, name: binaryen.Function.getName(ref), imported: binaryen.Function.getBody(ref) === 0 });
  }
  return out;
}

/** Add a local of `type` to `func`; its index. */
export function addLocal(func: FunctionRef, type: Type): number {
  return raw._BinaryenFunctionAddVar(func, type);
}

/** The types of a function's params and vars, by local index. */
export function localTypes(func: FunctionRef): Type[] {
  const types = [...binaryen.expandType(binaryen.Function.getParams(func))];
  for (let i = 0; i < binaryen.Function.getNumVars(func); i++) types.push(binaryen.Function.getVar(func, i));
  return types;
}

/** A function name not yet in the module: `base`, or `base_2`, `base_3`... */
export function freshFunctionName(module: BinaryenModule, base: string): string {
  let name = base;
  for (let i = 2; module.getFunction(name) !== 0; i++) name = `${base}_${i}`;
  return name;
}

/** A human name of a value type, for messages. */
export function typeName(type: Type): string {
  const names: [Type, string][] = [
    [binaryen.i32, 'i32'], [binaryen.i64, 'i64'], [binaryen.f32, 'f32'], [binaryen.f64, 'f64'], [binaryen.v128, 'v128'],
    [binaryen.funcref, 'funcref'], [binaryen.externref, 'externref'],
  ];
  return names.find(([t]) => t === type)?.[1] ?? 'a reference or tuple type';
}

/** An i32 constant of an unsigned 32-bit value (addresses above 2 GiB included). */
export function u32(module: BinaryenModule, value: number): ExpressionRef {
  return module.i32.const(value | 0);
}

/** An i64 constant (Binaryen 132 takes one bigint; its typings still say two halves). */
export function i64Const(module: BinaryenModule, value: number): ExpressionRef {
  return (module.i64.const as unknown as (v: bigint) => ExpressionRef)(BigInt(value));
}
