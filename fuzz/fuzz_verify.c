/* fuzz_verify: Signature-Input / Signature parsing and a full verify against
 * the fixed RFC 9421 B.1.4 key, with both profiles.
 *
 * Input format (what fuzz/make_seeds.py writes from the vectors):
 *     METHOD LF TARGET LF AUTHORITY LF
 *     Name: value LF        (0 to 16 header lines)
 *     LF
 *     BODY                  (the rest)
 * Missing parts are empty. The scheme is https, the clock 1700000005.
 *
 * Oracle: never crash; a result of REQSIGN_OK must be a genuinely valid
 * signature: the signature base the verifier reports is rebuilt
 * independently from the Signature-Input member of the chosen label
 * (reqsign_base_build) and the Signature of that label must verify over it
 * with the raw Ed25519 primitive and the fixed public key; and when the
 * request has a body and a Content-Digest field, the body matches every known
 * digest in it (spec section 9 step 9: checked covered or not). */
#include "fuzz_common.h"

#include <string.h>

#include <reqsign/base.h>
#include <reqsign/digest.h>
#include <reqsign/nonce.h>
#include <reqsign/sf.h>
#include <reqsign/verifier.h>

#define MAX_HEADERS 16

static int64_t fixed_clock(void *ctx)
{
    (void)ctx;
    return FUZZ_NOW;
}

