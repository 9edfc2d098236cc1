/**
 * Worker entry: rewrite the program in workerData (rewrite-in-worker.ts
 * types the messages) and post the answer. Anything Binaryen throws that
 * is not already a refusal of ours becomes one: a module Binaryen cannot
 * instrument is refused, naming Binaryen's reason.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { FerryError, WasmModuleError } from '../errors.js';
import { serializeError } from '../serialized-error.js';
import { binaryenMessage } from './binaryen.js';
import { rewriteProgram } from './rewrite.js';
import type { RewriteAnswer, RewriteRequest } from './rewrite-in-worker.js';

const request = workerData as RewriteRequest;
let answer: RewriteAnswer;
try {
  const result = rewriteProgram(request.bytes, request.options, request.steps);
  answer = { ok: true, wasm: result.wasm, mutableGlobals: result.mutableGlobals };
} catch (err) {
  const refusal = err instanceof FerryError ? err : new WasmModuleError(`Binaryen could not instrument the module: ${binaryenMessage(err)}`, { cause: err });
  answer = { ok: false, error: serializeError(refusal) };
}
parentPort!.postMessage(answer, answer.ok ? [answer.wasm.buffer as ArrayBuffer] : []);
