/** Worker entry of one channel's loader thread (destination, several channels); the logic lives in channel-loader.ts. */
import { parentPort, threadId, workerData } from 'node:worker_threads';
import { ChannelLoader } from './channel-loader.js';
import type { ChannelLoaderInit, FromChannelLoader, ToChannelLoader } from './messages.js';
import { lowerThisThread } from './thread-priority.js';

lowerThisThread(); // the control loop first (thread-priority.ts)
const port = parentPort!;
const loader = new ChannelLoader(workerData as ChannelLoaderInit, (m: FromChannelLoader) => port.postMessage(m), threadId);
port.on('message', (m: ToChannelLoader) => {
  if (m.type === 'data') loader.feed(m.chunk);
  else if (m.type === 'end') loader.end();
  else loader.finish();
});
