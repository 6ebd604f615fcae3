// What the native files of @drover/store share: one error shape, and each file's registration.
#ifndef DROVER_NATIVE_H
#define DROVER_NATIVE_H
#include <node_api.h>
#include <stddef.h>

// An Error with `code` (ENOENT…), `syscall` and `item` (the plan item that failed).
napi_value nativeError(napi_env env, const char *message, const char *code, const char *syscall, size_t item);
napi_value throwTypeError(napi_env env, const char *message);

void registerFdGather(napi_env env, napi_value exports);
void registerFileBatch(napi_env env, napi_value exports);
void registerSyncFs(napi_env env, napi_value exports);
#endif
