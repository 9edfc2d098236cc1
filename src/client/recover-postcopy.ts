/**
 * Recovering a paused post-copy from outside, as a QMP client of both
 * sides (`ferry recover`, as `virsh migrate --postcopy-resume`): the
 * destination listens again (migrate-recover), its address is read back
 * from query-migrate (a tcp: port 0 becomes the real port), the source
 * connects there (migrate with resume), and both are followed, bounded,
 * until the source is in post-copy again, has completed, or paused again.
 */
import type { QmpClient } from '../control/qmp-client.js';
import type { MigrateInfo } from '../control/query-migrate.js';
import { sleep } from '../migration/waiter.js';

/** How long a recovery may take to leave postcopy-recover-setup / postcopy-recover before it is reported as stuck. */
export const RECOVER_WAIT_MS = 60_000;

export interface RecoveryOutcome {
  /** The source's status at the end: postcopy-active or completed when recovered; postcopy-paused when it failed again. */
  readonly status: string;
  /** Where the destination listened for the recovery. */
  readonly address: string;
  /** Why it paused again, when it did. */
  readonly reason: string | null;
}

/** The address a destination listens on, from its query-migrate answer. */
function listenAddress(info: MigrateInfo): string | null {
  const a = info['socket-address']?.[0];
  if (a === undefined) return null;
  return a.type === 'inet' ? `tcp:${a.host}:${a.port}` : `unix:${a.path}`;
}

/**
 * Recover over `listen` (the destination's address to listen on; the
 * source must reach it). QMP errors (nothing paused, QEMU's words) reject
 * as the server's QmpError.
 */
export async function recoverPostcopy(source: QmpClient, destination: QmpClient, listen: string, waitMs = RECOVER_WAIT_MS): Promise<RecoveryOutcome> {
  await destination.execute('migrate-recover', { uri: listen });
  const address = listenAddress((await destination.execute('query-migrate')) as MigrateInfo) ?? listen;
  const before = ((await source.execute('query-migrate')) as MigrateInfo)['x-ferry-pause-reason'];
  await source.execute('migrate', { uri: address, resume: true });
  const deadline = performance.now() + waitMs;
  let info = (await source.execute('query-migrate')) as MigrateInfo;
  // The source leaves postcopy-paused soon after the resume was accepted; a recovery that fails brings it back with a new reason.
  for (let seen = false; performance.now() < deadline; ) {
    seen ||= info.status !== 'postcopy-paused' || info['x-ferry-pause-reason'] !== before;
    if (seen && !info.status.startsWith('postcopy-recover')) break;
    await sleep(50);
    info = (await source.execute('query-migrate')) as MigrateInfo;
  }
  return { status: info.status, address, reason: info['x-ferry-pause-reason'] ?? null };
}
