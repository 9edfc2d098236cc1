/**
 * `ferry migrate`: migrate a running guest through its control socket, as
 * a QMP client (so it works against any guest that serves QMP): set the
 * parameters, start the migration, follow it with a live progress bar,
 * and end with QEMU's figures and the source's control latency, measured
 * from here by a stall probe before (baseline) and during the migration.
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { QmpClient } from '../control/qmp-client.js';
import { StallProbe } from '../client/stall-probe.js';
import { followMigration } from '../client/follow-migration.js';
import { parseNumber } from './options.js';
import { parameterFlags, qmpArguments } from './parameter-flags.js';
import { MigrationProgress } from '../client/progress.js';
import { renderReport } from '../client/html-report.js';
import { summaryTable } from '../client/report.js';

/** The source's migration parameters (--downtime-limit, ...), sent with migrate-set-parameters. */
const PARAMETER_FLAGS = parameterFlags('source');

export const MIGRATE_USAGE = `usage: ferry migrate --qmp CONTROL --to URI [options]

Migrate the guest behind a QMP control socket (any guest serving QMP).

  --qmp CONTROL        the guest's control socket: unix:PATH or tcp:HOST:PORT
  --to URI             where to: tcp:HOST:PORT, unix:PATH or file:PATH
${PARAMETER_FLAGS.usage(24)}
                        (parameters not given keep the guest's settings)
  --verify             digest RAM on both sides at switchover
  --baseline S         seconds of control-latency baseline before migrating (default 0.5)
  --report FILE        write a self-contained HTML report with charts
  --json               print the final figures as JSON
  -h, --help           this text

exit codes: 0 completed, 1 failed or cancelled, 2 bad usage or unreachable`;

/** `ferry migrate`'s command line, and the migration parameters on it (checked; errors name the flag). */
export function parseMigrateArgs(argv: string[]) {
  const { values } = parseArgs({
    args: argv,
    options: {
      qmp: { type: 'string' },
      to: { type: 'string' },
      ...PARAMETER_FLAGS.options,
      verify: { type: 'boolean', default: false },
      baseline: { type: 'string', default: '0.5' },
      report: { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  return { values, parameters: values.help ? {} : PARAMETER_FLAGS.parse(values) };
}

export async function migrateCommand(argv: string[]): Promise<number> {
  const { values, parameters } = parseMigrateArgs(argv);
  if (values.help) {
    console.log(MIGRATE_USAGE);
    return 0;
  }
  if (values.qmp === undefined || values.to === undefined) {
    console.error(`ferry migrate: --qmp CONTROL and --to URI are required\n\n${MIGRATE_USAGE}`);
    return 2;
  }
  const params = qmpArguments(parameters);
  const baselineMs = parseNumber('--baseline', values.baseline, 0, 3600) * 1000;

  const qmp = await QmpClient.connect(values.qmp);
  const probe = await StallProbe.connect(values.qmp);
  try {
    const run = await followMigration(qmp, probe, {
      to: values.to, params, verify: values.verify, baselineMs, progress: new MigrationProgress(process.stdout, values.json),
    });
    const { info, passes, latency } = run;
    if (values.report !== undefined) {
      writeFileSync(values.report, renderReport({ title: `ferry migrate to ${values.to}`, ...run, probe: probe.samples }));
    }
    if (values.json) {
      console.log(JSON.stringify({ ...info, passes, controlLatency: latency }, null, 2));
    } else {
      for (const line of summaryTable(info, latency, run)) console.log(line);
      if (values.report !== undefined) console.log(`report written to ${values.report}`);
    }
    return info.status === 'completed' ? 0 : 1;
  } finally {
    probe.close();
    qmp.close();
  }
}
