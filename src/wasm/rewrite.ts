/**
 * The rewrite of a program into the module ferry runs, step by step (each
 * step is a function of its own file, tested alone):
 *
 *   1. refuse what cannot be instrumented (refusals.ts, module-refusals.ts),
 *      validating the module first;
 *   2. memory: import ferry.memory, virtualize memory.size/grow (virtual-memory.ts);
 *   3. data segments applied once, by __ferry_init_data (data-segments.ts);
 *   4. marks after every store, bulk operations chunked (marks.ts, bulk-memory.ts);
 *   5. polls at loop tops and recursive entries (polls.ts);
 *   6. mutable globals exported, Asyncify (asyncify.ts);
 *   7. features: what Node 20 compiles (binaryen.ts NODE20_FEATURES), set
 *      before the steps so that no step or optimization emits more;
 *      the result validated again.
 *
 * This runs Binaryen synchronously and for long (tens of seconds for a
 * large program): loadProgram runs it in a worker (instrument-worker.ts).
 */
import { WasmModuleError } from '../errors.js';
import { exportMutableGlobals, runAsyncify, type MutableGlobal } from './asyncify.js';
import { binaryenMessage, NODE20_FEATURES, readModule, validationErrors, type BinaryenModule } from './binaryen.js';
import { applyDataSegmentsOnce } from './data-segments.js';
import type { WasmLayout } from './layout.js';
import { markStores } from './marks.js';
import { resolveMemory, type ResolvedOptions } from './memory-limits.js';
import { readModuleHeader } from './module-header.js';
import { checkProgramModule, firstLines } from './module-refusals.js';
import { addPolls } from './polls.js';
import { checkProgramHeader } from './refusals.js';
import { createRewriteContext, PROBE_SITES_SECTION, type RewriteContext } from './rewrite-context.js';
import { importFerryMemory, virtualizeMemorySize } from './virtual-memory.js';

export interface RewriteResult {
  /** The instrumented module's bytes. */
  readonly wasm: Uint8Array;
  readonly layout: WasmLayout;
  readonly initialPages: number;
  readonly wasiImports: readonly string[];
  readonly mutableGlobals: readonly MutableGlobal[];
}

/** Which steps run (all by default); the cost measurements switch some off. */
export interface RewriteSteps {
  readonly marks?: boolean;
  readonly polls?: boolean;
  readonly asyncify?: boolean;
  /** Every poll first calls `ferry.probe(site)`, for the benchmark that times the stretches between polls (default off). */
  readonly probe?: boolean;
}

/** Read `bytes` with Binaryen, refusing with a clear message what it cannot read. */
function readChecked(bytes: Uint8Array): BinaryenModule {
  try {
    return readModule(bytes);
  } catch (err) {
    throw new WasmModuleError(`not a valid WebAssembly module: Binaryen could not read it (${binaryenMessage(err)})`, { cause: err });
  }
}

/** Steps 2 to 6 on a module that passed the refusals. */
function rewriteSteps(ctx: RewriteContext, steps: RewriteSteps): MutableGlobal[] {
  importFerryMemory(ctx);
  applyDataSegmentsOnce(ctx);
  virtualizeMemorySize(ctx);
  if (steps.marks !== false) markStores(ctx);
  if (steps.polls !== false) addPolls(ctx);
  const globals = exportMutableGlobals(ctx);
  if (steps.asyncify !== false) runAsyncify(ctx);
  return globals;
}

/** The instrumented module for the program `bytes` with `options` (unresolved ones take their defaults). */
export function rewriteProgram(
  bytes: Uint8Array, options: Partial<ResolvedOptions> = {}, steps: RewriteSteps = {},
): RewriteResult {
  const program = checkProgramHeader(readModuleHeader(bytes));
  const { layout } = resolveMemory(program.memory, options);
  const module = readChecked(bytes);
  try {
    checkProgramModule(module);
    module.setFeatures(NODE20_FEATURES);
    const ctx = createRewriteContext(module, layout, program.memory.initialPages, steps.probe === true);
    const mutableGlobals = rewriteSteps(ctx, steps);
    if (ctx.probe !== undefined) module.addCustomSection(PROBE_SITES_SECTION, new TextEncoder().encode(ctx.probe.sites.join('\n')));
    const invalid = validationErrors(module, NODE20_FEATURES);
    if (invalid !== undefined) throw new Error(`ferry's rewrite produced an invalid module (a bug in src/wasm/): ${firstLines(invalid, 6)}`);
    return { wasm: module.emitBinary(), layout, initialPages: program.memory.initialPages, wasiImports: program.wasiImports, mutableGlobals };
  } finally {
    module.dispose();
  }
}
