/* Suite `digest`: RFC 9530 Content-Digest computation (one-shot and
 * streaming), parsing and checking. Expected values: RFC 9530 Appendix D and
 * the recomputed values of /work/shared/reference/rfc9530-notes.md section 4. */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#include <reqsign/digest.h>

#include "testutil.h"

static const char hello[] = "{\"hello\": \"world\"}"; /* 18 bytes, no newline */
static const char hello_lf[] = "{\"hello\": \"world\"}\n";

#define HELLO_256 "X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE="
#define HELLO_512                                                                                  \
    "WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew=="
#define HELLO_LF_256 "RK/0qy18MlBSVnWgjwz6lZEWjP/lF5HF9bvEF8FabDg="
#define HELLO_LF_512                                                                               \
    "YMAam51Jz/jOATT6/zvHrLVgOYTGFy1d6GJiOHTohq4yP+pgk4vf2aCsyRZOtw8MjkM7iw7yZ/WkppmM44T3qg=="
#define EMPTY_256 "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
#define EMPTY_512                                                                                  \
    "z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg/SpIdNs6c5H0NE8XYXysP+DGNKHfuwvY7kxvUdBeoGlODJ6+SfaPg=="

static void expect_value(unsigned algs, const void *body, size_t len, const char *want)
{
    char out[REQSIGN_CONTENT_DIGEST_OUT_BUF];
    size_t n = 0;

    cr_assert_eq(reqsign_content_digest(algs, body, len, out, sizeof(out), &n, NULL), REQSIGN_OK);
    cr_assert_str_eq(out, want);
    cr_assert_eq(n, strlen(want));
}

Test(digest, rfc9530_hello_world)
{
    expect_value(REQSIGN_DIGEST_SHA256, hello, 18, "sha-256=:" HELLO_256 ":");
    expect_value(REQSIGN_DIGEST_SHA512, hello, 18, "sha-512=:" HELLO_512 ":");
    expect_value(REQSIGN_DIGEST_SHA256 | REQSIGN_DIGEST_SHA512, hello, 18,
                 "sha-512=:" HELLO_512 ":, sha-256=:" HELLO_256 ":");
    expect_value(REQSIGN_DIGEST_SHA256, hello_lf, 19, "sha-256=:" HELLO_LF_256 ":");
    expect_value(REQSIGN_DIGEST_SHA512, hello_lf, 19, "sha-512=:" HELLO_LF_512 ":");
}

Test(digest, rfc9421_b26_vector_digest)
{
    json_t *v = tu_json("spec/vectors/rfc9421-b26.json");
    const char *want = json_string_value(json_object_get(v, "contentDigestSha256"));
    const char *cd =
        json_string_value(json_object_get(json_object_get(v, "headers"), "Content-Digest"));

    expect_value(REQSIGN_DIGEST_SHA256, hello, 18, want);
    expect_value(REQSIGN_DIGEST_SHA512, hello, 18, cd);
    json_decref(v);
}

Test(digest, empty_body)
{
    expect_value(REQSIGN_DIGEST_SHA256, NULL, 0, "sha-256=:" EMPTY_256 ":");
    expect_value(REQSIGN_DIGEST_SHA512, "", 0, "sha-512=:" EMPTY_512 ":");
    expect_value(REQSIGN_DIGEST_SHA512 | REQSIGN_DIGEST_SHA256, NULL, 0,
                 "sha-512=:" EMPTY_512 ":, sha-256=:" EMPTY_256 ":");
}

Test(digest, max_fits)
{
    char out[REQSIGN_CONTENT_DIGEST_OUT_BUF];
    size_t n = 0;
    cr_assert_eq(reqsign_content_digest(REQSIGN_DIGEST_SHA256 | REQSIGN_DIGEST_SHA512, hello, 18,
                                        out, sizeof(out), &n, NULL),
                 REQSIGN_OK);
    cr_assert_lt(n, REQSIGN_CONTENT_DIGEST_OUT_BUF);
}

