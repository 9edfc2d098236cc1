/** A QMP client: connect, negotiate, execute commands, receive events. */
import { EventEmitter } from 'node:events';
import net from 'node:net';
import { parseControlUri } from '../transport/uri.js';
import { TransportError } from '../transport/socket.js';
import { JsonStreamSplitter } from './json-stream.js';
import { QmpError } from './qmp-commands.js';

interface Pending {
  resolve(v: unknown): void;
  reject(e: Error): void;
}

export class QmpClient extends EventEmitter<{ event: [name: string, data: unknown] }> {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private greeting: ((v: unknown) => void) | null = null;

  private constructor(private readonly socket: net.Socket) {
    super();
    const splitter = new JsonStreamSplitter((text) => this.onValue(JSON.parse(text) as Record<string, unknown>));
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => splitter.feed(chunk));
    socket.on('close', () => {
      for (const p of this.pending.values()) p.reject(new TransportError('the QMP connection closed'));
      this.pending.clear();
    });
  }

  /** Connect to `unix:PATH` or `tcp:HOST:PORT`, read the greeting, negotiate capabilities. */
  static async connect(uri: string): Promise<QmpClient> {
    const where = parseControlUri(uri);
    const socket = where.kind === 'tcp' ? net.connect({ host: where.host, port: where.port }) : net.connect({ path: where.path });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', (err) => reject(new TransportError(`cannot reach the control socket ${uri}: ${err.message}`, { cause: err })));
    });
    const client = new QmpClient(socket);
    await new Promise((resolve) => { client.greeting = resolve; });
    await client.execute('qmp_capabilities');
    return client;
  }

  execute(command: string, args?: Record<string, unknown>): Promise<unknown> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.socket.write(`${JSON.stringify({ execute: command, ...(args === undefined ? {} : { arguments: args }), id })}\n`);
    });
  }

  close(): void {
    this.socket.end();
  }

  private onValue(v: Record<string, unknown>): void {
    if ('QMP' in v) {
      this.greeting?.(v);
      this.greeting = null;
    } else if ('event' in v) {
      this.emit('event', String(v.event), v.data);
    } else if (typeof v.id === 'number' && this.pending.has(v.id)) {
      const p = this.pending.get(v.id)!;
      this.pending.delete(v.id);
      if ('error' in v) {
        const e = v.error as { class: string; desc: string; 'x-ferry-code'?: unknown };
        const code = e['x-ferry-code'];
        p.reject(new QmpError(e.class, e.desc, typeof code === 'string' ? code : undefined));
      } else {
        p.resolve(v.return);
      }
    }
  }
}
