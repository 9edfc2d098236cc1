/**
 * Step 4: every write of the program to its memory marks the 4 KiB page it
 * wrote in the mark map (DESIGN.md section 7: a plain byte map).
 *
 * After every store (`*.store*`, `*.atomic.store*`, `*.atomic.rmw*`,
 * `*.atomic.rmw*.cmpxchg`, `v128.store`, `v128.storeN_lane`), at effective
 * address ea = pointer + the store's offset and of `size` bytes:
 *
 *   i32.store8 offset=marksOffset (ea >>> 12) 1
 *   i32.store8 offset=marksOffset ((ea + size - 1) >>> 12) 1   ;; size > 1: it may straddle two pages
 *
 * The pointer is evaluated once, into a scratch local; the store's operands
 * keep their evaluation order (pointer, then value). A store nested in
 * another's operands uses a scratch local of its own depth, so an inner
 * store never overwrites the outer one's pointer. Bulk operations go to
 * the chunked helpers of bulk-memory.ts.
 *
 * Why no write made before a pause is acknowledged escapes the harvester:
 * the data store comes first and the mark after it, both plain stores, in
 * program order. V8 keeps wasm stores in program order (each is a node on
 * its effect chain; no optimization moves one store past another, nor does
 * Binaryen's optimizer, which Asyncify runs), and x86-64 makes a core's
 * stores visible in the order it issued them (TSO), so a thread that reads
 * the mark as 1 and then the page reads the data. The harvester clears
 * a mark with an atomic exchange (a locked instruction: its later reads of
 * the page cannot pass it) before it reads the page: a store whose mark it
 * cleared was visible (store then mark); a store that lands after the
 * clear marks again and is seen by the next harvest. A mark is never
 * missing for a changed page; a mark is extra only when a store wrote the
 * bytes that were already there.
 *
 * Cost, measured here (Node 20, 2 cores shared with other work): a loop
 * of one store per iteration, 4 Mi iterations per call, the median of the
 * last 30 of 60 calls (V8 has tiered it up by then), the middle of three
 * rounds, against the same loop uninstrumented in the same run:
 *   i32.store8 (one mark):   marks 1.74x, polls 1.22x, all steps 2.41x
 *   i32.store  (two marks):  marks 1.56x, polls 1.11x, all steps 2.18x
 * (the issue measured 1.6x for a byte map, 15x for a locked OR per store).
 * Static coalescing (one mark per page per basic block) could cut it;
 * not done.
 */
import { PAGE_SHIFT } from '../memory/page.js';
import { addLocal, binaryen, type ExpressionRef, type FunctionRef, type Type } from './binaryen.js';
import { bulkHelpers, type BulkHelpers } from './bulk-memory.js';
import { programFunctions, type RewriteContext } from './rewrite-context.js';
import { dataSegments } from './virtual-memory.js';
import { rewriteFunction } from './walk.js';

/** Bytes a SIMD lane store writes, by its op. */
const LANE_STORE_BYTES = new Map<number, number>([
  [binaryen.Store8LaneVec128, 1], [binaryen.Store16LaneVec128, 2], [binaryen.Store32LaneVec128, 4], [binaryen.Store64LaneVec128, 8],
]);

/** How a kind of store exposes its pointer, offset and width. */
interface StoreKind {
  readonly bytes: (e: ExpressionRef) => number;
  readonly offset: (e: ExpressionRef) => number;
  readonly getPtr: (e: ExpressionRef) => ExpressionRef;
  readonly setPtr: (e: ExpressionRef, p: ExpressionRef) => void;
}

const b = binaryen;
const STORES = new Map<number, StoreKind>([
  [b.StoreId, { bytes: b.Store.getBytes, offset: b.Store.getOffset, getPtr: b.Store.getPtr, setPtr: b.Store.setPtr }],
  [b.AtomicRMWId, { bytes: b.AtomicRMW.getBytes, offset: b.AtomicRMW.getOffset, getPtr: b.AtomicRMW.getPtr, setPtr: b.AtomicRMW.setPtr }],
  [b.AtomicCmpxchgId, { bytes: b.AtomicCmpxchg.getBytes, offset: b.AtomicCmpxchg.getOffset, getPtr: b.AtomicCmpxchg.getPtr, setPtr: b.AtomicCmpxchg.setPtr }],
  [b.SIMDLoadStoreLaneId, {
    bytes: (e) => LANE_STORE_BYTES.get(b.SIMDLoadStoreLane.getOp(e)) ?? 0, offset: b.SIMDLoadStoreLane.getOffset,
    getPtr: b.SIMDLoadStoreLane.getPtr, setPtr: b.SIMDLoadStoreLane.setPtr,
  }],
]);

