/**
 * The link's limits on this machine (see src/bench/loopback-limit.ts):
 * received and discarded, into fresh memory, and into resident memory on
 * 1, 2 and 4 connections at once.
 *
 *   npm run bench:loopback [-- --gib 2]
 */
import { measureLoopback, type LoopbackInto } from '../src/bench/loopback-limit.js';

const i = process.argv.indexOf('--gib');
const total = (i < 0 ? 2 : Number(process.argv[i + 1])) * 1024 ** 3;
const words: Record<LoopbackInto, string> = { discard: 'and discarded', fresh: 'into fresh memory', resident: 'into resident memory' };
for (const [into, streams] of [['discard', 1], ['fresh', 1], ['resident', 1], ['resident', 2], ['resident', 4]] as const) {
  const runs: number[] = [];
  for (let r = 0; r < 3; r++) runs.push(await measureLoopback(into, total, streams));
  runs.sort((a, b) => a - b);
  console.log(`| loopback TCP, 1 MiB writes, two processes, received ${words[into]}${streams > 1 ? `, ${streams} connections` : ''} | ` +
    `${runs[1].toFixed(2)} (${runs[0].toFixed(2)}-${runs[2].toFixed(2)}) GB/s |`);
}
