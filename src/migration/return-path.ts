/**
 * The source's view of the return path: the destination's READY, ACK,
 * LOADED, RESUMED and ERROR records, decoded as they arrive, and the watch
 * on a destination that stops reading. A destination that stops reading
 * leaves bytes in flight and the source's send slots full (backpressure:
 * memory stays bounded, the migration thread waits); the watch ends that
 * wait after `idleTimeoutMs` without an acknowledgement.
 */
import type net from 'node:net';
import { RECORD, Rec } from '../wire/records.js';
import { FrameDecoder } from '../wire/frame-decoder.js';
import { IdleWatch, Signal, within } from './waiter.js';

export interface ReturnPathHooks {
  /** The destination acknowledged `totalBytes` in all. */
  onAck(totalBytes: number): void;
  /** RESUMED arrived (called at once: a close right behind it must find the migration complete). */
  onResumed(): void;
  /** The migration must fail for `reason`. */
  fail(reason: string): void;
  /** Bytes sent and not yet acknowledged, now. */
  inflightBytes(): number;
  /** The current idle limit, ms (a parameter: it may change during the migration). */
  idleTimeoutMs(): number;
  /** Whether TLS is on (a refusal before READY then says so). */
  readonly tls: boolean;
}

export class ReturnPath {
  readonly ready = new Signal();
  readonly loaded = new Signal();
  private idle: IdleWatch | null = null;

  constructor(socket: net.Socket, private readonly hooks: ReturnPathHooks) {
    const decoder = new FrameDecoder({
      record: (type, _block, head) => {
        switch (type) {
          case Rec.Ack:
            hooks.onAck(RECORD.Ack.decode(head).bytes);
            this.idle?.touch();
            break;
          case Rec.Ready: this.ready.resolve(); break;
          case Rec.Loaded: this.loaded.resolve(); break;
          case Rec.Resumed: hooks.onResumed(); break;
          case Rec.Error: hooks.fail(`the destination reported: ${RECORD.Error.decode(head).reason}`); break;
        }
      },
    }, { stream: false });
    socket.on('data', (chunk: Buffer) => {
      try {
        decoder.feed(chunk);
      } catch (err) {
        hooks.fail(`bad return path: ${(err as Error).message}`);
      }
    });
    const refused = () => (this.ready.settled ? '' : hooks.tls
      ? ' before it was ready (with TLS: it did not accept the credentials this side presented)'
      : ' before it was ready');
    socket.on('error', (err) => hooks.fail(`connection to the destination failed${refused()}: ${err.message}`));
    // 'end' (its side closed) is reported at once rather than at 'close', which waits for our own side
    // to shut down: a destination that died after LOADED must be seen before GO is sent. Records that came
    // first (RESUMED, ERROR) were handled above and win.
    socket.on('end', () => hooks.fail(`the destination closed the connection${refused()}`));
    socket.on('close', () => hooks.fail(`the destination closed the connection${refused()}`));
  }

  /**
   * Wait for READY, then watch the destination's acknowledgements. The
   * source streams only once the destination said READY: a refusal (busy,
   * or with TLS a certificate it does not accept: TLS 1.3 checks the
   * client's after the client thinks it has connected) then reads as one,
   * not as EPIPE.
   */
  async opened(timeoutMs: number, abort: Promise<never>): Promise<void> {
    await within(this.ready.promise, timeoutMs, 'waiting for the destination to accept (READY)', abort);
    this.watchIdle();
  }

  /** Start watching for a destination that acknowledges nothing while bytes are in flight. */
  private watchIdle(): void {
    this.idle = new IdleWatch(() => this.hooks.idleTimeoutMs(), (idleMs, limit) => {
      const inflight = this.hooks.inflightBytes();
      if (inflight > 0 && idleMs > limit) {
        this.hooks.fail(`the destination acknowledged nothing for ${Math.round(idleMs)} ms with ${inflight} bytes in flight (idle timeout ${limit} ms)`);
      }
    });
  }

  close(): void {
    this.idle?.stop();
    this.idle = null;
  }
}
