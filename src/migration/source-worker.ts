/**
 * Worker entry of the migration thread (source side); the logic lives in
 * source-session.ts. The thread may be started ahead of need (a worker
 * start costs ~31 ms here): it then warms up and waits for its SourceInit
 * as its first message.
 */
import net from 'node:net';
import { parentPort, workerData } from 'node:worker_threads';
import { RamBlock } from '../memory/ram-block.js';
import { pageSummer } from '../wire/page-checksum.js';
import type { FromSource, SourceInit, ToSource } from './messages.js';
import { SourceSession } from './source-session.js';

/**
 * What a thread started ahead of need does before the migration rather
 * than during it: compile the WebAssembly kernels (zero scan, page sum) and
 * make one loopback connection to itself (the first connect in a fresh
 * thread costs ~4 ms of lazy initialisation here; the 20th costs 0.5 ms).
 */
async function warmUp(): Promise<void> {
  const block = RamBlock.create('warm-up', 64 * 1024);
  block.zero.zeroPages(0, 16);
  pageSummer(block.memory)(0, 4096);
  const server = net.createServer((s) => s.end('x'));
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject); // no loopback here: nothing to warm up
      server.listen(0, '127.0.0.1', resolve);
    });
    const socket = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
    socket.setNoDelay(true);
    await new Promise<void>((resolve) => {
      socket.on('data', () => {});
      socket.once('close', () => resolve());
      socket.once('error', () => resolve());
    });
  } finally {
    server.close();
  }
}

const port = parentPort!;
let init = workerData as SourceInit | null;
if (init === null) {
  const first = new Promise<SourceInit>((resolve) => port.once('message', (m: { type: 'init'; init: SourceInit }) => resolve(m.init)));
  // A warm-up that fails or hangs must never delay the migration: whichever comes first.
  init = await Promise.race([warmUp().catch(() => {}).then(() => first), first]);
}
port.ref();
const session = new SourceSession(init, {
  post: (m: FromSource) => port.postMessage(m),
  onMessage: (fn) => port.on('message', (m: ToSource) => fn(m)),
});
await session.run();
port.close();
