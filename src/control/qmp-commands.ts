/**
 * The QMP commands ferry answers, with QEMU's names, arguments and answers
 * (QEMU 7.2 where in doubt). ferry-only commands carry an `x-ferry-` prefix.
 */
import { ferryCodeOf } from '../errors.js';
import type { Guest } from '../guest/guest.js';
import { checkSweep } from '../guest/sweep-checker.js';
import type { SweepState } from '../guest/workloads/sweep.js';
import { isFinished } from '../migration/status.js';
import { capabilityConflict, isCapability, type CapabilityName } from '../migration/capabilities.js';
import { checkParameter, choiceIndex, isPowerOfTwo, PARAMETER_TABLE, parameterRows, type MigrationParameters, type ParameterRow } from '../migration/parameters.js';
import type { GuestController } from './controller.js';
import { contRefusal, quitRefusal } from './one-copy.js';
import { queryMigrate } from './query-migrate.js';

/**
 * A QMP error: its class is QEMU's (GenericError, CommandNotFound, ...).
 * `ferryCode` is the code of the ferry error behind it, if any: the server
 * sends it beside QEMU's `class` and `desc` as `x-ferry-code`, and the
 * client reads it back.
 */
export class QmpError extends Error {
  constructor(readonly errorClass: string, desc: string, readonly ferryCode?: string) {
    super(desc);
  }

  /** A GenericError with the message of `err` and its ferry code (a QmpError stays as it is). */
  static from(err: unknown): QmpError {
    if (err instanceof QmpError) return err;
    return new QmpError('GenericError', (err as Error).message, ferryCodeOf(err));
  }
}

export type Args = Record<string, unknown>;
export type Command = (ctl: GuestController, args: Args) => unknown;

function arg<T>(args: Args, name: string, type: 'string' | 'number' | 'boolean', required: boolean): T | undefined {
  const v = args[name];
  if (v === undefined) {
    if (required) throw new QmpError('GenericError', `Parameter '${name}' is missing`);
    return undefined;
  }
  if (typeof v !== type || (type === 'number' && !Number.isFinite(v))) {
    throw new QmpError('GenericError', `Invalid parameter type for '${name}', expected: ${type === 'number' ? 'integer' : type}`);
  }
  return v as T;
}

/** No arguments but those named in `allowed`. */
function noArgs(args: Args, ...allowed: string[]): void {
  const extra = Object.keys(args).find((name) => !allowed.includes(name));
  if (extra !== undefined) throw new QmpError('GenericError', `Parameter '${extra}' is unexpected`);
}

/** QMP parameter names and ferry's, from the table (the rows of the source side that have a QMP name). */
const PARAMETERS: ReadonlyMap<string, keyof MigrationParameters> = new Map(
  parameterRows('source').flatMap(([key, row]) => (row.qmp === null ? [] : [[row.qmp, key] as const])),
);

/** The guest, or QEMU's error for a destination still waiting for one. */
function guestOf(ctl: GuestController): Guest {
  if (ctl.guest === null) throw new QmpError('GenericError', 'Guest is waiting for an incoming migration');
  return ctl.guest;
}

