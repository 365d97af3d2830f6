/* Suite error: every public function that takes a struct reqsign_error
 * resets it on entry (error.h), so a reused struct never carries an earlier
 * call's message and an uninitialised one never carries garbage.
 *
 * One row per function family: a call that succeeds. Each row runs twice,
 * once on a struct holding a stale failure (as a previous call leaves it) and
 * once on a struct full of garbage bytes; after the call the struct must say
 * "no error". A second table checks that a failing call reports its own
 * failure, not the stale one. */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <reqsign/base.h>
#include <reqsign/base64.h>
#include <reqsign/credential.h>
#include <reqsign/curl.h>
#include <reqsign/digest.h>
#include <reqsign/keycache.h>
#include <reqsign/request.h>
#include <reqsign/sf.h>
#include <reqsign/signer.h>
#include <reqsign/verifier.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#define SPAN(lit) ((struct reqsign_span){lit, sizeof(lit) - 1})
#define AUTHORITY "api.example.com"

/* Fixtures shared by the rows, made once per test. */
static struct reqsign_key *key;
static struct reqsign_signer *signer;
static struct reqsign_static_key skey;
static struct reqsign_nonce_store *nonces;
static struct reqsign_verifier *verifier;
static struct reqsign_keystore *store;
static struct reqsign_keycache *cache;
static char key_path[512];
static char body_path[512];

/* A key store of one key, for the keystore and keycache rows. */
static enum reqsign_status ks_get(void *impl, const char *keyid, size_t keyid_len,
                                  struct reqsign_key_record *out, struct reqsign_error *err)
{
    (void)impl;
    if (keyid_len != strlen(skey.keyid) || memcmp(keyid, skey.keyid, keyid_len) != 0)
        return reqsign_error_set(err, REQSIGN_E_KEY_UNKNOWN, "key store", REQSIGN_NO_OFFSET, NULL);
    memset(out, 0, sizeof(*out));
    snprintf(out->keyid, sizeof(out->keyid), "%s", skey.keyid);
    memcpy(out->public_key, skey.public_key, sizeof(out->public_key));
    out->created_at = 1;
    return REQSIGN_OK;
}
static enum reqsign_status ks_insert(void *impl, const struct reqsign_key_record *rec,
                                     struct reqsign_error *err)
{
    (void)impl, (void)rec, (void)err;
    return REQSIGN_OK;
}
static enum reqsign_status ks_list(void *impl, const char *after, size_t limit,
                                   struct reqsign_key_record *out, size_t *n,
                                   struct reqsign_error *err)
{
    (void)impl, (void)after, (void)limit, (void)out, (void)err;
    *n = 0;
    return REQSIGN_OK;
}
static enum reqsign_status ks_revoke(void *impl, const char *keyid, size_t keyid_len, int64_t now,
                                     struct reqsign_error *err)
{
    (void)impl, (void)keyid, (void)keyid_len, (void)now, (void)err;
    return REQSIGN_OK;
}
static void ks_free(void *impl)
{
    (void)impl;
}
static const struct reqsign_keystore_ops ks_ops = {
    .get = ks_get, .insert = ks_insert, .list = ks_list, .revoke = ks_revoke, .free = ks_free};

static void setup(void)
{
    cr_assert_eq(reqsign_global_init(), REQSIGN_OK);
    cr_assert_not_null(key = reqsign_key_generate(NULL));
    struct reqsign_signer_opts so = {.key = key};
    signer = reqsign_signer_new(&so, NULL);
    cr_assert_not_null(signer);
    memset(&skey, 0, sizeof(skey));
    reqsign_key_public_raw(key, skey.public_key);
    skey.keyid = reqsign_signer_keyid(signer);
    nonces = reqsign_nonce_store_memory_new(NULL, NULL);
    cr_assert_not_null(nonces);
    struct reqsign_verifier_opts vo = {.lookup = reqsign_static_key_lookup,
                                       .lookup_ctx = &skey,
                                       .nonces = nonces,
                                       .public_authority = AUTHORITY};
    verifier = reqsign_verifier_new(&vo, NULL);
    cr_assert_not_null(verifier);
    store = reqsign_keystore_new(&ks_ops, NULL, NULL);
    cr_assert_not_null(store);
    struct reqsign_keycache_opts co = {.store = store};
    cache = reqsign_keycache_new(&co, NULL);
    cr_assert_not_null(cache);

    /* the private key in a 0600 file, and a body file */
    char *dir = tu_tmpdir();
    snprintf(key_path, sizeof(key_path), "%s/key.pem", dir);
    snprintf(body_path, sizeof(body_path), "%s/body", dir);
    free(dir);
    char pem[1024];
    size_t n;
    cr_assert_eq(reqsign_key_private_pem(key, pem, sizeof(pem), &n), REQSIGN_OK);
    FILE *f = fopen(key_path, "w");
    cr_assert_not_null(f);
    fwrite(pem, 1, n, f);
    fclose(f);
    chmod(key_path, 0600);
    reqsign_memzero(pem, sizeof(pem));
    f = fopen(body_path, "w");
    cr_assert_not_null(f);
    fputs("{\"amount\":100}", f);
    fclose(f);
}

