/**
 * Claiming a path for a Unix socket we are about to listen on (`--qmp
 * unix:PATH`, `--listen unix:PATH`): nothing of the user's is replaced
 * (STYLE.md habit 18). The decision rule:
 *
 *   1. nothing at PATH                      -> free, listen
 *   2. a socket that refuses a connection   -> stale (its process is gone): remove it, listen
 *      (ECONNREFUSED, as a socket left behind by a process that was killed)
 *   3. a socket that accepts a connection   -> in use by a running process: refuse
 *   4. a socket that neither accepts nor refuses within the bound (a full backlog,
 *      a process stopped in a debugger) -> treated as in use: refuse
 *   5. anything else (a regular file, a directory, a link, a FIFO) -> refuse
 *
 * Between the check and the listen another process could take the path;
 * then listen fails with EADDRINUSE and says so, and nothing is removed.
 */
import { lstatSync, unlinkSync, type Stats } from 'node:fs';
import net from 'node:net';
import { TransportError } from '../errors.js';

/** How long a socket at the path may take to accept or refuse a connection, ms (a live local process answers in well under 1 ms). */
export const SOCKET_PROBE_MS = 2000;

/** What is at `path`, in words, for a refusal (null when it is a socket: that one is probed). */
function kindOf(st: Stats): string | null {
  if (st.isSocket()) return null;
  if (st.isFile()) return 'a regular file';
  if (st.isDirectory()) return 'a directory';
  if (st.isSymbolicLink()) return 'a symbolic link';
  if (st.isFIFO()) return 'a FIFO';
  return 'not a socket';
}

/** Whether a process answers on the socket at `path`: 'live', 'stale' (refused or gone), or an error text. */
function probe(path: string, timeoutMs: number): Promise<'live' | 'stale' | string> {
  return new Promise((resolve) => {
    const socket = net.connect({ path });
    const done = (answer: 'live' | 'stale' | string) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(answer);
    };
    const timer = setTimeout(() => done(`it neither accepted nor refused a connection within ${timeoutMs} ms`), timeoutMs);
    socket.once('connect', () => done('live'));
    socket.once('error', (err: NodeJS.ErrnoException) => {
      done(err.code === 'ECONNREFUSED' || err.code === 'ENOENT' ? 'stale' : `connecting to it failed: ${err.message}`);
    });
  });
}

/**
 * Make `path` free for a Unix socket to listen on: remove a stale socket
 * there, refuse anything else (TransportError naming the path and what is
 * there). `what` names the socket in messages ("QMP control socket").
 */
export async function claimSocketPath(path: string, what: string, timeoutMs = SOCKET_PROBE_MS): Promise<void> {
  let st: Stats;
  try {
    st = lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new TransportError(`${what}: cannot use ${path}: ${(err as Error).message}`, { cause: err });
  }
  const kind = kindOf(st);
  if (kind !== null) throw new TransportError(`${what}: ${path} is ${kind}; refusing to replace it (pick another path)`);
  const answer = await probe(path, timeoutMs);
  if (answer === 'live') {
    throw new TransportError(`${what}: ${path} is in use by a running process; refusing to replace it (stop that process or pick another path)`);
  }
  if (answer !== 'stale') throw new TransportError(`${what}: ${path} is a socket that may be in use (${answer}); refusing to replace it`);
  // Another process may have replaced the stale socket with its live one while this one probed: remove only the file probed.
  const now = lstatOrNull(path);
  if (now === null) return;
  if (now.ino !== st.ino || now.dev !== st.dev) {
    throw new TransportError(`${what}: ${path} changed while it was checked (another process took it); refusing to replace it`);
  }
  try {
    unlinkSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new TransportError(`${what}: cannot remove the stale socket ${path}: ${(err as Error).message}`, { cause: err });
    }
  }
}

function lstatOrNull(path: string): Stats | null {
  try {
    return lstatSync(path);
  } catch {
    return null;
  }
}
