/* Suite credential: loading credentials (reqsign/credential.h). */
#include <criterion/criterion.h>

#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <reqsign/base64.h>
#include <reqsign/credential.h>
#include <reqsign/key.h>
#include <reqsign/signer.h>

#include "testutil.h"

#define KEY_PEM "tests/vectors/keys/rfc9421-ed25519.pem"
#define PUB_PEM "tests/vectors/keys/rfc9421-ed25519.pub.pem"
#define KEY_JWK "tests/vectors/keys/rfc9421-ed25519.jwk"
#define KEY_SEED "tests/vectors/keys/rfc9421-ed25519.seed"
#define EC_PEM "tests/vectors/keys/ec-p256.pem"
/* thumbprint-shaped, but not the test key's (poqk...r0U) */
#define OTHER_TP "AAAkLGiymh_W0uP6PZFw-dvez3QJT5SolqXBCW38r0U"

static char tp[REQSIGN_THUMBPRINT_BUF];

static void thumbprint_of_vector(void)
{
    struct reqsign_key *k = NULL;
    char *path = tu_path(KEY_PEM);
    cr_assert_not_null(k = reqsign_key_load_file(path, REQSIGN_KEY_ALLOW_PERMISSIVE, NULL));
    cr_assert_eq(reqsign_key_thumbprint(k, tp), REQSIGN_OK);
    reqsign_key_free(k);
    free(path);
}

/* The credential object for the test key; members added or removed by the caller. */
static json_t *cred_json(void)
{
    char *pem = tu_read(KEY_PEM, NULL), *pub = tu_read(PUB_PEM, NULL);
    json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:[s,s],s:s,s:s,s:n,s:s}", "keyid", tp, "alg",
                          "ed25519", "private_key", pem, "public_key", pub, "scopes",
                          "payments:write", "keys:admin", "label", "billing server", "created_at",
                          "2026-11-24T13:00:00Z", "expires_at", "service", "http://127.0.0.1:8080");
    cr_assert_not_null(j);
    free(pem);
    free(pub);
    return j;
}

static char *write_file(const char *dir, const char *name, const char *text, size_t len,
                        mode_t mode)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(text, 1, len, f), len);
    fclose(f);
    cr_assert_eq(chmod(p, mode), 0);
    return p;
}

static char *write_json(const char *dir, const char *name, json_t *j, mode_t mode)
{
    char *txt = json_dumps(j, JSON_INDENT(2));
    char *p = write_file(dir, name, txt, strlen(txt), mode);
    free(txt);
    return p;
}

/* Load @spec expecting failure with @code; returns the error. */
static struct reqsign_error load_fail(const char *spec, const char *keyid, unsigned flags,
                                      enum reqsign_status code)
{
    struct reqsign_credential *c = (struct reqsign_credential *)1;
    struct reqsign_error err;
    reqsign_error_clear(&err);
    enum reqsign_status st =
        ((c = reqsign_credential_load(spec, keyid, flags, &err)) != NULL ? REQSIGN_OK : err.code);
    cr_assert_eq(st, code, "expected %s, got %s (%s)", reqsign_errname(code), reqsign_errname(st),
                 err.message);
    cr_assert_eq(err.code, code);
    cr_assert_null(c, "*out must be NULL on failure");
    return err;
}

static struct reqsign_credential *load_ok(const char *spec, const char *keyid, unsigned flags)
{
    struct reqsign_credential *c = NULL;
    struct reqsign_error err;
    reqsign_error_clear(&err);
    enum reqsign_status st =
        ((c = reqsign_credential_load(spec, keyid, flags, &err)) != NULL ? REQSIGN_OK : err.code);
    cr_assert_eq(st, REQSIGN_OK, "%s: %s", reqsign_errname(st), err.message);
    cr_assert_not_null(c);
    return c;
}

