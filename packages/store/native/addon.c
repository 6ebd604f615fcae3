// The module @drover/store loads (build/Release/drover_native.node): registers each native
// file's functions, and holds what they share.
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

NAPI_MODULE_INIT() {
  registerFdGather(env, exports);
  registerFileBatch(env, exports);
  registerSyncFs(env, exports);
  registerPathMeta(env, exports);
  registerHashFiles(env, exports);
  return exports;
}
