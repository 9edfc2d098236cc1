/**
 * Migration parameters, each declared once (STYLE.md habit 8, as QEMU's
 * migration/options.c): one row per parameter in PARAMETER_TABLE, holding
 * its library name (the key, with its unit in it), its QMP name, its
 * command-line flag, unit, default and where the default comes from, its
 * range, and the side(s) it applies to with its --help text there.
 * Everything else is derived from the table: the `MigrationParameters` and
 * `DestinationParameters` types, the defaults, the validator below, the
 * QMP names of migrate-set-parameters / query-migrate-parameters
 * (control/qmp-commands.ts), and the command-line flags, their checks and
 * their usage lines (cli/parameter-flags.ts). Adding a parameter is adding
 * a row (and reading it where it takes effect). Row order is the order of
 * query-migrate-parameters and of the usage lines.
 *
 * A source parameter may change during a migration (migrate-set-parameters):
 * the running session gets the whole new set and must read it from there,
 * never from a copy taken at its start.
 *
 * Over 300 lines: it is the table (one row per parameter, each with its
 * origin), which is meant to be read in one place.
 */
import { InvalidArgumentError } from '../errors.js';
import { PAGE_SIZE } from '../memory/page.js';
import { MAX_DEVICE_DATA_BYTES, MAX_PAGES_PER_RECORD } from '../wire/format.js';
import { DEFAULT_XBZRLE_CACHE_BYTES, MAX_XBZRLE_CACHE_BYTES, XBZRLE_CACHE_SIZE_REFUSAL } from './xbzrle-cache.js';

export type Side = 'source' | 'destination';
/**
 * Sizes and rates are written as sizes on the command line (256M); 'bool'
 * rows hold 0 or 1, are true/false in QMP and on/off on the command line;
 * 'choice' rows hold the index of one of their `choices`, which QMP and the
 * command line write as its name (QEMU's enums: multifd-compression);
 * the rest are whole numbers ('MB/s': QEMU's dirty rates, MiB per second).
 */
export type ParameterUnit = 'ms' | 'bytes' | 'bytes/s' | 'percent' | 'bool' | 'MB/s' | 'count' | 'choice';

export interface ParameterRow {
  /** Name in migrate-set-parameters and query-migrate-parameters; null: not a QMP parameter. */
  readonly qmp: string | null;
  /** Command-line flag, without its dashes; null: none. */
  readonly flag: string | null;
  readonly unit: ParameterUnit;
  readonly default: number;
  /** What the default means, when its number does not say it ("unlimited"). */
  readonly defaultMeans?: string;
  /** Where the default comes from: QEMU's source, or ferry's measurement or choice. */
  readonly origin: string;
  /** Accepted values: integers in [min, max]. */
  readonly min: number;
  readonly max: number;
  /**
   * The flag's unit when it differs from `unit`: 's' reads whole seconds
   * for an 'ms' row (min, max and default are then whole seconds too).
   */
  readonly flagUnit?: 's';
  /**
   * A size flag's number without a suffix: MiB where QEMU reads MiB (-m,
   * HMP's max-bandwidth and avail-switchover-bandwidth: qemu_strtosz_MiB);
   * bytes when absent (QEMU's other sizes: visit_type_size).
   */
  readonly bareSize?: 'MiB';
  /**
   * QEMU's own words for a value outside [min, max] in migrate-set-parameters,
   * where ferry answers as QEMU does (a value above a max QEMU does not
   * check gets ferry's words).
   */
  readonly qmpRefusal?: string;
  /** A 'choice' row's names, by value (0..max). */
  readonly choices?: readonly string[];
  /** The value must be a power of two; QEMU's words for one that is not, or is below min, in migrate-set-parameters. */
  readonly powerOfTwoRefusal?: string;
  /** The side(s) it applies to, each with its --help text (the meaning may differ by side). */
  readonly sides: { readonly source?: string; readonly destination?: string };
}

/** `multifd-compression`'s values, by index (compression.ts; `auto`: compression-choice.ts). */
export const MULTIFD_COMPRESSION_CHOICES = ['none', 'zlib', 'zstd', 'lz4', 'auto'] as const;
export type MultifdCompression = (typeof MULTIFD_COMPRESSION_CHOICES)[number];

const NO_MAX = Number.MAX_SAFE_INTEGER;

