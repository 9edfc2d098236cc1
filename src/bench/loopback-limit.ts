/**
 * The link's limit on this machine: loopback TCP between two processes
 * with 1 MiB writes (8 in flight per connection, as ferry's sender),
 * received and discarded, received into fresh never-touched shared
 * WebAssembly memory (first touch is part of what a destination pays), or
 * into resident memory, touched before the clock starts (what a
 * preallocated destination pays). On several connections at once (as many
 * as a migration's channels), each connection's bytes land in its own
 * share of the memory, received on the one thread of the receiving process
 * (the transfer is the kernel's; a destination's loader threads come after
 * it). The receiver is this same file, forked with `--receive`.
 */
import { fork } from 'node:child_process';
import net from 'node:net';
import { fileURLToPath } from 'node:url';

const SLOT = 1 << 20;
const SLOTS = 8;

/** Where the receiver puts what it reads. */
export type LoopbackInto = 'discard' | 'fresh' | 'resident';

function receiver(into: LoopbackInto, total: number, streams: number): void {
  const pages = total / 65536;
  const dst = into === 'discard' ? null : new Uint8Array(new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true }).buffer);
  if (into === 'resident') dst!.fill(1);
  const share = total / streams;
  let accepted = 0;
  let ended = 0;
  let received = 0;
  let started = 0;
  const server = net.createServer((s) => {
    const base = accepted++ * share;
    let n = 0;
    s.on('data', (c: Buffer) => {
      if (started === 0) started = performance.now();
      dst?.set(c, base + n);
      n += c.length;
    });
    s.on('end', () => {
      received += n;
      if (++ended < streams) return;
      process.send!({ gbps: received / (performance.now() - started) / 1e6 });
      server.close();
    });
  });
  server.listen(0, '127.0.0.1', () => process.send!({ port: (server.address() as net.AddressInfo).port }));
}

/** GB/s of one transfer of `total` bytes (a multiple of 1 MiB per stream) to another process, on `streams` connections at once. */
export async function measureLoopback(into: LoopbackInto, total: number, streams = 1): Promise<number> {
  const child = fork(fileURLToPath(import.meta.url), ['--receive', into, '--bytes', String(total), '--streams', String(streams)]);
  try {
    const port = await new Promise<number>((r) => child.once('message', (m: { port: number }) => r(m.port)));
    const result = new Promise<number>((r) => child.on('message', (m: { gbps?: number }) => { if (m.gbps !== undefined) r(m.gbps); }));
    const mem = new WebAssembly.Memory({ initial: (SLOTS * SLOT) / 65536, maximum: (SLOTS * SLOT) / 65536, shared: true }).buffer;
    new Uint8Array(mem).fill(1);
    await Promise.all(Array.from({ length: streams }, () => send(port, mem, total / streams)));
    return await result;
  } finally {
    child.kill();
  }
}

/** Send `bytes` on a new connection to `port`, 1 MiB writes from `mem`'s slots, SLOTS in flight; resolves once written and ended. */
async function send(port: number, mem: ArrayBufferLike, bytes: number): Promise<void> {
  const sock = net.connect(port, '127.0.0.1');
  await new Promise((r) => sock.once('connect', r));
  let sent = 0;
  let inflight = 0;
  await new Promise<void>((resolve) => {
    const pump = (): void => {
      while (inflight < SLOTS && sent < bytes) {
        const i = (sent / SLOT) % SLOTS;
        inflight++;
        sent += SLOT;
        sock.write(Buffer.from(mem, i * SLOT, SLOT), () => {
          inflight--;
          if (sent >= bytes && inflight === 0) resolve();
          else pump();
        });
      }
    };
    pump();
  });
  sock.end();
}

const at = process.argv.indexOf('--receive');
if (at >= 0 && process.argv[1] === fileURLToPath(import.meta.url)) {
  const arg = (name: string) => process.argv[process.argv.indexOf(name) + 1];
  receiver(arg('--receive') as LoopbackInto, Number(arg('--bytes')), Number(arg('--streams')));
}
