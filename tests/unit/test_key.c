/* Suite `key`: Ed25519 key loading (PEM, DER, JWK, raw), permissions, limits,
 * key types, RFC 7638 thumbprints, export round trips, and the RFC 9421
 * B.2.6 signature. Key files: tests/vectors/keys/ (see SOURCE there). */
#include <criterion/criterion.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <reqsign/base64.h>
#include <reqsign/key.h>

#include "testutil.h"

#define KEYS "tests/vectors/keys/"

/* RFC 9421 B.1.4 test-key-ed25519. */
static const char rfc_x_hex[] = "26b40b8f93fff3d897112f7ebc582b232dbd72517d082fe83cfb30ddce43d1bb";
static const char rfc_d_hex[] = "9f8362f87a484a954e6e740c5b4c0e84229139a20aa8ab56ff66586f6a7d29c5";
static const char rfc_x_b64url[] = "JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs";
static const char rfc_d_b64url[] = "n4Ni-HpISpVObnQMW0wOhCKROaIKqKtW_2ZYb2p9KcU";
/* RFC 7638 thumbprint, computed independently with python3 hashlib + base64
 * and with `openssl dgst -sha256 -binary | basenc --base64url` (SOURCE). */
static const char rfc_thumbprint[] = "poqkLGiymh_W0uP6PZFw-dvez3QJT5SolqXBCW38r0U";

static void assert_rfc_public(const struct reqsign_key *k)
{
    size_t n;
    uint8_t *x = tu_unhex(rfc_x_hex, &n);
    uint8_t pk[32];
    char tp[REQSIGN_THUMBPRINT_BUF];

    reqsign_key_public_raw(k, pk);
    cr_assert_arr_eq(pk, x, 32);
    cr_assert_eq(reqsign_key_thumbprint(k, tp), REQSIGN_OK);
    cr_assert_str_eq(tp, rfc_thumbprint);
    free(x);
}

static struct reqsign_key *load_ok(const char *rel, unsigned flags)
{
    char *path = tu_path(rel);
    struct reqsign_key *k = NULL;
    struct reqsign_error err;
    enum reqsign_status st;

    reqsign_error_clear(&err);
    st = ((k = reqsign_key_load_file(path, flags, &err)) != NULL ? REQSIGN_OK : err.code);
    cr_assert_eq(st, REQSIGN_OK, "%s: %s (%s)", rel, reqsign_errname(st), err.message);
    cr_assert_not_null(k);
    free(path);
    return k;
}

static enum reqsign_status load_code(const char *abs_path, unsigned flags,
                                     struct reqsign_error *err)
{
    struct reqsign_key *k = NULL;
    enum reqsign_status st;

    reqsign_error_clear(err);
    st = ((k = reqsign_key_load_file(abs_path, flags, err)) != NULL ? REQSIGN_OK : err->code);
    if (st != REQSIGN_OK) {
        cr_assert_null(k);
        cr_assert_eq(err->code, st);
        cr_assert_str_eq(err->source, "key");
    }
    reqsign_key_free(k);
    return st;
}

static enum reqsign_status mem_code(const void *data, size_t len, unsigned flags,
                                    struct reqsign_error *err)
{
    struct reqsign_key *k = NULL;
    enum reqsign_status st;

    reqsign_error_clear(err);
    st = ((k = reqsign_key_load_mem(data, len, flags, err)) != NULL ? REQSIGN_OK : err->code);
    if (st != REQSIGN_OK) {
        cr_assert_null(k);
        cr_assert_eq(err->code, st, "%s vs %s", reqsign_errname(err->code), reqsign_errname(st));
    }
    reqsign_key_free(k);
    return st;
}

static char *write_tmp(const char *dir, const char *name, const void *data, size_t len, mode_t mode)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    int fd;

    snprintf(p, n, "%s/%s", dir, name);
    fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, data, len), (ssize_t)len);
    close(fd);
    cr_assert_eq(chmod(p, mode), 0);
    return p;
}

/* ---- the RFC key in every format ---- */

