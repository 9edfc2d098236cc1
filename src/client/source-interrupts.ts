/**
 * Ctrl-C (SIGINT) and SIGTERM on a source process (`ferry run
 * --migrate-to`, `ferry run --qmp`). The decision rule, per signal:
 *
 *   1. past the commit, while this process may hold the only copy of the
 *      guest (Migration.mayHoldOnlyCopy), and not forced: refused; say why
 *      and keep going (the migration completes or fails on its own)
 *   2. past the commit with --force (the deliberate override): end the
 *      process at once, as the signal itself would have (the migration
 *      cannot be cancelled any more, nor waited for)
 *   3. otherwise: cancel the migration in progress, if any (before GO the
 *      source guest runs on, intact), and end the process
 */
import { quitRefusal } from '../control/one-copy.js';
import type { Migration } from '../migration/migration.js';
import { isFinished } from '../migration/status.js';
import { SIGNAL_EXIT_CODE, onInterrupt, type InterruptSignal } from './interrupts.js';

export interface SourceInterruptOptions {
  /** The migration now in progress or last run, if any. */
  migration(): Migration | null;
  /** Given --force: a signal ends the process even past the commit. */
  readonly force: boolean;
  /** How this process can be ended anyway (for the refusal). */
  readonly override: string;
  /** A line for the user (stderr). */
  say(line: string): void;
  /** The process should end now (after the migration, if one was cancelled, has ended). */
  end(signal: InterruptSignal): void;
}

/** Guard a source process's signals until the returned function is called. */
export function guardSourceSignals(o: SourceInterruptOptions): () => void {
  return onInterrupt((signal) => {
    const m = o.migration();
    const refusal = o.force ? null : quitRefusal(m, o.override);
    if (refusal !== null) {
      o.say(`ferry: ${signal} refused: ${refusal}`);
      return;
    }
    if (m?.mayHoldOnlyCopy === true) {
      o.say(`ferry: ${signal} with --force: ending now, past GO; the migration to ${m.uri} is left to the destination`);
      process.exit(SIGNAL_EXIT_CODE[signal]);
    }
    if (m !== null && !isFinished(m.status)) {
      o.say(`ferry: ${signal}: cancelling the migration to ${m.uri}`);
      m.cancel();
    }
    o.end(signal);
  });
}

/**
 * Bound on the wait for a cancelled migration to end, ms. Cancel ends a
 * migration at its next step, or within the switchover's own timeouts
 * when it is switching over (default 10 s each); past this the process
 * ends anyway and says so.
 */
export const CANCEL_WAIT_MS = 30_000;

/** Wait (bounded) for a migration cancelled by a signal to end (none, or one already ended: nothing to wait for); `say` how it ended. */
export async function waitCancelled(m: Migration | null, say: (line: string) => void): Promise<void> {
  if (m === null || isFinished(m.status)) return;
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<null>((resolve) => { timer = setTimeout(() => resolve(null), CANCEL_WAIT_MS); });
  const r = await Promise.race([m.done(), late]).finally(() => clearTimeout(timer));
  say(r === null ? `ferry: the migration did not end within ${CANCEL_WAIT_MS} ms of the cancel (status ${m.status})` : `ferry: migration ${r.status}`);
}
