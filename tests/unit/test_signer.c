/* Suite signer: what is signed, from URLs as libcurl sends them. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <reqsign/base.h>
#include <reqsign/base64.h>
#include <reqsign/curl.h>
#include <reqsign/signer.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

static struct reqsign_signer *rfc_signer(const char *keyid)
{
    struct reqsign_error err;
    reqsign_error_clear(&err);
    char *path = tu_path("spec/vectors/keys/test-key-ed25519.pem");
    struct reqsign_signer_opts o = {
        .key_file = path, .keyid = keyid, .key_flags = REQSIGN_KEY_ALLOW_PERMISSIVE};
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
    struct reqsign_sign_input in = {.method = method,
                                    .url = url,
                                    .body = body,
                                    .body_len = body ? strlen(body) : 0,
                                    .created = 1618884473,
                                    .nonce = "abcdefghijklmnop"};
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
    struct reqsign_signer_opts o = {
        .key_file = path, .path_as_is = 1, .key_flags = REQSIGN_KEY_ALLOW_PERMISSIVE};
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
    static const char *bad[] = {"ftp://example.com/",
                                "https://exa mple.com/",
                                "https://example.com/a b",
                                "https://example.com/\x01",
                                "https://example.com/caf\xc3\xa9",
                                "not a url",
                                "",
                                "https://",
                                "https://example.com:99999/"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct reqsign_signed out;
        struct reqsign_error err;
        reqsign_error_clear(&err);
        struct reqsign_sign_input in = {.method = "GET", .url = bad[i]};
        enum reqsign_status st = reqsign_signer_sign(s, &in, &out, &err);
        cr_expect(st == REQSIGN_E_URL || st == REQSIGN_E_LIMIT, "%s: %s", bad[i],
                  reqsign_errname(st));
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
        cr_assert_eq(reqsign_base64url_decode(out.nonce, 22, raw, sizeof(raw), &n, NULL),
                     REQSIGN_OK);
        cr_assert_eq(n, 16);
        for (int j = 0; j < i; j++)
            cr_assert_str_neq(seen[j], out.nonce);
        snprintf(seen[i], sizeof(seen[i]), "%s", out.nonce);
    }
    reqsign_signer_free(s);
}

/* One random nonce from @s (22 base64url characters). */
static void fresh_nonce(const struct reqsign_signer *s, char out[32])
{
    struct reqsign_signed sd;
    memset(&sd, 0, sizeof(sd));
    struct reqsign_sign_input in = {.method = "GET", .url = "https://example.com/"};
    cr_assert_eq(reqsign_signer_sign(s, &in, &sd, NULL), REQSIGN_OK);
    cr_assert_eq(strlen(sd.nonce), 22);
    memcpy(out, sd.nonce, 23);
}

