/* reqsign: small helpers shared by the OpenSSL sources (crypto_openssl.c and
 * crypto_ed25519_openssl.c); static inline, internal. */
#ifndef REQSIGN_CRYPTO_OPENSSL_UTIL_H
#define REQSIGN_CRYPTO_OPENSSL_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "crypto.h"

/* The 32-byte public key of an Ed25519 EVP_PKEY; 0 or -1. */
static inline int pkey_public(EVP_PKEY *pk, uint8_t out[REQSIGN__ED25519_PK_LEN])
{
    size_t n = REQSIGN__ED25519_PK_LEN;
    if (EVP_PKEY_get_raw_public_key(pk, out, &n) != 1 || n != REQSIGN__ED25519_PK_LEN)
        return -1;
    return 0;
}

/* The 32-byte seed of an Ed25519 EVP_PKEY (secret: the caller wipes it); 0 or
 * -1 with @out wiped. */
static inline int pkey_seed(EVP_PKEY *pk, uint8_t out[REQSIGN__ED25519_SEED_LEN])
{
    size_t n = REQSIGN__ED25519_SEED_LEN;
    if (EVP_PKEY_get_raw_private_key(pk, out, &n) != 1 || n != REQSIGN__ED25519_SEED_LEN) {
        OPENSSL_cleanse(out, REQSIGN__ED25519_SEED_LEN);
        return -1;
    }
    return 0;
}

#endif
