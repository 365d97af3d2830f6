/* fuzz_differential: sign with the signer, verify with the verifier.
 *
 * From the input: a method (A-Z), a host ([a-z0-9-] labels, any case), an
 * optional port, a path and a query made of characters libcurl sends as they
 * are (no dot segments, no percent signs), and a body. The signed request
 * must verify (REQSIGN_OK, both profiles). Then one byte of one covered part
 * is changed (method, path, query, body, Content-Digest, a Signature-Input
 * parameter value) and the verify must fail. */
#include "fuzz_common.h"

#include <string.h>

#include <reqsign/nonce.h>
#include <reqsign/signer.h>
#include <reqsign/verifier.h>

static struct reqsign_signer *signer;

static int64_t fixed_clock(void *ctx)
{
    (void)ctx;
    return FUZZ_NOW;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct reqsign_signer_opts o;
    struct reqsign_error err;
    memset(&o, 0, sizeof(o));
    o.key = fuzz_test_key();
    o.keyid = FUZZ_KEYID;
    reqsign_error_clear(&err);
    signer = reqsign_signer_new(&o, &err);
    FUZZ_CHECK(signer != NULL, "signer: %s", err.message);
    return 0;
}

/* A byte reader over the input. */
struct rd {
    const uint8_t *p;
    size_t n;
};
static unsigned take(struct rd *r)
{
    if (r->n == 0)
        return 0;
    r->n--;
    return *r->p++;
}

static size_t gen(struct rd *r, const char *alphabet, size_t min, size_t max, char *out)
{
    size_t al = strlen(alphabet);
    size_t len = min + take(r) % (max - min + 1);
    for (size_t i = 0; i < len; i++)
        out[i] = alphabet[take(r) % al];
    out[len] = '\0';
    return len;
}

struct msg {
    char method[16];
    char authority[96];
    char target[256];
    size_t path_len; /* bytes of target before '?' */
    const uint8_t *body;
    size_t body_len;
    struct reqsign_header hv[6];
    size_t nh;
};

static enum reqsign_status verify(const struct msg *m, int profile, const char *what)
{
    struct reqsign_static_key sk;
    memset(&sk, 0, sizeof(sk));
    sk.keyid = FUZZ_KEYID;
    memcpy(sk.public_key, fuzz_test_key_public, sizeof(sk.public_key));
    sk.scopes = "";
    struct reqsign_nonce_memory_opts no = {64, 64};
    struct reqsign_verifier_opts vo;
    struct reqsign_error err;
    memset(&vo, 0, sizeof(vo));
    vo.profile = profile ? REQSIGN_PROFILE_RFC9421 : REQSIGN_PROFILE_REQSIGN;
    vo.clock = fixed_clock;
    vo.lookup = reqsign_static_key_lookup;
    vo.lookup_ctx = &sk;
    vo.any_authority = 1; /* @authority from the Host the request carries */
    vo.nonces = reqsign_nonce_store_memory_new(&no, NULL);
    FUZZ_CHECK(vo.nonces != NULL, "nonce store");
    reqsign_error_clear(&err);
    struct reqsign_verifier *v = reqsign_verifier_new(&vo, &err);
    FUZZ_CHECK(v != NULL, "verifier: %s", err.message);

    struct reqsign_request req;
    memset(&req, 0, sizeof(req));
    req.method.ptr = m->method;
    req.method.len = strlen(m->method);
    req.scheme.ptr = "https";
    req.scheme.len = 5;
    req.authority.ptr = m->authority;
    req.authority.len = strlen(m->authority);
    req.target.ptr = m->target;
    req.target.len = strlen(m->target);
    req.headers = m->hv;
    req.n_headers = m->nh;
    struct reqsign_verification vs;
    reqsign_verification_init(&vs);
    reqsign_error_clear(&err);
    enum reqsign_status st = reqsign_verifier_verify(v, &req, m->body, m->body_len, &vs, &err);
    if (what == NULL)
        FUZZ_CHECK(st == REQSIGN_OK, "signed request refused (profile %d): %s: %s\n%s %s\nHost: %s",
                   profile, reqsign_errname(st), err.message, m->method, m->target, m->authority);
    else
        FUZZ_CHECK(st != REQSIGN_OK, "verify accepted a request with a changed %s (profile %d)",
                   what, profile);
    reqsign_verification_cleanup(&vs);
    reqsign_verifier_free(v);
    reqsign_nonce_store_free(vo.nonces);
    return st;
}

