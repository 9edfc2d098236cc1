/*
 * moments: a program with one mode per kind of moment at which a
 * migration may catch it, for the tests of invariant 8. Every mode is
 * deterministic (but `random`, whose values come from random_get), prints
 * lines that show its progress and ends with a checksum line; its
 * arguments set how long it runs.
 *
 *   moments loop N         N blocks of 2^20 iterations of arithmetic that calls nothing;
 *                          a line every 64 blocks and at the end
 *   moments sleep N MS     N times: a line, then nanosleep(MS ms) (poll_oneoff)
 *   moments output N       N lines of 100 bytes, one fd_write each (stdout is line-buffered)
 *   moments deep DEPTH N   N times: a recursion DEPTH levels deep (two wasm frames per level),
 *                          through an indirect call at each level, with a wasm local and a
 *                          stack array (in linear memory) live across the call and checked
 *                          after it; a line and 2^18 iterations of work at the bottom
 *   moments growslow N MS  as grow, sleeping MS ms after each block: memory grows all through a migration
 *   moments grow N         N blocks of 64 KiB + 4 KiB i, kept, filled (memory.fill), partly
 *                          copied from the block before (memory.copy); memory grows each time;
 *                          at the end every block is checked again
 *   moments files DIR N    in the preopened directory DIR: N files written, read back,
 *                          appended to, renamed, read again; at the end all are read again
 *   moments random N       N values from getentropy (random_get): output fixed only by the seed
 *                          of the runtime's random source
 *
 * A check that fails prints "MISMATCH ..." and exits 1.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

#define USAGE "moments loop N | sleep N MS | output N | deep DEPTH N | grow N | growslow N MS | files DIR N | random N"

static void die(const char *what, uint64_t detail) {
  fprintf(stderr, "moments: %s (%" PRIu64 ")\n", what, detail);
  exit(1);
}

static void mismatch(const char *what, uint64_t detail) {
  printf("MISMATCH %s (%" PRIu64 ")\n", what, detail);
  fflush(stdout);
  exit(1);
}

/* ---- loop: a long stretch of code that calls nothing ---------------------- */

static void mode_loop(uint64_t blocks) {
  uint64_t x = 1, ck = FNV64_OFFSET;
  for (uint64_t b = 1; b <= blocks; b++) {
    for (uint32_t i = 0; i < (1u << 20); i++) {
      x = x * 6364136223846793005ULL + 1442695040888963407ULL;
      ck = (ck ^ (x >> 29)) * FNV64_PRIME;
    }
    if (b % 64 == 0 || b == blocks) printf("loop %" PRIu64 "/%" PRIu64 ": %016" PRIx64 "\n", b, blocks, ck);
  }
  printf("checksum %016" PRIx64 "\n", ck);
}

/* ---- sleep: blocked in poll_oneoff --------------------------------------- */

static void mode_sleep(uint64_t n, uint64_t ms) {
  uint64_t ck = FNV64_OFFSET;
  struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L};
  for (uint64_t i = 1; i <= n; i++) {
    printf("sleep %" PRIu64 "/%" PRIu64 ": %" PRIu64 " ms\n", i, n, ms);
    if (nanosleep(&ts, NULL) != 0) die("nanosleep failed", i);
    ck = fnv1a64_u64(ck, i);
  }
  printf("checksum %016" PRIx64 "\n", ck);
}

static void sleep_ms(uint64_t ms) {
  struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L};
  if (nanosleep(&ts, NULL) != 0) die("nanosleep failed", ms);
}

/* ---- output: many small writes ------------------------------------------ */

static void mode_output(uint64_t n) {
  uint64_t prng = 42, ck = FNV64_OFFSET;
  char line[101];
  for (uint64_t i = 1; i <= n; i++) {
    int at = snprintf(line, sizeof line, "output %08" PRIu64 " ", i);
    while (at < 99) line[at++] = (char)('a' + prng_next(&prng) % 26);
    line[at++] = '\n';
    ck = fnv1a64(ck, line, (size_t)at);
    fwrite(line, 1, (size_t)at, stdout);
  }
  printf("checksum %016" PRIx64 "\n", ck);
}

/* ---- deep: a deep stack through indirect calls ---------------------------- */

typedef uint64_t (*level_fn)(uint32_t depth, uint64_t acc);
uint64_t level_even(uint32_t depth, uint64_t acc);
uint64_t level_odd(uint32_t depth, uint64_t acc);
/* External linkage: the compiler cannot turn these calls into direct ones. */
level_fn LEVELS[2] = {level_even, level_odd};
static uint64_t deep_round;

