/* Suite badinput: a table of malformed requests against the verifier
 * (tests/vectors/badinput/verifier.json, see its README.md).
 *
 * Each case is a request as received plus the expected wire error code. The
 * signature is produced at test time: a first "signing pass" runs the
 * verifier on the request as it was signed (the case's `sign` overrides,
 * a placeholder signature) to obtain the signature base, which is signed
 * with the RFC 9421 B.1.4 test key; the result is then put into the received
 * request through the {SIG...} placeholders (possibly mutated: truncated,
 * extended, re-encoded). Every case runs twice, through the one-shot API and
 * through the two-phase API with the body fed in 1-byte chunks, each with a
 * fresh nonce store; both must give the expected code, a non-empty message
 * that names the field, and the expected error source.
 */
#include <criterion/criterion.h>

#include <reqsign/base.h>
#include <reqsign/base64.h>
#include <reqsign/digest.h>
#include <reqsign/error.h>
#include <reqsign/key.h>
#include <reqsign/nonce.h>
#include <reqsign/verifier.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "badinput_table.h"
#include "testutil.h"

static const char *jstr(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    return v != NULL && json_is_string(v) ? json_string_value(v) : NULL;
}

/* Does @hay contain @needle, case-insensitively? */
static int icontains(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (const char *p = hay; *p; p++)
        if (strncasecmp(p, needle, n) == 0)
            return 1;
    return n == 0;
}

struct outcome {
    enum reqsign_status st;
    struct reqsign_error err;
};

static void run_api(const struct bi_built *b, const struct bi_vconf *vc0, const uint8_t *body,
                    size_t body_len, int two_phase, struct outcome *out)
{
    struct bi_vconf vc = *vc0;
    vc.o.clock_ctx = &vc.now;
    vc.o.lookup_ctx = &vc.sk;
    vc.o.nonces = reqsign_nonce_store_memory_new(NULL, NULL);
    cr_assert_not_null(vc.o.nonces);
    reqsign_error_clear(&out->err);
    struct reqsign_verifier *v = reqsign_verifier_new(&vc.o, &out->err);
    cr_assert_not_null(v, "%s", out->err.message);
    struct reqsign_verification vs;
    reqsign_verification_init(&vs);
    if (!two_phase) {
        out->st = reqsign_verifier_verify(v, &b->req, body, body_len, &vs, &out->err);
    } else {
        out->st = reqsign_verifier_verify_headers(v, &b->req, &vs, &out->err);
        for (size_t i = 0; out->st == REQSIGN_OK && i < body_len; i++)
            out->st = reqsign_verification_body(&vs, body + i, 1, &out->err);
        if (out->st == REQSIGN_OK)
            out->st = reqsign_verification_finish(&vs, &out->err);
    }
    reqsign_verification_cleanup(&vs);
    reqsign_verifier_free(v);
    reqsign_nonce_store_free(vc.o.nonces);
}

static int run_case(const json_t *c, const json_t *t, const struct reqsign_key *key,
                    const uint8_t pk[32])
{
    const char *name = jstr(c, "name");
    const char *expect = jstr(c, "expect");
    const char *field = jstr(c, "field");
    const char *mention = jstr(c, "mention");
    cr_assert(name != NULL && expect != NULL, "case without name or expect");
    if (strcmp(expect, "ok") != 0)
        cr_assert(field != NULL, "%s: a failing case must name its field", name);
    if (mention == NULL)
        mention = field;

    struct bi_vconf vc;
    struct bi_built b;
    struct bi_bstr body = {0};
    struct reqsign_error serr;
    int have_sig = bi_prepare(c, t, key, pk, &b, &body, &vc, &serr);
    if (json_is_true(json_object_get(c, "needs_signature")))
        cr_assert(have_sig, "%s: the signing pass produced no base (%s: %s)", name,
                  reqsign_errname(serr.code), serr.message);

    int failures = 0;
    for (int mode = 0; mode < 2; mode++) {
        struct outcome o;
        run_api(&b, &vc, (const uint8_t *)body.p, body.n, mode, &o);
        const char *api = mode ? "two-phase (1-byte chunks)" : "one-shot";
        const char *got = reqsign_errname(o.st);
        if (strcmp(got, expect) != 0) {
            cr_log_error("%s [%s]: got %s (%s: %s), want %s", name, api, got, o.err.source,
                         o.err.message, expect);
            failures++;
            continue;
        }
        if (o.st == REQSIGN_OK)
            continue;
        if (o.err.code != o.st || o.err.message[0] == '\0') {
            cr_log_error("%s [%s]: error detail missing (code %s, message '%s')", name, api,
                         reqsign_errname(o.err.code), o.err.message);
            failures++;
        }
        if (strcasecmp(o.err.source, field) != 0) {
            cr_log_error("%s [%s]: error source '%s', want '%s' (%s)", name, api, o.err.source,
                         field, o.err.message);
            failures++;
        }
        if (!icontains(o.err.message, mention)) {
            cr_log_error("%s [%s]: message '%s' does not name '%s'", name, api, o.err.message,
                         mention);
            failures++;
        }
        /* what a server would send: valid JSON naming the code */
        char js[1024];
        size_t jl = 0;
        cr_assert_eq(reqsign_error_json(&o.err, vc.now, js, sizeof(js), &jl), REQSIGN_OK);
        json_t *j = json_loadb(js, jl, 0, NULL);
        if (j == NULL || jstr(j, "error") == NULL || strcmp(jstr(j, "error"), expect) != 0) {
            cr_log_error("%s [%s]: error JSON %s", name, api, js);
            failures++;
        }
        json_decref(j);
    }
    bi_built_free(&b);
    free(body.p);
    return failures;
}

Test(badinput, verifier_table)
{
    json_t *root = bi_load_table();
    const json_t *t = json_object_get(root, "template");
    const json_t *cases = json_object_get(root, "cases");
    cr_assert(json_is_object(t) && json_is_array(cases));
    uint8_t pk[32];
    struct reqsign_key *key = bi_load_key(pk);
    size_t i;
    const json_t *c;
    int failures = 0;
    json_array_foreach(cases, i, c)
    {
        failures += run_case(c, t, key, pk);
    }
    cr_log_info("badinput: %zu cases, %d failures", json_array_size(cases), failures);
    cr_expect_eq(failures, 0, "%d failure(s) in the badinput table (see the log)", failures);
    reqsign_key_free(key);
    json_decref(root);
}

/* The table's own sanity: at least 60 uniquely named cases, and every case
 * with a failing expectation names a field. */
Test(badinput, table_is_well_formed)
{
    json_t *root = bi_load_table();
    const json_t *cases = json_object_get(root, "cases");
    cr_assert_geq(json_array_size(cases), 60);
    size_t i, j;
    const json_t *c;
    json_array_foreach(cases, i, c)
    {
        const char *n = jstr(c, "name");
        cr_assert_not_null(n, "case %zu has no name", i);
        cr_assert_not_null(jstr(c, "expect"), "%s: no expect", n);
        for (j = 0; j < i; j++)
            cr_assert_str_neq(n, jstr(json_array_get(cases, j), "name"), "duplicate name %s", n);
        cr_assert(reqsign_errname(REQSIGN_OK) != NULL);
        const char *e = jstr(c, "expect");
        int known = 0;
        for (int k = 0; k < REQSIGN_STATUS_LAST; k++)
            if (strcmp(reqsign_errname((enum reqsign_status)k), e) == 0)
                known = 1;
        cr_assert(known, "%s: unknown wire code %s", n, e);
    }
    json_decref(root);
}
