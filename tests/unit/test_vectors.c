/* The machine-readable test vectors (spec/vectors/, see its README.md):
 *   - every positive vector is re-signed with the signer and must match byte
 *     for byte (Content-Digest, Signature-Input, Signature, signature base),
 *     then its received request must verify, with the same base;
 *   - every negative vector must fail with its wire error name;
 *   - the RFC 9421 B.2.6 vector verifies (rfc9421 profile) and re-signs exactly;
 *   - the negative vectors must cover every verifier error code listed below.
 */
#include <criterion/criterion.h>

#include <reqsign/base.h>
#include <reqsign/base64.h>
#include <reqsign/error.h>
#include <reqsign/key.h>
#include <reqsign/nonce.h>
#include <reqsign/signer.h>
#include <reqsign/verifier.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define VEC_MAX_HEADERS 64

/* Every verifier error the negative vectors must reach. Codes that need a
 * key store, a nonce store or an application decision (key_revoked,
 * key_expired, keystore_unavailable, nonce_store_full, nonce_key_limit,
 * nonce_store_unavailable, scope) are tested in test_verifier.c. */
static const char *const required_errors[] = {
    "sig_missing",
    "sig_input_malformed",
    "sig_malformed",
    "sig_label",
    "sig_ambiguous",
    "component_duplicate",
    "component_unknown",
    "component_absent",
    "component_invalid",
    "component_required",
    "param_missing",
    "param_invalid",
    "alg_mismatch",
    "tag_mismatch",
    "sig_too_old",
    "sig_future",
    "sig_expired",
    "key_unknown",
    "sig_invalid",
    "replay",
    "digest_required",
    "digest_malformed",
    "digest_no_known_alg",
    "digest_mismatch",
    "limit",
    "url",
    "sig_incomplete",
};

static const char *jstr(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    return v != NULL && json_is_string(v) ? json_string_value(v) : NULL;
}

static long long jint(const json_t *o, const char *key, long long dflt)
{
    const json_t *v = json_object_get(o, key);
    return v != NULL && json_is_integer(v) ? json_integer_value(v) : dflt;
}

static char *vec_path(const char *rel)
{
    char buf[512];
    snprintf(buf, sizeof(buf), "spec/vectors/%s", rel);
    return tu_path(buf);
}

/* body / body_base64 / body_repeat of @o (malloc'd, never NULL). */
static uint8_t *body_of(const json_t *o, size_t *len)
{
    const json_t *rep = json_object_get(o, "body_repeat");
    const char *b64 = jstr(o, "body_base64");
    uint8_t *out;
    if (rep != NULL) {
        const char *byte = jstr(rep, "byte");
        long long count = jint(rep, "count", -1);
        cr_assert(byte != NULL && strlen(byte) == 1 && count >= 0, "bad body_repeat");
        out = malloc((size_t)count + 1);
        cr_assert(out != NULL);
        memset(out, byte[0], (size_t)count);
        *len = (size_t)count;
    } else if (b64 != NULL) {
        size_t n = strlen(b64);
        out = malloc(n + 1);
        cr_assert(out != NULL);
        cr_assert_eq(reqsign_base64_decode(b64, n, out, n + 1, len, NULL), REQSIGN_OK);
    } else {
        const json_t *b = json_object_get(o, "body");
        size_t n = b != NULL ? json_string_length(b) : 0;
        out = malloc(n + 1);
        cr_assert(out != NULL);
        if (n > 0)
            memcpy(out, json_string_value(b), n);
        *len = n;
    }
    return out;
}

static struct reqsign_span jspan(const json_t *v)
{
    struct reqsign_span s = {json_string_value(v), json_string_length(v)};
    return s;
}

/* A "received" object as a request view (spans point into the JSON). */
static void request_of(const json_t *rcv, struct reqsign_request *req, struct reqsign_header *hv)
{
    const json_t *hs = json_object_get(rcv, "headers");
    size_t i;
    const json_t *h;
    cr_assert(json_is_array(hs) && json_array_size(hs) <= VEC_MAX_HEADERS);
    json_array_foreach(hs, i, h)
    {
        hv[i].name = jspan(json_array_get(h, 0));
        hv[i].value = jspan(json_array_get(h, 1));
    }
    req->method = jspan(json_object_get(rcv, "method"));
    req->scheme = jspan(json_object_get(rcv, "scheme"));
    req->authority = jspan(json_object_get(rcv, "authority"));
    req->target = jspan(json_object_get(rcv, "target"));
    req->headers = hv;
    req->n_headers = json_array_size(hs);
}

