/**
 * The source session run on this thread, with a stand-in for the main
 * thread (pause, commit), so that every message it posts can be read.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, test } from 'node:test';
import type { FromSource, SourceInit, ToSource } from '../../src/migration/messages.js';
import { DEFAULT_PARAMETERS, withParameters } from '../../src/migration/parameters.js';
import { SourceSession } from '../../src/migration/source-session.js';
import { DEFAULT_FIXED_SWITCHOVER_MS } from '../../src/migration/switchover.js';
import { switchoverFixedMs } from '../../src/migration/switchover-rule.js';
import { monoMs } from '../../src/migration/waiter.js';
import type { Guest } from '../../src/guest/guest.js';
import { MiB, adopt, destroyAll, guest, listen } from './helpers.js';
import { bounded, fileLimit } from '../waits.js';

fileLimit(import.meta.url, 120_000);
after(destroyAll);

/**
 * Run a session for `src` to `uri`, answering as the main thread does.
 * It iterates (downtime limit 1 ms: the fixed cost alone exceeds it)
 * until pass `passes` has begun, then may switch over.
 */
async function runSession(src: Guest, uri: string, passes: number): Promise<FromSource[]> {
  const posted: FromSource[] = [];
  let deliver: (m: ToSource) => void = () => {};
  let parameters = withParameters(DEFAULT_PARAMETERS, { downtimeLimitMs: 1 });
  const init: SourceInit = {
    uri, parameters, ram: src.blocks.map((b) => b.toShared()), vcpuControls: src.vcpuControlBuffers(), uuid: randomUUID(),
    verify: false, mode: 'thread', startedAtMs: monoMs(),
  };
  const session = new SourceSession(init, {
    post: (m) => {
      posted.push(m);
      queueMicrotask(() => void answer(m));
    },
    onMessage: (fn) => { deliver = fn; },
  });
  async function answer(m: FromSource): Promise<void> {
    if (m.type === 'stats' && m.stats.pass > passes && parameters.downtimeLimitMs === 1) {
      parameters = withParameters(parameters, { downtimeLimitMs: 10_000 });
      deliver({ type: 'set-parameters', parameters });
    }
    if (m.type === 'pause') {
      const pausedAtMs = monoMs();
      await src.pause('finish-migrate');
      deliver({ type: 'paused', devices: src.devices.saveAll(), pausedAtMs, ackedAtMs: monoMs(), wasRunning: true });
    }
    if (m.type === 'commit') {
      src.setRunState('postmigrate');
      deliver({ type: 'committed' });
    }
  }
  try {
    await bounded('the session to end', session.run(), 60_000);
  } finally {
    deliver({ type: 'cancel' }); // a no-op once it ended
  }
  return posted;
}

test('each pass record is posted once, when its pass ends; the figures posted every 100 ms carry no pass list', async () => {
  const src = await guest({ ram: 2 * MiB, vcpus: [{ kind: 'sweep', sweepsPerSec: 50 }] });
  await src.cont();
  const incoming = await listen('unix');
  try {
    const posted = await runSession(src, incoming.uri, 3);
    const ended = posted.at(-1)!;
    assert.equal(ended.type, 'completed', ended.type === 'failed' ? ended.error.message : '');
    adopt((await incoming.done()).guest);
    const passes = posted.flatMap((m) => (m.type === 'pass' ? [m.pass.pass] : []));
    assert.ok(passes.length >= 3, `${passes.length} passes`);
    assert.deepEqual(passes, passes.map((_, i) => i + 1), 'every pass once, in order');
    const figures = posted.filter((m) => m.type === 'stats' || m.type === 'completed');
    assert.ok(figures.length >= passes.length + 1);
    for (const m of figures) assert.ok(!('passes' in (m as { stats: object }).stats), `a ${m.type} message carries no pass list`);
  } finally {
    incoming.cancel();
  }
});

test('the switchover\'s fixed cost, the hosts\' part and the link\'s round trip as measured, is recorded with the switchover', async () => {
  const src = await guest({ ram: 2 * MiB, vcpus: [{ kind: 'sweep', sweepsPerSec: 50 }] });
  await src.cont();
  const incoming = await listen('unix');
  try {
    const posted = await runSession(src, incoming.uri, 3);
    const ended = posted.at(-1)!;
    assert.equal(ended.type, 'completed', ended.type === 'failed' ? ended.error.message : '');
    adopt((await incoming.done()).guest);
    const sw = ended.type === 'completed' ? ended.stats.switchover : null;
    assert.ok(sw?.expectedFixedMs !== undefined && sw.roundTripMs !== undefined, JSON.stringify(sw));
    assert.equal(sw.expectedFixedMs, switchoverFixedMs({ fixedCostMs: DEFAULT_FIXED_SWITCHOVER_MS, roundTripMs: sw.roundTripMs }));
    assert.ok(sw.expectedMs >= sw.expectedFixedMs, `expected ${sw.expectedMs} ms includes the fixed ${sw.expectedFixedMs} ms`);
    const last = posted.flatMap((m) => (m.type === 'pass' ? [m.pass.decision] : [])).at(-1) ?? '';
    const link = sw.roundTripMs === null ? 'link not measured' : `link 2 x ${sw.roundTripMs.toFixed(2)} ms`;
    assert.ok(last.includes(`(hosts ${DEFAULT_FIXED_SWITCHOVER_MS} ms, ${link})`), last);
  } finally {
    incoming.cancel();
  }
});

test('passes over a drained link time the round trip: a static guest\'s decisions count it', async () => {
  const src = await guest({ ram: 2 * MiB, vcpus: [] });
  await src.cont();
  const incoming = await listen('unix');
  try {
    const posted = await runSession(src, incoming.uri, 5); // its passes write a PASS record each, on an empty link
    const ended = posted.at(-1)!;
    assert.equal(ended.type, 'completed', ended.type === 'failed' ? ended.error.message : '');
    adopt((await incoming.done()).guest);
    const decisions = posted.flatMap((m) => (m.type === 'pass' ? [m.pass.decision] : []));
    const timed = decisions.filter((d) => /link 2 x [\d.]+ ms/.test(d));
    assert.ok(timed.length > 0, decisions.join('\n'));
    const sw = ended.type === 'completed' ? ended.stats.switchover : null;
    assert.ok(sw?.roundTripMs != null && sw.roundTripMs >= 0 && sw.expectedFixedMs === DEFAULT_FIXED_SWITCHOVER_MS + 2 * sw.roundTripMs, JSON.stringify(sw));
  } finally {
    incoming.cancel();
  }
});
