/**
 * What a control socket drives: one guest (on a destination, the one that
 * migrates in), its current or last migration in either direction, the
 * migration parameters and capabilities (kept across migrations, as
 * QEMU's), and the events every client may receive.
 */
import { EventEmitter } from 'node:events';
import type { Guest } from '../guest/guest.js';
import type { RunState } from '../guest/run-state.js';
import { IncomingMigration, type IncomingOptions } from '../migration/incoming.js';
import { defaultCapabilities, type MigrationCapabilities } from '../migration/capabilities.js';
import { Migration } from '../migration/migration.js';
import { DEFAULT_PARAMETERS, withParameters, type MigrationParameters } from '../migration/parameters.js';
import type { TlsOptions } from '../transport/tls.js';

export interface ControlEvent {
  readonly event: string;
  readonly data?: Record<string, unknown>;
  /** Only sent to clients when the `events` capability is on (MIGRATION, MIGRATION_PASS). */
  readonly migrationEvent: boolean;
}

export interface ControllerOptions {
  /** TLS for outgoing migrations. */
  readonly tls?: TlsOptions;
  /** Limits, TLS and checks for an incoming migration. */
  readonly incoming?: Omit<IncomingOptions, 'onGuest'>;
}

export class GuestController extends EventEmitter<{ event: [ControlEvent]; quit: [] }> {
  parameters: MigrationParameters = DEFAULT_PARAMETERS;
  readonly capabilities: MigrationCapabilities = defaultCapabilities();
  migration: Migration | null = null;
  incoming: IncomingMigration | null = null;
  private guestValue: Guest | null = null;

  /**
   * `guest` is null on a destination waiting for `migrate-incoming`.
   * `options` are fixed for the process, as QEMU's -object tls-creds: the
   * TLS credentials of outgoing migrations, and what an incoming one accepts.
   */
  constructor(guest: Guest | null, private readonly options: ControllerOptions = {}) {
    super();
    if (guest !== null) this.adopt(guest);
  }

  get guest(): Guest | null {
    return this.guestValue;
  }

  migrate(uri: string): Migration {
    if (this.guestValue === null) throw new Error('there is no guest here to migrate');
    const m = Migration.start(this.guestValue, uri, this.parameters, {
      verify: this.capabilities['x-ferry-verify'], tls: this.options.tls, autoConverge: this.capabilities['auto-converge'], multifd: this.capabilities.multifd, xbzrle: this.capabilities.xbzrle,
      dirtyLimit: this.capabilities['dirty-limit'], postcopy: this.capabilities['postcopy-ram'],
      mode: this.capabilities['x-ferry-mainloop'] ? 'mainloop' : 'thread',
    });
    this.migration = m;
    m.on('status', (status) => this.migrationEvent('MIGRATION', { status }));
    m.on('pass', (p) => this.migrationEvent('MIGRATION_PASS', { pass: p.pass }));
    // The migration entered 'setup' as it started, before anyone could listen.
    this.migrationEvent('MIGRATION', { status: m.status });
    return m;
  }

  /** As QEMU's `migrate-incoming`: wait for a guest to migrate in at `uri`. */
  async migrateIncoming(uri: string): Promise<IncomingMigration> {
    const incoming = await IncomingMigration.listen(uri, { ...this.options.incoming, onGuest: (g) => this.adopt(g) });
    this.incoming = incoming;
    incoming.on('status', (s) => this.migrationEvent('MIGRATION', { status: s }));
    void incoming.done().then((r) => {
      if (r.guest === null) this.guestValue = null; // discarded: it never ran
    });
    return incoming;
  }

  setParameters(changes: Partial<MigrationParameters>): void {
    this.parameters = withParameters(this.parameters, changes);
    const m = this.migration;
    if (m !== null && (m.status === 'setup' || m.status === 'active')) m.setParameters(changes);
  }

  private adopt(guest: Guest): void {
    this.guestValue = guest;
    guest.on('runstate', (to: RunState, from: RunState) => {
      if (to === 'running') this.emit('event', { event: 'RESUME', migrationEvent: false });
      else if (from === 'running') this.emit('event', { event: 'STOP', migrationEvent: false });
    });
  }

  private migrationEvent(event: string, data: Record<string, unknown>): void {
    this.emit('event', { event, data, migrationEvent: true });
  }
}