Test(key, sizes)
{
    cr_assert_eq(reqsign_ed25519_sig_len(), 64);
    cr_assert_eq(reqsign_ed25519_public_len(), 32);
}

Test(key, rfc_key_every_private_format)
{
    static const struct {
        const char *file;
        unsigned flags;
    } files[] = {
        {KEYS "rfc9421-ed25519.pem", 0},
        {KEYS "rfc9421-ed25519.der", 0},
        {KEYS "rfc9421-ed25519.jwk", 0},
        {KEYS "rfc9421-ed25519.seed", REQSIGN_KEY_RAW_PRIVATE},
    };
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        /* Git does not keep modes: the checkout is 0644 (see SOURCE). */
        struct reqsign_key *k =
            load_ok(files[i].file,
                    files[i].flags | REQSIGN_KEY_ALLOW_PERMISSIVE | REQSIGN_KEY_REQUIRE_PRIVATE);
        cr_assert(reqsign_key_has_private(k), "%s", files[i].file);
        assert_rfc_public(k);
        reqsign_key_free(k);

        /* The same bytes from memory. */
        size_t len;
        char *data = tu_read(files[i].file, &len);
        cr_assert_not_null(k = reqsign_key_load_mem(data, len, files[i].flags, NULL), "%s",
                           files[i].file);
        cr_assert(reqsign_key_has_private(k));
        assert_rfc_public(k);
        reqsign_key_free(k);
        free(data);
    }
}

Test(key, rfc_key_every_public_format)
{
    static const char *const files[] = {
        KEYS "rfc9421-ed25519.pub.pem",
        KEYS "rfc9421-ed25519.pub.der",
        KEYS "rfc9421-ed25519.pub.jwk",
        KEYS "rfc9421-ed25519.pub.raw",
    };
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        struct reqsign_key *k = load_ok(files[i], 0);
        struct reqsign_error err;
        char *path = tu_path(files[i]);

        cr_assert(!reqsign_key_has_private(k), "%s", files[i]);
        assert_rfc_public(k);
        reqsign_key_free(k);
        cr_assert_eq(load_code(path, REQSIGN_KEY_REQUIRE_PRIVATE, &err), REQSIGN_E_KEY_NOT_PRIVATE,
                     "%s", files[i]);
        free(path);
    }
}

Test(key, from_seed_and_public)
{
    size_t n;
    uint8_t *d = tu_unhex(rfc_d_hex, &n);
    uint8_t *x = tu_unhex(rfc_x_hex, &n);
    struct reqsign_key *k = NULL;

    cr_assert_not_null(k = reqsign_key_from_seed(d, NULL));
    cr_assert(reqsign_key_has_private(k));
    assert_rfc_public(k);
    reqsign_key_free(k);
    cr_assert_not_null(k = reqsign_key_from_public(x, NULL));
    cr_assert(!reqsign_key_has_private(k));
    assert_rfc_public(k);
    reqsign_key_free(k);
    free(d);
    free(x);
}

Test(key, thumbprint_rfc_key)
{
    size_t n;
    uint8_t *x = tu_unhex(rfc_x_hex, &n);
    char tp[REQSIGN_THUMBPRINT_BUF];

    cr_assert_eq(reqsign_thumbprint_raw(x, tp), REQSIGN_OK);
    cr_assert_str_eq(tp, rfc_thumbprint);
    cr_assert_eq(strlen(tp), REQSIGN_THUMBPRINT_LEN);
    free(x);
}

/* ---- export ---- */