/* The signer made from @c signs with its key and keyid: check it verifies. */
static void check_signer(const struct reqsign_credential *c, const char *keyid)
{
    struct reqsign_error err;
    struct reqsign_signed out;
    struct reqsign_sign_input in;
    char base[2048];
    reqsign_error_clear(&err);
    struct reqsign_signer *s = reqsign_credential_signer(c, NULL, &err);
    cr_assert_not_null(s, "%s", err.message);
    cr_assert_str_eq(reqsign_signer_keyid(s), keyid);
    memset(&in, 0, sizeof(in));
    memset(&out, 0, sizeof(out));
    in.method = "GET";
    in.url = "http://example.com/x";
    out.base_buf = base;
    out.base_cap = sizeof(base);
    cr_assert_eq(reqsign_signer_sign(s, &in, &out, &err), REQSIGN_OK, "%s", err.message);
    cr_assert_not_null(strstr(out.signature_input, keyid));
    /* the signature verifies with the vector's public key */
    struct reqsign_key *pub = NULL;
    char *pp = tu_path(PUB_PEM);
    cr_assert_not_null(pub = reqsign_key_load_file(pp, 0, NULL));
    free(pp);
    const char *b64 = strchr(out.signature, ':') + 1;
    uint8_t sig[64];
    size_t sl = 0;
    cr_assert_eq(reqsign_base64_decode(b64, strlen(b64) - 1, sig, sizeof(sig), &sl, NULL),
                 REQSIGN_OK);
    cr_assert_eq(sl, 64);
    cr_assert_eq(reqsign_key_verify(pub, sig, (const uint8_t *)base, out.base_len, NULL),
                 REQSIGN_OK);
    reqsign_key_free(pub);
    reqsign_signer_free(s);
}

TestSuite(credential, .init = thumbprint_of_vector);

Test(credential, json_file)
{
    char *dir = tu_tmpdir();
    json_t *j = cred_json();
    char *path = write_json(dir, "cred.json", j, 0600);
    struct reqsign_credential *c = load_ok(path, NULL, 0);
    cr_assert_str_eq(reqsign_credential_keyid(c), tp);
    cr_assert_str_eq(reqsign_credential_service(c), "http://127.0.0.1:8080");
    cr_assert_str_eq(reqsign_credential_label(c), "billing server");
    cr_assert_eq(reqsign_credential_scope_count(c), 2);
    cr_assert_str_eq(reqsign_credential_scope(c, 0), "payments:write");
    cr_assert_str_eq(reqsign_credential_scope(c, 1), "keys:admin");
    cr_assert_null(reqsign_credential_scope(c, 2));
    cr_assert(reqsign_key_has_private(reqsign_credential_key(c)));
    check_signer(c, tp);
    reqsign_credential_free(c);
    reqsign_credential_free(NULL);
    json_decref(j);
    free(path);
    free(dir);
}

Test(credential, json_optional_members_absent)
{
    char *dir = tu_tmpdir();
    json_t *j = cred_json();
    json_object_del(j, "scopes");
    json_object_del(j, "label");
    json_object_del(j, "service");
    json_object_del(j, "public_key");
    json_object_del(j, "alg");
    char *path = write_json(dir, "cred.json", j, 0600);
    struct reqsign_credential *c = load_ok(path, NULL, 0);
    cr_assert_str_eq(reqsign_credential_service(c), "");
    cr_assert_str_eq(reqsign_credential_label(c), "");
    cr_assert_eq(reqsign_credential_scope_count(c), 0);
    reqsign_credential_free(c);
    json_decref(j);
    free(path);
    free(dir);
}

Test(credential, keyid_override_and_custom_keyid)
{
    char *dir = tu_tmpdir();
    json_t *j = cred_json();
    /* a keyid that is not thumbprint-shaped is the service's business */
    json_object_set_new(j, "keyid", json_string("billing-1"));
    char *path = write_json(dir, "cred.json", j, 0600);
    struct reqsign_credential *c = load_ok(path, NULL, 0);
    cr_assert_str_eq(reqsign_credential_keyid(c), "billing-1");
    reqsign_credential_free(c);
    c = load_ok(path, "override-7", 0);
    cr_assert_str_eq(reqsign_credential_keyid(c), "override-7");
    check_signer(c, "override-7");
    reqsign_credential_free(c);
    load_fail(path, "", 0, REQSIGN_E_INVALID_ARG);
    load_fail(path, "bad\nkeyid", 0, REQSIGN_E_INVALID_ARG);
    json_decref(j);
    free(path);
    free(dir);
}

