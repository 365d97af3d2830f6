/* Suite roundtrip: 1,000 generated requests signed and verified, and a
 * one-bit change of any covered part rejected. */
#include <criterion/criterion.h>
#include <reqsign/base.h>
#include <reqsign/base64.h>
#include <reqsign/signer.h>
#include <reqsign/verifier.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

static int64_t now_fn(void *ctx)
{
    (void)ctx;
    return 1700000000;
}

static struct reqsign_span S(const char *s) {
    struct reqsign_span r = {s, strlen(s)};
    return r;
}

struct gen {
    char method[16];
    char host[64];
    char authority[80];
    char target[512];
    char url[700];
    uint8_t *body;
    size_t body_len;
    char rep1[40], rep2[40];
    int cover_rep;
};

static void gen_request(struct gen *g)
{
    static const char *methods[] = {"GET",   "POST", "PUT",     "DELETE",
                                    "PATCH", "HEAD", "OPTIONS", "CUSTOM-M"};
    static const char *segs[] = {"a",         "b%20c", "%2F", "x.y", "~u",
                                 "caf%C3%A9", "1",     "Z",   "-_",  "%41"};
    static const char *qs[] = {"a=1", "b=%20", "c=x+y", "d", "e=", "f=%26", "G=H", "q=a%3Db"};
    snprintf(g->method, sizeof(g->method), "%s", methods[rnd() % 8]);
    snprintf(g->host, sizeof(g->host), "%s%u.example", (rnd() & 1) ? "Api" : "svc", rnd() % 100);
    int port = (rnd() % 3 == 0) ? 1024 + (int)(rnd() % 60000) : 0;
    if (port)
        snprintf(g->authority, sizeof(g->authority), "%s:%d", g->host, port);
    else
        snprintf(g->authority, sizeof(g->authority), "%s", g->host);
    size_t n = 0;
    int nseg = (int)(rnd() % 5);
    for (int i = 0; i < nseg; i++)
        n += (size_t)snprintf(g->target + n, sizeof(g->target) - n, "/%s", segs[rnd() % 10]);
    if (nseg == 0)
        n += (size_t)snprintf(g->target + n, sizeof(g->target) - n, "/");
    int nq = (int)(rnd() % 4);
    for (int i = 0; i < nq; i++)
        n += (size_t)snprintf(g->target + n, sizeof(g->target) - n, "%c%s", i ? '&' : '?',
                              qs[rnd() % 8]);
    snprintf(g->url, sizeof(g->url), "https://%s%s", g->authority, g->target);
    g->body_len = (rnd() % 4 == 0) ? 0 : rnd() % 65537;
    g->body = malloc(g->body_len + 1);
    for (size_t i = 0; i < g->body_len; i++)
        g->body[i] = (uint8_t)rnd();
    snprintf(g->rep1, sizeof(g->rep1), "v%u", rnd());
    snprintf(g->rep2, sizeof(g->rep2), "w%u", rnd());
    g->cover_rep = rnd() % 2;
}

/* Sign: the profile's fields from the signer; for half the requests, a second
 * signature base that also covers a repeated field, signed with the raw key. */
struct signed_req {
    struct reqsign_signed s;
    char si[2048];
    char sig[200];
};

