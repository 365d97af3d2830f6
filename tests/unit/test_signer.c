/* Suite signer: what is signed, from URLs as libcurl sends them. */
#include <criterion/criterion.h>
#include <reqsign/base64.h>
#include <reqsign/signer.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static struct reqsign_signer *rfc_signer(const char *keyid)
{
    struct reqsign_error err;
    reqsign_error_clear(&err);
    char *path = tu_path("spec/vectors/keys/test-key-ed25519.pem");
    struct reqsign_signer_opts o = {.key_file = path, .keyid = keyid,
                                    .key_flags = REQSIGN_KEY_ALLOW_PERMISSIVE};
    struct reqsign_signer *s = reqsign_signer_new(&o, &err);
    cr_assert_not_null(s, "%s", err.message);
    free(path);
    return s;
}

static void sign_base(const struct reqsign_signer *s, const char *method, const char *url,
                      const char *body, char *base, size_t cap, struct reqsign_signed *out)
{
    struct reqsign_error err;
    reqsign_error_clear(&err);
    memset(out, 0, sizeof(*out));
    out->base_buf = base;
    out->base_cap = cap - 1;
    struct reqsign_sign_input in = {.method = method, .url = url, .body = body,
                                    .body_len = body ? strlen(body) : 0,
                                    .created = 1618884473, .nonce = "abcdefghijklmnop"};
    cr_assert_eq(reqsign_signer_sign(s, &in, out, &err), REQSIGN_OK, "%s: %s", url, err.message);
    base[out->base_len] = '\0';
}

Test(signer, exact_fields_and_base)
{
    struct reqsign_signer *s = rfc_signer("test-key-ed25519");
    char base[2048];
    struct reqsign_signed out;
    sign_base(s, "POST", "https://example.com/foo?param=Value&Pet=dog", "{\"hello\": \"world\"}",
              base, sizeof(base), &out);
    cr_assert_str_eq(out.content_digest, "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:");
    cr_assert_str_eq(out.signature_input,
                     "sig1=(\"@method\" \"@authority\" \"@path\" \"@query\" \"content-digest\");"
                     "created=1618884473;nonce=\"abcdefghijklmnop\";keyid=\"test-key-ed25519\";"
                     "alg=\"ed25519\"");
    cr_assert_str_eq(base,
                     "\"@method\": POST\n"
                     "\"@authority\": example.com\n"
                     "\"@path\": /foo\n"
                     "\"@query\": ?param=Value&Pet=dog\n"
                     "\"content-digest\": sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:\n"
                     "\"@signature-params\": (\"@method\" \"@authority\" \"@path\" \"@query\" "
                     "\"content-digest\");created=1618884473;nonce=\"abcdefghijklmnop\";"
                     "keyid=\"test-key-ed25519\";alg=\"ed25519\"");
    cr_assert_eq(out.n_headers, 3);
    cr_assert(strncmp(out.signature, "sig1=:", 6) == 0);
    cr_assert_eq(strlen(out.signature), 6 + 88 + 1);
    /* deterministic: same input, same signature */
    struct reqsign_signed again;
    char base2[2048];
    sign_base(s, "POST", "https://example.com/foo?param=Value&Pet=dog", "{\"hello\": \"world\"}",
              base2, sizeof(base2), &again);
    cr_assert_str_eq(out.signature, again.signature);
    reqsign_signer_free(s);
}