Test(key, export_matches_rfc_text)
{
    struct reqsign_key *k = load_ok(KEYS "rfc9421-ed25519.pem", REQSIGN_KEY_ALLOW_PERMISSIVE);
    char buf[512];
    size_t n = 0, len;
    char *want;
    char jwk[160];

    cr_assert_eq(reqsign_key_private_pem(k, buf, sizeof(buf), &n), REQSIGN_OK);
    want = tu_read(KEYS "rfc9421-ed25519.pem", &len);
    cr_assert_eq(n, len);
    cr_assert_str_eq(buf, want);
    reqsign_memzero(buf, sizeof(buf));
    free(want);

    cr_assert_eq(reqsign_key_public_pem(k, buf, sizeof(buf), &n), REQSIGN_OK);
    want = tu_read(KEYS "rfc9421-ed25519.pub.pem", &len);
    cr_assert_eq(n, len);
    cr_assert_str_eq(buf, want);
    free(want);

    snprintf(jwk, sizeof(jwk), "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"%s\"}", rfc_x_b64url);
    cr_assert_eq(reqsign_key_public_jwk(k, buf, sizeof(buf), &n), REQSIGN_OK);
    cr_assert_str_eq(buf, jwk);
    cr_assert_eq(n, strlen(jwk));
    reqsign_key_free(k);
}

Test(key, export_buffer_too_small_and_not_private)
{
    struct reqsign_key *k = load_ok(KEYS "rfc9421-ed25519.pub.pem", 0);
    char buf[200];
    size_t n = 0, need;

    cr_assert_eq(reqsign_key_public_pem(k, buf, sizeof(buf), &need), REQSIGN_OK);
    cr_assert_eq(reqsign_key_public_pem(k, buf, need, &n), REQSIGN_E_BUFFER_TOO_SMALL);
    cr_assert_eq(n, need);
    cr_assert_eq(reqsign_key_public_pem(k, buf, need + 1, &n), REQSIGN_OK);
    cr_assert_eq(reqsign_key_public_jwk(k, buf, 10, &n), REQSIGN_E_BUFFER_TOO_SMALL);
    cr_assert_eq(reqsign_key_private_pem(k, buf, sizeof(buf), &n), REQSIGN_E_KEY_NOT_PRIVATE);
    uint8_t sig[64];
    cr_assert_eq(reqsign_key_sign(k, (const uint8_t *)"x", 1, sig, NULL),
                 REQSIGN_E_KEY_NOT_PRIVATE);
    reqsign_key_free(k);
}

