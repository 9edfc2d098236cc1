/**
 * The proof of a channel (several channels, destination): a connection
 * routed here for its first byte is one of the stream's channels only once
 * its first record, read on the loader thread, is a CHANNEL of this stream
 * (its guest, its count of channels, an index in range) whose index no
 * other connection claimed. Only then does it get a thread of its own
 * (channel-loaders.ts): a stranger (garbage, another stream's, a second
 * claim of an index) costs a socket for a moment, never a thread, and is
 * dropped with the reason, never failing the migration.
 *
 * The read is small and capped: the first CHANNEL_RECORD_BYTES bytes, fed
 * to the stream's decoder in channel mode with its largest record that
 * size, so the frame, the check and the order (CHANNEL first) are the
 * decoder's own rules. The bytes read stay queued, whole, for the
 * channel's thread, which decodes the stream from its first byte (its
 * acknowledgements count every byte).
 */
import type net from 'node:net';
import { WireError } from '../errors.js';
import { CHECK_BYTES, FRAME_HEADER_BYTES, type StreamHeader } from '../wire/format.js';
import { FrameDecoder } from '../wire/frame-decoder.js';
import { RECORD, Rec } from '../wire/records.js';

/** A CHANNEL record's whole size: frame header, head, check. */
export const CHANNEL_RECORD_BYTES = FRAME_HEADER_BYTES + RECORD.Channel.headBytes + CHECK_BYTES;

export type ChannelProofResult =
  | { readonly index: number; readonly chunks: Buffer[] }
  | { readonly error: Error };

/** "an unproven connection from ADDR:PORT": how errors name a connection that has not proved which channel it is. */
export function unproven(socket: net.Socket): string {
  return `an unproven connection from ${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
}

/**
 * Read `socket`'s CHANNEL and check it (`claimed(index)`: another
 * connection already is that channel); `done` once, with the index and the
 * chunks read (the socket paused: the caller takes its 'data' next), or
 * with why it is a stranger. Returns a cancel (the migration ended).
 */
export function proveChannel(socket: net.Socket, header: StreamHeader, claimed: (index: number) => boolean, done: (r: ChannelProofResult) => void): () => void {
  const chunks: Buffer[] = [];
  let length = 0;
  let settled = false;
  const settle = (r: ChannelProofResult): void => {
    if (settled) return;
    settled = true;
    socket.pause();
    socket.off('data', onData);
    socket.off('end', onEnd);
    socket.off('close', onEnd);
    socket.off('error', onError);
    done(r);
  };
  const onData = (chunk: Buffer): void => {
    chunks.push(chunk);
    length += chunk.length;
    if (length < CHANNEL_RECORD_BYTES) return;
    try {
      const index = readChannel(Buffer.concat(chunks, length).subarray(0, CHANNEL_RECORD_BYTES), header);
      if (claimed(index)) throw new WireError(`CHANNEL: channel ${index} connected twice (the claim is the first connection's)`);
      settle({ index, chunks });
    } catch (err) {
      settle({ error: err as Error });
    }
  };
  const onEnd = (): void => settle({ error: new WireError(`it closed after ${length} bytes, before a whole CHANNEL (${CHANNEL_RECORD_BYTES} bytes)`) });
  const onError = (err: Error): void => settle({ error: new WireError(`the connection failed before its CHANNEL: ${err.message}`, { cause: err }) });
  socket.on('data', onData);
  socket.on('end', onEnd);
  socket.on('close', onEnd);
  socket.on('error', onError);
  return () => settle({ error: new WireError('the migration ended before it proved itself a channel') });
}

/** The first record of `bytes` (exactly a CHANNEL's size): a CHANNEL of this stream, its index in range; else a WireError saying what. */
function readChannel(bytes: Buffer, h: StreamHeader): number {
  let index = -1;
  const decoder = new FrameDecoder({
    record: (type, _block, head) => {
      if (type !== Rec.Channel) throw new WireError(`its first record is not CHANNEL`);
      const c = RECORD.Channel.decode(head);
      if (c.uuid !== h.uuid) throw new WireError(`CHANNEL: guest ${c.uuid}, the stream is guest ${h.uuid}`);
      if (c.channels !== h.channels) throw new WireError(`CHANNEL: ${c.channels} channels, the header announced ${h.channels}`);
      if (c.index >= c.channels) throw new WireError(`CHANNEL: index ${c.index}, expected 0..${c.channels - 1}`);
      index = c.index;
    },
  }, { stream: true, channelOf: h, maxRecordBytes: RECORD.Channel.headBytes });
  decoder.feed(bytes);
  if (index < 0) throw new WireError(`its first ${CHANNEL_RECORD_BYTES} bytes are not a whole CHANNEL record`);
  return index;
}