/** The store kind of `expr`, or undefined (a lane load is not a store). */
function storeKind(expr: ExpressionRef, id: number): StoreKind | undefined {
  if (id === b.SIMDLoadStoreLaneId && !b.SIMDLoadStoreLane.isStore(expr)) return undefined;
  return STORES.get(id);
}

/** Scratch locals of one function, one per (role, type, nesting depth): a pointer and a result never share one. */
class Scratch {
  private readonly locals = new Map<string, number>();
  constructor(private readonly func: FunctionRef) {}
  get(role: 'pointer' | 'result', type: Type, depth: number): number {
    const key = `${role}:${type}:${depth}`;
    let index = this.locals.get(key);
    if (index === undefined) {
      index = addLocal(this.func, type);
      this.locals.set(key, index);
    }
    return index;
  }
}

/** `i32.store8 offset=marksOffset ((p + offset) >>> 12) 1`. */
function markAt(ctx: RewriteContext, pointer: number, offset: number): ExpressionRef {
  const m = ctx.module;
  const p = m.local.get(pointer, b.i32);
  const ea = offset === 0 ? p : m.i32.add(p, m.i32.const(offset | 0));
  return m.i32.store8(ctx.layout.marksOffset, 1, m.i32.shr_u(ea, m.i32.const(PAGE_SHIFT)), m.i32.const(1));
}

/** The store `expr`, its pointer in a scratch local, followed by its marks; a value it returned is returned after them. */
function markedStore(ctx: RewriteContext, scratch: Scratch, expr: ExpressionRef, kind: StoreKind, depth: number): ExpressionRef {
  const m = ctx.module;
  const type = b.getExpressionType(expr);
  const pointer = scratch.get('pointer', b.i32, depth);
  const setPointer = m.local.set(pointer, kind.getPtr(expr));
  kind.setPtr(expr, m.local.get(pointer, b.i32));
  const bytes = kind.bytes(expr);
  const offset = kind.offset(expr);
  const marks = bytes > 1 ? [markAt(ctx, pointer, offset), markAt(ctx, pointer, offset + bytes - 1)] : [markAt(ctx, pointer, offset)];
  if (type === b.none) return m.block(null, [setPointer, expr, ...marks], b.none);
  const result = scratch.get('result', type, depth);
  return m.block(null, [setPointer, m.local.set(result, expr), ...marks, m.local.get(result, type)], type);
}

/** A bulk operation as a call to its chunked helper (same operands, same order). */
function bulkCall(ctx: RewriteContext, helpers: BulkHelpers, expr: ExpressionRef, id: number, segmentBytes: (name: string) => number): ExpressionRef | undefined {
  const m = ctx.module;
  if (id === b.MemoryFillId) return m.call(helpers.fill(), [b.MemoryFill.getDest(expr), b.MemoryFill.getValue(expr), b.MemoryFill.getSize(expr)], b.none);
  if (id === b.MemoryCopyId) return m.call(helpers.copy(), [b.MemoryCopy.getDest(expr), b.MemoryCopy.getSource(expr), b.MemoryCopy.getSize(expr)], b.none);
  if (id === b.MemoryInitId) {
    const segment = b.MemoryInit.getSegment(expr);
    return m.call(helpers.init(segment, segmentBytes(segment)), [b.MemoryInit.getDest(expr), b.MemoryInit.getOffset(expr), b.MemoryInit.getSize(expr)], b.none);
  }
  return undefined;
}

/** Step 4: marks after every store of every program function; bulk operations through the chunked helpers. */
export function markStores(ctx: RewriteContext): void {
  const helpers = bulkHelpers(ctx);
  const lengths = new Map(dataSegments(ctx).map((s) => [s.name, s.data.length]));
  const segmentBytes = (name: string) => lengths.get(name) ?? 0;
  for (const f of programFunctions(ctx)) {
    const scratch = new Scratch(f.ref);
    let depth = 0;
    rewriteFunction(f.ref, {
      enter: (expr, id) => { if (storeKind(expr, id) !== undefined) depth++; },
      leave: (expr, id) => {
        const kind = storeKind(expr, id);
        if (kind !== undefined) depth--;
        if (b.getExpressionType(expr) === b.unreachable) return expr; // an operand never returns: no write happens
        if (kind !== undefined) return markedStore(ctx, scratch, expr, kind, depth);
        return bulkCall(ctx, helpers, expr, id, segmentBytes) ?? expr;
      },
    });
  }
}