Test(credential, pem_key_file)
{
    char *dir = tu_tmpdir();
    size_t len;
    char *pem = tu_read(KEY_PEM, &len);
    char *path = write_file(dir, "key.pem", pem, len, 0600);
    struct reqsign_credential *c = load_ok(path, NULL, 0);
    cr_assert_str_eq(reqsign_credential_keyid(c), tp, "a key file's keyid is its thumbprint");
    cr_assert_str_eq(reqsign_credential_service(c), "");
    cr_assert_eq(reqsign_credential_scope_count(c), 0);
    check_signer(c, tp);
    reqsign_credential_free(c);
    c = load_ok(path, "test-key-ed25519", 0);
    cr_assert_str_eq(reqsign_credential_keyid(c), "test-key-ed25519");
    reqsign_credential_free(c);
    free(pem);
    free(path);
    free(dir);
}

Test(credential, jwk_and_seed_files_and_inline_jwk)
{
    char *dir = tu_tmpdir();
    size_t len;
    char *jwk = tu_read(KEY_JWK, &len);
    char *path = write_file(dir, "key.jwk", jwk, len, 0600);
    struct reqsign_credential *c = load_ok(path, NULL, 0);
    cr_assert_str_eq(reqsign_credential_keyid(c), tp);
    reqsign_credential_free(c);
    c = load_ok(jwk, NULL, 0); /* inline */
    cr_assert_str_eq(reqsign_credential_keyid(c), tp);
    reqsign_credential_free(c);
    free(path);

    char *seed = tu_read(KEY_SEED, &len);
    path = write_file(dir, "key.seed", seed, len, 0600);
    c = load_ok(path, NULL, 0);
    cr_assert_str_eq(reqsign_credential_keyid(c), tp, "raw 32 bytes are a private seed");
    reqsign_credential_free(c);
    free(seed);
    free(jwk);
    free(path);
    free(dir);
}

Test(credential, env_var_path_and_inline)
{
    char *dir = tu_tmpdir();
    json_t *j = cred_json();
    char *path = write_json(dir, "cred.json", j, 0600);

    unsetenv(REQSIGN_CREDENTIAL_ENV);
    struct reqsign_error e = load_fail(NULL, NULL, 0, REQSIGN_E_INVALID_ARG);
    cr_assert_not_null(strstr(e.message, "REQSIGN_CREDENTIAL"), "%s", e.message);
    setenv(REQSIGN_CREDENTIAL_ENV, "", 1);
    load_fail(NULL, NULL, 0, REQSIGN_E_INVALID_ARG);

    setenv(REQSIGN_CREDENTIAL_ENV, path, 1);
    struct reqsign_credential *c = load_ok(NULL, NULL, 0);
    cr_assert_str_eq(reqsign_credential_keyid(c), tp);
    reqsign_credential_free(c);

    char *txt = json_dumps(j, JSON_COMPACT);
    size_t n = strlen(txt) + 3;
    char *spaced = malloc(n);
    snprintf(spaced, n, "\n %s", txt); /* leading blanks: still inline */
    setenv(REQSIGN_CREDENTIAL_ENV, spaced, 1);
    c = load_ok(NULL, NULL, 0);
    cr_assert_str_eq(reqsign_credential_keyid(c), tp);
    cr_assert_str_eq(reqsign_credential_service(c), "http://127.0.0.1:8080");
    reqsign_credential_free(c);
    /* an explicit spec wins over the environment */
    setenv(REQSIGN_CREDENTIAL_ENV, "/nonexistent/cred.json", 1);
    c = load_ok(txt, NULL, 0);
    reqsign_credential_free(c);
    load_fail(NULL, NULL, 0, REQSIGN_E_IO);

    free(spaced);
    free(txt);
    json_decref(j);
    free(path);
    free(dir);
}