Test(digest, streaming_random_chunks_equals_one_shot)
{
    const size_t len = 200003;
    uint8_t *body = malloc(len);
    unsigned seed = 12345;
    char one[REQSIGN_CONTENT_DIGEST_OUT_BUF], str[REQSIGN_CONTENT_DIGEST_OUT_BUF];
    uint8_t r256a[32], r512a[64], r256b[32], r512b[64];
    size_t n1, n2;

    for (size_t i = 0; i < len; i++) {
        seed = seed * 1103515245u + 12345u;
        body[i] = (uint8_t)(seed >> 16);
    }
    struct reqsign_digest d;
    cr_assert_eq(reqsign_digest_init(&d, REQSIGN_DIGEST_SHA256 | REQSIGN_DIGEST_SHA512, NULL),
                 REQSIGN_OK);
    cr_assert_eq(reqsign_digest_update(&d, body, len, NULL), REQSIGN_OK);
    cr_assert_eq(reqsign_digest_final(&d, one, sizeof(one), &n1, r256a, r512a, NULL), REQSIGN_OK);

    for (int round = 0; round < 20; round++) {
        size_t off = 0;
        cr_assert_eq(reqsign_digest_init(&d, REQSIGN_DIGEST_SHA256 | REQSIGN_DIGEST_SHA512, NULL),
                     REQSIGN_OK);
        while (off < len) {
            seed = seed * 1103515245u + 12345u;
            /* 0 .. 8191 bytes, with many small and some empty chunks */
            size_t c = (seed >> 8) % ((round % 3 == 0) ? 17 : 8192);
            if (c > len - off)
                c = len - off;
            cr_assert_eq(reqsign_digest_update(&d, body + off, c, NULL), REQSIGN_OK);
            off += c;
        }
        cr_assert_eq(d.total, len);
        cr_assert_eq(reqsign_digest_final(&d, str, sizeof(str), &n2, r256b, r512b, NULL),
                     REQSIGN_OK);
        cr_assert_str_eq(str, one, "round %d", round);
        cr_assert_arr_eq(r256a, r256b, 32);
        cr_assert_arr_eq(r512a, r512b, 64);
        cr_assert_null(d.ctx[0]);
        cr_assert_null(d.ctx[1]);
    }
    free(body);
}

Test(digest, init_final_arguments)
{
    struct reqsign_digest d;
    char out[REQSIGN_CONTENT_DIGEST_OUT_BUF];
    size_t n = 0;

    cr_assert_eq(reqsign_digest_init(&d, 0, NULL), REQSIGN_E_INVALID_ARG);
    cr_assert_eq(reqsign_digest_init(&d, 4, NULL), REQSIGN_E_INVALID_ARG);
    reqsign_digest_cleanup(&d);
    memset(&d, 0, sizeof(d));
    reqsign_digest_cleanup(&d);
    reqsign_digest_cleanup(NULL);

    /* Too small: the needed length is reported, the context is released. */
    cr_assert_eq(reqsign_digest_init(&d, REQSIGN_DIGEST_SHA256, NULL), REQSIGN_OK);
    cr_assert_eq(reqsign_digest_final(&d, out, 10, &n, NULL, NULL, NULL),
                 REQSIGN_E_BUFFER_TOO_SMALL);
    cr_assert_eq(n, strlen("sha-256=:" EMPTY_256 ":"));
    cr_assert_null(d.ctx[0]);
    /* Cleanup without final. */
    cr_assert_eq(reqsign_digest_init(&d, REQSIGN_DIGEST_SHA256 | REQSIGN_DIGEST_SHA512, NULL),
                 REQSIGN_OK);
    cr_assert_eq(reqsign_digest_update(&d, "abc", 3, NULL), REQSIGN_OK);
    reqsign_digest_cleanup(&d);
    reqsign_digest_cleanup(&d);
}

/* ---- parse ---- */

static enum reqsign_status parse(const char *v, struct reqsign_digest_expect *e,
                                 struct reqsign_error *err)
{
    enum reqsign_status st;
    reqsign_error_clear(err);
    st = reqsign_content_digest_parse(v, strlen(v), e, err);
    if (st != REQSIGN_OK) {
        cr_assert_eq(err->code, st);
        cr_assert_str_eq(err->source, "Content-Digest");
    }
    return st;
}