static void teardown(void)
{
    reqsign_keycache_free(cache);
    reqsign_keystore_free(store);
    reqsign_verifier_free(verifier);
    reqsign_nonce_store_free(nonces);
    reqsign_signer_free(signer);
    reqsign_key_free(key);
    unlink(key_path);
    unlink(body_path);
}

/* ---- the rows: one successful call each ---- */

static enum reqsign_status r_sf(struct reqsign_error *err)
{
    struct reqsign_sf_member m[4];
    struct reqsign_sf_item it[4];
    struct reqsign_sf_param pa[4];
    struct reqsign_sf_parsed p = {m, 4, 0, it, 4, 0, pa, 4, 0};
    enum reqsign_status st = reqsign_sf_parse_dict("a=1, b=(x y);p", 14, &p, err);
    if (st == REQSIGN_OK)
        st = reqsign_sf_parse_list("1, 2", 4, &p, err);
    if (st == REQSIGN_OK)
        st = reqsign_sf_parse_item("\"x\"", 3, &p, err);
    return st;
}

static enum reqsign_status r_base64(struct reqsign_error *err)
{
    uint8_t out[8];
    size_t n;
    enum reqsign_status st = reqsign_base64_decode("AAAA", 4, out, sizeof(out), &n, err);
    if (st == REQSIGN_OK)
        st = reqsign_base64url_decode("AAA", 3, out, sizeof(out), &n, err);
    return st;
}

static enum reqsign_status r_digest(struct reqsign_error *err)
{
    char cd[REQSIGN_CONTENT_DIGEST_OUT_BUF];
    size_t n;
    struct reqsign_digest_expect exp;
    struct reqsign_digest d;
    enum reqsign_status st =
        reqsign_content_digest(REQSIGN_DIGEST_SHA256, "abc", 3, cd, sizeof(cd), &n, NULL);
    if (st == REQSIGN_OK)
        st = reqsign_content_digest_parse(cd, n, &exp, err);
    if (st == REQSIGN_OK)
        st = reqsign_digest_init(&d, exp.algs, NULL);
    if (st == REQSIGN_OK)
        st = reqsign_digest_update(&d, "abc", 3, NULL);
    if (st == REQSIGN_OK)
        st = reqsign_content_digest_check(&d, &exp, err);
    return st;
}

static enum reqsign_status r_digest_file(struct reqsign_error *err)
{
    char cd[REQSIGN_CONTENT_DIGEST_OUT_BUF];
    size_t n;
    return reqsign_content_digest_file(body_path, REQSIGN_DIGEST_SHA256, cd, sizeof(cd), &n, err);
}

static enum reqsign_status r_request(struct reqsign_error *err)
{
    char out[REQSIGN_AUTHORITY_IN_MAX + 1];
    size_t n;
    struct reqsign_span path, query;
    bool has_query;
    enum reqsign_status st = reqsign_authority_normalize(SPAN("https"), SPAN("Example.COM:443"),
                                                         out, sizeof(out), &n, err);
    if (st == REQSIGN_OK)
        st = reqsign_target_split(SPAN("/a?b"), &path, &query, &has_query, err);
    return st;
}