static int64_t fixed_clock(void *ctx)
{
    return *(const int64_t *)ctx;
}

/* Verify @rcv as @verify says, trusting @pk under @keyid (NULL: any), with
 * the one-shot API or (@two_phase) headers, the body in 7-byte chunks, finish.
 * Returns the last status of `repeat` runs; the last base goes to @base. */
static enum reqsign_status verify_received(const json_t *rcv, const json_t *verify,
                                           const uint8_t pk[REQSIGN_ED25519_PUBLIC_LEN],
                                           const char *keyid, char *base, size_t *base_len,
                                           int two_phase, struct reqsign_error *err)
{
    struct reqsign_static_key sk;
    struct reqsign_verifier_opts vo;
    struct reqsign_header hv[VEC_MAX_HEADERS];
    struct reqsign_request req;
    int64_t now = jint(verify, "now", 0);
    const char *profile = jstr(verify, "profile");
    enum reqsign_status st = REQSIGN_E_INTERNAL;
    size_t body_len = 0;
    uint8_t *body = body_of(rcv, &body_len);

    cr_assert(now > 0, "verify.now missing");
    cr_assert(profile != NULL &&
                  (strcmp(profile, "reqsign") == 0 || strcmp(profile, "rfc9421") == 0),
              "verify.profile must be reqsign or rfc9421");
    memset(&sk, 0, sizeof(sk));
    sk.keyid = keyid;
    memcpy(sk.public_key, pk, REQSIGN_ED25519_PUBLIC_LEN);
    memset(&vo, 0, sizeof(vo));
    vo.profile =
        strcmp(profile, "rfc9421") == 0 ? REQSIGN_PROFILE_RFC9421 : REQSIGN_PROFILE_REQSIGN;
    vo.max_age = jint(verify, "max_age", 0);
    vo.skew = jint(verify, "skew", 0);
    vo.label = jstr(verify, "label");
    vo.required_tag = jstr(verify, "required_tag");
    vo.public_authority = jstr(verify, "public_authority");
    vo.any_authority = vo.public_authority == NULL; /* else the vector's Host */
    vo.clock = fixed_clock;
    vo.clock_ctx = &now;
    vo.lookup = reqsign_static_key_lookup;
    vo.lookup_ctx = &sk;
    vo.nonces = reqsign_nonce_store_memory_new(NULL, NULL);
    cr_assert(vo.nonces != NULL);
    struct reqsign_verifier *v = reqsign_verifier_new(&vo, err);
    cr_assert(v != NULL, "verifier: %s", err->message);
    request_of(rcv, &req, hv);
    long long repeat = jint(verify, "repeat", 1);
    cr_assert(repeat >= 1);
    for (long long k = 0; k < repeat; k++) {
        struct reqsign_verification vs;
        reqsign_verification_init(&vs);
        vs.base_buf = base;
        vs.base_cap = REQSIGN_BASE_BUF;
        reqsign_error_clear(err);
        if (!two_phase) {
            st = reqsign_verifier_verify(v, &req, body, body_len, &vs, err);
        } else {
            st = reqsign_verifier_verify_headers(v, &req, &vs, err);
            for (size_t off = 0; st == REQSIGN_OK && off < body_len; off += 7)
                st = reqsign_verification_body(&vs, body + off,
                                               body_len - off < 7 ? body_len - off : 7, err);
            if (st == REQSIGN_OK)
                st = reqsign_verification_finish(&vs, err);
        }
        *base_len = vs.base_len;
        reqsign_verification_cleanup(&vs);
    }
    reqsign_verifier_free(v);
    reqsign_nonce_store_free(vo.nonces);
    free(body);
    return st;
}

static unsigned digest_algs(const char *d)
{
    if (d == NULL || strcmp(d, "sha-256") == 0)
        return REQSIGN_DIGEST_SHA256;
    if (strcmp(d, "sha-512") == 0)
        return REQSIGN_DIGEST_SHA512;
    cr_assert_str_eq(d, "sha-256+sha-512", "unknown digest");
    return REQSIGN_DIGEST_SHA256 | REQSIGN_DIGEST_SHA512;
}

static void public_of(const char *rel, uint8_t pk[REQSIGN_ED25519_PUBLIC_LEN])
{
    struct reqsign_key *k = NULL;
    struct reqsign_error err;
    char *p = vec_path(rel);
    reqsign_error_clear(&err);
    cr_assert_not_null(k = reqsign_key_load_file(p, REQSIGN_KEY_ALLOW_PERMISSIVE, &err), "%s: %s",
                       p, err.message);
    reqsign_key_public_raw(k, pk);
    reqsign_key_free(k);
    free(p);
}