/* Put @path on file descriptor 0 (each Criterion test runs in its own process). */
static void stdin_from(const char *path)
{
    int fd = open(path, O_RDONLY);
    cr_assert(fd >= 0);
    cr_assert_eq(dup2(fd, STDIN_FILENO), STDIN_FILENO);
    close(fd);
}

/* "-" reads the credential from standard input (issue 12 item 9: the CLI's
 * alternative to a credential in an argument): credential JSON, a PEM key,
 * also through REQSIGN_CREDENTIAL=-; empty input is no credential. */
Test(credential, stdin_dash)
{
    char *dir = tu_tmpdir();
    json_t *j = cred_json();
    char *path = write_json(dir, "cred.json", j, 0644); /* no mode check on a pipe's content */
    stdin_from(path);
    struct reqsign_credential *c = load_ok("-", NULL, 0);
    cr_assert_str_eq(reqsign_credential_keyid(c), tp);
    cr_assert_str_eq(reqsign_credential_service(c), "http://127.0.0.1:8080");
    check_signer(c, tp);
    reqsign_credential_free(c);

    size_t len;
    char *pem = tu_read(KEY_PEM, &len);
    char *kp = write_file(dir, "key.pem", pem, len, 0600);
    stdin_from(kp);
    setenv(REQSIGN_CREDENTIAL_ENV, "-", 1);
    c = load_ok(NULL, "custom-id", 0);
    cr_assert_str_eq(reqsign_credential_keyid(c), "custom-id");
    check_signer(c, "custom-id");
    reqsign_credential_free(c);
    unsetenv(REQSIGN_CREDENTIAL_ENV);

    stdin_from("/dev/null");
    load_fail("-", NULL, 0, REQSIGN_E_KEY_FORMAT);

    free(pem);
    free(kp);
    json_decref(j);
    free(path);
    free(dir);
}

Test(credential, permissions_refused_then_overridden)
{
    char *dir = tu_tmpdir();
    json_t *j = cred_json();
    char *path = write_json(dir, "cred.json", j, 0644);
    struct reqsign_error e = load_fail(path, NULL, 0, REQSIGN_E_KEY_PERMISSIONS);
    cr_assert_not_null(strstr(e.message, "0644"), "%s", e.message);
    cr_assert_not_null(strstr(e.message, "chmod 600"), "%s", e.message);
    cr_assert_not_null(strstr(e.message, path), "%s", e.message);
    struct reqsign_credential *c = load_ok(path, NULL, REQSIGN_KEY_ALLOW_PERMISSIVE);
    reqsign_credential_free(c);
    cr_assert_eq(chmod(path, 0640), 0);
    load_fail(path, NULL, 0, REQSIGN_E_KEY_PERMISSIONS);
    cr_assert_eq(chmod(path, 0400), 0);
    c = load_ok(path, NULL, 0);
    reqsign_credential_free(c);

    /* a key file: the key loader's own check */
    size_t len;
    char *pem = tu_read(KEY_PEM, &len);
    char *kp = write_file(dir, "key.pem", pem, len, 0604);
    e = load_fail(kp, NULL, 0, REQSIGN_E_KEY_PERMISSIONS);
    cr_assert_not_null(strstr(e.message, "chmod 600"), "%s", e.message);
    c = load_ok(kp, NULL, REQSIGN_KEY_ALLOW_PERMISSIVE);
    reqsign_credential_free(c);
    free(kp);
    free(pem);
    json_decref(j);
    free(path);
    free(dir);
}

