/**
 * The benchmark suite's scenario lists (bench/suite.ts), without running
 * them: `--quick` holds every group, on small guests; `--smoke` (what
 * test/cli/bench.test.ts runs) is the first scenario of each group of it,
 * in order. No benchmark runs here.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { firstOfEachGroup, scenarios, type Scenario } from '../../src/bench/suite.js';
import { LINK_GROUP } from '../../src/bench/link-remedies.js';
import { XBZRLE_GROUP } from '../../src/bench/xbzrle-link.js';
import { fileLimit } from '../waits.js';

fileLimit(import.meta.url, 10_000);

const MiB = 1024 * 1024;
const LINK = { source: 'ip netns exec a', destination: 'ip netns exec b', listenHost: '10.0.0.2' };
const LOOPBACK_GROUPS = ['idle', 'zeroed', 'random', 'sweep', 'converge', 'postcopy', 'thread', 'map'];

/** The groups of `list`, each once, in the order they first appear. */
const groups = (list: readonly Scenario[]) => [...new Set(list.map((s) => s.group))];

test('--quick runs every group on guests of at most 256 MiB, one run each, and the netns group only with a link', () => {
  assert.deepEqual(groups(scenarios(true, 1, null)), LOOPBACK_GROUPS);
  const linked = scenarios(true, 1, LINK);
  assert.deepEqual(groups(linked), [...LOOPBACK_GROUPS.slice(0, -1), 'netns', 'map']);
  for (const s of linked) {
    assert.ok(s.ramBytes <= 256 * MiB, `${s.spec.name}: ${s.ramBytes / MiB} MiB`);
    assert.equal(s.runs, 1, s.spec.name);
    assert.equal(s.spec.netns !== undefined, s.group === 'netns', s.spec.name);
  }
  assert.ok(groups(scenarios(false, 3, LINK)).includes(LINK_GROUP), 'the full suite has the remedies over the link');
  const prealloc = scenarios(false, 3, null).filter((s) => s.group === 'prealloc');
  assert.deepEqual(prealloc.map((s) => [s.ramBytes, s.spec.destination, s.spec.params['multifd-channels'] ?? 1]), [[2048 * MiB, ['--prealloc'], 1], [2048 * MiB, ['--prealloc'], 2]],
    'the full suite has the preallocated 2 GiB guest, in its own group, on one connection and on 2 channels');
  // Issue 15's XBZRLE rows: the full suite only, on the link, the 512 MiB sweep with xbzrle and a 512 MiB cache, then with random data.
  const xbzrle = scenarios(false, 3, LINK).filter((s) => s.group === XBZRLE_GROUP);
  assert.deepEqual(xbzrle.map((s) => [s.ramBytes, s.spec.netns !== undefined, s.spec.capabilities, s.spec.params['xbzrle-cache-size'], s.spec.guest.includes('random')]),
    [[512 * MiB, true, ['xbzrle'], 512 * MiB, false], [512 * MiB, true, ['xbzrle'], 512 * MiB, true]]);
  assert.ok(!groups(scenarios(false, 3, null)).includes(XBZRLE_GROUP), 'not without a link');
  const names = linked.map((s) => s.spec.name);
  assert.equal(new Set(names).size, names.length, 'scenario names are unique (the report\'s rows)');
});

test('--smoke is the first scenario of each group of --quick, in the same order', () => {
  for (const link of [null, LINK]) {
    const quick = scenarios(true, 1, link);
    const smoke = firstOfEachGroup(quick);
    assert.deepEqual(smoke.map((s) => s.group), groups(quick));
    for (const s of smoke) assert.equal(s, quick.find((q) => q.group === s.group), `${s.group}: its first scenario`);
    assert.ok(smoke.length < quick.length);
  }
  assert.deepEqual(firstOfEachGroup([]), []);
});

test('the bench usage names every scenario group of the full suite (--only accepts the suite\'s own list)', async () => {
  const { BENCH_USAGE } = await import('../../src/cli/bench.js');
  const groups = new Set(scenarios(false, 1, { source: 'a', destination: 'b', listenHost: '10.0.0.1' }).map((s) => s.group));
  const only = BENCH_USAGE.slice(BENCH_USAGE.indexOf('--only'));
  for (const g of groups) assert.match(only, new RegExp(`[ (,]${g}[ ,)]`), `the usage's --only names ${g}`);
});