static void base_eq(const char *what, const char *name, const char *got, size_t got_len,
                    const char *want)
{
    cr_expect(got_len == strlen(want) && memcmp(got, want, got_len) == 0,
              "%s: %s base differs:\n--- got ---\n%.*s\n--- want ---\n%s", name, what, (int)got_len,
              got, want);
}

/* One positive vector: sign, compare, verify. */
static void run_positive(const json_t *vec)
{
    const char *name = jstr(vec, "name");
    const char *keyrel = jstr(vec, "key");
    const char *keyid = jstr(vec, "keyid");
    const json_t *sign = json_object_get(vec, "sign");
    const json_t *exp = json_object_get(vec, "expected");
    cr_assert(name && keyrel && keyid && sign && exp, "malformed positive vector");
    char *keyfile = vec_path(keyrel);
    struct reqsign_error err;

    /* The signer: the default keyid (thumbprint) when the vector uses it. */
    struct reqsign_signer_opts so;
    memset(&so, 0, sizeof(so));
    so.key_file = keyfile;
    so.key_flags = REQSIGN_KEY_ALLOW_PERMISSIVE;
    so.label = jstr(sign, "label");
    so.tag = jstr(sign, "tag");
    so.expires_in = jint(sign, "expires_in", 0);
    so.digest_algs = digest_algs(jstr(sign, "digest"));
    reqsign_error_clear(&err);
    struct reqsign_signer *s = reqsign_signer_new(&so, &err);
    cr_assert(s != NULL, "%s: signer: %s", name, err.message);
    if (strcmp(reqsign_signer_keyid(s), keyid) != 0) {
        reqsign_signer_free(s);
        so.keyid = keyid;
        s = reqsign_signer_new(&so, &err);
        cr_assert(s != NULL, "%s: signer: %s", name, err.message);
    }
    cr_assert_str_eq(reqsign_signer_keyid(s), keyid, "%s", name);

    struct reqsign_sign_input in;
    size_t body_len = 0;
    uint8_t *body = body_of(sign, &body_len);
    memset(&in, 0, sizeof(in));
    in.method = jstr(sign, "method");
    in.url = jstr(sign, "url");
    in.body = body;
    in.body_len = body_len;
    in.created = jint(sign, "created", 0);
    in.nonce = jstr(sign, "nonce");
    cr_assert(in.method && in.url && in.created > 0 && in.nonce, "%s: incomplete sign", name);

    struct reqsign_signed *out = calloc(1, sizeof(*out));
    char *base = malloc(REQSIGN_BASE_BUF);
    cr_assert(out != NULL && base != NULL);
    out->base_buf = base;
    out->base_cap = REQSIGN_BASE_BUF;
    reqsign_error_clear(&err);
    cr_assert_eq(reqsign_signer_sign(s, &in, out, &err), REQSIGN_OK, "%s: sign: %s", name,
                 err.message);
    cr_expect_str_eq(out->content_digest, jstr(exp, "content_digest"), "%s: Content-Digest", name);
    cr_expect_str_eq(out->signature_input, jstr(exp, "signature_input"), "%s: Signature-Input",
                     name);
    cr_expect_str_eq(out->signature, jstr(exp, "signature"), "%s: Signature", name);
    base_eq("signer", name, base, out->base_len, jstr(exp, "base"));

    /* The received request verifies, with the same base. */
    uint8_t pk[REQSIGN_ED25519_PUBLIC_LEN];
    public_of(keyrel, pk);
    for (int two_phase = 0; two_phase < 2; two_phase++) {
        size_t vlen = 0;
        enum reqsign_status st =
            verify_received(json_object_get(vec, "received"), json_object_get(vec, "verify"), pk,
                            keyid, base, &vlen, two_phase, &err);
        cr_expect_eq(st, REQSIGN_OK, "%s (%s): verifier: %s (%s)", name,
                     two_phase ? "two-phase" : "one-shot", reqsign_errname(st), err.message);
        base_eq("verifier", name, base, vlen, jstr(exp, "base"));
    }

    reqsign_signer_free(s);
    free(out);
    free(base);
    free(body);
    free(keyfile);
}

