/**
 * Post-copy recovery's bitmap, both ends (postcopy-recovery.ts): the
 * destination's missing pages as RECVBITMAP ranges, and the source's checks
 * of what arrives (order, bounds, RESUMEACK's count), each refusal naming
 * what was wrong.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ResumeBitmap, bitmapRanges } from '../../src/migration/postcopy-recovery.js';

/** nextMissing over a set of missing pages (-1 when none is left), as the presence map answers. */
function firstMissing(missing: readonly number[]) {
  const sorted = [...missing].sort((a, b) => a - b);
  return (from: number) => sorted.find((p) => p >= from) ?? -1;
}

test('the destination\'s missing pages become ordered runs, split at the record cap, with their count', () => {
  const { records, missing } = bitmapRanges(firstMissing([0, 1, 2, 5, 9, 10, 15]), 16, 2);
  assert.deepEqual(records.map((r) => [...r]), [[0, 3, 5, 1], [9, 2, 15, 1]]);
  assert.equal(missing, 7);
  assert.deepEqual(bitmapRanges(firstMissing([]), 16, 2), { records: [], missing: 0 });
  // What the source rebuilds from them is exactly the set it was made from.
  const b = new ResumeBitmap(16);
  for (const r of records) b.add(r);
  assert.deepEqual(b.close(missing), [0, 3, 5, 1, 9, 2, 15, 1]);
});

test('the source refuses a bitmap out of order, past the guest, with an empty range, or whose count RESUMEACK contradicts', () => {
  const b = new ResumeBitmap(100);
  b.add([10, 5]);
  assert.throws(() => b.add([12, 1]), { code: 'ERR_FERRY_WIRE', message: 'RECVBITMAP: range 12+1 is out of order' });
  assert.throws(() => new ResumeBitmap(100).add([98, 3]), { message: 'RECVBITMAP: range 98+3 is past the guest\'s 100 pages' });
  assert.throws(() => new ResumeBitmap(100).add([4, 0]), { message: 'RECVBITMAP: range 4+0 is empty' });
  const c = new ResumeBitmap(100);
  c.add([0, 2, 50, 3]);
  assert.throws(() => c.close(4), { message: 'RESUMEACK: 4 pages missing, the bitmap named 5' });
  assert.deepEqual(new ResumeBitmap(100).close(0), [], 'nothing missing: an empty bitmap');
});