Test(credential, keyid_thumbprint_mismatch)
{
    char *dir = tu_tmpdir();
    json_t *j = cred_json();
    json_object_set_new(j, "keyid", json_string(OTHER_TP));
    char *path = write_json(dir, "cred.json", j, 0600);
    struct reqsign_error e = load_fail(path, NULL, 0, REQSIGN_E_KEY_FORMAT);
    cr_assert_not_null(strstr(e.message, "thumbprint"), "%s", e.message);
    cr_assert_not_null(strstr(e.message, OTHER_TP), "%s", e.message);
    cr_assert_not_null(strstr(e.message, tp), "%s", e.message);
    /* the public key must match the private key too */
    json_t *j2 = cred_json();
    char *xpub = tu_read("tests/vectors/keys/x25519.pub.pem", NULL);
    json_object_set_new(j2, "public_key", json_string(xpub));
    char *p2 = write_json(dir, "cred2.json", j2, 0600);
    load_fail(p2, NULL, 0, REQSIGN_E_KEY_TYPE);
    struct reqsign_key *k = NULL;
    cr_assert_not_null(k = reqsign_key_generate(NULL));
    char other[256];
    size_t ol;
    cr_assert_eq(reqsign_key_public_pem(k, other, sizeof(other), &ol), REQSIGN_OK);
    reqsign_key_free(k);
    json_object_set_new(j2, "public_key", json_string(other));
    free(p2);
    p2 = write_json(dir, "cred3.json", j2, 0600);
    e = load_fail(p2, NULL, 0, REQSIGN_E_KEY_FORMAT);
    cr_assert_not_null(strstr(e.message, "public_key"), "%s", e.message);
    free(xpub);
    free(p2);
    json_decref(j2);
    json_decref(j);
    free(path);
    free(dir);
}

Test(credential, malformed_json_gives_position)
{
    const char *bad = "{\"keyid\": \"abc\",\n \"alg\": \"ed25519\",, \"x\": 1}";
    struct reqsign_error e = load_fail(bad, NULL, 0, REQSIGN_E_JSON);
    cr_assert_neq(e.offset, REQSIGN_NO_OFFSET);
    cr_assert(e.offset > 30 && e.offset < 40, "offset %zu", e.offset);
    cr_assert_not_null(strstr(e.message, "line 2"), "%s", e.message);
    cr_assert_not_null(strstr(e.message, "column"), "%s", e.message);

    char *dir = tu_tmpdir();
    char *path = write_file(dir, "cred.json", "{\"keyid\": ", 10, 0600);
    e = load_fail(path, NULL, 0, REQSIGN_E_JSON);
    cr_assert_not_null(strstr(e.message, path), "%s", e.message);
    cr_assert_not_null(strstr(e.message, "byte"), "%s", e.message);
    load_fail("[1, 2]", NULL, 0, REQSIGN_E_IO);                 /* not '{': a path */
    load_fail("{\"a\": 1, \"a\": 2}", NULL, 0, REQSIGN_E_JSON); /* duplicate member */
    free(path);
    free(dir);
}

Test(credential, missing_and_mistyped_members)
{
    json_t *j = cred_json();
    char *txt;
    struct reqsign_error e;

    json_object_del(j, "private_key");
    txt = json_dumps(j, 0);
    e = load_fail(txt, NULL, 0, REQSIGN_E_KEY_NOT_PRIVATE);
    cr_assert_not_null(strstr(e.message, "private_key"), "%s", e.message);
    free(txt);
    json_decref(j);

    j = cred_json();
    json_object_del(j, "keyid");
    txt = json_dumps(j, 0);
    e = load_fail(txt, NULL, 0, REQSIGN_E_KEY_FORMAT);
    cr_assert_not_null(strstr(e.message, "keyid"), "%s", e.message);
    /* with an explicit keyid, a missing "keyid" is fine */
    struct reqsign_credential *c = load_ok(txt, "given", 0);
    cr_assert_str_eq(reqsign_credential_keyid(c), "given");
    reqsign_credential_free(c);
    free(txt);
    json_decref(j);

    static const char *const mistyped[][2] = {
        {"keyid", "[1]"}, {"private_key", "42"}, {"scopes", "\"keys:admin\""}, {"scopes", "[1]"},
        {"label", "{}"},  {"service", "true"},   {"public_key", "[]"},
    };
    for (size_t i = 0; i < sizeof(mistyped) / sizeof(mistyped[0]); i++) {
        j = cred_json();
        json_object_set_new(j, mistyped[i][0], json_loads(mistyped[i][1], JSON_DECODE_ANY, NULL));
        txt = json_dumps(j, 0);
        e = load_fail(txt, NULL, 0, REQSIGN_E_KEY_FORMAT);
        cr_assert_not_null(strstr(e.message, mistyped[i][0]), "%s: %s", mistyped[i][0], e.message);
        free(txt);
        json_decref(j);
    }
    load_fail("[]", NULL, 0, REQSIGN_E_IO);
    load_fail("{}", NULL, 0, REQSIGN_E_KEY_NOT_PRIVATE);
    load_fail("/nonexistent/reqsign/cred.json", NULL, 0, REQSIGN_E_IO);
    struct reqsign_error e2;
    reqsign_error_clear(&e2);
    /* (was: a NULL out-parameter; the constructor now returns the credential) */
    cr_assert_null(reqsign_credential_load("", NULL, 0, &e2));
    cr_assert_neq(e2.code, REQSIGN_OK);
}

