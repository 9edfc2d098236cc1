/*
 * zstd-roundtrip: compress and decompress generated text with zstd,
 * deterministic.
 *
 *   zstd-roundtrip MIB LEVEL SEED
 *
 * Generates MIB MiB of text-like data (words from a fixed vocabulary with a
 * skewed choice, numbers, punctuation, lines) from splitmix64 seeded by
 * SEED, compresses it in chunks of CHUNK bytes with the streaming API at
 * LEVEL (one frame, flushed after each chunk, with zstd's content checksum),
 * prints each chunk's compressed size, then decompresses the frame with the
 * streaming API and compares every byte with the data generated again from
 * the same seed. It prints the XXH64 (zstd's own xxhash) of the input, of
 * the output and of the frame; the last line is "roundtrip: ok", or it
 * stops with "MISMATCH" and exit code 1.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#define XXH_STATIC_LINKING_ONLY
#include "common/xxhash.h"
#include "zstd.h"

#define USAGE "zstd-roundtrip MIB LEVEL SEED"
#define CHUNK (256 * 1024)
#define FRAME_PIECE (64 * 1024) /* compressed bytes fed to the decompressor at a time */

static const char *const WORDS[] = {
  "the", "of", "and", "to", "in", "a", "is", "that", "for", "it", "as", "was", "with", "be", "by",
  "on", "not", "he", "this", "are", "or", "his", "from", "at", "which", "but", "have", "an", "had",
  "they", "you", "were", "their", "one", "all", "we", "can", "her", "has", "there", "been", "if",
  "more", "when", "will", "would", "who", "so", "no", "migration", "memory", "page", "guest",
  "pass", "dirty", "switchover", "downtime", "bandwidth", "destination", "source", "stream",
  "program", "database", "compressor",
};
#define NWORDS (sizeof WORDS / sizeof WORDS[0])

/* The text generator: a stream of tokens, cut into buffers of any size. */
struct gen {
  uint64_t prng;
  char token[32];
  size_t token_len, token_pos;
  unsigned words_in_line;
};

static void next_token(struct gen *g) {
  uint64_t r = prng_next(&g->prng);
  /* skewed: the product of two uniform indices favours the first words */
  size_t w = (size_t)((r & 0xff) * ((r >> 8) & 0xff) * NWORDS / (256 * 256));
  unsigned kind = (unsigned)((r >> 16) % 16);
  const char *sep = ++g->words_in_line >= 12 + (r >> 20) % 8 ? "\n" : kind == 0 ? ", " : kind == 1 ? ". " : " ";
  if (sep[0] == '\n') g->words_in_line = 0;
  if (kind == 2) {
    g->token_len = (size_t)snprintf(g->token, sizeof g->token, "%" PRIu64 "%s", (r >> 24) % 100000, sep);
  } else {
    g->token_len = (size_t)snprintf(g->token, sizeof g->token, "%s%s", WORDS[w], sep);
  }
  g->token_pos = 0;
}

static void generate(struct gen *g, unsigned char *out, size_t n) {
  while (n > 0) {
    if (g->token_pos == g->token_len) next_token(g);
    size_t take = g->token_len - g->token_pos;
    if (take > n) take = n;
    memcpy(out, g->token + g->token_pos, take);
    g->token_pos += take; out += take; n -= take;
  }
}

static void mismatch(const char *what) {
  fprintf(stderr, "MISMATCH %s\n", what);
  exit(1);
}

static void check_zstd(size_t rc, const char *what) {
  if (ZSTD_isError(rc)) {
    fprintf(stderr, "zstd-roundtrip: %s: %s\n", what, ZSTD_getErrorName(rc));
    exit(1);
  }
}

/* A growing buffer for the compressed frame (realloc: memory grows as it runs). */
struct buffer { unsigned char *data; size_t size, cap; };

static void reserve(struct buffer *b, size_t more) {
  if (b->size + more <= b->cap) return;
  size_t cap = b->cap ? b->cap : 64 * 1024;
  while (cap < b->size + more) cap *= 2;
  b->data = realloc(b->data, cap);
  if (!b->data) { fprintf(stderr, "zstd-roundtrip: out of memory at %zu bytes\n", cap); exit(1); }
  b->cap = cap;
}

/* Compress one chunk into the frame; returns the compressed bytes it added. */
static size_t compress_chunk(ZSTD_CCtx *cctx, struct buffer *frame, const unsigned char *in, size_t n, int last) {
  size_t before = frame->size, remaining;
  ZSTD_inBuffer input = {in, n, 0};
  do {
    reserve(frame, ZSTD_CStreamOutSize());
    ZSTD_outBuffer output = {frame->data + frame->size, frame->cap - frame->size, 0};
    remaining = ZSTD_compressStream2(cctx, &output, &input, last ? ZSTD_e_end : ZSTD_e_flush);
    check_zstd(remaining, "compress");
    frame->size += output.pos;
  } while (remaining != 0 || input.pos < input.size);
  return frame->size - before;
}

