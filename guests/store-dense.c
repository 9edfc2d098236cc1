/*
 * store-dense: a tight loop of byte and word stores, for the benchmark of
 * dirty tracking (one mark per store is the worst case).
 *
 *   store-dense MIB ROUNDS
 *
 * Each round writes every byte of an array of MIB MiB (a[i] = i + 31 r,
 * one byte store per iteration), then every other 32-bit word
 * (w[j] = j * 2654435761 + r, j even). At the end it reads the array back
 * into a checksum (FNV-1a over its 32-bit words: ck = (ck ^ w[j]) * 16777619)
 * and prints it.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "common.h"

#define USAGE "store-dense MIB ROUNDS"

static void byte_pass(uint8_t *a, size_t size, uint32_t round) {
  for (size_t i = 0; i < size; i++) a[i] = (uint8_t)(i + round * 31u);
}

static void word_pass(uint32_t *w, size_t words, uint32_t round) {
  for (size_t j = 0; j < words; j += 2) w[j] = (uint32_t)j * 2654435761u + round;
}

static uint32_t checksum(const uint32_t *w, size_t words) {
  uint32_t ck = 2166136261u;
  for (size_t j = 0; j < words; j++) ck = (ck ^ w[j]) * 16777619u;
  return ck;
}

int main(int argc, char **argv) {
  if (argc != 3) usage_exit(USAGE, "expected 2 arguments");
  uint64_t mib = parse_arg(USAGE, "MIB", argv[1], 1, 2048);
  uint32_t rounds = (uint32_t)parse_arg(USAGE, "ROUNDS", argv[2], 1, 1000000);
  size_t size = (size_t)mib << 20;
  uint8_t *a = malloc(size);
  if (!a) { fprintf(stderr, "store-dense: cannot allocate %" PRIu64 " MiB\n", mib); return 1; }
  for (uint32_t r = 0; r < rounds; r++) {
    byte_pass(a, size, r);
    word_pass((uint32_t *)a, size / 4, r);
  }
  printf("store-dense: %" PRIu64 " MiB x %" PRIu32 " rounds, checksum %08" PRIx32 "\n", mib, rounds,
         checksum((const uint32_t *)a, size / 4));
  free(a);
  return 0;
}