static void raw_of(unsigned alg, const void *body, size_t len, uint8_t *out)
{
    struct reqsign_digest d;
    char text[REQSIGN_CONTENT_DIGEST_OUT_BUF];
    size_t n;
    cr_assert_eq(reqsign_digest_init(&d, alg, NULL), REQSIGN_OK);
    cr_assert_eq(reqsign_digest_update(&d, body, len, NULL), REQSIGN_OK);
    cr_assert_eq(reqsign_digest_final(&d, text, sizeof(text), &n,
                                      alg == REQSIGN_DIGEST_SHA256 ? out : NULL,
                                      alg == REQSIGN_DIGEST_SHA512 ? out : NULL, NULL),
                 REQSIGN_OK);
}

Test(digest, parse_known_and_unknown)
{
    struct reqsign_digest_expect e;
    struct reqsign_error err;
    uint8_t h256[32], h512[64];

    raw_of(REQSIGN_DIGEST_SHA256, hello, 18, h256);
    raw_of(REQSIGN_DIGEST_SHA512, hello, 18, h512);

    cr_assert_eq(parse("sha-256=:" HELLO_256 ":", &e, &err), REQSIGN_OK);
    cr_assert_eq(e.algs, REQSIGN_DIGEST_SHA256);
    cr_assert_arr_eq(e.sha256, h256, 32);

    cr_assert_eq(parse("sha-512=:" HELLO_512 ":", &e, &err), REQSIGN_OK);
    cr_assert_eq(e.algs, REQSIGN_DIGEST_SHA512);
    cr_assert_arr_eq(e.sha512, h512, 64);

    /* RFC 9530 D: every registered algorithm; the deprecated ones are ignored. */
    cr_assert_eq(parse("md5=:Sd/dVLAcvNLSq16eXua5uQ==:, sha=:07CavjDP4u3/TungoUHJO/Wzr4c=:, "
                       "sha-256=:" HELLO_256 ":, unixsum=:GQU=:, unixcksum=:7zsHAA==:, "
                       "adler=:OZkGFw==:, crc32c=:Q3lHIA==:, sha-512=:" HELLO_512 ":",
                       &e, &err),
                 REQSIGN_OK);
    cr_assert_eq(e.algs, REQSIGN_DIGEST_SHA256 | REQSIGN_DIGEST_SHA512);
    cr_assert_arr_eq(e.sha256, h256, 32);
    cr_assert_arr_eq(e.sha512, h512, 64);

    /* Unknown keys of any type, parameters, no whitespace after commas. */
    cr_assert_eq(
        parse("foo=1,bar=(a b);x=?0,sha-256=:" HELLO_256 ":;p=1,baz,sha-3=\"x\"", &e, &err),
        REQSIGN_OK);
    cr_assert_eq(e.algs, REQSIGN_DIGEST_SHA256);
    cr_assert_arr_eq(e.sha256, h256, 32);

    /* Duplicates: RFC 8941, the last value wins. */
    cr_assert_eq(parse("sha-256=:" HELLO_LF_256 ":, sha-256=:" HELLO_256 ":", &e, &err),
                 REQSIGN_OK);
    cr_assert_arr_eq(e.sha256, h256, 32);

    /* Surrounding whitespace (SP) is allowed by RFC 8941. */
    cr_assert_eq(parse("  sha-256=:" HELLO_256 ":  ", &e, &err), REQSIGN_OK);
}

Test(digest, parse_only_unknown)
{
    struct reqsign_digest_expect e;
    struct reqsign_error err;

    cr_assert_eq(parse("md5=:Sd/dVLAcvNLSq16eXua5uQ==:", &e, &err), REQSIGN_E_DIGEST_NO_KNOWN_ALG);
    cr_assert_eq(parse("sha=:07CavjDP4u3/TungoUHJO/Wzr4c=:, unixsum=:GQU=:", &e, &err),
                 REQSIGN_E_DIGEST_NO_KNOWN_ALG);
    cr_assert_eq(parse("sha-384=:AAAA:", &e, &err), REQSIGN_E_DIGEST_NO_KNOWN_ALG);
    cr_assert_eq(parse("", &e, &err), REQSIGN_E_DIGEST_NO_KNOWN_ALG);
    cr_assert_eq(e.algs, 0);
}

