// Creating a batch of small files off the JavaScript thread, each in one go: create, write,
// chmod, date and close, for the whole batch in one libuv job.
//
// Why native: through Node's fs each of those calls is its own trip through the thread pool
// (a pool thread woken, then the main thread), and for an import of a thousand small paths
// the trips cost the main thread more than the writing itself (measured: 150 of 625 ms). The
// caller (file-writer.ts) knows the NAR format and the modes; this file only knows "create
// this path, write these chunks, then give it this mode".
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <node_api.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <uv.h>

#include "native.h"

// A plan item is six doubles: the path at `paths[pathAt, pathAt+pathLen)`, the mode to create
// it with, the mode to give it once written (negative: leave it), and its contents, chunks
// [first, first+count) of the chunk list.
#define ITEM 6
#define PATH_BUF 4097

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref keep[3];
  const uint8_t *paths;
  size_t pathBytes;
  const double *plan;
  size_t items;
  struct iovec *chunks;
  size_t nChunks;
  // Also date each file 1 (mtime and atime), as a canonical store path is.
  int canonical;
  // On failure: errno (or -2: a malformed plan), the item and the system call.
  int err;
  size_t errItem;
  const char *syscall;
} Batch;

// Writes chunks [0, n) of `iov` whole; the entries are consumed (their bases advance).
static int writeChunks(int fd, struct iovec *iov, size_t n) {
  while (n > 0 && iov->iov_len == 0) iov++, n--;
  while (n > 0) {
    ssize_t w = writev(fd, iov, n < IOV_MAX ? (int)n : IOV_MAX);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (w == 0) {
      errno = EIO;
      return -1;
    }
    size_t left = (size_t)w;
    while (n > 0 && left >= iov->iov_len) left -= iov->iov_len, iov++, n--;
    if (n > 0) {
      iov->iov_base = (uint8_t *)iov->iov_base + left;
      iov->iov_len -= left;
    }
    while (n > 0 && iov->iov_len == 0) iov++, n--;
  }
  return 0;
}

static void execute(napi_env env, void *data) {
  (void)env;
  Batch *b = data;
  char path[PATH_BUF];
  for (size_t i = 0; i < b->items; i++) {
    const double *it = b->plan + i * ITEM;
    size_t pathAt = (size_t)it[0], pathLen = (size_t)it[1], first = (size_t)it[4], count = (size_t)it[5];
    int mode = (int)it[2], finalMode = (int)it[3];
    b->errItem = i;
    if (pathLen == 0 || pathAt > b->pathBytes || pathLen > b->pathBytes - pathAt || first > b->nChunks || count > b->nChunks - first) {
      b->err = -2;
      return;
    }
    // What open(2) itself would say of a path longer than PATH_MAX.
    if (pathLen >= PATH_BUF) {
      b->err = ENAMETOOLONG;
      b->syscall = "open";
      return;
    }
    memcpy(path, b->paths + pathAt, pathLen);
    path[pathLen] = 0;
    // As Node's writer: a new file only (O_EXCL), never through a symlink (O_NOFOLLOW).
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode & 07777);
    if (fd < 0) {
      b->err = errno;
      b->syscall = "open";
      return;
    }
    const char *failed = NULL;
    if (writeChunks(fd, b->chunks + first, count) < 0) failed = "write";
    else if (finalMode >= 0 && fchmod(fd, finalMode & 07777) < 0) failed = "fchmod";
    else if (b->canonical) {
      struct timespec t[2] = {{1, 0}, {1, 0}};
      if (futimens(fd, t) < 0) failed = "futime";
    }
    int saved = errno;
    if (close(fd) < 0 && !failed) failed = "close", saved = errno;
    if (failed) {
      b->err = saved;
      b->syscall = failed;
      return;
    }
  }
}

static void complete(napi_env env, napi_status status, void *data) {
  Batch *b = data;
  if (status != napi_ok && !b->err) b->err = ECANCELED;
  if (b->err == -2) settleJob(env, b->deferred, 1, "malformed file batch", "EPLAN", b->syscall, b->errItem);
  else settleErrno(env, b->deferred, b->err, b->syscall, b->errItem);
  endJob(env, b->work, b->keep, 3);
  free(b->chunks);
  free(b);
}

// writeFiles(paths: Buffer, plan: Float64Array, chunks: Buffer[], canonical: boolean):
// Promise<void>. The caller must not touch the buffers or the list until it settles.
static napi_value writeFiles(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 4) return throwTypeError(env, "writeFiles(paths, plan, chunks, canonical)");
  Batch *b = calloc(1, sizeof(Batch));
  if (!b) return throwTypeError(env, "out of memory");
  void *p;
  size_t n;
  bool flag;
  uint32_t len;
  if (!argBuffer(env, argv[0], &p, &n)) goto bad;
  b->paths = p;
  b->pathBytes = n;
  if (!argTyped(env, argv[1], napi_float64_array, &p, &n) || n % ITEM) goto bad;
  b->plan = p;
  b->items = n / ITEM;
  if (napi_is_array(env, argv[2], &flag) != napi_ok || !flag || napi_get_array_length(env, argv[2], &len) != napi_ok) goto bad;
  b->nChunks = len;
  b->chunks = calloc(len ? len : 1, sizeof(struct iovec));
  if (!b->chunks) goto bad;
  for (uint32_t k = 0; k < len; k++) {
    napi_value c;
    if (napi_get_element(env, argv[2], k, &c) != napi_ok || !argBuffer(env, c, &p, &n)) goto bad;
    b->chunks[k].iov_base = p;
    b->chunks[k].iov_len = n;
  }
  if (napi_get_value_bool(env, argv[3], &flag) != napi_ok) goto bad;
  b->canonical = flag;
  for (int k = 0; k < 3; k++) napi_create_reference(env, argv[k], 1, &b->keep[k]);
  return startJob(env, "drover:file-batch", execute, complete, b, &b->work, &b->deferred);
bad:
  free(b->chunks);
  free(b);
  return throwTypeError(env, "writeFiles(paths: Buffer, plan: Float64Array of 6 per item, chunks: Buffer[], canonical: boolean)");
}

void registerFileBatch(napi_env env, napi_value exports) {
  exportFunction(env, exports, "writeFiles", writeFiles);
}
