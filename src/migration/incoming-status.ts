/**
 * The destination's status, with its one table of allowed transitions (as
 * status.ts is the source's); the guarded `transition` is
 * state-machine.ts's:
 *
 *   listening -> connected -> loading -> loaded -> resumed
 *   loaded -> postcopy-active -> resumed
 *   any but resumed -> failed | cancelled
 *
 * connected: a source connected (or the file opened); loading: its header
 * was accepted and the guest is being created around the RAM; loaded: END
 * checked and every section accepted (LOADED sent); postcopy-active: GO
 * obeyed with pages still missing (post-copy), until every page is here;
 * resumed: GO obeyed and every page here.
 */
import { StateMachine } from '../state-machine.js';
import { createTracer } from '../trace.js';

export type IncomingStatus = 'listening' | 'connected' | 'loading' | 'loaded' | 'postcopy-active' | 'resumed' | 'failed' | 'cancelled';

const ALLOWED: Readonly<Record<IncomingStatus, readonly IncomingStatus[]>> = {
  listening: ['connected', 'failed', 'cancelled'],
  connected: ['loading', 'failed', 'cancelled'],
  loading: ['loaded', 'failed', 'cancelled'],
  loaded: ['resumed', 'postcopy-active', 'failed', 'cancelled'],
  'postcopy-active': ['resumed', 'failed', 'cancelled'],
  resumed: [],
  failed: [],
  cancelled: [],
};

export function isIncomingFinished(s: IncomingStatus): boolean {
  return s === 'resumed' || s === 'failed' || s === 'cancelled';
}

const trace = createTracer('incoming');

export function incomingStateMachine(): StateMachine<IncomingStatus> {
  return new StateMachine<IncomingStatus>('incoming migration', ALLOWED, 'listening', trace);
}
