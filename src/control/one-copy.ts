/**
 * The one-copy guard (DESIGN.md invariant 6: one guest runs once), for
 * the commands that could break it from outside: `cont` on a source that
 * migrated away would run a second copy; `quit` (or a signal) on a source
 * past its commit could end the only copy. Each returns why it refuses, or
 * null when the command may go ahead. The overrides are deliberate:
 * `x-ferry-force: true` on QMP, `--force` on the command line.
 */
import type { Guest } from '../guest/guest.js';
import type { Migration } from '../migration/migration.js';
import { isFinished } from '../migration/status.js';

const FORCE_CONT = '{"execute": "cont", "arguments": {"x-ferry-force": true}}';

/**
 * Why `cont` is refused on `guest` (null: allowed). Only a guest in
 * postmigrate is refused; `m` is its last migration. `force` overrides the
 * refusal only once that migration has ended: while it still runs, the
 * destination may yet be told GO, so nobody can know the other copy is gone.
 */
export function contRefusal(guest: Guest, m: Migration | null, force = false): string | null {
  if (guest.runState !== 'postmigrate') return null;
  if (m !== null && !isFinished(m.status)) {
    return `The migration to ${m.uri} is still in progress (${m.status}) and past its commit: the destination may yet run the guest, ` +
      'so continuing it here is refused, even with x-ferry-force, until the migration has ended';
  }
  if (force) return null;
  const where = m === null ? 'elsewhere' : m.uri;
  let why: string;
  if (m === null) why = 'The guest has migrated away (postmigrate) and its other copy may be running';
  else if (m.uri.startsWith('file:')) why = `The guest was saved to ${where} (postmigrate); a restore of that file may be running`;
  else if (m.status === 'completed') why = `The guest has migrated to ${where} and now runs at the destination`;
  else if (m.status === 'failed') why = `The migration to ${where} failed after GO: the destination may be running the guest`;
  else why = `The migration to ${where} is past GO (${m.status}): the destination is taking the guest over`;
  return `${why}; continuing it here would run two copies. If the other copy is known to be gone, override with ${FORCE_CONT}`;
}

/**
 * Why ending this process is refused (null: allowed): its migration `m`
 * committed and the destination has not confirmed it runs the guest, so
 * this process may hold the only copy. `override` says how to end it anyway.
 */
export function quitRefusal(m: Migration | null, override: string): string | null {
  if (m === null || !m.mayHoldOnlyCopy) return null;
  const state = m.status === 'failed'
    ? `the migration to ${m.uri} failed after GO: this process may hold the only copy of the guest (if the destination is gone, recover it with ${FORCE_CONT})`
    : `the migration to ${m.uri} is past GO (${m.status}): until the destination confirms it runs the guest, this process may hold the only copy; wait for the migration to end`;
  return `${state}; ending this process now could lose the guest. ${override}`;
}
