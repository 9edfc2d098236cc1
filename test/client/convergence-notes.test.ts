import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConvergenceNotes } from '../../src/client/convergence-notes.js';
import type { ConvergenceState } from '../../src/migration/migration-policy.js';
import type { PassRecord } from '../../src/migration/stats.js';
import { fileLimit } from '../waits.js';

fileLimit(import.meta.url, 30_000);

const record = (pass: number, state: ConvergenceState | null): PassRecord => ({
  pass, normalPages: 0, zeroPages: 0, bytes: 0, durationMs: 1, dirtyFound: 0, remainingPages: 0, inflightBytes: 0, dirtyRatePagesPerSec: 0,
  bandwidthBytesPerSec: 0, expectedDowntimeMs: 0, guestPagesWritten: 0, decision: 'iterate',
  convergence: state === null ? null : { state, words: `${state} after pass ${pass}` },
});

test('convergence notes: a line when not converging is first seen and when it changes, never one per pass', () => {
  const notes = new ConvergenceNotes();
  const seq: [ConvergenceState | null, string | null][] = [
    ['too-early', null], ['too-early', null],
    ['converging', null], // converging from the start: nothing to say
    ['not-converging', '  not-converging after pass 4'], ['not-converging', null], ['not-converging', null],
    ['converging', '  converging after pass 7'], ['converging', null],
    ['not-converging', '  not-converging after pass 9'],
    [null, null], // the switchover pass: the policy is not asked
  ];
  for (const [i, [state, line]] of seq.entries()) assert.equal(notes.note(record(i + 1, state)), line, `pass ${i + 1}`);
  const fresh = new ConvergenceNotes();
  assert.equal(fresh.note(record(3, 'not-converging')), '  not-converging after pass 3', 'not converging from the start is said at once');
});
