/**
 * The source's stream on its way out: the frame writer over the outgoing
 * channel, and the waits its backpressure asks for (room in the writer's
 * slots, or every slot back from the channel), each of which ends, with
 * the reason, when the migration stops.
 */
import type { OutgoingChannel } from '../transport/channel.js';
import { FrameWriter, SLOT_BYTES, recordBytes } from '../wire/frame-writer.js';
import type { RecordRow } from '../wire/records.js';
import { Signal } from './waiter.js';

export class StreamOut {
  readonly writer: FrameWriter;
  private channel: OutgoingChannel | null = null;
  private headerBytes = 0;
  /** Called as each chunk of records is handed to the channel (its size; bytesOut counts it already): the round-trip probe (round-trip.ts). */
  onChunk: ((bytes: number) => void) | null = null;
  /** Resolved when the channel gives a slot back; replaced before each wait. */
  private room = new Signal();

  constructor(private readonly abort: Promise<never>) {
    this.writer = new FrameWriter((chunk, release) => {
      this.channel!.write(chunk, release);
      this.onChunk?.(chunk.length);
    });
    this.writer.onRelease = () => this.room.resolve();
  }

  /** Whether start() was called. */
  get started(): boolean {
    return this.channel !== null;
  }

  /** Start the stream on `channel` with the stream header; before anything is flushed. */
  start(channel: OutgoingChannel, header: Uint8Array): void {
    this.channel = channel;
    this.headerBytes = header.length;
    channel.write(header, () => {});
  }

  /** Wire bytes handed to the channel so far, the header included. */
  get bytesOut(): number {
    return this.headerBytes + this.writer.bytesOut;
  }

  /** Wait until the writer can take `bytes` more (slots come back as the channel completes writes). */
  async waitRoom(bytes: number): Promise<void> {
    const need = Math.min(bytes, SLOT_BYTES);
    while (!this.writer.hasRoom(need)) {
      this.room = new Signal();
      if (this.writer.hasRoom(need)) return;
      await Promise.race([this.room.promise, this.abort]);
    }
  }

  /** Append a record without page data, waiting for room. */
  async append<F>(row: RecordRow<F>, fields: F): Promise<void> {
    await this.waitRoom(recordBytes(row.sizeOf(fields)));
    this.writer.append(row, fields);
  }

  /** Flush, then wait until the channel has completed every write. */
  async drain(): Promise<void> {
    this.writer.flush();
    while (this.writer.slotsInFlight > 0) {
      this.room = new Signal();
      if (this.writer.slotsInFlight === 0) break;
      await Promise.race([this.room.promise, this.abort]);
    }
  }
}
