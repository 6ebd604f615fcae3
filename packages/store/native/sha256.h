// SHA-256 (FIPS 180-4) for the native hashing of small store paths: a few hundred bytes per
// file, where calling into OpenSSL would not pay (and Node's OpenSSL is not an addon's to link).
#ifndef DROVER_SHA256_H
#define DROVER_SHA256_H
#include <stddef.h>
#include <stdint.h>

typedef struct {
  uint32_t h[8];
  uint64_t bytes;
  uint8_t buf[64];
  size_t fill;
} Sha256;

void sha256Init(Sha256 *s);
void sha256Update(Sha256 *s, const void *data, size_t n);
void sha256Final(Sha256 *s, uint8_t out[32]);
#endif