export const PARAMETER_TABLE = {
  /** Longest acceptable pause of the guest, ms. */
  downtimeLimitMs: {
    qmp: 'downtime-limit', flag: 'downtime-limit', unit: 'ms', default: 300, min: 1, max: 2_000_000,
    origin: "QEMU's downtime-limit default (migration/options.c, DEFAULT_MIGRATE_SET_DOWNTIME); QEMU caps it at 2000 s",
    sides: { source: 'longest acceptable pause' },
  },
  /** Bytes per second the stream may use, enforced per 100 ms window; 0 is unlimited. */
  maxBandwidthBytesPerSec: {
    qmp: 'max-bandwidth', flag: 'max-bandwidth', unit: 'bytes/s', bareSize: 'MiB', default: 0, defaultMeans: 'unlimited', min: 0, max: NO_MAX,
    origin: "ferry's choice. QEMU 7.2's default is 128 MiB/s (MAX_THROTTLE), a limit from when migration shared a 1 Gbit/s link with the guest's traffic",
    sides: { source: 'per second, e.g. 100M' },
  },
  /**
   * Post-copy's background push, bytes/s; 0 paces it at 97 % of the
   * measured bandwidth (postcopy-source.ts argues why below the link's rate).
   */
  maxPostcopyBandwidthBytesPerSec: {
    qmp: 'max-postcopy-bandwidth', flag: 'max-postcopy-bandwidth', unit: 'bytes/s', bareSize: 'MiB', default: 0, defaultMeans: '97 % of the measured bandwidth',
    min: 0, max: NO_MAX,
    origin: "QEMU's default 0 (migration/options.c), where it means unlimited; ferry paces an unlimited push below the link's measured rate so that page requests do not queue behind it",
    sides: { source: "post-copy's background push per second, e.g. 100M" },
  },
  /** Bandwidth to assume for the switchover decision instead of the estimate, bytes/s; 0 uses the estimate. */
  availSwitchoverBandwidthBytesPerSec: {
    qmp: 'avail-switchover-bandwidth', flag: 'avail-switchover-bandwidth', unit: 'bytes/s', bareSize: 'MiB', default: 0, defaultMeans: 'use the estimate',
    min: 0, max: NO_MAX,
    origin: "QEMU's avail-switchover-bandwidth (8.2+), default 0",
    sides: { source: 'per second, assumed at switchover' },
  },
  /** With the capability multifd: the connections (each with its thread) the pages travel on. */
  multifdChannels: {
    qmp: 'multifd-channels', flag: 'multifd-channels', unit: 'count', default: 2, min: 1, max: 64,
    origin: "QEMU's default (migration/options.c, DEFAULT_MIGRATE_MULTIFD_CHANNELS); QEMU takes up to 255, ferry up to 64 (a thread each; wire/format.ts MAX_CHANNELS)",
    sides: { source: 'with the capability multifd: connections the pages travel on' },
  },
  /**
   * With the capability multifd: how the channels compress their packets
   * (an index of MULTIFD_COMPRESSION_CHOICES). QEMU's enum has none, zlib,
   * zstd (and qpl, uadk, qatzip, which need hardware); lz4 and auto are
   * ferry's (auto: compress only while the link, not the CPU, limits).
   */
  multifdCompression: {
    qmp: 'multifd-compression', flag: 'multifd-compression', unit: 'choice', choices: MULTIFD_COMPRESSION_CHOICES, default: 0, min: 0, max: 4,
    origin: "QEMU's default none (migration/options.c, DEFAULT_MIGRATE_MULTIFD_COMPRESSION); lz4 and auto are ferry's additions",
    sides: { source: 'with the capability multifd: how the channels compress pages' },
  },
  multifdZlibLevel: {
    qmp: 'multifd-zlib-level', flag: 'multifd-zlib-level', unit: 'count', default: 1, min: 0, max: 9,
    origin: "QEMU's default and range (DEFAULT_MIGRATE_MULTIFD_ZLIB_LEVEL)",
    sides: { source: 'multifd-compression zlib: its level' },
  },
  multifdZstdLevel: {
    qmp: 'multifd-zstd-level', flag: 'multifd-zstd-level', unit: 'count', default: 1, min: 0, max: 20,
    origin: "QEMU's default and range (DEFAULT_MIGRATE_MULTIFD_ZSTD_LEVEL)",
    sides: { source: 'multifd-compression zstd (and auto with zstd): its level' },
  },
  /**
   * With the capability xbzrle: the page cache, bytes. With multifd it is
   * shared out: each channel's cache is an equal share, rounded down to a
   * power of two number of pages (QEMU 8+ refuses multifd with xbzrle).
   */
  xbzrleCacheBytes: {
    qmp: 'xbzrle-cache-size', flag: 'xbzrle-cache-size', unit: 'bytes', default: DEFAULT_XBZRLE_CACHE_BYTES, min: PAGE_SIZE, max: MAX_XBZRLE_CACHE_BYTES,
    powerOfTwoRefusal: XBZRLE_CACHE_SIZE_REFUSAL,
    origin: "QEMU's default (migration/options.c, DEFAULT_MIGRATE_XBZRLE_CACHE_SIZE, 64 MiB); ferry takes up to 2 GiB (one WebAssembly memory)",
    sides: { source: 'with the capability xbzrle: the page cache (a power of two, e.g. 512M); split among multifd channels' },
  },
  /** Share of one core the migration thread may use, percent; 100 is no cap. */
  cpuSharePercent: {
    qmp: 'x-ferry-cpu-share', flag: 'cpu-share', unit: 'percent', default: 100, defaultMeans: 'none', min: 1, max: 100,
    origin: "ferry's choice: no cap (on 2 cores the migration thread competes with the vCPUs; a cap trades time for their CPU)",
    sides: { source: "cap on the migration thread's share of a core" },
  },
  /*
   * auto-converge (capability): when the guest dirties more than this share
   * of what a period sent, twice, the vCPUs are throttled, then more
   * (auto-converge.ts). QEMU's names, defaults and ranges (migration/options.c).
   */
  throttleTriggerThresholdPercent: {
    qmp: 'throttle-trigger-threshold', flag: 'throttle-trigger-threshold', unit: 'percent', default: 50, min: 1, max: 100,
    origin: "QEMU's default (DEFAULT_MIGRATE_THROTTLE_TRIGGER_THRESHOLD)",
    sides: { source: 'auto-converge: throttle when a period dirties more than this share of what it sent' },
  },
  cpuThrottleInitialPercent: {
    qmp: 'cpu-throttle-initial', flag: 'cpu-throttle-initial', unit: 'percent', default: 20, min: 1, max: 99,
    origin: "QEMU's default (DEFAULT_MIGRATE_CPU_THROTTLE_INITIAL)",
    sides: { source: "auto-converge: the throttle's first step" },
  },
  cpuThrottleIncrementPercent: {
    qmp: 'cpu-throttle-increment', flag: 'cpu-throttle-increment', unit: 'percent', default: 10, min: 1, max: 99,
    origin: "QEMU's default (DEFAULT_MIGRATE_CPU_THROTTLE_INCREMENT)",
    sides: { source: "auto-converge: each later step" },
  },
  /** 1: each later step adds only what should bring the dirty rate to the trigger, if less (QEMU's cpu-throttle-tailslow). */
  cpuThrottleTailslow: {
    qmp: 'cpu-throttle-tailslow', flag: 'cpu-throttle-tailslow', unit: 'bool', default: 0, min: 0, max: 1,
    origin: "QEMU's default (off)",
    sides: { source: 'auto-converge: later steps only as large as the dirty rate asks' },
  },
  maxCpuThrottlePercent: {
    qmp: 'max-cpu-throttle', flag: 'max-cpu-throttle', unit: 'percent', default: 99, min: 1, max: 99,
    origin: "QEMU's default (DEFAULT_MIGRATE_MAX_CPU_THROTTLE)",
    sides: { source: 'auto-converge: the most the vCPUs are throttled' },
  },
  /*
   * dirty-limit (capability, QEMU 8.1): once triggered (auto-converge's
   * trigger), every vCPU's dirty rate is limited to vcpu-dirty-limit, each
   * vCPU's throttle adjusted every x-vcpu-dirty-limit-period to its own
   * measured rate (dirty-limit.ts). QEMU 8.1's names, defaults, ranges and
   * refusals (migration/options.c migrate_params_check).
   */
  vcpuDirtyLimitPeriodMs: {
    qmp: 'x-vcpu-dirty-limit-period', flag: 'x-vcpu-dirty-limit-period', unit: 'ms', default: 1000, min: 1, max: 1000,
    origin: "QEMU 8.1's default (DEFAULT_MIGRATE_VCPU_DIRTY_LIMIT_PERIOD) and range",
    qmpRefusal: "Parameter 'x-vcpu-dirty-limit-period' expects a value between 1 and 1000",
    sides: { source: "dirty-limit: how often each vCPU's throttle follows its own dirty rate" },
  },
  vcpuDirtyLimitMBPerSec: {
    qmp: 'vcpu-dirty-limit', flag: 'vcpu-dirty-limit', unit: 'MB/s', default: 1, min: 1, max: NO_MAX,
    origin: "QEMU 8.1's default (DEFAULT_MIGRATE_VCPU_DIRTY_LIMIT)",
    // QEMU 8.1's words, its underscore and grammar included.
    qmpRefusal: "Parameter 'vcpu_dirty_limit' expects is invalid, it must greater then 1 MB/s",
    sides: { source: "dirty-limit: each vCPU's dirty-rate quota once triggered" },
  },
  /**
   * Time budget of a migration, from `migrate`, ms; 0 is none. When it runs
   * out before the switchover rule decided to switch over, the policy
   * cancels the migration (migration-policy.ts). On the command line in
   * seconds, as virsh migrate --timeout; the commands give it a default of
   * their own (cli/parameter-flags.ts COMMAND_LINE_DEFAULTS).
   */
  timeoutMs: {
    qmp: 'x-ferry-timeout', flag: 'timeout', flagUnit: 's', unit: 'ms', default: 0, defaultMeans: 'none', min: 0, max: 2_592_000_000,
    origin: 'QEMU has no time budget (libvirt\'s virsh migrate --timeout is the management tool\'s); at most 30 days',
    sides: { source: 'cancel the migration if it has not switched over after this long' },
  },
  /*
   * The policy's remedy ladder (remedies.ts), in the manner of KubeVirt's
   * migration policies; on the command line as `--policy KEY=VALUE,...`
   * (cli/policy-flag.ts), so no flags of their own.
   */
  /** No new low of what remains after a pass for this long is no progress, ms; 0: never. */
  progressTimeoutMs: {
    qmp: 'x-ferry-progress-timeout', flag: null, unit: 'ms', default: 30_000, min: 0, max: 2_592_000_000,
    origin: "ferry's choice: KubeVirt's progressTimeout is 150 s for guests of many GiB on shared links; a pass of ferry's guests here takes seconds (512 MiB at 0.3 GB/s: 1.7 s), so 30 s is ten passes or more without a new low",
    sides: { source: 'no progress for this long engages the next remedy' },
  },
  /** Time allowed per GiB of guest RAM (rounded up to whole GiB), ms; 0: none. */
  completionBudgetPerGiBMs: {
    qmp: 'x-ferry-completion-budget-per-gib', flag: null, unit: 'ms', default: 150_000, min: 0, max: 2_592_000_000,
    origin: "KubeVirt's completionTimeoutPerGiB default (150 s), over the guest's RAM rounded up to whole GiB as KubeVirt rounds it",
    sides: { source: 'over this per GiB of RAM engages the next remedy' },
  },
  /** 1: the ladder may throttle the vCPUs (auto-converge's rule). */
  policyThrottle: {
    qmp: 'x-ferry-policy-throttle', flag: null, unit: 'bool', default: 1, min: 0, max: 1,
    origin: "ferry's default policy: throttle, then cancel (KubeVirt's allowAutoConverge defaults to off: it cancels at once)",
    sides: { source: 'the first remedy: throttle the vCPUs' },
  },
  /** 1: the ladder may switch to post-copy (with the capability postcopy-ram on). */
  policyPostcopy: {
    qmp: 'x-ferry-policy-postcopy', flag: null, unit: 'bool', default: 0, min: 0, max: 1,
    origin: "opt-in, as KubeVirt's allowPostCopy and libvirt's --postcopy: if either side dies during post-copy the guest is lost",
    sides: { source: 'a later remedy: switch to post-copy (needs the postcopy-ram capability)' },
  },
  /** Start post-copy this long after `migrate`, whatever the ladder says, ms; 0: never (with postcopy-ram on). */
  postcopyAfterMs: {
    qmp: 'x-ferry-postcopy-after', flag: null, unit: 'ms', default: 0, defaultMeans: 'never', min: 0, max: 2_592_000_000,
    origin: "libvirt's virsh migrate --postcopy-after-precopy starts it after the first pass; a time is what the issue's benchmark asks (post-copy 1 s in)",
    sides: { source: 'switch to post-copy this long after migrate (needs the postcopy-ram capability)' },
  },
  /** 1: the ladder may pause the guest and send the rest, with no downtime limit. */
  pauseAndFinish: {
    qmp: 'x-ferry-pause-and-finish', flag: null, unit: 'bool', default: 0, min: 0, max: 1,
    origin: "opt-in, as KubeVirt's allowWorkloadDisruption and virsh migrate --timeout-suspend: the pause can be long",
    sides: { source: 'a later remedy: pause the guest and send the rest (no downtime limit)' },
  },
  /** Limit for the vCPUs to acknowledge the switchover pause, ms. */
  pauseTimeoutMs: {
    qmp: 'x-ferry-pause-timeout', flag: 'pause-timeout', unit: 'ms', default: 1000, min: 1, max: 600_000,
    origin: "ferry's choice: vCPUs acknowledge within a few ms here (PAUSE_LEAD_MS in switchover.ts); the rest is room for a loaded machine",
    sides: { source: 'limit for the vCPUs to acknowledge the pause' },
  },
  /** Limit to connect, and to wait for each answer at switchover (LOADED, RESUMED), ms. */
  switchoverTimeoutMs: {
    qmp: 'x-ferry-switchover-timeout', flag: 'switchover-timeout', unit: 'ms', default: 10_000, min: 1, max: 3_600_000,
    origin: "ferry's choice: the LOADED/GO/RESUMED round trips take ~1-2 ms on one host; the limit is for a peer that hangs",
    sides: { source: 'limit for each answer at switchover' },
  },
  /** Largest guest (bytes of RAM) the destination accepts. */
  maxGuestBytes: {
    qmp: null, flag: 'max-ram', unit: 'bytes', bareSize: 'MiB', default: 64 * 1024 ** 3, min: 1, max: NO_MAX,
    origin: "ferry's choice, not a measurement: a bound on the RAM a stream's header can make the destination allocate",
    sides: { destination: 'largest guest accepted' },
  },
  /**
   * Largest record the destination accepts, head and page data, bytes: the
   * loader allocates at most this much per record before its data arrives.
   */
  maxFrameBytes: {
    qmp: null, flag: 'max-frame', unit: 'bytes', default: MAX_DEVICE_DATA_BYTES + 4096,
    min: MAX_PAGES_PER_RECORD * PAGE_SIZE + 4, max: NO_MAX,
    origin: "a device section at the format's cap (wire/format.ts MAX_DEVICE_DATA_BYTES) and its head; at least a full PAGES record, which every source sends",
    sides: { destination: 'largest record accepted' },
  },
  /**
   * Source: longest time the destination may acknowledge nothing while bytes
   * are in flight, ms (a destination that stops reading holds the source's
   * send slots, never its memory, and this ends the wait). Destination:
   * longest time without a byte from the source before GO; then it fails.
   */
  idleTimeoutMs: {
    qmp: 'x-ferry-idle-timeout', flag: 'idle-timeout', unit: 'ms', default: 30_000, min: 1, max: 3_600_000,
    origin: "ferry's choice. QEMU has no such limit and relies on TCP: a hung peer then stalls migration for the kernel's retransmission timeout (~15 min)",
    sides: {
      source: 'limit for the destination to read nothing while bytes wait',
      destination: 'fail when the source sends nothing for this long before GO',
    },
  },
  /**
   * 1: touch the pages the source will send (its ever-written map) while
   * they come (preallocation.ts). On the command line `--prealloc`, a
   * switch, as QEMU's -mem-prealloc; fixed for the process, as QEMU's.
   */
  prealloc: {
    qmp: null, flag: null, unit: 'bool', default: 0, min: 0, max: 1,
    origin: "QEMU's default: -mem-prealloc is off (it commits all of RAM at start; ferry only the pages the source will send)",
    sides: { destination: 'touch the pages the source will send before they arrive' },
  },
  /** With prealloc: threads that touch pages; 0: the machine's cores. */
  preallocThreads: {
    qmp: null, flag: 'prealloc-threads', unit: 'count', default: 0, defaultMeans: "the machine's cores", min: 0, max: 256,
    origin: "QEMU's prealloc-threads defaults to 1 (backends/hostmem.c); ferry uses every core, as -smp's count is QEMU's usual choice. First touch scaled little with threads here (BENCHMARKS.md)",
    sides: { destination: 'with --prealloc: threads that touch pages' },
  },
  /** `mainloop` mode only (the 2010 experiment): longest step per 100 ms tick, ms; 0 is no cap. */
  mainloopStepCapMs: {
    qmp: 'x-ferry-mainloop-step-cap', flag: null, unit: 'ms', default: 0, defaultMeans: 'no cap', min: 0, max: 60_000,
    origin: 'QEMU 2010 had no cap: a step ran until its byte budget was spent',
    sides: { source: 'mainloop mode: longest step per 100 ms tick' },
  },
  /** `mainloop` mode only: zero pages sent one per record, each charged this many budget bytes; 0 is off. */
  zeroPageBudgetBytes: {
    qmp: 'x-ferry-zero-page-budget', flag: null, unit: 'bytes', default: 0, defaultMeans: "ferry's zero runs", min: 0, max: PAGE_SIZE,
    origin: "ferry's zero runs. QEMU 2010 sent each zero page as 9 bytes (an 8-byte address with flags, and the fill byte)",
    sides: { source: 'mainloop mode: budget bytes charged per zero page, each sent alone' },
  },
} as const satisfies Record<string, ParameterRow>;