static enum reqsign_status r_key(struct reqsign_error *err)
{
    struct reqsign_key *k = NULL;
    uint8_t seed[REQSIGN_ED25519_SEED_LEN] = {1};
    uint8_t pk[REQSIGN_ED25519_PUBLIC_LEN];
    uint8_t sig[REQSIGN_ED25519_SIG_LEN];
    char pem[512];
    size_t n;
    enum reqsign_status st = ((k = reqsign_key_generate(err)) != NULL ? REQSIGN_OK : err->code);
    reqsign_key_free(k);
    k = NULL;
    if (st == REQSIGN_OK)
        st = reqsign_random_bytes(seed, sizeof(seed), err);
    if (st == REQSIGN_OK)
        st = ((k = reqsign_key_from_seed(seed, err)) != NULL ? REQSIGN_OK : err->code);
    if (st == REQSIGN_OK) {
        struct reqsign_key *d = reqsign_key_dup(k, err);
        st = d != NULL ? REQSIGN_OK : err->code;
        reqsign_key_free(d);
    }
    if (st == REQSIGN_OK)
        st = reqsign_key_sign(k, (const uint8_t *)"m", 1, sig, NULL);
    if (st == REQSIGN_OK)
        st = reqsign_key_verify(k, sig, (const uint8_t *)"m", 1, NULL);
    if (st == REQSIGN_OK)
        st = reqsign_key_public_pem(k, pem, sizeof(pem), &n);
    reqsign_key_public_raw(k, pk);
    reqsign_key_free(k);
    k = NULL;
    if (st == REQSIGN_OK)
        st = ((k = reqsign_key_load_mem(pem, n, 0, err)) != NULL ? REQSIGN_OK : err->code);
    reqsign_key_free(k);
    k = NULL;
    if (st == REQSIGN_OK)
        st = ((k = reqsign_key_from_public(pk, err)) != NULL ? REQSIGN_OK : err->code);
    reqsign_key_free(k);
    k = NULL;
    if (st == REQSIGN_OK)
        st = ((k = reqsign_key_load_file(key_path, REQSIGN_KEY_REQUIRE_PRIVATE, err)) != NULL
                  ? REQSIGN_OK
                  : err->code);
    reqsign_key_free(k);
    return st;
}

static enum reqsign_status r_base(struct reqsign_error *err)
{
    static const char si_text[] = "sig1=(\"@method\" \"@path\");created=1";
    struct reqsign_sf_member m[2];
    struct reqsign_sf_item it[4];
    struct reqsign_sf_param pa[4];
    struct reqsign_sf_parsed p = {m, 2, 0, it, 4, 0, pa, 4, 0};
    struct reqsign_request req = {SPAN("GET"), SPAN("https"), SPAN(AUTHORITY), SPAN("/x"), NULL, 0};
    char base[256];
    size_t n;
    enum reqsign_status st = reqsign_sf_parse_dict(si_text, sizeof(si_text) - 1, &p, err);
    if (st == REQSIGN_OK)
        st = reqsign_base_build(&req, &p, &m[0], base, sizeof(base), &n, err);
    return st;
}

static enum reqsign_status r_signer(struct reqsign_error *err)
{
    struct reqsign_signer *s = NULL;
    struct reqsign_signer_opts so = {.key = key, .tag = "t"};
    struct reqsign_sign_input in = {.method = "GET", .url = "https://" AUTHORITY "/x"};
    struct reqsign_signed out = {0}; /* base_buf unset */
    s = reqsign_signer_new(&so, err);
    enum reqsign_status st = s != NULL ? REQSIGN_OK : err->code;
    if (st == REQSIGN_OK)
        st = reqsign_signer_sign(s, &in, &out, err);
    reqsign_signer_free(s);
    return st;
}

static enum reqsign_status r_credential(struct reqsign_error *err)
{
    struct reqsign_credential *c = NULL;
    struct reqsign_signer *s = NULL;
    enum reqsign_status st =
        ((c = reqsign_credential_load(key_path, NULL, 0, err)) != NULL ? REQSIGN_OK : err->code);
    if (st == REQSIGN_OK)
        st = (s = reqsign_credential_signer(c, NULL, err)) != NULL ? REQSIGN_OK : err->code;
    reqsign_signer_free(s);
    reqsign_credential_free(c);
    return st;
}

static enum reqsign_status r_curl(struct reqsign_error *err)
{
    CURL *h = curl_easy_init();
    struct curl_slist *hdrs = NULL;
    struct reqsign_curl_request r = {
        .method = "POST", .url = "https://" AUTHORITY "/x", .body = "{}", .body_len = 2};
    cr_assert_not_null(h);
    enum reqsign_status st = reqsign_curl_prepare(signer, h, &r, &hdrs, NULL, err);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    return st;
}

