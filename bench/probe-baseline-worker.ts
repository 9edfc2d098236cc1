/**
 * The poll probe's same-run baseline (bench/wasm.ts, section stretches):
 * no program at all, a JavaScript loop on a thread of its own calling the
 * probe as often as a probed program's tight loop does. Every stretch it
 * records is a few nanoseconds of work, so its longest stretches are what
 * the machine and the runtime add (a scheduler or hypervisor taking the
 * CPU, interrupts, the probe's own garbage collections), not a program.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { PollProbe } from '../src/guest/poll-probe.js';

const { buffer, hits } = workerData as { buffer: SharedArrayBuffer; hits: number };
const probe = new PollProbe(buffer);
probe.runStarts();
for (let i = 0; i < hits; i++) probe.hit(i & 1);
probe.runEnds();
parentPort?.postMessage('done');
