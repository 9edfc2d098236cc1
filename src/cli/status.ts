/** `ferry status`: what a guest behind a QMP socket is doing, and its migration if any. */
import { parseArgs } from 'node:util';
import { QmpClient } from '../control/qmp-client.js';
import type { MigrateInfo } from '../control/query-migrate.js';
import { summaryTable } from '../client/report.js';

export const STATUS_USAGE = `usage: ferry status --qmp CONTROL [--json]

Show the run state of the guest behind a QMP control socket and its
current or last migration.

  --qmp CONTROL   unix:PATH or tcp:HOST:PORT
  --json          print {"status": ..., "migration": ...} as JSON
  -h, --help      this text`;

export async function statusCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { qmp: { type: 'string' }, json: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h', default: false } },
  });
  if (values.help) {
    console.log(STATUS_USAGE);
    return 0;
  }
  if (values.qmp === undefined) {
    console.error(`ferry status: --qmp CONTROL is required\n\n${STATUS_USAGE}`);
    return 2;
  }
  const qmp = await QmpClient.connect(values.qmp);
  try {
    const status = (await qmp.execute('query-status')) as { status: string };
    const migration = (await qmp.execute('query-migrate')) as MigrateInfo | Record<string, never>;
    const parameters = (await qmp.execute('query-migrate-parameters')) as { 'downtime-limit'?: number };
    if (values.json) {
      console.log(JSON.stringify({ status: status.status, migration }, null, 2));
    } else {
      console.log(`guest ${status.status}`);
      if ('status' in migration) for (const line of summaryTable(migration as MigrateInfo, null, { downtimeLimitMs: parameters['downtime-limit'] })) console.log(line);
      else console.log('  no migration yet');
    }
    return 0;
  } finally {
    qmp.close();
  }
}
