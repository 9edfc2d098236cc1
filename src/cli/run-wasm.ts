/**
 * `ferry run --wasm PROGRAM [-- ARGS...]`: run a WebAssembly (WASI) program
 * as the guest. Its standard output and error are this process's; ferry's
 * own lines go to standard error. Without --migrate-to or --qmp it runs to
 * the end and this process exits with the program's status, as wasmtime
 * does; with --migrate-to it migrates after --seconds, and exits 0 once the
 * program runs at the destination.
 */
import { Guest } from '../guest/guest.js';
import { prepareMigrationThread } from '../migration/migration.js';
import type { MigrationParameters } from '../migration/parameters.js';
import { sleep } from '../migration/waiter.js';
import { SIGNAL_EXIT_CODE } from '../client/interrupts.js';
import { parseControlUri, parseUri } from '../transport/uri.js';
import { COMMAND_FLAGS, parseNumberFlag } from './number-flags.js';
import { type TLS_OPTIONS, checkedTls } from './options.js';
import { migrateGuest, serveQmp } from './run-source.js';
import { loadGuestProgram, programEnd, type WasmValues } from './wasm-program.js';

interface RunWasmValues extends WasmValues, Partial<Record<keyof typeof TLS_OPTIONS, string>> {
  readonly seconds: string;
  readonly 'migrate-to'?: string;
  readonly qmp?: string;
  readonly verify: boolean;
  readonly 'auto-converge': boolean;
  readonly 'dirty-limit': boolean;
  readonly multifd: boolean;
  readonly xbzrle: boolean;
  readonly postcopy: boolean;
  readonly force: boolean;
  readonly json: boolean;
}

export async function runWasmCommand(values: RunWasmValues, parameters: Partial<MigrationParameters>, programArgs: readonly string[]): Promise<number> {
  const seconds = parseNumberFlag(COMMAND_FLAGS.seconds, values.seconds);
  const uri = values['migrate-to'];
  if (values.qmp !== undefined) parseControlUri(values.qmp);
  const tls = checkedTls(values, 'source', uri === undefined ? undefined : parseUri(uri));
  const log = values.json ? () => {} : (s: string) => console.error(s); // the program owns standard output
  if (uri !== undefined) prepareMigrationThread();
  const { program, seed } = await loadGuestProgram(values, programArgs);
  const guest = await Guest.create({ program });
  const exited = programEnd(guest, log);
  try {
    log(`ferry: running ${values.wasm} (module ${program.instrumented.identity.slice(0, 12)}, seed ${seed})`);
    await guest.cont();
    if (values.qmp !== undefined) return await serveQmp(guest, values.qmp, tls, values.force, log);
    if (uri === undefined) return await exited;
    const early = await Promise.race([exited, sleep(seconds * 1000).then(() => null)]);
    if (early !== null) {
      log(`ferry: the program exited (status ${early}) before the migration was due`);
      return early;
    }
    const m = await migrateGuest(guest, uri, parameters, {
      verify: values.verify, autoConverge: values['auto-converge'], dirtyLimit: values['dirty-limit'], multifd: values.multifd, xbzrle: values.xbzrle,
      postcopy: values.postcopy, tls, force: values.force, json: values.json, log, out: (s) => console.error(s),
    });
    if (m.interrupted === null) return m.code;
    log(`ferry: ${m.interrupted}: the migration was cancelled; the program stops here`);
    return SIGNAL_EXIT_CODE[m.interrupted];
  } finally {
    await guest.destroy();
  }
}
