/*
 * ferry-hugepages: madvise(MADV_HUGEPAGE) over the bytes of a typed array
 * (guest RAM is a shared WebAssembly.Memory; Node has no madvise).
 *
 * adviseHuge(typedArray) -> the bytes advised: the array's range with its
 * start aligned up and its end aligned down to 2 MiB (a range holding no
 * whole 2 MiB page advises nothing and returns 0). Throws, naming errno,
 * when madvise fails. The range comes from napi_get_typedarray_info, which
 * works on a SharedArrayBuffer's view (napi_get_arraybuffer_info does not).
 *
 * Advice is about the mapping: pages touched after it may be 2 MiB pages,
 * as the kernel's THP settings allow (enabled = always or madvise).
 */
#include <errno.h>
#include <node_api.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#define HUGE_BYTES ((uintptr_t)2 << 20)

static napi_value fail(napi_env env, const char *message) {
  napi_throw_error(env, "ERR_HUGEPAGES", message);
  return NULL;
}

static napi_value advise_huge(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return fail(env, "adviseHuge: cannot read its arguments");
  bool is_typed = false;
  if (argc < 1 || napi_is_typedarray(env, argv[0], &is_typed) != napi_ok || !is_typed) {
    return fail(env, "adviseHuge: the argument must be a typed array over the memory to advise");
  }
  napi_typedarray_type type;
  size_t length = 0;
  void *data = NULL;
  if (napi_get_typedarray_info(env, argv[0], &type, &length, &data, NULL, NULL) != napi_ok) {
    return fail(env, "adviseHuge: cannot read the typed array's range");
  }
  size_t element = 1;
  switch (type) {
    case napi_int16_array: case napi_uint16_array: element = 2; break;
    case napi_int32_array: case napi_uint32_array: case napi_float32_array: element = 4; break;
    case napi_float64_array: case napi_bigint64_array: case napi_biguint64_array: element = 8; break;
    default: element = 1; break;
  }
  uintptr_t start = (uintptr_t)data;
  uintptr_t end = start + (uintptr_t)length * element;
  uintptr_t from = (start + HUGE_BYTES - 1) & ~(HUGE_BYTES - 1);
  uintptr_t to = end & ~(HUGE_BYTES - 1);
  double advised = 0;
  if (data != NULL && to > from) {
    if (madvise((void *)from, to - from, MADV_HUGEPAGE) != 0) {
      char message[160];
      int err = errno;
      strcpy(message, "adviseHuge: madvise(MADV_HUGEPAGE) failed: ");
      strncat(message, strerror(err), sizeof message - strlen(message) - 1);
      return fail(env, message);
    }
    advised = (double)(to - from);
  }
  napi_value result;
  napi_create_double(env, advised, &result);
  return result;
}

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  napi_value fn;
  if (napi_create_function(env, "adviseHuge", NAPI_AUTO_LENGTH, advise_huge, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "adviseHuge", fn) != napi_ok) return NULL;
  return exports;
}