static void run_negative(const json_t *vec)
{
    const char *name = jstr(vec, "name");
    const char *expect = jstr(vec, "expect_error");
    const json_t *key = json_object_get(vec, "key");
    cr_assert(name && expect && key && jstr(key, "public"), "malformed negative vector");
    cr_assert_str_neq(expect, "ok", "%s: a negative vector cannot expect ok", name);
    uint8_t pk[REQSIGN_ED25519_PUBLIC_LEN];
    public_of(jstr(key, "public"), pk);
    char *base = malloc(REQSIGN_BASE_BUF);
    cr_assert(base != NULL);
    for (int two_phase = 0; two_phase < 2; two_phase++) {
        size_t vlen = 0;
        struct reqsign_error err;
        enum reqsign_status st =
            verify_received(json_object_get(vec, "received"), json_object_get(vec, "verify"), pk,
                            jstr(key, "keyid"), base, &vlen, two_phase, &err);
        cr_expect_str_eq(reqsign_errname(st), expect, "%s (%s): got %s (%s), want %s", name,
                         two_phase ? "two-phase" : "one-shot", reqsign_errname(st), err.message,
                         expect);
    }
    free(base);
}

Test(vectors, positive)
{
    json_t *root = tu_json("spec/vectors/positive.json");
    const json_t *vecs = json_object_get(root, "vectors");
    size_t i, ran = 0;
    const json_t *v;
    cr_assert(json_is_array(vecs));
    json_array_foreach(vecs, i, v)
    {
        run_positive(v);
        ran++;
    }
    cr_assert_geq(ran, 20, "only %zu positive vectors ran", ran);
    json_decref(root);
}

Test(vectors, negative)
{
    json_t *root = tu_json("spec/vectors/negative.json");
    const json_t *vecs = json_object_get(root, "vectors");
    size_t i, ran = 0;
    const json_t *v;
    cr_assert(json_is_array(vecs));
    json_array_foreach(vecs, i, v)
    {
        run_negative(v);
        ran++;
    }
    cr_assert_geq(ran, 30, "only %zu negative vectors ran", ran);
    json_decref(root);
}

Test(vectors, negative_covers_every_verifier_error)
{
    json_t *root = tu_json("spec/vectors/negative.json");
    const json_t *vecs = json_object_get(root, "vectors");
    for (size_t k = 0; k < sizeof(required_errors) / sizeof(required_errors[0]); k++) {
        size_t i;
        const json_t *v;
        int found = 0;
        json_array_foreach(vecs, i, v)
        {
            const char *e = jstr(v, "expect_error");
            if (e != NULL && strcmp(e, required_errors[k]) == 0)
                found = 1;
        }
        cr_expect(found, "no negative vector expects %s", required_errors[k]);
    }
    /* and every name in the list is a real wire name */
    for (size_t k = 0; k < sizeof(required_errors) / sizeof(required_errors[0]); k++) {
        int real = 0;
        for (int c = 1; c < REQSIGN_STATUS_LAST; c++)
            if (strcmp(reqsign_errname((enum reqsign_status)c), required_errors[k]) == 0)
                real = 1;
        cr_expect(real, "%s is not a reqsign wire name", required_errors[k]);
    }
    json_decref(root);
}

/* RFC 9421 B.2.6: verify with the rfc9421 profile at now = created, and
 * re-sign the base with the B.1.4 private key to the identical signature. */
