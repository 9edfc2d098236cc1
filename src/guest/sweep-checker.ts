/**
 * The sweep checker: on a paused guest, the per-page counters of a `sweep`
 * range form one run of value v+1 followed by one run of value v, with the
 * step exactly where the vCPU state says. Any other page is a lost (or
 * misplaced) write; the checker reports the first few of them.
 *
 * It reads only pages that were ever written (the dirty log's ever-written
 * map, after a sync): a page never written holds zeros, so its counter is
 * known without reading it, and reading it would cost a page fault and, for
 * a large guest, the time and memory of touching all of RAM (STYLE.md habit
 * 17). A never-written page is right where the counter expected is 0 (the
 * first sweep has not reached it), and a lost write where it is not.
 */
import { nextClearBit, nextSetBit } from '../memory/bits.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import type { SweepState } from './workloads/sweep.js';
import { LAST_WORD } from './workloads/sweep.js';

export interface SweepCheck {
  readonly ok: boolean;
  /** Pages of the sweep range checked (all of it). */
  readonly pagesChecked: number;
  /** Of those, pages read (ever written); the rest were known to be zero. */
  readonly pagesRead: number;
  readonly badPages: number;
  /** Up to 8 descriptions of bad pages. */
  readonly errors: readonly string[];
}

const MAX_ERRORS = 8;

/** What a check found so far. */
interface Tally {
  read: number;
  bad: number;
  readonly errors: string[];
  readonly describe: (page: number, head: number, tail: number, expected: number, note?: string) => string;
}

export function checkSweep(mem: GuestMemory, state: SweepState): SweepCheck {
  const v = state.value >>> 0;
  const next = (v + 1) >>> 0;
  const step = state.first + state.position;
  const tally: Tally = {
    read: 0, bad: 0, errors: [],
    describe: (page, head, tail, expected, note = '') => `page ${page}: counter ${head}/${tail}${note}, expected ${expected} ` +
      `(sweep value ${v}, step at page ${step})`,
  };
  // Pages before the step hold v+1, the rest v.
  checkRun(mem, state.first, step, next, tally);
  checkRun(mem, step, state.first + state.pages, v, tally);
  return { ok: tally.bad === 0, pagesChecked: state.pages, pagesRead: tally.read, badPages: tally.bad, errors: tally.errors };
}

/** Global pages [from, to) must all hold `expected`: read the ever-written ones, count the others. */
function checkRun(mem: GuestMemory, from: number, to: number, expected: number, tally: Tally): void {
  let page = from;
  while (page < to) {
    const b = mem.blockOf(page);
    const block = mem.blocks[b];
    block.log.sync();
    const base = page - mem.localPage(b, page);
    const end = Math.min(to, base + block.pages) - base;
    const start = page - base;
    const written = block.log.everWrittenWords;
    let visited = 0;
    for (let p = nextSetBit(written, start, end); p < end; p = nextSetBit(written, p + 1, end)) {
      visited++;
      const head = mem.readU32(base + p, 0);
      const tail = mem.readU32(base + p, LAST_WORD);
      if (head !== expected || tail !== expected) fail(tally, tally.describe(base + p, head, tail, expected));
    }
    tally.read += visited;
    const unwritten = end - start - visited;
    if (expected !== 0 && unwritten > 0) {
      // Zero where a counter was due: lost writes. Name the first few.
      for (let p = nextClearBit(written, start, end); p < end && tally.errors.length < MAX_ERRORS; p = nextClearBit(written, p + 1, end)) {
        tally.errors.push(tally.describe(base + p, 0, 0, expected, ' (never written)'));
      }
      tally.bad += unwritten;
    }
    page = base + end;
  }
}

function fail(tally: Tally, description: string): void {
  tally.bad++;
  if (tally.errors.length < MAX_ERRORS) tally.errors.push(description);
}
