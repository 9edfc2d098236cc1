/** Worker entry of the migration thread (source side); the logic lives in source-session.ts. */
import { parentPort, workerData } from 'node:worker_threads';
import type { FromSource, SourceInit, ToSource } from './messages.js';
import { SourceSession } from './source-session.js';

const port = parentPort!;
const session = new SourceSession(workerData as SourceInit, {
  post: (m: FromSource) => port.postMessage(m),
  onMessage: (fn) => port.on('message', (m: ToSource) => fn(m)),
});
await session.run();
port.close();
