/**
 * Step 4b: `memory.fill`, `memory.copy` and `memory.init` become calls to
 * helpers ferry adds, which work in chunks of at most BULK_CHUNK_BYTES:
 *
 *   for each chunk: the bulk operation on the chunk; atomic.fence;
 *                   mark every 4 KiB page of the chunk (a memory.fill of 1s
 *                   over the chunk's bytes of the mark map);
 *                   then, if bytes remain, a poll (polls.ts).
 *
 * So one instruction that writes 1 GiB neither keeps a pause waiting for
 * the whole of it nor leaves 1 GiB written and unmarked at a pause.
 *
 * Order: the marks of a chunk are written after the chunk's data, as for a
 * single store (marks.ts). A bulk operation may be compiled to a library
 * memset/memmove whose stores are weakly ordered (x86 string and
 * non-temporal stores), so a fence (`atomic.fence`, an mfence) separates a
 * chunk's data from its marks: a harvester that sees a mark cleared after
 * the fence sees the chunk's data too.
 *
 * Copy: when the ranges overlap with dst > src, the chunks go from the end
 * backwards, so that no chunk reads bytes an earlier chunk wrote; within a
 * chunk memory.copy is a memmove. Bounds are checked against the virtual
 * size before anything is written, so an operation that the original
 * would trap on still traps, having written nothing.
 *
 * A mark is never missing for a changed page; a mark may be extra: a fill
 * or copy that writes bytes equal to what was there marks its pages all
 * the same.
 */
import { PAGE_SHIFT } from '../memory/page.js';
import { binaryen, i64Const, u32, type ExpressionRef } from './binaryen.js';
import { pollExpression } from './polls.js';
import { addFerryFunction, type RewriteContext } from './rewrite-context.js';

/** The largest piece a bulk operation writes between two polls. */
export const BULK_CHUNK_BYTES = 1024 * 1024;

const i32 = binaryen.i32;
const D = 0; // params of every helper: dst, src/value, length; then the chunk
const S = 1;
const N = 2;
const C = 3;

export interface BulkHelpers {
  fill(): string;
  copy(): string;
  init(segment: string, segmentBytes: number): string;
}

/** Trap unless [addr, addr + len) lies within the virtual size (as u64 arithmetic: no wrap). */
function boundsCheck(ctx: RewriteContext, addr: ExpressionRef, len: ExpressionRef, limit?: ExpressionRef): ExpressionRef {
  const m = ctx.module;
  const end = m.i64.add(m.i64.extend_u(addr), m.i64.extend_u(len));
  const max = limit ?? m.i64.shl(m.i64.extend_u(m.i32.load(ctx.layout.sizeOffset, 4, m.i32.const(0))), i64Const(m, 16));
  return m.if(m.i64.gt_u(end, max), m.unreachable());
}

/** Mark the 4 KiB pages of [addr, addr + len), len > 0: memory.fill of 1s over their mark bytes. */
function markRange(ctx: RewriteContext, addr: () => ExpressionRef, len: () => ExpressionRef): ExpressionRef {
  const m = ctx.module;
  const first = () => m.i32.shr_u(addr(), m.i32.const(PAGE_SHIFT));
  const last = m.i32.shr_u(m.i32.add(addr(), m.i32.sub(len(), m.i32.const(1))), m.i32.const(PAGE_SHIFT));
  return m.memory.fill(m.i32.add(u32(m, ctx.layout.marksOffset), first()), m.i32.const(1), m.i32.add(m.i32.sub(last, first()), m.i32.const(1)));
}

interface Chunked {
  /** Run first in each round, after c = min(n, chunk). */
  readonly before: readonly ExpressionRef[];
  /** The bulk operation on the chunk [dst(), dst() + c). */
  readonly write: ExpressionRef;
  readonly dst: () => ExpressionRef;
  /** Run after the chunk's marks: advance the pointers, shrink n. */
  readonly after: readonly ExpressionRef[];
}