Test(key, generate_export_reload_round_trip)
{
    struct reqsign_key *k = NULL, *k2 = NULL, *kp = NULL, *kj = NULL, *kd = NULL;
    char priv[256], pub[256], jwk[256];
    size_t np, nu, nj;
    uint8_t pk1[32], pk2[32], sig[64], sig2[64];
    static const uint8_t msg[] = "round trip";
    char tp1[REQSIGN_THUMBPRINT_BUF], tp2[REQSIGN_THUMBPRINT_BUF];

    cr_assert_not_null(k = reqsign_key_generate(NULL));
    cr_assert(reqsign_key_has_private(k));
    cr_assert_eq(reqsign_key_private_pem(k, priv, sizeof(priv), &np), REQSIGN_OK);
    cr_assert_eq(reqsign_key_public_pem(k, pub, sizeof(pub), &nu), REQSIGN_OK);
    cr_assert_eq(reqsign_key_public_jwk(k, jwk, sizeof(jwk), &nj), REQSIGN_OK);

    cr_assert_not_null(k2 = reqsign_key_load_mem(priv, np, REQSIGN_KEY_REQUIRE_PRIVATE, NULL));
    reqsign_memzero(priv, sizeof(priv));
    cr_assert_not_null(kp = reqsign_key_load_mem(pub, nu, 0, NULL));
    cr_assert_not_null(kj = reqsign_key_load_mem(jwk, nj, 0, NULL));
    cr_assert(!reqsign_key_has_private(kp));
    cr_assert(!reqsign_key_has_private(kj));

    reqsign_key_public_raw(k, pk1);
    reqsign_key_public_raw(k2, pk2);
    cr_assert_arr_eq(pk1, pk2, 32);
    reqsign_key_public_raw(kp, pk2);
    cr_assert_arr_eq(pk1, pk2, 32);
    reqsign_key_public_raw(kj, pk2);
    cr_assert_arr_eq(pk1, pk2, 32);
    cr_assert_eq(reqsign_key_thumbprint(k, tp1), REQSIGN_OK);
    cr_assert_eq(reqsign_key_thumbprint(kj, tp2), REQSIGN_OK);
    cr_assert_str_eq(tp1, tp2);

    /* Deterministic signatures: the reloaded key signs the same bytes. */
    cr_assert_eq(reqsign_key_sign(k, msg, sizeof(msg) - 1, sig, NULL), REQSIGN_OK);
    cr_assert_eq(reqsign_key_sign(k2, msg, sizeof(msg) - 1, sig2, NULL), REQSIGN_OK);
    cr_assert_arr_eq(sig, sig2, 64);
    cr_assert_eq(reqsign_key_verify(kp, sig, msg, sizeof(msg) - 1, NULL), REQSIGN_OK);
    cr_assert_eq(reqsign_key_verify(kj, sig, msg, sizeof(msg) - 1, NULL), REQSIGN_OK);
    cr_assert_eq(reqsign_ed25519_verify(sig, msg, sizeof(msg) - 1, pk1), REQSIGN_OK);
    cr_assert_eq(reqsign_key_verify(kp, sig, msg, sizeof(msg) - 2, NULL), REQSIGN_E_SIG_INVALID);

    /* dup is independent of the original. */
    kd = reqsign_key_dup(k, NULL);
    cr_assert_not_null(kd);
    reqsign_key_free(k);
    cr_assert(reqsign_key_has_private(kd));
    cr_assert_eq(reqsign_key_sign(kd, msg, sizeof(msg) - 1, sig2, NULL), REQSIGN_OK);
    cr_assert_arr_eq(sig, sig2, 64);
    reqsign_key_free(kd);
    kd = reqsign_key_dup(kp, NULL);
    cr_assert_not_null(kd);
    cr_assert(!reqsign_key_has_private(kd));
    reqsign_key_free(kd);

    /* A second generated key differs. */
    cr_assert_not_null(k = reqsign_key_generate(NULL));
    reqsign_key_public_raw(k, pk2);
    cr_assert(reqsign_memcmp_ct(pk1, pk2, 32) != 0);
    reqsign_key_free(k);
    reqsign_key_free(k2);
    reqsign_key_free(kp);
    reqsign_key_free(kj);
    reqsign_key_free(NULL);
}

/* ---- RFC 9421 B.2.6 ---- */

Test(key, sign_rfc9421_b26)
{
    json_t *v = tu_json("spec/vectors/rfc9421-b26.json");
    const char *base = json_string_value(json_object_get(v, "base"));
    const char *sig_field =
        json_string_value(json_object_get(json_object_get(v, "headers"), "Signature"));
    const char *prefix = "sig-b26=:";
    struct reqsign_key *k = load_ok(KEYS "rfc9421-ed25519.pem", REQSIGN_KEY_ALLOW_PERMISSIVE);
    struct reqsign_key *kp = load_ok(KEYS "rfc9421-ed25519.pub.pem", 0);
    uint8_t want[64], sig[64];
    size_t n = 0, b64_len;
    uint8_t pk[32];

    cr_assert_not_null(base);
    cr_assert_eq(strlen(base), 284);
    cr_assert_eq(strncmp(sig_field, prefix, strlen(prefix)), 0);
    b64_len = strlen(sig_field) - strlen(prefix) - 1;
    cr_assert_eq(sig_field[strlen(sig_field) - 1], ':');
    cr_assert_eq(
        reqsign_base64_decode(sig_field + strlen(prefix), b64_len, want, sizeof(want), &n, NULL),
        REQSIGN_OK);
    cr_assert_eq(n, 64);

    cr_assert_eq(reqsign_key_sign(k, (const uint8_t *)base, strlen(base), sig, NULL), REQSIGN_OK);
    cr_assert_arr_eq(sig, want, 64, "signature of the B.2.6 base differs from the RFC's");
    cr_assert_eq(reqsign_key_verify(kp, want, (const uint8_t *)base, strlen(base), NULL),
                 REQSIGN_OK);
    reqsign_key_public_raw(kp, pk);
    cr_assert_eq(reqsign_ed25519_verify(want, (const uint8_t *)base, strlen(base), pk), REQSIGN_OK);
    /* One changed byte of the base fails. */
    char *bad = strdup(base);
    bad[10] ^= 0x20;
    cr_assert_eq(reqsign_key_verify(kp, want, (const uint8_t *)bad, strlen(bad), NULL),
                 REQSIGN_E_SIG_INVALID);
    free(bad);
    reqsign_key_free(k);
    reqsign_key_free(kp);
    json_decref(v);
}

