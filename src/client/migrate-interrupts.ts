/**
 * Ctrl-C (SIGINT) and SIGTERM on `ferry migrate`, a QMP client following
 * the migration it started. As `virsh migrate`, a signal cancels that
 * migration and says so; the decision rule, per signal:
 *
 *   1. before `migrate` was sent: nothing started; it is not sent
 *   2. before GO: `migrate_cancel`; the follow loop sees the migration end
 *      (cancelled, the source runs on) and the command exits 1. Bounded:
 *      if it has not ended within CANCEL_END_MS the command stops
 *      following, and says so
 *   3. past GO (the source committed): refused with a message, the command
 *      keeps following; with --force it stops following and leaves the
 *      migration to end on its own in the source process
 */
import type { QmpClient } from '../control/qmp-client.js';
import { CancelledError } from '../errors.js';
import { CANCEL_END_MS, cancelMigration, describeMigration } from './cancel-migration.js';
import type { InterruptSignal } from './interrupts.js';

export class MigrateInterrupts {
  /** The first signal, if any. */
  signal: InterruptSignal | null = null;
  private started = false;
  private cancelSent = false;
  private timer: NodeJS.Timeout | undefined;
  private abandon!: () => void;
  /** Resolves when the command should stop following (rule 2's bound, or rule 3 with --force). */
  readonly abandoned = new Promise<void>((resolve) => { this.abandon = resolve; });

  constructor(private readonly qmp: QmpClient, private readonly force: boolean, private readonly say: (line: string) => void) {}

  /** followMigration's hook before it sends `migrate`: after a signal, it is not sent (rule 1). */
  beforeMigrate(): void {
    if (this.signal !== null) throw new CancelledError(`${this.signal} before the migration started: nothing was migrated`);
    this.started = true;
  }

  /** A signal arrived. */
  async handle(signal: InterruptSignal): Promise<void> {
    this.signal ??= signal;
    if (!this.started) return;
    if (this.cancelSent) {
      this.say(`ferry migrate: ${signal}: already cancelling; waiting for the migration to end`);
      return;
    }
    const found = await cancelMigration(this.qmp).catch((err: Error) => {
      this.say(`ferry migrate: ${signal}: cannot cancel: ${err.message}`);
      return null;
    });
    if (found === null || found.phase === 'idle') return; // it ended meanwhile: the follow loop reports how
    if (found.phase === 'past-go') {
      if (this.force) {
        this.say(`ferry migrate: ${signal} with --force: no longer following the migration; it is past GO and ends on its own in the source process`);
        this.abandon();
        return;
      }
      this.say(`ferry migrate: ${signal} refused: the migration is past GO (${describeMigration(found.info!)}), too late to cancel; ` +
        'until the destination confirms, the source may hold the only copy of the guest. Following it to its end (--force stops following)');
      return;
    }
    this.cancelSent = true;
    this.say(`ferry migrate: ${signal}: cancelling the migration (migrate_cancel sent); waiting for it to end`);
    this.timer = setTimeout(() => {
      this.say(`ferry migrate: the migration has not ended within ${CANCEL_END_MS / 1000} s of the cancel; see 'ferry status'`);
      this.abandon();
    }, CANCEL_END_MS);
  }

  /** Stop the bound's timer (the command is ending). */
  dispose(): void {
    clearTimeout(this.timer);
  }
}