type Table = typeof PARAMETER_TABLE;
export type ParameterKey = keyof Table;
/** The parameters of one side: a number for every row that applies to it. */
export type ParametersOf<S extends Side> = { readonly [K in ParameterKey as Table[K]['sides'] extends Record<S, string> ? K : never]: number };
/** The source's parameters (migrate-set-parameters; kept across migrations, as QEMU's). */
export type MigrationParameters = ParametersOf<'source'>;
/** The destination's limits (`ferry incoming` flags, IncomingOptions). */
export type DestinationParameters = ParametersOf<'destination'>;

/** The rows that apply to `side`, in table order. */
export function parameterRows<S extends Side>(side: S): readonly (readonly [keyof ParametersOf<S>, ParameterRow])[] {
  return (Object.entries(PARAMETER_TABLE) as [ParameterKey, ParameterRow][])
    .filter(([, row]) => row.sides[side] !== undefined) as unknown as (readonly [keyof ParametersOf<S>, ParameterRow])[];
}

function defaultsOf<S extends Side>(side: S): ParametersOf<S> {
  return Object.freeze(Object.fromEntries(parameterRows(side).map(([key, row]) => [key, row.default]))) as ParametersOf<S>;
}

export const DEFAULT_PARAMETERS: MigrationParameters = defaultsOf('source');
export const DEFAULT_DESTINATION_PARAMETERS: DestinationParameters = defaultsOf('destination');

