/**
 * The QEMU Machine Protocol on a guest process's main event loop.
 *
 *   server: {"QMP": {"version": ..., "capabilities": []}}           greeting
 *   client: {"execute": "qmp_capabilities"}                          negotiation
 *   server: {"return": {}}
 *   client: {"execute": CMD, "arguments": {...}, "id": ANY}
 *   server: {"return": ..., "id": ANY} | {"error": {"class", "desc", "x-ferry-code"?}, "id": ANY}
 *   server: {"event": NAME, "data": {...}, "timestamp": {"seconds", "microseconds"}}
 *
 * A stream of JSON values, not of lines. Unlike QEMU, several clients may be
 * connected at once, each receiving events. Bad input gets a QMP error (or,
 * past the size cap, a closed connection) and disturbs nobody else.
 */
import { chmodSync } from 'node:fs';
import net from 'node:net';
import { InvalidArgumentError, TransportError } from '../errors.js';
import { claimSocketPath } from '../transport/socket-path.js';
import { parseControlUri } from '../transport/uri.js';
import type { ControlEvent, GuestController } from './controller.js';
import { JsonStreamSplitter } from './json-stream.js';
import { COMMANDS, QmpError } from './qmp-commands.js';

/** The QEMU version ferry answers as (the version on these machines). */
export const QMP_VERSION = { qemu: { major: 7, minor: 2, micro: 0 }, package: 'ferry' };
/** Largest JSON value a client may send. */
export const MAX_QMP_VALUE_BYTES = 1024 * 1024;

function timestamp(): { seconds: number; microseconds: number } {
  const us = Math.floor((performance.timeOrigin + performance.now()) * 1000);
  return { seconds: Math.floor(us / 1e6), microseconds: us % 1e6 };
}

class QmpSession {
  private negotiated = false;
  private queue: Promise<void> = Promise.resolve();
  private readonly splitter: JsonStreamSplitter;

  constructor(private readonly socket: net.Socket, private readonly ctl: GuestController) {
    this.splitter = new JsonStreamSplitter((text) => this.onValue(text), MAX_QMP_VALUE_BYTES);
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      try {
        this.splitter.feed(chunk);
      } catch (err) {
        this.send({ error: { class: 'GenericError', desc: `JSON parse error, ${(err as Error).message}` } });
        socket.end();
      }
    });
    socket.on('error', () => socket.destroy());
    this.send({ QMP: { version: QMP_VERSION, capabilities: [] } });
  }

  event(e: ControlEvent): void {
    if (!this.negotiated || (e.migrationEvent && !this.ctl.capabilities.events)) return;
    this.send({ event: e.event, ...(e.data === undefined ? {} : { data: e.data }), timestamp: timestamp() });
  }

  private onValue(text: string): void {
    // Commands run one after another per client, answers (and errors) in order.
    this.queue = this.queue.then(() => {
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch (err) {
        this.send({ error: { class: 'GenericError', desc: `JSON parse error, ${(err as Error).message}` } });
        return;
      }
      return this.execute(value);
    });
  }

  private async execute(value: unknown): Promise<void> {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      this.send({ error: { class: 'GenericError', desc: 'QMP input must be a JSON object' } });
      return;
    }
    const { execute, arguments: args, id, ...rest } = value as Record<string, unknown>;
    const reply = (body: Record<string, unknown>) => this.send(id === undefined ? body : { ...body, id });
    try {
      const extra = Object.keys(rest)[0];
      if (extra !== undefined) throw new QmpError('GenericError', `QMP input member '${extra}' is unexpected`);
      if (typeof execute !== 'string') throw new QmpError('GenericError', "QMP input member 'execute' must be a string");
      if (args !== undefined && (args === null || typeof args !== 'object' || Array.isArray(args))) {
        throw new QmpError('GenericError', "QMP input member 'arguments' must be an object");
      }
      if (execute === 'qmp_capabilities') {
        if (this.negotiated) throw new QmpError('CommandNotFound', 'Capabilities negotiation is already complete, command ignored');
        this.negotiated = true;
        reply({ return: {} });
        return;
      }
      if (!this.negotiated) throw new QmpError('CommandNotFound', "Expecting capabilities negotiation with 'qmp_capabilities'");
      const command = COMMANDS[execute];
      if (command === undefined) throw new QmpError('CommandNotFound', `The command ${execute} has not been found`);
      reply({ return: (await command(this.ctl, (args ?? {}) as Record<string, unknown>)) ?? {} });
    } catch (err) {
      // QEMU's members as QEMU sends them; ferry's code beside them when a ferry error was behind it.
      const e = QmpError.from(err);
      reply({ error: { class: e.errorClass, desc: e.message, ...(e.ferryCode === undefined ? {} : { 'x-ferry-code': e.ferryCode }) } });
    }
  }

  /** End the connection once what was written has gone out: a client that stays connected does not keep the process alive. */
  close(): void {
    this.socket.end(() => this.socket.destroy());
  }

  private send(value: unknown): void {
    if (!this.socket.destroyed && this.socket.writable) this.socket.write(`${JSON.stringify(value)}\r\n`);
  }
}

export class QmpServer {
  private readonly sessions = new Set<QmpSession>();

  private constructor(private readonly server: net.Server, readonly uri: string, ctl: GuestController) {
    ctl.on('event', (e) => { for (const s of this.sessions) s.event(e); });
    server.on('connection', (socket) => {
      const session = new QmpSession(socket, ctl);
      this.sessions.add(session);
      socket.on('close', () => this.sessions.delete(session));
    });
  }

  /** Serve QMP on `unix:PATH` (created 0600) or `tcp:HOST:PORT` (loopback unless told otherwise). */
  static async listen(uri: string, ctl: GuestController, options: { allowNonLoopback?: boolean } = {}): Promise<QmpServer> {
    const where = parseControlUri(uri);
    if (where.kind === 'tcp' && options.allowNonLoopback !== true && !/^(127\.|::1$|localhost$)/.test(where.host)) {
      throw new InvalidArgumentError(`QMP: refusing to listen on ${where.host}, not a loopback address (the control socket has no authentication yet)`);
    }
    const server = net.createServer();
    // Only a stale socket is removed; a file, a directory or a live socket is refused (socket-path.ts).
    if (where.kind === 'unix') await claimSocketPath(where.path, 'QMP control socket');
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => {
        const hint = err.code === 'EADDRINUSE' ? ' (something already listens there: pick another port or path, or stop it)' : '';
        reject(new TransportError(`QMP control socket: cannot listen on ${uri}: ${err.message}${hint}`, { cause: err }));
      });
      if (where.kind === 'tcp') server.listen({ host: where.host, port: where.port }, resolve);
      else server.listen({ path: where.path }, resolve);
    });
    let actual = uri;
    if (where.kind === 'unix') chmodSync(where.path, 0o600);
    else actual = `tcp:${where.host}:${(server.address() as net.AddressInfo).port}`;
    return new QmpServer(server, actual, ctl);
  }

  /** Stop listening and close every client's connection (after what was already written to it, such as quit's answer). */
  close(): void {
    this.server.close();
    for (const session of this.sessions) session.close();
  }
}
