/**
 * The source's view of the return path: the destination's PREALLOC, READY, ACK,
 * LOADED, RESUMED, ERROR and REFUSED records, post-copy's REQUEST and DONE,
 * and a recovery's RECVBITMAP and RESUMEACK, decoded as they arrive, and
 * the watch on a destination that stops reading. A destination that stops
 * reading leaves bytes in flight and the source's send slots full
 * (backpressure: memory stays bounded, the migration thread waits); the
 * watch ends that wait after `idleTimeoutMs` without an acknowledgement.
 *
 * Why a refused migration reads as the destination's reason and not as
 * `write EPIPE`: the destination writes ERROR or REFUSED, ends its side and
 * keeps reading until this side closes (loader-session.ts). Were it to
 * close with this side's bytes unread, its kernel would reset the
 * connection, and a write failing here destroys the socket before Node
 * reads what already arrived: no wait on this side could recover the
 * reason then. A record read first wins (the first reason sticks).
 */
import type net from 'node:net';
import { RefusedError } from '../errors.js';
import { explainTlsError } from '../transport/tls.js';
import { RECORD, Rec } from '../wire/records.js';
import { refusalName } from '../wire/refusals.js';
import { FrameDecoder } from '../wire/frame-decoder.js';
import { IdleWatch, Signal, within } from './waiter.js';

export interface ReturnPathHooks {
  /** Whether the migration is in post-copy: the destination then owes DONE, and its silence is a failure even with nothing in flight. */
  postcopy?(): boolean;
  /** The destination acknowledged `totalBytes` in all. */
  onAck(totalBytes: number): void;
  /** RESUMED arrived (called at once: a close right behind it must find the migration complete). */
  onResumed(): void;
  /** The migration must fail for `reason`. */
  fail(reason: string): void;
  /** The destination's ERROR (its own failure, always fatal, even during a recovery); without this hook, `fail`. */
  reported?(reason: string): void;
  /**
   * The connection itself broke (an error, its end, the idle watch): in
   * post-copy the migration pauses for recovery then, where any other
   * failure fails it. Without this hook, `fail`.
   */
  broken?(reason: string): void;
  /** Post-copy recovery: a RECVBITMAP's (first, count) pairs of global pages the destination lacks. */
  onRecvBitmap?(ranges: ArrayLike<number>): void;
  /** Post-copy recovery: RESUMEACK, the bitmap is whole (`missing` pages). */
  onResumeAck?(missing: number): void;
  /** The destination refused the stream (REFUSED): the migration fails with this error. */
  refused(err: RefusedError): void;
  /** Post-copy: the destination's vCPUs wait for these global pages (REQUEST; REQUEST_AGAIN marks a page asked again). */
  onRequest(pages: ArrayLike<number>): void;
  /** Post-copy: the destination holds every page (DONE; called at once, as RESUMED). */
  onDone(): void;
  /** Bytes sent and not yet acknowledged, now. */
  inflightBytes(): number;
  /** The current idle limit, ms (a parameter: it may change during the migration). */
  idleTimeoutMs(): number;
  /** Whether TLS is on (a refusal before READY then says so). */
  readonly tls: boolean;
}

