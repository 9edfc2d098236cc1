/**
 * What `ferry run` does with a running guest, for a workload or a
 * WebAssembly program alike: migrate it (printing its passes and summary),
 * or serve QMP until 'quit'.
 */
import type { Guest } from '../guest/index.js';
import { GuestController } from '../control/controller.js';
import { QmpServer } from '../control/qmp-server.js';
import { Migration, prepareMigrationThread } from '../migration/migration.js';
import type { MigrationParameters } from '../migration/parameters.js';
import { DirtyLimitNotes } from '../client/dirty-limit-notes.js';
import { ConvergenceNotes } from '../client/convergence-notes.js';
import { passLine, summaryLines } from '../client/report.js';
import { SIGNAL_EXIT_CODE, type InterruptSignal } from '../client/interrupts.js';
import { guardSourceSignals, waitCancelled } from '../client/source-interrupts.js';
import type { TlsOptions } from '../transport/tls.js';

/**
 * Migrate a running guest to `uri`, printing its passes and summary. Returns
 * the exit code, or the signal that cancelled it before GO (the guest then
 * runs on here).
 */
export async function migrateGuest(guest: Guest, uri: string, parameters: Partial<MigrationParameters>,
  o: { verify: boolean; autoConverge?: boolean; dirtyLimit?: boolean; multifd?: boolean; xbzrle?: boolean; postcopy?: boolean; tls: TlsOptions | undefined; force: boolean; json: boolean; log: (s: string) => void; out?: (s: string) => void }): Promise<{ code: number; interrupted: InterruptSignal | null }> {
  let interrupted: InterruptSignal | null = null;
  const m = Migration.start(guest, uri, parameters, { verify: o.verify, autoConverge: o.autoConverge === true, dirtyLimit: o.dirtyLimit === true, multifd: o.multifd === true, xbzrle: o.xbzrle === true, postcopy: o.postcopy === true, tls: o.tls });
  const notes = new ConvergenceNotes();
  const limits = new DirtyLimitNotes();
  m.on('pass', (p) => {
    o.log(passLine(p));
    const note = notes.note(p);
    if (note !== null) o.log(note);
  });
  m.on('stats', () => {
    const limit = limits.note(m.dirtyLimitFigures?.vcpus);
    if (limit !== null) o.log(limit);
  });
  m.on('status', (status) => {
    if (status === 'postcopy-paused') {
      o.log(`ferry run: post-copy paused: ${m.pauseReason ?? ''}; this process holds the pages the destination lacks, and waits: ` +
        'a recovery needs QMP on both sides (ferry run --qmp and ferry incoming --qmp, then ferry recover)');
    }
  });
  const unguard = guardSourceSignals({
    migration: () => m, force: o.force, override: 'To end it anyway, start ferry run with --force.',
    say: (line) => console.error(line), end: (signal) => { interrupted = signal; },
  });
  const r = await m.done().finally(unguard);
  const cancelled = interrupted !== null && r.status !== 'completed';
  if (o.json && !cancelled) (o.out ?? console.log)(JSON.stringify({ status: r.status, error: r.error, stats: r.stats }, null, 2));
  else for (const line of summaryLines(r.status, r.stats, r.error)) o.log(line);
  if (cancelled) return { code: 1, interrupted };
  // The last line says how it ended, when it did not complete (e.g. cancelled by --timeout, and why).
  if (r.status !== 'completed') o.log(`ferry run: migration ${r.status}${r.error === null ? '' : `: ${r.error}`}`);
  return { code: r.status === 'completed' ? 0 : 1, interrupted: null };
}

/**
 * Serve QMP until 'quit' or Ctrl-C/SIGTERM. Either cancels a migration in
 * progress and waits (bounded) for it to end; both are refused while this
 * source may hold the only copy of the guest (source-interrupts.ts,
 * control/one-copy.ts). Exit code 0 after quit, 128 + the signal's number
 * after a signal.
 */
export async function serveQmp(guest: Guest, control: string, tls: TlsOptions | undefined, force: boolean, log: (s: string) => void): Promise<number> {
  prepareMigrationThread();
  const ctl = new GuestController(guest, { tls });
  const server = await QmpServer.listen(control, ctl);
  log(`QMP control socket on ${server.uri}; 'quit' ends this guest`);
  let signal: InterruptSignal | null = null;
  let unguard = () => {};
  try {
    await new Promise<void>((resolve) => {
      ctl.once('quit', resolve);
      unguard = guardSourceSignals({
        migration: () => ctl.migration, force, say: (line) => console.error(line),
        override: 'To end it anyway: QMP quit with "x-ferry-force": true, or start ferry run with --force.',
        end: (s) => { signal = s; resolve(); },
      });
    });
    // A migration still running is cancelled first (a signal already did), so that the process ends now.
    const code = signal === null ? 0 : SIGNAL_EXIT_CODE[signal];
    const m = ctl.migration;
    if (m?.mayHoldOnlyCopy === true) process.exit(code); // quit with x-ferry-force past GO: nothing to cancel or wait for
    m?.cancel();
    await waitCancelled(m, (line) => console.error(line));
    return code;
  } finally {
    unguard();
    server.close();
  }
}