static const char LOWER[] = "abcdefghijklmnopqrstuvwxyz0123456789";
static const char HOST[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-";
static const char SEG[] =
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_~!$'()*+,;=:@";
static const char QRY[] =
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~!$'()*+,;=:@/?&";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct msg m;
    static struct reqsign_signed out;
    struct rd r = {data, size};
    char url[512];
    char tmp[128];

    memset(&m, 0, sizeof(m));
    gen(&r, "ABCDEFGHIJKLMNOPQRSTUVWXYZ", 1, 10, m.method);
    /* host: 1-3 labels; a label neither starts nor ends with '-' */
    size_t alen = 0;
    unsigned labels = 1 + take(&r) % 3;
    for (unsigned i = 0; i < labels; i++) {
        if (i > 0)
            m.authority[alen++] = '.';
        /* the last label starts with a letter: an all-numeric host is an
         * IPv4 address that libcurl rewrites ("82" -> "0.0.0.82") */
        if (i + 1 == labels)
            m.authority[alen++] = LOWER[take(&r) % 26];
        else
            m.authority[alen++] = LOWER[take(&r) % (sizeof(LOWER) - 1)];
        size_t l = gen(&r, HOST, 0, 12, tmp);
        memcpy(m.authority + alen, tmp, l);
        alen += l;
        m.authority[alen++] = LOWER[take(&r) % (sizeof(LOWER) - 1)];
    }
    m.authority[alen] = '\0';
    if (take(&r) & 1) {
        unsigned port = 1 + ((take(&r) << 8) | take(&r)) % 65535;
        alen += (size_t)snprintf(m.authority + alen, sizeof(m.authority) - alen, ":%u", port);
    }
    /* path: 0-4 segments, none "." or ".."-only (no '.' at all) */
    size_t tl = 0;
    unsigned segs = take(&r) % 5;
    m.target[tl++] = '/';
    for (unsigned i = 0; i < segs; i++) {
        if (i > 0)
            m.target[tl++] = '/';
        size_t l = gen(&r, SEG, 1, 16, tmp);
        memcpy(m.target + tl, tmp, l);
        tl += l;
    }
    m.path_len = tl;
    int has_query = take(&r) & 1;
    if (has_query) {
        m.target[tl++] = '?';
        size_t l = gen(&r, QRY, 1, 32, tmp);
        memcpy(m.target + tl, tmp, l);
        tl += l;
    }
    m.target[tl] = '\0';
    unsigned which = take(&r);
    m.body = r.p;
    m.body_len = r.n;
    snprintf(url, sizeof(url), "https://%s%s", m.authority, m.target);

    struct reqsign_sign_input in;
    struct reqsign_error err;
    memset(&in, 0, sizeof(in));
    in.method = m.method;
    in.url = url;
    in.body = m.body;
    in.body_len = m.body_len;
    in.created = FUZZ_CREATED;
    in.nonce = "fuzz-nonce-0001";
    memset(&out, 0, sizeof(out));
    reqsign_error_clear(&err);
    enum reqsign_status st = reqsign_signer_sign(signer, &in, &out, &err);
    FUZZ_CHECK(st == REQSIGN_OK, "signer refused a valid URL: %s (%s): %s", reqsign_errname(st),
               err.message, url);

    m.hv[0].name.ptr = "Host";
    m.hv[0].name.len = 4;
    m.hv[0].value.ptr = m.authority;
    m.hv[0].value.len = strlen(m.authority);
    m.nh = 1;
    for (size_t i = 0; i < out.n_headers; i++)
        m.hv[m.nh++] = out.headers[i];

    verify(&m, 0, NULL);
    verify(&m, 1, NULL);

    /* change one byte of one covered part */
    static char cd[REQSIGN_CONTENT_DIGEST_OUT_BUF], si[REQSIGN_SIGNATURE_INPUT_OUT_BUF];
    const char *what = NULL;
    size_t k = which >> 3;
    switch (which % 6) {
    case 0:
        what = "method";
        m.method[k % strlen(m.method)] ^= 1;
        break;
    case 1:
        what = "path";
        if (m.path_len > 1)
            m.target[1 + k % (m.path_len - 1)] ^= 1;
        else /* "/" becomes "/0" */
            memmove(m.target + 2, m.target + 1, strlen(m.target)), m.target[1] = '0';
        break;
    case 2:
        what = "query";
        if (has_query)
            m.target[m.path_len + 1 + k % (strlen(m.target) - m.path_len - 1)] ^= 1;
        else
            memcpy(m.target + strlen(m.target), "?a", 3);
        break;
    case 3:
        if (m.body_len == 0)
            return 0;
        what = "body";
        {
            uint8_t *b = malloc(m.body_len);
            FUZZ_CHECK(b != NULL, "malloc");
            memcpy(b, m.body, m.body_len);
            b[k % m.body_len] ^= 1;
            m.body = b;
            verify(&m, 0, what);
            verify(&m, 1, what);
            free(b);
        }
        return 0;
    case 4: {
        /* the Content-Digest line */
        size_t i;
        for (i = 1; i < m.nh; i++)
            if (m.hv[i].name.len == 14 && memcmp(m.hv[i].name.ptr, "Content-Digest", 14) == 0)
                break;
        if (i == m.nh)
            return 0; /* no content, no digest */
        what = "Content-Digest";
        memcpy(cd, m.hv[i].value.ptr, m.hv[i].value.len);
        cd[k % m.hv[i].value.len] ^= 1;
        m.hv[i].value.ptr = cd;
        break;
    }
    default: {
        /* a byte inside a Signature-Input parameter value (after the inner list) */
        size_t i;
        for (i = 1; i < m.nh; i++)
            if (m.hv[i].name.len == 15 && memcmp(m.hv[i].name.ptr, "Signature-Input", 15) == 0)
                break;
        FUZZ_CHECK(i < m.nh, "no Signature-Input");
        size_t len = m.hv[i].value.len;
        memcpy(si, m.hv[i].value.ptr, len);
        const char *close = memchr(si, ')', len);
        FUZZ_CHECK(close != NULL, "Signature-Input without an inner list");
        /* positions of parameter value bytes: after '=' up to ';' */
        size_t cand[REQSIGN_SIGNATURE_INPUT_OUT_BUF], nc = 0;
        int in_val = 0;
        for (size_t j = (size_t)(close - si) + 1; j < len; j++) {
            if (si[j] == ';') {
                in_val = 0;
                continue;
            }
            if (si[j] == '=') {
                in_val = 1;
                continue;
            }
            if (in_val && si[j] != '"')
                cand[nc++] = j;
        }
        FUZZ_CHECK(nc > 0, "no parameter values");
        what = "Signature-Input parameter";
        si[cand[k % nc]] ^= 1;
        m.hv[i].value.ptr = si;
        break;
    }
    }
    verify(&m, 0, what);
    verify(&m, 1, what);
    return 0;
}
