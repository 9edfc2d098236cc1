/**
 * The link's limits on this machine (see src/bench/loopback-limit.ts):
 *
 *   npm run bench:loopback [-- --gib 2]
 */
import { measureLoopback } from '../src/bench/loopback-limit.js';

const i = process.argv.indexOf('--gib');
const total = (i < 0 ? 2 : Number(process.argv[i + 1])) * 1024 ** 3;
for (const fresh of [false, true]) {
  const runs = [await measureLoopback(fresh, total), await measureLoopback(fresh, total), await measureLoopback(fresh, total)].sort((a, b) => a - b);
  console.log(`| loopback TCP, 1 MiB writes, two processes, received ${fresh ? 'into fresh memory' : 'and discarded'} | ` +
    `${runs[1].toFixed(2)} (${runs[0].toFixed(2)}-${runs[2].toFixed(2)}) GB/s |`);
}
