/**
 * The program's memory becomes ferry's, and its size becomes virtual.
 *
 * - The memory is replaced by the import `ferry.memory`: shared (so the
 *   vCPU worker and ferry's other threads see the same bytes), with
 *   initial = maximum = layout.totalPages (the whole memory exists from the
 *   start; the operating system commits a page when it is first touched).
 * - `memory.size` reads the virtual size (layout.sizeOffset, i32), which the
 *   runner writes before `_start` (the program's initial pages at a fresh
 *   start, the migrated size at a destination).
 * - `memory.grow n` calls __ferry_memory_grow: if n pages would take the size
 *   past layout.guestMaxPages it returns -1, else it stores the new size and
 *   returns the old one. The pages it adds are zero: the memory above the
 *   virtual size was zero when created and only a program storing out of
 *   its bounds (which traps unvirtualised) could have written there, so
 *   nothing could have written there legitimately. The size is stored with
 *   an atomic store so that another thread (the migration reading the size
 *   for its header) reads a whole value.
 * - `memory.atomic.wait32/64` traps, as it does on the program's own
 *   unshared memory; on the shared memory it would block forever, since a
 *   single-threaded program has no one to wake it.
 */
import { binaryen, extras, u32, type ExpressionRef } from './binaryen.js';
import { addFerryFunction, exportedInternalName, programFunctions, type RewriteContext } from './rewrite-context.js';
import { rewriteFunction } from './walk.js';

export interface SegmentSpec {
  readonly name: string;
  readonly data: Uint8Array;
  /** Constant offset of an active segment; null = passive. */
  readonly offset: number | null;
}

/** The module's data segments, in order. */
export function dataSegments(ctx: RewriteContext): SegmentSpec[] {
  const m = extras(ctx.module);
  const out: SegmentSpec[] = [];
  for (let i = 0; i < m.getNumDataSegments(); i++) {
    const info = m.getDataSegmentInfo(m.getDataSegmentByIndex(i));
    out.push({ name: info.name, data: new Uint8Array(info.data), offset: info.passive ? null : info.offset });
  }
  return out;
}

/** Make the memory `ferry.memory` (shared, totalPages), with `segments` as its data segments. */
export function setFerryMemory(ctx: RewriteContext, segments: readonly SegmentSpec[]): void {
  const { module, layout } = ctx;
  const name = exportedInternalName(module, 'memory');
  module.setMemory(layout.totalPages, layout.totalPages, null, segments.map((s) => ({
    name: s.name, data: s.data, passive: s.offset === null, offset: s.offset === null ? 0 : u32(module, s.offset),
  })), true, false, name);
  module.addMemoryImport(name, 'ferry', 'memory', true);
}

/** Step 2a: the program's memory is replaced by the import ferry.memory (segments unchanged). */
export function importFerryMemory(ctx: RewriteContext): void {
  setFerryMemory(ctx, dataSegments(ctx));
}

/** __ferry_memory_grow(n): -1 past the guest's maximum, else the old size (and the size grows by n). */
function addGrowFunction(ctx: RewriteContext): string {
  const { module: m, layout } = ctx;
  const n = () => m.local.get(0, binaryen.i32);
  const old = () => m.local.get(1, binaryen.i32);
  const max = u32(m, layout.guestMaxPages);
  const body = m.block(null, [
    m.local.set(1, m.i32.atomic.load(layout.sizeOffset, m.i32.const(0))),
    m.if(m.i32.or(m.i32.gt_u(old(), max), m.i32.gt_u(n(), m.i32.sub(u32(m, layout.guestMaxPages), old()))),
      m.return(m.i32.const(-1))),
    m.i32.atomic.store(layout.sizeOffset, m.i32.const(0), m.i32.add(old(), n())),
    old(),
  ], binaryen.i32);
  return addFerryFunction(ctx, '__ferry_memory_grow', [binaryen.i32], binaryen.i32, [binaryen.i32], body);
}

/** A wait's operands are evaluated (in order), then it traps. */
function trappingWait(ctx: RewriteContext, expr: ExpressionRef): ExpressionRef {
  const m = ctx.module;
  const w = binaryen.AtomicWait;
  return m.block(null, [m.drop(w.getPtr(expr)), m.drop(w.getExpected(expr)), m.drop(w.getTimeout(expr)), m.unreachable()], binaryen.i32);
}

/** Step 2b: memory.size and memory.grow read and bump the virtual size; atomic waits trap. */
export function virtualizeMemorySize(ctx: RewriteContext): void {
  const m = ctx.module;
  const grow = addGrowFunction(ctx);
  const size = () => m.i32.load(ctx.layout.sizeOffset, 4, m.i32.const(0));
  for (const f of programFunctions(ctx)) {
    rewriteFunction(f.ref, {
      leave: (expr, id) => {
        if (id === binaryen.MemorySizeId) return size();
        if (binaryen.getExpressionType(expr) === binaryen.unreachable) return expr; // an operand never returns
        if (id === binaryen.MemoryGrowId) return m.call(grow, [binaryen.MemoryGrow.getDelta(expr)], binaryen.i32);
        if (id === binaryen.AtomicWaitId) return trappingWait(ctx, expr);
        return expr;
      },
    });
  }
}
