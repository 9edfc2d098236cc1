/**
 * The link's limits on this machine, for comparing migration throughput:
 * raw loopback TCP between two processes with 1 MiB writes (8 in flight,
 * as ferry's sender), received and discarded, and received into fresh
 * never-touched shared WebAssembly memory (first touch is part of what a
 * destination pays).
 *
 *   npm run bench:loopback [-- --gib 2]
 */
import { fork } from 'node:child_process';
import net from 'node:net';
import { fileURLToPath } from 'node:url';

const SLOT = 1 << 20;
const SLOTS = 8;

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  return i < 0 ? fallback : Number(process.argv[i + 1]);
}

async function receiver(fresh: boolean, total: number): Promise<void> {
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

async function measure(fresh: boolean, total: number): Promise<number> {
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

if (process.argv.includes('--receive')) {
  await receiver(process.argv[process.argv.indexOf('--receive') + 1] === 'fresh', arg('--bytes', 0));
} else {
  const total = arg('--gib', 2) * 1024 ** 3;
  for (const fresh of [false, true]) {
    const runs = [await measure(fresh, total), await measure(fresh, total), await measure(fresh, total)].sort((a, b) => a - b);
    console.log(`| loopback TCP, 1 MiB writes, two processes, received ${fresh ? 'into fresh memory' : 'and discarded'} | ` +
      `${runs[1].toFixed(2)} (${runs[0].toFixed(2)}-${runs[2].toFixed(2)}) GB/s |`);
  }
}
