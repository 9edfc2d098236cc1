/** Worker entry of one channel's thread (several channels); the logic lives in channel-sender.ts. */
import { parentPort, workerData } from 'node:worker_threads';
import { ChannelSender } from './channel-sender.js';
import type { ChannelInit, FromChannel, ToChannel } from './messages.js';
import { lowerThisThread } from './thread-priority.js';

lowerThisThread(); // the control loop first (thread-priority.ts)
const port = parentPort!;
const channel = new ChannelSender(workerData as ChannelInit, {
  post: (m: FromChannel) => port.postMessage(m),
  onMessage: (fn) => port.on('message', (m: ToChannel) => fn(m)),
});
await channel.run();
port.close();
