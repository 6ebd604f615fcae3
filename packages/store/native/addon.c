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

NAPI_MODULE_INIT() {
  registerFdGather(env, exports);
  registerFileBatch(env, exports);
  registerSyncFs(env, exports);
  return exports;
}
