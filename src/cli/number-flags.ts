/**
 * What each size and number flag of the `ferry` commands accepts, one row
 * per flag (per group of commands that share its meaning): a size, a whole
 * number or a number; what a number without a suffix counts; the range;
 * what 0 means. The commands parse their own flags through these rows
 * (parseNumberFlag); the migration parameters' rows are derived from the
 * parameter table (migration/parameters.ts), which parses them
 * (parameter-flags.ts). The README's table is flagTable()'s output, and
 * test/cli/number-flags.test.ts keeps the two equal.
 *
 * A number without a suffix follows QEMU: MiB for a guest's RAM (`-m 3000`
 * is 3000 MiB) and for bandwidths (HMP's max-bandwidth and
 * avail-switchover-bandwidth use qemu_strtosz_MiB), bytes for other sizes.
 */
import { InvalidArgumentError } from '../errors.js';
import { PAGE_SIZE } from '../memory/page.js';
import { PARAMETER_TABLE, type ParameterKey, type ParameterRow } from '../migration/parameters.js';
import { parseSize } from '../client/size.js';
import { parseCount, parseNumber } from './options.js';
import { sizeText } from './parameter-flags.js';

export interface NumberFlag {
  /** The flag, without its dashes. */
  readonly flag: string;
  readonly commands: readonly string[];
  /** A size (suffixes K, M, G, T, B), a whole number, or a number (decimals allowed). */
  readonly kind: 'size' | 'whole' | 'number';
  /** A size: what a number without a suffix counts ('MiB', 'bytes', per second for a rate); else the unit. */
  readonly unit: string;
  readonly min: number;
  readonly max: number;
  /** What 0 means, where 0 is accepted and means more than nothing ("unlimited"). */
  readonly zeroMeans?: string;
  /** A size that must be a whole number of 4 KiB pages. */
  readonly pages?: boolean;
}

const NO_MAX = Number.MAX_SAFE_INTEGER;

/** The migration parameters `ferry demo` takes (the rest are `ferry run`'s and `ferry migrate`'s). */
export const DEMO_PARAMETERS = ['downtimeLimitMs', 'timeoutMs'] as const satisfies readonly ParameterKey[];

/** The commands' own size and number flags. */
export const COMMAND_FLAGS = {
  ram: { flag: 'ram', commands: ['run', 'demo', 'incoming'], kind: 'size', unit: 'MiB', min: PAGE_SIZE, max: NO_MAX, pages: true },
  vcpus: { flag: 'vcpus', commands: ['run', 'demo'], kind: 'whole', unit: 'vCPUs', min: 1, max: 64 },
  expectVcpus: { flag: 'vcpus', commands: ['incoming'], kind: 'whole', unit: 'vCPUs', min: 0, max: 64, zeroMeans: 'a guest without vCPUs' },
  rate: { flag: 'rate', commands: ['run', 'demo'], kind: 'number', unit: 'sweeps/s for sweep, MiB/s for stress', min: 1e-6, max: 1e9 },
  throttle: { flag: 'throttle', commands: ['run'], kind: 'whole', unit: '%', min: 0, max: 99, zeroMeans: 'no throttle' },
  seconds: { flag: 'seconds', commands: ['run'], kind: 'number', unit: 's', min: 0.01, max: 86_400 },
  incomingSeconds: { flag: 'seconds', commands: ['incoming'], kind: 'number', unit: 's', min: 0, max: 86_400, zeroMeans: 'check the guest at once' },
  baseline: { flag: 'baseline', commands: ['migrate'], kind: 'number', unit: 's', min: 0, max: 3600, zeroMeans: 'no baseline' },
  runs: { flag: 'runs', commands: ['bench'], kind: 'whole', unit: 'runs', min: 1, max: 100 },
  wasmMaxMemory: { flag: 'wasm-max-memory', commands: ['run', 'incoming'], kind: 'size', unit: 'MiB', min: 65_536, max: 4 * 1024 ** 3 },
  wasmUnwindBuffer: { flag: 'wasm-unwind-buffer', commands: ['run', 'incoming'], kind: 'size', unit: 'bytes', min: PAGE_SIZE, max: 3 * 1024 ** 2, pages: true },
} as const satisfies Record<string, NumberFlag>;

