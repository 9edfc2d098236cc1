import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runStateMachine } from '../src/guest/run-state.js';
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
