// The module @drover/store loads (build/Release/drover_native.node): registers each native
// file's functions, and holds what they share.
#include <uv.h>

#include "native.h"

napi_value nativeError(napi_env env, const char *message, const char *code, const char *syscall, size_t item) {
  napi_value msg, error, v;
  napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg);
  napi_create_error(env, NULL, msg, &error);
  napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, error, "code", v);
  napi_create_string_utf8(env, syscall ? syscall : "", NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, error, "syscall", v);
  napi_create_double(env, (double)item, &v);
  napi_set_named_property(env, error, "item", v);
  return error;
}

napi_value throwTypeError(napi_env env, const char *message) {
  napi_throw_type_error(env, NULL, message);
  return NULL;
}

napi_value startJob(napi_env env, const char *name, napi_async_execute_callback execute, napi_async_complete_callback complete, void *data, napi_async_work *work, napi_deferred *deferred) {
  napi_value promise, n;
  napi_create_promise(env, deferred, &promise);
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &n);
  napi_create_async_work(env, NULL, n, execute, complete, data, work);
  napi_queue_async_work(env, *work);
  return promise;
}

void settleJob(napi_env env, napi_deferred deferred, int failed, const char *message, const char *code, const char *syscall, size_t item) {
  if (failed) {
    napi_reject_deferred(env, deferred, nativeError(env, message, code, syscall, item));
    return;
  }
  napi_value undef;
  napi_get_undefined(env, &undef);
  napi_resolve_deferred(env, deferred, undef);
}

void settleErrno(napi_env env, napi_deferred deferred, int err, const char *syscall, size_t item) {
  // Named only on failure: libuv allocates a name for an unknown code, such as 0.
  settleJob(env, deferred, err != 0, err ? uv_strerror(-err) : "", err ? uv_err_name(-err) : "", syscall, item);
}

void endJob(napi_env env, napi_async_work work, napi_ref *keep, int count) {
  for (int k = 0; k < count; k++)
    if (keep[k]) napi_delete_reference(env, keep[k]);
  napi_delete_async_work(env, work);
}

int argBuffer(napi_env env, napi_value v, void **data, size_t *length) {
  bool isBuffer;
  return napi_is_buffer(env, v, &isBuffer) == napi_ok && isBuffer && napi_get_buffer_info(env, v, data, length) == napi_ok;
}

int argTyped(napi_env env, napi_value v, napi_typedarray_type type, void **data, size_t *length) {
  napi_typedarray_type got;
  napi_value ab;
  size_t offset;
  return napi_get_typedarray_info(env, v, &got, length, data, &ab, &offset) == napi_ok && got == type;
}

void exportFunction(napi_env env, napi_value exports, const char *name, napi_callback fn) {
  napi_value f;
  napi_create_function(env, name, NAPI_AUTO_LENGTH, fn, NULL, &f);
  napi_set_named_property(env, exports, name, f);
}

NAPI_MODULE_INIT() {
  registerFdGather(env, exports);
  registerFileBatch(env, exports);
  registerSyncFs(env, exports);
  registerPathMeta(env, exports);
  registerHashFiles(env, exports);
  registerHashStream(env, exports);
  return exports;
}
