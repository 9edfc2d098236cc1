/**
 * A destination with huge pages (hugePages, `--huge-pages`): its RAM is
 * advised before any page arrives (the source's too, before it runs), every page lands as the source held it
 * (invariant 2, on contents and by the VERIFY digests), and its figures say
 * what was advised and what the process then holds in huge pages. Skipped,
 * with the reason, where huge pages are not reachable.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { anonHugePagesBytes, hugePagesSupport } from '../../src/memory/huge-pages.js';
import { Migration } from '../../src/migration/migration.js';
import type { Guest } from '../../src/guest/guest.js';
import { MiB, adopt, destroyAll, guest, listen, sameRam } from './helpers.js';
import { fileLimit, until } from '../waits.js';

fileLimit(import.meta.url, 120_000);

after(destroyAll);

const support = hugePagesSupport();
const unreachable = support.addon === undefined ? `huge pages are not reachable here: ${support.reason}` : false;

const RAM = 64 * MiB;

test('a source and a destination with hugePages: their RAM advised, every page lands as the source held it (VERIFY), and it holds huge pages after loading', { skip: unreachable }, async () => {
  // 3/4 of RAM random (written once), then the guest paused: the pages to load are fixed.
  const src = await guest({ ram: RAM, vcpus: [{ kind: 'fill', data: 'random', fraction: 0.75 }], hugePages: true });
  assert.ok(src.hugePagesAdvised !== null && src.hugePagesAdvised >= RAM - 4 * MiB, `source advised ${src.hugePagesAdvised} bytes`);
  await src.cont();
  await until('the guest to write its pages', () => src.pagesWritten >= (0.75 * RAM) / 4096, 30_000);
  const incoming = await listen('tcp', { hugePages: true });
  let arrived: Guest | null = null;
  let sameAtLoaded: boolean | null = null;
  incoming.on('guest', (d: Guest) => { arrived = d; });
  incoming.on('status', (to) => { if (to === 'loaded' && arrived !== null) sameAtLoaded = sameRam(arrived, src); });
  // The source's huge pages are in this process too: the destination's are what AnonHugePages gains from here.
  const before = anonHugePagesBytes()!;
  const result = await Migration.start(src, incoming.uri, {}, { verify: true }).done();
  assert.equal(result.status, 'completed', result.error ?? '');
  const dest = await incoming.done();
  assert.equal(dest.status, 'resumed', dest.error ?? '');
  adopt(dest.guest);
  assert.equal(sameAtLoaded, true, 'destination RAM when loaded equals source RAM at the pause');
  assert.equal(dest.stats?.verified, true, 'the digests of what was sent and what landed agree');
  const figures = dest.stats?.hugePages;
  assert.ok(figures !== null && figures !== undefined, 'the destination reports its huge pages');
  assert.ok(figures.advisedBytes >= RAM - 4 * MiB && figures.advisedBytes <= RAM, `advised ${figures.advisedBytes} bytes`);
  // The loaded 48 MiB of data were committed after the advice; the kernel may fall back to 4 KiB pages where it has no 2 MiB page free.
  assert.ok(figures.anonHugeBytes !== null && figures.anonHugeBytes - before >= 24 * MiB, `AnonHugePages: ${before} before, ${figures.anonHugeBytes} after loading`);
});

test('without hugePages, the destination reports no huge pages', async () => {
  const src = await guest({ ram: 8 * MiB, vcpus: [{ kind: 'fill', data: 'random', fraction: 0.5 }] });
  await src.cont();
  await until('the guest to write its pages', () => src.pagesWritten >= 1024, 30_000);
  const incoming = await listen('tcp');
  const result = await Migration.start(src, incoming.uri, {}, { verify: true }).done();
  assert.equal(result.status, 'completed', result.error ?? '');
  const dest = await incoming.done();
  adopt(dest.guest);
  assert.equal(dest.stats?.hugePages, null);
  assert.equal(src.hugePagesAdvised, null);
});