static void compress_all(struct buffer *frame, uint64_t mib, int level, uint64_t seed, XXH64_hash_t *hash) {
  ZSTD_CCtx *cctx = ZSTD_createCCtx();
  check_zstd(ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level), "level");
  check_zstd(ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1), "checksum flag");
  struct gen g = {.prng = seed};
  XXH64_state_t *xxh = XXH64_createState();
  XXH64_reset(xxh, 0);
  unsigned char *chunk = malloc(CHUNK);
  uint64_t chunks = mib * (1024 * 1024 / CHUNK);
  for (uint64_t i = 0; i < chunks; i++) {
    generate(&g, chunk, CHUNK);
    XXH64_update(xxh, chunk, CHUNK);
    size_t out = compress_chunk(cctx, frame, chunk, CHUNK, i + 1 == chunks);
    printf("chunk %" PRIu64 ": %d -> %zu bytes\n", i, CHUNK, out);
  }
  *hash = XXH64_digest(xxh);
  XXH64_freeState(xxh);
  free(chunk);
  ZSTD_freeCCtx(cctx);
}

/* Decompress the frame piece by piece, comparing with the data generated again. */
static uint64_t decompress_all(const struct buffer *frame, uint64_t seed, XXH64_hash_t *hash) {
  ZSTD_DCtx *dctx = ZSTD_createDCtx();
  struct gen g = {.prng = seed};
  XXH64_state_t *xxh = XXH64_createState();
  XXH64_reset(xxh, 0);
  unsigned char *out = malloc(ZSTD_DStreamOutSize()), *expected = malloc(ZSTD_DStreamOutSize());
  uint64_t total = 0;
  size_t rc = 1;
  for (size_t at = 0; at < frame->size;) {
    size_t piece = frame->size - at < FRAME_PIECE ? frame->size - at : FRAME_PIECE;
    ZSTD_inBuffer input = {frame->data + at, piece, 0};
    /* zstd consumes a frame's last byte only once it has flushed all its output */
    while (input.pos < input.size) {
      ZSTD_outBuffer output = {out, ZSTD_DStreamOutSize(), 0};
      rc = ZSTD_decompressStream(dctx, &output, &input);
      check_zstd(rc, "decompress");
      generate(&g, expected, output.pos);
      if (memcmp(out, expected, output.pos) != 0) mismatch("decompressed bytes differ from the input");
      XXH64_update(xxh, out, output.pos);
      total += output.pos;
    }
    at += piece;
  }
  if (rc != 0) mismatch("the frame ended early");
  *hash = XXH64_digest(xxh);
  XXH64_freeState(xxh);
  free(out); free(expected);
  ZSTD_freeDCtx(dctx);
  return total;
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0); /* each chunk's line is written when it is made */
  if (argc != 4) usage_exit(USAGE, "expected 3 arguments");
  uint64_t mib = parse_arg(USAGE, "MIB", argv[1], 1, 1024);
  int level = (int)parse_arg(USAGE, "LEVEL", argv[2], 1, (uint64_t)ZSTD_maxCLevel());
  uint64_t seed = parse_arg(USAGE, "SEED", argv[3], 0, UINT64_MAX);
  if (XXH64("", 0, 0) != 0xef46db3751d8e999ULL) mismatch("XXH64 of the empty string");
  printf("zstd-roundtrip: zstd %s, %" PRIu64 " MiB at level %d, seed %s, chunks of %d bytes\n",
         ZSTD_versionString(), mib, level, argv[3], CHUNK);
  struct buffer frame = {0};
  XXH64_hash_t in_hash, out_hash;
  compress_all(&frame, mib, level, seed, &in_hash);
  uint64_t in_bytes = mib * 1024 * 1024;
  printf("compressed: %" PRIu64 " -> %zu bytes, frame xxh64 %016" PRIx64 "\n", in_bytes, frame.size,
         (uint64_t)XXH64(frame.data, frame.size, 0));
  uint64_t out_bytes = decompress_all(&frame, seed, &out_hash);
  if (out_bytes != in_bytes) mismatch("decompressed size differs from the input's");
  if (out_hash != in_hash) mismatch("XXH64 of the output differs from the input's");
  printf("decompressed: %" PRIu64 " bytes, equal to the input\n", out_bytes);
  printf("xxh64 input %016" PRIx64 " output %016" PRIx64 "\n", (uint64_t)in_hash, (uint64_t)out_hash);
  free(frame.data);
  printf("roundtrip: ok\n");
  return 0;
}
