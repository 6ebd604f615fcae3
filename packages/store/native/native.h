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
// settleJob for an errno (0: resolved), in libuv's words (ENOENT, "no such file or directory").
void settleErrno(napi_env env, napi_deferred deferred, int err, const char *syscall, size_t item);
// Lets go of a finished job: the references that kept its arguments alive (null ones
// skipped) and the work itself.
void endJob(napi_env env, napi_async_work work, napi_ref *keep, int count);

// Argument checks: 1 when `v` is a Buffer (its bytes), or a typed array of `type` (its elements).
int argBuffer(napi_env env, napi_value v, void **data, size_t *length);
int argTyped(napi_env env, napi_value v, napi_typedarray_type type, void **data, size_t *length);
// Adds `fn` to the module's exports as `name`.
void exportFunction(napi_env env, napi_value exports, const char *name, napi_callback fn);

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
void registerHashStream(napi_env env, napi_value exports);
#endif
