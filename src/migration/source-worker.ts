/**
 * Worker entry of the migration thread (source side); the logic lives in
 * source-session.ts. The thread may be started ahead of need (a worker
 * start costs ~31 ms here): it then waits for its SourceInit as its first
 * message.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { FromSource, SourceInit, ToSource } from './messages.js';
import { SourceSession } from './source-session.js';

const port = parentPort!;
const init = (workerData as SourceInit | null) ??
  await new Promise<SourceInit>((resolve) => port.once('message', (m: { type: 'init'; init: SourceInit }) => resolve(m.init)));
port.ref();
const session = new SourceSession(init, {
  post: (m: FromSource) => port.postMessage(m),
  onMessage: (fn) => port.on('message', (m: ToSource) => fn(m)),
});
await session.run();
port.close();
