/* The verifier's bad-input table (tests/vectors/badinput/verifier.json, see
 * its README.md): each case's request, signed at test time. Used by the
 * badinput suite (through the verifier API) and by e2e-nginx (the same
 * requests through nginx with the module). */
#include <criterion/criterion.h>

#include <reqsign/base.h>
#include <reqsign/base64.h>
#include <reqsign/digest.h>
#include <reqsign/error.h>
#include <reqsign/key.h>
#include <reqsign/nonce.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "badinput_table.h"
#include "testutil.h"

#define SIG_B64_LEN 88 /* base64 of 64 octets */

static void bs_put(struct bi_bstr *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 64;
        while (b->n + n + 1 > nc)
            nc *= 2;
        char *np = realloc(b->p, nc);
        cr_assert_not_null(np);
        b->p = np;
        b->cap = nc;
    }
    if (n > 0)
        memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void bs_puts(struct bi_bstr *b, const char *s)
{
    bs_put(b, s, strlen(s));
}

static void bs_rep(struct bi_bstr *b, char c, size_t n)
{
    for (size_t i = 0; i < n; i++)
        bs_put(b, &c, 1);
}

/* The values the {...} placeholders stand for. */
struct bi_ctx {
    const char *si; /* the Signature-Input member value (already expanded) */
    char digest256[64], digest512[128];
    char len[24];
    char sig[SIG_B64_LEN + 1];       /* canonical base64 of the signature */
    char sig_other[SIG_B64_LEN + 1]; /* a valid-looking but wrong signature */
    uint8_t raw[64];
    int have_sig;
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

/* First of case[key], template[key]. */
static const json_t *pick(const json_t *c, const json_t *t, const char *key)
{
    const json_t *v = json_object_get(c, key);
    return v != NULL ? v : json_object_get(t, key);
}

static void b64(const uint8_t *in, size_t n, char *out, size_t cap)
{
    size_t ol = 0;
    cr_assert_eq(reqsign_base64_encode(in, n, out, cap, &ol), REQSIGN_OK);
}

/* Expand the placeholders of @in (@len bytes) into @out. @sigpass: 0 leaves the
 * {SIG...} placeholders for later (they are written literally), 1 expands them.
 *   {SI} {DIGEST} {DIGEST512} {LEN} {R:<n>:<c>} (c repeated n times)
 *   {SIG} {SIG63} {SIG65} {SIG_NOPAD} {SIG_PADBITS} {SIG_URLSAFE} {SIG_EXTRAPAD}
 *   {SIG_OTHER} {SIG_DIGEST} */
static void expand(const char *in, size_t len, const struct bi_ctx *cx, int sigpass,
                   struct bi_bstr *out)
{
    size_t i = 0;
    while (i < len) {
        if (in[i] != '{') {
            bs_put(out, in + i, 1);
            i++;
            continue;
        }
        const char *end = memchr(in + i, '}', len - i);
        if (end == NULL) {
            bs_put(out, in + i, len - i);
            break;
        }
        size_t tl = (size_t)(end - (in + i)) + 1;
        char tok[64];
        if (tl >= sizeof(tok) || in[i + 1] < 'A' || in[i + 1] > 'Z') {
            bs_put(out, in + i, 1);
            i++;
            continue;
        }
        memcpy(tok, in + i, tl);
        tok[tl] = '\0';
        i += tl;
        if (strcmp(tok, "{SI}") == 0) {
            expand(cx->si, strlen(cx->si), cx, sigpass, out);
        } else if (strcmp(tok, "{DIGEST}") == 0) {
            bs_puts(out, cx->digest256);
        } else if (strcmp(tok, "{DIGEST512}") == 0) {
            bs_puts(out, cx->digest512);
        } else if (strcmp(tok, "{LEN}") == 0) {
            bs_puts(out, cx->len);
        } else if (strncmp(tok, "{R:", 3) == 0) {
            char *p;
            unsigned long n = strtoul(tok + 3, &p, 10);
            cr_assert(*p == ':' && p[2] == '}', "bad placeholder %s", tok);
            bs_rep(out, p[1], n);
        } else if (strncmp(tok, "{SIG", 4) == 0 && !sigpass) {
            bs_puts(out, tok);
        } else if (strcmp(tok, "{SIG}") == 0) {
            bs_puts(out, cx->sig);
        } else if (strcmp(tok, "{SIG_OTHER}") == 0) {
            bs_puts(out, cx->sig_other);
        } else if (strcmp(tok, "{SIG63}") == 0 || strcmp(tok, "{SIG65}") == 0) {
            uint8_t r[65];
            char e[100];
            memcpy(r, cx->raw, 64);
            r[64] = 0;
            b64(r, tok[5] == '3' ? 63 : 65, e, sizeof(e));
            bs_puts(out, e);
        } else if (strcmp(tok, "{SIG_NOPAD}") == 0) {
            bs_put(out, cx->sig, SIG_B64_LEN - 2);
        } else if (strcmp(tok, "{SIG_EXTRAPAD}") == 0) {
            bs_puts(out, cx->sig);
            bs_puts(out, "==");
        } else if (strcmp(tok, "{SIG_PADBITS}") == 0) {
            /* 64 = 21*3 + 1: the 86th character carries 2 data bits and 4
             * pad bits; set the lowest pad bit */
            static const char A[] =
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
            char s[SIG_B64_LEN + 1];
            memcpy(s, cx->sig, sizeof(s));
            const char *at = strchr(A, s[85]);
            cr_assert_not_null(at);
            s[85] = A[(at - A) | 1];
            bs_puts(out, s);
        } else if (strcmp(tok, "{SIG_URLSAFE}") == 0) {
            /* the base64url alphabet: '+' -> '-', '/' -> '_'; if the
             * signature has neither, its first character becomes '-' */
            char s[SIG_B64_LEN + 1];
            int changed = 0;
            memcpy(s, cx->sig, sizeof(s));
            for (size_t k = 0; k < SIG_B64_LEN; k++) {
                if (s[k] == '+' || s[k] == '/') {
                    s[k] = s[k] == '+' ? '-' : '_';
                    changed = 1;
                }
            }
            if (!changed)
                s[0] = '-';
            bs_puts(out, s);
        } else {
            /* not a placeholder: literal text (JSON bodies, ...) */
            i -= tl;
            bs_put(out, in + i, 1);
            i++;
        }
    }
}

static void expand_j(const json_t *s, const struct bi_ctx *cx, int sigpass, struct bi_bstr *out)
{
    cr_assert(json_is_string(s));
    expand(json_string_value(s), json_string_length(s), cx, sigpass, out);
}

void bi_built_free(struct bi_built *b)
{
    free(b->method.p);
    free(b->scheme.p);
    free(b->authority.p);
    free(b->target.p);
    for (size_t i = 0; i < b->n; i++) {
        free(b->names[i].p);
        free(b->values[i].p);
    }
    memset(b, 0, sizeof(*b));
}

static struct reqsign_span span_of(const struct bi_bstr *s)
{
    struct reqsign_span r = {s->p != NULL ? s->p : "", s->n};
    return r;
}

void bi_built_view(struct bi_built *b)
{
    for (size_t i = 0; i < b->n; i++) {
        b->hv[i].name = span_of(&b->names[i]);
        b->hv[i].value = span_of(&b->values[i]);
    }
    b->req.method = span_of(&b->method);
    b->req.scheme = span_of(&b->scheme);
    b->req.authority = span_of(&b->authority);
    b->req.target = span_of(&b->target);
    b->req.headers = b->hv;
    b->req.n_headers = b->n;
}

/* Apply {PAD}: the value is filled with pad_char so that it is exactly
 * pad_to bytes long once {SIG} (88 characters) is expanded. */
static void pad_value(struct bi_bstr *v, long long pad_to, char pad_char)
{
    char *at = strstr(v->p, "{PAD}");
    if (at == NULL)
        return;
    size_t cur = v->n - 5;
    for (const char *q = strstr(v->p, "{SIG}"); q != NULL; q = strstr(q + 5, "{SIG}"))
        cur = cur - 5 + SIG_B64_LEN;
    cr_assert(pad_to >= (long long)cur, "pad_to %lld shorter than the value (%zu)", pad_to, cur);
    struct bi_bstr nv = {0};
    bs_put(&nv, v->p, (size_t)(at - v->p));
    bs_rep(&nv, pad_char, (size_t)pad_to - cur);
    bs_put(&nv, at + 5, v->n - (size_t)(at - v->p) - 5);
    free(v->p);
    *v = nv;
}

/* Build the received request of case @c (template @t). Pass 1 only. */
static void build(const json_t *c, const json_t *t, const json_t *over, const struct bi_ctx *cx,
                  struct bi_built *b)
{
    static const char *const scalars[] = {"method", "scheme", "authority", "target"};
    struct bi_bstr *dst[] = {&b->method, &b->scheme, &b->authority, &b->target};
    memset(b, 0, sizeof(*b));
    for (size_t k = 0; k < 4; k++) {
        const json_t *v = over != NULL ? json_object_get(over, scalars[k]) : NULL;
        if (v == NULL)
            v = pick(c, t, scalars[k]);
        cr_assert_not_null(v, "%s missing", scalars[k]);
        bs_put(dst[k], "", 0);
        expand_j(v, cx, 1, dst[k]);
    }
    const json_t *hs = pick(c, t, "headers");
    const json_t *set = json_object_get(c, "set");
    const json_t *add = json_object_get(c, "add");
    long long pad_to = jint(c, "pad_to", -1);
    const char *pc = jstr(c, "pad_char");
    size_t i;
    const json_t *h;
    cr_assert(json_is_array(hs));
    json_array_foreach(hs, i, h)
    {
        const char *name = json_string_value(json_array_get(h, 0));
        const json_t *val = json_array_get(h, 1);
        /* "set": [name, value or null]: replaces every line of that name
         * (the first keeps its position; null removes them) */
        const json_t *repl = NULL;
        int seen_before = 0;
        size_t k;
        const json_t *s;
        json_array_foreach(set, k, s)
        {
            if (strcasecmp(json_string_value(json_array_get(s, 0)), name) == 0)
                repl = s;
        }
        for (size_t j = 0; j < i && repl != NULL; j++)
            if (strcasecmp(json_string_value(json_array_get(json_array_get(hs, j), 0)), name) == 0)
                seen_before = 1;
        if (repl != NULL) {
            if (seen_before || json_is_null(json_array_get(repl, 1)))
                continue;
            val = json_array_get(repl, 1);
        }
        cr_assert(b->n < BI_MAX_HEADERS);
        bs_put(&b->names[b->n], "", 0);
        expand_j(json_array_get(h, 0), cx, 1, &b->names[b->n]);
        bs_put(&b->values[b->n], "", 0);
        expand_j(val, cx, 0, &b->values[b->n]);
        b->n++;
    }
    json_array_foreach(add, i, h)
    {
        cr_assert(b->n < BI_MAX_HEADERS);
        bs_put(&b->names[b->n], "", 0);
        expand_j(json_array_get(h, 0), cx, 1, &b->names[b->n]);
        bs_put(&b->values[b->n], "", 0);
        expand_j(json_array_get(h, 1), cx, 0, &b->values[b->n]);
        b->n++;
    }
    for (i = 0; i < b->n; i++)
        if (pad_to >= 0)
            pad_value(&b->values[i], pad_to, pc != NULL && pc[0] ? pc[0] : 'a');
}

/* Pass 2: the {SIG...} placeholders. */
static void sign_values(struct bi_built *b, const struct bi_ctx *cx)
{
    for (size_t i = 0; i < b->n; i++) {
        struct bi_bstr nv = {0};
        bs_put(&nv, "", 0);
        expand(b->values[i].p, b->values[i].n, cx, 1, &nv);
        free(b->values[i].p);
        b->values[i] = nv;
    }
}

static int64_t fixed_clock(void *ctx)
{
    return *(const int64_t *)ctx;
}

static void vconf_of(const json_t *c, const json_t *t, const uint8_t pk[32], struct bi_vconf *vc)
{
    memset(vc, 0, sizeof(*vc));
    vc->now = jint(c, "now", jint(t, "now", 0));
    cr_assert(vc->now > 0);
    memcpy(vc->sk.public_key, pk, 32);
    vc->sk.keyid = NULL; /* any keyid: the cases test the parameter, not the lookup */
    vc->sk.scopes = "test";
    const char *prof = jstr(c, "profile");
    vc->o.profile = prof != NULL && strcmp(prof, "rfc9421") == 0 ? REQSIGN_PROFILE_RFC9421
                                                                 : REQSIGN_PROFILE_REQSIGN;
    vc->o.max_age = jint(c, "max_age", 0);
    vc->o.skew = jint(c, "skew", 0);
    vc->o.label = jstr(c, "label");
    vc->o.public_authority = jstr(c, "public_authority");
    vc->o.any_authority = vc->o.public_authority == NULL; /* else the case's Host */
    vc->o.clock = fixed_clock;
    vc->o.clock_ctx = &vc->now;
    vc->o.lookup = reqsign_static_key_lookup;
    vc->o.lookup_ctx = &vc->sk;
}

/* The signing pass: the base of the request as signed, signed with @key.
 * Without a base (the case fails before step 6), the signature stays a
 * well-formed but invalid one. */
static void signing_pass(const json_t *c, const json_t *t, struct bi_ctx *cx,
                         const struct reqsign_key *key, const struct bi_vconf *vc0,
                         struct reqsign_error *err)
{
    const json_t *over = json_object_get(c, "sign");
    struct bi_built b;
    build(c, t, over, cx, &b);
    /* the placeholder signature: a well-formed 64-octet Byte Sequence */
    const char *label = over != NULL && jstr(over, "label") ? jstr(over, "label")
                        : vc0->o.label != NULL              ? vc0->o.label
                                                            : "sig1";
    for (size_t i = 0; i < b.n; i++)
        if (strcasecmp(b.names[i].p, "signature") == 0) {
            free(b.values[i].p);
            memset(&b.values[i], 0, sizeof(b.values[i]));
            bs_puts(&b.values[i], label);
            bs_puts(&b.values[i], "=:");
            bs_puts(&b.values[i], cx->sig_other);
            bs_puts(&b.values[i], ":");
        }
    bi_built_view(&b);
    struct bi_vconf vc = *vc0;
    vc.o.clock_ctx = &vc.now;
    vc.o.lookup_ctx = &vc.sk;
    vc.o.label = label;
    vc.o.nonces = reqsign_nonce_store_memory_new(NULL, NULL);
    cr_assert_not_null(vc.o.nonces);
    reqsign_error_clear(err);
    struct reqsign_verifier *v = reqsign_verifier_new(&vc.o, err);
    cr_assert_not_null(v, "%s", err->message);
    struct reqsign_verification vs;
    reqsign_verification_init(&vs);
    char *base = malloc(REQSIGN_BASE_BUF);
    cr_assert_not_null(base);
    vs.base_buf = base;
    vs.base_cap = REQSIGN_BASE_BUF;
    enum reqsign_status st = reqsign_verifier_verify_headers(v, &b.req, &vs, err);
    if (st == REQSIGN_E_SIG_INVALID && vs.base_len > 0) {
        cr_assert_eq(reqsign_key_sign(key, (const uint8_t *)base, vs.base_len, cx->raw, NULL),
                     REQSIGN_OK);
        b64(cx->raw, 64, cx->sig, sizeof(cx->sig));
        cx->have_sig = 1;
    }
    reqsign_verification_cleanup(&vs);
    reqsign_verifier_free(v);
    reqsign_nonce_store_free(vc.o.nonces);
    free(base);
    bi_built_free(&b);
}

/* see badinput_table.h */
int bi_prepare(const json_t *c, const json_t *t, const struct reqsign_key *key,
               const uint8_t pk[32], struct bi_built *out, struct bi_bstr *body_out,
               struct bi_vconf *vc_out, struct reqsign_error *serr)
{
    struct bi_ctx cx;
    memset(&cx, 0, sizeof(cx));
    struct bi_bstr si = {0}, body = {0};
    bs_put(&body, "", 0);
    expand_j(pick(c, t, "body"), &cx, 1, &body);
    bs_put(&si, "", 0);
    const json_t *sij = pick(c, t, "si");
    cx.si = "";
    expand_j(sij, &cx, 0, &si);
    cx.si = si.p;
    size_t ol;
    cr_assert_eq(reqsign_content_digest(REQSIGN_DIGEST_SHA256, body.p, body.n, cx.digest256,
                                        sizeof(cx.digest256), &ol, NULL),
                 REQSIGN_OK);
    /* keep only the base64 between the colons */
    memmove(cx.digest256, cx.digest256 + 9, ol - 10);
    cx.digest256[ol - 10] = '\0';
    cr_assert_eq(reqsign_content_digest(REQSIGN_DIGEST_SHA512, body.p, body.n, cx.digest512,
                                        sizeof(cx.digest512), &ol, NULL),
                 REQSIGN_OK);
    memmove(cx.digest512, cx.digest512 + 9, ol - 10);
    cx.digest512[ol - 10] = '\0';
    snprintf(cx.len, sizeof(cx.len), "%zu", body.n);
    /* the wrong signature: 64 octets 0x01, canonical */
    uint8_t ones[64];
    memset(ones, 1, sizeof(ones));
    b64(ones, 64, cx.sig_other, sizeof(cx.sig_other));
    memcpy(cx.raw, ones, 64);
    memcpy(cx.sig, cx.sig_other, sizeof(cx.sig));

    vconf_of(c, t, pk, vc_out);
    signing_pass(c, t, &cx, key, vc_out, serr);
    build(c, t, NULL, &cx, out);
    sign_values(out, &cx);
    bi_built_view(out);
    free(si.p);
    *body_out = body;
    return cx.have_sig;
}

/* see badinput_table.h */
json_t *bi_load_table(void)
{
    char *p = tu_path("tests/vectors/badinput/verifier.json");
    json_error_t e;
    json_t *j = json_load_file(p, JSON_ALLOW_NUL, &e);
    cr_assert_not_null(j, "%s: %s (line %d)", p, e.text, e.line);
    free(p);
    return j;
}

/* see badinput_table.h */
struct reqsign_key *bi_load_key(uint8_t pk[32])
{
    char *p = tu_path("spec/vectors/keys/test-key-ed25519.pem");
    struct reqsign_key *k = NULL;
    struct reqsign_error err;
    reqsign_error_clear(&err);
    cr_assert_not_null(k = reqsign_key_load_file(p, REQSIGN_KEY_ALLOW_PERMISSIVE, &err), "%s: %s",
                       p, err.message);
    reqsign_key_public_raw(k, pk);
    free(p);
    return k;
}