/* ---- file permissions ---- */

Test(key, permissions_private_key_refused_when_group_readable)
{
    char *dir = tu_tmpdir();
    size_t len;
    char *pem = tu_read(KEYS "rfc9421-ed25519.pem", &len);
    char *path = write_tmp(dir, "key.pem", pem, len, 0644);
    struct reqsign_error err;

    cr_assert_eq(load_code(path, 0, &err), REQSIGN_E_KEY_PERMISSIONS);
    cr_assert_not_null(strstr(err.message, path), "message names the path: %s", err.message);
    cr_assert_not_null(strstr(err.message, "0644"), "message names the mode: %s", err.message);
    cr_assert_not_null(strstr(err.message, "chmod 600"), "message gives the fix: %s", err.message);
    cr_assert_eq(load_code(path, REQSIGN_KEY_ALLOW_PERMISSIVE, &err), REQSIGN_OK);

    /* Any group/other bit counts, also without read. */
    cr_assert_eq(chmod(path, 0610), 0);
    cr_assert_eq(load_code(path, 0, &err), REQSIGN_E_KEY_PERMISSIONS);
    cr_assert_eq(chmod(path, 0601), 0);
    cr_assert_eq(load_code(path, 0, &err), REQSIGN_E_KEY_PERMISSIONS);
    cr_assert_eq(chmod(path, 0600), 0);
    cr_assert_eq(load_code(path, 0, &err), REQSIGN_OK);
    cr_assert_eq(chmod(path, 0400), 0);
    cr_assert_eq(load_code(path, 0, &err), REQSIGN_OK);

    /* Through a symlink: the file opened is checked. */
    char link[512];
    snprintf(link, sizeof(link), "%s/link.pem", dir);
    cr_assert_eq(symlink(path, link), 0);
    cr_assert_eq(load_code(link, 0, &err), REQSIGN_OK);
    cr_assert_eq(chmod(path, 0640), 0);
    cr_assert_eq(load_code(link, 0, &err), REQSIGN_E_KEY_PERMISSIONS);
    unlink(link);

    /* A JWK with d and a raw seed are private too. */
    free(pem);
    pem = tu_read(KEYS "rfc9421-ed25519.jwk", &len);
    char *jpath = write_tmp(dir, "key.jwk", pem, len, 0644);
    cr_assert_eq(load_code(jpath, 0, &err), REQSIGN_E_KEY_PERMISSIONS);
    free(pem);
    pem = tu_read(KEYS "rfc9421-ed25519.seed", &len);
    char *spath = write_tmp(dir, "key.seed", pem, len, 0644);
    cr_assert_eq(load_code(spath, REQSIGN_KEY_RAW_PRIVATE, &err), REQSIGN_E_KEY_PERMISSIONS);
    /* ... but the same 32 bytes read as a public key are not. */
    cr_assert_eq(load_code(spath, 0, &err), REQSIGN_OK);

    unlink(path);
    unlink(jpath);
    unlink(spath);
    rmdir(dir);
    free(path);
    free(jpath);
    free(spath);
    free(pem);
    free(dir);
}

Test(key, permissions_public_key_may_be_world_readable)
{
    char *dir = tu_tmpdir();
    size_t len;
    char *pem = tu_read(KEYS "rfc9421-ed25519.pub.pem", &len);
    char *path = write_tmp(dir, "key.pub.pem", pem, len, 0666);
    struct reqsign_error err;

    cr_assert_eq(load_code(path, 0, &err), REQSIGN_OK);
    unlink(path);
    rmdir(dir);
    free(path);
    free(pem);
    free(dir);
}

