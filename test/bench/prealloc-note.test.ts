/** The benchmark's line on the destination's preallocation (bench/prealloc-note.ts): its time apart, over runs. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { preallocNote } from '../../src/bench/prealloc-note.js';
import type { RunResult } from '../../src/bench/scenario.js';
import type { PreallocFigures } from '../../src/migration/preallocation.js';
import { fileLimit } from '../waits.js';

fileLimit(import.meta.url, 10_000);

const figures = (ms: number, touchedPages: number): PreallocFigures => ({ status: 'completed', threads: 2, mapPages: 524_288, touchedPages, capPages: 1e7, ms });
const run = (prealloc: PreallocFigures | null) => ({ prealloc }) as unknown as RunResult;

test('the note gives the median time and its range apart from the total, and what each run touched; none without preallocation', () => {
  assert.equal(preallocNote([run(null), { } as RunResult]), null);
  assert.equal(preallocNote([run(figures(3000, 524_288)), run(figures(1000, 262_144)), run(figures(2000, 524_288))]),
    'destination preallocation completed in 2000 ms (1000-3000) on 2 threads, apart from the migration\'s total; touched 2048 of 2048 MiB; 1024 of 2048 MiB; 2048 of 2048 MiB per run');
});