static uint64_t bottom(uint64_t acc) {
  printf("deep round %" PRIu64 ": at the bottom, %016" PRIx64 "\n", deep_round, acc);
  for (uint32_t i = 0; i < (1u << 18); i++) acc = (acc ^ (acc >> 31)) * 0x9e3779b97f4a7c15ULL + i;
  return acc;
}

__attribute__((noinline)) static uint64_t level_body(uint32_t depth, uint64_t acc, uint32_t salt) {
  volatile uint32_t frame[8]; /* on the stack in linear memory: must survive the call below */
  uint64_t mine = acc * 0x9e3779b97f4a7c15ULL + depth + salt; /* a wasm local live across it */
  for (uint32_t i = 0; i < 8; i++) frame[i] = (uint32_t)(mine >> (i * 4)) ^ depth;
  uint64_t below = depth == 0 ? bottom(mine) : LEVELS[depth & 1](depth - 1, mine);
  for (uint32_t i = 0; i < 8; i++) {
    if (frame[i] != ((uint32_t)(mine >> (i * 4)) ^ depth)) mismatch("a stack array changed across the call", depth);
  }
  return below ^ (mine >> 3) ^ salt;
}

__attribute__((noinline)) uint64_t level_even(uint32_t depth, uint64_t acc) { return level_body(depth, acc, 0x1234); }
__attribute__((noinline)) uint64_t level_odd(uint32_t depth, uint64_t acc) { return level_body(depth, acc, 0x5678); }

static void mode_deep(uint64_t depth, uint64_t n) {
  uint64_t ck = FNV64_OFFSET;
  for (deep_round = 1; deep_round <= n; deep_round++) {
    uint64_t r = LEVELS[depth & 1]((uint32_t)depth, deep_round);
    ck = fnv1a64_u64(ck, r);
    printf("deep round %" PRIu64 "/%" PRIu64 ": depth %" PRIu64 ", %016" PRIx64 "\n", deep_round, n, depth, r);
  }
  printf("checksum %016" PRIx64 "\n", ck);
}

/* ---- grow: memory.grow while it runs ------------------------------------- */

static uint64_t block_hash(const uint8_t *b, size_t size) { return fnv1a64(FNV64_OFFSET, b, size); }

static void mode_grow(uint64_t n, uint64_t ms) {
  uint8_t **blocks = calloc(n, sizeof *blocks);
  uint64_t *hashes = calloc(n, sizeof *hashes), total = 0, ck = FNV64_OFFSET;
  if (!blocks || !hashes) die("out of memory for the block table", n);
  for (uint64_t i = 0; i < n; i++) {
    size_t size = 65536 + (size_t)i * 4096;
    uint8_t *b = blocks[i] = malloc(size);
    if (!b) die("out of memory at block", i);
    memset(b, (int)(i & 0xff), size);                               /* memory.fill */
    for (size_t p = 0; p < size; p += 4096) memcpy(b + p, &i, sizeof i); /* a store per page */
    if (i > 0) memcpy(b + size - 4096, blocks[i - 1], 4096);        /* memory.copy */
    hashes[i] = block_hash(b, size);
    total += size;
    ck = fnv1a64_u64(ck, hashes[i]);
    printf("grow %" PRIu64 "/%" PRIu64 ": +%zu bytes, total %" PRIu64 ", memory %zu pages, %016" PRIx64 "\n",
           i + 1, n, size, total, __builtin_wasm_memory_size(0), hashes[i]);
    if (ms > 0) sleep_ms(ms);
  }
  for (uint64_t i = 0; i < n; i++) {
    if (block_hash(blocks[i], 65536 + (size_t)i * 4096) != hashes[i]) mismatch("a block changed", i);
  }
  printf("grow verified: %" PRIu64 " blocks, %" PRIu64 " bytes\n", n, total);
  printf("checksum %016" PRIx64 "\n", ck);
}

/* ---- files: the preopened directory -------------------------------------- */

static size_t read_file(const char *path, char *out, size_t cap) {
  FILE *f = fopen(path, "r");
  if (!f) { fprintf(stderr, "moments: cannot open %s to read\n", path); exit(1); }
  size_t n = fread(out, 1, cap - 1, f);
  out[n] = '\0';
  fclose(f);
  return n;
}

static void write_file(const char *path, const char *mode, const char *text) {
  FILE *f = fopen(path, mode);
  if (!f || fputs(text, f) < 0 || fclose(f) != 0) { fprintf(stderr, "moments: cannot write %s\n", path); exit(1); }
}

