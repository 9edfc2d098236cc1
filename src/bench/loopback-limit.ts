/**
 * The link's limit on this machine: loopback TCP between two processes
 * with 1 MiB writes (8 in flight, as ferry's sender), received and
 * discarded, or received into fresh never-touched shared WebAssembly
 * memory (first touch is part of what a destination pays). The receiver is
 * this same file, forked with `--receive`.
 */
import { fork } from 'node:child_process';
import net from 'node:net';
import { fileURLToPath } from 'node:url';

const SLOT = 1 << 20;
const SLOTS = 8;

function receiver(fresh: boolean, total: number): void {
  const pages = total / 65536;
  const dst = fresh ? new Uint8Array(new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true }).buffer) : null;
  const server = net.createServer((s) => {
    let n = 0;
    const t = performance.now();
    s.on('data', (c: Buffer) => {
      dst?.set(c, n);
      n += c.length;
    });
    s.on('end', () => {
      process.send!({ gbps: n / (performance.now() - t) / 1e6 });
      server.close();
    });
  });
  server.listen(0, '127.0.0.1', () => process.send!({ port: (server.address() as net.AddressInfo).port }));
}

/** GB/s of one transfer of `total` bytes (a multiple of 1 MiB) to another process. */
export async function measureLoopback(fresh: boolean, total: number): Promise<number> {
  const child = fork(fileURLToPath(import.meta.url), ['--receive', fresh ? 'fresh' : 'discard', '--bytes', String(total)]);
  const port = await new Promise<number>((r) => child.once('message', (m: { port: number }) => r(m.port)));
  const result = new Promise<number>((r) => child.on('message', (m: { gbps?: number }) => { if (m.gbps !== undefined) r(m.gbps); }));
  const sock = net.connect(port, '127.0.0.1');
  await new Promise((r) => sock.once('connect', r));
  const mem = new WebAssembly.Memory({ initial: (SLOTS * SLOT) / 65536, maximum: (SLOTS * SLOT) / 65536, shared: true }).buffer;
  new Uint8Array(mem).fill(1);
  let sent = 0;
  let inflight = 0;
  await new Promise<void>((resolve) => {
    const pump = (): void => {
      while (inflight < SLOTS && sent < total) {
        const i = (sent / SLOT) % SLOTS;
        inflight++;
        sent += SLOT;
        sock.write(Buffer.from(mem, i * SLOT, SLOT), () => {
          inflight--;
          if (sent >= total && inflight === 0) resolve();
          else pump();
        });
      }
    };
    pump();
  });
  sock.end();
  const gbps = await result;
  child.kill();
  return gbps;
}

const at = process.argv.indexOf('--receive');
if (at >= 0 && process.argv[1] === fileURLToPath(import.meta.url)) {
  receiver(process.argv[at + 1] === 'fresh', Number(process.argv[process.argv.indexOf('--bytes') + 1]));
}
