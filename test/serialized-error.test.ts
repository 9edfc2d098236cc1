import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ERROR_CLASSES, FerryError, MigrationError, RefusedError, TransportError, WireError, isCancelled, ferryCodeOf, CancelledError, MigrationTimeoutError } from '../src/errors.js';
import { MAX_CAUSE_DEPTH, UNCODED_ERROR, rebuildError, serializeError } from '../src/serialized-error.js';
import { fileLimit } from './waits.js';

fileLimit(import.meta.url, 60_000);

/** What a postMessage does to the plain form: a structured clone. */
const acrossThreads = (err: unknown): FerryError => rebuildError(structuredClone(serializeError(err)));

test('every error class crosses a thread boundary as itself, with its code, message, stack, afterGo and cause chain', () => {
  assert.ok(ERROR_CLASSES.size >= 9, `the registry lists the classes (${ERROR_CLASSES.size})`);
  for (const [code, C] of ERROR_CLASSES) {
    const root = new TransportError('the root', { cause: Object.assign(new Error('ECONNRESET at the bottom'), { code: 'ECONNRESET' }) });
    const middle = new WireError('the middle', { cause: root });
    const original = new C(`a ${C.name}`, { cause: middle, afterGo: true, refusal: 'ram-size' });
    const back = acrossThreads(original);
    assert.ok(back instanceof C, `${C.name} rebuilds as ${C.name}, got ${back.constructor.name}`);
    assert.equal(back.code, code);
    assert.equal(back.name, C.name);
    assert.equal(back.message, `a ${C.name}`);
    assert.equal(back.stack, original.stack, `${C.name} keeps the stack of where it was thrown`);
    if (original instanceof MigrationError) assert.equal((back as MigrationError).afterGo, true, 'afterGo survives');
    if (original instanceof RefusedError) assert.equal((back as RefusedError).refusal, 'ram-size', 'the refusal survives');
    const c1 = back.cause as FerryError;
    assert.ok(c1 instanceof WireError && c1.code === 'ERR_FERRY_WIRE' && c1.message === 'the middle', `${C.name}: first cause`);
    const c2 = c1.cause as FerryError;
    assert.ok(c2 instanceof TransportError && c2.message === 'the root', `${C.name}: second cause`);
    const c3 = c2.cause as FerryError;
    assert.ok(c3 instanceof FerryError, 'a foreign error with a code rebuilds as a plain FerryError');
    assert.deepEqual([c3.code, c3.name, c3.message, c3.cause], ['ECONNRESET', 'Error', 'ECONNRESET at the bottom', undefined]);
  }
});

test('a RefusedError without a refusal name is an "unknown" refusal, also across threads', () => {
  const back = acrossThreads(new RefusedError('no name'));
  assert.ok(back instanceof RefusedError);
  assert.equal(back.code, 'ERR_FERRY_REFUSED');
  assert.equal(back.refusal, 'unknown');
});

test('MigrationError keeps afterGo false, and an error without a cause rebuilds without one', () => {
  const back = acrossThreads(new MigrationError('before GO'));
  assert.ok(back instanceof MigrationError);
  assert.equal(back.afterGo, false);
  assert.equal('cause' in back, false);
});

test('an unknown code rebuilds as a plain FerryError keeping the code and the name', () => {
  const back = acrossThreads(new FerryError('ERR_FERRY_FROM_THE_FUTURE', 'newer than this side'));
  assert.equal(back.constructor, FerryError);
  assert.deepEqual([back.code, back.name, back.message], ['ERR_FERRY_FROM_THE_FUTURE', 'FerryError', 'newer than this side']);
  assert.equal(ferryCodeOf(back), 'ERR_FERRY_FROM_THE_FUTURE');
});

test('errors without a code and thrown non-errors get the uncoded code', () => {
  const range = acrossThreads(new RangeError('out of range'));
  assert.deepEqual([range.code, range.name, range.message], [UNCODED_ERROR, 'RangeError', 'out of range']);
  assert.equal(ferryCodeOf(range), undefined, 'it had no ferry code before it crossed');
  const thrown = acrossThreads('a string');
  assert.deepEqual([thrown.code, thrown.message], [UNCODED_ERROR, 'a string']);
  const withStringCause = acrossThreads(new Error('outer', { cause: 42 }));
  assert.deepEqual([(withStringCause.cause as FerryError).code, (withStringCause.cause as FerryError).message], [UNCODED_ERROR, '42']);
});

test('a cause chain is cut at MAX_CAUSE_DEPTH links, so a cycle ends', () => {
  const a = new WireError('a');
  const b = new WireError('b', { cause: a });
  Object.defineProperty(a, 'cause', { value: b });
  let e: unknown = acrossThreads(a);
  let links = 0;
  while ((e as Error).cause !== undefined) {
    e = (e as Error).cause;
    links++;
  }
  assert.equal(links, MAX_CAUSE_DEPTH);
});

test('cancellation is recognised by code, never by message', () => {
  assert.equal(isCancelled(acrossThreads(new CancelledError('stopped by the user'))), true);
  assert.equal(isCancelled(acrossThreads(new MigrationTimeoutError('timed out after 300 s (timeout 300 s)'))), true, 'the policy cancels too');
  assert.equal(isCancelled(new Error('cancelled')), false);
  assert.equal(isCancelled(new MigrationError('cancelled')), false);
  assert.equal(isCancelled({ code: 'ERR_FERRY_CANCELLED' }), false, 'not an Error');
});