/* ---- bad files ---- */

Test(key, truncated_garbage_oversized_files)
{
    char *dir = tu_tmpdir();
    size_t len;
    char *pem = tu_read(KEYS "rfc9421-ed25519.pem", &len);
    char *der = tu_read(KEYS "rfc9421-ed25519.der", &len);
    struct reqsign_error err;
    char *p;

    /* Truncated PEM: cut in the base64 line, and without the END line. */
    p = write_tmp(dir, "trunc.pem", pem, 60, 0600);
    cr_assert_eq(load_code(p, 0, &err), REQSIGN_E_KEY_FORMAT, "%s", err.message);
    free(p);
    p = write_tmp(dir, "noend.pem", pem, 28 + 65, 0600);
    cr_assert_eq(load_code(p, 0, &err), REQSIGN_E_KEY_FORMAT, "%s", err.message);
    free(p);
    /* Truncated DER (47 of 48 bytes) and DER with a trailing byte. */
    p = write_tmp(dir, "trunc.der", der, 47, 0600);
    cr_assert_eq(load_code(p, 0, &err), REQSIGN_E_KEY_FORMAT, "%s", err.message);
    free(p);
    {
        char longer[49];
        memcpy(longer, der, 48);
        longer[48] = 0;
        p = write_tmp(dir, "long.der", longer, 49, 0600);
        cr_assert_eq(load_code(p, 0, &err), REQSIGN_E_KEY_FORMAT, "%s", err.message);
        free(p);
    }
    /* Garbage. */
    static const char garbage[] = "this is not a key at all, just some text\n";
    p = write_tmp(dir, "garbage", garbage, sizeof(garbage) - 1, 0600);
    cr_assert_eq(load_code(p, 0, &err), REQSIGN_E_KEY_FORMAT, "%s", err.message);
    free(p);
    /* 33 bytes: not raw. */
    p = write_tmp(dir, "raw33", der, 33, 0600);
    cr_assert_eq(load_code(p, 0, &err), REQSIGN_E_KEY_FORMAT);
    free(p);
    /* Empty. */
    p = write_tmp(dir, "empty", "", 0, 0600);
    cr_assert_eq(load_code(p, 0, &err), REQSIGN_E_KEY_FORMAT);
    free(p);
    /* Oversized: a valid PEM padded with comment text beyond the limit. */
    {
        size_t big_len = REQSIGN_KEY_FILE_IN_MAX + 1;
        char *big = malloc(big_len);
        memset(big, '#', big_len);
        big[big_len - 1] = '\n';
        memcpy(big, pem, strlen(pem));
        p = write_tmp(dir, "big.pem", big, big_len, 0600);
        cr_assert_eq(load_code(p, 0, &err), REQSIGN_E_LIMIT);
        cr_assert_eq(mem_code(big, big_len, 0, &err), REQSIGN_E_LIMIT);
        unlink(p);
        free(p);
        /* Exactly at the limit is read (and is a valid PEM with trailing text). */
        p = write_tmp(dir, "max.pem", big, big_len - 1, 0600);
        cr_assert_eq(load_code(p, 0, &err), REQSIGN_OK, "%s", err.message);
        unlink(p);
        free(p);
        free(big);
    }
    /* Not there; a directory. */
    char *missing = tu_path(KEYS "does-not-exist.pem");
    cr_assert_eq(load_code(missing, 0, &err), REQSIGN_E_IO);
    cr_assert_not_null(strstr(err.message, "does-not-exist.pem"));
    free(missing);
    cr_assert_eq(load_code(dir, 0, &err), REQSIGN_E_IO);

    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
    free(pem);
    free(der);
    free(dir);
}

Test(key, other_key_types_refused)
{
    static const char *const files[] = {
        KEYS "rsa-2048.pem",   KEYS "rsa-2048.trad.pem", KEYS "x25519.pem",
        KEYS "x25519.pub.pem", KEYS "ec-p256.pem",       KEYS "ec-p256.pub.der",
    };
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char *path = tu_path(files[i]);
        struct reqsign_error err;
        cr_assert_eq(load_code(path, REQSIGN_KEY_ALLOW_PERMISSIVE, &err), REQSIGN_E_KEY_TYPE,
                     "%s: %s", files[i], err.message);
        free(path);
    }
}

