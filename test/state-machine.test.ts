import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runStateMachine } from '../src/guest/run-state.js';
import { incomingStateMachine, isIncomingFinished } from '../src/migration/incoming-status.js';
import { migrationStateMachine } from '../src/migration/status.js';
import { fileLimit } from './waits.js';

fileLimit(import.meta.url, 60_000);

test('state machines allow only their table, emit each change once, and treat the same state as a no-op', () => {
  const m = migrationStateMachine();
  const seen: string[] = [];
  m.on('change', (to, from) => seen.push(`${from}->${to}`));
  m.transition('setup');
  m.transition('setup');
  m.transition('active');
  assert.throws(() => m.transition('completed'), { code: 'ERR_FERRY_INVALID_STATE', message: "migration: cannot go from 'active' to 'completed'" });
  m.transition('cancelling');
  m.transition('cancelled');
  assert.deepEqual(seen, ['none->setup', 'setup->active', 'active->cancelling', 'cancelling->cancelled']);
  assert.equal(m.can('setup'), false, 'the end is final');
  const r = runStateMachine('prelaunch');
  assert.equal(r.can('finish-migrate'), true, 'a never-started guest can be migrated');
  assert.equal(r.can('postmigrate'), false);
});

test('the destination goes listening, connected, loading, loaded, resumed, and can fail or be cancelled only before it resumed', () => {
  const d = incomingStateMachine();
  const seen: string[] = [];
  d.on('change', (to) => seen.push(to));
  assert.throws(() => d.transition('loading'), { code: 'ERR_FERRY_INVALID_STATE', message: "incoming migration: cannot go from 'listening' to 'loading'" });
  for (const s of ['connected', 'loading', 'loaded', 'resumed'] as const) d.transition(s);
  assert.deepEqual(seen, ['connected', 'loading', 'loaded', 'resumed']);
  assert.equal(d.can('failed'), false, 'nothing fails a destination that resumed');
  for (const from of ['listening', 'connected', 'loading', 'loaded'] as const) {
    for (const to of ['failed', 'cancelled'] as const) {
      const m = incomingStateMachine();
      const path = ['connected', 'loading', 'loaded'] as const;
      for (const s of path.slice(0, path.indexOf(from as (typeof path)[number]) + 1)) m.transition(s);
      assert.equal(m.state, from);
      m.transition(to);
      assert.equal(isIncomingFinished(m.state), true);
    }
  }
});
