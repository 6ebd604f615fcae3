// Flushing a whole file system with syncfs(2) on a libuv thread: one call for a batch of new
// store paths, without spawning `sync -f` (a process per batch, ~20 ms here) and without
// blocking JavaScript while the disk writes back.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "native.h"

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  char *path;
  int err;
  const char *syscall;
} Job;

static void execute(napi_env env, void *data) {
  (void)env;
  Job *j = data;
  int fd = open(j->path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    j->err = errno;
    j->syscall = "open";
    return;
  }
  if (syncfs(fd) < 0) {
    j->err = errno;
    j->syscall = "syncfs";
  }
  close(fd);
}

static void complete(napi_env env, napi_status status, void *data) {
  Job *j = data;
  if (status != napi_ok && !j->err) j->err = ECANCELED;
  settleErrno(env, j->deferred, j->err, j->syscall, 0);
  endJob(env, j->work, NULL, 0);
  free(j->path);
  free(j);
}

// syncFs(path: string): Promise<void>: flushes the file system holding `path`.
static napi_value syncFs(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  size_t len;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 1 || napi_get_value_string_utf8(env, argv[0], NULL, 0, &len) != napi_ok) {
    return throwTypeError(env, "syncFs(path: string)");
  }
  Job *j = calloc(1, sizeof(Job));
  if (!j || !(j->path = malloc(len + 1))) {
    free(j);
    return throwTypeError(env, "out of memory");
  }
  napi_get_value_string_utf8(env, argv[0], j->path, len + 1, &len);
  return startJob(env, "drover:sync-fs", execute, complete, j, &j->work, &j->deferred);
}

void registerSyncFs(napi_env env, napi_value exports) {
  exportFunction(env, exports, "syncFs", syncFs);
}
