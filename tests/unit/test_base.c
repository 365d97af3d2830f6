/* Suite base: the signature base builder against RFC 9421's examples and edge
 * cases (tests/vectors/base/components.json). */
#include <criterion/criterion.h>
#include <reqsign/base.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define MAXH 32

struct built {
    struct reqsign_header h[MAXH];
    struct reqsign_request req;
};

static struct reqsign_span sp(const char *s)
{
    struct reqsign_span r = {s, strlen(s)};
    return r;
}

static void build_request(json_t *r, struct built *b)
{
    memset(b, 0, sizeof(*b));
    b->req.method = sp(json_string_value(json_object_get(r, "method")));
    b->req.scheme = sp(json_string_value(json_object_get(r, "scheme")));
    b->req.authority = sp(json_string_value(json_object_get(r, "authority")));
    b->req.target = sp(json_string_value(json_object_get(r, "target")));
    json_t *hs = json_object_get(r, "headers");
    size_t i;
    json_t *pair;
    json_array_foreach(hs, i, pair)
    {
        cr_assert(i < MAXH);
        b->h[i].name = sp(json_string_value(json_array_get(pair, 0)));
        b->h[i].value = sp(json_string_value(json_array_get(pair, 1)));
    }
    b->req.headers = b->h;
    b->req.n_headers = json_array_size(hs);
}

Test(base, rfc9421_components_vectors)
{
    json_t *root = tu_json("tests/vectors/base/components.json");
    json_t *cases = json_object_get(root, "cases");
    size_t i, ran = 0;
    json_t *c;
    cr_assert(json_array_size(cases) >= 50);
    json_array_foreach(cases, i, c)
    {
        const char *name = json_string_value(json_object_get(c, "name"));
        const char *si = json_string_value(json_object_get(c, "signature_input"));
        const char *want = json_string_value(json_object_get(c, "base"));
        const char *want_err = json_string_value(json_object_get(c, "error"));
        struct built b;
        build_request(json_object_get(c, "request"), &b);

        struct reqsign_sf_member m[4];
        struct reqsign_sf_item it[64];
        struct reqsign_sf_param pa[128];
        struct reqsign_sf_parsed p = {m, 4, 0, it, 64, 0, pa, 128, 0};
        struct reqsign_error err;
        reqsign_error_clear(&err);
        cr_assert_eq(reqsign_sf_parse_dict(si, strlen(si), &p, &err), REQSIGN_OK,
                     "%s: parse Signature-Input: %s", name, err.message);
        char out[4096];
        size_t n = 0;
        enum reqsign_status st =
            reqsign_base_build(&b.req, &p, &p.members[0], out, sizeof(out), &n, &err);
        if (want_err != NULL) {
            cr_expect_neq(st, REQSIGN_OK, "%s: expected %s, got ok", name, want_err);
            cr_expect_str_eq(reqsign_errname(st), want_err, "%s: expected %s, got %s (%s)", name,
                             want_err, reqsign_errname(st), err.message);
            cr_expect(err.message[0] != '\0', "%s: error without a message", name);
        } else {
            cr_assert_eq(st, REQSIGN_OK, "%s: %s: %s", name, reqsign_errname(st), err.message);
            cr_expect(n == strlen(want) && memcmp(out, want, n) == 0,
                      "%s: base mismatch\n--- got\n%.*s\n--- want\n%s", name, (int)n, out, want);
        }
        ran++;
    }
    cr_assert_eq(ran, json_array_size(cases));
    json_decref(root);
}

/* B.2.6 from the RFC, built from the request itself. */
Test(base, rfc9421_b26)
{
    json_t *v = tu_json("spec/vectors/rfc9421-b26.json");
    json_t *hs = json_object_get(v, "headers");
    struct reqsign_header h[16];
    size_t n = 0;
    const char *k;
    json_t *val;
    json_object_foreach(hs, k, val)
    {
        h[n].name = sp(k);
        h[n].value = sp(json_string_value(val));
        n++;
    }
    struct reqsign_request req = {
        sp("POST"), sp("https"), sp("example.com"), sp("/foo?param=Value&Pet=dog"), h, n};
    const char *si_all = json_string_value(json_object_get(hs, "Signature-Input"));
    struct reqsign_sf_member m[2];
    struct reqsign_sf_item it[16];
    struct reqsign_sf_param pa[16];
    struct reqsign_sf_parsed p = {m, 2, 0, it, 16, 0, pa, 16, 0};
    cr_assert_eq(reqsign_sf_parse_dict(si_all, strlen(si_all), &p, NULL), REQSIGN_OK);
    char out[2048];
    size_t len = 0;
    struct reqsign_error err;
    reqsign_error_clear(&err);
    cr_assert_eq(reqsign_base_build(&req, &p, &p.members[0], out, sizeof(out), &len, &err),
                 REQSIGN_OK, "%s", err.message);
    const char *want = json_string_value(json_object_get(v, "base"));
    cr_assert_eq(len, strlen(want));
    cr_assert(memcmp(out, want, len) == 0, "got:\n%.*s", (int)len, out);
    json_decref(v);
}

