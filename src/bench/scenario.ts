/**
 * One benchmark scenario run: a source process (`ferry run --qmp`) and a
 * destination process (`ferry incoming --qmp`) on loopback, driven through
 * QMP as a management tool would. A stall probe measures the source's
 * control latency before the migration (the baseline: the same guest
 * workload, plus as many spinning threads as the migration adds busy ones)
 * and during it; CPU time of each process is read from /proc.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startFerry, type FerryChild } from '../client/children.js';
import { followMigration } from '../client/follow-migration.js';
import { MigrationProgress } from '../client/progress.js';
import { sleep } from '../migration/waiter.js';
import { QmpClient } from '../control/qmp-client.js';
import type { CompressionInfo, MigrateInfo } from '../control/query-migrate.js';
import { ProbeProcess } from '../client/probe-process.js';
import type { LatencySummary } from '../client/stall-probe.js';
import type { PassRecord, SwitchoverRecord } from '../migration/stats.js';
import type { PreallocFigures } from '../migration/preallocation.js';

export interface ScenarioSpec {
  readonly name: string;
  /** `ferry run` arguments for the guest (size, vCPUs, workload). */
  readonly guest: readonly string[];
  /** Migrate once the guest has written at least this many pages (a fill done); 0: at once. */
  readonly readyPages: number;
  /** Migration parameters, by QMP name. */
  /** QMP migrate-set-parameters arguments (switches as booleans, as QMP takes them). */
  readonly params: Readonly<Record<string, number | boolean | string>>;
  /** Capabilities to turn on (QMP names). */
  readonly capabilities?: readonly string[];
  /** Control-latency baseline before `migrate`, ms. */
  readonly baselineMs: number;
  /**
   * Busy threads added during the baseline, so that it has the same number
   * of busy threads as the migration (DESIGN.md invariant 5): the migration
   * thread and the destination's loader (default 2).
   */
  readonly baselineBusyThreads?: number;
  /** Cancel the migration after this long (a guest that does not converge), ms; 0: never. */
  readonly cancelAfterMs?: number;
  /** `ferry incoming` arguments for the destination (e.g. --prealloc). */
  readonly destination?: readonly string[];
  /** Network namespace commands to run the processes in (source, destination), and the address to listen on. */
  readonly netns?: { readonly source: string; readonly destination: string; readonly listenHost: string };
}

export interface RunResult {
  readonly status: string;
  readonly error: string | null;
  readonly totalMs: number;
  readonly setupMs: number;
  readonly downtimeMs: number;
  readonly bytes: number;
  /** Bytes on the wire per second of the migration after setup. */
  readonly throughputGBps: number;
  readonly passes: number;
  readonly passRecords: readonly PassRecord[];
  /** Guest page writes per second in the baseline and during the migration. */
  readonly guestPagesPerSecBefore: number;
  readonly guestPagesPerSecDuring: number;
  readonly latency: { readonly baseline: LatencySummary; readonly during: LatencySummary };
  /** The stall probe's own scheduling priority (see probe-process.ts). */
  readonly probePriority: string;
  /** CPU time (user + system) of each process from `migrate` to the end, ms (10 ms resolution). */
  readonly sourceCpuMs: number;
  readonly destinationCpuMs: number;
  /** Bandwidth measured by the source at the end, bytes/s. */
  readonly bandwidthBytesPerSec: number;
  /** Post-copy's figures, when it ran: the destination's blocked time (all vCPUs together, and per vCPU), request latency, the source's requests and bytes. */
  readonly postcopy: {
    readonly blocktimeMs: number | null; readonly vcpuBlocktimeMs: readonly number[] | null;
    readonly latencyP50Ms: number | null; readonly latencyP99Ms: number | null; readonly requests: number | null; readonly bytes: number | null;
  } | null;
  /** The policy's remedy at the end and why (x-ferry-remedy), and the throttle at the last query (null: none reported). */
  readonly remedy: { readonly name: string; readonly why: string } | null;
  /** Bytes left when the source decided to switch over: dirty pages and bytes in flight after the last live pass. */
  readonly remainingAtSwitchoverBytes: number;
  /** Where the switchover's time went (completed runs). */
  readonly switchover: SwitchoverRecord | null;
  /** The destination's preallocation, its time apart (x-ferry-prealloc; null or absent: not asked). */
  readonly prealloc?: PreallocFigures | null;
  /** multifd-compression's figures (query-migrate's compression) 1 s after `migrate` and at the end; null without compression. */
  readonly compression?: { readonly atOneSecond: CompressionInfo | null; readonly end: CompressionInfo } | null;
}

