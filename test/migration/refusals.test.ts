/**
 * Refusals explained (issue 12, item 5), through the library: a destination
 * that will not load the stream (its RAM size, its vCPU count, its RAM
 * limit) answers REFUSED, and the source's error names the destination's
 * reason with code ERR_FERRY_REFUSED and the refusal's name, never
 * `write EPIPE`. The source runs on with its RAM intact, the destination
 * never makes a guest, and only one copy ever runs (checked as the fault
 * matrix does: a ledger of running intervals, invariant 6).
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { RefusedError } from '../../src/errors.js';
import type { Guest } from '../../src/guest/guest.js';
import type { IncomingOptions } from '../../src/migration/incoming.js';
import { Migration } from '../../src/migration/migration.js';
import { bounded, fileLimit, until } from '../waits.js';
import { MiB, RunLedger, assertDirtyLogsReleased, assertSweeps, destroyAll, guest, listen } from './helpers.js';

fileLimit(import.meta.url, 240_000);
after(destroyAll);

/** Long enough for a refusal on a loaded machine. */
const ENDS_MS = 30_000;
const RAM_MIB = 64;

async function sweepingSource(): Promise<Guest> {
  const half = (RAM_MIB * MiB) / 4096 / 2;
  const g = await guest({ ram: RAM_MIB * MiB, vcpus: [{ kind: 'sweep', firstPage: 0, pages: half }, { kind: 'sweep', firstPage: half, pages: half }] });
  await g.cont();
  // Every page written: the first pass streams the whole guest at full speed (what made EPIPE likely).
  await until('a full sweep of the source', () => g.pagesWritten >= (RAM_MIB * MiB) / 4096, 20_000);
  return g;
}

const CASES: readonly { name: string; refusal: string; options: IncomingOptions; reason: RegExp }[] = [
  { name: 'RAM size', refusal: 'ram-size', options: { expect: { ramBytes: 2 * RAM_MIB * MiB } },
    reason: /^the destination refused the stream \(ram-size\): header: the guest has 64 MiB of RAM; this destination expects 128 MiB \(--ram\)$/ },
  { name: 'vCPU count', refusal: 'vcpus', options: { expect: { vcpus: 3 } },
    reason: /^the destination refused the stream \(vcpus\): header: the guest has 2 vCPUs; this destination expects 3 \(--vcpus\)$/ },
  { name: 'RAM limit', refusal: 'max-ram', options: { maxGuestBytes: 32 * MiB },
    reason: /^the destination refused the stream \(max-ram\): header: the guest has 64 MiB of RAM; this destination accepts at most 32 MiB \(--max-ram\)$/ },
];

for (const c of CASES) {
  test(`a destination that refuses the ${c.name}: the source's error is its reason (ERR_FERRY_REFUSED, ${c.refusal}); the source runs on intact`, async () => {
    const src = await sweepingSource();
    const ledger = new RunLedger();
    ledger.watch('source', src);
    const incoming = await listen('tcp', c.options);
    incoming.on('guest', (g) => ledger.watch('destination', g));
    const m = Migration.start(src, incoming.uri);
    const err = await bounded('the refusal at the source', m.completed().then(() => assert.fail('completed'), (e: unknown) => e), ENDS_MS);
    assert.ok(err instanceof RefusedError, `a RefusedError, got ${String(err)}`);
    assert.equal(err.code, 'ERR_FERRY_REFUSED');
    assert.equal(err.refusal, c.refusal);
    assert.match(err.message, c.reason);
    const r = await bounded('the source\'s end', m.done(), ENDS_MS);
    assert.equal(r.status, 'failed');
    assert.equal(r.afterGo, false);
    const dest = await bounded('the destination\'s end', incoming.done(), ENDS_MS);
    assert.equal(dest.status, 'failed');
    assert.equal(dest.guest, null, 'the destination made no guest');
    assert.equal(dest.failure?.code, 'ERR_FERRY_REFUSED', 'the destination\'s own error is the refusal too');
    await bounded('the destination to let go of the connection', incoming.released(), ENDS_MS);
    assertDirtyLogsReleased(src, c.name);
    assert.equal(src.runState, 'running', 'the source runs on');
    await src.pause();
    assertSweeps(src, `the source after the ${c.name} refusal`);
    assert.equal(ledger.ran('destination'), false, 'no second copy ran');
    assert.equal(ledger.overlaps(), 0);
    await src.destroy();
  });
}