export const COMMANDS: Record<string, Command> = {
  'query-status': (ctl, args) => {
    noArgs(args);
    const status = ctl.guest?.runState ?? 'inmigrate';
    return { status, singlestep: false, running: status === 'running' };
  },
  stop: async (ctl, args) => {
    noArgs(args);
    await guestOf(ctl).stop().catch((e: unknown) => { throw QmpError.from(e); });
    return {};
  },
  /** `x-ferry-force: true` continues a guest that migrated away (a deviation from QEMU, which allows that plainly). */
  cont: async (ctl, args) => {
    noArgs(args, 'x-ferry-force');
    const force = arg<boolean>(args, 'x-ferry-force', 'boolean', false) === true;
    const g = guestOf(ctl);
    const refusal = contRefusal(g, ctl.migration, force);
    if (refusal !== null) throw new QmpError('GenericError', refusal, 'ERR_FERRY_INVALID_STATE');
    await g.cont({ force }).catch((e: unknown) => { throw QmpError.from(e); });
    return {};
  },
  'migrate-incoming': async (ctl, args) => {
    const uri = arg<string>(args, 'uri', 'string', true)!;
    // QEMU's two refusals: a guest not started with -incoming, and a second migrate-incoming.
    if (ctl.incoming === null && ctl.guest !== null) {
      throw new QmpError('GenericError', `'-incoming' was not specified on the command line: this guest runs here (it is ${ctl.guest.runState}) ` +
        "and can only be a migration's source; start the destination with 'ferry incoming --qmp CONTROL' and send migrate-incoming there");
    }
    if (ctl.incoming !== null) throw new QmpError('GenericError', 'The incoming migration has already been started');
    await ctl.migrateIncoming(uri).catch((e: unknown) => { throw QmpError.from(e); });
    return {};
  },
  migrate: (ctl, args) => {
    guestOf(ctl);
    const uri = arg<string>(args, 'uri', 'string', true)!;
    for (const name of ['blk', 'inc', 'detach', 'resume']) arg<boolean>(args, name, 'boolean', false);
    if (args.blk === true || args.inc === true) throw new QmpError('GenericError', 'block migration is not supported by ferry');
    const m = ctl.migration;
    if (args.resume === true) {
      // QEMU's refusal: only a paused post-copy resumes (migration.ts resume).
      if (m === null) throw new QmpError('GenericError', 'Cannot resume if there is no paused migration');
      try {
        m.resume(uri);
      } catch (e) {
        throw QmpError.from(e);
      }
      return {};
    }
    if (m !== null && !isFinished(m.status)) throw new QmpError('GenericError', 'There\'s a migration process in progress');
    try {
      ctl.migrate(uri);
    } catch (e) {
      throw QmpError.from(e);
    }
    return {};
  },
  /** The destination's side of post-copy recovery: listen on `uri` for the source's `migrate` with resume (incoming.ts recover). */
  'migrate-recover': async (ctl, args) => {
    const uri = arg<string>(args, 'uri', 'string', true)!;
    if (ctl.incoming === null) throw new QmpError('GenericError', 'Migrate recover can only be run when postcopy is paused.');
    await ctl.incoming.recover(uri).catch((e: unknown) => { throw QmpError.from(e); });
    return {};
  },
  'query-migrate': (ctl, args) => {
    noArgs(args);
    return queryMigrate(ctl);
  },
  migrate_cancel: (ctl, args) => {
    noArgs(args);
    try {
      ctl.migration?.cancel();
    } catch (e) {
      throw QmpError.from(e); // in post-copy: QEMU's refusal
    }
    return {};
  },
  /** QEMU's errors: the capability off, or no migration started (migration.ts startPostcopy). */
  'migrate-start-postcopy': (ctl, args) => {
    noArgs(args);
    const m = ctl.migration;
    if (!ctl.capabilities['postcopy-ram'] || (m !== null && !isFinished(m.status) && !m.postcopyCapability)) {
      throw new QmpError('GenericError', 'Enable postcopy with migrate_set_capability before the start of migration');
    }
    if (m === null) throw new QmpError('GenericError', 'Postcopy must be started after migration has been started');
    try {
      m.startPostcopy();
    } catch (e) {
      throw QmpError.from(e);
    }
    return {};
  },
  /** All or nothing: every value is checked, and refused by its QMP name, before any is set. */
  'migrate-set-parameters': (ctl, args) => {
    const changes: Record<string, number> = {};
    for (const [name, value] of Object.entries(args)) {
      const ours = PARAMETERS.get(name);
      if (ours === undefined) throw new QmpError('GenericError', `Parameter '${name}' is unexpected`);
      if (PARAMETER_TABLE[ours].unit === 'bool') {
        if (typeof value !== 'boolean') throw new QmpError('GenericError', `Invalid parameter type for '${name}', expected: boolean`);
        changes[ours] = value ? 1 : 0;
        continue;
      }
      const row: ParameterRow = PARAMETER_TABLE[ours];
      if (row.unit === 'choice') {
        // QEMU's words for an enum: a string it names, else refused.
        if (typeof value !== 'string') throw new QmpError('GenericError', `Invalid parameter type for '${name}', expected: string`);
        const index = choiceIndex(row, value);
        if (index === undefined) throw new QmpError('GenericError', `Parameter '${name}' does not accept value '${value}'`);
        changes[ours] = index;
        continue;
      }
      if (typeof value !== 'number' || !Number.isInteger(value)) {
        throw new QmpError('GenericError', `Invalid parameter type for '${name}', expected: integer`);
      }
      if (row.qmpRefusal !== undefined && (value < row.min || (value > row.max && row.max < Number.MAX_SAFE_INTEGER))) {
        throw new QmpError('GenericError', row.qmpRefusal);
      }
      if (row.powerOfTwoRefusal !== undefined && (value < row.min || !isPowerOfTwo(value))) throw new QmpError('GenericError', row.powerOfTwoRefusal);
      changes[ours] = checkParameter(ours, value, `Parameter '${name}'`); // its error reaches the client as a GenericError
    }
    ctl.setParameters(changes);
    return {};
  },
  'query-migrate-parameters': (ctl, args) => {
    noArgs(args);
    return Object.fromEntries([...PARAMETERS].map(([qmp, ours]) => {
      const value = ctl.parameters[ours];
      const row: ParameterRow = PARAMETER_TABLE[ours];
      return [qmp, row.unit === 'bool' ? value !== 0 : row.unit === 'choice' ? row.choices![value] : value];
    }));
  },
  /** All or nothing, as migrate-set-parameters; refused while a migration runs (capabilities are fixed for one). */
  'migrate-set-capabilities': (ctl, args) => {
    if (args.capabilities === undefined) throw new QmpError('GenericError', "Parameter 'capabilities' is missing");
    if (!Array.isArray(args.capabilities)) throw new QmpError('GenericError', "Invalid parameter type for 'capabilities', expected: array");
    const changes: [CapabilityName, boolean][] = [];
    for (const c of args.capabilities as unknown[]) {
      const { capability, state } = (c ?? {}) as { capability?: unknown; state?: unknown };
      if (typeof capability !== 'string' || typeof state !== 'boolean') {
        throw new QmpError('GenericError', "Each capability needs 'capability' (string) and 'state' (boolean)");
      }
      if (!isCapability(capability)) throw new QmpError('GenericError', `Parameter 'capability' does not accept value '${capability}'`);
      changes.push([capability, state]);
    }
    const m = ctl.migration;
    if (changes.length > 0 && m !== null && !isFinished(m.status)) throw new QmpError('GenericError', 'There\'s a migration process in progress');
    const conflict = capabilityConflict({ ...ctl.capabilities, ...Object.fromEntries(changes) });
    if (conflict !== null) throw new QmpError('GenericError', conflict);
    for (const [capability, state] of changes) ctl.capabilities[capability] = state;
    return {};
  },
  'query-migrate-capabilities': (ctl, args) => {
    noArgs(args);
    return Object.entries(ctl.capabilities).map(([capability, state]) => ({ capability, state }));
  },
  /** The pass history; with `since`, only passes numbered `since` and later (a client following a migration asks for what is new). */
  'x-ferry-query-passes': (ctl, args) => {
    noArgs(args, 'since');
    const since = arg<number>(args, 'since', 'number', false) ?? 0;
    if (!Number.isInteger(since) || since < 0) throw new QmpError('GenericError', "Parameter 'since' expects a pass number (an integer of at least 0)");
    return ctl.migration?.passesSince(since) ?? [];
  },
  /** Pause the guest, run the sweep checker on every sweep vCPU, then let it run again if it ran. */
  'x-ferry-query-guest': (ctl, args) => {
    noArgs(args);
    const g = guestOf(ctl);
    return { status: g.runState, 'ram-bytes': g.blocks.reduce((n, b) => n + b.byteLength, 0), vcpus: g.vcpuStats().length, 'pages-written': g.pagesWritten };
  },
  'x-ferry-check': async (ctl, args) => {
    noArgs(args);
    const g = guestOf(ctl);
    const wasRunning = g.runState === 'running';
    try {
      if (wasRunning) await g.stop();
      const checks = g.vcpuStates().flatMap((s) => (s.workload.kind === 'sweep' ? [checkSweep(g.memory, s.workload as SweepState)] : []));
      return { checked: checks.length, ok: checks.every((c) => c.ok), errors: checks.flatMap((c) => c.errors) };
    } catch (e) {
      throw QmpError.from(e);
    } finally {
      if (wasRunning) await g.cont();
    }
  },
  'query-version': (_ctl, args) => {
    noArgs(args);
    return { qemu: { major: 7, minor: 2, micro: 0 }, package: 'ferry' };
  },
  'query-commands': (_ctl, args) => {
    noArgs(args);
    return ['qmp_capabilities', ...Object.keys(COMMANDS)].map((name) => ({ name }));
  },
  'query-name': (_ctl, args) => {
    noArgs(args);
    return {};
  },
  'query-kvm': (_ctl, args) => {
    noArgs(args);
    return { enabled: false, present: false };
  },
  /** Refused while this source may hold the only copy of the guest, unless `x-ferry-force: true` (a deviation from QEMU). */
  quit: (ctl, args) => {
    noArgs(args, 'x-ferry-force');
    const force = arg<boolean>(args, 'x-ferry-force', 'boolean', false) === true;
    const refusal = force ? null : quitRefusal(ctl.migration, 'To quit anyway: {"execute": "quit", "arguments": {"x-ferry-force": true}}');
    if (refusal !== null) throw new QmpError('GenericError', `Refusing to quit: ${refusal}`, 'ERR_FERRY_INVALID_STATE');
    // A migration not yet committed is cancelled now, in this turn: were its commit handled before the
    // process ends, this process would hold the only copy (the commit is refused once cancelling).
    const m = ctl.migration;
    if (m !== null && !m.mayHoldOnlyCopy) m.cancel();
    setImmediate(() => ctl.emit('quit'));
    return {};
  },
};
