// SHA-256 of a byte stream fed from JavaScript and hashed on libuv's pool, in order: import
// hashes each NAR while the main thread parses and restores it, instead of after it.
//
// Why: hashing 200 MB of an import on the main thread took ~125 ms of its ~700, and the main
// thread is import's critical path. Each update keeps a reference to its Buffer until the
// pool has hashed it; callers must not change a Buffer after handing it over (the chunks of
// fd-chunks.ts and of Node's streams are never reused).
#include <node_api.h>
#include <stdlib.h>
#include <string.h>

#include "native.h"
#include "sha256.h"

typedef struct {
  const uint8_t *data;
  size_t length;
  napi_ref keep;
} Piece;

typedef struct {
  Piece *items;
  size_t count, cap;
} Pieces;

typedef struct {
  napi_deferred deferred;
  double limit;
} Waiter;

// Per JavaScript environment (the main thread, each worker thread): this addon's instance data.
typedef struct {
  // Bytes handed over and not hashed yet, over every stream: what a reader bounds memory by.
  double pending;
  // drain() calls waiting for `pending` to fall to their limit.
  Waiter *waiters;
  size_t waiting, cap;
  // Streams not yet freed, and whether the environment let go of this (whoever is last frees).
  size_t streams;
  int released;
} Shared;

typedef struct {
  Shared *shared;
  Sha256 sha;
  // Queued by updates, and handed to the job in flight (never both touched by the pool).
  Pieces queued, hashing;
  napi_async_work work;
  int busy;
  // Set by digest() while a job runs; resolved with the digest once everything is hashed.
  napi_deferred digest;
  int finished;
  // A job was cancelled or could not be queued: bytes went unhashed, the digest is refused.
  int failed;
  // The handle was collected while a job ran: the last job's end frees the stream.
  int orphaned;
} Stream;

static void releasePieces(napi_env env, Stream *s, Pieces *p) {
  for (size_t i = 0; i < p->count; i++) {
    napi_delete_reference(env, p->items[i].keep);
    s->shared->pending -= (double)p->items[i].length;
  }
  p->count = 0;
}

static void freeShared(Shared *sh) {
  free(sh->waiters);
  free(sh);
}

static void freeStream(napi_env env, Stream *s) {
  releasePieces(env, s, &s->queued);
  releasePieces(env, s, &s->hashing);
  free(s->queued.items);
  free(s->hashing.items);
  Shared *sh = s->shared;
  free(s);
  if (--sh->streams == 0 && sh->released) freeShared(sh);
}

// Resolves the drain() calls whose limit the backlog is now within.
static void wakeWaiters(napi_env env, Shared *sh) {
  size_t kept = 0;
  for (size_t i = 0; i < sh->waiting; i++) {
    if (sh->pending <= sh->waiters[i].limit) {
      napi_value undef;
      napi_get_undefined(env, &undef);
      napi_resolve_deferred(env, sh->waiters[i].deferred, undef);
    } else {
      sh->waiters[kept++] = sh->waiters[i];
    }
  }
  sh->waiting = kept;
}

static void execute(napi_env env, void *data) {
  Stream *s = data;
  for (size_t i = 0; i < s->hashing.count; i++) sha256Update(&s->sha, s->hashing.items[i].data, s->hashing.items[i].length);
}

static void settleDigest(napi_env env, Stream *s, napi_deferred deferred) {
  s->finished = 1;
  if (s->failed) {
    napi_reject_deferred(env, deferred, nativeError(env, "the stream's hashing was cancelled", "ECANCELED", "", 0));
    return;
  }
  void *out;
  napi_value buf;
  // No buffer when JavaScript can no longer run (a worker thread torn down): nobody to tell.
  if (napi_create_buffer(env, 32, &out, &buf) != napi_ok) return;
  sha256Final(&s->sha, out);
  napi_resolve_deferred(env, deferred, buf);
}

static void complete(napi_env env, napi_status status, void *data);

// Hands the queued pieces to a job on the pool: 0, or -1 when none could be queued.
static int startWork(napi_env env, Stream *s) {
  Pieces t = s->hashing;
  s->hashing = s->queued;
  s->queued = t;
  napi_value name;
  napi_create_string_utf8(env, "drover:hashStream", NAPI_AUTO_LENGTH, &name);
  if (napi_create_async_work(env, NULL, name, execute, complete, s, &s->work) != napi_ok) return -1;
  if (napi_queue_async_work(env, s->work) != napi_ok) {
    napi_delete_async_work(env, s->work);
    return -1;
  }
  s->busy = 1;
  return 0;
}

static void complete(napi_env env, napi_status status, void *data) {
  Stream *s = data;
  napi_delete_async_work(env, s->work);
  s->busy = 0;
  if (status != napi_ok) s->failed = 1;
  releasePieces(env, s, &s->hashing);
  // A stream whose digest was asked for is finished even when its handle is gone meanwhile.
  if (s->queued.count > 0 && !s->failed && (s->digest || !s->orphaned)) {
    if (startWork(env, s) == 0) {
      wakeWaiters(env, s->shared);
      return;
    }
    s->failed = 1;
  }
  releasePieces(env, s, &s->queued);
  wakeWaiters(env, s->shared);
  if (s->digest) {
    napi_deferred d = s->digest;
    s->digest = NULL;
    settleDigest(env, s, d);
  }
  if (s->orphaned) freeStream(env, s);
}