/** A migration parameter's flag as a row of this table. */
function parameterFlag(key: ParameterKey, row: ParameterRow): NumberFlag {
  const commands = [
    ...(row.sides.source === undefined ? [] : ['run', 'migrate']),
    ...((DEMO_PARAMETERS as readonly string[]).includes(key) ? ['demo'] : []),
    ...(row.sides.destination === undefined ? [] : ['incoming']),
  ];
  const size = row.unit === 'bytes' || row.unit === 'bytes/s';
  // A flag in seconds for an ms row (--timeout) reads whole seconds, as parseFlag does.
  const per = row.flagUnit === 's' ? 1000 : 1;
  const unit = size ? `${row.bareSize ?? 'bytes'}${row.unit === 'bytes/s' ? '/s' : ''}` : row.flagUnit ?? (row.unit === 'percent' ? '%' : row.unit);
  const zeroMeans = row.min === 0 && row.default === 0 ? row.defaultMeans : undefined;
  return { flag: row.flag!, commands, kind: size ? 'size' : 'whole', unit, min: Math.ceil(row.min / per), max: Math.floor(row.max / per), zeroMeans };
}

/** The migration parameters' number flags, in the parameter table's order (switches, on|off, and choices by name are not numbers). */
export const PARAMETER_FLAG_RULES: readonly NumberFlag[] = (Object.entries(PARAMETER_TABLE) as [ParameterKey, ParameterRow][])
  .filter(([, row]) => row.flag !== null && row.unit !== 'bool' && row.unit !== 'choice')
  .map(([key, row]) => parameterFlag(key, row));

/** Every size and number flag: the commands' own, then the migration parameters'. */
export const NUMBER_FLAGS: readonly NumberFlag[] = [...Object.values(COMMAND_FLAGS), ...PARAMETER_FLAG_RULES];

/** `text` given for `rule`'s flag, checked against it; errors name the flag and what it accepts. */
export function parseNumberFlag(rule: NumberFlag, text: string): number {
  const flag = `--${rule.flag}`;
  if (rule.kind === 'whole') return parseCount(flag, text, rule.min, rule.max);
  if (rule.kind === 'number') return parseNumber(flag, text, rule.min, rule.max);
  const bytes = parseSize(text, flag, rule.unit.startsWith('MiB') ? 'MiB' : 'bytes');
  if (bytes < rule.min || bytes > rule.max || (rule.pages === true && bytes % PAGE_SIZE !== 0)) {
    throw new InvalidArgumentError(`${flag}: expected ${accepts(rule)}, ${rangeOf(rule)}, got ${JSON.stringify(text)} (${bytes} bytes)`);
  }
  return bytes;
}

/** A size for a reader who may take a bare number as MiB: the bytes part says B. */
function sizeLabel(bytes: number): string {
  const text = sizeText(bytes);
  return bytes > 0 && /\d$/.test(text) ? `${text} B` : text;
}

function accepts(rule: NumberFlag): string {
  switch (rule.kind) {
    case 'size':
      if (rule.unit.endsWith('/s')) return `a size per second (100M; a number alone is ${rule.unit})`;
      return `a size${rule.pages === true ? ' in whole 4 KiB pages' : ''} (256M, 4G; a number alone is ${rule.unit})`;
    case 'whole': return `a whole number (${rule.unit})`;
    case 'number': return `a number (${rule.unit}; decimals allowed)`;
  }
}

function rangeOf(rule: NumberFlag): string {
  const v = (n: number) => (rule.kind === 'size' ? sizeLabel(n) : String(n));
  return rule.max === NO_MAX ? `at least ${v(rule.min)}` : `from ${v(rule.min)} to ${v(rule.max)}`;
}

function zeroOf(rule: NumberFlag): string {
  if (rule.min > 0) return 'refused';
  return rule.zeroMeans ?? '0';
}

/** The README's table: one line per flag. */
export function flagTable(): string {
  const lines = [
    '| flag | commands | accepts | range | 0 means |',
    '|---|---|---|---|---|',
    ...NUMBER_FLAGS.map((r) => `| \`--${r.flag}\` | ${r.commands.join(', ')} | ${accepts(r)} | ${rangeOf(r)} | ${zeroOf(r)} |`),
  ];
  return lines.join('\n');
}