Test(digest, parse_wrong_lengths_and_types)
{
    struct reqsign_digest_expect e;
    struct reqsign_error err;

    /* sha-512 bytes under sha-256 and the reverse; offset = the opening ':' */
    cr_assert_eq(parse("sha-256=:" HELLO_512 ":", &e, &err), REQSIGN_E_DIGEST_MALFORMED);
    cr_assert_eq(err.offset, 8);
    cr_assert_eq(e.algs, 0);
    cr_assert_eq(parse("sha-512=:" HELLO_256 ":", &e, &err), REQSIGN_E_DIGEST_MALFORMED);
    cr_assert_eq(err.offset, 8);
    cr_assert_eq(parse("sha-256=::", &e, &err), REQSIGN_E_DIGEST_MALFORMED);
    cr_assert_eq(err.offset, 8);
    /* 31 bytes, after an unknown member */
    cr_assert_eq(parse("md5=:Sd/dVLAcvNLSq16eXua5uQ==:, sha-256=:"
                       "RK/0qy18MlBSVnWgjwz6lZEWjP/lF5HF9bvEF8FabA==:",
                       &e, &err),
                 REQSIGN_E_DIGEST_MALFORMED);
    cr_assert_eq(err.offset, 40);
    /* one good, one bad: the whole field fails */
    cr_assert_eq(parse("sha-256=:" HELLO_256 ":, sha-512=:AAAA:", &e, &err),
                 REQSIGN_E_DIGEST_MALFORMED);
    cr_assert_eq(err.offset, 64);
    cr_assert_eq(e.algs, 0);

    /* Not a byte sequence: offset = the member's key */
    cr_assert_eq(parse("sha-256=1", &e, &err), REQSIGN_E_DIGEST_MALFORMED);
    cr_assert_eq(err.offset, 0);
    cr_assert_eq(parse("md5=1, sha-256=\"" HELLO_256 "\"", &e, &err), REQSIGN_E_DIGEST_MALFORMED);
    cr_assert_eq(err.offset, 7);
    cr_assert_eq(parse("sha-256=(:" HELLO_256 ":)", &e, &err), REQSIGN_E_DIGEST_MALFORMED);
    cr_assert_eq(err.offset, 0);
    cr_assert_eq(parse("sha-256", &e, &err), REQSIGN_E_DIGEST_MALFORMED);
    cr_assert_eq(err.offset, 0);
    cr_assert_eq(parse("sha-256=" HELLO_256, &e, &err), REQSIGN_E_DIGEST_MALFORMED);
}

Test(digest, parse_bad_syntax_offsets)
{
    static const struct {
        const char *v;
        size_t offset;
    } cases[] = {
        {"SHA-256=:" HELLO_256 ":", 0},          /* keys are lowercase */
        {"sha-256=:" HELLO_256 ": sha-512", 55}, /* missing comma */
        {"sha-256=:" HELLO_256 ":,", 55},        /* trailing comma */
        {"sha-256=:" HELLO_256 ":x", 54},        /* junk after the value */
        {"sha-256=:" HELLO_256, 53},             /* unterminated byte sequence */
        {"sha-256=:X48E9qOokq!qrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:", 19}, /* not base64 */
        {"sha-256=:" HELLO_256 ":;", 55},                                /* empty parameter */
        {"\tsha-256=:" HELLO_256 ":", 0},                                /* tab is not SP */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct reqsign_digest_expect e;
        struct reqsign_error err;
        cr_assert_eq(parse(cases[i].v, &e, &err), REQSIGN_E_DIGEST_MALFORMED, "case %zu: %s", i,
                     cases[i].v);
        cr_expect_eq(err.offset, cases[i].offset, "case %zu (%s): offset %zu, want %zu (%s)", i,
                     cases[i].v, err.offset, cases[i].offset, err.message);
        cr_assert_eq(e.algs, 0);
    }
}

Test(digest, parse_limits)
{
    struct reqsign_digest_expect e;
    struct reqsign_error err;
    size_t len = REQSIGN_CONTENT_DIGEST_IN_MAX + 1;
    char *big = malloc(len + 1);

    /* sha-256=:...: then spaces: valid syntax, but too long */
    memset(big, ' ', len);
    memcpy(big, "sha-256=:" HELLO_256 ":", 54);
    big[len] = '\0';
    cr_assert_eq(parse(big, &e, &err), REQSIGN_E_LIMIT);
    /* exactly at the limit is parsed */
    big[len - 1] = '\0';
    cr_assert_eq(parse(big, &e, &err), REQSIGN_OK);
    free(big);
}