static void finalize(napi_env env, void *data, void *hint) {
  Stream *s = data;
  if (s->busy)
    s->orphaned = 1;
  else
    freeStream(env, s);
}

static Stream *argStream(napi_env env, napi_value v) {
  void *s = NULL;
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external || napi_get_value_external(env, v, &s) != napi_ok) return NULL;
  return s;
}

static Shared *shared(napi_env env) {
  void *sh = NULL;
  napi_get_instance_data(env, &sh);
  return sh;
}

// hashStreamNew(): a stream, as an opaque handle.
static napi_value streamNew(napi_env env, napi_callback_info info) {
  Shared *sh = shared(env);
  Stream *s = sh ? calloc(1, sizeof *s) : NULL;
  if (!s) return throwTypeError(env, "hashStreamNew: out of memory");
  s->shared = sh;
  sha256Init(&s->sha);
  napi_value v;
  if (napi_create_external(env, s, finalize, NULL, &v) != napi_ok) {
    free(s);
    return throwTypeError(env, "hashStreamNew: cannot make the handle");
  }
  sh->streams++;
  return v;
}

// hashStreamBacklog(): the bytes handed over and not hashed yet, over all streams.
static napi_value streamBacklog(napi_env env, napi_callback_info info) {
  Shared *sh = shared(env);
  napi_value v;
  napi_create_double(env, sh ? sh->pending : 0, &v);
  return v;
}

// hashStreamUpdate(stream, buffer): queues the buffer.
static napi_value streamUpdate(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  Stream *s = argc == 2 ? argStream(env, argv[0]) : NULL;
  void *data;
  size_t length;
  if (!s || !argBuffer(env, argv[1], &data, &length)) return throwTypeError(env, "hashStreamUpdate(stream, buffer)");
  if (s->finished || s->digest) return throwTypeError(env, "hashStreamUpdate: the stream's digest was asked for already");
  if (s->failed) return throwTypeError(env, "hashStreamUpdate: the stream's hashing failed");
  if (length == 0) return NULL;
  Pieces *q = &s->queued;
  if (q->count == q->cap) {
    size_t cap = q->cap ? 2 * q->cap : 16;
    Piece *items = realloc(q->items, cap * sizeof *items);
    if (!items) return throwTypeError(env, "hashStreamUpdate: out of memory");
    q->items = items;
    q->cap = cap;
  }
  Piece *p = &q->items[q->count];
  if (napi_create_reference(env, argv[1], 1, &p->keep) != napi_ok) return throwTypeError(env, "hashStreamUpdate: cannot keep the buffer");
  p->data = data;
  p->length = length;
  q->count++;
  s->shared->pending += (double)length;
  if (!s->busy && startWork(env, s) != 0) {
    s->failed = 1;
    // startWork swapped the pieces over: the job that never started lets go of them.
    releasePieces(env, s, &s->hashing);
    return throwTypeError(env, "hashStreamUpdate: cannot queue the hashing");
  }
  return NULL;
}

// hashStreamDigest(stream): a promise of the 32-byte digest of everything handed over.
static napi_value streamDigest(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], promise;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  Stream *s = argc == 1 ? argStream(env, argv[0]) : NULL;
  if (!s) return throwTypeError(env, "hashStreamDigest(stream)");
  if (s->finished || s->digest) return throwTypeError(env, "hashStreamDigest: asked for twice");
  napi_deferred d;
  napi_create_promise(env, &d, &promise);
  if (s->busy)
    s->digest = d;
  else
    settleDigest(env, s, d);
  return promise;
}

// hashStreamDrain(limit): a promise resolved once at most `limit` bytes, over all streams,
// are waiting to be hashed.
static napi_value streamDrain(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], promise;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  Shared *sh = shared(env);
  double limit;
  if (!sh || argc != 1 || napi_get_value_double(env, argv[0], &limit) != napi_ok) return throwTypeError(env, "hashStreamDrain(limit)");
  if (sh->waiting == sh->cap) {
    size_t cap = sh->cap ? 2 * sh->cap : 4;
    Waiter *w = realloc(sh->waiters, cap * sizeof *w);
    if (!w) return throwTypeError(env, "hashStreamDrain: out of memory");
    sh->waiters = w;
    sh->cap = cap;
  }
  napi_deferred d;
  napi_create_promise(env, &d, &promise);
  sh->waiters[sh->waiting++] = (Waiter){d, limit};
  wakeWaiters(env, sh);
  return promise;
}

static void releaseShared(napi_env env, void *data, void *hint) {
  Shared *sh = data;
  sh->released = 1;
  if (sh->streams == 0) freeShared(sh);
}

// The instance data is this file's alone: another native file needing some must share it.
void registerHashStream(napi_env env, napi_value exports) {
  Shared *sh = calloc(1, sizeof *sh);
  if (sh && napi_set_instance_data(env, sh, releaseShared, NULL) != napi_ok) {
    free(sh);
    sh = NULL;
  }
  exportFunction(env, exports, "hashStreamNew", streamNew);
  exportFunction(env, exports, "hashStreamBacklog", streamBacklog);
  exportFunction(env, exports, "hashStreamUpdate", streamUpdate);
  exportFunction(env, exports, "hashStreamDigest", streamDigest);
  exportFunction(env, exports, "hashStreamDrain", streamDrain);
}
