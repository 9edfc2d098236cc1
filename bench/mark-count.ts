/**
 * Does counting newly dirty pages slow the mark path? (dirty-limit, issue
 * 14.) A vCPU's store path stores a page's words, then marks it
 * (GuestMemory.storeWords); since dirty-limit the mark also tells whether
 * the bit was new (Atomics.or's old word) and the view adds it to a count.
 * This times, alternately in the same run, the mark alone as it was (the
 * bare Atomics.or) and as it is now (markPage with the count), and the
 * whole store path (GuestMemory.storeWords, 16 words then the mark), over
 * pages spread as a sweep's are, with a harvest every round so that new
 * bits keep appearing as they do under a migration.
 *
 *   npx tsc -p . && node dist/bench/mark-count.js [rounds]
 *
 * Prints millions of marks per second, median over rounds with (min-max).
 */
import { markPage } from '../src/memory/dirty-log.js';
import { GuestMemory } from '../src/memory/guest-memory.js';
import { RamBlock } from '../src/memory/ram-block.js';
import { fmt, summarize } from '../src/bench/stats.js';

const PAGES = 16_384; // 64 MiB
const MARKS = 4_000_000;
const rounds = Number(process.argv[2] ?? 7);

const block = RamBlock.create('ram0', PAGES * 4096);
const mem = new GuestMemory([block]);
const producer = block.log.producer;
const words = new Uint32Array(16).fill(7);
let sink = 0;

const variants: Record<string, () => void> = {
  'mark, as before (Atomics.or, result dropped)': () => {
    for (let i = 0; i < MARKS; i++) {
      const page = (i * 7) % PAGES;
      Atomics.or(producer, page >>> 5, 1 << (page & 31));
    }
  },
  'mark, counting (markPage)': () => {
    let n = 0;
    for (let i = 0; i < MARKS; i++) n += markPage(producer, (i * 7) % PAGES);
    sink += n;
  },
  'store path (GuestMemory.storeWords, counting)': () => {
    for (let i = 0; i < MARKS; i++) mem.storeWords((i * 7) % PAGES, 0, 64, words);
    sink += mem.takeNewlyDirtied();
  },
};

const rates = new Map<string, number[]>(Object.keys(variants).map((k) => [k, []]));
for (let r = 0; r < rounds; r++) {
  for (const [name, run] of Object.entries(variants)) {
    block.log.sync(); // a harvest: the next marks find their bits clean again
    const t = performance.now();
    run();
    rates.get(name)!.push(MARKS / (performance.now() - t) / 1000);
  }
}
for (const [name, r] of rates) console.log(`${name}: ${fmt(summarize(r))} M marks/s`);
if (sink < 0) console.log(sink);
