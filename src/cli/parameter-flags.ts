/**
 * The migration parameters on the command line, derived from their table
 * (migration/parameters.ts): a side's flags as parseArgs options, their
 * usage lines, and their parsing, with range checks whose messages name
 * the flag. The source's flags belong to `ferry run` and `ferry migrate`,
 * the destination's to `ferry incoming`; `ferry demo` takes a chosen few.
 */
import { InvalidArgumentError } from '../errors.js';
import { PARAMETER_TABLE, parameterRows, type ParameterKey, type ParameterRow, type ParametersOf, type Side } from '../migration/parameters.js';
import { parseCount } from './options.js';
import { parseSize } from '../client/size.js';

type Table = typeof PARAMETER_TABLE;
/** The flags of the rows `K` (rows without a flag have none). */
export type FlagOf<K extends ParameterKey> = { [P in K]: Table[P]['flag'] }[K] & string;

export interface ParameterFlags<K extends ParameterKey> {
  /** For parseArgs: every flag takes a string, which `parse` checks. */
  readonly options: { readonly [F in FlagOf<K>]: { readonly type: 'string' } };
  /** The usage lines, each flag's help text starting at `column`. */
  usage(column: number): string;
  /** The parameters given in parseArgs' `values` (absent flags are absent), checked against their rows. */
  parse(values: Readonly<Record<string, unknown>>): Partial<Record<K, number>>;
}

const METAVAR: Record<ParameterRow['unit'], string> = { ms: 'MS', bytes: 'SIZE', 'bytes/s': 'SIZE', percent: 'PCT' };
const isSize = (row: ParameterRow) => row.unit === 'bytes' || row.unit === 'bytes/s';

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

function valueText(row: ParameterRow, n: number): string {
  return isSize(row) ? sizeText(n) : String(n);
}

function usageLine(flag: string, row: ParameterRow, side: Side, column: number): string {
  const head = `  --${flag} ${METAVAR[row.unit]}`;
  const means = row.defaultMeans === undefined ? '' : `: ${row.defaultMeans}`;
  const least = row.min > 1 ? `; at least ${valueText(row, row.min)}` : '';
  return `${head.length < column ? head.padEnd(column) : `${head}  `}${row.sides[side]} (default ${valueText(row, row.default)}${means}${least})`;
}

/** `text` given for `--flag`, as the row's unit reads it and within its range. */
export function parseFlag(flag: string, row: ParameterRow, text: string): number {
  if (!isSize(row)) return parseCount(`--${flag}`, text, row.min, row.max);
  const n = parseSize(text, `--${flag}`);
  if (n < row.min || n > row.max) {
    const range = row.max === Number.MAX_SAFE_INTEGER ? `of at least ${sizeText(row.min)}` : `from ${sizeText(row.min)} to ${sizeText(row.max)}`;
    throw new InvalidArgumentError(`--${flag}: expected a size ${range}, got ${JSON.stringify(text)}`);
  }
  return n;
}

/** The flags of `side`'s rows that have one, or of the rows `only` among them. */
export function parameterFlags<S extends Side, K extends keyof ParametersOf<S> & ParameterKey>(side: S, only?: readonly K[]): ParameterFlags<K> {
  const rows = parameterRows(side)
    .filter(([key, row]) => row.flag !== null && (only === undefined || only.includes(key as K)))
    .map(([key, row]) => ({ key: key as K, flag: row.flag!, row }));
  return {
    options: Object.fromEntries(rows.map(({ flag }) => [flag, { type: 'string' }])) as ParameterFlags<K>['options'],
    usage: (column) => rows.map(({ flag, row }) => usageLine(flag, row, side, column)).join('\n'),
    parse(values) {
      const out: Partial<Record<K, number>> = {};
      for (const { key, flag, row } of rows) {
        const text = values[flag];
        if (typeof text === 'string') out[key] = parseFlag(flag, row, text);
      }
      return out;
    },
  };
}

/** Parameters by their QMP names, for migrate-set-parameters (rows without a QMP name are left out). */
export function qmpArguments(parameters: Partial<Record<ParameterKey, number>>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [key, value] of Object.entries(parameters) as [ParameterKey, number | undefined][]) {
    const qmp = PARAMETER_TABLE[key].qmp;
    if (qmp !== null && value !== undefined) out[qmp] = value;
  }
  return out;
}