/** The accepted values of a row, as messages write them. */
export function rangeText(row: ParameterRow): string {
  return row.max === NO_MAX ? `of at least ${row.min}` : `in [${row.min}, ${row.max}]`;
}

/**
 * The validator: `value` if it is an integer in the row's range, else an
 * InvalidArgumentError naming `label` (the name the caller knows the
 * parameter by: its library name, its QMP name) and what was wrong.
 */
export function checkParameter(key: ParameterKey, value: unknown, label: string): number {
  const row: ParameterRow = PARAMETER_TABLE[key];
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < row.min || value > row.max) {
    const expected = row.choices === undefined ? `an integer ${rangeText(row)}` : `the index of one of ${row.choices.join(', ')} (0..${row.max})`;
    throw new InvalidArgumentError(`${label} must be ${expected}, got ${JSON.stringify(value) ?? String(value)}`);
  }
  if (row.powerOfTwoRefusal !== undefined && !isPowerOfTwo(value)) throw new InvalidArgumentError(`${label} must be a power of two, got ${value}`);
  return value;
}

/** A 'choice' row's value by its name; undefined for a name that is not one of its choices. */
export function choiceIndex(row: ParameterRow, name: unknown): number | undefined {
  const i = typeof name === 'string' ? (row.choices ?? []).indexOf(name) : -1;
  return i < 0 ? undefined : i;
}

export function isPowerOfTwo(value: number): boolean {
  return value > 0 && 2 ** Math.round(Math.log2(value)) === value;
}

/**
 * Merge `changes` over `base` (the source's parameters, or the
 * destination's), checking each value; names that are not `base`'s are
 * errors, undefined values are skipped.
 */
export function withParameters<P extends Partial<Record<ParameterKey, number>>>(base: P, changes: Partial<Record<string, unknown>>): P {
  const out: Record<string, number> = { ...base } as Record<string, number>;
  for (const [name, value] of Object.entries(changes)) {
    if (value === undefined) continue;
    if (!Object.hasOwn(base, name)) {
      throw new InvalidArgumentError(`unknown migration parameter ${JSON.stringify(name)}; known: ${Object.keys(base).join(', ')}`);
    }
    out[name] = checkParameter(name as ParameterKey, value, `migration parameter ${name}`);
  }
  return Object.freeze(out) as unknown as P;
}
