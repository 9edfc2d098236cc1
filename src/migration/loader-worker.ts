/** Worker entry of the loader thread (destination side); the logic lives in loader-session.ts. */
import { parentPort, workerData } from 'node:worker_threads';
import { LoaderSession } from './loader-session.js';
import type { FromLoader, LoaderInit, ToLoader } from './messages.js';

const port = parentPort!;
const session = new LoaderSession(workerData as LoaderInit, {
  post: (m: FromLoader) => port.postMessage(m),
  onMessage: (fn) => port.on('message', (m: ToLoader) => fn(m)),
});
await session.run();
port.close();