static int cmp_nonce(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* Nonces come from a per-thread buffer of CSPRNG output: 8 threads x 5,000
 * signatures (far more than one buffer each) give 40,000 distinct nonces. */
#define NT 8
#define PER 5000
static struct reqsign_signer *thr_signer;
static char (*thr_nonces)[32];

static void *nonce_thread(void *arg)
{
    size_t t = (size_t)(uintptr_t)arg;
    for (size_t i = 0; i < PER; i++)
        fresh_nonce(thr_signer, thr_nonces[t * PER + i]);
    return NULL;
}

Test(signer, nonces_distinct_across_threads)
{
    thr_signer = rfc_signer(NULL);
    thr_nonces = calloc(NT * PER, sizeof(*thr_nonces));
    cr_assert_not_null(thr_nonces);
    pthread_t th[NT];
    for (size_t t = 0; t < NT; t++)
        cr_assert_eq(pthread_create(&th[t], NULL, nonce_thread, (void *)(uintptr_t)t), 0);
    for (size_t t = 0; t < NT; t++)
        pthread_join(th[t], NULL);
    qsort(thr_nonces, NT * PER, sizeof(*thr_nonces), cmp_nonce);
    for (size_t i = 1; i < NT * PER; i++)
        cr_assert_str_neq(thr_nonces[i - 1], thr_nonces[i], "nonce %s repeated", thr_nonces[i]);
    free(thr_nonces);
    reqsign_signer_free(thr_signer);
}

/* A forked child must not hand out the nonces buffered in its parent: after
 * the parent has drawn a nonce (its buffer now holds the next 63), parent and
 * child each draw 100 more; none may repeat. */
Test(signer, fork_does_not_repeat_buffered_nonces)
{
    struct reqsign_signer *s = rfc_signer(NULL);
    char first[32];
    fresh_nonce(s, first);
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        char n[32];
        for (int i = 0; i < 100; i++) {
            fresh_nonce(s, n);
            if (write(fds[1], n, 32) != 32)
                _exit(2);
        }
        _exit(0);
    }
    close(fds[1]);
    static char all[201][32];
    for (int i = 0; i < 100; i++)
        fresh_nonce(s, all[i]);
    for (int i = 0; i < 100; i++) {
        size_t got = 0;
        while (got < 32) {
            ssize_t r = read(fds[0], all[100 + i] + got, 32 - got);
            cr_assert_gt(r, 0, "child stopped early");
            got += (size_t)r;
        }
    }
    memcpy(all[200], first, 32);
    close(fds[0]);
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    qsort(all, 201, 32, cmp_nonce);
    for (int i = 1; i < 201; i++)
        cr_assert_str_neq(all[i - 1], all[i], "nonce %s repeated across fork", all[i]);
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
    struct reqsign_signer_opts o = {.key_file = path,
                                    .clock = fixed_clock,
                                    .clock_ctx = &t,
                                    .label = "mysig",
                                    .tag = "app-1",
                                    .expires_in = 60,
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
    cr_assert(strstr(out.signature_input, ";expires=1234567950;tag=\"app-1\"") != NULL, "%s",
              out.signature_input);
    cr_assert(strncmp(out.signature, "mysig=:", 7) == 0);
    cr_assert_str_eq(out.content_digest, "sha-512=:z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg/"
                                         "SpIdNs6c5H0NE8XYXysP+DGNKHfuwvY7kxvUdBeoGlODJ6+SfaPg==:");
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
    char a[REQSIGN_CONTENT_DIGEST_OUT_BUF], b[REQSIGN_CONTENT_DIGEST_OUT_BUF];
    size_t la, lb;
    cr_assert_eq(reqsign_content_digest_file(file, REQSIGN_DIGEST_SHA256 | REQSIGN_DIGEST_SHA512, a,
                                             sizeof(a), &la, NULL),
                 REQSIGN_OK);
    cr_assert_eq(reqsign_content_digest(REQSIGN_DIGEST_SHA256 | REQSIGN_DIGEST_SHA512, buf, n, b,
                                        sizeof(b), &lb, NULL),
                 REQSIGN_OK);
    cr_assert_str_eq(a, b);
    struct reqsign_error err;
    reqsign_error_clear(&err);
    cr_assert_eq(reqsign_content_digest_file("/nonexistent/x", 0, a, sizeof(a), &la, &err),
                 REQSIGN_E_IO);
    remove(file);
    remove(dir);
    free(buf);
    free(dir);
}

/* ---- the fast URL parser against libcurl's (client/src/url.c) ---- */

#include <reqsign/sf.h>

#include "url.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint32_t rnd(uint32_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state % n);
}

#define PICK(a) (a)[rnd(sizeof(a) / sizeof((a)[0]))]

