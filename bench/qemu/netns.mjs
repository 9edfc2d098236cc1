/**
 * The 1 Gbit/s link of ferry's benchmark (src/bench/netns.ts), with names of
 * its own: two namespaces joined by a veth pair, shaped on both ends with
 * netem (rate 1gbit, delay 0.5 ms) where the kernel has it, else tbf (rate
 * 1gbit, burst 256kb, latency 50ms), as ferry does.
 */
import { execFileSync } from 'node:child_process';

export const NS = { a: 'qemubencha', b: 'qemubenchb', va: 'qembva', vb: 'qembvb', sourceAddress: '10.214.0.1', destinationAddress: '10.214.0.2', shaping: '' };

const ip = (...a) => execFileSync('ip', a, { stdio: ['ignore', 'ignore', 'pipe'] });

export function linkDown() {
  for (const ns of [NS.a, NS.b]) {
    try {
      ip('netns', 'del', ns);
    } catch {
      // already gone
    }
  }
}

export function linkUp() {
  linkDown();
  ip('netns', 'add', NS.a);
  ip('netns', 'add', NS.b);
  ip('link', 'add', NS.va, 'type', 'veth', 'peer', 'name', NS.vb);
  ip('link', 'set', NS.va, 'netns', NS.a);
  ip('link', 'set', NS.vb, 'netns', NS.b);
  ip('-n', NS.a, 'addr', 'add', `${NS.sourceAddress}/24`, 'dev', NS.va);
  ip('-n', NS.b, 'addr', 'add', `${NS.destinationAddress}/24`, 'dev', NS.vb);
  for (const [ns, dev] of [[NS.a, NS.va], [NS.b, NS.vb]]) {
    ip('-n', ns, 'link', 'set', dev, 'up');
    ip('-n', ns, 'link', 'set', 'lo', 'up');
    try {
      ip('netns', 'exec', ns, 'tc', 'qdisc', 'add', 'dev', dev, 'root', 'netem', 'rate', '1gbit', 'delay', '0.5ms');
      NS.shaping = 'netem rate 1gbit delay 0.5ms';
    } catch {
      ip('netns', 'exec', ns, 'tc', 'qdisc', 'add', 'dev', dev, 'root', 'tbf', 'rate', '1gbit', 'burst', '256kb', 'latency', '50ms');
      NS.shaping = 'tbf rate 1gbit burst 256kb latency 50ms';
    }
  }
}