static void sign_req(const struct reqsign_signer *signer, const struct reqsign_key *key,
                     const struct gen *g, struct signed_req *out)
{
    struct reqsign_error err;
    reqsign_error_clear(&err);
    memset(out, 0, sizeof(*out));
    struct reqsign_sign_input in = {
        .method = g->method, .url = g->url, .body = g->body, .body_len = g->body_len};
    cr_assert_eq(reqsign_signer_sign(signer, &in, &out->s, &err), REQSIGN_OK, "%s: %s", g->url,
                 err.message);
    snprintf(out->si, sizeof(out->si), "%s", out->s.signature_input);
    snprintf(out->sig, sizeof(out->sig), "%s", out->s.signature);
    if (!g->cover_rep)
        return;
    /* insert "x-rep" after "content-digest" and re-sign */
    char *p = strstr(out->si, "\"content-digest\")");
    cr_assert_not_null(p);
    char tail[1024];
    snprintf(tail, sizeof(tail), "%s", p + strlen("\"content-digest\""));
    snprintf(p, sizeof(out->si) - (size_t)(p - out->si), "\"content-digest\" \"x-rep\"%s", tail);
    struct reqsign_sf_member m[2];
    struct reqsign_sf_item it[16];
    struct reqsign_sf_param pa[32];
    struct reqsign_sf_parsed sp = {m, 2, 0, it, 16, 0, pa, 32, 0};
    cr_assert_eq(reqsign_sf_parse_dict(out->si, strlen(out->si), &sp, NULL), REQSIGN_OK);
    struct reqsign_header h[] = {{S("Content-Digest"), S(out->s.content_digest)},
                                 {S("X-Rep"), S(g->rep1)},
                                 {S("x-rep"), S(g->rep2)}};
    struct reqsign_request req = {S(g->method), S("https"), S(g->authority), S(g->target), h, 3};
    char base[4096];
    size_t blen;
    cr_assert_eq(reqsign_base_build(&req, &sp, &m[0], base, sizeof(base), &blen, &err), REQSIGN_OK,
                 "%s", err.message);
    uint8_t sig[64];
    cr_assert_eq(reqsign_key_sign(key, (const uint8_t *)base, blen, sig, NULL), REQSIGN_OK);
    char b64[100];
    size_t l;
    cr_assert_eq(reqsign_base64_encode(sig, 64, b64, sizeof(b64), &l), REQSIGN_OK);
    snprintf(out->sig, sizeof(out->sig), "sig1=:%s:", b64);
}

enum part {
    P_NONE,
    P_METHOD,
    P_AUTHORITY,
    P_TARGET,
    P_BODY,
    P_DIGEST,
    P_REP,
    P_SI,
    P_SIG,
    P_COUNT
};

static enum reqsign_status verify(const struct reqsign_verifier *v, const struct gen *g0,
                                  const struct signed_req *sr, enum part part,
                                  struct reqsign_error *err)
{
    struct gen g = *g0;
    char digest[REQSIGN_CONTENT_DIGEST_OUT_BUF], si[2048], sig[200], len[24];
    snprintf(digest, sizeof(digest), "%s", sr->s.content_digest);
    snprintf(si, sizeof(si), "%s", sr->si);
    snprintf(sig, sizeof(sig), "%s", sr->sig);
    uint8_t *body = NULL;
    char *victim = NULL;
    size_t vlen = 0, from = 0;
    switch (part) {
    case P_METHOD:
        victim = g.method;
        vlen = strlen(g.method);
        break;
    case P_AUTHORITY:
        victim = g.authority;
        vlen = strlen(g.authority);
        break;
    case P_TARGET:
        victim = g.target;
        vlen = strlen(g.target);
        break;
    case P_DIGEST:
        victim = digest;
        vlen = strlen(digest);
        from = 9;
        break;
    case P_REP:
        victim = g.rep1;
        vlen = strlen(g.rep1);
        break;
    case P_SI:
        victim = si;
        vlen = strlen(si);
        from = 5;
        break;
    case P_SIG:
        victim = sig;
        vlen = strlen(sig) - 1;
        from = 6;
        break;
    case P_BODY:
        body = malloc(g.body_len + 1);
        memcpy(body, g.body, g.body_len);
        body[rnd() % g.body_len] ^= (uint8_t)(1u << (rnd() % 8));
        g.body = body;
        break;
    default:
        break;
    }
    if (victim != NULL) {
        size_t at = from + rnd() % (vlen - from);
        /* bit 0: ASCII case folding of the host would otherwise be no change */
        victim[at] ^= (part == P_AUTHORITY) ? 1 : (char)(1u << (rnd() % 7));
        if (victim[at] == 0)
            victim[at] = '!';
    }
    struct reqsign_header h[8];
    size_t n = 0;
    h[n++] = (struct reqsign_header){S("Host"), S(g.authority)};
    if (g.body_len > 0) {
        snprintf(len, sizeof(len), "%zu", g.body_len);
        h[n++] = (struct reqsign_header){S("Content-Length"), S(len)};
    }
    h[n++] = (struct reqsign_header){S("Content-Digest"), S(digest)};
    h[n++] = (struct reqsign_header){S("X-Rep"), S(g.rep1)};
    h[n++] = (struct reqsign_header){S("Signature-Input"), S(si)};
    h[n++] = (struct reqsign_header){S("x-rep"), S(g.rep2)};
    h[n++] = (struct reqsign_header){S("Signature"), S(sig)};
    struct reqsign_request req = {S(g.method), S("https"), S(g.authority), S(g.target), h, n};
    struct reqsign_verification vs;
    reqsign_verification_init(&vs);
    reqsign_error_clear(err);
    enum reqsign_status st = reqsign_verifier_verify(v, &req, g.body, g.body_len, &vs, err);
    reqsign_verification_cleanup(&vs);
    free(body);
    return st;
}

