/** Worker entry of a preallocation thread (destination side); the logic lives in memory/page-toucher.ts. */
import { parentPort } from 'node:worker_threads';
import { TouchPlan, type TouchPlanShared } from '../memory/page-toucher.js';
import type { FromToucher } from './preallocation.js';

const port = parentPort!;
port.once('message', (shared: TouchPlanShared) => {
  const touched = new TouchPlan(shared).run();
  port.postMessage({ type: 'done', touched } satisfies FromToucher);
  port.close();
});
