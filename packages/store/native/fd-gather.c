// Writing a gather plan to a file descriptor off the JavaScript thread: bytes from memory
// interleaved with whole files, the files copied in the kernel with sendfile(2).
//
// Why native: Node has no sendfile or splice, so every byte of a file had to be copied into
// JavaScript's memory and out again; and a libuv thread lets the caller walk the next part of
// a tree while this part is written (opening the files here too: opened on the walking thread
// they cost it twice as much, measured). The plan is built in TypeScript, which knows the NAR
// format; this file only knows "write these bytes, then exactly this many bytes of that file".
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "native.h"

// A plan item is four doubles: bytes of `tokens` to write first, then the file named by
// `paths[pathAt, pathAt+pathLen)` (none if pathLen is 0) whose first `size` bytes follow.
#define ITEM 4
// Enough for any path lstat accepted (PATH_MAX) and its terminating zero.
#define PATH_BUF 4097
// sendfile(2) moves at most this much per call.
#define SENDFILE_MAX 0x7ffff000
#define COPY_BUF (256 * 1024)

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref keep[3];
  int out;
  const uint8_t *tokens;
  size_t tokenBytes;
  const double *plan;
  size_t items;
  const uint8_t *paths;
  size_t pathBytes;
  // On failure: errno (or -1: the file ended early, -2: a malformed plan, -3: no longer a
  // regular file), the item and
  // the system call.
  int err;
  size_t errItem;
  const char *syscall;
  // Set once sendfile(2) refused this output (O_APPEND, some devices): copy through memory.
  int noSendfile;
} Job;

// Waits until `fd` takes more (an output in non-blocking mode, e.g. a pipe Node set up).
static int waitWritable(int fd) {
  struct pollfd p = {fd, POLLOUT, 0};
  return poll(&p, 1, -1) < 0 && errno != EINTR ? -1 : 0;
}

static int writeAll(Job *j, const uint8_t *b, size_t n) {
  while (n > 0) {
    ssize_t w = write(j->out, b, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN && waitWritable(j->out) == 0) continue;
      j->syscall = "write";
      return -1;
    }
    b += w;
    n -= (size_t)w;
  }
  return 0;
}

// Copies [pos, pos+n) of `in` through memory: the fallback when sendfile(2) refuses.
static int copyThrough(Job *j, int in, off_t pos, size_t n) {
  static __thread uint8_t *buf;
  if (!buf && !(buf = malloc(COPY_BUF))) {
    j->syscall = "malloc";
    errno = ENOMEM;
    return -1;
  }
  while (n > 0) {
    ssize_t r = pread(in, buf, n < COPY_BUF ? n : COPY_BUF, pos);
    if (r < 0) {
      if (errno == EINTR) continue;
      j->syscall = "read";
      return -1;
    }
    if (r == 0) {
      errno = 0;
      return -2;
    }
    if (writeAll(j, buf, (size_t)r) < 0) return -1;
    pos += r;
    n -= (size_t)r;
  }
  return 0;
}

// Sends exactly `n` bytes of `in`; -2 if the file ends before that (it shrank).
static int sendExactly(Job *j, int in, size_t n) {
  off_t pos = 0;
  while (n > 0) {
    if (j->noSendfile) return copyThrough(j, in, pos, n);
    ssize_t s = sendfile(j->out, in, &pos, n < SENDFILE_MAX ? n : SENDFILE_MAX);
    if (s < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN && waitWritable(j->out) == 0) continue;
      if (errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP) {
        j->noSendfile = 1;
        continue;
      }
      // Name the side that failed: the output's errors are a write's, EIO is the file's.
      j->syscall = errno == EPIPE || errno == ENOSPC || errno == EDQUOT || errno == EFBIG || errno == ECONNRESET ? "write" : errno == EIO ? "read" : "sendfile";
      return -1;
    }
    if (s == 0) return -2;
    n -= (size_t)s;
  }
  return 0;
}