Test(roundtrip, thousand_requests_and_one_bit_changes)
{
    struct reqsign_key *key = NULL;
    cr_assert_not_null(key = reqsign_key_generate(NULL));
    struct reqsign_signer_opts so = {.key = key, .clock = now_fn};
    struct reqsign_signer *signer = reqsign_signer_new(&so, NULL);
    cr_assert_not_null(signer);
    struct reqsign_static_key sk = {.keyid = reqsign_signer_keyid(signer)};
    reqsign_key_public_raw(key, sk.public_key);
    struct reqsign_nonce_store *ok_store = reqsign_nonce_store_memory_new(NULL, NULL);
    struct reqsign_nonce_store *bad_store = reqsign_nonce_store_memory_new(NULL, NULL);
    struct reqsign_verifier_opts vo = {.lookup = reqsign_static_key_lookup,
                                       .lookup_ctx = &sk,
                                       .nonces = ok_store,
                                       .clock = now_fn,
                                       .any_authority = 1};
    struct reqsign_verifier *v = reqsign_verifier_new(&vo, NULL);
    vo.nonces = bad_store;
    struct reqsign_verifier *vbad = reqsign_verifier_new(&vo, NULL);
    cr_assert(v && vbad);

    int rejected[P_COUNT] = {0};
    for (int i = 0; i < 1000; i++) {
        struct gen g;
        struct signed_req sr;
        struct reqsign_error err;
        gen_request(&g);
        sign_req(signer, key, &g, &sr);
        /* every covered part once, mutated; then the original, which must pass */
        for (int p = P_METHOD; p < P_COUNT; p++) {
            if (p == P_BODY && g.body_len == 0)
                continue;
            if (p == P_REP && !g.cover_rep)
                continue;
            enum reqsign_status st = verify(vbad, &g, &sr, (enum part)p, &err);
            cr_assert_neq(st, REQSIGN_OK, "request %d (%s %s): change of part %d accepted", i,
                          g.method, g.url, p);
            rejected[p]++;
        }
        enum reqsign_status st = verify(v, &g, &sr, P_NONE, &err);
        cr_assert_eq(st, REQSIGN_OK, "request %d (%s %s, body %zu): %s: %s", i, g.method, g.url,
                     g.body_len, reqsign_errname(st), err.message);
        cr_assert_eq(verify(v, &g, &sr, P_NONE, &err), REQSIGN_E_REPLAY);
        free(g.body);
    }
    for (int p = P_METHOD; p < P_COUNT; p++)
        cr_assert(rejected[p] > 100, "part %d mutated only %d times", p, rejected[p]);
    reqsign_verifier_free(v);
    reqsign_verifier_free(vbad);
    reqsign_nonce_store_free(ok_store);
    reqsign_nonce_store_free(bad_store);
    reqsign_signer_free(signer);
    reqsign_key_free(key);
}

/* Issue 12 item 14: IP-literals by the RFC 3986 grammar, the same answer on
 * both sides: the signer (URL http://LITERAL/x) and the verifier (Host:
 * LITERAL) accept exactly the IPv6 addresses, and refuse with `url` what is
 * not one, zone identifiers (RFC 6874) and IPvFuture (spec section 5.2.3).
 * An accepted one verifies end to end. */