static int name_is(struct reqsign_span n, const char *want)
{
    size_t l = strlen(want);
    if (n.len != l)
        return 0;
    for (size_t i = 0; i < l; i++) {
        char c = n.ptr[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (c != want[i])
            return 0;
    }
    return 1;
}

/* All lines of field @name joined with ", " into @out (RFC 9110 5.3). */
static size_t combine(const struct reqsign_request *req, const char *name, char *out, size_t cap)
{
    size_t n = 0;
    int first = 1;
    for (size_t i = 0; i < req->n_headers; i++) {
        if (!name_is(req->headers[i].name, name))
            continue;
        struct reqsign_span v = req->headers[i].value;
        while (v.len > 0 && (v.ptr[0] == ' ' || v.ptr[0] == '\t')) {
            v.ptr++;
            v.len--;
        }
        while (v.len > 0 && (v.ptr[v.len - 1] == ' ' || v.ptr[v.len - 1] == '\t'))
            v.len--;
        if (n + v.len + 2 > cap)
            return SIZE_MAX;
        if (!first) {
            out[n++] = ',';
            out[n++] = ' ';
        }
        memcpy(out + n, v.ptr, v.len);
        n += v.len;
        first = 0;
    }
    return n;
}

struct sfbuf {
    struct reqsign_sf_member m[REQSIGN_SIGNATURES_IN_MAX * 2];
    struct reqsign_sf_item it[REQSIGN_COMPONENTS_IN_MAX * REQSIGN_SIGNATURES_IN_MAX * 2];
    struct reqsign_sf_param pa[REQSIGN_SIG_PARAMS_IN_MAX * REQSIGN_COMPONENTS_IN_MAX * 2];
    struct reqsign_sf_parsed p;
};

static void sfbuf_init(struct sfbuf *b)
{
    memset(&b->p, 0, sizeof(b->p));
    b->p.members = b->m;
    b->p.members_cap = sizeof(b->m) / sizeof(b->m[0]);
    b->p.items = b->it;
    b->p.items_cap = sizeof(b->it) / sizeof(b->it[0]);
    b->p.params = b->pa;
    b->p.params_cap = sizeof(b->pa) / sizeof(b->pa[0]);
}

/* Independent check of an accepted request. */
static void check_accepted(const struct reqsign_request *req, const struct reqsign_verification *vs)
{
    static char si_txt[REQSIGN_SIG_FIELD_IN_MAX * 2], sig_txt[REQSIGN_SIG_FIELD_IN_MAX * 2];
    static struct sfbuf si, sg;
    static char base[REQSIGN_BASE_BUF];
    size_t label_len = strlen(vs->label);

    FUZZ_CHECK(vs->base_len > 0, "OK without a signature base");
    size_t si_len = combine(req, "signature-input", si_txt, sizeof(si_txt));
    size_t sig_len = combine(req, "signature", sig_txt, sizeof(sig_txt));
    FUZZ_CHECK(si_len != SIZE_MAX && sig_len != SIZE_MAX, "OK with oversized fields");
    sfbuf_init(&si);
    sfbuf_init(&sg);
    FUZZ_CHECK(reqsign_sf_parse_dict(si_txt, si_len, &si.p, NULL) == REQSIGN_OK,
               "OK but Signature-Input does not parse");
    FUZZ_CHECK(reqsign_sf_parse_dict(sig_txt, sig_len, &sg.p, NULL) == REQSIGN_OK,
               "OK but Signature does not parse");
    size_t mi = 0, ms = 0;
    FUZZ_CHECK(reqsign_sf_dict_find(&si.p, vs->label, label_len, &mi) &&
                   reqsign_sf_dict_find(&sg.p, vs->label, label_len, &ms),
               "OK but label %s missing", vs->label);

    size_t blen = 0;
    enum reqsign_status st =
        reqsign_base_build(req, &si.p, &si.p.members[mi], base, sizeof(base), &blen, NULL);
    FUZZ_CHECK(st == REQSIGN_OK, "OK but the base does not build: %s", reqsign_errname(st));
    FUZZ_CHECK(blen == vs->base_len && memcmp(base, vs->base_buf, blen) == 0,
               "OK but the verifier's base differs from the rebuilt one");

    const struct reqsign_sf_member *sm = &sg.p.members[ms];
    FUZZ_CHECK(!sm->is_inner_list && sm->value.type == REQSIGN_SF_BINARY,
               "OK but Signature member is not a byte sequence");
    uint8_t sig[REQSIGN_ED25519_SIG_LEN + 8];
    size_t n = 0;
    st = reqsign_sf_binary_value(&sm->value, sig, sizeof(sig), &n);
    FUZZ_CHECK(st == REQSIGN_OK && n == REQSIGN_ED25519_SIG_LEN, "OK but signature length %zu", n);
    FUZZ_CHECK(reqsign_ed25519_verify(sig, (const uint8_t *)base, blen, fuzz_test_key_public) ==
                   REQSIGN_OK,
               "VERIFIER ACCEPTED A SIGNATURE THAT DOES NOT VERIFY");
}

/* An accepted request with content and a Content-Digest field: the content
 * matches it (independently recomputed). */
static void check_accepted_digest(const struct reqsign_request *req, const char *body,
                                  size_t body_len)
{
    static char cd[REQSIGN_SIG_FIELD_IN_MAX * 2];
    if (body_len == 0)
        return;
    size_t n = combine(req, "content-digest", cd, sizeof(cd));
    if (n == 0)
        return;
    struct reqsign_digest_expect exp;
    FUZZ_CHECK(n != SIZE_MAX && reqsign_content_digest_parse(cd, n, &exp, NULL) == REQSIGN_OK,
               "OK with content and a Content-Digest that cannot be checked");
    struct reqsign_digest d;
    FUZZ_CHECK(reqsign_digest_init(&d, exp.algs, NULL) == REQSIGN_OK, "digest init");
    FUZZ_CHECK(reqsign_digest_update(&d, body, body_len, NULL) == REQSIGN_OK, "digest update");
    FUZZ_CHECK(reqsign_content_digest_check(&d, &exp, NULL) == REQSIGN_OK,
               "VERIFIER ACCEPTED CONTENT THAT DOES NOT MATCH ITS CONTENT-DIGEST");
}

/* Split the input into the request view (spans into @in). */
static size_t split(const char *in, size_t size, struct reqsign_request *req,
                    struct reqsign_header *hv, const char **body)
{
    struct reqsign_span parts[3] = {{in, 0}, {in, 0}, {in, 0}};
    size_t pos = 0;
    for (int i = 0; i < 3; i++) {
        const char *nl = pos < size ? memchr(in + pos, '\n', size - pos) : NULL;
        size_t end = nl != NULL ? (size_t)(nl - in) : size;
        parts[i].ptr = in + pos;
        parts[i].len = end - pos;
        pos = nl != NULL ? end + 1 : size;
    }
    size_t nh = 0;
    while (pos < size && nh < MAX_HEADERS) {
        const char *nl = memchr(in + pos, '\n', size - pos);
        size_t end = nl != NULL ? (size_t)(nl - in) : size;
        if (end == pos) { /* blank line: the body follows */
            pos++;
            break;
        }
        const char *colon = memchr(in + pos, ':', end - pos);
        size_t ce = colon != NULL ? (size_t)(colon - in) : end;
        hv[nh].name.ptr = in + pos;
        hv[nh].name.len = ce - pos;
        hv[nh].value.ptr = in + (ce < end ? ce + 1 : end);
        hv[nh].value.len = end - (ce < end ? ce + 1 : end);
        nh++;
        pos = nl != NULL ? end + 1 : size;
    }
    memset(req, 0, sizeof(*req));
    req->method = parts[0];
    req->target = parts[1];
    req->authority = parts[2];
    req->scheme.ptr = "https";
    req->scheme.len = 5;
    req->headers = hv;
    req->n_headers = nh;
    *body = in + pos;
    return size - pos;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char base[REQSIGN_BASE_BUF];
    if (size > 64 * 1024)
        return 0;
    char *in = malloc(size ? size : 1); /* exact size: ASan sees over-reads */
    FUZZ_CHECK(in != NULL, "malloc");
    if (size)
        memcpy(in, data, size);

    struct reqsign_request req;
    struct reqsign_header hv[MAX_HEADERS];
    const char *body = NULL;
    size_t body_len = split(in, size, &req, hv, &body);

    struct reqsign_static_key sk;
    memset(&sk, 0, sizeof(sk));
    sk.keyid = NULL; /* any keyid maps to the fixed key */
    memcpy(sk.public_key, fuzz_test_key_public, sizeof(sk.public_key));
    sk.scopes = "";
    struct reqsign_nonce_memory_opts no = {64, 64};

    for (int profile = 0; profile < 2; profile++) {
        struct reqsign_verifier_opts vo;
        struct reqsign_error err;
        memset(&vo, 0, sizeof(vo));
        vo.profile = profile ? REQSIGN_PROFILE_RFC9421 : REQSIGN_PROFILE_REQSIGN;
        vo.clock = fixed_clock;
        vo.lookup = reqsign_static_key_lookup;
        vo.lookup_ctx = &sk;
        vo.any_authority = 1; /* @authority from the fuzzed Host: its parser is fuzzed too */
        vo.nonces = reqsign_nonce_store_memory_new(&no, NULL);
        FUZZ_CHECK(vo.nonces != NULL, "nonce store");
        reqsign_error_clear(&err);
        struct reqsign_verifier *v = reqsign_verifier_new(&vo, &err);
        FUZZ_CHECK(v != NULL, "verifier: %s", err.message);

        struct reqsign_verification vs;
        reqsign_verification_init(&vs);
        vs.base_buf = base;
        vs.base_cap = sizeof(base);
        reqsign_error_clear(&err);
        enum reqsign_status st = reqsign_verifier_verify(v, &req, body, body_len, &vs, &err);
        FUZZ_CHECK(st >= REQSIGN_OK && st < REQSIGN_STATUS_LAST, "status %d", (int)st);
        FUZZ_CHECK(st == REQSIGN_OK || err.code == st, "err.code %d for status %d", err.code, st);
        FUZZ_CHECK(st != REQSIGN_E_INTERNAL && st != REQSIGN_E_BUFFER_TOO_SMALL, "verify: %s (%s)",
                   reqsign_errname(st), err.message);
        if (st == REQSIGN_OK) {
            check_accepted(&req, &vs);
            check_accepted_digest(&req, body, body_len);
            /* the same request again is a replay when a nonce was checked */
            struct reqsign_verification vs2;
            reqsign_verification_init(&vs2);
            st = reqsign_verifier_verify(v, &req, body, body_len, &vs2, NULL);
            FUZZ_CHECK(profile == 1 || st == REQSIGN_E_REPLAY, "second verify: %s",
                       reqsign_errname(st));
            reqsign_verification_cleanup(&vs2);
        } else {
            char json[4096];
            size_t jl = 0;
            FUZZ_CHECK(reqsign_error_json(&err, FUZZ_NOW, json, sizeof(json), &jl) == REQSIGN_OK,
                       "error_json");
        }
        reqsign_verification_cleanup(&vs);
        reqsign_verifier_free(v);
        reqsign_nonce_store_free(vo.nonces);
    }
    free(in);
    return 0;
}