export class ReturnPath {
  readonly ready = new Signal();
  /** The destination preallocates and asked for the ever-written map (PREALLOC, before READY: written-map.ts). */
  wantsWrittenMap = false;
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
          case Rec.Prealloc:
            if (this.ready.settled) hooks.fail('bad return path: PREALLOC after READY (the source streams after READY)');
            this.wantsWrittenMap = true;
            break;
          case Rec.Loaded: this.loaded.resolve(); break;
          case Rec.Resumed: hooks.onResumed(); break;
          case Rec.Request:
            hooks.onRequest(RECORD.Request.decode(head).pages);
            this.idle?.touch();
            break;
          case Rec.Done: hooks.onDone(); break;
          case Rec.RecvBitmap: this.recovery('RECVBITMAP').onRecvBitmap!(RECORD.RecvBitmap.decode(head).ranges); break;
          case Rec.ResumeAck: this.recovery('RESUMEACK').onResumeAck!(RECORD.ResumeAck.decode(head).missing); break;
          case Rec.Error: (hooks.reported ?? hooks.fail)(`the destination reported: ${RECORD.Error.decode(head).reason}`); break;
          case Rec.Refused: hooks.refused(refusal(head)); break;
        }
      },
    }, { stream: false });
    socket.on('data', (chunk: Buffer) => {
      if (decoder.bytes === 0 && !hooks.tls && speaksTls(chunk)) {
        hooks.fail(`the destination speaks TLS and this side does not: ${TLS_HINT}`);
        return;
      }
      try {
        decoder.feed(chunk);
      } catch (err) {
        hooks.fail(`bad return path: ${(err as Error).message}`);
      }
    });
    const refused = () => (this.ready.settled ? '' : hooks.tls
      ? ' before it was ready (with TLS: it did not accept the credentials this side presented)'
      : ' before it was ready');
    const broken = (reason: string) => (hooks.broken ?? hooks.fail)(reason);
    socket.on('error', (err) => broken(`connection to the destination failed${refused()}: ${hooks.tls ? explainTlsError(err) : err.message}`));
    // 'end' (its side closed) is reported at once rather than at 'close', which waits for our own side
    // to shut down: a destination that died after LOADED must be seen before GO is sent. Records that came
    // first (RESUMED, ERROR) were handled above and win.
    socket.on('end', () => broken(`the destination closed the connection${refused()}`));
    socket.on('close', () => broken(`the destination closed the connection${refused()}`));
  }

  /** The hooks of a recovery, for a record only a recovery's connection carries. */
  private recovery(name: string): ReturnPathHooks {
    if (this.hooks.onRecvBitmap === undefined || this.hooks.onResumeAck === undefined) {
      throw new Error(`${name} on a connection that is not recovering a post-copy`);
    }
    return this.hooks;
  }

  /**
   * Wait for READY, then watch the destination's acknowledgements. Pages
   * go only once the destination said READY (without TLS the header goes
   * before it, so that a TLS destination can refuse it in words): a refusal
   * (busy, or with TLS a certificate it does not accept: TLS 1.3 checks the
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
      const broken = this.hooks.broken ?? this.hooks.fail;
      if (inflight > 0 && idleMs > limit) {
        broken(`the destination acknowledged nothing for ${Math.round(idleMs)} ms with ${inflight} bytes in flight (idle timeout ${limit} ms)`);
      } else if (this.hooks.postcopy?.() === true && idleMs > limit) {
        broken(`the destination said nothing for ${Math.round(idleMs)} ms in post-copy, and DONE has not come (idle timeout ${limit} ms)`);
      }
    });
  }

  close(): void {
    this.idle?.stop();
    this.idle = null;
  }
}

/** The source's error for a REFUSED record: the destination's words, and the refusal's name (refusals.ts). */
function refusal(head: Buffer): RefusedError {
  const { code, reason } = RECORD.Refused.decode(head);
  const name = refusalName(code);
  return new RefusedError(`the destination refused the stream (${name === 'unknown' ? `refusal ${code}` : name}): ${reason}`, { refusal: name });
}

/** What a source without TLS options is to pass to a TLS destination. */
const TLS_HINT = 'pass the TLS options it expects (--tls-ca, with --tls-cert and --tls-key if it asks for a client certificate; or --tls-psk-file)';

/**
 * Whether a plaintext source's first bytes back are TLS: a handshake
 * record (0x16 0x03) or an alert (0x15 0x03), from a TLS server that is
 * not ferry or that predates REFUSED. Said as such, rather than as an
 * unknown return record.
 */
function speaksTls(first: Buffer): boolean {
  return (first[0] === 0x16 || first[0] === 0x15) && first[1] === 0x03;
}
