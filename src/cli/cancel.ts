/**
 * `ferry cancel`: cancel the migration of the guest behind a QMP control
 * socket (QMP `migrate_cancel`, as `virsh domjobabort`), wait (bounded)
 * for it to end, and print the state it left.
 */
import { parseArgs } from 'node:util';
import { QmpClient } from '../control/qmp-client.js';
import { CANCEL_END_MS, cancelMigration, describeMigration, waitMigrationEnd } from '../client/cancel-migration.js';

export const CANCEL_USAGE = `usage: ferry cancel --qmp CONTROL

Cancel the migration of the guest behind a QMP control socket (migrate_cancel),
wait for it to end, and print the state it left. Before GO the source guest
runs on, intact; past GO it is too late: the migration completes or fails
on its own, and nothing is sent.

  --qmp CONTROL   unix:PATH or tcp:HOST:PORT
  -h, --help      this text

exit codes: 0 cancelled, 1 nothing to cancel or too late (past GO, or it
  did not end within ${CANCEL_END_MS / 1000} s), 2 bad usage or unreachable`;

export async function cancelCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { qmp: { type: 'string' }, help: { type: 'boolean', short: 'h', default: false } },
  });
  if (values.help) {
    console.log(CANCEL_USAGE);
    return 0;
  }
  if (values.qmp === undefined) {
    console.error(`ferry cancel: --qmp CONTROL is required\n\n${CANCEL_USAGE}`);
    return 2;
  }
  const qmp = await QmpClient.connect(values.qmp);
  try {
    const found = await cancelMigration(qmp);
    if (found.phase === 'idle') {
      const last = found.info === null ? 'no migration yet' : `the last one ended ${found.info.status}`;
      console.log(`ferry cancel: no migration in progress (${last}); guest ${found.runState}`);
      return 1;
    }
    if (found.phase === 'past-go') {
      console.log(`ferry cancel: too late to cancel: the migration is past GO (${describeMigration(found.info!)}); ` +
        'it completes or fails on its own, and the source may hold the only copy until then');
      return 1;
    }
    console.log(`ferry cancel: migrate_cancel sent (${describeMigration(found.info!)}); waiting for the migration to end`);
    const end = await waitMigrationEnd(qmp);
    const runState = ((await qmp.execute('query-status')) as { status: string }).status;
    if (end === null) {
      console.log(`ferry cancel: the migration has not ended within ${CANCEL_END_MS / 1000} s; guest ${runState}`);
      return 1;
    }
    console.log(`migration ${end.status}${end['error-desc'] === undefined ? '' : `: ${end['error-desc']}`}; guest ${runState}`);
    return end.status === 'cancelled' ? 0 : 1;
  } finally {
    qmp.close();
  }
}