static void gen_url(char *u, size_t cap)
{
    static const char *const schemes[] = {"http://",  "https://", "https://", "http://", "HTTP://",
                                          "Https://", "ftp://",   "http:/",   "http:",   ""};
    static const char *const users[] = {"", "", "", "", "", "", "u@", "u:p@", "@"};
    static const char *const hosts[] = {"example.com",
                                        "a.b.c",
                                        "api-v2.example.org",
                                        "x",
                                        "localhost",
                                        "EXAMPLE.com",
                                        "Example.COM",
                                        "127.0.0.1",
                                        "127.1",
                                        "0x7f.1",
                                        "1.2.3",
                                        "10",
                                        "1a.example",
                                        "a1",
                                        "[::1]",
                                        "[2001:db8::1]",
                                        "a..b",
                                        "a.",
                                        ".a",
                                        "-a",
                                        "a-",
                                        "a_b",
                                        "xn--bcher-kva.example",
                                        "%41.com",
                                        "a%2eb",
                                        "",
                                        "a.b-c.d9"};
    static const char *const ports[] = {"",       "",       "",        "",    ":",    ":80",
                                        ":443",   ":8080",  ":0",      ":00", ":080", ":65535",
                                        ":65536", ":99999", ":123456", ":1x", ":-1",  ":1"};
    static const char *const bits[] = {
        "a",   "b",   "Z",   "0",   "9", "-",  ".",     "..",  "_",      "~",  "%41",
        "%2e", "%2E", "%2F", "%7e", "%", "%4", "%zz",   "!",   "$",      "&",  "'",
        "(",   ")",   "*",   "+",   ",", ";",  "=",     ":",   "@",      "/",  "//",
        "/",   "/",   "/",   "\\",  "{", "}",  "|",     "^",   "`",      "\"", "<",
        ">",   "[",   "]",   "?",   "#", "v1", "items", "x=1", "a=b&c=d"};
    static const char *const plain_bits[] = {
        "a", "b", "Z", "0", "9", "-", "_",  "~",     "%41", "%7e",     "%2F",
        "!", "$", "&", "'", "(", ")", "*",  "+",     ",",   ";",       "=",
        ":", "@", "/", "/", "/", ".", "v1", "items", "x=1", "a=b&c=d", "?"};
    static const char *const plain_hosts[] = {
        "example.com", "a.b.c", "api-v2.example.org", "x", "localhost", "a1", "a.b-c.d9"};
    static const char *const plain_ports[] = {"", "", "", ":80", ":443", ":8080", ":1", ":65535"};
    int plain = rnd(2) == 0; /* half of them plain, with a rare odd piece */
    size_t n = 0;
#define ADD(s)                                                                                     \
    do {                                                                                           \
        const char *s_ = (s);                                                                      \
        size_t l_ = strlen(s_);                                                                    \
        if (n + l_ < cap) {                                                                        \
            memcpy(u + n, s_, l_);                                                                 \
            n += l_;                                                                               \
        }                                                                                          \
    } while (0)
    ADD(plain ? (rnd(2) ? "https://" : "http://") : PICK(schemes));
    ADD(plain ? "" : PICK(users));
    ADD(plain ? PICK(plain_hosts) : PICK(hosts));
    ADD(plain ? PICK(plain_ports) : PICK(ports));
    if (plain || rnd(8) != 0) {
        ADD("/");
        for (uint32_t i = rnd(12); i > 0; i--)
            ADD(plain && rnd(40) != 0 ? PICK(plain_bits) : PICK(bits));
    }
    if (rnd(3) == 0) {
        ADD("?");
        for (uint32_t i = rnd(8); i > 0; i--)
            ADD(plain && rnd(40) != 0 ? PICK(plain_bits) : PICK(bits));
    }
    if (rnd(20) == 0)
        ADD("#frag");
#undef ADD
    u[n] = '\0';
}

static void expect_same_as_curl(const char *url)
{
    struct reqsign__url_parts *f = malloc(sizeof(*f)), *c = malloc(sizeof(*c));
    cr_assert(f != NULL && c != NULL);
    cr_assert_eq(reqsign__url_fast(url, strlen(url), f), 1, "fast parser refused %s", url);
    for (int as_is = 0; as_is < 2; as_is++) {
        struct reqsign_error err;
        reqsign_error_clear(&err);
        cr_assert_eq(reqsign__url_curl(url, as_is, c, &err), REQSIGN_OK,
                     "fast parser took %s, libcurl refuses it: %s", url, err.message);
        cr_assert_str_eq(f->scheme, c->scheme, "%s", url);
        cr_assert_eq(f->scheme_len, c->scheme_len, "%s", url);
        cr_assert_str_eq(f->authority, c->authority, "%s", url);
        cr_assert_eq(f->authority_len, c->authority_len, "%s", url);
        cr_assert_str_eq(f->target, c->target, "%s (path_as_is %d)", url, as_is);
        cr_assert_eq(f->target_len, c->target_len, "%s", url);
        cr_assert_eq(f->path_len, c->path_len, "%s", url);
    }
    free(f);
    free(c);
}

/* Every URL the fast parser takes, libcurl parses to the same scheme,
 * authority, path and query (with and without path_as_is): 200,000 generated
 * URLs mixing plain ones with every shape the fast parser must leave to
 * libcurl (userinfo, IPv4/IPv6 and uppercase hosts, odd ports, dot segments,
 * %2e, bad escapes, characters outside RFC 3986, empty query, fragments). */
