/**
 * Which functions can recurse: those in a cycle of the direct call graph
 * (a strongly connected component of more than one function, or one that
 * calls itself). Tarjan's algorithm, with an explicit stack (compiled
 * programs have call chains deeper than JavaScript's recursion allows).
 */

/** The functions of `calls` (caller -> callees) that lie on a cycle. */
export function functionsOnCycles(calls: ReadonlyMap<string, ReadonlySet<string>>): Set<string> {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const result = new Set<string>();
  let next = 0;
  const callees = (f: string): string[] => [...(calls.get(f) ?? [])];

  for (const root of calls.keys()) {
    if (index.has(root)) continue;
    const work: { node: string; edges: string[]; i: number }[] = [];
    const open = (node: string) => {
      index.set(node, next);
      low.set(node, next++);
      stack.push(node);
      onStack.add(node);
      work.push({ node, edges: callees(node), i: 0 });
    };
    open(root);
    while (work.length > 0) {
      const top = work[work.length - 1];
      if (top.i < top.edges.length) {
        const to = top.edges[top.i++];
        if (!index.has(to)) open(to);
        else if (onStack.has(to)) low.set(top.node, Math.min(low.get(top.node)!, index.get(to)!));
        continue;
      }
      work.pop();
      const parent = work[work.length - 1];
      if (parent !== undefined) low.set(parent.node, Math.min(low.get(parent.node)!, low.get(top.node)!));
      if (low.get(top.node) !== index.get(top.node)) continue;
      const component: string[] = [];
      let member: string;
      do {
        member = stack.pop()!;
        onStack.delete(member);
        component.push(member);
      } while (member !== top.node);
      if (component.length > 1 || calls.get(top.node)?.has(top.node)) for (const f of component) result.add(f);
    }
  }
  return result;
}