static void execute(napi_env env, void *data) {
  (void)env;
  Job *j = data;
  char path[PATH_BUF];
  size_t tokenAt = 0;
  for (size_t i = 0; i < j->items; i++) {
    const double *it = j->plan + i * ITEM;
    size_t toks = (size_t)it[0], pathAt = (size_t)it[1], pathLen = (size_t)it[2], size = (size_t)it[3];
    j->errItem = i;
    if (toks > j->tokenBytes - tokenAt || pathLen >= PATH_BUF || pathAt > j->pathBytes || pathLen > j->pathBytes - pathAt) {
      j->err = -2;
      return;
    }
    if (toks > 0 && writeAll(j, j->tokens + tokenAt, toks) < 0) {
      j->err = errno;
      return;
    }
    tokenAt += toks;
    if (pathLen == 0) continue;
    memcpy(path, j->paths + pathAt, pathLen);
    path[pathLen] = 0;
    // The walk saw a regular file here. Whatever was swapped in since is refused as a changed
    // tree: a symlink (O_NOFOLLOW), and a FIFO or device (O_NONBLOCK: opening a FIFO would
    // wait for a writer forever, and Node's exit waits for this thread) or a directory, which
    // fstat tells. Then blocking again, so reads never see EAGAIN.
    int in = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
    if (in < 0) {
      if (errno == ELOOP) {
        j->err = -3;
        return;
      }
      j->err = errno;
      j->syscall = "open";
      return;
    }
    struct stat st;
    if (fstat(in, &st) != 0) {
      j->err = errno;
      j->syscall = "fstat";
      close(in);
      return;
    }
    if (!S_ISREG(st.st_mode)) {
      j->err = -3;
      close(in);
      return;
    }
    // F_SETFL changes only the status flags, and O_NONBLOCK is the only one set here.
    fcntl(in, F_SETFL, 0);
    int r = sendExactly(j, in, size);
    int saved = errno;
    close(in);
    if (r != 0) {
      j->err = r == -2 ? -1 : saved;
      return;
    }
  }
}

static void complete(napi_env env, napi_status status, void *data) {
  Job *j = data;
  if (status != napi_ok && !j->err) j->err = ECANCELED;
  if (j->err < 0) {
    const char *text = j->err == -1 ? "file ended early" : j->err == -2 ? "malformed gather plan" : "no longer a regular file";
    settleJob(env, j->deferred, 1, text, j->err == -1 ? "ESHRANK" : j->err == -2 ? "EPLAN" : "ECHANGED", j->syscall, j->errItem);
  } else {
    settleErrno(env, j->deferred, j->err, j->syscall, j->errItem);
  }
  endJob(env, j->work, j->keep, 3);
  free(j);
}

// gather(fd, tokens: Buffer, plan: Float64Array, paths: Buffer): Promise<void>. The caller
// must not touch the three buffers until the promise settles, nor start a second gather on
// the same fd before then (libuv may run two at once, and the output would interleave).
static napi_value gather(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 4) return throwTypeError(env, "gather(fd, tokens, plan, paths)");
  Job *j = calloc(1, sizeof(Job));
  if (!j) return throwTypeError(env, "out of memory");
  int32_t out;
  void *p;
  size_t n;
  if (napi_get_value_int32(env, argv[0], &out) != napi_ok || out < 0) goto bad;
  j->out = out;
  if (!argBuffer(env, argv[1], &p, &n)) goto bad;
  j->tokens = p;
  j->tokenBytes = n;
  if (!argTyped(env, argv[2], napi_float64_array, &p, &n) || n % ITEM) goto bad;
  j->plan = p;
  j->items = n / ITEM;
  if (!argBuffer(env, argv[3], &p, &n)) goto bad;
  j->paths = p;
  j->pathBytes = n;
  for (int k = 0; k < 3; k++) napi_create_reference(env, argv[k + 1], 1, &j->keep[k]);
  return startJob(env, "drover:fd-gather", execute, complete, j, &j->work, &j->deferred);
bad:
  free(j);
  return throwTypeError(env, "gather(fd: int, tokens: Buffer, plan: Float64Array of 4 per item, paths: Buffer)");
}

void registerFdGather(napi_env env, napi_value exports) {
  exportFunction(env, exports, "gather", gather);
}
