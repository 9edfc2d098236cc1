/**
 * Following a migration from outside, as a QMP client: set the parameters,
 * take a control-latency baseline, start the migration, then poll it until
 * it ends (`ferry migrate`, `ferry demo` and the benchmark scenarios).
 */
import type { QmpClient } from '../control/qmp-client.js';
import type { MigrateInfo } from '../control/query-migrate.js';
import type { PassRecord } from '../migration/stats.js';
import type { MigrationProgress } from './progress.js';
import { sleep } from '../migration/waiter.js';
import type { LatencyProbe, LatencySummary } from './stall-probe.js';

export interface MigrationRun {
  readonly info: MigrateInfo;
  readonly passes: PassRecord[];
  readonly timeline: { atMs: number; info: MigrateInfo }[];
  readonly migrateAtMs: number;
  readonly latency: { baseline: LatencySummary; during: LatencySummary };
  /** The downtime limit in force when the migration ended (query-migrate-parameters). */
  readonly downtimeLimitMs: number | undefined;
}

/**
 * Migrate through QMP and follow it: a control-latency baseline first, then
 * `migrate`, then query-migrate and the passes that are new every 100 ms
 * (progress display, timeline) until it ends. The probe keeps running throughout and stops at the end.
 */
export async function followMigration(
  qmp: QmpClient,
  probe: LatencyProbe,
  o: { to: string; params: Record<string, number | boolean | string>; verify: boolean; autoConverge?: boolean; dirtyLimit?: boolean; multifd?: boolean; xbzrle?: boolean; postcopy?: boolean; baselineMs: number; progress: MigrationProgress; onMigrate?: () => Promise<void> },
): Promise<MigrationRun> {
  if (Object.keys(o.params).length > 0) await qmp.execute('migrate-set-parameters', o.params);
  // auto-converge only when asked: a capability set over QMP beforehand stays as it is (capabilities persist, as QEMU's).
  const autoConverge = o.autoConverge === undefined ? [] : [{ capability: 'auto-converge', state: o.autoConverge }];
  const dirtyLimit = o.dirtyLimit === undefined ? [] : [{ capability: 'dirty-limit', state: o.dirtyLimit }];
  const postcopy = o.postcopy === undefined ? [] : [{ capability: 'postcopy-ram', state: o.postcopy }];
  const multifd = o.multifd === undefined ? [] : [{ capability: 'multifd', state: o.multifd }];
  const xbzrle = o.xbzrle === undefined ? [] : [{ capability: 'xbzrle', state: o.xbzrle }];
  await qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'x-ferry-verify', state: o.verify }, ...autoConverge, ...dirtyLimit, ...postcopy, ...multifd, ...xbzrle] });
  probe.start();
  await sleep(o.baselineMs);
  await o.onMigrate?.();
  const migrateAtMs = probe.now();
  await qmp.execute('migrate', { uri: o.to });
  let info: MigrateInfo = { status: 'setup' };
  const passes: PassRecord[] = [];
  const timeline: { atMs: number; info: MigrateInfo }[] = [];
  for (let i = 0; i < 10_000_000; i++) {
    info = (await qmp.execute('query-migrate')) as MigrateInfo;
    // Only the passes not seen yet: the history of a migration that never converges grows without bound.
    const since = (passes.at(-1)?.pass ?? 0) + 1;
    passes.push(...((await qmp.execute('x-ferry-query-passes', { since })) as PassRecord[]));
    timeline.push({ atMs: probe.now(), info });
    o.progress.update(info, passes);
    if (info.status === 'completed' || info.status === 'failed' || info.status === 'cancelled') break;
    await sleep(100);
  }
  o.progress.finish();
  const endAt = probe.now();
  await probe.stop();
  const parameters = (await qmp.execute('query-migrate-parameters')) as { 'downtime-limit'?: number };
  return {
    info, passes, timeline, migrateAtMs, latency: { baseline: probe.between(0, migrateAtMs), during: probe.between(migrateAtMs, endAt) },
    downtimeLimitMs: parameters['downtime-limit'],
  };
}
