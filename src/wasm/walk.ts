/**
 * A post-order walk over a Binaryen expression tree that may replace any
 * node: the children of a node are walked (and replaced) first, then the
 * node itself is handed to `leave`, and what it returns takes the node's
 * place in its parent. Binaryen's JavaScript API has no generic child
 * access, so CHILDREN below lists, per expression kind, how to read and
 * set its children (in evaluation order). The walk keeps its own stack:
 * compiled code nests blocks thousands deep, past JavaScript's recursion.
 *
 * Only the kinds a module that passed the refusals (refusals.ts) can hold
 * are listed; any other kind with children is a programmer's mistake and
 * throws. A replacement must have the type of the node it replaces (the
 * parents are not re-finalized).
 */
import { binaryen, type ExpressionRef, type FunctionRef } from './binaryen.js';

interface Children {
  readonly get: (e: ExpressionRef) => ExpressionRef[];
  readonly set: (e: ExpressionRef, slot: number, child: ExpressionRef) => void;
}

type Getter = (e: ExpressionRef) => ExpressionRef;
type Setter = (e: ExpressionRef, child: ExpressionRef) => void;

/** A kind with a fixed list of (possibly absent = 0) children. */
function fixed(...slots: readonly (readonly [Getter, Setter])[]): Children {
  return { get: (e) => slots.map(([get]) => get(e)), set: (e, slot, child) => slots[slot][1](e, child) };
}

/** A kind with `count` operands, then (optionally) fixed children after them. */
function operands(
  count: (e: ExpressionRef) => number, getAt: (e: ExpressionRef, i: number) => ExpressionRef,
  setAt: (e: ExpressionRef, i: number, c: ExpressionRef) => void, ...after: readonly (readonly [Getter, Setter])[]
): Children {
  return {
    get: (e) => {
      const out: ExpressionRef[] = [];
      const n = count(e);
      for (let i = 0; i < n; i++) out.push(getAt(e, i));
      for (const [get] of after) out.push(get(e));
      return out;
    },
    set: (e, slot, child) => {
      const n = count(e);
      if (slot < n) setAt(e, slot, child);
      else after[slot - n][1](e, child);
    },
  };
}

const b = binaryen;
const NONE: Children = { get: () => [], set: () => { throw new Error('a leaf has no children'); } };

const CHILDREN = new Map<number, Children>([
  [b.BlockId, operands(b.Block.getNumChildren, b.Block.getChildAt, b.Block.setChildAt)],
  [b.IfId, fixed([b.If.getCondition, b.If.setCondition], [b.If.getIfTrue, b.If.setIfTrue], [b.If.getIfFalse, b.If.setIfFalse])],
  [b.LoopId, fixed([b.Loop.getBody, b.Loop.setBody])],
  [b.BreakId, fixed([b.Break.getValue, b.Break.setValue], [b.Break.getCondition, b.Break.setCondition])],
  [b.SwitchId, fixed([b.Switch.getValue, b.Switch.setValue], [b.Switch.getCondition, b.Switch.setCondition])],
  [b.CallId, operands(b.Call.getNumOperands, b.Call.getOperandAt, b.Call.setOperandAt)],
  [b.CallIndirectId, operands(b.CallIndirect.getNumOperands, b.CallIndirect.getOperandAt, b.CallIndirect.setOperandAt,
    [b.CallIndirect.getTarget, b.CallIndirect.setTarget])],
  [b.LocalSetId, fixed([b.LocalSet.getValue, b.LocalSet.setValue])],
  [b.GlobalSetId, fixed([b.GlobalSet.getValue, b.GlobalSet.setValue])],
  [b.LoadId, fixed([b.Load.getPtr, b.Load.setPtr])],
  [b.StoreId, fixed([b.Store.getPtr, b.Store.setPtr], [b.Store.getValue, b.Store.setValue])],
  [b.AtomicRMWId, fixed([b.AtomicRMW.getPtr, b.AtomicRMW.setPtr], [b.AtomicRMW.getValue, b.AtomicRMW.setValue])],
  [b.AtomicCmpxchgId, fixed([b.AtomicCmpxchg.getPtr, b.AtomicCmpxchg.setPtr],
    [b.AtomicCmpxchg.getExpected, b.AtomicCmpxchg.setExpected], [b.AtomicCmpxchg.getReplacement, b.AtomicCmpxchg.setReplacement])],
  [b.AtomicWaitId, fixed([b.AtomicWait.getPtr, b.AtomicWait.setPtr], [b.AtomicWait.getExpected, b.AtomicWait.setExpected],
    [b.AtomicWait.getTimeout, b.AtomicWait.setTimeout])],
  [b.AtomicNotifyId, fixed([b.AtomicNotify.getPtr, b.AtomicNotify.setPtr], [b.AtomicNotify.getNotifyCount, b.AtomicNotify.setNotifyCount])],
  [b.SIMDExtractId, fixed([b.SIMDExtract.getVec, b.SIMDExtract.setVec])],
  [b.SIMDReplaceId, fixed([b.SIMDReplace.getVec, b.SIMDReplace.setVec], [b.SIMDReplace.getValue, b.SIMDReplace.setValue])],
  [b.SIMDShuffleId, fixed([b.SIMDShuffle.getLeft, b.SIMDShuffle.setLeft], [b.SIMDShuffle.getRight, b.SIMDShuffle.setRight])],
  [b.SIMDTernaryId, fixed([b.SIMDTernary.getA, b.SIMDTernary.setA], [b.SIMDTernary.getB, b.SIMDTernary.setB], [b.SIMDTernary.getC, b.SIMDTernary.setC])],
  [b.SIMDShiftId, fixed([b.SIMDShift.getVec, b.SIMDShift.setVec], [b.SIMDShift.getShift, b.SIMDShift.setShift])],
  [b.SIMDLoadId, fixed([b.SIMDLoad.getPtr, b.SIMDLoad.setPtr])],
  [b.SIMDLoadStoreLaneId, fixed([b.SIMDLoadStoreLane.getPtr, b.SIMDLoadStoreLane.setPtr], [b.SIMDLoadStoreLane.getVec, b.SIMDLoadStoreLane.setVec])],
  [b.MemoryInitId, fixed([b.MemoryInit.getDest, b.MemoryInit.setDest], [b.MemoryInit.getOffset, b.MemoryInit.setOffset],
    [b.MemoryInit.getSize, b.MemoryInit.setSize])],
  [b.MemoryCopyId, fixed([b.MemoryCopy.getDest, b.MemoryCopy.setDest], [b.MemoryCopy.getSource, b.MemoryCopy.setSource],
    [b.MemoryCopy.getSize, b.MemoryCopy.setSize])],
  [b.MemoryFillId, fixed([b.MemoryFill.getDest, b.MemoryFill.setDest], [b.MemoryFill.getValue, b.MemoryFill.setValue],
    [b.MemoryFill.getSize, b.MemoryFill.setSize])],
  [b.UnaryId, fixed([b.Unary.getValue, b.Unary.setValue])],
  [b.BinaryId, fixed([b.Binary.getLeft, b.Binary.setLeft], [b.Binary.getRight, b.Binary.setRight])],
  [b.SelectId, fixed([b.Select.getIfTrue, b.Select.setIfTrue], [b.Select.getIfFalse, b.Select.setIfFalse],
    [b.Select.getCondition, b.Select.setCondition])],
  [b.DropId, fixed([b.Drop.getValue, b.Drop.setValue])],
  [b.ReturnId, fixed([b.Return.getValue, b.Return.setValue])],
  [b.MemoryGrowId, fixed([b.MemoryGrow.getDelta, b.MemoryGrow.setDelta])],
  [b.TupleMakeId, operands(b.TupleMake.getNumOperands, b.TupleMake.getOperandAt, b.TupleMake.setOperandAt)],
  [b.TupleExtractId, fixed([b.TupleExtract.getTuple, b.TupleExtract.setTuple])],
  [b.RefIsNullId, fixed([b.RefIsNull.getValue, b.RefIsNull.setValue])],
  [b.RefAsId, fixed([b.RefAs.getValue, b.RefAs.setValue])],
  [b.RefEqId, fixed([b.RefEq.getLeft, b.RefEq.setLeft], [b.RefEq.getRight, b.RefEq.setRight])],
  [b.TableGetId, fixed([b.TableGet.getIndex, b.TableGet.setIndex])],
  ...[b.NopId, b.LocalGetId, b.GlobalGetId, b.ConstId, b.MemorySizeId, b.UnreachableId, b.AtomicFenceId,
    b.RefNullId, b.RefFuncId, b.DataDropId, b.TableSizeId].map((id) => [id, NONE] as [number, Children]),
]);

