/**
 * `ferry migrate`: migrate a running guest through its control socket, as
 * a QMP client (so it works against any guest that serves QMP): set the
 * parameters, start the migration, follow it pass by pass, summarise.
 */
import { parseArgs } from 'node:util';
import { QmpClient } from '../control/qmp-client.js';
import type { PassRecord } from '../migration/stats.js';
import { parseCount, sleep } from './options.js';
import { passLine } from './report.js';
import { formatBytes, parseSize } from './size.js';

export const MIGRATE_USAGE = `usage: ferry migrate --qmp CONTROL --to URI [options]

Migrate the guest behind a QMP control socket.

  --qmp CONTROL        the guest's control socket: unix:PATH or tcp:HOST:PORT
  --to URI             where to: tcp:HOST:PORT, unix:PATH or file:PATH
  --downtime-limit MS  longest acceptable pause (default: the guest's setting)
  --max-bandwidth SIZE per second, e.g. 100M (0: unlimited)
  --verify             digest RAM on both sides at switchover
  --json               print the final query-migrate answer as JSON
  -h, --help           this text`;

interface MigrateInfo {
  status: string;
  'total-time'?: number;
  downtime?: number;
  'error-desc'?: string;
  ram?: { transferred: number; normal: number; duplicate: number; mbps: number };
}

export async function migrateCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      qmp: { type: 'string' },
      to: { type: 'string' },
      'downtime-limit': { type: 'string' },
      'max-bandwidth': { type: 'string' },
      verify: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log(MIGRATE_USAGE);
    return 0;
  }
  if (values.qmp === undefined || values.to === undefined) {
    console.error(`ferry migrate: --qmp CONTROL and --to URI are required\n\n${MIGRATE_USAGE}`);
    return 2;
  }
  const params: Record<string, number> = {};
  if (values['downtime-limit'] !== undefined) params['downtime-limit'] = parseCount('--downtime-limit', values['downtime-limit'], 1, 2_000_000);
  if (values['max-bandwidth'] !== undefined) params['max-bandwidth'] = parseSize(values['max-bandwidth'], '--max-bandwidth');
  const log = values.json ? () => {} : (s: string) => console.log(s);

  const qmp = await QmpClient.connect(values.qmp);
  try {
    if (Object.keys(params).length > 0) await qmp.execute('migrate-set-parameters', params);
    await qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'x-ferry-verify', state: values.verify }] });
    await qmp.execute('migrate', { uri: values.to });
    log(`migrating to ${values.to}`);
    let shown = 0;
    let info: MigrateInfo = { status: 'setup' };
    for (let i = 0; i < 10_000_000; i++) {
      info = (await qmp.execute('query-migrate')) as MigrateInfo;
      const passes = (await qmp.execute('x-ferry-query-passes')) as PassRecord[];
      for (; shown < passes.length; shown++) log(passLine(passes[shown]));
      if (info.status === 'completed' || info.status === 'failed' || info.status === 'cancelled') break;
      await sleep(100);
    }
    if (values.json) {
      console.log(JSON.stringify(info, null, 2));
    } else {
      log(`migration ${info.status}${info['error-desc'] === undefined ? '' : `: ${info['error-desc']}`}`);
      if (info.ram !== undefined) {
        log(`  total time ${info['total-time']} ms, downtime ${info.downtime ?? '-'} ms, ` +
          `${formatBytes(info.ram.transferred)} sent (${info.ram.normal} pages + ${info.ram.duplicate} zero)`);
      }
    }
    return info.status === 'completed' ? 0 : 1;
  } finally {
    qmp.close();
  }
}