Test(signer, fast_url_parser_agrees_with_libcurl)
{
    char url[512];
    size_t fast = 0, total = 200000;
    struct reqsign__url_parts *f = malloc(sizeof(*f));
    cr_assert_not_null(f);
    for (size_t i = 0; i < total; i++) {
        gen_url(url, sizeof(url));
        if (reqsign__url_fast(url, strlen(url), f)) {
            expect_same_as_curl(url);
            fast++;
        }
    }
    free(f);
    cr_log_info("fast URL parser took %zu of %zu generated URLs", fast, total);
    /* both paths are exercised */
    cr_assert_gt(fast, total / 5, "only %zu of %zu URLs took the fast path", fast, total);
    cr_assert_lt(fast, total / 2, "%zu of %zu URLs took the fast path", fast, total);

    /* the common shapes take it */
    static const char *const plain[] = {
        "https://api.example.com/v1/items?limit=10&cursor=abc",
        "http://localhost:8080/",
        "https://a.example/x/y/z",
        "https://svc-1.internal:65535/a%20b/c;d=e?q=%41&r=/s?t",
        "http://h/@:!$&'()*+,;=-._~",
    };
    for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++)
        expect_same_as_curl(plain[i]);
    /* and these do not (libcurl would change them, or might) */
    static const char *const left[] = {"https://EXAMPLE.com/",
                                       "https://127.1/",
                                       "https://[::1]/",
                                       "https://u@h/",
                                       "https://h/a/../b",
                                       "https://h/a/./b",
                                       "https://h/.well-known/x",
                                       "https://h/%2e%2e/x",
                                       "https://h",
                                       "https://h?q",
                                       "https://h/p?",
                                       "https://h/p#f",
                                       "https://h:/p",
                                       "https://h:080/p",
                                       "https://h:0/",
                                       "https://h:65536/",
                                       "https://h/a\\b",
                                       "https://h/{x}",
                                       "HTTPS://h/",
                                       "https://a..b/",
                                       "https://a./",
                                       "https://h/a b",
                                       "https://h/\xc3\xa9",
                                       "https://h/a\tb",
                                       "https://h/?q=\x7f",
                                       "https://h\x01/"};
    struct reqsign__url_parts *g = malloc(sizeof(*g));
    cr_assert_not_null(g);
    for (size_t i = 0; i < sizeof(left) / sizeof(left[0]); i++)
        cr_expect_eq(reqsign__url_fast(left[i], strlen(left[i]), g), 0, "%s", left[i]);
    free(g);
}

/* The signer writes Signature-Input directly; it must be exactly the RFC 8941
 * serialisation of what it means: parse it and serialise it again. Keyids and
 * tags with quotes and backslashes, expires, labels. */
Test(signer, signature_input_is_canonical_sf)
{
    static const char *const keyids[] = {"k",      "a\"b",  "back\\slash",
                                         "\"\\\"", "x y z", "!#$%&'()*+,-./:;<=>?@[]^_`{|}~"};
    static const char *const tags[] = {NULL, "t", "q\"uote", "b\\s"};
    char *path = tu_path("spec/vectors/keys/test-key-ed25519.pem");
    size_t n = 0;
    for (size_t k = 0; k < sizeof(keyids) / sizeof(keyids[0]); k++) {
        for (size_t t = 0; t < sizeof(tags) / sizeof(tags[0]); t++) {
            for (int64_t exp = 0; exp <= 300; exp += 300) {
                struct reqsign_error err;
                reqsign_error_clear(&err);
                struct reqsign_signer_opts o = {.key_file = path,
                                                .keyid = keyids[k],
                                                .tag = tags[t],
                                                .expires_in = exp,
                                                .label = t % 2 ? "my-sig.1" : NULL,
                                                .key_flags = REQSIGN_KEY_ALLOW_PERMISSIVE};
                struct reqsign_signer *s = reqsign_signer_new(&o, &err);
                cr_assert_not_null(s, "%s", err.message);
                struct reqsign_signed out;
                memset(&out, 0, sizeof(out));
                struct reqsign_sign_input in = {.method = "GET",
                                                .url = "https://h/",
                                                .created = 1700000000 + (int64_t)n,
                                                .nonce = t == 3 ? "n\"o\\nce-0123" : NULL};
                cr_assert_eq(reqsign_signer_sign(s, &in, &out, &err), REQSIGN_OK, "%s",
                             err.message);
                struct reqsign_sf_member m[2];
                struct reqsign_sf_item it[8];
                struct reqsign_sf_param pa[16];
                struct reqsign_sf_parsed p = {m, 2, 0, it, 8, 0, pa, 16, 0};
                const char *si = out.signature_input;
                cr_assert_eq(reqsign_sf_parse_dict(si, strlen(si), &p, &err), REQSIGN_OK, "%s: %s",
                             si, err.message);
                cr_assert_eq(p.n_members, 1);
                char again[1024];
                size_t pos = m[0].key.len + 1;
                memcpy(again, si, pos);
                cr_assert_eq(
                    reqsign_sf_write_member_value(&p, &m[0], again, sizeof(again) - 1, &pos),
                    REQSIGN_OK);
                again[pos] = '\0';
                cr_assert_str_eq(again, si);
                /* the base's @signature-params line is the same text */
                cr_assert_not_null(strstr(si, keyids[k][0] == '"' ? "keyid=\"\\\"" : "keyid=\""));
                reqsign_signer_free(s);
                n++;
            }
        }
    }
    cr_assert_eq(n, 6 * 4 * 2);
    free(path);
}