export interface Visitor {
  /** Called before the children of `expr` are walked. */
  readonly enter?: (expr: ExpressionRef, id: number) => void;
  /** Called after its children; returns what takes its place (`expr` itself to keep it). */
  readonly leave: (expr: ExpressionRef, id: number) => ExpressionRef;
}

/** Whether the walk knows the children of expression kind `id`. */
export function isListedKind(id: number): boolean {
  return CHILDREN.has(id);
}

function childrenOf(id: number): Children {
  const children = CHILDREN.get(id);
  if (children === undefined) throw new Error(`walk.ts: expression kind ${id} is not listed (the refusals should have refused it)`);
  return children;
}

interface Frame {
  readonly expr: ExpressionRef;
  readonly id: number;
  readonly kids: ExpressionRef[];
  next: number;
}

/** Walk the tree at `root` (post-order) and return its new root. */
export function rewriteTree(root: ExpressionRef, visitor: Visitor): ExpressionRef {
  const frame = (expr: ExpressionRef): Frame => {
    const id = binaryen.getExpressionId(expr);
    visitor.enter?.(expr, id);
    return { expr, id, kids: childrenOf(id).get(expr), next: 0 };
  };
  const stack: Frame[] = [frame(root)];
  let result = root;
  while (stack.length > 0) {
    const top = stack[stack.length - 1];
    if (top.next < top.kids.length) {
      const child = top.kids[top.next++];
      if (child !== 0) stack.push(frame(child));
      continue;
    }
    stack.pop();
    const replacement = visitor.leave(top.expr, top.id);
    const parent = stack[stack.length - 1];
    if (parent === undefined) result = replacement;
    else if (replacement !== top.expr) childrenOf(parent.id).set(parent.expr, parent.next - 1, replacement);
  }
  return result;
}

/** Walk the body of `func` and put the new root in place. */
export function rewriteFunction(func: FunctionRef, visitor: Visitor): void {
  const body = binaryen.Function.getBody(func);
  if (body === 0) return;
  const replaced = rewriteTree(body, visitor);
  if (replaced !== body) binaryen.Function.setBody(func, replaced);
}

/** Visit every node of `func` (nothing replaced). */
export function visitFunction(func: FunctionRef, visit: (expr: ExpressionRef, id: number) => void): void {
  rewriteFunction(func, { leave: (expr, id) => { visit(expr, id); return expr; } });
}