Test(roundtrip, ip_literals_agree_on_both_sides)
{
    static const struct {
        const char *lit;
        int ok;
    } table[] = {
        {"[::1]", 1},
        {"[::]", 1},
        {"[2001:db8::1]", 1},
        {"[2001:DB8::A]", 1},
        {"[1:2:3:4:5:6:7:8]", 1},
        {"[1:2:3:4:5:6:7::]", 1},
        {"[::2:3:4:5:6:7:8]", 1},
        {"[1::8]", 1},
        {"[::ffff:192.0.2.1]", 1},
        {"[64:ff9b::255.255.255.255]", 1},
        {"[1:2:3:4:5:6:1.2.3.4]", 1},
        {"[::1]:8080", 1},
        {"[hello]", 0},
        {"[::1%]", 0},
        {"[fe80::1%25eth0]", 0},
        {"[fe80::1%eth0]", 0},
        {"[v1.x]", 0},
        {"[v7.a:b]", 0},
        {"[]", 0},
        {"[::1", 0},
        {"[1:2:3:4:5:6:7:8:9]", 0},
        {"[1:2:3:4:5:6:7]", 0},
        {"[1::2::3]", 0},
        {"[:::]", 0},
        {"[:1::]", 0},
        {"[1:]", 0},
        {"[12345::]", 0},
        {"[::1.2.3]", 0},
        {"[::1.2.3.256]", 0},
        {"[::01.2.3.4]", 0},
        {"[1.2.3.4]", 0},
        {"[1:2:3:4:5:6:7:1.2.3.4]", 0},
        {"[::g]", 0},
        {"[::1]x", 0},
    };
    struct reqsign_key *key = NULL;
    cr_assert_not_null(key = reqsign_key_generate(NULL));
    struct reqsign_signer_opts so = {.key = key, .clock = now_fn};
    struct reqsign_signer *signer = reqsign_signer_new(&so, NULL);
    cr_assert_not_null(signer);
    struct reqsign_static_key sk = {.keyid = reqsign_signer_keyid(signer)};
    reqsign_key_public_raw(key, sk.public_key);
    reqsign_key_free(key);
    struct reqsign_nonce_store *ns = reqsign_nonce_store_memory_new(NULL, NULL);
    struct reqsign_verifier_opts vo = {.lookup = reqsign_static_key_lookup,
                                       .lookup_ctx = &sk,
                                       .nonces = ns,
                                       .clock = now_fn,
                                       .any_authority = 1};
    struct reqsign_verifier *v = reqsign_verifier_new(&vo, NULL);
    cr_assert_not_null(v);

    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        const char *lit = table[i].lit;
        char url[128], norm[300];
        size_t nn;
        struct reqsign_error err;
        snprintf(url, sizeof(url), "http://%s/x", lit);

        /* the verifier's side: Host as received */
        reqsign_error_clear(&err);
        enum reqsign_status vst =
            reqsign_authority_normalize(S("http"), S(lit), norm, sizeof(norm), &nn, &err);
        cr_expect_eq(vst, table[i].ok ? REQSIGN_OK : REQSIGN_E_URL, "verifier, Host %s: %s (%s)",
                     lit, reqsign_errname(vst), err.message);

        /* the signer's side: the URL */
        struct reqsign_signed out;
        char base[1024];
        memset(&out, 0, sizeof(out));
        out.base_buf = base;
        out.base_cap = sizeof(base) - 1;
        struct reqsign_sign_input in = {.method = "GET", .url = url};
        reqsign_error_clear(&err);
        enum reqsign_status sst = reqsign_signer_sign(signer, &in, &out, &err);
        cr_expect_eq(sst, table[i].ok ? REQSIGN_OK : REQSIGN_E_URL, "signer, %s: %s (%s)", url,
                     reqsign_errname(sst), err.message);
        if (!table[i].ok || sst != REQSIGN_OK)
            continue;

        /* accepted: what was signed verifies with the Host libcurl sends, the
         * signed @authority (libcurl may rewrite a literal, e.g. its IPv4 tail) */
        base[out.base_len] = '\0';
        char host[300];
        const char *at = strstr(base, "\"@authority\": ");
        cr_assert_not_null(at, "%s", base);
        cr_assert_eq(sscanf(at + 14, "%299[^\n]", host), 1);
        reqsign_error_clear(&err);
        cr_expect_eq(reqsign_authority_normalize(S("http"), S(host), norm, sizeof(norm), &nn, &err),
                     REQSIGN_OK, "signed @authority %s: %s", host, err.message);
        struct reqsign_header h[4] = {{S("Host"), S(host)}};
        for (size_t k = 0; k < out.n_headers; k++)
            h[1 + k] = out.headers[k];
        struct reqsign_request req = {S("GET"), S("http"), S(host), S("/x"), h, 1 + out.n_headers};
        struct reqsign_verification vs;
        reqsign_verification_init(&vs);
        reqsign_error_clear(&err);
        enum reqsign_status st = reqsign_verifier_verify(v, &req, NULL, 0, &vs, &err);
        reqsign_verification_cleanup(&vs);
        cr_expect_eq(st, REQSIGN_OK, "%s: %s", url, err.message);
    }
    reqsign_verifier_free(v);
    reqsign_nonce_store_free(ns);
    reqsign_signer_free(signer);
}