Test(signer, urls_as_libcurl_sends_them)
{
    static const struct {
        const char *url, *authority, *path, *query;
    } cases[] = {
        {"https://example.com", "example.com", "/", "?"},
        {"https://example.com/", "example.com", "/", "?"},
        {"https://Example.COM:443/a", "example.com", "/a", "?"},
        {"http://example.com:80/a", "example.com", "/a", "?"},
        {"http://example.com:443/a", "example.com:443", "/a", "?"},
        {"https://example.com:8443/a?b=c", "example.com:8443", "/a", "?b=c"},
        {"https://[2001:db8::1]:8443/x", "[2001:db8::1]:8443", "/x", "?"},
        {"https://example.com/a/./b/../c", "example.com", "/a/c", "?"},
        {"https://example.com/a%2Fb%20c", "example.com", "/a%2Fb%20c", "?"},
        {"https://example.com/p?a=1&b=%20+x", "example.com", "/p", "?a=1&b=%20+x"},
        {"https://example.com/p#frag", "example.com", "/p", "?"},
        {"https://user:pw@example.com/p", "example.com", "/p", "?"},
    };
    struct reqsign_signer *s = rfc_signer(NULL);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char base[2048], want[512];
        struct reqsign_signed out;
        sign_base(s, "GET", cases[i].url, NULL, base, sizeof(base), &out);
        snprintf(want, sizeof(want), "\"@authority\": %s\n\"@path\": %s\n\"@query\": %s\n",
                 cases[i].authority, cases[i].path, cases[i].query);
        cr_expect(strstr(base, want) != NULL, "%s:\n%s\nwant:\n%s", cases[i].url, base, want);
    }
    reqsign_signer_free(s);
}

Test(signer, path_as_is_keeps_dot_segments)
{
    struct reqsign_error err;
    char *path = tu_path("spec/vectors/keys/test-key-ed25519.pem");
    struct reqsign_signer_opts o = {.key_file = path, .path_as_is = 1,
                                    .key_flags = REQSIGN_KEY_ALLOW_PERMISSIVE};
    struct reqsign_signer *s = reqsign_signer_new(&o, &err);
    free(path);
    cr_assert_not_null(s);
    char base[2048];
    struct reqsign_signed out;
    sign_base(s, "GET", "https://example.com/a/./b/../c", NULL, base, sizeof(base), &out);
    cr_assert(strstr(base, "\"@path\": /a/./b/../c\n") != NULL, "%s", base);
    reqsign_signer_free(s);
}

Test(signer, bad_urls_and_inputs_rejected)
{
    struct reqsign_signer *s = rfc_signer(NULL);
    static const char *bad[] = {"ftp://example.com/", "https://exa mple.com/", "https://example.com/a b",
                                "https://example.com/\x01", "https://example.com/caf\xc3\xa9",
                                "not a url", "", "https://", "https://example.com:99999/"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct reqsign_signed out;
        struct reqsign_error err;
        reqsign_error_clear(&err);
        struct reqsign_sign_input in = {.method = "GET", .url = bad[i]};
        enum reqsign_status st = reqsign_signer_sign(s, &in, &out, &err);
        cr_expect(st == REQSIGN_E_URL || st == REQSIGN_E_LIMIT, "%s: %s", bad[i], reqsign_errname(st));
        cr_expect(err.message[0] != '\0');
    }
    struct reqsign_signed out;
    struct reqsign_sign_input in = {.method = "GE T", .url = "https://example.com/"};
    cr_assert_eq(reqsign_signer_sign(s, &in, &out, NULL), REQSIGN_E_INVALID_ARG);
    in.method = "GET";
    in.nonce = "short";
    cr_assert_eq(reqsign_signer_sign(s, &in, &out, NULL), REQSIGN_E_INVALID_ARG);
    reqsign_signer_free(s);
}

Test(signer, random_nonces_are_fresh_and_well_formed)
{
    struct reqsign_signer *s = rfc_signer(NULL);
    char seen[64][32];
    for (int i = 0; i < 64; i++) {
        struct reqsign_signed out;
        memset(&out, 0, sizeof(out));
        struct reqsign_sign_input in = {.method = "GET", .url = "https://example.com/"};
        cr_assert_eq(reqsign_signer_sign(s, &in, &out, NULL), REQSIGN_OK);
        cr_assert_eq(strlen(out.nonce), 22);
        uint8_t raw[32];
        size_t n;
        cr_assert_eq(reqsign_base64url_decode(out.nonce, 22, raw, sizeof(raw), &n, NULL), REQSIGN_OK);
        cr_assert_eq(n, 16);
        for (int j = 0; j < i; j++)
            cr_assert_str_neq(seen[j], out.nonce);
        snprintf(seen[i], sizeof(seen[i]), "%s", out.nonce);
    }
    reqsign_signer_free(s);
}

