/**
 * Mutations of a valid migration stream for the fuzz suites (decoder and
 * loader): every way the wire format can be broken, as fast-check
 * arbitraries.
 */
import fc from 'fast-check';
import { PAGE_SIZE } from '../../src/memory/page.js';
import { FRAME_HEADER_BYTES, HEADER_FIXED_BYTES } from '../../src/wire/format.js';
import { buildStream } from './stream-fixture.js';

export const PAGES = 16;
/**
 * The valid stream is a program's, whose block grows in its pass, and
 * whose second pass sends two pages again as XBZRLE deltas: identity,
 * pages in use, GROW and the deltas are fuzzed too.
 */
export const FUZZ_PROGRAM = 'f0'.repeat(32);
export const { bytes: VALID, ram: VALID_RAM } = buildStream(PAGES, { program: FUZZ_PROGRAM, grow: true, xbzrle: true });
/** The same stream (its deltas too) for a destination that preallocates: the ever-written map (WRITTEN) first, in two records. */
export const WRITTEN_MAP: readonly (readonly number[])[] = [[0, 1, 2, 1], [4, PAGES - 4]];
export const { bytes: VALID_WRITTEN } = buildStream(PAGES, { program: FUZZ_PROGRAM, grow: true, xbzrle: true, written: WRITTEN_MAP });

/** Offsets of every frame in the valid stream (after the header). */
function frameOffsets(stream: Buffer): number[] {
  const offsets: number[] = [];
  let at = HEADER_FIXED_BYTES + stream.readUInt32LE(32) + 4;
  while (at < stream.length) {
    offsets.push(at);
    at += FRAME_HEADER_BYTES + stream.readUInt32LE(at + 4) + stream.readUInt32LE(at + 8) * PAGE_SIZE + 4;
  }
  return offsets;
}

export type Mutation =
  | { kind: 'truncate'; at: number }
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'splice'; at: number; junk: Uint8Array }
  | { kind: 'u32'; at: number; value: number }
  | { kind: 'swap'; a: number; b: number }
  | { kind: 'repeat'; frame: number; times: number }
  | { kind: 'drop'; frame: number };

/** The mutations of a valid stream `valid`, and how they apply to it. */
export function mutationsOf(valid: Buffer): { readonly mutation: fc.Arbitrary<Mutation>; mutate(mutations: readonly Mutation[]): Buffer } {
  const FRAMES = frameOffsets(valid);
  const frameAt = (i: number) => valid.subarray(FRAMES[i], FRAMES[i + 1] ?? valid.length);
  const HEADER = valid.subarray(0, FRAMES[0]);
  const mutation: fc.Arbitrary<Mutation> = fc.oneof(
    fc.record({ kind: fc.constant('truncate' as const), at: fc.nat(valid.length) }),
    fc.record({ kind: fc.constant('flip' as const), at: fc.nat(valid.length - 1), bit: fc.nat(7) }),
    fc.record({ kind: fc.constant('splice' as const), at: fc.nat(valid.length), junk: fc.uint8Array({ minLength: 1, maxLength: 64 }) }),
    fc.record({ kind: fc.constant('u32' as const), at: fc.nat(valid.length - 4), value: fc.oneof(fc.constant(0xffffffff), fc.constant(0x7fffffff), fc.nat(), fc.integer({ min: 0, max: 300 })) }),
    fc.record({ kind: fc.constant('swap' as const), a: fc.nat(FRAMES.length - 1), b: fc.nat(FRAMES.length - 1) }),
    fc.record({ kind: fc.constant('repeat' as const), frame: fc.nat(FRAMES.length - 1), times: fc.integer({ min: 1, max: 3 }) }),
    fc.record({ kind: fc.constant('drop' as const), frame: fc.nat(FRAMES.length - 1) }),
  );

  function apply(m: Mutation): Buffer {
    switch (m.kind) {
      case 'truncate': return Buffer.from(valid.subarray(0, m.at));
      case 'flip': { const b = Buffer.from(valid); b[m.at] ^= 1 << m.bit; return b; }
      case 'splice': return Buffer.concat([valid.subarray(0, m.at), m.junk, valid.subarray(m.at)]);
      case 'u32': { const b = Buffer.from(valid); b.writeUInt32LE(m.value >>> 0, m.at); return b; }
      case 'swap': {
        const order = FRAMES.map((_, i) => i);
        [order[m.a], order[m.b]] = [order[m.b], order[m.a]];
        return Buffer.concat([HEADER, ...order.map(frameAt)]);
      }
      case 'repeat': return Buffer.concat([HEADER, ...FRAMES.flatMap((_, i) => Array.from({ length: i === m.frame ? m.times + 1 : 1 }, () => frameAt(i)))]);
      case 'drop': return Buffer.concat([HEADER, ...FRAMES.filter((_, i) => i !== m.frame).map((_, i) => frameAt(i >= m.frame ? i + 1 : i))]);
    }
  }

  /** Byte-level mutations apply to the current stream (so several can stack). */
  function applyTo(stream: Buffer, m: Mutation): Buffer {
    const at = (n: number) => Math.min(n, Math.max(0, stream.length - 1));
    switch (m.kind) {
      case 'truncate': return Buffer.from(stream.subarray(0, Math.min(m.at, stream.length)));
      case 'flip': { const b = Buffer.from(stream); if (b.length > 0) b[at(m.at)] ^= 1 << m.bit; return b; }
      case 'splice': return Buffer.concat([stream.subarray(0, Math.min(m.at, stream.length)), m.junk, stream.subarray(Math.min(m.at, stream.length))]);
      case 'u32': { const b = Buffer.from(stream); if (b.length >= 4) b.writeUInt32LE(m.value >>> 0, Math.min(m.at, b.length - 4)); return b; }
      default: return stream;
    }
  }

  /** A stream with `mutations` applied in order. */
  function mutate(mutations: readonly Mutation[]): Buffer {
    let stream = valid;
    for (const m of mutations) stream = m.kind === 'truncate' || m.kind === 'flip' || m.kind === 'splice' || m.kind === 'u32' ? applyTo(stream, m) : apply(m);
    return stream;
  }
  return { mutation, mutate };
}

const ofValid = mutationsOf(VALID);
export const mutation = ofValid.mutation;
export const mutate = ofValid.mutate;