/* Review 12 N4: hosts libcurl rewrites before sending ("ho%73t" -> "host",
 * "127.1" and "0x7f.0.0.1" -> "127.0.0.1") made the signer sign another
 * @authority than a verifier given the same URL uses (sig_invalid). The
 * signer refuses them (url); every host it accepts is signed as written, and
 * verifies with the Host as written. */
Test(roundtrip, rewritten_hosts_refused_by_signer)
{
    static const struct {
        const char *host;
        int ok;
    } table[] = {
        {"host", 1},
        {"127.0.0.1", 1},
        {"10.20.30.40:8080", 1},
        {"0.0.0.0", 1},
        {"255.255.255.255", 1},
        {"1a.example", 1},
        {"ho%73t", 0},
        {"%68ost", 0},
        {"a.b%2ec", 0},
        {"127.1", 0},
        {"127.0.1", 0},
        {"0x7f.0.0.1", 0},
        {"0X7F.0.0.1", 0},
        {"0177.0.0.1", 0},
        {"127.000.0.1", 0},
        {"127.0.0.01", 0},
        {"2130706433", 0},
        {"0x7f000001", 0},
        {"0x7f000001:80", 0},
        {"256.0.0.1", 0},
        /* names that only look numeric: not read as IPv4 by libcurl, signed as written
         * (the differential fuzz target found 61faaaaaaaaaaa.aa refused) */
        {"1e100.net", 1},
        {"61faaaaaaaaaaa.aa", 1},
        {"0xdead.beef", 1},
        {"1.2.3.4.5", 1},
        {"08.1.1.1", 1},
    };
    struct reqsign_key *key = NULL;
    cr_assert_not_null(key = reqsign_key_generate(NULL));
    struct reqsign_signer_opts so = {.key = key, .clock = now_fn};
    struct reqsign_signer *signer = reqsign_signer_new(&so, NULL);
    cr_assert_not_null(signer);
    struct reqsign_static_key sk = {.keyid = reqsign_signer_keyid(signer)};
    reqsign_key_public_raw(key, sk.public_key);
    reqsign_key_free(key);
    struct reqsign_nonce_store *ns = reqsign_nonce_store_memory_new(NULL, NULL);
    struct reqsign_verifier_opts vo = {.lookup = reqsign_static_key_lookup,
                                       .lookup_ctx = &sk,
                                       .nonces = ns,
                                       .clock = now_fn,
                                       .any_authority = 1};
    struct reqsign_verifier *v = reqsign_verifier_new(&vo, NULL);
    cr_assert_not_null(v);
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        const char *host = table[i].host;
        char url[128];
        struct reqsign_error err;
        snprintf(url, sizeof(url), "http://%s/x", host);
        struct reqsign_signed out;
        char base[1024];
        memset(&out, 0, sizeof(out));
        out.base_buf = base;
        out.base_cap = sizeof(base) - 1;
        struct reqsign_sign_input in = {.method = "GET", .url = url};
        reqsign_error_clear(&err);
        enum reqsign_status sst = reqsign_signer_sign(signer, &in, &out, &err);
        cr_expect_eq(sst, table[i].ok ? REQSIGN_OK : REQSIGN_E_URL, "signer, %s: %s (%s)", url,
                     reqsign_errname(sst), err.message);
        if (!table[i].ok || sst != REQSIGN_OK)
            continue;
        /* signed as written; verifies with the Host as written */
        base[out.base_len] = '\0';
        char want[200];
        snprintf(want, sizeof(want), "\"@authority\": %s\n", host);
        cr_expect_not_null(strstr(base, want), "%s: %s", url, base);
        struct reqsign_header h[4] = {{S("Host"), S(host)}};
        for (size_t k = 0; k < out.n_headers; k++)
            h[1 + k] = out.headers[k];
        struct reqsign_request req = {S("GET"), S("http"), S(host), S("/x"), h, 1 + out.n_headers};
        struct reqsign_verification vs;
        reqsign_verification_init(&vs);
        reqsign_error_clear(&err);
        enum reqsign_status st = reqsign_verifier_verify(v, &req, NULL, 0, &vs, &err);
        reqsign_verification_cleanup(&vs);
        cr_expect_eq(st, REQSIGN_OK, "%s: %s", url, err.message);
    }
    reqsign_verifier_free(v);
    reqsign_nonce_store_free(ns);
    reqsign_signer_free(signer);
}
