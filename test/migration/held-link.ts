/**
 * A TCP proxy between a source and a destination that holds the source
 * past GO: it forwards both directions, but once the return path has
 * carried LOADED it holds everything the destination sends after it
 * (RESUMED and the close) until `release()`. Meanwhile the source has
 * committed and sent GO, the destination runs the guest, and the source
 * waits for RESUMED in postmigrate: the window in which the source may
 * hold the only copy (Migration.mayHoldOnlyCopy), kept open as long as a
 * test needs (within the source's switchover timeout).
 *
 * RESUMED cannot share a chunk with LOADED: the destination sends it only
 * after GO, which the source sends only after LOADED went through here.
 */
import net from 'node:net';
import { FrameDecoder } from '../../src/wire/frame-decoder.js';
import { Rec } from '../../src/wire/records.js';

export class HeldLink {
  private server!: net.Server;
  private readonly sockets: net.Socket[] = [];
  private held: (Buffer | 'end')[] | null = null;
  private up: net.Socket | null = null;
  uri = '';
  /** Set when LOADED has gone through to the source. */
  loadedPassed = false;
  private released = false;

  static async open(target: string): Promise<HeldLink> {
    const link = new HeldLink();
    const port = Number(target.split(':').pop());
    link.server = net.createServer((up) => {
      const down = net.connect(port, '127.0.0.1');
      link.up = up;
      link.sockets.push(up, down);
      const decoder = new FrameDecoder({ record: (type) => { if (type === Rec.Loaded) link.loadedPassed = true; } }, { stream: false });
      up.on('data', (d) => down.write(d));
      down.on('data', (d: Buffer) => {
        if (link.held !== null) {
          link.held.push(d);
          return;
        }
        decoder.feed(d);
        up.write(d);
        if (link.loadedPassed && !link.released) link.held = [];
      });
      up.on('end', () => down.end());
      down.on('end', () => (link.held !== null ? link.held.push('end') : up.end()));
      up.on('error', () => down.destroy());
      down.on('error', () => up.destroy());
    });
    await new Promise<void>((r) => link.server.listen(0, '127.0.0.1', r));
    link.uri = `tcp:127.0.0.1:${(link.server.address() as net.AddressInfo).port}`;
    return link;
  }

  /** Let what was held (RESUMED, the close) through, and forward from now on. */
  release(): void {
    const held = this.held ?? [];
    this.held = null;
    this.released = true;
    for (const d of held) {
      if (d === 'end') this.up?.end();
      else this.up?.write(d);
    }
  }

  close(): void {
    this.server.close();
    for (const s of this.sockets) s.destroy();
  }
}
