// What the native files of @drover/store share: one error shape, and each file's registration.
#ifndef DROVER_NATIVE_H
#define DROVER_NATIVE_H
#include <node_api.h>
#include <stddef.h>

// An Error with `code` (ENOENT…), `syscall` and `item` (the plan item that failed).
napi_value nativeError(napi_env env, const char *message, const char *code, const char *syscall, size_t item);
napi_value throwTypeError(napi_env env, const char *message);

// Queues `execute` then `complete` for `data` on libuv's pool; returns the promise that
// `complete` settles through `*deferred` (with settleJob).
napi_value startJob(napi_env env, const char *name, napi_async_execute_callback execute, napi_async_complete_callback complete, void *data, napi_async_work *work, napi_deferred *deferred);
// Resolves the promise, or rejects it with nativeError when `failed`.
void settleJob(napi_env env, napi_deferred deferred, int failed, const char *message, const char *code, const char *syscall, size_t item);

struct stat;
// Opens `p` to read, not through a symlink (-ELOOP) and without waiting on a FIFO, and
// fstats it: the descriptor, or -errno.
int openSingleFile(const char *p, struct stat *st);
// Makes an open regular file canonical: mode 0444 or 0555 (the owner's executable bit
// decides), mtime 1. 0 or -errno.
int canonicaliseOpenFile(int fd, const struct stat *st);

void registerFdGather(napi_env env, napi_value exports);
void registerFileBatch(napi_env env, napi_value exports);
void registerSyncFs(napi_env env, napi_value exports);
void registerPathMeta(napi_env env, napi_value exports);
void registerHashFiles(napi_env env, napi_value exports);
#endif
