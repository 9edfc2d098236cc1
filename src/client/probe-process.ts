/**
 * The stall probe in a process of its own, its event loop at a real-time
 * priority when the machine allows it (root: SCHED_FIFO on the probe's main
 * thread only). An instrument must not add its own delays to what it
 * measures: on 2 cores shared with a vCPU, a migration thread and a loader,
 * a probe at normal priority waits for the CPU as long as the process it
 * probes (perf sched showed 16 ms in one wake-up of the benchmark's own
 * process, while the source's main thread waited at most 7.5 ms), so its
 * maxima described the benchmark, not ferry. cyclictest runs at a
 * real-time priority for the same reason. The probed process keeps its
 * normal priority: its delays are all measured.
 *
 * The child is this file run with Node: argv control socket and origin
 * (epoch ms); it probes on 'start' and sends its samples back on 'stop'.
 */
import { execFileSync, fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { StallProbe, epochMs, latencyBetween, type LatencyProbe, type LatencySummary, type ProbeSample } from './stall-probe.js';

type ToProbe = { type: 'start' } | { type: 'stop' };
type FromProbe = { type: 'ready' } | { type: 'samples'; samples: ProbeSample[] } | { type: 'error'; message: string };

/** Real-time priority of the probe's thread (SCHED_FIFO 1-99; low, it only needs to beat normal threads). */
const PROBE_RT_PRIORITY = 10;

export class ProbeProcess implements LatencyProbe {
  samples: ProbeSample[] = [];

  private constructor(private readonly child: ChildProcess, private readonly originEpochMs: number, readonly priority: string) {}

  /** Start a probe process on `control`; `realtime` asks for SCHED_FIFO (granted only where allowed). */
  static async spawn(control: string, options: { realtime?: boolean } = {}): Promise<ProbeProcess> {
    const origin = epochMs();
    const child = fork(fileURLToPath(import.meta.url), [control, String(origin)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: [] });
    const [first] = (await once(child, 'message')) as [FromProbe];
    if (first.type !== 'ready') {
      child.kill();
      throw new Error(`stall probe: ${first.type === 'error' ? first.message : 'did not start'}`);
    }
    let priority = 'normal priority';
    if (options.realtime === true) priority = setRealtime(child.pid!);
    return new ProbeProcess(child, origin, priority);
  }

  start(): void {
    this.send({ type: 'start' });
  }

  /** Stop probing and collect the samples. */
  async stop(): Promise<void> {
    const answer = new Promise<FromProbe>((resolve, reject) => {
      this.child.once('message', resolve);
      this.child.once('exit', (code, signal) => reject(new Error(`stall probe: exited (${signal ?? `code ${String(code)}`}) before sending its samples`)));
    });
    this.send({ type: 'stop' });
    const m = await answer;
    if (m.type === 'samples') this.samples = m.samples;
    else if (m.type === 'error') throw new Error(`stall probe: ${m.message}`);
  }

  now(): number {
    return epochMs() - this.originEpochMs;
  }

  between(fromMs: number, toMs: number): LatencySummary {
    return latencyBetween(this.samples, fromMs, toMs);
  }

  close(): void {
    if (this.child.exitCode === null) this.child.kill();
  }

  private send(m: ToProbe): void {
    this.child.send(m);
  }
}

/** SCHED_FIFO for the thread whose id is `pid` (the child's main thread), with chrt; says what it got. */
function setRealtime(pid: number): string {
  if (process.getuid?.() !== 0) return 'normal priority (real time needs root)';
  try {
    execFileSync('chrt', ['-f', '-p', String(PROBE_RT_PRIORITY), String(pid)], { stdio: 'ignore' });
    return `SCHED_FIFO ${PROBE_RT_PRIORITY}`;
  } catch {
    return 'normal priority (chrt failed)';
  }
}

async function child(control: string, origin: number): Promise<void> {
  // A large answer (20 s of samples is ~200 KB) is written in pieces: disconnect only once it is out.
  const post = (m: FromProbe, then?: () => void) => process.send!(m, undefined, undefined, then);
  // The parent gone (or done with us): nothing to report to.
  process.on('disconnect', () => process.exit(0));
  try {
    const probe = await StallProbe.connect(control, origin);
    process.on('message', (m: ToProbe) => {
      if (m.type === 'start') probe.start();
      else {
        void probe.stop().then(
          () => { probe.close(); post({ type: 'samples', samples: probe.samples }, () => process.disconnect()); },
          (err: Error) => post({ type: 'error', message: err.message }, () => process.disconnect()),
        );
      }
    });
    post({ type: 'ready' });
  } catch (err) {
    post({ type: 'error', message: (err as Error).message }, () => process.disconnect());
  }
}

if (process.send !== undefined && process.argv[1] === fileURLToPath(import.meta.url)) {
  void child(process.argv[2], Number(process.argv[3]));
}
