/**
 * Migration status, named as QEMU's MigrationStatus, with the one table of
 * allowed transitions and the one guarded `transition` (STYLE.md habit 5).
 */
import { EventEmitter } from 'node:events';
import { InvalidStateError } from '../errors.js';
import { createTracer } from '../trace.js';

export type MigrationStatus =
  | 'none' | 'setup' | 'active' | 'device' | 'completed' | 'failed' | 'cancelling' | 'cancelled';

const ALLOWED: Readonly<Record<MigrationStatus, readonly MigrationStatus[]>> = {
  none: ['setup'],
  setup: ['active', 'failed', 'cancelling'],
  active: ['device', 'failed', 'cancelling'],
  device: ['completed', 'failed', 'cancelling'],
  cancelling: ['cancelled', 'failed', 'completed'],
  completed: [],
  failed: [],
  cancelled: [],
};

export function isFinished(s: MigrationStatus): boolean {
  return s === 'completed' || s === 'failed' || s === 'cancelled';
}

const trace = createTracer('migration');

export class MigrationStateMachine extends EventEmitter<{ status: [to: MigrationStatus, from: MigrationStatus] }> {
  private current: MigrationStatus = 'none';

  get status(): MigrationStatus {
    return this.current;
  }

  can(to: MigrationStatus): boolean {
    return ALLOWED[this.current].includes(to);
  }

  transition(to: MigrationStatus): void {
    const from = this.current;
    if (!ALLOWED[from].includes(to)) throw new InvalidStateError(`migration: cannot go from '${from}' to '${to}'`);
    this.current = to;
    trace('status %s -> %s', from, to);
    this.emit('status', to, from);
  }
}
