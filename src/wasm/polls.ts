/**
 * Step 5: polls, so that a pause request reaches a running program soon,
 * even in a loop that calls nothing.
 *
 * A poll is `if (i32.atomic.load (layout.pollOffset)) call $ferry.yield`:
 * a flag load on the fast path (measured here: 1.3x on a tight loop,
 * against 14.5x for an import call per iteration), the import only when a
 * request waits. `ferry.yield` may unwind the stack (Asyncify, asyncify.ts).
 *
 * Where: at the top of every loop body, and at the entry of every function
 * that can recurse: one on a cycle of the direct call graph, one that
 * contains `call_indirect`, and one in a table (a possible target of an
 * indirect call). ferry's own functions poll where they must themselves
 * (bulk-memory.ts, between chunks).
 *
 * Why this bounds the CPU time between two polls: code between polls runs
 * without taking a loop back-edge (every loop body starts with a poll) and
 * without entering a function twice on the same call path (a path that
 * re-enters a function goes round a cycle of direct calls, whose members
 * poll at entry, or through an indirect call, whose target is in a table
 * and polls at entry). So between polls the program executes each
 * instruction of each function at most once per call site on an acyclic
 * chain of direct calls: a bound set by the code's size, not by its data.
 * The bulk operations that could take long on one instruction are split
 * into chunks of at most 1 MiB with a poll between them (bulk-memory.ts);
 * a host call (WASI) is bounded by the WASI layer (a blocking poll_oneoff
 * waits on the pause word itself). The bound is not small in theory (a
 * chain of functions each calling the next twice without a loop doubles
 * at each level), but compiled code puts its repetition in loops.
 */
import { binaryen, type ExpressionRef } from './binaryen.js';
import { functionsOnCycles } from './call-graph.js';
import { programFunctions, type RewriteContext } from './rewrite-context.js';
import { rewriteFunction } from './walk.js';

/**
 * `if (i32.atomic.load pollOffset) call ferry.yield`; in a benchmark's
 * probed module preceded by `call ferry.probe(site)` (the vCPU times the
 * stretches between polls: poll-probe.ts). `where` names the function the
 * poll is in.
 */
export function pollExpression(ctx: RewriteContext, where: string): ExpressionRef {
  const m = ctx.module;
  const poll = m.if(m.i32.atomic.load(ctx.layout.pollOffset, m.i32.const(0)), m.call(ctx.yieldName, [], binaryen.none));
  if (ctx.probe === undefined) return poll;
  const site = ctx.probe.sites.push(where) - 1;
  return m.block(null, [m.call(ctx.probe.name, [m.i32.const(site)], binaryen.none), poll], binaryen.none);
}

/** `[poll, expr]` as a block of expr's type. */
function polledFirst(ctx: RewriteContext, expr: ExpressionRef, where: string): ExpressionRef {
  return ctx.module.block(null, [pollExpression(ctx, where), expr], binaryen.getExpressionType(expr));
}

/** The names of functions the module's element segments put in tables. */
function tableMembers(ctx: RewriteContext): Set<string> {
  const members = new Set<string>();
  for (let i = 0; i < ctx.module.getNumElementSegments(); i++) {
    for (const name of binaryen.getElementSegmentInfo(ctx.module.getElementSegmentByIndex(i)).data) members.add(name);
  }
  return members;
}

/** Add the loop polls to every program function; return the direct calls and who calls indirectly. */
function pollLoops(ctx: RewriteContext): { calls: Map<string, Set<string>>; indirect: Set<string> } {
  const calls = new Map<string, Set<string>>();
  const indirect = new Set<string>();
  for (const f of programFunctions(ctx)) {
    const callees = new Set<string>();
    calls.set(f.name, callees);
    rewriteFunction(f.ref, {
      leave: (expr, id) => {
        if (id === binaryen.CallId) callees.add(binaryen.Call.getTarget(expr));
        else if (id === binaryen.CallIndirectId) indirect.add(f.name);
        else if (id === binaryen.LoopId) binaryen.Loop.setBody(expr, polledFirst(ctx, binaryen.Loop.getBody(expr), f.name));
        return expr;
      },
    });
  }
  return { calls, indirect };
}

/** Step 5: a poll at the top of every loop body and at the entry of every function that can recurse. */
export function addPolls(ctx: RewriteContext): { readonly entryPolled: ReadonlySet<string> } {
  const { calls, indirect } = pollLoops(ctx);
  const inTable = tableMembers(ctx);
  const onCycles = functionsOnCycles(calls);
  const entryPolled = new Set<string>();
  for (const f of programFunctions(ctx)) {
    if (!onCycles.has(f.name) && !indirect.has(f.name) && !inTable.has(f.name)) continue;
    const body = binaryen.Function.getBody(f.ref);
    binaryen.Function.setBody(f.ref, polledFirst(ctx, body, f.name));
    entryPolled.add(f.name);
  }
  return { entryPolled };
}