static void one_file(const char *dir, uint64_t i, uint64_t *prng, uint64_t *ck) {
  char first[300], second[300], text[64], buf[256];
  snprintf(first, sizeof first, "%s/f%04" PRIu64 ".txt", dir, i);
  snprintf(second, sizeof second, "%s/g%04" PRIu64 ".txt", dir, i);
  snprintf(text, sizeof text, "file %" PRIu64 " written %016" PRIx64 "\n", i, prng_next(prng));
  write_file(first, "w", text);
  read_file(first, buf, sizeof buf);
  printf("read f%04" PRIu64 ".txt: %s", i, buf);
  snprintf(text, sizeof text, "file %" PRIu64 " appended\n", i);
  write_file(first, "a", text);
  if (rename(first, second) != 0) { fprintf(stderr, "moments: cannot rename %s\n", first); exit(1); }
  size_t n = read_file(second, buf, sizeof buf);
  printf("read g%04" PRIu64 ".txt after rename: %zu bytes\n", i, n);
  *ck = fnv1a64(*ck, buf, n);
}

static void mode_files(const char *dir, uint64_t n) {
  uint64_t prng = 7, ck = FNV64_OFFSET, again = FNV64_OFFSET;
  for (uint64_t i = 1; i <= n; i++) one_file(dir, i, &prng, &ck);
  for (uint64_t i = 1; i <= n; i++) {
    char path[300], buf[256];
    snprintf(path, sizeof path, "%s/g%04" PRIu64 ".txt", dir, i);
    again = fnv1a64(again, buf, read_file(path, buf, sizeof buf));
  }
  if (again != ck) mismatch("the files read at the end differ from those read when written", n);
  printf("files: %" PRIu64 " files read again, all equal\n", n);
  printf("checksum %016" PRIx64 "\n", ck);
}

/* ---- random: random_get -------------------------------------------------- */

static void mode_random(uint64_t n) {
  uint64_t ck = FNV64_OFFSET;
  for (uint64_t i = 1; i <= n; i++) {
    uint64_t v;
    if (getentropy(&v, sizeof v) != 0) die("getentropy failed", i);
    ck = fnv1a64_u64(ck, v);
    printf("random %" PRIu64 "/%" PRIu64 ": %016" PRIx64 "\n", i, n, v);
  }
  printf("checksum %016" PRIx64 "\n", ck);
}

/* The modes and how many arguments each takes after its name. */
static const struct { const char *name; int args; } MODES[] = {
  {"loop", 1}, {"sleep", 2}, {"output", 1}, {"deep", 2}, {"grow", 1}, {"growslow", 2}, {"files", 2}, {"random", 1},
};

static uint64_t arg(char **argv, int i, const char *what, uint64_t min, uint64_t max) {
  return parse_arg(USAGE, what, argv[i], min, max);
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0); /* a line is one fd_write: output interleaves with the moments */
  if (argc < 2) usage_exit(USAGE, "no mode given");
  const char *mode = argv[1];
  size_t m = 0;
  while (m < sizeof MODES / sizeof MODES[0] && strcmp(MODES[m].name, mode) != 0) m++;
  if (m == sizeof MODES / sizeof MODES[0]) usage_exit(USAGE, "unknown mode");
  if (argc != 2 + MODES[m].args) usage_exit(USAGE, "wrong number of arguments for this mode");
  if (!strcmp(mode, "loop")) mode_loop(arg(argv, 2, "N", 1, UINT32_MAX));
  else if (!strcmp(mode, "sleep")) mode_sleep(arg(argv, 2, "N", 1, UINT32_MAX), arg(argv, 3, "MS", 0, 3600000));
  else if (!strcmp(mode, "output")) mode_output(arg(argv, 2, "N", 1, UINT32_MAX));
  else if (!strcmp(mode, "deep")) mode_deep(arg(argv, 2, "DEPTH", 1, 500), arg(argv, 3, "N", 1, UINT32_MAX));
  else if (!strcmp(mode, "grow")) mode_grow(arg(argv, 2, "N", 1, 100000), 0);
  else if (!strcmp(mode, "growslow")) mode_grow(arg(argv, 2, "N", 1, 100000), arg(argv, 3, "MS", 1, 10000));
  else if (!strcmp(mode, "files")) mode_files(argv[2], arg(argv, 3, "N", 1, 9999));
  else mode_random(arg(argv, 2, "N", 1, UINT32_MAX));
  return 0;
}
