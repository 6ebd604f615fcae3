// NAR hashes (sha256) of single-file store paths, a batch in one libuv job, each file made
// canonical in the same pass once the caller's gate is open.
//
// Why native: register-validity hashes 100k small paths, and through Node's fs each cost
// ~28 us of CPU in a worker thread (open, fstat, read, fchmod, futimes, close, each with
// Node's wrapping); here it is the system calls and the SHA-256. Paths that are not one
// regular file of at most NATIVE_MAX bytes are left to the caller (result 1).
#define _GNU_SOURCE
#include <errno.h>
#include <node_api.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "native.h"
#include "sha256.h"

#define PATH_BUF 4097
// Bigger files are left to the caller's worker threads (one thread hashes one file either way;
// the limit was only raised as far as it was measured).
#define NATIVE_MAX (1 << 20)
#define READ_BUF (128 << 10)
// A file that ended before its size: it changed while being hashed.
#define SHRANK (-100000)

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref keep[7];
  const char *paths;
  size_t pathBytes;
  // Where each path starts in `paths`; jobs over one batch claim paths through `next`.
  const uint32_t *starts;
  int32_t *next;
  size_t count;
  // Per path: status (0 hashed, 1 left to the caller, else -errno or SHRANK), canonicalised.
  int32_t *status;
  double *sizes;
  uint8_t *hashes;
  // Canonicalise every file, or only once gate[0] is 1 (the caller opens it when allowed).
  int canonicalise;
  int32_t *gate;
  int err;
} Job;

// The NAR of one regular file up to its contents' length, without and with 'executable'.
static uint8_t head[2][160];
static size_t headLen[2];
static uint8_t closeTok[16];
static size_t closeLen;

static size_t token(uint8_t *out, const char *s) {
  size_t n = strlen(s), padded = (n + 7) & ~(size_t)7;
  memset(out, 0, 8 + padded);
  for (int i = 0; i < 8; i++) out[i] = (uint8_t)((uint64_t)n >> (8 * i));
  memcpy(out + 8, s, n);
  return 8 + padded;
}

static void initTokens(void) {
  static const char *words[2][8] = {{"nix-archive-1", "(", "type", "regular", "contents", NULL}, {"nix-archive-1", "(", "type", "regular", "executable", "", "contents", NULL}};
  for (int x = 0; x < 2; x++) {
    headLen[x] = 0;
    for (int i = 0; words[x][i]; i++) headLen[x] += token(head[x] + headLen[x], words[x][i]);
  }
  closeLen = token(closeTok, ")");
}

static int hashOne(Job *j, const char *p, size_t i, uint8_t *buf) {
  struct stat st;
  int fd = openSingleFile(p, &st);
  if (fd < 0) return fd == -ELOOP ? 1 : fd;
  if (!S_ISREG(st.st_mode) || st.st_size > NATIVE_MAX) {
    close(fd);
    return 1;
  }
  int r = 0, x = st.st_mode & S_IXUSR ? 1 : 0;
  size_t size = (size_t)st.st_size, got = 0;
  uint8_t len[8], zeros[8] = {0};
  for (int k = 0; k < 8; k++) len[k] = (uint8_t)((uint64_t)size >> (8 * k));
  Sha256 s;
  sha256Init(&s);
  sha256Update(&s, head[x], headLen[x]);
  sha256Update(&s, len, 8);
  while (got < size) {
    size_t want = size - got < READ_BUF ? size - got : READ_BUF;
    ssize_t n = read(fd, buf, want);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      r = n < 0 ? -errno : SHRANK;
      break;
    }
    sha256Update(&s, buf, (size_t)n);
    got += (size_t)n;
  }
  if (r == 0) {
    size_t pad = (8 - size % 8) % 8;
    sha256Update(&s, zeros, pad);
    sha256Update(&s, closeTok, closeLen);
    sha256Final(&s, j->hashes + 32 * i);
    j->sizes[i] = (double)(headLen[x] + 8 + size + pad + closeLen);
    if (j->canonicalise || (j->gate && __atomic_load_n(j->gate, __ATOMIC_SEQ_CST) == 1)) {
      r = canonicaliseOpenFile(fd, &st);
      if (r == 0) j->status[2 * i + 1] = 1;
    }
  }
  close(fd);
  return r;
}

