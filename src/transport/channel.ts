/**
 * The source's outgoing channel, whatever its URI: a tcp: or unix: socket
 * (with TLS if given), or a file (a save to file is a migration to a
 * file). The session writes to both the same way; only a socket has bytes
 * coming back (the return path), and only a file has to be synced to disk
 * at the end (`flush: true`: the stream fsyncs before it closes).
 */
import { once } from 'node:events';
import { createWriteStream, type WriteStream } from 'node:fs';
import type net from 'node:net';
import { connect } from './socket.js';
import type { TlsOptions } from './tls.js';
import type { MigrationUri } from './uri.js';

export interface OutgoingChannel {
  readonly kind: 'socket' | 'file';
  /** Where the bytes go, for messages: the file's path, or the address. */
  readonly name: string;
  /** The connection, for the return path to read; null for a file (nothing comes back). */
  readonly socket: net.Socket | null;
  /** Write `chunk`; `done` is called once the write completed (its bytes may then be reused). */
  write(chunk: Uint8Array, done: () => void): void;
  /** After the last write: end the channel; resolves once it closed (a file: written and synced to disk). */
  finish(): Promise<void>;
  /** Close at once (a stop, or the end of the migration); idempotent. */
  destroy(): void;
}

export interface ChannelOptions {
  /** Limit to connect, ms (sockets). */
  readonly timeoutMs: number;
  readonly tls?: TlsOptions;
  /** Rejects when the migration stops: opening ends with it. */
  readonly abort: Promise<never>;
  /** A file's write failed (a socket's failures reach whoever reads it: the return path). */
  readonly onError: (reason: string) => void;
}

export async function openChannel(uri: MigrationUri, o: ChannelOptions): Promise<OutgoingChannel> {
  if (uri.kind === 'file') {
    const file = createWriteStream(uri.path, { flush: true });
    await Promise.race([once(file, 'open'), o.abort]);
    file.on('error', (err) => o.onError(`writing ${uri.path} failed: ${err.message}`));
    return streamChannel('file', uri.path, file, null);
  }
  const socket = await Promise.race([connect(uri, o.timeoutMs, o.tls), o.abort]);
  return streamChannel('socket', uri.kind === 'tcp' ? `${uri.host}:${uri.port}` : uri.path, socket, socket);
}

function streamChannel(kind: 'socket' | 'file', name: string, stream: WriteStream | net.Socket, socket: net.Socket | null): OutgoingChannel {
  return {
    kind, name, socket,
    write: (chunk, done) => {
      stream.write(chunk, () => done());
    },
    finish: async () => {
      stream.end();
      await once(stream, 'close');
    },
    destroy: () => {
      stream.destroy();
    },
  };
}
