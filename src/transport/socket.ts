/**
 * Stream sockets for migration: connect to, or accept one connection on, a
 * tcp: or unix: address. Nagle is off (the stream is written in large
 * batches, and the return path's small messages must not wait).
 */
import net from 'node:net';
import tls from 'node:tls';
import { InvalidArgumentError, TransportError } from '../errors.js';
import { claimSocketPath } from './socket-path.js';
import { clientTls, explainTlsError, isLoopback, serverTls, type TlsOptions } from './tls.js';
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
      reject(new TransportError(`${what} at ${describe(uri)}: ${secure === undefined ? err.message : explainTlsError(err)}`, { cause: err }));
    });
  });
}

/** Turn a connection away: the caller writes its refusal (`name`: refusals.ts) for the source to read, then closes. */
export type RefuseConnection = (socket: net.Socket, name: 'tls' | 'busy', reason: string) => void;

export interface ListenOptions {
  readonly tls?: TlsOptions;
  readonly allowInsecure?: boolean;
  /** A source was turned away (a failed TLS handshake, plaintext to TLS, a second source): why, in words. */
  readonly onRejected?: (reason: string) => void;
  /** How to turn a connection away with words (default: close it). */
  readonly refuse?: RefuseConnection;
  /**
   * Several channels: a connection whose first byte is `channels.firstByte`
   * (CHANNEL's tag) is a channel of the stream, handed to `channels.take`;
   * the listener then stays open after the first source connected, until
   * close() (the channels may connect after it).
   */
  readonly channels?: { readonly firstByte: number; take(socket: net.Socket): void };
}

const PLAINTEXT_TO_TLS = 'this destination speaks TLS and the source sent plaintext (a ferry source without TLS options): ' +
  'give the source the TLS options the destination expects (--tls-ca, with --tls-cert and --tls-key if it asks for a client certificate; or --tls-psk-file)';

/**
 * A TLS destination reads a connection's first bytes before TLS does, since
 * a TLS server waits for its client to speak first (a plaintext ferry source
 * sends its header at once for this). A ClientHello (a handshake record,
 * first byte 0x16) goes on to the TLS server; anything else is turned away
 * in plaintext, in words the source can read.
 */
function peekTls(raw: net.Socket, secure: tls.Server, refuse: RefuseConnection): void {
  raw.on('error', () => {}); // errors before the handoff end the connection; after it, the TLS socket reports them
  raw.once('readable', () => {
    const first = raw.read() as Buffer | null;
    if (first === null) {
      raw.destroy();
    } else if (first[0] === 0x16) {
      raw.unshift(first);
      secure.emit('connection', raw);
    } else {
      raw.unshift(first);
      refuse(raw, 'tls', PLAINTEXT_TO_TLS);
    }
  });
}

/**
 * A plaintext connection counts as a source only once it has sent bytes (a
 * source sends its header at once). One that closes first is dropped: a
 * probe such as claimSocketPath's (is anyone listening here?) must not
 * become this destination's source and fail it.
 */
function afterFirstBytes(raw: net.Socket, take: (socket: net.Socket, firstByte: number) => void): void {
  const ignore = () => {};
  raw.on('error', ignore); // an error before the handoff just ends the connection
  raw.once('readable', () => {
    const first = raw.read() as Buffer | null;
    if (first === null) {
      raw.destroy();
      return;
    }
    raw.unshift(first);
    raw.off('error', ignore);
    take(raw, first[0]);
  });
}

/** Listen on `uri`; `accepted` resolves with the first connection (later ones are refused). */
export async function listenOnce(
  uri: MigrationUri,
  options: ListenOptions = {},
): Promise<{ address: MigrationUri; accepted: Promise<net.Socket>; close(): void }> {
  if (uri.kind === 'file') throw new InvalidArgumentError('listen: a file: URI is not a socket');
  if (uri.kind === 'tcp' && !isLoopback(uri.host) && options.tls === undefined && options.allowInsecure !== true) {
    throw new InvalidArgumentError(`refusing to listen on ${uri.host} without TLS: anyone who can reach it could send a guest; ` +
      'give TLS credentials, listen on loopback, or allow it explicitly (--insecure)');
  }
  const refuse: RefuseConnection = (socket, name, reason) => {
    options.onRejected?.(reason);
    if (options.refuse === undefined) socket.destroy();
    else options.refuse(socket, name, reason);
  };
  // With TLS, a plain server takes the connections and hands TLS ones to a TLS server that never listens itself (peekTls).
  const server = net.createServer();
  const secure = options.tls === undefined ? null : tls.createServer(serverTls(options.tls));
  // A TLS client that fails the handshake (untrusted, anonymous) is refused; keep listening for the right one.
  secure?.on('tlsClientError', (err: Error) => options.onRejected?.(explainTlsError(err)));
  let resolveAccept!: (s: net.Socket) => void;
  let rejectAccept!: (e: Error) => void;
  const accepted = new Promise<net.Socket>((res, rej) => {
    resolveAccept = res;
    rejectAccept = rej;
  });
  accepted.catch(() => {});
  let taken = false;
  const channels = options.channels;
  const take = (socket: net.Socket, firstByte: number) => {
    if (channels !== undefined && firstByte === channels.firstByte) {
      socket.setNoDelay(true);
      channels.take(socket);
      return;
    }
    if (taken) {
      refuse(socket, 'busy', 'this destination already has its source (it takes one connection)');
      return;
    }
    taken = true;
    socket.setNoDelay(true);
    if (channels === undefined) server.close();
    resolveAccept(socket);
  };
  server.on('connection', (raw: net.Socket) => (secure === null ? afterFirstBytes(raw, take) : peekTls(raw, secure, refuse)));
  // TLS: the source waits for READY before its header, so the first connection is the source, taken at once; a
  // channel connects only after it and speaks first (CHANNEL), so later connections are routed on their first bytes.
  secure?.on('secureConnection', (socket: tls.TLSSocket) => (channels === undefined || !taken ? take(socket, -1) : afterFirstBytes(socket, take)));
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
