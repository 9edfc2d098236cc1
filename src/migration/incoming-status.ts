/**
 * The destination's status, with its one table of allowed transitions (as
 * status.ts is the source's); the guarded `transition` is
 * state-machine.ts's:
 *
 *   listening -> connected -> loading -> loaded -> resumed
 *   loaded -> postcopy-active -> resumed
 *   postcopy-active -> postcopy-paused -> postcopy-recover-setup -> postcopy-recover -> postcopy-active
 *   any but resumed -> failed | cancelled
 *
 * connected: a source connected (or the file opened); loading: its header
 * was accepted and the guest is being created around the RAM; loaded: END
 * checked and every section accepted (LOADED sent); postcopy-active: GO
 * obeyed with pages still missing (post-copy), until every page is here;
 * postcopy-paused: the link broke in post-copy, nothing discarded, until
 * migrate-recover listens again (postcopy-recover-setup) and the source
 * connects (postcopy-recover); a recovery that fails pauses it again
 * (postcopy-recovery.ts); resumed: GO obeyed and every page here.
 */
import { StateMachine } from '../state-machine.js';
import { createTracer } from '../trace.js';

export type IncomingStatus =
  | 'listening' | 'connected' | 'loading' | 'loaded' | 'postcopy-active' | 'postcopy-paused' | 'postcopy-recover-setup' | 'postcopy-recover'
  | 'resumed' | 'failed' | 'cancelled';

const ALLOWED: Readonly<Record<IncomingStatus, readonly IncomingStatus[]>> = {
  listening: ['connected', 'failed', 'cancelled'],
  connected: ['loading', 'failed', 'cancelled'],
  loading: ['loaded', 'failed', 'cancelled'],
  loaded: ['resumed', 'postcopy-active', 'failed', 'cancelled'],
  'postcopy-active': ['resumed', 'postcopy-paused', 'failed', 'cancelled'],
  'postcopy-paused': ['postcopy-recover-setup', 'failed', 'cancelled'],
  'postcopy-recover-setup': ['postcopy-recover', 'postcopy-paused', 'failed', 'cancelled'],
  'postcopy-recover': ['postcopy-active', 'postcopy-paused', 'resumed', 'failed', 'cancelled'],
  resumed: [],
  failed: [],
  cancelled: [],
};

/** From GO of a post-copy on, paused and recovering included. */
export function incomingInPostcopy(s: IncomingStatus): boolean {
  return s === 'postcopy-active' || s === 'postcopy-paused' || s === 'postcopy-recover-setup' || s === 'postcopy-recover';
}

export function isIncomingFinished(s: IncomingStatus): boolean {
  return s === 'resumed' || s === 'failed' || s === 'cancelled';
}

const trace = createTracer('incoming');

export function incomingStateMachine(): StateMachine<IncomingStatus> {
  return new StateMachine<IncomingStatus>('incoming migration', ALLOWED, 'listening', trace);
}
