/**
 * A real link for the benchmark: two network namespaces joined by a veth
 * pair, shaped to a rate with a token bucket (tc tbf) on both ends, and a
 * delay with netem where the kernel has it. Needs root and iproute2;
 * created by `open` and removed by `close`.
 */
import { execFileSync } from 'node:child_process';

export interface Link {
  readonly source: string;
  readonly destination: string;
  readonly sourceAddress: string;
  readonly destinationAddress: string;
  /** What shaping was applied, e.g. "tbf 1gbit" or "netem rate 1gbit delay 0.5ms". */
  readonly shaping: string;
  /** Why a requested delay could not be applied, if it could not. */
  readonly missing: string | null;
  close(): void;
}

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Whether this process may create namespaces (root, and iproute2 present). */
export function canCreateNamespaces(): string | null {
  if (process.getuid?.() !== 0) return 'needs root';
  try {
    execFileSync('ip', ['-V'], { stdio: 'ignore' });
    return null;
  } catch {
    return 'needs iproute2 (ip)';
  }
}

export function openLink(o: { rate: string; delayMs: number }): Link {
  const tag = `ferry${process.pid % 100_000}`;
  const [a, b] = [`${tag}a`, `${tag}b`];
  const [sourceAddress, destinationAddress] = ['10.213.0.1', '10.213.0.2'];
  const close = () => {
    for (const ns of [a, b]) {
      try {
        ip('netns', 'del', ns);
      } catch {
        // already gone
      }
    }
  };
  try {
    ip('netns', 'add', a);
    ip('netns', 'add', b);
    ip('link', 'add', `${tag}va`, 'type', 'veth', 'peer', 'name', `${tag}vb`);
    ip('link', 'set', `${tag}va`, 'netns', a);
    ip('link', 'set', `${tag}vb`, 'netns', b);
    ip('-n', a, 'addr', 'add', `${sourceAddress}/24`, 'dev', `${tag}va`);
    ip('-n', b, 'addr', 'add', `${destinationAddress}/24`, 'dev', `${tag}vb`);
    for (const [ns, dev] of [[a, `${tag}va`], [b, `${tag}vb`]]) {
      ip('-n', ns, 'link', 'set', dev, 'up');
      ip('-n', ns, 'link', 'set', 'lo', 'up');
    }
    let shaping = `netem rate ${o.rate} delay ${o.delayMs}ms`;
    let missing: string | null = null;
    const tc = (ns: string, dev: string, ...q: string[]) => execFileSync('ip', ['netns', 'exec', ns, 'tc', 'qdisc', 'add', 'dev', dev, 'root', ...q], { stdio: ['ignore', 'ignore', 'pipe'] });
    for (const [ns, dev] of [[a, `${tag}va`], [b, `${tag}vb`]]) {
      try {
        tc(ns, dev, 'netem', 'rate', o.rate, 'delay', `${o.delayMs}ms`);
      } catch (err) {
        // This kernel has no netem (no sch_netem): shape the rate with tbf, no added delay.
        missing = `netem is not available in this kernel (${String((err as { stderr?: Buffer }).stderr ?? err).trim()}): no added delay`;
        shaping = `tbf rate ${o.rate}`;
        tc(ns, dev, 'tbf', 'rate', o.rate, 'burst', '256kb', 'latency', '50ms');
      }
    }
    return { source: a, destination: b, sourceAddress, destinationAddress, shaping, missing, close };
  } catch (err) {
    close();
    throw err;
  }
}
