/** Benchmark helper thread: marks `count` pages (stride through the log) and reports its rate. */
import { parentPort, workerData } from 'node:worker_threads';
import { markPage } from '../src/memory/dirty-log.js';

const { producer, pages, count, offset } = workerData as { producer: SharedArrayBuffer; pages: number; count: number; offset: number };
const words = new Int32Array(producer);
const t0 = performance.now();
let page = offset;
for (let i = 0; i < count; i++) {
  markPage(words, page);
  page += 97;
  if (page >= pages) page -= pages;
}
parentPort!.postMessage({ seconds: (performance.now() - t0) / 1000 });
