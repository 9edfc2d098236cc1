/**
 * Step 6: the program's execution state becomes data (Binaryen's Asyncify).
 *
 * Asyncify runs with `asyncify-imports` = ferry.yield and
 * wasi_snapshot_preview1.poll_oneoff: only those two may unwind the stack
 * (the poll's slow path, and a blocked sleep); any other import returns
 * before a pause. Indirect calls are assumed to reach them (Asyncify's
 * default), so an unwind may cross `call_indirect`.
 *
 * The protocol, for the runner (Asyncify's state: 0 normal, 1 unwinding,
 * 2 rewinding; its data at layout.unwindDataOffset is {i32 cur, i32 end},
 * which the runner writes: cur = unwindBufferOffset, end = unwindBufferOffset
 * + unwindBufferBytes, before an unwind):
 *   pause:   inside ferry.yield (state 0), call asyncify_start_unwind(
 *            unwindDataOffset) and return; `_start` returns to the runner;
 *            call asyncify_stop_unwind(). The stack is [unwindBufferOffset,
 *            cur); the program's mutable globals (exports __ferry_global_<i>)
 *            and the virtual size complete the vCPU state.
 *   resume:  (same or another instance, the same instrumented module, the
 *            memory and globals restored, {cur, end} as they were left)
 *            asyncify_start_rewind(unwindDataOffset); call `_start`; the
 *            program re-enters ferry.yield with state 2: call
 *            asyncify_stop_rewind() and return (without unwinding again).
 *
 * Overflow: Asyncify does not check the buffer while it unwinds (it checks
 * cur > end only in asyncify_stop_unwind and the other calls, trapping
 * with `unreachable`). The buffer is the last thing in the memory, so an
 * unwind that overflows it writes nothing of the program's: it either
 * traps out of bounds (state still 1) or finishes with cur > end and
 * asyncify_stop_unwind traps. The runner tells it apart: a trap while
 * asyncify_get_state() is 1, or cur > end, is an overflow of the buffer,
 * to be reported naming its size (layout.unwindBufferBytes) and the option
 * that sets it (InstrumentOptions.unwindBufferBytes).
 */
import { WasmModuleError } from '../errors.js';
import { binaryen, typeName } from './binaryen.js';
import type { RewriteContext } from './rewrite-context.js';

/** The imports that may unwind: the only ones Asyncify instruments calls to. */
export const ASYNCIFY_IMPORTS: readonly string[] = ['ferry.yield', 'wasi_snapshot_preview1.poll_oneoff'];

/** The exports Asyncify adds. */
export const ASYNCIFY_EXPORTS: readonly string[] = [
  'asyncify_start_unwind', 'asyncify_stop_unwind', 'asyncify_start_rewind', 'asyncify_stop_rewind', 'asyncify_get_state',
];

/** Asyncify's state values (asyncify_get_state). */
export const ASYNCIFY_STATE = { normal: 0, unwinding: 1, rewinding: 2 } as const;

export const GLOBAL_EXPORT_PREFIX = '__ferry_global_';

export interface MutableGlobal {
  readonly exportName: string;
  readonly type: 'i32' | 'i64' | 'f32' | 'f64';
}

/** Export every mutable global of the program as __ferry_global_<index>, so the runner can save and restore it. */
export function exportMutableGlobals(ctx: RewriteContext): MutableGlobal[] {
  const out: MutableGlobal[] = [];
  for (let i = 0; i < ctx.module.getNumGlobals(); i++) {
    const info = binaryen.getGlobalInfo(ctx.module.getGlobalByIndex(i));
    if (!info.mutable) continue;
    const type = typeName(info.type);
    if (type !== 'i32' && type !== 'i64' && type !== 'f32' && type !== 'f64') {
      throw new WasmModuleError(`the module's mutable global ${i} (${info.name}) is of type ${type}, which ferry cannot save and restore`);
    }
    const exportName = `${GLOBAL_EXPORT_PREFIX}${i}`;
    ctx.module.addGlobalExport(info.name, exportName);
    out.push({ exportName, type });
  }
  return out;
}

/**
 * Run Asyncify. Binaryen's optimizer runs inside it (optimize level 2,
 * shrink level 1, Binaryen's defaults: Asyncify optimizes the functions it
 * instruments, which is what keeps its cost near 2.5x rather than far
 * above). Pass arguments and levels are Binaryen-global: set here, cleared
 * after.
 */
export function runAsyncify(ctx: RewriteContext): void {
  const optimize = binaryen.getOptimizeLevel();
  const shrink = binaryen.getShrinkLevel();
  binaryen.setOptimizeLevel(2);
  binaryen.setShrinkLevel(1);
  binaryen.setPassArgument('asyncify-imports', ASYNCIFY_IMPORTS.join(','));
  try {
    ctx.module.runPasses(['asyncify']);
  } finally {
    binaryen.clearPassArguments();
    binaryen.setOptimizeLevel(optimize);
    binaryen.setShrinkLevel(shrink);
  }
}
