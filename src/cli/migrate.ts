/**
 * `ferry migrate`: migrate a running guest through its control socket, as
 * a QMP client (so it works against any guest that serves QMP): set the
 * parameters, start the migration, follow it with a live progress bar,
 * and end with QEMU's figures and the source's control latency, measured
 * from here by a stall probe before (baseline) and during the migration.
 */
import { writeFileSync } from 'node:fs';
import { QmpClient } from '../control/qmp-client.js';
import { QmpError } from '../control/qmp-commands.js';
import type { MigrateInfo } from '../control/query-migrate.js';
import { sleep } from '../migration/waiter.js';
import { isCancelled } from '../errors.js';
import { describeMigration, viewMigration } from '../client/cancel-migration.js';
import { onInterrupt } from '../client/interrupts.js';
import { MigrateInterrupts } from '../client/migrate-interrupts.js';
import { StallProbe } from '../client/stall-probe.js';
import { followMigration } from '../client/follow-migration.js';
import { parseCommandLine } from './options.js';
import { COMMAND_FLAGS, parseNumberFlag } from './number-flags.js';
import { parseControlUri, parseUri } from '../transport/uri.js';
import { parsePolicy, policyUsage } from './policy-flag.js';
import { COMMAND_LINE_DEFAULTS, parameterFlags, qmpArguments } from './parameter-flags.js';
import { MigrationProgress } from '../client/progress.js';
import { renderReport } from '../client/html-report.js';
import { summaryTable } from '../client/report.js';

/** The source's migration parameters (--downtime-limit, ...; --timeout 300 unless given), sent with migrate-set-parameters. */
const PARAMETER_FLAGS = parameterFlags('source', undefined, COMMAND_LINE_DEFAULTS);

export const MIGRATE_USAGE = `usage: ferry migrate --qmp CONTROL --to URI [options]

Migrate the guest behind a QMP control socket (any guest serving QMP).

  --qmp CONTROL        the guest's control socket: unix:PATH or tcp:HOST:PORT
  --to URI             where to: tcp:HOST:PORT, unix:PATH or file:PATH
${PARAMETER_FLAGS.usage(24)}
${policyUsage(24)}
                        (parameters not given keep the guest's settings, but for --timeout)
  --verify             digest the pages sent and loaded; the destination resumes only if equal
  --auto-converge      throttle the vCPUs while the guest dirties faster than the migration sends
                       (QEMU's auto-converge; tuned by the --cpu-throttle-* flags)
  --dirty-limit        throttle only the vCPUs that dirty faster than --vcpu-dirty-limit, each by its own rate
                       (QEMU 8.1's dirty-limit, same trigger; not with --auto-converge)
  --multifd            send the pages on --multifd-channels connections, each with its own thread
                       (QEMU's multifd; not with --postcopy or to file:)
  --xbzrle             after the first pass, send pages sent before as deltas against a cache of
                       --xbzrle-cache-size (QEMU's xbzrle; with --multifd each channel has its share)
  --postcopy           allow post-copy (QEMU's postcopy-ram): started by the policy (--policy postcopy=on or
                       postcopy-after=S) or over QMP (migrate-start-postcopy); if either side dies then, the guest is lost
  --baseline S         seconds of control-latency baseline before migrating (default 0.5)
  --report FILE        write a self-contained HTML report with charts (however it ends)
  --json               print the final figures as JSON
  --force              let Ctrl-C/SIGTERM stop following past GO (the migration then ends on its own)
  -h, --help           this text

Ctrl-C (SIGINT) or SIGTERM cancels the migration (migrate_cancel), says so,
waits for it to end, and exits 1, as virsh migrate does; past GO it is too
late to cancel: that is refused with a message, and the command follows the
migration to its end. A guest that is already migrating is refused with one
line, and nothing is sent to it.

exit codes: 0 completed, 1 failed, cancelled (also by Ctrl-C/SIGTERM) or
  refused (already migrating), 2 bad usage or unreachable`;