/* Issue 12 item 13 (spec section 3.3): a URL with an empty or missing
 * authority is refused with `url`, by the signer, its libcurl parser and the
 * libcurl glue; libcurl alone reads "https:///adcp/x" as host "adcp". */
Test(signer, url_without_authority_refused)
{
    struct reqsign_signer *s = rfc_signer(NULL);
    static const char *const bad[] = {
        "https:///path",  "https:///adcp/x", "https:/host/p",  "http:host/p",
        "http://",        "https://",        "http:///",       "HTTPS:///x",
        "Http:/h/p",      "https:////h/p",   "http://user@/x", "http://u:p@/x",
        "http://:8080/x", "http://?q=1",     "http://#f",      "https://:/x",
    };
    CURL *h = curl_easy_init();
    cr_assert_not_null(h);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct reqsign_signed out;
        struct reqsign_error err;
        reqsign_error_clear(&err);
        struct reqsign_sign_input in = {.method = "GET", .url = bad[i]};
        cr_expect_eq(reqsign_signer_sign(s, &in, &out, &err), REQSIGN_E_URL, "sign %s: %s", bad[i],
                     err.message);
        struct reqsign__url_parts u;
        reqsign_error_clear(&err);
        cr_expect_eq(reqsign__url_curl(bad[i], 0, &u, &err), REQSIGN_E_URL, "url_curl %s", bad[i]);
        struct reqsign_curl_request r = {.method = "GET", .url = bad[i]};
        struct curl_slist *hdrs = NULL;
        reqsign_error_clear(&err);
        cr_expect_eq(reqsign_curl_prepare(s, h, &r, &hdrs, NULL, &err), REQSIGN_E_URL,
                     "curl_prepare %s: %s", bad[i], err.message);
        curl_slist_free_all(hdrs);
    }
    /* what is next to them still signs: userinfo, an empty port, upper-case scheme */
    static const char *const good[] = {"http://u:p@host/x", "https://host:/x", "HTTPS://Host/x",
                                       "http://[::1]:8080/x"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        struct reqsign_signed out;
        struct reqsign_error err;
        reqsign_error_clear(&err);
        struct reqsign_sign_input in = {.method = "GET", .url = good[i]};
        cr_expect_eq(reqsign_signer_sign(s, &in, &out, &err), REQSIGN_OK, "sign %s: %s", good[i],
                     err.message);
    }
    curl_easy_cleanup(h);
    reqsign_signer_free(s);
}

/* Generated requests for signer_base_equals_base_build (rnd(): the fixed-seed xorshift above). */
/* Append @len characters drawn from @set to @p (NUL-terminated); returns the end. */
static char *gen_chars(char *p, const char *set, size_t len)
{
    size_t n = strlen(set);
    for (size_t i = 0; i < len; i++)
        *p++ = set[rnd((uint32_t)n)];
    *p = '\0';
    return p;
}

