/**
 * What the control socket drives: one guest, its current (or last)
 * migration, the migration parameters and capabilities (kept across
 * migrations, as QEMU's), and the events every client may receive.
 */
import { EventEmitter } from 'node:events';
import type { Guest } from '../guest/guest.js';
import type { RunState } from '../guest/run-state.js';
import { Migration } from '../migration/migration.js';
import { DEFAULT_PARAMETERS, withParameters, type MigrationParameters } from '../migration/parameters.js';

export interface MigrationCapabilities {
  /** QEMU's `events`: send MIGRATION and MIGRATION_PASS events. */
  events: boolean;
  /** ferry's `x-ferry-verify`: digest RAM on both sides at switchover. */
  'x-ferry-verify': boolean;
}

export interface ControlEvent {
  readonly event: string;
  readonly data?: Record<string, unknown>;
  /** Only sent to clients when the `events` capability is on (MIGRATION, MIGRATION_PASS). */
  readonly migrationEvent: boolean;
}

export class GuestController extends EventEmitter<{ event: [ControlEvent]; quit: [] }> {
  parameters: MigrationParameters = DEFAULT_PARAMETERS;
  readonly capabilities: MigrationCapabilities = { events: false, 'x-ferry-verify': false };
  migration: Migration | null = null;

  constructor(readonly guest: Guest) {
    super();
    guest.on('runstate', (to: RunState, from: RunState) => {
      if (to === 'running') this.emit('event', { event: 'RESUME', migrationEvent: false });
      else if (from === 'running') this.emit('event', { event: 'STOP', migrationEvent: false });
    });
  }

  migrate(uri: string): Migration {
    const m = Migration.start(this.guest, uri, this.parameters, { verify: this.capabilities['x-ferry-verify'] });
    this.migration = m;
    m.on('status', (status) => this.emit('event', { event: 'MIGRATION', data: { status }, migrationEvent: true }));
    m.on('pass', (p) => this.emit('event', { event: 'MIGRATION_PASS', data: { pass: p.pass }, migrationEvent: true }));
    // The migration entered 'setup' as it started, before anyone could listen.
    this.emit('event', { event: 'MIGRATION', data: { status: m.status }, migrationEvent: true });
    return m;
  }

  setParameters(changes: Partial<MigrationParameters>): void {
    this.parameters = withParameters(this.parameters, changes);
    const m = this.migration;
    if (m !== null && (m.status === 'setup' || m.status === 'active')) m.setParameters(changes);
  }
}
