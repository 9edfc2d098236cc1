/**
 * The poll probe (benchmark only): how long a program runs between two
 * polls. A pause waits for the program's next poll, so these stretches are
 * the pause latency the program itself adds (issue 13's target: p99 of at
 * most 1 ms of vCPU CPU time between polls).
 *
 * A probed module (RewriteSteps.probe) calls `ferry.probe(site)` before
 * every poll; the vCPU thread times each stretch from one probe to the next
 * and keeps the figures in a shared buffer the benchmark reads.
 *
 * CPU time, not wall time: a thread descheduled mid-stretch (by another
 * process, or V8's own threads on a 2-core machine) must not count as a
 * long stretch, and Node 20 has no clock of a thread's CPU time. So each
 * stretch's figure is an upper bound of the vCPU's CPU time in it: its
 * wall time; or, for a stretch longer than CHECK_NS, whichever is less of
 * two bounds over the window since a checkpoint taken at most CHECK_NS of
 * wall time before the stretch began: the process's CPU time
 * (process.cpuUsage, every thread's, so at least this one's), and the
 * window's wall time less the time this thread waited on a run queue
 * (Linux's /proc/thread-self/schedstat run delay, which the kernel adds
 * when the thread is back on its CPU). Checkpoints cost about 12 us and
 * are taken at most once per CHECK_NS. The thread's own CPU time over
 * whole runs (schedstat again, exact to a scheduler tick) is kept beside
 * its wall time. Not taken out: the probe's own garbage collections (it
 * allocates: performance.now boxes its result, about 130 bytes a call, so
 * scavenges of a fraction of a millisecond land in some stretches that
 * the unprobed program never has; v8.GCProfiler, tried for counting them,
 * reported none on pooled vCPU threads that --trace-gc showed collecting).
 * Time the vCPU sleeps (poll_oneoff) or is paused is not a stretch:
 * the clock restarts after each.
 *
 * The buffer (Float64Array): COUNT, TOTAL_NS, CPU_NS, WALL_NS, then per
 * histogram bucket the stretches' count and
 * their summed ns (buckets are eighths of a power of two of ns: resolution
 * about 9 %), then the LONGEST stretches as (ns, wall ns, site before,
 * site after).
 */
import { readFileSync } from 'node:fs';
import { PROBE_SITES_SECTION } from '../wasm/rewrite-context.js';

const COUNT = 0;
const TOTAL_NS = 1;
const CPU_NS = 2;
const WALL_NS = 3;
const HEAD = 4;
const STEPS_PER_OCTAVE = 8;
const BUCKETS = 48 * STEPS_PER_OCTAVE; // up to 2^48 ns: 3 days
const LONGEST = 8;
const LONGEST_AT = HEAD + 2 * BUCKETS;
const ENTRY = 4;
const SLOTS = LONGEST_AT + ENTRY * LONGEST;
/** Wall time between two CPU checkpoints at most, ns: the slack of a long stretch's CPU bound. */
export const CHECK_NS = 200_000;

/** A shared buffer for one probed vCPU's figures. */
export function newProbeBuffer(): SharedArrayBuffer {
  return new SharedArrayBuffer(SLOTS * 8);
}

const bucketOf = (ns: number): number => Math.min(BUCKETS - 1, Math.max(0, Math.floor(Math.log2(Math.max(1, ns)) * STEPS_PER_OCTAVE)));
/** The upper bound of a bucket, ns. */
const bucketTop = (b: number): number => 2 ** ((b + 1) / STEPS_PER_OCTAVE);

/** The clocks the recorder reads (a test gives its own), ns. */
export interface ProbeClocks {
  wall(): number;
  /** The process's CPU time, all threads. */
  processCpu(): number;
  /** This thread's CPU time and the time it waited on a run queue (NaN each where they cannot be read). */
  thread(): { readonly cpu: number; readonly runDelay: number };
}

function threadSchedstat(): { cpu: number; runDelay: number } {
  try {
    const [cpu, runDelay] = readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ').map(Number);
    return { cpu, runDelay };
  } catch {
    return { cpu: Number.NaN, runDelay: Number.NaN };
  }
}

export const SYSTEM_CLOCKS: ProbeClocks = {
  wall: () => performance.now() * 1e6,
  processCpu: () => {
    const u = process.cpuUsage();
    return (u.user + u.system) * 1000;
  },
  thread: threadSchedstat,
};

/** The recorder, on the vCPU's thread. */
export class PollProbe {
  private readonly f: Float64Array;
  private last = -1;
  private lastSite = -1;
  /** The shortest of the LONGEST kept, to skip the search for most stretches. */
  private floor = 0;
  private runWall = 0;
  private runCpu = 0;
  /** The last checkpoint: wall, process CPU and this thread's run delay then. */
  private check = { wall: 0, cpu: 0, runDelay: 0 };

  constructor(buffer: SharedArrayBuffer, private readonly clocks: ProbeClocks = SYSTEM_CLOCKS) {
    this.f = new Float64Array(buffer);
  }

