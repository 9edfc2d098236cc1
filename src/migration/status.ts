/**
 * Migration status, named as QEMU's MigrationStatus, with the one table of
 * allowed transitions; the guarded `transition` is state-machine.ts's.
 */
import { StateMachine } from '../state-machine.js';
import { createTracer } from '../trace.js';

export type MigrationStatus =
  | 'none' | 'setup' | 'active' | 'device' | 'postcopy-active' | 'completed' | 'failed' | 'cancelling' | 'cancelled';

const ALLOWED: Readonly<Record<MigrationStatus, readonly MigrationStatus[]>> = {
  none: ['setup'],
  setup: ['active', 'failed', 'cancelling'],
  active: ['device', 'postcopy-active', 'failed', 'cancelling'],
  device: ['completed', 'failed', 'cancelling'],
  // Post-copy: from the pause for it on. Not cancelling: migrate_cancel is refused (migration.ts).
  'postcopy-active': ['completed', 'failed'],
  cancelling: ['cancelled', 'failed', 'completed'],
  completed: [],
  failed: [],
  cancelled: [],
};

export function isFinished(s: MigrationStatus): boolean {
  return s === 'completed' || s === 'failed' || s === 'cancelled';
}

const trace = createTracer('migration');

export function migrationStateMachine(): StateMachine<MigrationStatus> {
  return new StateMachine<MigrationStatus>('migration', ALLOWED, 'none', trace);
}