// Paths claimed at a time: jobs over one batch share it out as they go, so a job with the
// big files does not keep the others waiting, at one atomic add per few small files.
#define GRAIN 8

static void execute(napi_env env, void *data) {
  (void)env;
  Job *j = data;
  uint8_t *buf = malloc(READ_BUF);
  if (!buf) {
    j->err = ENOMEM;
    return;
  }
  for (;;) {
    size_t from = (size_t)__atomic_fetch_add(j->next, GRAIN, __ATOMIC_RELAXED);
    if (from >= j->count) break;
    size_t to = from + GRAIN < j->count ? from + GRAIN : j->count;
    for (size_t i = from; i < to; i++) {
      const char *p = j->paths + j->starts[i];
      const char *z = j->starts[i] < j->pathBytes ? memchr(p, 0, j->pathBytes - j->starts[i]) : NULL;
      if (!z) {
        j->err = -1;
        break;
      }
      j->status[2 * i] = (size_t)(z - p) >= PATH_BUF ? -ENAMETOOLONG : hashOne(j, p, i, buf);
    }
    if (j->err) break;
  }
  free(buf);
}

static void complete(napi_env env, napi_status status, void *data) {
  Job *j = data;
  int failed = status != napi_ok || j->err;
  settleJob(env, j->deferred, failed, j->err == -1 ? "malformed path batch" : j->err ? "out of memory" : "cancelled", j->err == -1 ? "EPLAN" : j->err ? "ENOMEM" : "ECANCELED", "", 0);
  endJob(env, j->work, j->keep, 7);
  free(j);
}

// hashFiles(paths: Buffer of zero-ended paths, starts: Uint32Array (where each begins), next:
// Int32Array (claim counter, from 0, shared by every job over this batch), status:
// Int32Array (2 per path), sizes: Float64Array, hashes: Buffer (32 bytes per path),
// canonicalise: boolean, gate: Int32Array | null): Promise<void>, the arrays filled in. The
// caller must leave them alone until every job over the batch has settled.
static napi_value hashFiles(napi_env env, napi_callback_info info) {
  size_t argc = 8;
  napi_value argv[8];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 8) return throwTypeError(env, "hashFiles(paths, starts, next, status, sizes, hashes, canonicalise, gate)");
  Job *j = calloc(1, sizeof(Job));
  if (!j) return throwTypeError(env, "out of memory");
  void *p;
  size_t n, count;
  bool flag;
  napi_valuetype vt;
  if (!argBuffer(env, argv[0], &p, &n)) goto bad;
  j->paths = p;
  j->pathBytes = n;
  if (!argTyped(env, argv[1], napi_uint32_array, &p, &count)) goto bad;
  j->starts = p;
  if (!argTyped(env, argv[2], napi_int32_array, &p, &n) || n < 1) goto bad;
  j->next = p;
  if (!argTyped(env, argv[3], napi_int32_array, &p, &n) || n != 2 * count) goto bad;
  j->status = p;
  if (!argTyped(env, argv[4], napi_float64_array, &p, &n) || n != count) goto bad;
  j->sizes = p;
  if (!argBuffer(env, argv[5], &p, &n) || n != 32 * count) goto bad;
  j->hashes = p;
  j->count = count;
  if (napi_get_value_bool(env, argv[6], &flag) != napi_ok) goto bad;
  j->canonicalise = flag;
  if (napi_typeof(env, argv[7], &vt) != napi_ok) goto bad;
  if (vt != napi_null) {
    if (!argTyped(env, argv[7], napi_int32_array, &p, &n) || n < 1) goto bad;
    j->gate = p;
  }
  for (int k = 0; k < 6; k++) napi_create_reference(env, argv[k], 1, &j->keep[k]);
  if (j->gate) napi_create_reference(env, argv[7], 1, &j->keep[6]);
  return startJob(env, "drover:hash-files", execute, complete, j, &j->work, &j->deferred);
bad:
  free(j);
  return throwTypeError(env, "hashFiles(paths: Buffer, starts: Uint32Array, next: Int32Array, status: Int32Array, sizes: Float64Array, hashes: Buffer, canonicalise: boolean, gate: Int32Array | null)");
}

void registerHashFiles(napi_env env, napi_value exports) {
  initTokens();
  exportFunction(env, exports, "hashFiles", hashFiles);
}
