/**
 * A library user branches on `code`: every way a migration ends badly
 * reaches the caller as the error class that describes it, after crossing
 * from the migration thread (source) or the loader thread (destination).
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { CancelledError, type FerryError, InvalidArgumentError, MigrationError, RefusedError, TimeoutError, TransportError } from '../../src/errors.js';
import { IncomingMigration } from '../../src/migration/incoming.js';
import { Migration } from '../../src/migration/migration.js';
import { bounded, fileLimit } from '../waits.js';
import { MiB, adopt, destroyAll, guest, listen } from './helpers.js';

fileLimit(import.meta.url, 180_000);
after(destroyAll);

/** Long enough for a migration of a few MiB, or a failure, on a loaded machine. */
const ENDS_MS = 30_000;

/** `promise` rejects with an instance of `C` whose code is `code`; returns it. */
async function rejectsWith<T extends FerryError>(promise: Promise<unknown>, C: new (...args: never[]) => T, code: string): Promise<T> {
  const err = await bounded(`the ${C.name} ${code}`, promise.then(() => assert.fail(`expected a ${C.name}`), (e: unknown) => e), ENDS_MS);
  assert.ok(err instanceof C, `a ${C.name}, got ${String(err)}`);
  assert.equal(err.code, code, err.message);
  return err;
}

test('an unreachable destination: the migration rejects with a TransportError', { timeout: 30_000 }, async () => {
  const src = await guest({ ram: 4 * MiB, vcpus: [{ kind: 'idle' }] });
  await src.cont();
  const m = Migration.start(src, 'tcp:127.0.0.1:1', { switchoverTimeoutMs: 2000 });
  const err = await rejectsWith(m.completed(), TransportError, 'ERR_FERRY_TRANSPORT');
  assert.match(err.message, /cannot reach the destination at 127\.0\.0\.1:1/);
  const r = await bounded('the migration\'s end', m.done(), ENDS_MS);
  assert.equal(r.status, 'failed');
  assert.equal(r.failure, err);
  assert.equal(r.error, err.message, 'the text the user sees is the error\'s message, as before');
  assert.equal(m.lastFailure, err);
});

test('a destination that refuses the stream: both sides reject with a RefusedError naming the refusal', { timeout: 30_000 }, async () => {
  const src = await guest({ ram: 4 * MiB, vcpus: [{ kind: 'idle' }] });
  await src.cont();
  const incoming = await listen('tcp', { expect: { ramBytes: 8 * MiB } });
  const m = Migration.start(src, incoming.uri);
  const err = await rejectsWith(m.completed(), RefusedError, 'ERR_FERRY_REFUSED');
  assert.match(err.message, /^the destination refused the stream \(ram-size\): header: the guest has 4 MiB of RAM; this destination expects 8 MiB \(--ram\)$/);
  assert.equal(err.refusal, 'ram-size');
  const dest = await rejectsWith(incoming.resumed(), RefusedError, 'ERR_FERRY_REFUSED');
  assert.equal(dest.refusal, 'ram-size');
  assert.equal((await bounded('the destination\'s end', incoming.done(), ENDS_MS)).status, 'failed');
  assert.equal(incoming.lastFailure, dest);
  assert.equal(src.runState, 'running');
});

test('cancel: the source rejects with a CancelledError and no error text; a cancelled destination too', { timeout: 30_000 }, async () => {
  const src = await guest({ ram: 8 * MiB, vcpus: [{ kind: 'sweep', sweepsPerSec: 20 }] });
  await src.cont();
  const incoming = await listen('unix');
  // A limit it cannot meet: it stays active until cancelled.
  const m = Migration.start(src, incoming.uri, { downtimeLimitMs: 1, maxBandwidthBytesPerSec: 4 * MiB });
  await bounded('the migration to become active', new Promise<void>((resolve) => m.on('status', (s) => { if (s === 'active') resolve(); })), ENDS_MS);
  m.cancel();
  const err = await rejectsWith(m.completed(), CancelledError, 'ERR_FERRY_CANCELLED');
  const r = await bounded('the migration\'s end', m.done(), ENDS_MS);
  assert.equal(r.status, 'cancelled');
  assert.equal(r.error, null);
  assert.equal(r.failure, err);
  await bounded('the destination\'s end', incoming.done(), ENDS_MS);

  const waiting = await listen('tcp');
  waiting.cancel();
  await rejectsWith(waiting.resumed(), CancelledError, 'ERR_FERRY_CANCELLED');
  const w = await bounded('the cancelled destination\'s end', waiting.done(), ENDS_MS);
  assert.equal(w.status, 'cancelled');
  assert.equal(w.error, 'cancelled on the destination');
});

test('an error thrown on the main thread at commit crosses to the migration thread and back as the cause', { timeout: 30_000 }, async () => {
  const src = await guest({ ram: 4 * MiB, vcpus: [{ kind: 'idle' }] });
  await src.cont();
  const incoming = await listen('tcp');
  const m = Migration.start(src, incoming.uri, {}, { onLoaded: () => { throw new TimeoutError('the embedder gave up'); } });
  const err = await rejectsWith(m.completed(), MigrationError, 'ERR_FERRY_MIGRATION');
  assert.equal(err.message, 'committing on the source failed: the embedder gave up');
  assert.ok(err.cause instanceof TimeoutError, `the cause keeps its class: ${String(err.cause)}`);
  assert.equal(err.cause.code, 'ERR_FERRY_TIMEOUT');
  assert.equal(src.runState, 'running', 'the source resumed');
  assert.equal((await bounded('the destination\'s end', incoming.done(), ENDS_MS)).guest, null);
});

test('listening fails with the class the loader thread threw', { timeout: 30_000 }, async () => {
  const err = await rejectsWith(IncomingMigration.listen('tcp:0.0.0.0:0'), InvalidArgumentError, 'ERR_FERRY_INVALID_ARGUMENT');
  assert.match(err.message, /refusing to listen on 0\.0\.0\.0 without TLS/);
  const first = await listen('tcp');
  try {
    const taken = await rejectsWith(IncomingMigration.listen(first.uri), TransportError, 'ERR_FERRY_TRANSPORT');
    assert.match(taken.message, /something already listens there/);
  } finally {
    first.cancel();
    adopt((await bounded('the first destination\'s end', first.done(), ENDS_MS)).guest);
  }
});
