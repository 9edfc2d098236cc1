/**
 * Test helper thread: touches pages [0, pages) of a memory with the real
 * `touchPage`, over and over, until the main thread sets `stop[0]`,
 * publishing its rounds in `stop[1]`; posts how many touches it made. The
 * main thread writes the same words meanwhile.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { touchPage } from '../../src/memory/page-toucher.js';

interface Init {
  memory: WebAssembly.Memory;
  pages: number;
  stop: SharedArrayBuffer;
}
const { memory, pages, stop } = workerData as Init;
const words = new Int32Array(memory.buffer, 0, pages * 1024);
const flag = new Int32Array(stop);
let touches = 0;
while (Atomics.load(flag, 0) === 0) {
  for (let p = 0; p < pages; p++) touchPage(words, p);
  touches += pages;
  Atomics.add(flag, 1, 1);
}
parentPort!.postMessage(touches);
