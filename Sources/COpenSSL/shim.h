#ifndef MLHOOK_COPENSSL_SHIM_H
#define MLHOOK_COPENSSL_SHIM_H

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <openssl/ec.h>
#include <openssl/bio.h>
#include <string.h>
#include <stdlib.h>

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

/* Copies a memory BIO's contents into a fresh NUL-terminated buffer (free with free()). */
static inline char *mlhook_bio_string(BIO *bio) {
    char *data = NULL;
    long len = BIO_get_mem_data(bio, &data);
    if (len <= 0) return NULL;
    char *out = (char *)malloc((size_t)len + 1);
    if (!out) return NULL;
    memcpy(out, data, (size_t)len);
    out[len] = 0;
    return out;
}

/* A self-signed P-256 certificate for `cn`, valid `days` days, with subjectAltName `san` (such as
   "DNS:localhost,IP:127.0.0.1"), usable as its own CA (basicConstraints CA:TRUE) so a client can trust it as
   its CA bundle. Writes PEM strings into *cert_pem and *key_pem (free with free()). Returns 1 on success. */
static inline int mlhook_self_signed(const char *cn, const char *san, int days, char **cert_pem, char **key_pem) {
    int ok = 0;
    EVP_PKEY *pkey = NULL;
    X509 *x = NULL;
    BIO *cb = NULL, *kb = NULL;
    X509_EXTENSION *ext = NULL;
    unsigned char serial[16];
    EVP_PKEY_CTX *kctx = EVP_PKEY_CTX_new_id(EVP_PKEY_EC, NULL);
    *cert_pem = NULL;
    *key_pem = NULL;
    if (!kctx || EVP_PKEY_keygen_init(kctx) != 1 || EVP_PKEY_CTX_set_ec_paramgen_curve_nid(kctx, NID_X9_62_prime256v1) != 1
        || EVP_PKEY_keygen(kctx, &pkey) != 1) goto done;
    if (!(x = X509_new()) || X509_set_version(x, 2) != 1) goto done;
    if (RAND_bytes(serial, sizeof serial) != 1) goto done;
    serial[0] &= 0x7f;
    {
        BIGNUM *bn = BN_bin2bn(serial, sizeof serial, NULL);
        if (!bn) goto done;
        ASN1_INTEGER *ai = BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
        BN_free(bn);
        if (!ai) goto done;
    }
    if (!X509_gmtime_adj(X509_getm_notBefore(x), -3600) || !X509_gmtime_adj(X509_getm_notAfter(x), (long)days * 86400)) goto done;
    if (X509_set_pubkey(x, pkey) != 1) goto done;
    {
        X509_NAME *name = X509_get_subject_name(x);
        if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0) != 1) goto done;
        if (X509_set_issuer_name(x, name) != 1) goto done;
    }
    {
        X509V3_CTX v3;
        X509V3_set_ctx_nodb(&v3);
        X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
        const char *names[3] = { "subjectAltName", "basicConstraints", "keyUsage" };
        const char *values[3] = { san, "critical,CA:TRUE", "critical,digitalSignature,keyCertSign" };
        for (int i = 0; i < 3; i++) {
            ext = X509V3_EXT_nconf(NULL, &v3, names[i], values[i]);
            if (!ext || X509_add_ext(x, ext, -1) != 1) goto done;
            X509_EXTENSION_free(ext);
            ext = NULL;
        }
    }
    if (X509_sign(x, pkey, EVP_sha256()) <= 0) goto done;
    if (!(cb = BIO_new(BIO_s_mem())) || !(kb = BIO_new(BIO_s_mem()))) goto done;
    if (PEM_write_bio_X509(cb, x) != 1 || PEM_write_bio_PrivateKey(kb, pkey, NULL, NULL, 0, NULL, NULL) != 1) goto done;
    *cert_pem = mlhook_bio_string(cb);
    *key_pem = mlhook_bio_string(kb);
    ok = *cert_pem != NULL && *key_pem != NULL;
done:
    if (!ok) { free(*cert_pem); free(*key_pem); *cert_pem = NULL; *key_pem = NULL; }
    if (ext) X509_EXTENSION_free(ext);
    BIO_free(cb);
    BIO_free(kb);
    X509_free(x);
    EVP_PKEY_free(pkey);
    EVP_PKEY_CTX_free(kctx);
    return ok;
}

#endif