  /** The program reached a poll (`site` names it). */
  hit(site: number): void {
    const t = this.clocks.wall();
    if (this.last >= 0) {
      const wall = t - this.last;
      let ns = wall;
      if (t - this.check.wall > CHECK_NS) {
        const was = this.check;
        this.checkpoint(t);
        // A stretch this long began after the last checkpoint (at most CHECK_NS before it): what the window since allows bounds it.
        if (wall > CHECK_NS) ns = Math.min(wall, this.check.cpu - was.cpu, t - was.wall - (this.check.runDelay - was.runDelay) || wall);
      }
      this.record(ns, wall, site);
    }
    this.last = t;
    this.lastSite = site;
  }

  /** Time not spent running the program (a sleep, a pause) ends here: the next stretch starts now. */
  restart(): void {
    this.last = this.clocks.wall();
    this.lastSite = -1;
    this.checkpoint(this.last);
  }

  /** A run of the program starts (execute): the clock restarts, and the thread's CPU time is noted. */
  runStarts(): void {
    this.restart();
    this.runWall = this.clocks.wall();
    this.runCpu = this.clocks.thread().cpu;
  }

  /** A run ends: its wall and CPU time join the totals; the stretch open now is not one (it ends in an unwind or an exit). */
  runEnds(): void {
    this.f[WALL_NS] += this.clocks.wall() - this.runWall;
    this.f[CPU_NS] += this.clocks.thread().cpu - this.runCpu;
    this.last = -1;
  }

  private checkpoint(wall: number): void {
    this.check = { wall, cpu: this.clocks.processCpu(), runDelay: this.clocks.thread().runDelay };
  }

  private record(ns: number, wall: number, site: number): void {
    const f = this.f;
    const b = bucketOf(ns);
    f[COUNT]++;
    f[TOTAL_NS] += ns;
    f[HEAD + 2 * b]++;
    f[HEAD + 2 * b + 1] += ns;
    if (ns > this.floor) this.keepLongest(ns, wall, site);
  }

  private keepLongest(ns: number, wall: number, site: number): void {
    const f = this.f;
    const at = (i: number) => LONGEST_AT + ENTRY * i;
    let min = 0;
    for (let i = 1; i < LONGEST; i++) if (f[at(i)] < f[at(min)]) min = i;
    f.set([ns, wall, this.lastSite, site], at(min));
    let next = Infinity;
    for (let i = 0; i < LONGEST; i++) next = Math.min(next, f[at(i)]);
    this.floor = next;
  }
}

export interface ProbeFigures {
  /** Stretches between two polls. */
  readonly count: number;
  /** Per stretch, an upper bound of the vCPU's CPU time in it (and, to the bucket's 9 %, of the percentile), ns. */
  readonly p50Ns: number;
  readonly p99Ns: number;
  readonly maxNs: number;
  /**
   * Weighted by time: a pause asked at a random moment of the program's run
   * falls in a stretch this long or shorter with probability 0.99.
   */
  readonly timeP99Ns: number;
  /** The share of the run's time spent in stretches longer than 1 ms. */
  readonly overOneMs: number;
  /** The thread's CPU time over its wall time while it ran the program (NaN off Linux). */
  readonly cpuPerWall: number;
  /** The longest stretches, longest first: CPU bound and wall time, ns, and the sites before and after (-1: a run's start or a sleep's end; -2 a sleep's start). */
  readonly longest: readonly { readonly ns: number; readonly wallNs: number; readonly from: number; readonly to: number }[];
}

/** The figures in a probe buffer (read when the program is paused or done). */
export function readProbe(buffer: SharedArrayBuffer): ProbeFigures {
  const f = new Float64Array(buffer);
  const count = f[COUNT];
  const total = f[TOTAL_NS];
  const byCount = (q: number): number => {
    let seen = 0;
    for (let b = 0; b < BUCKETS; b++) {
      seen += f[HEAD + 2 * b];
      if (seen >= q * count) return bucketTop(b);
    }
    return Number.NaN;
  };
  let timeP99Ns = Number.NaN;
  let long = 0;
  for (let b = 0, seen = 0; b < BUCKETS; b++) {
    seen += f[HEAD + 2 * b + 1];
    if (Number.isNaN(timeP99Ns) && seen >= 0.99 * total) timeP99Ns = bucketTop(b);
    if (2 ** (b / STEPS_PER_OCTAVE) >= 1e6) long += f[HEAD + 2 * b + 1];
  }
  const longest = [];
  for (let i = 0; i < LONGEST; i++) {
    const [ns, wallNs, from, to] = f.subarray(LONGEST_AT + ENTRY * i, LONGEST_AT + ENTRY * (i + 1));
    if (ns > 0) longest.push({ ns, wallNs, from, to });
  }
  longest.sort((a, b) => b.ns - a.ns);
  return {
    count, p50Ns: byCount(0.5), p99Ns: byCount(0.99), maxNs: longest[0]?.ns ?? Number.NaN, timeP99Ns,
    overOneMs: total > 0 ? long / total : 0, cpuPerWall: f[CPU_NS] / f[WALL_NS], longest,
  };
}

/** The section of a probed module (RewriteSteps.probe) naming each site's function, by site number; [] for any other module. */
export function probeSiteNames(module: WebAssembly.Module): string[] {
  const sections = (WebAssembly.Module as unknown as { customSections(m: WebAssembly.Module, name: string): ArrayBuffer[] })
    .customSections(module, PROBE_SITES_SECTION);
  return sections.length === 0 ? [] : new TextDecoder().decode(sections[0]).split('\n');
}