Test(credential, wrong_alg_and_key_type)
{
    json_t *j = cred_json();
    json_object_set_new(j, "alg", json_string("rsa-pss-sha512"));
    char *txt = json_dumps(j, 0);
    struct reqsign_error e = load_fail(txt, NULL, 0, REQSIGN_E_KEY_TYPE);
    cr_assert_not_null(strstr(e.message, "ed25519"), "%s", e.message);
    free(txt);
    json_object_set_new(j, "alg", json_integer(1));
    txt = json_dumps(j, 0);
    load_fail(txt, NULL, 0, REQSIGN_E_KEY_TYPE);
    free(txt);
    json_decref(j);

    /* an EC private key in "private_key" */
    j = cred_json();
    char *ec = tu_read(EC_PEM, NULL);
    json_object_set_new(j, "private_key", json_string(ec));
    json_object_del(j, "public_key");
    txt = json_dumps(j, 0);
    load_fail(txt, NULL, 0, REQSIGN_E_KEY_TYPE);
    free(txt);
    free(ec);
    json_decref(j);
    /* a public key only is not a credential */
    j = cred_json();
    char *pub = tu_read(PUB_PEM, NULL);
    json_object_set_new(j, "private_key", json_string(pub));
    txt = json_dumps(j, 0);
    load_fail(txt, NULL, 0, REQSIGN_E_KEY_NOT_PRIVATE);
    free(txt);
    free(pub);
    json_decref(j);
    char *pp = tu_path(PUB_PEM);
    load_fail(pp, NULL, REQSIGN_KEY_ALLOW_PERMISSIVE, REQSIGN_E_KEY_NOT_PRIVATE);
    free(pp);
}

Test(credential, signer_overrides)
{
    json_t *j = cred_json();
    char *txt = json_dumps(j, 0);
    struct reqsign_credential *c = load_ok(txt, NULL, 0);
    struct reqsign_signer_opts o;
    struct reqsign_error err;
    memset(&o, 0, sizeof(o));
    o.label = "mysig";
    o.expires_in = 60;
    reqsign_error_clear(&err);
    struct reqsign_signer *s = reqsign_credential_signer(c, &o, &err);
    cr_assert_not_null(s, "%s", err.message);
    cr_assert_str_eq(reqsign_signer_keyid(s), tp);
    reqsign_signer_free(s);
    o.keyid = "nope";
    reqsign_error_clear(&err);
    cr_assert_null(reqsign_credential_signer(c, &o, &err));
    cr_assert_eq(err.code, REQSIGN_E_INVALID_ARG);
    o.keyid = NULL;
    o.key_file = "/etc/passwd";
    reqsign_error_clear(&err);
    cr_assert_null(reqsign_credential_signer(c, &o, &err));
    cr_assert_eq(err.code, REQSIGN_E_INVALID_ARG);
    reqsign_credential_free(c);
    free(txt);
    json_decref(j);
}
