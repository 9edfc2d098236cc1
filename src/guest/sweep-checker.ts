/**
 * The sweep checker: on a paused guest, the per-page counters of a `sweep`
 * range form one run of value v+1 followed by one run of value v, with the
 * step exactly where the vCPU state says. Any other page is a lost (or
 * misplaced) write; the checker reports the first few of them.
 */
import type { GuestMemory } from '../memory/guest-memory.js';
import type { SweepState } from './workloads/sweep.js';
import { LAST_WORD } from './workloads/sweep.js';

export interface SweepCheck {
  readonly ok: boolean;
  readonly pagesChecked: number;
  readonly badPages: number;
  /** Up to 8 descriptions of bad pages. */
  readonly errors: readonly string[];
}

export function checkSweep(mem: GuestMemory, state: SweepState): SweepCheck {
  const errors: string[] = [];
  let bad = 0;
  const v = state.value >>> 0;
  const next = (v + 1) >>> 0;
  for (let i = 0; i < state.pages; i++) {
    const page = state.first + i;
    const expected = i < state.position ? next : v;
    const head = mem.readU32(page, 0);
    const tail = mem.readU32(page, LAST_WORD);
    if (head !== expected || tail !== expected) {
      bad++;
      if (errors.length < 8) {
        errors.push(`page ${page}: counter ${head}/${tail}, expected ${expected} ` +
          `(sweep value ${v}, step at page ${state.first + state.position})`);
      }
    }
  }
  return { ok: bad === 0, pagesChecked: state.pages, badPages: bad, errors };
}