/* A buffer one byte too small never overflows and says so. */
Test(base, buffer_too_small_every_size)
{
    struct reqsign_header h[] = {
        {sp("Content-Digest"), sp("sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:")}};
    struct reqsign_request req = {sp("POST"),   sp("https"), sp("Example.com:443"),
                                  sp("/a?b=c"), h,           1};
    const char *si = "sig1=(\"@method\" \"@authority\" \"@path\" \"@query\" "
                     "\"content-digest\");created=1;nonce=\"abcdefgh\";keyid=\"k\"";
    struct reqsign_sf_member m[2];
    struct reqsign_sf_item it[16];
    struct reqsign_sf_param pa[16];
    struct reqsign_sf_parsed p = {m, 2, 0, it, 16, 0, pa, 16, 0};
    cr_assert_eq(reqsign_sf_parse_dict(si, strlen(si), &p, NULL), REQSIGN_OK);
    char full[1024];
    size_t full_len = 0;
    cr_assert_eq(reqsign_base_build(&req, &p, &m[0], full, sizeof(full), &full_len, NULL),
                 REQSIGN_OK);
    for (size_t cap = 0; cap < full_len; cap++) {
        char *buf = malloc(cap + 1);
        size_t n = 0;
        cr_assert_eq(reqsign_base_build(&req, &p, &m[0], buf, cap, &n, NULL),
                     REQSIGN_E_BUFFER_TOO_SMALL, "cap %zu", cap);
        free(buf);
    }
}

/* reqsign_target_split() checks eight bytes at a time: every byte value at
 * every position of targets of 1..40 bytes is accepted or refused exactly as
 * the byte rule says (0x21..0x7e, not '#'), with the offset of the first bad
 * byte, and the query starts at the first '?'. */
Test(base, target_split_every_byte_every_position)
{
    char t[41];
    size_t checked = 0;
    for (size_t len = 1; len <= 40; len++) {
        for (size_t pos = 1; pos < len; pos++) {
            for (int c = 0; c < 256; c++) {
                memset(t, 'a', len);
                t[0] = '/';
                t[pos] = (char)c;
                struct reqsign_span path, query, target = {t, len};
                bool has_query = c != '?'; /* the opposite of the answer: it must be written */
                struct reqsign_error err;
                reqsign_error_clear(&err);
                enum reqsign_status st =
                    reqsign_target_split(target, &path, &query, &has_query, &err);
                int bad = c <= 0x20 || c >= 0x7f || c == '#';
                if (bad) {
                    cr_assert_eq(st, REQSIGN_E_URL, "len %zu pos %zu byte 0x%02x", len, pos, c);
                    cr_assert_eq(err.offset, pos, "len %zu pos %zu byte 0x%02x", len, pos, c);
                    continue;
                }
                cr_assert_eq(st, REQSIGN_OK, "len %zu pos %zu byte 0x%02x", len, pos, c);
                if (c == '?') {
                    cr_assert_eq(has_query, 1);
                    cr_assert_eq(path.len, pos);
                    cr_assert_eq(query.ptr, t + pos);
                    cr_assert_eq(query.len, len - pos);
                } else {
                    cr_assert_eq(has_query, 0);
                    cr_assert_eq(path.len, len);
                    cr_assert_eq(query.len, 1);
                    cr_assert_eq(query.ptr[0], '?');
                }
                checked++;
            }
        }
    }
    cr_assert_eq(checked, 780 * 93); /* every (length, position) pair x the 93 good bytes */
    /* two bad bytes: the first one is reported */
    const char *two = "/abcdefgh ijklm#nop";
    struct reqsign_span path, query, target = {two, strlen(two)};
    struct reqsign_error err;
    reqsign_error_clear(&err);
    cr_assert_eq(reqsign_target_split(target, &path, &query, NULL, &err), REQSIGN_E_URL);
    cr_assert_eq(err.offset, 9);
}
