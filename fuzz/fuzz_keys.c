/* fuzz_keys: the key loaders (PEM, DER, JWK, raw; reqsign_key_load_mem) and
 * reqsign_credential_load() with inline JSON. A loaded key is exported
 * (thumbprint, SPKI PEM, JWK) and the exports must load back to the same
 * public key. */
#include "fuzz_common.h"

#include <string.h>

#include <reqsign/credential.h>
#include <reqsign/key.h>

static void check_key(const struct reqsign_key *k)
{
    uint8_t pk[REQSIGN_ED25519_PUBLIC_LEN], pk2[REQSIGN_ED25519_PUBLIC_LEN];
    char tp[REQSIGN_THUMBPRINT_BUF], buf[1024];
    size_t n = 0;
    struct reqsign_key *k2 = NULL;

    reqsign_key_public_raw(k, pk);
    FUZZ_CHECK(reqsign_key_thumbprint(k, tp) == REQSIGN_OK, "thumbprint");
    FUZZ_CHECK(strlen(tp) == REQSIGN_THUMBPRINT_LEN, "thumbprint length");

    FUZZ_CHECK(reqsign_key_public_pem(k, buf, sizeof(buf), &n) == REQSIGN_OK, "public_pem");
    FUZZ_CHECK((k2 = reqsign_key_load_mem(buf, n, 0, NULL)) != NULL, "public PEM reload");
    reqsign_key_public_raw(k2, pk2);
    FUZZ_CHECK(memcmp(pk, pk2, sizeof(pk)) == 0, "public PEM round trip");
    reqsign_key_free(k2);
    k2 = NULL;

    FUZZ_CHECK(reqsign_key_public_jwk(k, buf, sizeof(buf), &n) == REQSIGN_OK, "public_jwk");
    FUZZ_CHECK((k2 = reqsign_key_load_mem(buf, n, 0, NULL)) != NULL, "JWK reload");
    reqsign_key_public_raw(k2, pk2);
    FUZZ_CHECK(memcmp(pk, pk2, sizeof(pk)) == 0, "JWK round trip");
    reqsign_key_free(k2);

    if (reqsign_key_has_private(k)) {
        static const uint8_t msg[] = "reqsign fuzz";
        uint8_t sig[REQSIGN_ED25519_SIG_LEN];
        FUZZ_CHECK(reqsign_key_sign(k, msg, sizeof(msg), sig, NULL) == REQSIGN_OK, "sign");
        FUZZ_CHECK(reqsign_ed25519_verify(sig, msg, sizeof(msg), pk) == REQSIGN_OK,
                   "loaded private key does not match its public half");
    }
}

static void load(const char *in, size_t size, unsigned flags)
{
    struct reqsign_key *k = NULL;
    struct reqsign_error err;
    reqsign_error_clear(&err);
    enum reqsign_status st =
        ((k = reqsign_key_load_mem(in, size, flags, &err)) != NULL ? REQSIGN_OK : err.code);
    FUZZ_CHECK(st == REQSIGN_OK || st == REQSIGN_E_KEY_FORMAT || st == REQSIGN_E_KEY_TYPE ||
                   st == REQSIGN_E_KEY_NOT_PRIVATE || st == REQSIGN_E_LIMIT ||
                   st == REQSIGN_E_BASE64 || st == REQSIGN_E_JSON || st == REQSIGN_E_CRYPTO ||
                   st == REQSIGN_E_NOMEM,
               "load_mem: %s (%s)", reqsign_errname(st), err.message);
    FUZZ_CHECK((st == REQSIGN_OK) == (k != NULL), "out vs status");
    if (k != NULL) {
        FUZZ_CHECK(!(flags & REQSIGN_KEY_REQUIRE_PRIVATE) || reqsign_key_has_private(k),
                   "REQUIRE_PRIVATE returned a public key");
        check_key(k);
        reqsign_key_free(k);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > REQSIGN_KEY_FILE_IN_MAX + 16)
        return 0;
    char *in = malloc(size ? size : 1); /* exact size: ASan sees over-reads */
    FUZZ_CHECK(in != NULL, "malloc");
    if (size)
        memcpy(in, data, size);
    load(in, size, 0);
    load(in, size, REQSIGN_KEY_RAW_PRIVATE | REQSIGN_KEY_REQUIRE_PRIVATE);
    free(in);

    /* inline credential JSON: the spec must start with '{' after blanks, or
     * the loader takes it for a path; add one when the input lacks it */
    char *s = fuzz_strndup(data, size);
    const char *p = s;
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    char *spec = s;
    if (*p != '{') {
        size_t n = strlen(s);
        spec = malloc(n + 2);
        FUZZ_CHECK(spec != NULL, "malloc");
        spec[0] = '{';
        memcpy(spec + 1, s, n + 1);
    }
    struct reqsign_credential *c = NULL;
    struct reqsign_error err;
    reqsign_error_clear(&err);
    enum reqsign_status st =
        ((c = reqsign_credential_load(spec, NULL, REQSIGN_KEY_ALLOW_PERMISSIVE, &err)) != NULL
             ? REQSIGN_OK
             : err.code);
    FUZZ_CHECK(st != REQSIGN_E_IO && st != REQSIGN_E_INVALID_ARG && st != REQSIGN_E_INTERNAL,
               "credential_load: %s (%s)", reqsign_errname(st), err.message);
    if (st == REQSIGN_OK) {
        FUZZ_CHECK(c != NULL, "credential NULL");
        FUZZ_CHECK(reqsign_credential_keyid(c) != NULL && reqsign_credential_keyid(c)[0] != '\0',
                   "empty keyid");
        (void)reqsign_credential_service(c);
        (void)reqsign_credential_label(c);
        for (size_t i = 0; i < reqsign_credential_scope_count(c); i++)
            FUZZ_CHECK(reqsign_credential_scope(c, i) != NULL, "scope %zu", i);
        FUZZ_CHECK(reqsign_credential_scope(c, reqsign_credential_scope_count(c)) == NULL,
                   "scope out of range");
        const struct reqsign_key *k = reqsign_credential_key(c);
        FUZZ_CHECK(k != NULL && reqsign_key_has_private(k), "credential key");
        check_key(k);
        reqsign_credential_free(c);
    }
    if (spec != s)
        free(spec);
    free(s);
    return 0;
}
