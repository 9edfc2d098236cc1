/**
 * Worker entry for bench/wasm-runs.ts: runs one WASI program, uninstrumented,
 * under node:wasi (the reference runtime), its output to a file descriptor,
 * and posts its exit code and the milliseconds wasi.start took (compiling
 * is outside them, as it is outside a ferry guest's run time).
 *
 * --no-turbo-fast-api-calls: Node 20's node:wasi crashes on programs that
 * grow without it (test/guests/wasi-worker.ts says why). The flag is set
 * before anything is compiled; V8 flags are per process, so the benchmark's
 * ferry variants run with it too (they make no fast API calls).
 */
import { readFileSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { WASI } from 'node:wasi';
import { parentPort, workerData } from 'node:worker_threads';

setFlagsFromString('--no-turbo-fast-api-calls');
const job = workerData as { name: string; file: string; args: string[]; stdoutFd: number };
process.removeAllListeners('warning');
const wasi = new WASI({ version: 'preview1', args: [job.name, ...job.args], env: {}, stdout: job.stdoutFd, stderr: job.stdoutFd, returnOnExit: true });
const module = new WebAssembly.Module(readFileSync(job.file));
const instance = new WebAssembly.Instance(module, wasi.getImportObject() as ConstructorParameters<typeof WebAssembly.Instance>[1]);
const t0 = performance.now();
const code = wasi.start(instance);
parentPort!.postMessage({ code, ms: performance.now() - t0 });