/* ---- JWK ---- */

static enum reqsign_status jwk_code(const char *json, struct reqsign_error *err)
{
    return mem_code(json, strlen(json), 0, err);
}

Test(key, jwk_strictness)
{
    struct reqsign_error err;
    char buf[512];
    const char *x = rfc_x_b64url, *d = rfc_d_b64url;

#define JWK(...) (snprintf(buf, sizeof(buf), __VA_ARGS__), buf)
    /* The minimal public and private forms. */
    cr_assert_eq(jwk_code(JWK("{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"%s\"}", x), &err),
                 REQSIGN_OK);
    cr_assert_eq(jwk_code(JWK("{\"crv\":\"Ed25519\",\"d\":\"%s\",\"x\":\"%s\",\"kty\":\"OKP\","
                              "\"use\":\"sig\",\"alg\":\"EdDSA\"}",
                              d, x),
                          &err),
                 REQSIGN_OK);
    /* Other key types. */
    cr_assert_eq(jwk_code("{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\"}", &err),
                 REQSIGN_E_KEY_TYPE);
    cr_assert_eq(jwk_code("{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AA\",\"y\":\"AA\"}", &err),
                 REQSIGN_E_KEY_TYPE);
    cr_assert_eq(jwk_code(JWK("{\"kty\":\"OKP\",\"crv\":\"X25519\",\"x\":\"%s\"}", x), &err),
                 REQSIGN_E_KEY_TYPE);
    cr_assert_eq(jwk_code(JWK("{\"kty\":\"OKP\",\"crv\":\"Ed448\",\"x\":\"%s\"}", x), &err),
                 REQSIGN_E_KEY_TYPE);
    /* Missing / mistyped members. */
    cr_assert_eq(jwk_code(JWK("{\"crv\":\"Ed25519\",\"x\":\"%s\"}", x), &err),
                 REQSIGN_E_KEY_FORMAT);
    cr_assert_eq(jwk_code(JWK("{\"kty\":\"OKP\",\"x\":\"%s\"}", x), &err), REQSIGN_E_KEY_FORMAT);
    cr_assert_eq(jwk_code("{\"kty\":\"OKP\",\"crv\":\"Ed25519\"}", &err), REQSIGN_E_KEY_FORMAT);
    cr_assert_eq(jwk_code(JWK("{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"d\":\"%s\"}", d), &err),
                 REQSIGN_E_KEY_FORMAT);
    cr_assert_eq(jwk_code("{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":32}", &err),
                 REQSIGN_E_KEY_FORMAT);
    cr_assert_eq(jwk_code(JWK("{\"kty\":1,\"crv\":\"Ed25519\",\"x\":\"%s\"}", x), &err),
                 REQSIGN_E_KEY_FORMAT);
    cr_assert_eq(
        jwk_code(JWK("{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"%s\"}]}", x), &err),
        REQSIGN_E_KEY_FORMAT);
    /* Not strict base64url of exactly 32 bytes. */
    cr_assert_eq(jwk_code(JWK("{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"%s=\"}", x), &err),
                 REQSIGN_E_KEY_FORMAT); /* padding */
    cr_assert_eq(jwk_code(JWK("{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"%.42s\"}", x), &err),
                 REQSIGN_E_KEY_FORMAT); /* 31 bytes and change */
    cr_assert_eq(jwk_code(JWK("{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"%sAA\"}", x), &err),
                 REQSIGN_E_KEY_FORMAT); /* 33 bytes */
    cr_assert_eq(jwk_code("{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":"
                          "\"JrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs\"}",
                          &err),
                 REQSIGN_E_KEY_FORMAT); /* standard alphabet */
    cr_assert_eq(jwk_code("{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":"
                          "\"JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bt\"}",
                          &err),
                 REQSIGN_E_KEY_FORMAT); /* non-zero pad bits */
    /* x is not the public key of d. */
    cr_assert_eq(jwk_code(JWK("{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"d\":\"%s\",\"x\":"
                              "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}",
                              d),
                          &err),
                 REQSIGN_E_KEY_FORMAT);
    cr_assert_null(strstr(err.message, d), "the message must not quote d");
    /* Bad JSON, duplicates, not an object. */
    cr_assert_eq(jwk_code(JWK("{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"d\":\"%s\",", d), &err),
                 REQSIGN_E_KEY_FORMAT);
    cr_assert_null(strstr(err.message, "n4Ni"), "the message must not quote d");
    cr_assert_eq(
        jwk_code(JWK("{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"%s\",\"x\":\"%s\"}", x, x),
                 &err),
        REQSIGN_E_KEY_FORMAT);
    cr_assert_eq(jwk_code(JWK("{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"%s\"} x", x), &err),
                 REQSIGN_E_KEY_FORMAT);
    cr_assert_eq(jwk_code("  {", &err), REQSIGN_E_KEY_FORMAT);
#undef JWK
}

