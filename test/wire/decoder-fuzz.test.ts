/**
 * Property-based fuzzing of the stream decoder with fast-check: valid
 * streams mutated every way the wire format can be broken (truncation,
 * bit flips, spliced garbage, oversized lengths, records swapped, moved
 * or repeated). Each run: only WireErrors escape, no write lands outside
 * RAM, and GO is delivered only by a stream whose every record checked.
 * `npm test` runs FERRY_FUZZ_RUNS (default 2,000); set it higher
 * (`FERRY_FUZZ_RUNS=20000 node --test dist/test/wire/decoder-fuzz.test.js`)
 * for a longer campaign.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { PAGE_SIZE } from '../../src/memory/page.js';
import { WireError } from '../../src/errors.js';
import { FrameDecoder } from '../../src/wire/frame-decoder.js';
import { jsPageSum } from '../../src/wire/page-checksum.js';
import { RECORD, Rec } from '../../src/wire/records.js';
import { PAGES, mutate, mutation } from './stream-mutations.js';
import { fileLimit } from '../waits.js';

fileLimit(import.meta.url, 60_000 * Math.max(1, Number(process.env.FERRY_FUZZ_RUNS ?? 0) / 1000));

const RUNS = Number(process.env.FERRY_FUZZ_RUNS ?? 2000);

test(`fuzz (fast-check, ${RUNS} runs): mutated streams give a wire error or decode cleanly, never write outside RAM, never GO unchecked`, () => {
  let rejected = 0;
  let completed = 0;
  fc.assert(
    fc.property(fc.array(mutation, { minLength: 1, maxLength: 3 }), fc.array(fc.integer({ min: 1, max: 20_000 }), { minLength: 1, maxLength: 8 }), (mutations, chunkSizes) => {
      const stream = mutate(mutations);
      const ram = new Uint8Array(PAGES * PAGE_SIZE);
      let go = false;
      const counted = { normal: 0, zero: 0 };
      const decoder = new FrameDecoder({
        pageData: (_b, offset, data) => {
          if (offset < 0 || offset + data.length > ram.length) throw new Error(`write ${offset}+${data.length} outside RAM`);
          ram.set(data, offset);
        },
        pageSum: (_b, first, count) => jsPageSum(new Int32Array(ram.buffer, first * PAGE_SIZE, count * 1024)),
        record: (type, _block, head, pages) => {
          // What the loader adds to the decoder's checks: END's totals against what arrived.
          if (type === Rec.Pages) counted.normal += pages;
          if (type === Rec.Zero) counted.zero += RECORD.Zero.decode(head).count;
          if (type === Rec.End) {
            const [t] = RECORD.End.decode(head, 1).totals;
            if (t.normal !== counted.normal || t.zero !== counted.zero) throw new WireError('END: totals differ');
          }
          if (type === Rec.Go) go = true;
        },
      }, { stream: true });
      try {
        for (let at = 0, i = 0; at < stream.length; i++) {
          const n = chunkSizes[i % chunkSizes.length];
          decoder.feed(stream.subarray(at, at + n));
          at += n;
        }
      } catch (err) {
        // A flipped version field is a refusal (refusals.ts): the stream's version is not read here.
        assert.ok(['ERR_FERRY_WIRE', 'ERR_FERRY_REFUSED'].includes((err as { code?: string }).code ?? ''), `only wire errors and refusals escape, got: ${(err as Error).stack}`);
        rejected++;
        return;
      }
      if (go) {
        completed++;
        assert.ok(decoder.atBoundary && !decoder.closed, 'GO only from a stream that decoded to the end');
      }
    }),
    { numRuns: RUNS, seed: Number(process.env.FERRY_FUZZ_SEED ?? 20261125) },
  );
  // Some mutations leave a valid stream (swapping a frame with itself, or two
  // records whose order does not matter): those may reach GO, checked.
  assert.ok(rejected > RUNS * 0.6, `mutations are effective: ${rejected} of ${RUNS} rejected, ${completed} reached GO`);
  console.log(`# decoder fuzz: ${RUNS} runs, ${rejected} rejected with a wire error, ${completed} reached GO after every check`);
});
