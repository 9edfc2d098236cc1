/**
 * Stream sockets for migration: connect to, or accept one connection on, a
 * tcp: or unix: address. Nagle is off (the stream is written in large
 * batches, and the return path's small messages must not wait).
 */
import net from 'node:net';
import tls from 'node:tls';
import { InvalidArgumentError, TransportError } from '../errors.js';
import { claimSocketPath } from './socket-path.js';
import { clientTls, isLoopback, serverTls, type TlsOptions } from './tls.js';
import type { MigrationUri } from './uri.js';

/** Declared with the other classes (errors.ts), so that it crosses threads as itself; re-exported here where it is thrown. */
export { TransportError };

function describe(uri: MigrationUri): string {
  return uri.kind === 'tcp' ? `${uri.host}:${uri.port}` : uri.path;
}

export function connect(uri: MigrationUri, timeoutMs: number, secure?: TlsOptions): Promise<net.Socket> {
  if (uri.kind === 'file') throw new InvalidArgumentError('connect: a file: URI is not a socket');
  return new Promise((resolve, reject) => {
    const where = uri.kind === 'tcp' ? { host: uri.host, port: uri.port } : { path: uri.path };
    const socket = secure === undefined ? net.connect(where) : tls.connect({ ...where, ...clientTls(secure, uri.kind === 'tcp' ? uri.host : 'localhost') });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new TransportError(`cannot reach the destination at ${describe(uri)}: no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once(secure === undefined ? 'connect' : 'secureConnect', () => {
      clearTimeout(timer);
      socket.setNoDelay(true);
      resolve(socket);
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      const what = secure === undefined ? 'cannot reach the destination' : 'TLS with the destination failed';
      reject(new TransportError(`${what} at ${describe(uri)}: ${err.message}`, { cause: err }));
    });
  });
}

/** Listen on `uri`; `accepted` resolves with the first connection (later ones are refused). */
export async function listenOnce(
  uri: MigrationUri,
  options: { tls?: TlsOptions; allowInsecure?: boolean; onRejected?: (reason: string) => void } = {},
): Promise<{ address: MigrationUri; accepted: Promise<net.Socket>; close(): void }> {
  if (uri.kind === 'file') throw new InvalidArgumentError('listen: a file: URI is not a socket');
  if (uri.kind === 'tcp' && !isLoopback(uri.host) && options.tls === undefined && options.allowInsecure !== true) {
    throw new InvalidArgumentError(`refusing to listen on ${uri.host} without TLS: anyone who can reach it could send a guest; ` +
      'give TLS credentials, listen on loopback, or allow it explicitly (--insecure)');
  }
  const server = options.tls === undefined ? net.createServer() : tls.createServer(serverTls(options.tls));
  // A TLS client that fails the handshake (untrusted, anonymous) is refused; keep listening for the right one.
  server.on('tlsClientError', (err: Error) => options.onRejected?.(err.message));
  let resolveAccept!: (s: net.Socket) => void;
  let rejectAccept!: (e: Error) => void;
  const accepted = new Promise<net.Socket>((res, rej) => {
    resolveAccept = res;
    rejectAccept = rej;
  });
  accepted.catch(() => {});
  let taken = false;
  server.on(options.tls === undefined ? 'connection' : 'secureConnection', (socket: net.Socket) => {
    if (taken) {
      socket.destroy();
      return;
    }
    taken = true;
    socket.setNoDelay(true);
    server.close();
    resolveAccept(socket);
  });
  // Only a stale socket is removed; a file, a directory or a live socket is refused (socket-path.ts).
  if (uri.kind === 'unix') await claimSocketPath(uri.path, 'listen');
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      const hint = err.code === 'EADDRINUSE' ? ' (something already listens there: pick another port or path, or stop it)'
        : err.code === 'EACCES' ? ' (not allowed: pick a port above 1023 or a writable path)' : '';
      reject(new TransportError(`cannot listen on ${describe(uri)}: ${err.message}${hint}`, { cause: err }));
    });
    if (uri.kind === 'tcp') server.listen({ host: uri.host, port: uri.port }, resolve);
    else server.listen({ path: uri.path }, resolve);
  });
  server.on('error', (err) => rejectAccept(err));
  const addr = server.address();
  const address: MigrationUri = uri.kind === 'tcp' && addr !== null && typeof addr === 'object'
    ? { kind: 'tcp', host: uri.host, port: addr.port }
    : uri;
  return {
    address,
    accepted,
    close: () => {
      server.close();
      if (!taken) rejectAccept(new TransportError('listening stopped before a source connected'));
    },
  };
}
