/**
 * The migration parameters on the command line, derived from their table
 * (migration/parameters.ts): a side's flags as parseArgs options, their
 * usage lines, and their parsing, with range checks whose messages name
 * the flag. The source's flags belong to `ferry run` and `ferry migrate`,
 * the destination's to `ferry incoming`; `ferry demo` takes a chosen few.
 *
 * A flag reads its row's unit, except where the row names a flag unit of
 * its own (`flagUnit`: `--timeout` is in seconds, x-ferry-timeout in ms).
 * A command may give a row a default of its own, used when the flag is
 * absent and shown in its usage line (COMMAND_LINE_DEFAULTS: a management
 * tool sets a time budget where QEMU has none).
 */
import { InvalidArgumentError } from '../errors.js';
import { PARAMETER_TABLE, checkParameter, choiceIndex, isPowerOfTwo, parameterRows, type ParameterKey, type ParameterRow, type ParametersOf, type Side } from '../migration/parameters.js';
import { parseCount } from './options.js';
import { parseSize } from '../client/size.js';

type Table = typeof PARAMETER_TABLE;
/** The flags of the rows `K` (rows without a flag have none). */
export type FlagOf<K extends ParameterKey> = { [P in K]: Table[P]['flag'] }[K] & string;

/**
 * The defaults `ferry run` and `ferry migrate` give rows whose library
 * default is not what a person at a terminal wants: a migration that never
 * converges is cancelled after 5 minutes instead of running until killed.
 * `ferry demo` gives its own (a showcase of a small guest: 60 s).
 */
export const COMMAND_LINE_DEFAULTS = { timeoutMs: 300_000 } as const satisfies Partial<Record<ParameterKey, number>>;

export interface ParameterFlags<K extends ParameterKey> {
  /** For parseArgs: every flag takes a string, which `parse` checks. */
  readonly options: { readonly [F in FlagOf<K>]: { readonly type: 'string' } };
  /** The usage lines, each flag's help text starting at `column`. */
  usage(column: number): string;
  /** The parameters given in parseArgs' `values`, checked against their rows; an absent flag takes the command's default, if any, else is absent. */
  parse(values: Readonly<Record<string, unknown>>): Partial<Record<K, number>>;
}

const METAVAR: Record<ParameterRow['unit'], string> = { ms: 'MS', bytes: 'SIZE', 'bytes/s': 'SIZE', percent: 'PCT', bool: 'on|off', 'MB/s': 'MBPS', count: 'N', choice: 'NAME' };
/** What a 'bool' row's flag reads. */
const SWITCH: Readonly<Record<string, number>> = { on: 1, off: 0, true: 1, false: 0, yes: 1, no: 0 };
const isSize = (row: ParameterRow) => row.unit === 'bytes' || row.unit === 'bytes/s';
/** Row units per flag unit: a flag in seconds holds 1000 of an 'ms' row's units. */
const PER_FLAG_UNIT = { s: 1000 } as const;
const perFlagUnit = (row: ParameterRow) => (row.flagUnit === undefined ? 1 : PER_FLAG_UNIT[row.flagUnit]);

/** A size in binary units as people read them: 64G, 16M + 4K, 1M + 4. */
export function sizeText(bytes: number): string {
  const parts: string[] = [];
  let rest = bytes;
  for (const [suffix, unit] of [['T', 1024 ** 4], ['G', 1024 ** 3], ['M', 1024 ** 2], ['K', 1024]] as const) {
    if (rest >= unit) parts.push(`${Math.floor(rest / unit)}${suffix}`);
    rest %= unit;
  }
  if (rest > 0 || parts.length === 0) parts.push(String(rest));
  return parts.join(' + ');
}

/** A row's value `n` as its flag writes it (a size, seconds, a whole number). */
export function flagText(row: ParameterRow, n: number): string {
  if (row.unit === 'bool') return n === 0 ? 'off' : 'on';
  if (row.unit === 'choice') return row.choices![n];
  return isSize(row) ? sizeText(n) : String(n / perFlagUnit(row));
}

