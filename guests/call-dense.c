/*
 * call-dense: a tight loop of small calls that are not inlined, half of
 * them through a function pointer, for the benchmark of instrumentation
 * that costs per call (Asyncify's checks around every call).
 *
 *   call-dense N
 *
 * N iterations of: x = mix(x, i) (a direct call), then
 * y = OPS[(x >> 7) & 3](y, i) (an indirect call; OPS[3] calls mix again).
 * Prints x and y. OPS has external linkage so the compiler cannot turn the
 * indirect calls into direct ones.
 */
#include <inttypes.h>
#include <stdio.h>

#include "common.h"

#define USAGE "call-dense N"

typedef uint32_t (*op_fn)(uint32_t, uint32_t);

__attribute__((noinline)) uint32_t mix(uint32_t x, uint32_t i) {
  return (x ^ i) * 0x9e3779b1u + 0x7f4a7c15u;
}

__attribute__((noinline)) uint32_t op_add_rotate(uint32_t y, uint32_t i) {
  y += i;
  return (y << 13) | (y >> 19);
}

__attribute__((noinline)) uint32_t op_xor_multiply(uint32_t y, uint32_t i) {
  return (y ^ (i >> 3)) * 0x85ebca6bu;
}

__attribute__((noinline)) uint32_t op_subtract_shift(uint32_t y, uint32_t i) {
  return (y - i) ^ (y >> 16);
}

__attribute__((noinline)) uint32_t op_mix_again(uint32_t y, uint32_t i) {
  return mix(y, ~i) + 1;
}

op_fn OPS[4] = {op_add_rotate, op_xor_multiply, op_subtract_shift, op_mix_again};

int main(int argc, char **argv) {
  if (argc != 2) usage_exit(USAGE, "expected 1 argument");
  uint32_t n = (uint32_t)parse_arg(USAGE, "N", argv[1], 1, UINT32_MAX);
  uint32_t x = 1, y = 2;
  for (uint32_t i = 0; i < n; i++) {
    x = mix(x, i);
    y = OPS[(x >> 7) & 3](y, i);
  }
  printf("call-dense: %" PRIu32 " iterations, x %08" PRIx32 " y %08" PRIx32 "\n", n, x, y);
  return 0;
}