/** CPU time of a process, ms (utime + stime from /proc/PID/stat, in clock ticks of 10 ms). */
function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

async function guestInfo(qmp: QmpClient): Promise<{ status: string; 'pages-written': number }> {
  return (await qmp.execute('x-ferry-query-guest')) as { status: string; 'pages-written': number };
}

/** `n` processes that spin until stopped, or until this process exits (the baseline's stand-ins for the migration's busy threads). */
function startBusyThreads(n: number): { stop(): Promise<void> } {
  const children = Array.from({ length: n }, () => spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' }));
  const killAll = () => {
    for (const c of children) c.kill('SIGKILL');
  };
  process.once('exit', killAll);
  return {
    stop: async () => {
      process.off('exit', killAll);
      await Promise.all(children.map((c) => new Promise<void>((resolve) => {
        if (c.exitCode !== null || c.signalCode !== null) resolve();
        else {
          c.once('exit', () => resolve());
          c.kill('SIGKILL');
        }
      })));
    },
  };
}

export async function runScenario(spec: ScenarioSpec, timeoutMs = 300_000): Promise<RunResult> {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-bench-'));
  const children: FerryChild[] = [];
  const clients: QmpClient[] = [];
  const deadline = performance.now() + timeoutMs;
  let busy: { stop(): Promise<void> } | null = null;
  let probe: ProbeProcess | null = null;
  try {
    const srcControl = `unix:${join(dir, 'source.qmp')}`;
    const dstControl = `unix:${join(dir, 'destination.qmp')}`;
    const prefix = (ns: string | undefined) => (ns === undefined ? [] : ['--netns', ns]);
    // Across namespaces the destination listens on a non-loopback address: a benchmark on a private veth pair, hence --insecure.
    const insecure = spec.netns === undefined ? [] : ['--insecure'];
    // Both started at once (each takes a second or two to load; nothing is measured yet); each one started is stopped below.
    const started = await Promise.allSettled([
      startFerry(['run', ...spec.guest, '--qmp', srcControl], /QMP control socket on/, 60_000, prefix(spec.netns?.source)),
      startFerry(['incoming', '--qmp', dstControl, ...insecure, ...(spec.destination ?? [])], /QMP control socket on/, 60_000, prefix(spec.netns?.destination)),
    ]);
    for (const s of started) if (s.status === 'fulfilled') children.push(s.value);
    for (const s of started) if (s.status === 'rejected') throw s.reason;
    const [srcPid, dstPid] = children.map((c) => c.pid);
    const src = await QmpClient.connect(srcControl);
    const dst = await QmpClient.connect(dstControl);
    clients.push(src, dst);
    while ((await guestInfo(src))['pages-written'] < spec.readyPages) {
      if (performance.now() > deadline) throw new Error(`${spec.name}: the guest did not write ${spec.readyPages} pages in time`);
      await sleep(50);
    }
    // Post-copy's blocked time is the destination's figure, with its capability (as QEMU's postcopy-blocktime).
    if (spec.capabilities?.includes('postcopy-ram') === true) {
      await dst.execute('migrate-set-capabilities', { capabilities: [{ capability: 'postcopy-blocktime', state: true }] });
    }
    await dst.execute('migrate-incoming', { uri: `tcp:${spec.netns?.listenHost ?? '127.0.0.1'}:0` });
    const listening = (await dst.execute('query-migrate')) as { 'socket-address': { host: string; port: string }[] };
    const to = `tcp:${listening['socket-address'][0].host}:${listening['socket-address'][0].port}`;
    if (spec.capabilities !== undefined && spec.capabilities.length > 0) {
      await src.execute('migrate-set-capabilities', { capabilities: spec.capabilities.map((capability) => ({ capability, state: true })) });
    }
    // The guest's own rate first, with nothing else running.
    const atStart = { t: performance.now(), pages: (await guestInfo(src))['pages-written'] };
    await sleep(300);
    const atBaseline = { t: performance.now(), pages: (await guestInfo(src))['pages-written'] };
    probe = await ProbeProcess.spawn(srcControl, { realtime: true });
    busy = startBusyThreads(spec.baselineBusyThreads ?? 2);
    let atMigrate = atBaseline;
    let cpu0 = [0, 0];
    let cancelTimer: NodeJS.Timeout | null = null;
    let oneSecond: Promise<CompressionInfo | null> = Promise.resolve(null);
    const run = await followMigration(src, probe, {
      to, params: { ...spec.params }, verify: false, baselineMs: spec.baselineMs, progress: new MigrationProgress(process.stdout, true),
      onMigrate: async () => {
        await busy?.stop();
        atMigrate = { t: performance.now(), pages: (await guestInfo(src))['pages-written'] };
        cpu0 = [cpuMs(srcPid), cpuMs(dstPid)];
        if ((spec.cancelAfterMs ?? 0) > 0) cancelTimer = setTimeout(() => void src.execute('migrate_cancel').catch(() => {}), spec.cancelAfterMs);
        if (spec.params['multifd-compression'] !== undefined) {
          oneSecond = sleep(1000).then(async () => ((await src.execute('query-migrate')) as MigrateInfo).compression ?? null).catch(() => null);
        }
      },
    });
    if (cancelTimer !== null) clearTimeout(cancelTimer);
    probe.close();
    const cpu1 = [cpuMs(srcPid), cpuMs(dstPid)];
    const atEnd = { t: performance.now(), pages: (await guestInfo(src))['pages-written'] };
    let dstInfo = (await dst.execute('query-migrate')) as MigrateInfo;
    for (let i = 0; i < 500 && !['completed', 'failed', 'cancelled'].includes(dstInfo.status); i++) {
      await sleep(20);
      dstInfo = (await dst.execute('query-migrate')) as MigrateInfo;
    }
    const info = run.info;
    const status = info.status === 'completed' && dstInfo.status !== 'completed' ? `destination ${dstInfo.status}` : info.status;
    const totalMs = info['total-time'] ?? 0;
    const setupMs = info['setup-time'] ?? 0;
    const bytes = info.ram?.transferred ?? 0;
    const last = run.passes[run.passes.length - 1];
    const rate = (a: { t: number; pages: number }, b: { t: number; pages: number }) => ((b.pages - a.pages) * 1000) / Math.max(b.t - a.t, 1);
    await Promise.allSettled([src.execute('quit'), dst.execute('quit')]);
    return {
      status, error: info['error-desc'] ?? null, totalMs, setupMs, downtimeMs: info.downtime ?? 0, bytes,
      throughputGBps: bytes / Math.max(totalMs - setupMs, 1e-3) / 1e6,
      passes: run.passes.length, passRecords: run.passes,
      guestPagesPerSecBefore: rate(atStart, atBaseline), guestPagesPerSecDuring: rate(atMigrate, atEnd),
      latency: run.latency,
      probePriority: probe.priority,
      sourceCpuMs: cpu1[0] - cpu0[0], destinationCpuMs: cpu1[1] - cpu0[1],
      bandwidthBytesPerSec: info['x-ferry-progress']?.['bandwidth-bytes-per-sec'] ?? 0,
      remainingAtSwitchoverBytes: (last?.remainingPages ?? 0) * 4096 + (last?.inflightBytes ?? 0),
      switchover: info['x-ferry-switchover'] ?? null,
      remedy: info['x-ferry-remedy'] ?? null,
      prealloc: dstInfo['x-ferry-prealloc'] ?? null,
      compression: info.compression === undefined ? null : { atOneSecond: await oneSecond, end: info.compression },
      postcopy: dstInfo['x-ferry-postcopy-latency'] === undefined ? null : {
        blocktimeMs: dstInfo['postcopy-blocktime'] ?? null, vcpuBlocktimeMs: dstInfo['postcopy-vcpu-blocktime'] ?? null,
        latencyP50Ms: dstInfo['x-ferry-postcopy-latency'].p50, latencyP99Ms: dstInfo['x-ferry-postcopy-latency'].p99,
        requests: info.ram?.['postcopy-requests'] ?? null, bytes: info.ram?.['postcopy-bytes'] ?? null,
      },
    };
  } finally {
    probe?.close();
    await busy?.stop();
    for (const c of clients) c.close();
    await Promise.all(children.map((c) => c.stop()));
    rmSync(dir, { recursive: true, force: true });
  }
}