/* A request signed for the fixture verifier, with a fresh nonce. */
struct signed_req {
    struct reqsign_signed out;
    struct reqsign_request req;
};
static const char BODY[] = "{\"amount\":100}";
static void sign_req(struct signed_req *r)
{
    memset(r, 0, sizeof(*r));
    struct reqsign_sign_input in = {.method = "POST",
                                    .url = "https://" AUTHORITY "/v1/pay?x=1",
                                    .body = BODY,
                                    .body_len = sizeof(BODY) - 1};
    cr_assert_eq(reqsign_signer_sign(signer, &in, &r->out, NULL), REQSIGN_OK);
    r->req = (struct reqsign_request){SPAN("POST"),        SPAN("https"),  SPAN(AUTHORITY),
                                      SPAN("/v1/pay?x=1"), r->out.headers, r->out.n_headers};
}

static enum reqsign_status r_verifier(struct reqsign_error *err)
{
    struct reqsign_verifier *v = NULL;
    struct reqsign_verifier_opts vo = {.lookup = reqsign_static_key_lookup,
                                       .lookup_ctx = &skey,
                                       .nonces = nonces,
                                       .public_authority = AUTHORITY};
    struct reqsign_verification vs;
    struct signed_req r;
    v = reqsign_verifier_new(&vo, err);
    enum reqsign_status st = v != NULL ? REQSIGN_OK : err->code;
    reqsign_verifier_free(v);
    /* one call */
    sign_req(&r);
    reqsign_verification_init(&vs);
    if (st == REQSIGN_OK)
        st = reqsign_verifier_verify(verifier, &r.req, BODY, sizeof(BODY) - 1, &vs, err);
    reqsign_verification_cleanup(&vs);
    /* two phases */
    sign_req(&r);
    reqsign_verification_init(&vs);
    if (st == REQSIGN_OK)
        st = reqsign_verifier_verify_headers(verifier, &r.req, &vs, err);
    if (st == REQSIGN_OK)
        st = reqsign_verification_body(&vs, BODY, sizeof(BODY) - 1, err);
    if (st == REQSIGN_OK)
        st = reqsign_verification_finish(&vs, err);
    reqsign_verification_cleanup(&vs);
    return st;
}

static enum reqsign_status r_lookups(struct reqsign_error *err)
{
    struct reqsign_key_info info;
    struct reqsign_key_record rec;
    const char *kid = skey.keyid;
    enum reqsign_status st = reqsign_static_key_lookup(&skey, kid, strlen(kid), &info, err);
    if (st == REQSIGN_OK)
        st = reqsign_keystore_get(store, kid, strlen(kid), &rec, err);
    if (st == REQSIGN_OK)
        st = reqsign_keycache_lookup(cache, kid, strlen(kid), &info, err);
    return st;
}

static enum reqsign_status r_stores(struct reqsign_error *err)
{
    struct reqsign_keystore *ks = NULL;
    struct reqsign_keycache *kc = NULL;
    struct reqsign_nonce_store *ns = NULL;
    struct reqsign_keycache_opts co = {.store = store};
    char nonce[32];
    snprintf(nonce, sizeof(nonce), "n-%ld-%d", (long)time(NULL), rand());
    ks = reqsign_keystore_new(&ks_ops, NULL, err);
    enum reqsign_status st = ks != NULL ? REQSIGN_OK : err->code;
    reqsign_keystore_free(ks);
    if (st == REQSIGN_OK)
        st = (kc = reqsign_keycache_new(&co, err)) != NULL ? REQSIGN_OK : err->code;
    reqsign_keycache_free(kc);
    if (st == REQSIGN_OK)
        st = (ns = reqsign_nonce_store_memory_new(NULL, err)) != NULL ? REQSIGN_OK : err->code;
    reqsign_nonce_store_free(ns);
    if (st == REQSIGN_OK)
        st = reqsign_nonce_store_check_insert(nonces, "k", 1, nonce, strlen(nonce), 100, 200, err);
    return st;
}

struct row {
    const char *family;
    enum reqsign_status (*call)(struct reqsign_error *err);
};

static const struct row rows[] = {
    {"sf", r_sf},
    {"base64", r_base64},
    {"digest", r_digest},
    {"digest_file", r_digest_file},
    {"request", r_request},
    {"key", r_key},
    {"base", r_base},
    {"signer", r_signer},
    {"credential", r_credential},
    {"curl", r_curl},
    {"verifier", r_verifier},
    {"lookups", r_lookups},
    {"stores", r_stores},
};

/* A struct as a failed earlier call leaves it. */
static void stale(struct reqsign_error *err)
{
    reqsign_error_clear(err);
    (void)reqsign_error_set(err, REQSIGN_E_REPLAY, "stale source", 7, "a stale message");
}

