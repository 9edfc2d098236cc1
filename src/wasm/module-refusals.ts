/**
 * What ferry refuses once Binaryen has read the program, each with a
 * message naming the instruction (or local, or global) and its function.
 * refusals.ts has already refused what the header shows.
 *
 *   - an invalid module (Binaryen's validator, every feature allowed);
 *   - exception handling (Asyncify cannot unwind out of a catch), tail
 *     calls (Asyncify refuses them), GC, strings and stack switching;
 *   - a table mutated at run time (table.set/grow/fill/copy/init,
 *     elem.drop): a table is not migrated, so it must be what the module's
 *     element segments make it at every instantiation;
 *   - a parameter or local that is not a number or v128 (Asyncify saves
 *     locals as bytes and aborts on references), and a mutable global of a
 *     type the runner cannot save (v128, references);
 *   - a `_start` that takes or returns values, and a start function (the
 *     start section: it runs at every instantiation, so at a destination too);
 *   - last, anything else Node 20 cannot run (the validator again, with
 *     Node 20's features only).
 */
import { WasmModuleError } from '../errors.js';
import { binaryen, functionsOf, localTypes, NODE20_FEATURES, typeName, validationErrors, type BinaryenModule } from './binaryen.js';
import { isListedKind, rewriteFunction } from './walk.js';

const b = binaryen;

/** Expression kinds refused, with what they are. */
const REFUSED = new Map<number, string>([
  ...[b.TryId, b.TryTableId, b.ThrowId, b.RethrowId, b.ThrowRefId, b.PopId].map((id) => [id, 'exception handling, which Asyncify cannot unwind through'] as const),
  ...[b.TableSetId, b.TableGrowId, b.TableFillId, b.TableCopyId, b.TableInitId, b.ElemDropId].map((id) =>
    [id, 'a table mutated at run time, which would not migrate (a table is what the element segments make it)'] as const),
  ...[b.CallRefId, b.RefI31Id, b.I31GetId, b.RefTestId, b.RefCastId, b.BrOnId, b.RefGetDescId, b.StructNewId, b.StructGetId,
    b.StructSetId, b.StructRMWId, b.StructCmpxchgId, b.ArrayNewId, b.ArrayNewDataId, b.ArrayNewElemId, b.ArrayNewFixedId,
    b.ArrayGetId, b.ArraySetId, b.ArrayLoadId, b.ArrayStoreId, b.ArrayLenId, b.ArrayCopyId, b.ArrayFillId, b.ArrayInitDataId,
    b.ArrayInitElemId, b.ArrayRMWId, b.ArrayCmpxchgId].map((id) => [id, 'garbage collection (GC) or typed function references, which ferry does not support'] as const),
  ...[b.StringNewId, b.StringConstId, b.StringMeasureId, b.StringEncodeId, b.StringConcatId, b.StringEqId, b.StringTestId,
    b.StringWTF16GetId, b.StringSliceWTFId].map((id) => [id, 'stringref strings, which ferry does not support'] as const),
  ...[b.ContNewId, b.ContBindId, b.SuspendId, b.ResumeId, b.ResumeThrowId, b.StackSwitchId].map((id) =>
    [id, 'stack switching, which ferry does not support'] as const),
]);

const SAVABLE = new Set([b.i32, b.i64, b.f32, b.f64, b.v128]);
const GLOBAL_SAVABLE = new Set([b.i32, b.i64, b.f32, b.f64]);

/** Thrown by the walk to stop at the first refused instruction. */
class Found {
  constructor(readonly message: string) {}
}

/** The instruction of `expr` as text, without its operands: "table.set $t". */
function instructionName(expr: number): string {
  return b.emitText(expr).split('\n')[0].trim().replace(/^\(/, '').replace(/\)$/, '');
}

/** Why `expr` (kind `id`, in function `name`) is refused, or undefined. */
function refusal(expr: number, id: number, name: string): string | undefined {
  const what = REFUSED.get(id);
  if (what !== undefined) return `uses ${what} (${instructionName(expr)} in function ${name})`;
  if ((id === b.CallId && b.Call.isReturn(expr)) || (id === b.CallIndirectId && b.CallIndirect.isReturn(expr))) {
    return `uses tail calls (return_call in function ${name}), which Asyncify does not support`;
  }
  if (!isListedKind(id)) return `uses an instruction ferry does not handle (Binaryen expression kind ${id} in function ${name})`;
  return undefined;
}

/** The first refused instruction of `func`, as a message, or undefined. */
function refusedInstruction(func: number, name: string): string | undefined {
  try {
    // `enter` sees a node before the walk asks for its children, so an unlisted kind stops here.
    rewriteFunction(func, {
      enter: (expr, id) => {
        const why = refusal(expr, id, name);
        if (why !== undefined) throw new Found(why);
      },
      leave: (expr) => expr,
    });
    return undefined;
  } catch (err) {
    if (err instanceof Found) return err.message;
    throw err;
  }
}

function checkFunctions(module: BinaryenModule): void {
  for (const f of functionsOf(module)) {
    if (f.imported) continue;
    const bad = localTypes(f.ref).find((t) => !SAVABLE.has(t));
    if (bad !== undefined) {
      throw new WasmModuleError(`the module's function ${f.name} has a local of type ${typeName(bad)}, which Asyncify cannot save`);
    }
    const refused = refusedInstruction(f.ref, f.name);
    if (refused !== undefined) throw new WasmModuleError(`the module ${refused}`);
  }
  if (module.getStart() !== 0) {
    throw new WasmModuleError(`the module has a start function (${b.Function.getName(module.getStart())}), which runs at every instantiation: it would run again at a destination`);
  }
  const start = module.getFunction(b.getExportInfo(module.getExport('_start')).value);
  if (b.Function.getParams(start) !== b.none || b.Function.getResults(start) !== b.none) {
    throw new WasmModuleError('the module\'s _start takes or returns values: a WASI command\'s _start has the type [] -> []');
  }
}

function checkGlobals(module: BinaryenModule): void {
  for (let i = 0; i < module.getNumGlobals(); i++) {
    const info = b.getGlobalInfo(module.getGlobalByIndex(i));
    if (info.mutable && !GLOBAL_SAVABLE.has(info.type)) {
      throw new WasmModuleError(`the module's mutable global ${i} (${info.name}) is of type ${typeName(info.type)}, which ferry cannot save and restore`);
    }
  }
}

/** Refuse (WasmModuleError) a module ferry cannot instrument or Node 20 cannot run. */
export function checkProgramModule(module: BinaryenModule): void {
  const invalid = validationErrors(module, binaryen.Features.All as number);
  if (invalid !== undefined) throw new WasmModuleError(`not a valid WebAssembly module: ${firstLines(invalid)}`);
  checkFunctions(module);
  checkGlobals(module);
  const unsupported = validationErrors(module, NODE20_FEATURES);
  if (unsupported !== undefined) throw new WasmModuleError(`the module uses WebAssembly features Node 20 cannot run: ${firstLines(unsupported)}`);
}

/** The validator's first complaint (it prints the whole offending expression after it). */
export function firstLines(text: string, lines = 3): string {
  return text.split('\n').slice(0, lines).join(' ').replace(/\s+/g, ' ').trim();
}
