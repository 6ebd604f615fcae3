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
  Sha256 sha;
  // Queued by updates, and handed to the job in flight (never both touched by the pool).
  Pieces queued, hashing;
  napi_async_work work;
  int busy;
  // Set by digest() while a job runs; resolved with the digest once everything is hashed.
  napi_deferred digest;
  // Set by settle() while a job runs; resolved once everything handed over is hashed.
  napi_deferred settle;
  int finished;
  // The handle was collected while a job ran: the last job's end frees the stream.
  int orphaned;
} Stream;

// Bytes handed over and not hashed yet, over every stream: what a caller bounds memory by.
static double pendingBytes;

static void releasePieces(napi_env env, Pieces *p) {
  for (size_t i = 0; i < p->count; i++) {
    napi_delete_reference(env, p->items[i].keep);
    pendingBytes -= (double)p->items[i].length;
  }
  p->count = 0;
}

static void freeStream(napi_env env, Stream *s) {
  releasePieces(env, &s->queued);
  releasePieces(env, &s->hashing);
  free(s->queued.items);
  free(s->hashing.items);
  free(s);
}

static void execute(napi_env env, void *data) {
  Stream *s = data;
  for (size_t i = 0; i < s->hashing.count; i++) sha256Update(&s->sha, s->hashing.items[i].data, s->hashing.items[i].length);
}

static void resolveDigest(napi_env env, Stream *s, napi_deferred deferred) {
  void *out;
  napi_value buf;
  sha256Final(&s->sha, (uint8_t *)(napi_create_buffer(env, 32, &out, &buf) == napi_ok ? out : NULL));
  s->finished = 1;
  napi_resolve_deferred(env, deferred, buf);
}

static void complete(napi_env env, napi_status status, void *data);

static void startWork(napi_env env, Stream *s) {
  Pieces t = s->hashing;
  s->hashing = s->queued;
  s->queued = t;
  s->busy = 1;
  napi_value name;
  napi_create_string_utf8(env, "drover:hashStream", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, NULL, name, execute, complete, s, &s->work);
  napi_queue_async_work(env, s->work);
}

static void complete(napi_env env, napi_status status, void *data) {
  Stream *s = data;
  napi_delete_async_work(env, s->work);
  s->busy = 0;
  releasePieces(env, &s->hashing);
  // A stream whose digest was asked for is finished even when its handle is gone meanwhile.
  if (s->queued.count > 0 && (s->digest || !s->orphaned)) {
    startWork(env, s);
    return;
  }
  if (s->settle) {
    napi_value undef;
    napi_get_undefined(env, &undef);
    napi_resolve_deferred(env, s->settle, undef);
    s->settle = NULL;
  }
  if (s->digest) {
    napi_deferred d = s->digest;
    s->digest = NULL;
    resolveDigest(env, s, d);
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

// hashStreamNew(): a stream, as an opaque handle.
static napi_value streamNew(napi_env env, napi_callback_info info) {
  Stream *s = calloc(1, sizeof *s);
  if (!s) return throwTypeError(env, "hashStreamNew: out of memory");
  sha256Init(&s->sha);
  napi_value v;
  napi_create_external(env, s, finalize, NULL, &v);
  return v;
}

// hashStreamBacklog(): the bytes handed over and not hashed yet, over all streams.
static napi_value streamBacklog(napi_env env, napi_callback_info info) {
  napi_value v;
  napi_create_double(env, pendingBytes, &v);
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
  if (length > 0) {
    Pieces *q = &s->queued;
    if (q->count == q->cap) {
      size_t cap = q->cap ? 2 * q->cap : 16;
      Piece *items = realloc(q->items, cap * sizeof *items);
      if (!items) return throwTypeError(env, "hashStreamUpdate: out of memory");
      q->items = items;
      q->cap = cap;
    }
    Piece *p = &q->items[q->count++];
    p->data = data;
    p->length = length;
    napi_create_reference(env, argv[1], 1, &p->keep);
    pendingBytes += (double)length;
    if (!s->busy) startWork(env, s);
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
    resolveDigest(env, s, d);
  return promise;
}

// hashStreamSettle(stream): a promise resolved once everything handed over so far is hashed.
static napi_value streamSettle(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], promise, undef;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  Stream *s = argc == 1 ? argStream(env, argv[0]) : NULL;
  if (!s) return throwTypeError(env, "hashStreamSettle(stream)");
  if (s->settle) return throwTypeError(env, "hashStreamSettle: already waiting");
  napi_deferred d;
  napi_create_promise(env, &d, &promise);
  if (s->busy) {
    s->settle = d;
  } else {
    napi_get_undefined(env, &undef);
    napi_resolve_deferred(env, d, undef);
  }
  return promise;
}

void registerHashStream(napi_env env, napi_value exports) {
  exportFunction(env, exports, "hashStreamNew", streamNew);
  exportFunction(env, exports, "hashStreamBacklog", streamBacklog);
  exportFunction(env, exports, "hashStreamUpdate", streamUpdate);
  exportFunction(env, exports, "hashStreamDigest", streamDigest);
  exportFunction(env, exports, "hashStreamSettle", streamSettle);
}
