/* SHA-256 (FIPS 180-4) for checking a bundle's artifacts against the manifest's digests, with no
 * dependency: header-only, `static inline` functions, valid C99 and C++ (the C and C++ readers both include it).
 * Written for edgekit from the standard; public domain (CC0). Not hardened against timing attacks (it
 * only ever hashes files the caller reads anyway). */
#ifndef EDGEKIT_SHA256_H
#define EDGEKIT_SHA256_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    uint32_t state[8];
    uint64_t bytes; /* message length so far */
    unsigned char block[64];
    size_t fill; /* bytes waiting in block */
} ek_sha256;

static const uint32_t ek_sha256_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

#define EK_SHA256_ROTR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static inline void ek_sha256_init(ek_sha256* h) {
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(h->state, iv, sizeof iv);
    h->bytes = 0;
    h->fill = 0;
}

static inline void ek_sha256_compress(ek_sha256* h, const unsigned char* p) {
    uint32_t w[64], s[8];
    for (int i = 0; i < 16; ++i)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; ++i) {
        const uint32_t s0 = EK_SHA256_ROTR(w[i - 15], 7) ^ EK_SHA256_ROTR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        const uint32_t s1 = EK_SHA256_ROTR(w[i - 2], 17) ^ EK_SHA256_ROTR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    memcpy(s, h->state, sizeof s);
    for (int i = 0; i < 64; ++i) {
        const uint32_t e1 = EK_SHA256_ROTR(s[4], 6) ^ EK_SHA256_ROTR(s[4], 11) ^ EK_SHA256_ROTR(s[4], 25);
        const uint32_t t1 = s[7] + e1 + ((s[4] & s[5]) ^ (~s[4] & s[6])) + ek_sha256_k[i] + w[i];
        const uint32_t a0 = EK_SHA256_ROTR(s[0], 2) ^ EK_SHA256_ROTR(s[0], 13) ^ EK_SHA256_ROTR(s[0], 22);
        const uint32_t t2 = a0 + ((s[0] & s[1]) ^ (s[0] & s[2]) ^ (s[1] & s[2]));
        memmove(s + 1, s, 7 * sizeof s[0]);
        s[4] += t1;
        s[0] = t1 + t2;
    }
    for (int i = 0; i < 8; ++i) h->state[i] += s[i];
}

static inline void ek_sha256_update(ek_sha256* h, const void* data, size_t n) {
    const unsigned char* p = (const unsigned char*)data;
    h->bytes += n;
    while (n > 0) {
        size_t take = 64 - h->fill < n ? 64 - h->fill : n;
        memcpy(h->block + h->fill, p, take);
        h->fill += take, p += take, n -= take;
        if (h->fill == 64) ek_sha256_compress(h, h->block), h->fill = 0;
    }
}

/* The digest as 64 lowercase hex digits plus a NUL. */
static inline void ek_sha256_hex(ek_sha256* h, char hex[65]) {
    const uint64_t bits = h->bytes * 8;
    unsigned char pad[72] = {0x80};
    const size_t pad_len = (h->fill < 56 ? 56 : 120) - h->fill; /* to 56 mod 64, then the 8-byte length */
    for (int i = 0; i < 8; ++i) pad[pad_len + i] = (unsigned char)(bits >> (56 - 8 * i));
    ek_sha256_update(h, pad, pad_len + 8);
    for (int i = 0; i < 32; ++i) {
        const unsigned byte = (unsigned)(h->state[i / 4] >> (24 - 8 * (i % 4))) & 0xff;
        hex[2 * i] = "0123456789abcdef"[byte >> 4];
        hex[2 * i + 1] = "0123456789abcdef"[byte & 15];
    }
    hex[64] = '\0';
}

/* Hash a whole file: 0 and hex/size filled, or -1 when it cannot be read. */
static inline int ek_sha256_file(const char* path, char hex[65], uint64_t* size) {
    FILE* f = fopen(path, "rb");
    if (!f) return -1;
    ek_sha256 h;
    unsigned char buf[1 << 15];
    size_t n;
    ek_sha256_init(&h);
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) ek_sha256_update(&h, buf, n);
    const int failed = ferror(f);
    fclose(f);
    if (failed) return -1;
    *size = h.bytes;
    ek_sha256_hex(&h, hex);
    return 0;
}

#undef EK_SHA256_ROTR
#endif /* EDGEKIT_SHA256_H */
