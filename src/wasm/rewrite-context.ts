/**
 * What the steps of the rewrite share: the Binaryen module, the layout of
 * the memory, the `ferry.yield` import and the functions ferry added. The
 * later steps leave ferry's own functions alone (no marks, no loop polls):
 * each of them marks and polls where it must itself.
 */
import { binaryen, freshFunctionName, functionsOf, type BinaryenModule, type ExpressionRef, type FunctionView, type Type } from './binaryen.js';
import type { WasmLayout } from './layout.js';

export interface RewriteContext {
  readonly module: BinaryenModule;
  readonly layout: WasmLayout;
  /** The program's declared initial memory, 64 KiB pages. */
  readonly initialPages: number;
  /** Internal name of the function import `ferry.yield` ([] -> []). */
  readonly yieldName: string;
  /** Functions ferry added, by internal name. */
  readonly ferryFunctions: Set<string>;
  /**
   * Benchmark only (RewriteSteps.probe): the internal name of the import
   * `ferry.probe` ([i32] -> []), which every poll calls first with its site
   * number, and per site the name of the function it is in. Absent in
   * every module that is run for real.
   */
  readonly probe?: { readonly name: string; readonly sites: string[] };
}

/** A context for `module`, with the `ferry.yield` import added (and `ferry.probe`, for a benchmark's probed module). */
export function createRewriteContext(module: BinaryenModule, layout: WasmLayout, initialPages: number, probe = false): RewriteContext {
  const yieldName = freshFunctionName(module, '__ferry_yield');
  module.addFunctionImport(yieldName, 'ferry', 'yield', binaryen.none, binaryen.none);
  const ferryFunctions = new Set([yieldName]);
  if (!probe) return { module, layout, initialPages, yieldName, ferryFunctions };
  const probeName = freshFunctionName(module, '__ferry_probe');
  module.addFunctionImport(probeName, 'ferry', 'probe', binaryen.i32, binaryen.none);
  ferryFunctions.add(probeName);
  return { module, layout, initialPages, yieldName, ferryFunctions, probe: { name: probeName, sites: [] } };
}

/** The custom section of a probed module naming each probe site's function, one per line. */
export const PROBE_SITES_SECTION = 'ferry.probe-sites';

/** Add a function of ferry's own; its internal name (`base`, or `base_2`... if taken). */
export function addFerryFunction(
  ctx: RewriteContext, base: string, params: readonly Type[], result: Type, vars: readonly Type[], body: ExpressionRef,
): string {
  const name = freshFunctionName(ctx.module, base);
  ctx.module.addFunction(name, binaryen.createType(params), result, vars, body);
  ctx.ferryFunctions.add(name);
  return name;
}

/** The functions the program defined (not imports, not ferry's). */
export function programFunctions(ctx: RewriteContext): FunctionView[] {
  return functionsOf(ctx.module).filter((f) => !f.imported && !ctx.ferryFunctions.has(f.name));
}

/** The internal name of what the program exports as `exportName` (refusals.ts made sure it exists). */
export function exportedInternalName(module: BinaryenModule, exportName: string): string {
  return binaryen.getExportInfo(module.getExport(exportName)).value;
}
