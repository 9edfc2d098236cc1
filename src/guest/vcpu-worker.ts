/**
 * Worker entry of a vCPU thread: the logic lives in vcpu-loop.ts (a
 * workload) and wasm-vcpu.ts (a WebAssembly program). A thread started
 * ahead of need (vcpu-threads.ts) waits for its VcpuInit as its first
 * message.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { VcpuControl } from './vcpu-control.js';
import { runVcpu } from './vcpu-loop.js';
import type { VcpuInit, VcpuMessage } from './vcpu-messages.js';
import { WasmVcpu } from './wasm-vcpu.js';
import { serializeError } from '../serialized-error.js';

const init = (workerData as VcpuInit | null) ?? await new Promise<VcpuInit>((resolve) => parentPort!.once('message', resolve));
const post = (m: VcpuMessage) => parentPort?.postMessage(m);
try {
  if (init.wasm !== undefined) new WasmVcpu(init.wasm, init.control, (code) => post({ type: 'exited', index: init.index, code })).run();
  else runVcpu(init);
} catch (err) {
  new VcpuControl(init.control).setFailed();
  post({ type: 'failed', index: init.index, error: serializeError(err) });
}
