/**
 * Worker entry: runs one WASI program under node:wasi (the reference
 * runtime) with its standard streams on the given file descriptors, and
 * posts its exit code and the size its memory grew to. See wasi-run.ts.
 *
 * Node 20's node:wasi calls its functions through V8's fast API; a garbage
 * collection that starts inside a later memory.grow (external memory
 * pressure, once the program has grown to some tens of MiB) then crashes
 * the process (SIGSEGV in the marker, or an abort in ~WASI). Reproduced
 * here with a 10-line module (grow 16 pages, fd_write, 200 times); gone
 * with --no-turbo-fast-api-calls, which this worker sets before it compiles
 * anything (V8 flags are per process: the test process only runs programs).
 */
import { readFileSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { WASI } from 'node:wasi';
import { parentPort, workerData } from 'node:worker_threads';
import type { WasiJob, WasiJobResult } from './wasi-run.js';

setFlagsFromString('--no-turbo-fast-api-calls');
const job = workerData as WasiJob;
// node:wasi warns once per thread that it is experimental: say nothing of that, pass on any other warning
process.removeAllListeners('warning');
process.on('warning', (w) => {
  if (!(w.name === 'ExperimentalWarning' && w.message.includes('WASI'))) process.stderr.write(`${w.stack ?? w.message}\n`);
});
const wasi = new WASI({
  version: 'preview1', args: [job.name, ...job.args], env: {}, preopens: job.preopens,
  stdout: job.stdoutFd, stderr: job.stderrFd, returnOnExit: true,
});
const instance = new WebAssembly.Instance(new WebAssembly.Module(readFileSync(job.file)), wasi.getImportObject() as ConstructorParameters<typeof WebAssembly.Instance>[1]);
const code = wasi.start(instance);
const memory = instance.exports.memory as WebAssembly.Memory;
parentPort!.postMessage({ code, memoryBytes: memory.buffer.byteLength } satisfies WasiJobResult);