/** `ferry migrate`'s command line, and the migration parameters on it (checked; errors name the flag). */
export function parseMigrateArgs(argv: string[]) {
  const { values } = parseCommandLine(argv, {
    qmp: { type: 'string' },
    to: { type: 'string' },
    ...PARAMETER_FLAGS.options,
    policy: { type: 'string' },
    verify: { type: 'boolean', default: false },
    'auto-converge': { type: 'boolean', default: false },
    multifd: { type: 'boolean', default: false },
    xbzrle: { type: 'boolean', default: false },
    'dirty-limit': { type: 'boolean', default: false },
    postcopy: { type: 'boolean', default: false },
    force: { type: 'boolean', default: false },
    baseline: { type: 'string', default: '0.5' },
    report: { type: 'string' },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  });
  return { values, parameters: values.help ? {} : { ...PARAMETER_FLAGS.parse(values), ...parsePolicy(values.policy) } };
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
  const baselineMs = parseNumberFlag(COMMAND_FLAGS.baseline, values.baseline) * 1000;
  // Both addresses are checked before connecting: a bad --to is not found after parameters were sent.
  parseControlUri(values.qmp);
  parseUri(values.to);

  const qmp = await QmpClient.connect(values.qmp);
  try {
    // A second migrate changes nothing: refused before any parameter or capability is sent.
    const found = await viewMigration(qmp);
    if (found.phase !== 'idle') {
      console.error(`ferry migrate: refused: this guest is already migrating (${describeMigration(found.info!)}); ` +
        `nothing was changed ('ferry cancel --qmp ${values.qmp}' cancels it)`);
      return 1;
    }
    if (!['running', 'paused', 'prelaunch'].includes(found.runState)) {
      console.error(`ferry migrate: refused: the guest is ${found.runState} and cannot be migrated; nothing was changed`);
      return 1;
    }
    return await follow(qmp, values, params, baselineMs);
  } finally {
    qmp.close();
  }
}

type MigrateValues = ReturnType<typeof parseMigrateArgs>['values'];

/** Start the migration and follow it to its end, Ctrl-C/SIGTERM cancelling it (migrate-interrupts.ts); print the figures. */
async function follow(qmp: QmpClient, values: MigrateValues, params: Record<string, number | boolean | string>, baselineMs: number): Promise<number> {
  const to = values.to!;
  const probe = await StallProbe.connect(values.qmp!);
  const interrupts = new MigrateInterrupts(qmp, values.force, (line) => console.error(line));
  const unguard = onInterrupt((signal) => void interrupts.handle(signal));
  try {
    const following = followMigration(qmp, probe, {
      to, params, verify: values.verify, autoConverge: values['auto-converge'] ? true : undefined,
      dirtyLimit: values['dirty-limit'] ? true : undefined, multifd: values.multifd ? true : undefined, xbzrle: values.xbzrle ? true : undefined, postcopy: values.postcopy ? true : undefined, baselineMs, progress: new MigrationProgress(process.stdout, values.json),
      onMigrate: async () => interrupts.beforeMigrate(),
    });
    following.catch(() => {}); // when abandoned, its next query fails on the closed connection
    const run = await Promise.race([following, interrupts.abandoned.then(() => null)]).catch((err: unknown) => {
      if (isCancelled(err) || err instanceof QmpError) return err as Error;
      throw err;
    });
    if (run === null || run instanceof Error) {
      if (run !== null) console.error(`ferry migrate: ${run.message}`);
      if (values.report !== undefined) await reportUnfollowed(qmp, probe, values.report, to, run?.message ?? 'no longer followed');
      return 1;
    }
    const { info, passes, latency } = run;
    if (values.report !== undefined) {
      writeFileSync(values.report, renderReport({ title: `ferry migrate to ${to}`, ...run, probe: probe.samples }));
    }
    if (values.json) {
      console.log(JSON.stringify({ ...info, passes, controlLatency: latency }, null, 2));
    } else {
      for (const line of summaryTable(info, latency, run)) console.log(line);
      if (values.report !== undefined) console.log(`report written to ${values.report}`);
      // The last lines say how it ended, when it did not complete (e.g. cancelled by --timeout, and why).
      if (info.status !== 'completed') console.log(`ferry migrate: migration ${info.status}${info['error-desc'] === undefined ? '' : `: ${info['error-desc']}`}`);
      if (interrupts.signal !== null) console.log(`Migration: [${info.status}] after ${interrupts.signal}`);
    }
    return info.status === 'completed' ? 0 : 1;
  } finally {
    unguard();
    interrupts.dispose();
    await probe.stop().catch(() => {}); // still probing when the migration never started or was abandoned
    probe.close();
  }
}

/**
 * The report of a migration not followed to its end (`migrate` refused, or
 * following abandoned): the source's last query-migrate if it answers within
 * a few seconds, with `why` as its error when it has none, and the latency
 * samples taken so far.
 */
async function reportUnfollowed(qmp: QmpClient, probe: StallProbe, file: string, to: string, why: string): Promise<void> {
  const asked = qmp.execute('query-migrate') as Promise<MigrateInfo>;
  asked.catch(() => {});
  const last = await Promise.race([asked, sleep(5000).then(() => null)]).catch(() => null);
  const info: MigrateInfo = { ...(last ?? { status: 'failed' }) };
  info['error-desc'] ??= why;
  const now = probe.now();
  const latency = { baseline: probe.between(0, now), during: probe.between(now, now) };
  writeFileSync(file, renderReport({ title: `ferry migrate to ${to}`, info, passes: [], timeline: [], probe: probe.samples, migrateAtMs: now, latency }));
  console.error(`report written to ${file}`);
}
