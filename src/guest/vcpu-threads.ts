/**
 * vCPU threads started ahead of need. A worker start costs ~30 ms of CPU
 * here; a destination that starts its vCPU threads when the stream's header
 * arrives makes the switchover wait for them (and they compete with the
 * migration for the CPU). `prepareVcpuThreads` starts spares that wait for
 * their VcpuInit as their first message; `takeVcpuThread` hands one out, or
 * starts a new thread when none is left.
 */
import { Worker } from 'node:worker_threads';
import type { VcpuInit } from './vcpu-messages.js';

const WORKER_URL = new URL('./vcpu-worker.js', import.meta.url);
const spares: Worker[] = [];

/** Have at least `count` spare vCPU threads waiting; they do not keep the process alive. */
export function prepareVcpuThreads(count: number): void {
  while (spares.length < count) {
    const w = new Worker(WORKER_URL, { workerData: null });
    w.unref();
    const drop = () => {
      const i = spares.indexOf(w);
      if (i >= 0) spares.splice(i, 1);
    };
    w.once('error', drop);
    w.once('exit', drop);
    spares.push(w);
  }
}

/** A vCPU thread running `init`: a spare if one is waiting, else a new one. */
export function takeVcpuThread(init: VcpuInit): Worker {
  const w = spares.shift();
  if (w === undefined) return new Worker(WORKER_URL, { workerData: init });
  w.removeAllListeners('error');
  w.removeAllListeners('exit');
  w.postMessage(init);
  return w;
}

/** Spare threads waiting now. */
export function spareVcpuThreads(): number {
  return spares.length;
}
