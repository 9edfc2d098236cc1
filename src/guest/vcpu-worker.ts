/**
 * Worker entry of a vCPU thread: the logic lives in vcpu-loop.ts. A thread
 * started ahead of need (vcpu-threads.ts) waits for its VcpuInit as its
 * first message.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { VcpuControl } from './vcpu-control.js';
import { runVcpu } from './vcpu-loop.js';
import type { VcpuInit, VcpuMessage } from './vcpu-messages.js';
import { serializeError } from '../serialized-error.js';

const init = (workerData as VcpuInit | null) ?? await new Promise<VcpuInit>((resolve) => parentPort!.once('message', resolve));
try {
  runVcpu(init);
} catch (err) {
  new VcpuControl(init.control).setFailed();
  const message: VcpuMessage = { type: 'failed', index: init.index, error: serializeError(err) };
  parentPort?.postMessage(message);
}