Test(vectors, rfc9421_b26)
{
    json_t *root = tu_json("spec/vectors/rfc9421-b26.json");
    const json_t *hs = json_object_get(root, "headers");
    const char *url = jstr(root, "url");
    const char *want_base = jstr(root, "base");
    const char *sig_field = jstr(json_object_get(root, "headers"), "Signature");
    const char *si_field = jstr(json_object_get(root, "headers"), "Signature-Input");
    cr_assert(hs && url && want_base && sig_field && si_field);

    /* the received request: B.2 test-request */
    json_t *rcv = json_object();
    json_t *harr = json_array();
    const char *k;
    json_t *hv;
    json_object_foreach((json_t *)hs, k, hv) json_array_append_new(harr, json_pack("[sO]", k, hv));
    const char *path = strstr(url, "://");
    cr_assert(path != NULL);
    path = strchr(path + 3, '/');
    cr_assert(path != NULL);
    json_object_set_new(rcv, "method", json_string(jstr(root, "method")));
    json_object_set_new(rcv, "scheme", json_string("https"));
    json_object_set_new(rcv, "authority", json_string(jstr(hs, "Host")));
    json_object_set_new(rcv, "target", json_string(path));
    json_object_set_new(rcv, "headers", harr);
    json_object_set_new(rcv, "body", json_string("{\"hello\": \"world\"}")); /* B.2, 18 bytes */

    const char *cr = strstr(si_field, "created=");
    cr_assert(cr != NULL);
    long long created = strtoll(cr + 8, NULL, 10);
    json_t *verify = json_pack("{sIss}", "now", (json_int_t)created, "profile", "rfc9421");

    uint8_t pk[REQSIGN_ED25519_PUBLIC_LEN];
    public_of("keys/test-key-ed25519.pub.pem", pk);
    char *base = malloc(REQSIGN_BASE_BUF);
    size_t blen = 0;
    struct reqsign_error err;
    for (int two_phase = 0; two_phase < 2; two_phase++) {
        enum reqsign_status st =
            verify_received(rcv, verify, pk, "test-key-ed25519", base, &blen, two_phase, &err);
        cr_expect_eq(st, REQSIGN_OK, "B.2.6: %s (%s)", reqsign_errname(st), err.message);
        base_eq("verifier", "rfc9421-b26", base, blen, want_base);
    }
    /* B.2.6 does not cover content-digest, but Content-Digest is present and
     * the request has content: content changed with the same length (so the
     * covered content-length still matches) is refused, not silently taken */
    json_object_set_new(rcv, "body", json_string("{\"hello\": \"WORLD\"}"));
    for (int two_phase = 0; two_phase < 2; two_phase++) {
        enum reqsign_status st =
            verify_received(rcv, verify, pk, "test-key-ed25519", base, &blen, two_phase, &err);
        cr_expect_eq(st, REQSIGN_E_DIGEST_MISMATCH, "B.2.6, content changed (%s): %s (%s)",
                     two_phase ? "two-phase" : "one-shot", reqsign_errname(st), err.message);
    }

    /* re-sign */
    struct reqsign_key *key = NULL;
    char *kp = vec_path("keys/test-key-ed25519.pem");
    cr_assert_not_null(key = reqsign_key_load_file(kp, REQSIGN_KEY_ALLOW_PERMISSIVE, &err));
    uint8_t sig[REQSIGN_ED25519_SIG_LEN];
    cr_assert_eq(reqsign_key_sign(key, (const uint8_t *)want_base, strlen(want_base), sig, NULL),
                 REQSIGN_OK);
    char b64[128], field[160];
    size_t n = 0;
    cr_assert_eq(reqsign_base64_encode(sig, sizeof(sig), b64, sizeof(b64), &n), REQSIGN_OK);
    const char *eq = strchr(si_field, '=');
    cr_assert(eq != NULL);
    snprintf(field, sizeof(field), "%.*s=:%.*s:", (int)(eq - si_field), si_field, (int)n, b64);
    cr_expect_str_eq(field, sig_field, "B.2.6 re-signed");

    reqsign_key_free(key);
    free(kp);
    free(base);
    json_decref(verify);
    json_decref(rcv);
    json_decref(root);
}

/* spec/PROTOCOL.md section 10 lists every code of error.h, with its number,
 * wire name and HTTP status, and nothing else (codes 49-57 were once missing
 * from it). */
Test(vectors, spec_error_table_matches_error_h)
{
    char *md = tu_read("spec/PROTOCOL.md", NULL);
    const char *sec = strstr(md, "\n## 10. Errors");
    cr_assert_not_null(sec);
    const char *end = strstr(sec + 1, "\n## ");
    cr_assert_not_null(end);
    int seen[REQSIGN_STATUS_LAST];
    memset(seen, 0, sizeof(seen));
    for (const char *p = sec; p != NULL && p < end; p = strchr(p + 1, '\n')) {
        int num = -1, http = 0, n = 0;
        char wire[64];
        if (sscanf(p + 1, "| %d | `%63[a-z0-9_]` | %d |%n", &num, wire, &http, &n) != 3 || n == 0)
            continue;
        cr_assert(num >= 0 && num < REQSIGN_STATUS_LAST, "spec lists code %d, not in error.h", num);
        enum reqsign_status c = (enum reqsign_status)num;
        cr_expect_str_eq(wire, reqsign_errname(c), "code %d: spec says %s, error.h %s", num, wire,
                         reqsign_errname(c));
        cr_expect_eq(http, reqsign_http_status(c), "code %d (%s): spec HTTP %d, error.h %d", num,
                     wire, http, reqsign_http_status(c));
        cr_expect_eq(seen[num], 0, "code %d listed twice", num);
        seen[num]++;
    }
    for (int c = 0; c < REQSIGN_STATUS_LAST; c++)
        cr_expect_eq(seen[c], 1, "code %d (%s) is missing from spec/PROTOCOL.md section 10", c,
                     reqsign_errname((enum reqsign_status)c));
    free(md);
}