function usageLine(flag: string, row: ParameterRow, side: Side, column: number, commandDefault?: number): string {
  const head = `  --${flag} ${row.flagUnit === 's' ? 'SECONDS' : row.unit === 'choice' ? row.choices!.join('|') : METAVAR[row.unit]}`;
  const means = commandDefault === undefined && row.defaultMeans !== undefined ? `: ${row.defaultMeans}` : '';
  const none = commandDefault !== undefined && row.min === 0 && row.defaultMeans !== undefined ? `; 0: ${row.defaultMeans}` : '';
  const least = row.min > 1 ? `; at least ${flagText(row, row.min)}` : '';
  return `${head.length < column ? head.padEnd(column) : `${head}  `}${row.sides[side]} (default ${flagText(row, commandDefault ?? row.default)}${means}${none}${least})`;
}

/** `text` given for `--flag`, as the flag's unit reads it and within its range; in the row's unit. */
export function parseFlag(flag: string, row: ParameterRow, text: string): number {
  const per = perFlagUnit(row);
  if (row.unit === 'bool') {
    const n = SWITCH[text.toLowerCase()];
    if (n === undefined) throw new InvalidArgumentError(`--${flag}: expected on or off, got ${JSON.stringify(text)}`);
    return n;
  }
  if (row.unit === 'choice') {
    const n = choiceIndex(row, text);
    if (n === undefined) throw new InvalidArgumentError(`--${flag}: expected one of ${row.choices!.join(', ')}, got ${JSON.stringify(text)}`);
    return n;
  }
  if (!isSize(row)) return parseCount(`--${flag}`, text, Math.ceil(row.min / per), Math.floor(row.max / per)) * per;
  const n = parseSize(text, `--${flag}`, row.bareSize ?? 'bytes');
  if (n < row.min || n > row.max) {
    const range = row.max === Number.MAX_SAFE_INTEGER ? `of at least ${sizeText(row.min)}` : `from ${sizeText(row.min)} to ${sizeText(row.max)}`;
    throw new InvalidArgumentError(`--${flag}: expected a size ${range}, got ${JSON.stringify(text)}`);
  }
  if (row.powerOfTwoRefusal !== undefined && !isPowerOfTwo(n)) throw new InvalidArgumentError(`--${flag}: expected a power of two (64M, 512M), got ${JSON.stringify(text)}`);
  return n;
}

/**
 * The flags of `side`'s rows that have one, or of the rows `only` among
 * them; `defaults`: the command's own defaults (checked here against their rows).
 */
export function parameterFlags<S extends Side, K extends keyof ParametersOf<S> & ParameterKey>(
  side: S, only?: readonly K[], defaults: Partial<Record<NoInfer<K>, number>> = {},
): ParameterFlags<K> {
  const rows = parameterRows(side)
    .filter(([key, row]) => row.flag !== null && (only === undefined || only.includes(key as K)))
    .map(([key, row]) => ({ key: key as K, flag: row.flag!, row, commandDefault: defaults[key as K] }));
  for (const { key, commandDefault } of rows) if (commandDefault !== undefined) checkParameter(key, commandDefault, `the command-line default of ${key}`);
  return {
    options: Object.fromEntries(rows.map(({ flag }) => [flag, { type: 'string' }])) as ParameterFlags<K>['options'],
    usage: (column) => rows.map(({ flag, row, commandDefault }) => usageLine(flag, row, side, column, commandDefault)).join('\n'),
    parse(values) {
      const out: Partial<Record<K, number>> = {};
      for (const { key, flag, row, commandDefault } of rows) {
        const text = values[flag];
        if (typeof text === 'string') out[key] = parseFlag(flag, row, text);
        else if (commandDefault !== undefined) out[key] = commandDefault;
      }
      return out;
    },
  };
}

/** Parameters by their QMP names, for migrate-set-parameters (rows without a QMP name are left out; 'bool' rows as booleans). */
export function qmpArguments(parameters: Partial<Record<ParameterKey, number>>): Record<string, number | boolean | string> {
  const out: Record<string, number | boolean | string> = {};
  for (const [key, value] of Object.entries(parameters) as [ParameterKey, number | undefined][]) {
    const row: ParameterRow = PARAMETER_TABLE[key];
    if (row.qmp !== null && value !== undefined) out[row.qmp] = row.unit === 'bool' ? value !== 0 : row.unit === 'choice' ? row.choices![value] : value;
  }
  return out;
}
