/**
 * Step 3: data segments are applied once, by ferry, never by instantiation.
 *
 * Every active segment becomes passive, and the export `__ferry_init_data`
 * ([] -> []) applies each at its offset with `memory.init`, marks the 4 KiB
 * pages it wrote and drops it. The runner calls it once on a fresh start,
 * before `_start`, and never at a destination: there the memory arrives
 * from the stream, and instantiating the module again must not put the
 * segments' original bytes back over what the program wrote since (which
 * an unmodified module does, at every instantiation).
 *
 * An active segment that would not fit in the program's initial memory is
 * refused: instantiating the original module would fail.
 *
 * Left as they were: passive segments (the program inits and drops them
 * itself, through the helpers of bulk-memory.ts). At a destination, where
 * __ferry_init_data never runs, segments the program dropped are not
 * dropped; a valid program never inits a segment it dropped (that traps),
 * so only a faulting program could tell.
 */
import { WasmModuleError } from '../errors.js';
import { PAGE_SHIFT, WASM_PAGE_SIZE } from '../memory/page.js';
import { binaryen, u32, type ExpressionRef } from './binaryen.js';
import { addFerryFunction, type RewriteContext } from './rewrite-context.js';
import { dataSegments, setFerryMemory, type SegmentSpec } from './virtual-memory.js';

export const INIT_DATA_EXPORT = '__ferry_init_data';

function checkFits(ctx: RewriteContext, s: SegmentSpec, index: number): void {
  const limit = ctx.initialPages * WASM_PAGE_SIZE;
  if (s.offset !== null && s.offset + s.data.length > limit) {
    throw new WasmModuleError(`the module's data segment ${index} (${s.name}) of ${s.data.length} bytes at offset ${s.offset} ` +
      `lies outside its initial memory of ${limit} bytes (the original module would fail to instantiate)`);
  }
}

/** memory.init of the whole segment at its offset, then its pages marked (after a fence: bulk-memory.ts says why). */
function applySegment(ctx: RewriteContext, s: SegmentSpec & { readonly offset: number }): ExpressionRef[] {
  const { module: m, layout } = ctx;
  if (s.data.length === 0) return [];
  const first = s.offset >>> PAGE_SHIFT;
  const last = (s.offset + s.data.length - 1) >>> PAGE_SHIFT;
  return [
    m.memory.init(s.name, u32(m, s.offset), m.i32.const(0), u32(m, s.data.length)),
    m.atomic.fence(),
    m.memory.fill(u32(m, layout.marksOffset + first), m.i32.const(1), u32(m, last - first + 1)),
  ];
}

/** Make every segment passive and add the export __ferry_init_data that applies the active ones once. */
export function applyDataSegmentsOnce(ctx: RewriteContext): void {
  const segments = dataSegments(ctx);
  segments.forEach((s, i) => {
    checkFits(ctx, s, i);
  });
  setFerryMemory(ctx, segments.map((s) => ({ ...s, offset: null })));
  const m = ctx.module;
  const active = segments.filter((s): s is SegmentSpec & { readonly offset: number } => s.offset !== null);
  const body = m.block(null, [
    ...active.flatMap((s) => applySegment(ctx, s)),
    ...active.map((s) => m.data.drop(s.name)),
  ], binaryen.none);
  const name = addFerryFunction(ctx, '__ferry_init_data', [], binaryen.none, [], body);
  m.addFunctionExport(name, INIT_DATA_EXPORT);
}
