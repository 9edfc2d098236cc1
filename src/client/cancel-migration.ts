/**
 * A source's migration seen from outside, as a QMP client: whether one is
 * in progress, and cancelling it (`ferry cancel`, Ctrl-C on `ferry
 * migrate`, a refused second `ferry migrate`). The phases:
 *
 *   idle       no migration, or the last one ended: nothing to cancel
 *   before-go  setup, active, or switching over before the commit:
 *              `migrate_cancel` ends it and the source runs on, intact
 *   past-go    the source committed (run state postmigrate) and the
 *              migration has not ended: too late to cancel; the source may
 *              hold the only copy until the destination confirms, and the
 *              migration completes or fails on its own
 */
import type { QmpClient } from '../control/qmp-client.js';
import type { MigrateInfo } from '../control/query-migrate.js';
import { isFinished } from '../migration/status.js';
import { sleep } from '../migration/waiter.js';

export type MigrationPhase = 'idle' | 'before-go' | 'past-go';

export interface MigrationView {
  readonly phase: MigrationPhase;
  /** query-migrate's answer (null before any migration). */
  readonly info: MigrateInfo | null;
  /** The guest's run state (query-status). */
  readonly runState: string;
}

/** How long a cancelled migration may take to end, ms: cancel acts at the next step, or within the switchover's timeouts. */
export const CANCEL_END_MS = 30_000;

/** The source's migration, its phase and its guest's run state. */
export async function viewMigration(qmp: QmpClient): Promise<MigrationView> {
  const runState = ((await qmp.execute('query-status')) as { status: string }).status;
  const answer = (await qmp.execute('query-migrate')) as MigrateInfo | Record<string, never>;
  const info = 'status' in answer ? (answer as MigrateInfo) : null;
  if (info === null || info.status === 'none' || isFinished(info.status)) return { phase: 'idle', info, runState };
  return { phase: runState === 'postmigrate' ? 'past-go' : 'before-go', info, runState };
}

/** One line naming a migration: its status, pass and time so far. */
export function describeMigration(info: MigrateInfo): string {
  const pass = info['x-ferry-progress']?.pass;
  const seconds = info['total-time'] === undefined ? '' : `, ${(info['total-time'] / 1000).toFixed(1)} s so far`;
  return `status ${info.status}${pass === undefined ? '' : `, pass ${pass}`}${seconds}`;
}

/** Poll query-migrate until the migration has ended; null if it has not within `ms`. */
export async function waitMigrationEnd(qmp: QmpClient, ms = CANCEL_END_MS): Promise<MigrateInfo | null> {
  const deadline = performance.now() + ms;
  for (;;) {
    const info = (await qmp.execute('query-migrate')) as MigrateInfo;
    if (isFinished(info.status)) return info;
    if (performance.now() >= deadline) return null;
    await sleep(50);
  }
}

/**
 * Cancel the migration if it is before GO (`migrate_cancel`); answers the
 * phase it found, so the caller says what happened ('before-go': cancel
 * sent; 'past-go' and 'idle': nothing sent).
 */
export async function cancelMigration(qmp: QmpClient): Promise<MigrationView> {
  const view = await viewMigration(qmp);
  if (view.phase === 'before-go') await qmp.execute('migrate_cancel');
  return view;
}