/* A printable ASCII string of 1..@max characters with no leading or trailing SP. */
static void gen_printable(char *out, size_t max)
{
    size_t len = 1 + rnd((uint32_t)max);
    for (size_t i = 0; i < len; i++)
        out[i] = (char)(i == 0 || i == len - 1 ? 0x21 + rnd(0x5e) : 0x20 + rnd(0x5f));
    out[len] = '\0';
}

/* The signer writes the profile's signature base itself (a fast path, see
 * profile_base() in client/src/signer.c); the verifier builds it with
 * reqsign_base_build(). Over generated requests (methods, schemes,
 * authorities with and without ports, IP literals, paths, queries, caller and
 * computed digests, labels, keyids, nonces, created, expires, tags) the base
 * the signer signed must be, byte for byte, the one reqsign_base_build() gives
 * for the request as the server sees it: the target as it stands in the URL,
 * Host, and the Signature-Input and Content-Digest fields sent. */
Test(signer, signer_base_equals_base_build)
{
    static const char *const methods[] = {"GET",    "POST",     "PUT",
                                          "DELETE", "PATCH",    "OPTIONS",
                                          "HEAD",   "M-SEARCH", "x!#$%&'*+-.^_`|~9"};
    static const char *const hosts[] = {"127.0.0.1", "[::1]", "[2001:db8::7]", "10.0.0.255"};
    static const char *const pct[] = {"%20", "%2F", "%C3%A9", "%25", "%3f", "%7E"};
    static const char alnum[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    static const char pchar[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                                "-._~!$&'()*+,;=:@";
    static const char qchar[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                                "-._~!$&'()*+,;=:@/?";
    enum { NSIGNERS = 16, NCASES = 3000 };
    struct reqsign_signer *signers[NSIGNERS];
    struct reqsign_error err;
    uint8_t seed[32];

    for (int i = 0; i < NSIGNERS; i++) {
        char label[16], keyid[64], tag[64];
        for (size_t k = 0; k < sizeof(seed); k++)
            seed[k] = (uint8_t)rnd(256);
        gen_chars(gen_chars(label, "abcdefghijklmnopqrstuvwxyz*", 1),
                  "abcdefghijklmnopqrstuvwxyz0123456789_-.*", rnd(12));
        gen_printable(keyid, 60);
        gen_printable(tag, 60);
        struct reqsign_signer_opts o = {.key_data = seed,
                                        .key_len = sizeof(seed),
                                        .key_flags = REQSIGN_KEY_RAW_PRIVATE,
                                        .keyid = rnd(4) != 0 ? keyid : NULL,
                                        .label = rnd(2) != 0 ? label : NULL,
                                        .tag = rnd(3) == 0 ? tag : NULL,
                                        .expires_in = rnd(2) != 0 ? (int64_t)rnd(100000) : 0,
                                        .digest_algs = 1u + rnd(3)};
        reqsign_error_clear(&err);
        signers[i] = reqsign_signer_new(&o, &err);
        cr_assert_not_null(signers[i], "signer %d: %s", i, err.message);
    }
    for (int c = 0; c < NCASES; c++) {
        const struct reqsign_signer *s = signers[rnd(NSIGNERS)];
        int https = rnd(2) != 0;
        char authority[128], target[1024], url[1300], digest[128], nonce[80], body[64];
        char *p = authority;

        /* authority: a reg-name in mixed case or an IP literal, with or without a port */
        if (rnd(5) == 0) {
            p += snprintf(p, 40, "%s", hosts[rnd(4)]);
        } else {
            int labels = 1 + (int)rnd(3);
            for (int l = 0; l < labels; l++) { /* a letter first: not a numeric IPv4 form */
                p = gen_chars(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", 1);
                p = gen_chars(p, alnum, rnd(10));
                if (rnd(4) == 0)
                    p = gen_chars(p, "-", 1);
                p = gen_chars(p, alnum, 1);
                if (l + 1 < labels)
                    p = gen_chars(p, ".", 1);
            }
        }
        switch (rnd(4)) {
        case 0:
            snprintf(p, 16, ":%u", 1 + rnd(65535));
            break;
        case 1:
            snprintf(p, 16, ":%s", https ? "443" : "80");
            break;
        default:
            break;
        }
        /* path: segments of pchar and percent-encodings (no dot segments), or none */
        p = target;
        int segs = (int)rnd(5);
        for (int k = 0; k < segs; k++) {
            p = gen_chars(p, "/", 1);
            p = gen_chars(p, pchar, rnd(8));
            if (rnd(3) == 0)
                p += snprintf(p, 8, "%s", pct[rnd(6)]);
            if (rnd(3) == 0)
                p = gen_chars(p, pchar, 1 + rnd(4));
            const char *seg = strrchr(target, '/');
            if (strcmp(seg, "/.") == 0 || strcmp(seg, "/..") == 0)
                p = gen_chars(p, alnum, 1); /* not a dot segment */
        }
        if (segs == 0 && rnd(2) == 0)
            p = gen_chars(p, "/", 1);
        /* query: none, empty, or name=value pairs */
        switch (rnd(3)) {
        case 0:
            break;
        case 1:
            p = gen_chars(p, "?", 1);
            break;
        default:
            p = gen_chars(p, "?", 1);
            for (int k = (int)rnd(4); k >= 0; k--) {
                p = gen_chars(p, qchar, rnd(10));
                p = gen_chars(p, "=", 1);
                p = gen_chars(p, qchar, rnd(10));
                if (rnd(3) == 0)
                    p += snprintf(p, 8, "%s", pct[rnd(6)]);
                if (k > 0)
                    p = gen_chars(p, "&", 1);
            }
        }
        snprintf(url, sizeof(url), "%s://%s%s", https ? "https" : "http", authority, target);

        gen_printable(digest, 100);
        gen_printable(nonce, 64);
        if (strlen(nonce) < REQSIGN_NONCE_IN_MIN)
            snprintf(nonce, sizeof(nonce), "nonce-%u", rnd(1000000));
        gen_chars(body, pchar, rnd(60));
        struct reqsign_sign_input in = {.method = methods[rnd(9)],
                                        .url = url,
                                        .body = body,
                                        .body_len = strlen(body),
                                        .content_digest = rnd(2) != 0 ? digest : NULL,
                                        .created = rnd(2) != 0 ? (int64_t)rnd(2000000000) : 0,
                                        .nonce = rnd(4) != 0 ? nonce : NULL};
        struct reqsign_signed out;
        char signed_base[4096], built[4096];
        memset(&out, 0, sizeof(out));
        out.base_buf = signed_base;
        out.base_cap = sizeof(signed_base);
        reqsign_error_clear(&err);
        cr_assert_eq(reqsign_signer_sign(s, &in, &out, &err), REQSIGN_OK, "case %d %s %s: %s", c,
                     in.method, url, err.message);

        /* the request as the server receives it */
        struct reqsign_sf_member members[2];
        struct reqsign_sf_item items[8];
        struct reqsign_sf_param params[16];
        struct reqsign_sf_parsed si = {members, 2, 0, items, 8, 0, params, 16, 0};
        cr_assert_eq(
            reqsign_sf_parse_dict(out.signature_input, strlen(out.signature_input), &si, NULL),
            REQSIGN_OK, "case %d: %s", c, out.signature_input);
        cr_assert_eq(si.n_members, 1);
        struct reqsign_header h[1] = {
            {{"Content-Digest", 14}, {out.content_digest, strlen(out.content_digest)}}};
        char sent_target[1100]; /* "http://h" and "http://h?q" are sent with the path "/" */
        snprintf(sent_target, sizeof(sent_target), "%s%s", target[0] == '/' ? "" : "/", target);
        struct reqsign_request req = {{in.method, strlen(in.method)},
                                      {https ? "https" : "http", https ? 5u : 4u},
                                      {authority, strlen(authority)},
                                      {sent_target, strlen(sent_target)},
                                      h,
                                      1};
        size_t built_len = 0;
        reqsign_error_clear(&err);
        cr_assert_eq(
            reqsign_base_build(&req, &si, &si.members[0], built, sizeof(built), &built_len, &err),
            REQSIGN_OK, "case %d %s: %s", c, url, err.message);
        cr_assert(out.base_len == built_len && memcmp(signed_base, built, built_len) == 0,
                  "case %d %s %s: the signer signed\n%.*s\nreqsign_base_build gives\n%.*s", c,
                  in.method, url, (int)out.base_len, signed_base, (int)built_len, built);
    }
    for (int i = 0; i < NSIGNERS; i++)
        reqsign_signer_free(signers[i]);
}
