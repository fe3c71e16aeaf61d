#ifndef MLHOOK_COPENSSL_SHIM_H
#define MLHOOK_COPENSSL_SHIM_H

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/core_names.h>
#include <openssl/params.h>

/* A keyed HMAC template. It is never updated after init; every MAC duplicates it, so one template
   can be shared by any number of threads. digest is an OpenSSL digest name ("SHA1", "SHA256", "SHA512"). */
static inline EVP_MAC_CTX *mlhook_hmac_new(const char *digest, const unsigned char *key, size_t keylen) {
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (!mac) return NULL;
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(mac);
    EVP_MAC_free(mac);
    if (!ctx) return NULL;
    OSSL_PARAM params[2] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)digest, 0),
        OSSL_PARAM_construct_end()
    };
    /* OpenSSL refuses a zero-length key with a NULL pointer; an empty secret is refused earlier anyway. */
    static const unsigned char empty = 0;
    if (EVP_MAC_init(ctx, keylen ? key : &empty, keylen, params) != 1) { EVP_MAC_CTX_free(ctx); return NULL; }
    return ctx;
}

/* Duplicates the template for one message. Returns NULL on allocation failure. */
static inline EVP_MAC_CTX *mlhook_hmac_begin(const EVP_MAC_CTX *tmpl) {
    return EVP_MAC_CTX_dup(tmpl);
}

static inline int mlhook_hmac_update(EVP_MAC_CTX *ctx, const void *data, size_t len) {
    if (len == 0) return 1;
    return EVP_MAC_update(ctx, (const unsigned char *)data, len) == 1;
}

/* Writes the MAC into out (capacity outcap), frees ctx, and returns the MAC length or 0 on failure. */
static inline size_t mlhook_hmac_finish(EVP_MAC_CTX *ctx, unsigned char *out, size_t outcap) {
    size_t outlen = 0;
    int ok = EVP_MAC_final(ctx, out, &outlen, outcap) == 1;
    EVP_MAC_CTX_free(ctx);
    return ok ? outlen : 0;
}

static inline void mlhook_hmac_free(EVP_MAC_CTX *ctx) { EVP_MAC_CTX_free(ctx); }

/* SHA-256 of the concatenation a || b into out[32]; returns 1 on success. */
static inline int mlhook_sha256_2(const void *a, size_t alen, const void *b, size_t blen, unsigned char *out) {
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    if (!c) return 0;
    int ok = EVP_DigestInit_ex(c, EVP_sha256(), NULL) == 1
          && (alen == 0 || EVP_DigestUpdate(c, a, alen) == 1)
          && (blen == 0 || EVP_DigestUpdate(c, b, blen) == 1)
          && EVP_DigestFinal_ex(c, out, NULL) == 1;
    EVP_MD_CTX_free(c);
    return ok;
}

#endif