/** While n > 0: c = min(n, chunk); before; write; fence; marks; after; poll if n > 0. */
function chunkLoop(ctx: RewriteContext, label: string, chunked: Chunked): ExpressionRef {
  const m = ctx.module;
  const get = (i: number) => m.local.get(i, i32);
  return m.block(`${label}_done`, [m.loop(`${label}_next`, m.block(null, [
    m.br(`${label}_done`, m.i32.eqz(get(N))),
    m.local.set(C, m.select(m.i32.lt_u(get(N), u32(m, BULK_CHUNK_BYTES)), get(N), u32(m, BULK_CHUNK_BYTES))),
    ...chunked.before,
    chunked.write,
    m.atomic.fence(),
    markRange(ctx, chunked.dst, () => get(C)),
    ...chunked.after,
    m.if(get(N), pollExpression(ctx, `ferry ${label}`)),
    m.br(`${label}_next`),
  ], binaryen.none))], binaryen.none);
}

/** d += c; s += c; n -= c. */
function advance(ctx: RewriteContext): ExpressionRef[] {
  const m = ctx.module;
  const get = (i: number) => m.local.get(i, i32);
  return [m.local.set(D, m.i32.add(get(D), get(C))), m.local.set(S, m.i32.add(get(S), get(C))), m.local.set(N, m.i32.sub(get(N), get(C)))];
}

function addFill(ctx: RewriteContext): string {
  const m = ctx.module;
  const get = (i: number) => m.local.get(i, i32);
  const body = m.block(null, [
    boundsCheck(ctx, get(D), get(N)),
    chunkLoop(ctx, 'fill', {
      before: [], write: m.memory.fill(get(D), get(S), get(C)), dst: () => get(D),
      after: [m.local.set(D, m.i32.add(get(D), get(C))), m.local.set(N, m.i32.sub(get(N), get(C)))],
    }),
  ], binaryen.none);
  return addFerryFunction(ctx, '__ferry_memory_fill', [i32, i32, i32], binaryen.none, [i32], body);
}

function addCopy(ctx: RewriteContext): string {
  const m = ctx.module;
  const get = (i: number) => m.local.get(i, i32);
  const forward = chunkLoop(ctx, 'forward', {
    before: [], write: m.memory.copy(get(D), get(S), get(C)), dst: () => get(D), after: advance(ctx),
  });
  // Backwards: n shrinks first, and the chunk is [d + n, d + n + c).
  const at = (i: number) => m.i32.add(get(i), get(N));
  const backward = chunkLoop(ctx, 'backward', {
    before: [m.local.set(N, m.i32.sub(get(N), get(C)))], write: m.memory.copy(at(D), at(S), get(C)), dst: () => at(D), after: [],
  });
  const body = m.block(null, [
    boundsCheck(ctx, get(D), get(N)),
    boundsCheck(ctx, get(S), get(N)),
    m.if(m.i32.le_u(get(D), get(S)), forward, backward),
  ], binaryen.none);
  return addFerryFunction(ctx, '__ferry_memory_copy', [i32, i32, i32], binaryen.none, [i32], body);
}

function addInit(ctx: RewriteContext, segment: string, segmentBytes: number): string {
  const m = ctx.module;
  const get = (i: number) => m.local.get(i, i32);
  const body = m.block(null, [
    boundsCheck(ctx, get(S), get(N), i64Const(m, segmentBytes)),
    // A zero-length init at s + n traps if the segment was dropped (and s + n > 0), before anything is written.
    m.memory.init(segment, m.i32.const(0), m.i32.add(get(S), get(N)), m.i32.const(0)),
    boundsCheck(ctx, get(D), get(N)),
    chunkLoop(ctx, 'init', {
      before: [], write: m.memory.init(segment, get(D), get(S), get(C)), dst: () => get(D), after: advance(ctx),
    }),
  ], binaryen.none);
  return addFerryFunction(ctx, `__ferry_memory_init_${segment}`, [i32, i32, i32], binaryen.none, [i32], body);
}

/** The helpers, each added to the module when first asked for. */
export function bulkHelpers(ctx: RewriteContext): BulkHelpers {
  let fill: string | undefined;
  let copy: string | undefined;
  const inits = new Map<string, string>();
  return {
    fill: () => (fill ??= addFill(ctx)),
    copy: () => (copy ??= addCopy(ctx)),
    init: (segment, bytes) => {
      let name = inits.get(segment);
      if (name === undefined) {
        name = addInit(ctx, segment, bytes);
        inits.set(segment, name);
      }
      return name;
    },
  };
}