/* A struct never initialised: every byte garbage (a code that is no code). */
static void garbage(struct reqsign_error *err)
{
    memset(err, 0xA5, sizeof(*err));
}

static void assert_clean(const struct reqsign_error *err, const char *family, const char *how)
{
    cr_expect_eq(err->code, REQSIGN_OK, "%s (%s): code %d left", family, how, (int)err->code);
    cr_expect_eq(err->offset, REQSIGN_NO_OFFSET, "%s (%s): offset left", family, how);
    cr_expect_eq(err->source[0], '\0', "%s (%s): source left", family, how);
    cr_expect_eq(err->message[0], '\0', "%s (%s): message left", family, how);
}

Test(error, success_resets_a_reused_or_garbage_struct, .init = setup, .fini = teardown)
{
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct reqsign_error err;
        stale(&err);
        enum reqsign_status st = rows[i].call(&err);
        cr_assert_eq(st, REQSIGN_OK, "%s: %s", rows[i].family, reqsign_strerror(st));
        assert_clean(&err, rows[i].family, "stale");

        garbage(&err);
        st = rows[i].call(&err);
        cr_assert_eq(st, REQSIGN_OK, "%s: %s", rows[i].family, reqsign_strerror(st));
        assert_clean(&err, rows[i].family, "garbage");
    }
}

/* ---- failing calls report their own failure ---- */

static enum reqsign_status f_sf(struct reqsign_error *err)
{
    struct reqsign_sf_member m[1];
    struct reqsign_sf_item it[1];
    struct reqsign_sf_param pa[1];
    struct reqsign_sf_parsed p = {m, 1, 0, it, 1, 0, pa, 1, 0};
    return reqsign_sf_parse_dict("a=?x", 4, &p, err);
}
static enum reqsign_status f_base(struct reqsign_error *err)
{
    static const char si_text[] = "sig1=(\"@method\" \"@path\");created=1";
    struct reqsign_sf_member m[2];
    struct reqsign_sf_item it[4];
    struct reqsign_sf_param pa[4];
    struct reqsign_sf_parsed p = {m, 2, 0, it, 4, 0, pa, 4, 0};
    struct reqsign_request req = {SPAN("GET"), SPAN("https"), SPAN(AUTHORITY), SPAN("/x"), NULL, 0};
    char base[8];
    size_t n;
    cr_assert_eq(reqsign_sf_parse_dict(si_text, sizeof(si_text) - 1, &p, NULL), REQSIGN_OK);
    /* too small a buffer is a failure like any other: err says so */
    return reqsign_base_build(&req, &p, &m[0], base, sizeof(base), &n, err);
}
static enum reqsign_status f_signer(struct reqsign_error *err)
{
    struct reqsign_sign_input in = {.method = "GET", .url = "ftp://" AUTHORITY "/x"};
    struct reqsign_signed out = {0}; /* base_buf unset */
    return reqsign_signer_sign(signer, &in, &out, err);
}
static enum reqsign_status f_verifier(struct reqsign_error *err)
{
    struct reqsign_verification vs;
    struct reqsign_request req = {SPAN("GET"), SPAN("https"), SPAN(AUTHORITY), SPAN("/x"), NULL, 0};
    reqsign_verification_init(&vs);
    enum reqsign_status st = reqsign_verifier_verify(verifier, &req, NULL, 0, &vs, err);
    reqsign_verification_cleanup(&vs);
    return st;
}

static const struct row failing[] = {
    {"sf", f_sf},
    {"base", f_base},
    {"signer", f_signer},
    {"verifier", f_verifier},
};

Test(error, failure_reports_its_own_error, .init = setup, .fini = teardown)
{
    for (size_t i = 0; i < sizeof(failing) / sizeof(failing[0]); i++) {
        for (int how = 0; how < 2; how++) {
            struct reqsign_error err;
            if (how == 0)
                stale(&err);
            else
                garbage(&err);
            enum reqsign_status st = failing[i].call(&err);
            cr_assert_neq(st, REQSIGN_OK, "%s", failing[i].family);
            cr_expect_eq(err.code, st, "%s: err.code %d, returned %d", failing[i].family,
                         (int)err.code, (int)st);
            cr_expect_neq(err.message[0], '\0', "%s: no message", failing[i].family);
            cr_expect(strstr(err.message, "stale") == NULL, "%s: stale message kept: %s",
                      failing[i].family, err.message);
            cr_expect(strstr(err.source, "stale") == NULL, "%s: stale source kept",
                      failing[i].family);
        }
    }
}