Test(key, pem_other_blocks)
{
    struct reqsign_error err;
    static const char cert[] = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    static const char enc[] =
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n";
    static const char badb64[] =
        "-----BEGIN PRIVATE "
        "KEY-----\nMC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9q!SnF\n"
        "-----END PRIVATE KEY-----\n";
    /* A PUBLIC KEY label around PKCS#8 bytes. */
    static const char mislabeled[] =
        "-----BEGIN PUBLIC "
        "KEY-----\nMC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF\n"
        "-----END PUBLIC KEY-----\n";

    cr_assert_eq(mem_code(cert, sizeof(cert) - 1, 0, &err), REQSIGN_E_KEY_FORMAT);
    cr_assert_eq(mem_code(enc, sizeof(enc) - 1, 0, &err), REQSIGN_E_KEY_FORMAT);
    cr_assert_not_null(strstr(err.message, "encrypted"));
    cr_assert_eq(mem_code(badb64, sizeof(badb64) - 1, 0, &err), REQSIGN_E_KEY_FORMAT);
    cr_assert_eq(mem_code(mislabeled, sizeof(mislabeled) - 1, 0, &err), REQSIGN_E_KEY_FORMAT);
    cr_assert_eq(mem_code(NULL, 0, 0, &err), REQSIGN_E_KEY_FORMAT);

    /* Explanatory text before the block (as `openssl pkcs12 -nodes` writes) is skipped. */
    static const char bag[] =
        "Bag Attributes\n    friendlyName: test\nKey Attributes: <No Attributes>\n"
        "-----BEGIN PRIVATE "
        "KEY-----\nMC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF\n"
        "-----END PRIVATE KEY-----\n";
    struct reqsign_key *k = NULL;
    cr_assert_not_null(k = reqsign_key_load_mem(bag, sizeof(bag) - 1, 0, NULL));
    assert_rfc_public(k);
    reqsign_key_free(k);
}

/* ---- utilities ---- */

Test(key, random_memeq_memzero)
{
    uint8_t a[64], b[64];

    cr_assert_eq(reqsign_random_bytes(a, sizeof(a), NULL), REQSIGN_OK);
    cr_assert_eq(reqsign_random_bytes(b, sizeof(b), NULL), REQSIGN_OK);
    cr_assert(reqsign_memcmp_ct(a, b, sizeof(a)) != 0);
    memcpy(b, a, sizeof(a));
    cr_assert(reqsign_memcmp_ct(a, b, sizeof(a)) == 0);
    b[63] ^= 0x80;
    cr_assert(reqsign_memcmp_ct(a, b, sizeof(a)) != 0);
    cr_assert(reqsign_memcmp_ct(a, b, 0) == 0);
    reqsign_memzero(a, sizeof(a));
    for (size_t i = 0; i < sizeof(a); i++)
        cr_assert_eq(a[i], 0);
    cr_assert_eq(reqsign_random_bytes(a, 0, NULL), REQSIGN_OK);
}
