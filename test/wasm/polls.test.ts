/**
 * Polls: a loop that calls nothing sees the poll word, and so does the
 * entry of every function that can recurse (on a cycle of direct calls,
 * holding a call_indirect, or in a table); a plain function does not poll.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { functionsOnCycles } from '../../src/wasm/call-graph.js';
import { fileLimit } from '../waits.js';
import { instantiate, instrumentText, program, type Run } from './harness.js';

fileLimit(import.meta.url, 60_000);

const PROGRAM = program(`
 (type $v (func))
 (table 2 funcref)
 (elem (i32.const 0) $target)
 (func (export "_start"))
 ;; Spins, calling nothing, until the word at 0 is non-zero (or 50 million rounds, so that a broken poll fails instead of hanging).
 (func (export "spin") (local $n i32)
   (loop $l
     (local.set $n (i32.add (local.get $n) (i32.const 1)))
     (br_if $l (i32.and (i32.eqz (i32.load (i32.const 0))) (i32.lt_u (local.get $n) (i32.const 50000000))))))
 (func (export "count") (param $n i32) (loop $l (local.set $n (i32.sub (local.get $n) (i32.const 1))) (br_if $l (local.get $n))))
 (func $leaf (export "leaf") (result i32) (i32.const 7))
 (func $fact (export "fact") (param $n i32) (result i32)
   (if (result i32) (i32.le_u (local.get $n) (i32.const 1)) (then (i32.const 1))
     (else (i32.mul (local.get $n) (call $fact (i32.sub (local.get $n) (i32.const 1)))))))
 (func $even (export "even") (param $n i32) (result i32)
   (if (result i32) (i32.eqz (local.get $n)) (then (i32.const 1)) (else (call $odd (i32.sub (local.get $n) (i32.const 1))))))
 (func $odd (param $n i32) (result i32)
   (if (result i32) (i32.eqz (local.get $n)) (then (i32.const 0)) (else (call $even (i32.sub (local.get $n) (i32.const 1))))))
 (func $target)
 (func (export "indirect") (call_indirect (type $v) (i32.const 0)))
 (func (export "calls_leaf") (result i32) (i32.add (call $leaf) (call $leaf)))
`);

const result = instrumentText(PROGRAM, undefined, { asyncify: false });

/** Yields seen by `fn` with the poll word set. */
function yieldsWithPollSet(run: Run, fn: () => unknown): number {
  run.yields = 0;
  run.view.setInt32(run.layout.pollOffset, 1, true);
  try {
    fn();
  } finally {
    run.view.setInt32(run.layout.pollOffset, 0, true);
  }
  return run.yields;
}

test('a loop that calls nothing sees the poll word: the pause request reaches it, and only a set word calls ferry.yield', () => {
  const run = instantiate(result, {
    onYield: (r) => {
      r.view.setInt32(0, 1, true); // what the runner would do at a pause; here: let the loop end
    },
  });
  run.view.setInt32(run.layout.pollOffset, 1, true);
  run.exports.spin();
  assert.equal(run.yields, 1);
  assert.equal(run.view.getInt32(0, true), 1, 'the loop ended because the pause reached it');
  run.yields = 0;
  run.view.setInt32(run.layout.pollOffset, 0, true);
  run.exports.count(1000);
  assert.equal(run.yields, 0, 'the word is clear: no yield');
  assert.equal(yieldsWithPollSet(run, () => run.exports.count(1000)), 1000, 'once per iteration while the word is set');
});

test('functions that can recurse poll at their entry (direct cycles, call_indirect, table members); a plain function does not', () => {
  const run = instantiate(result);
  assert.equal(yieldsWithPollSet(run, () => assert.equal(run.exports.fact(5), 120)), 5, 'fact(5): five entries of a self-recursive function');
  assert.equal(yieldsWithPollSet(run, () => assert.equal(run.exports.even(4), 1)), 5, 'even/odd: one entry each, five in all');
  assert.equal(yieldsWithPollSet(run, () => run.exports.indirect()), 2, 'the caller holds call_indirect, the target is in a table');
  assert.equal(yieldsWithPollSet(run, () => assert.equal(run.exports.calls_leaf(), 14)), 0, 'no loop, no recursion: no poll');
});

test('functionsOnCycles finds self-calls and cycles of any length, and nothing else', () => {
  const graph = (edges: Record<string, string[]>) => new Map(Object.entries(edges).map(([k, v]) => [k, new Set(v)]));
  assert.deepEqual([...functionsOnCycles(graph({ main: ['a', 'f'], a: ['b'], b: ['c'], c: ['a', 'leaf'], f: ['f'], leaf: [] }))].sort(),
    ['a', 'b', 'c', 'f']);
  assert.deepEqual([...functionsOnCycles(graph({ main: ['a', 'b'], a: ['leaf'], b: ['leaf', 'import'], leaf: [] }))], []);
  const chain = new Map<string, Set<string>>();
  for (let i = 0; i < 20_000; i++) chain.set(`f${i}`, new Set([`f${i + 1}`]));
  chain.set('f20000', new Set(['f0']));
  assert.equal(functionsOnCycles(chain).size, 20_001, 'a cycle deeper than the JavaScript stack');
});