static int64_t fixed_clock(void *ctx)
{
    return *(int64_t *)ctx;
}

Test(signer, clock_injected_and_options)
{
    int64_t t = 1234567890;
    struct reqsign_error err;
    char *path = tu_path("spec/vectors/keys/test-key-ed25519.pem");
    struct reqsign_signer_opts o = {.key_file = path, .clock = fixed_clock, .clock_ctx = &t,
                                    .label = "mysig", .tag = "app-1", .expires_in = 60,
                                    .digest_algs = REQSIGN_DIGEST_SHA512,
                                    .key_flags = REQSIGN_KEY_ALLOW_PERMISSIVE};
    struct reqsign_signer *s = reqsign_signer_new(&o, &err);
    cr_assert_not_null(s);
    struct reqsign_signed out;
    memset(&out, 0, sizeof(out));
    struct reqsign_sign_input in = {.method = "GET", .url = "https://example.com/"};
    cr_assert_eq(reqsign_signer_sign(s, &in, &out, NULL), REQSIGN_OK);
    cr_assert_eq(out.created, t);
    cr_assert(strncmp(out.signature_input, "mysig=(", 7) == 0);
    cr_assert(strstr(out.signature_input, ";created=1234567890;") != NULL);
    cr_assert(strstr(out.signature_input, ";expires=1234567950;tag=\"app-1\"") != NULL, "%s", out.signature_input);
    cr_assert(strncmp(out.signature, "mysig=:", 7) == 0);
    cr_assert_str_eq(out.content_digest,
                     "sha-512=:z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg/SpIdNs6c5H0NE8XYXysP+DGNKHfuwvY7kxvUdBeoGlODJ6+SfaPg==:");
    reqsign_signer_free(s);

    o.label = "Bad";
    reqsign_error_clear(&err);
    cr_assert_null(reqsign_signer_new(&o, &err));
    cr_assert_eq(err.code, REQSIGN_E_INVALID_ARG);
    o.label = NULL;
    o.key_file = NULL;
    reqsign_error_clear(&err);
    cr_assert_null(reqsign_signer_new(&o, &err));
    free(path);
}

Test(signer, public_key_refused)
{
    struct reqsign_error err;
    reqsign_error_clear(&err);
    char *path = tu_path("spec/vectors/keys/test-key-ed25519.pub.pem");
    struct reqsign_signer_opts o = {.key_file = path};
    cr_assert_null(reqsign_signer_new(&o, &err));
    cr_assert_eq(err.code, REQSIGN_E_KEY_NOT_PRIVATE, "%s", reqsign_errname(err.code));
    free(path);
}

Test(signer, streamed_file_digest_equals_memory)
{
    char *dir = tu_tmpdir();
    char file[512];
    snprintf(file, sizeof(file), "%s/body", dir);
    FILE *f = fopen(file, "wb");
    size_t n = 300000;
    char *buf = malloc(n);
    for (size_t i = 0; i < n; i++)
        buf[i] = (char)(i * 31 + 7);
    fwrite(buf, 1, n, f);
    fclose(f);
    char a[REQSIGN_CONTENT_DIGEST_MAX], b[REQSIGN_CONTENT_DIGEST_MAX];
    size_t la, lb;
    cr_assert_eq(reqsign_content_digest_file(file, REQSIGN_DIGEST_SHA256 | REQSIGN_DIGEST_SHA512, a, sizeof(a), &la, NULL), REQSIGN_OK);
    cr_assert_eq(reqsign_content_digest(REQSIGN_DIGEST_SHA256 | REQSIGN_DIGEST_SHA512, buf, n, b, sizeof(b), &lb), REQSIGN_OK);
    cr_assert_str_eq(a, b);
    struct reqsign_error err;
    reqsign_error_clear(&err);
    cr_assert_eq(reqsign_content_digest_file("/nonexistent/x", 0, a, sizeof(a), &la, &err), REQSIGN_E_IO);
    remove(file);
    remove(dir);
    free(buf);
    free(dir);
}
