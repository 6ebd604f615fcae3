// Checking that store paths exist, or making single-file paths canonical, for a batch of
// paths in one libuv job: register-validity does one or the other to 100k paths.
//
// Why native: through Node's fs, canonicalising one file (open, fstat, fchmod, futimes,
// close) cost ~18 us of CPU in a worker thread, most of it around the system calls (a Stats
// object of Dates per fstat); here it is the system calls. A path that is not one regular
// file (a directory, a symlink) is left to the caller's walk (result 1).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "native.h"

#define PATH_BUF 4097

enum { OP_EXISTS = 0, OP_CANONICALISE = 1 };

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref keep[2];
  // The paths, each ended by a zero byte.
  const char *paths;
  size_t pathBytes;
  int32_t *results;
  size_t count;
  int op;
  int err;
} Job;

// 0: exists (a dangling symlink too, as lstat sees it); else -errno.
static int exists(const char *p) {
  if (access(p, F_OK) == 0) return 0;
  struct stat st;
  return lstat(p, &st) == 0 ? 0 : -errno;
}

int canonicaliseOpenFile(int fd, const struct stat *st) {
  mode_t want = st->st_mode & S_IXUSR ? 0555 : 0444;
  if ((st->st_mode & 07777) != want && fchmod(fd, want) != 0) return -errno;
  if (st->st_mtim.tv_sec != 1 || st->st_mtim.tv_nsec != 0) {
    struct timespec t[2] = {{1, 0}, {1, 0}};
    if (futimens(fd, t) != 0) return -errno;
  }
  return 0;
}

int openSingleFile(const char *p, struct stat *st) {
  // Not through a symlink, and without waiting on a FIFO.
  int fd = open(p, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) return errno == ELOOP ? -ELOOP : -errno;
  if (fstat(fd, st) != 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  return fd;
}

// 0: a regular file, now canonical; 1: not a regular file (untouched); else -errno.
static int canonicaliseFile(const char *p) {
  struct stat st;
  int fd = openSingleFile(p, &st);
  if (fd < 0) return fd == -ELOOP ? 1 : fd;
  int r = S_ISREG(st.st_mode) ? canonicaliseOpenFile(fd, &st) : 1;
  close(fd);
  return r;
}

static void execute(napi_env env, void *data) {
  (void)env;
  Job *j = data;
  const char *p = j->paths, *end = j->paths + j->pathBytes;
  for (size_t i = 0; i < j->count; i++) {
    const char *z = memchr(p, 0, (size_t)(end - p));
    if (!z) {
      j->err = 1;
      return;
    }
    j->results[i] = (size_t)(z - p) >= PATH_BUF ? -ENAMETOOLONG : j->op == OP_EXISTS ? exists(p) : canonicaliseFile(p);
    p = z + 1;
  }
}

static void complete(napi_env env, napi_status status, void *data) {
  Job *j = data;
  int failed = status != napi_ok || j->err;
  settleJob(env, j->deferred, failed, j->err ? "malformed path batch" : "cancelled", j->err ? "EPLAN" : "ECANCELED", "", 0);
  endJob(env, j->work, j->keep, 2);
  free(j);
}

// pathMeta(op: 0 exists | 1 canonicalise, paths: Buffer (each ended by a zero byte),
// results: Int32Array, one per path): Promise<void>, the results filled in.
static napi_value pathMeta(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 3) return throwTypeError(env, "pathMeta(op, paths, results)");
  Job *j = calloc(1, sizeof(Job));
  if (!j) return throwTypeError(env, "out of memory");
  int32_t op;
  void *p;
  size_t n;
  if (napi_get_value_int32(env, argv[0], &op) != napi_ok || (op != OP_EXISTS && op != OP_CANONICALISE)) goto bad;
  j->op = op;
  if (!argBuffer(env, argv[1], &p, &n)) goto bad;
  j->paths = p;
  j->pathBytes = n;
  if (!argTyped(env, argv[2], napi_int32_array, &p, &n)) goto bad;
  j->results = p;
  j->count = n;
  for (int k = 0; k < 2; k++) napi_create_reference(env, argv[k + 1], 1, &j->keep[k]);
  return startJob(env, "drover:path-meta", execute, complete, j, &j->work, &j->deferred);
bad:
  free(j);
  return throwTypeError(env, "pathMeta(op: 0 | 1, paths: Buffer of zero-ended paths, results: Int32Array)");
}

void registerPathMeta(napi_env env, napi_value exports) {
  exportFunction(env, exports, "pathMeta", pathMeta);
}
