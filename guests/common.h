/*
 * What every program under guests/ shares: its own deterministic generator
 * (splitmix64, so that the output is fixed by the arguments and never by
 * random_get), FNV-1a hashing of results, and argument parsing that names
 * what was wrong. Header-only: each program is one translation unit.
 */
#ifndef GUESTS_COMMON_H
#define GUESTS_COMMON_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* splitmix64 (Steele, Lea, Flood 2014): one 64-bit state, one output per call. */
static inline uint64_t prng_next(uint64_t *state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

#define FNV64_OFFSET 0xcbf29ce484222325ULL
#define FNV64_PRIME 0x100000001b3ULL

/* FNV-1a over `len` bytes, continuing from `h`. */
static inline uint64_t fnv1a64(uint64_t h, const void *data, size_t len) {
  const unsigned char *p = (const unsigned char *)data;
  for (size_t i = 0; i < len; i++) h = (h ^ p[i]) * FNV64_PRIME;
  return h;
}

/* FNV-1a over the 8 little-endian bytes of `v` (wasm32 is little-endian). */
static inline uint64_t fnv1a64_u64(uint64_t h, uint64_t v) {
  return fnv1a64(h, &v, sizeof v);
}

/* Print the usage and a reason to stderr, and exit 2. */
static inline void usage_exit(const char *usage, const char *why) {
  fprintf(stderr, "%s\nusage: %s\n", why, usage);
  exit(2);
}

/* A decimal unsigned argument in [min, max], or exit naming `what`. */
static inline uint64_t parse_arg(const char *usage, const char *what, const char *text,
                                 uint64_t min, uint64_t max) {
  char *end = NULL;
  errno = 0;
  unsigned long long v = strtoull(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || text[0] == '-') {
    fprintf(stderr, "%s must be a decimal number, got '%s'\nusage: %s\n", what, text, usage);
    exit(2);
  }
  if (v < min || v > max) {
    fprintf(stderr, "%s must be in [%llu, %llu], got %llu\nusage: %s\n", what,
            (unsigned long long)min, (unsigned long long)max, v, usage);
    exit(2);
  }
  return (uint64_t)v;
}

#endif
