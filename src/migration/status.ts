/**
 * Migration status, named as QEMU's MigrationStatus, with the one table of
 * allowed transitions; the guarded `transition` is state-machine.ts's.
 */
import { StateMachine } from '../state-machine.js';
import { createTracer } from '../trace.js';

export type MigrationStatus =
  | 'none' | 'setup' | 'active' | 'device' | 'postcopy-active' | 'postcopy-paused' | 'postcopy-recover-setup' | 'postcopy-recover'
  | 'completed' | 'failed' | 'cancelling' | 'cancelled';

const ALLOWED: Readonly<Record<MigrationStatus, readonly MigrationStatus[]>> = {
  none: ['setup'],
  setup: ['active', 'failed', 'cancelling'],
  active: ['device', 'postcopy-active', 'failed', 'cancelling'],
  device: ['completed', 'failed', 'cancelling'],
  // Post-copy: from the pause for it on. Not cancelling: migrate_cancel is refused (migration.ts).
  // A broken link pauses it; `migrate` with resume recovers it (postcopy-recovery.ts); a failed recovery pauses it again.
  'postcopy-active': ['completed', 'failed', 'postcopy-paused'],
  'postcopy-paused': ['postcopy-recover-setup', 'failed'],
  'postcopy-recover-setup': ['postcopy-recover', 'postcopy-paused', 'failed'],
  'postcopy-recover': ['postcopy-active', 'postcopy-paused', 'failed', 'completed'],
  cancelling: ['cancelled', 'failed', 'completed'],
  completed: [],
  failed: [],
  cancelled: [],
};

/** From post-copy's switchover on, paused and recovering included (QEMU's migration_in_postcopy). */
export function inPostcopy(s: MigrationStatus): boolean {
  return s === 'postcopy-active' || s === 'postcopy-paused' || s === 'postcopy-recover-setup' || s === 'postcopy-recover';
}

export function isFinished(s: MigrationStatus): boolean {
  return s === 'completed' || s === 'failed' || s === 'cancelled';
}

const trace = createTracer('migration');

export function migrationStateMachine(): StateMachine<MigrationStatus> {
  return new StateMachine<MigrationStatus>('migration', ALLOWED, 'none', trace);
}