/* ---- check ---- */

static enum reqsign_status check(const char *field, const void *body, size_t len,
                                 struct reqsign_error *err)
{
    struct reqsign_digest_expect e;
    struct reqsign_digest d;

    cr_assert_eq(parse(field, &e, err), REQSIGN_OK);
    cr_assert_eq(reqsign_digest_init(&d, e.algs, NULL), REQSIGN_OK);
    cr_assert_eq(reqsign_digest_update(&d, body, len, NULL), REQSIGN_OK);
    reqsign_error_clear(err);
    return reqsign_content_digest_check(&d, &e, err);
}

Test(digest, check_match_and_mismatch)
{
    struct reqsign_error err;

    cr_assert_eq(check("sha-256=:" HELLO_256 ":", hello, 18, &err), REQSIGN_OK);
    cr_assert_eq(check("sha-512=:" HELLO_512 ":", hello, 18, &err), REQSIGN_OK);
    cr_assert_eq(check("sha-512=:" HELLO_512 ":, sha-256=:" HELLO_256 ":", hello, 18, &err),
                 REQSIGN_OK);
    cr_assert_eq(check("sha-256=:" EMPTY_256 ":", "", 0, &err), REQSIGN_OK);

    /* the body with a trailing newline does not match */
    cr_assert_eq(check("sha-256=:" HELLO_256 ":", hello_lf, 19, &err), REQSIGN_E_DIGEST_MISMATCH);
    cr_assert_eq(err.code, REQSIGN_E_DIGEST_MISMATCH);
    cr_assert_str_eq(err.source, "Content-Digest");
    cr_assert_eq(check("sha-512=:" HELLO_512 ":", hello_lf, 19, &err), REQSIGN_E_DIGEST_MISMATCH);
    cr_assert_eq(check("sha-256=:" HELLO_256 ":", "", 0, &err), REQSIGN_E_DIGEST_MISMATCH);
}

Test(digest, check_both_algs_one_wrong)
{
    struct reqsign_error err;

    cr_assert_eq(check("sha-512=:" HELLO_512 ":, sha-256=:" HELLO_LF_256 ":", hello, 18, &err),
                 REQSIGN_E_DIGEST_MISMATCH);
    cr_assert_not_null(strstr(err.message, "sha-256"), "%s", err.message);
    cr_assert_eq(check("sha-512=:" HELLO_LF_512 ":, sha-256=:" HELLO_256 ":", hello, 18, &err),
                 REQSIGN_E_DIGEST_MISMATCH);
    cr_assert_not_null(strstr(err.message, "sha-512"), "%s", err.message);
    cr_assert_eq(check("sha-512=:" HELLO_LF_512 ":, sha-256=:" HELLO_LF_256 ":", hello, 18, &err),
                 REQSIGN_E_DIGEST_MISMATCH);
}

Test(digest, check_context_must_cover_expected)
{
    struct reqsign_digest_expect e;
    struct reqsign_digest d;
    struct reqsign_error err;

    cr_assert_eq(parse("sha-512=:" HELLO_512 ":", &e, &err), REQSIGN_OK);
    cr_assert_eq(reqsign_digest_init(&d, REQSIGN_DIGEST_SHA256, NULL), REQSIGN_OK);
    reqsign_error_clear(&err);
    cr_assert_eq(reqsign_content_digest_check(&d, &e, &err), REQSIGN_E_INVALID_ARG);
    cr_assert_null(d.ctx[0]); /* released */

    /* A context with more algorithms than expected is fine. */
    cr_assert_eq(reqsign_digest_init(&d, REQSIGN_DIGEST_SHA256 | REQSIGN_DIGEST_SHA512, NULL),
                 REQSIGN_OK);
    cr_assert_eq(reqsign_digest_update(&d, hello, 18, NULL), REQSIGN_OK);
    reqsign_error_clear(&err);
    cr_assert_eq(reqsign_content_digest_check(&d, &e, &err), REQSIGN_OK);
}
