// SHA-256 for the native passes: Node's own OpenSSL, which Node re-exports for addons (its
// headers ship in include/node/openssl), so the native passes hash as fast as node:crypto
// (SHA-NI where the CPU has it: ~1.7 GB/s here, where a portable C loop did ~270 MB/s).
#ifndef DROVER_SHA256_H
#define DROVER_SHA256_H
// The SHA256_* calls are deprecated in OpenSSL 3 in favour of EVP, whose per-digest fetch
// would cost more than hashing the few hundred bytes of a typical small store path.
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>
#include <stddef.h>
#include <stdint.h>

typedef SHA256_CTX Sha256;

static inline void sha256Init(Sha256 *s) { SHA256_Init(s); }
static inline void sha256Update(Sha256 *s, const void *data, size_t n) { SHA256_Update(s, data, n); }
static inline void sha256Final(Sha256 *s, uint8_t out[32]) { SHA256_Final(out, s); }
#endif
