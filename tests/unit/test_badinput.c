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

#include <strings.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define BI_MAX_HEADERS 128
#define SIG_B64_LEN 88 /* base64 of 64 octets */

/* growable byte string (may hold NUL bytes) */
struct bstr {
    char *p;
    size_t n, cap;
};

static void bs_put(struct bstr *b, const char *s, size_t n)
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

static void bs_puts(struct bstr *b, const char *s)
{
    bs_put(b, s, strlen(s));
}

static void bs_rep(struct bstr *b, char c, size_t n)
{
    for (size_t i = 0; i < n; i++)
        bs_put(b, &c, 1);
}

/* The values the {...} placeholders stand for. */
struct ctx {
    const char *si; /* the Signature-Input member value (already expanded) */
    char digest256[64], digest512[128];
    char len[24];
    char sig[SIG_B64_LEN + 1];      /* canonical base64 of the signature */
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
static void expand(const char *in, size_t len, const struct ctx *cx, int sigpass, struct bstr *out)
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

static void expand_j(const json_t *s, const struct ctx *cx, int sigpass, struct bstr *out)
{
    cr_assert(json_is_string(s));
    expand(json_string_value(s), json_string_length(s), cx, sigpass, out);
}

/* A request being built: spans point into owned strings. */
struct built {
    struct bstr method, scheme, authority, target;
    struct bstr names[BI_MAX_HEADERS], values[BI_MAX_HEADERS];
    size_t n;
    struct reqsign_header hv[BI_MAX_HEADERS];
    struct reqsign_request req;
};

static void built_free(struct built *b)
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

static struct reqsign_span span_of(const struct bstr *s)
{
    struct reqsign_span r = {s->p != NULL ? s->p : "", s->n};
    return r;
}

static void built_view(struct built *b)
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
static void pad_value(struct bstr *v, long long pad_to, char pad_char)
{
    char *at = strstr(v->p, "{PAD}");
    if (at == NULL)
        return;
    size_t cur = v->n - 5;
    for (const char *q = strstr(v->p, "{SIG}"); q != NULL; q = strstr(q + 5, "{SIG}"))
        cur = cur - 5 + SIG_B64_LEN;
    cr_assert(pad_to >= (long long)cur, "pad_to %lld shorter than the value (%zu)", pad_to, cur);
    struct bstr nv = {0};
    bs_put(&nv, v->p, (size_t)(at - v->p));
    bs_rep(&nv, pad_char, (size_t)pad_to - cur);
    bs_put(&nv, at + 5, v->n - (size_t)(at - v->p) - 5);
    free(v->p);
    *v = nv;
}

/* Build the received request of case @c (template @t). Pass 1 only. */
static void build(const json_t *c, const json_t *t, const json_t *over, const struct ctx *cx,
                  struct built *b)
{
    static const char *const scalars[] = {"method", "scheme", "authority", "target"};
    struct bstr *dst[] = {&b->method, &b->scheme, &b->authority, &b->target};
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
    json_array_foreach(hs, i, h) {
        const char *name = json_string_value(json_array_get(h, 0));
        const json_t *val = json_array_get(h, 1);
        /* "set": [name, value or null]: replaces every line of that name
         * (the first keeps its position; null removes them) */
        const json_t *repl = NULL;
        int seen_before = 0;
        size_t k;
        const json_t *s;
        json_array_foreach(set, k, s) {
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
    json_array_foreach(add, i, h) {
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
static void sign_values(struct built *b, const struct ctx *cx)
{
    for (size_t i = 0; i < b->n; i++) {
        struct bstr nv = {0};
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

struct vconf {
    struct reqsign_verifier_opts o;
    struct reqsign_static_key sk;
    int64_t now;
};

static void vconf_of(const json_t *c, const json_t *t, const uint8_t pk[32], struct vconf *vc)
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
static void signing_pass(const json_t *c, const json_t *t, struct ctx *cx,
                         const struct reqsign_key *key, const struct vconf *vc0,
                         struct reqsign_error *err)
{
    const json_t *over = json_object_get(c, "sign");
    struct built b;
    build(c, t, over, cx, &b);
    /* the placeholder signature: a well-formed 64-octet Byte Sequence */
    const char *label = over != NULL && jstr(over, "label") ? jstr(over, "label")
                        : vc0->o.label != NULL             ? vc0->o.label
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
    built_view(&b);
    struct vconf vc = *vc0;
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
    built_free(&b);
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

static void run_api(const struct built *b, const struct vconf *vc0, const uint8_t *body,
                    size_t body_len, int two_phase, struct outcome *out)
{
    struct vconf vc = *vc0;
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

    struct ctx cx;
    memset(&cx, 0, sizeof(cx));
    struct bstr si = {0}, body = {0};
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

    struct vconf vc;
    vconf_of(c, t, pk, &vc);
    struct reqsign_error serr;
    signing_pass(c, t, &cx, key, &vc, &serr);
    if (json_is_true(json_object_get(c, "needs_signature")))
        cr_assert(cx.have_sig, "%s: the signing pass produced no base (%s: %s)", name,
                  reqsign_errname(serr.code), serr.message);

    struct built b;
    build(c, t, NULL, &cx, &b);
    sign_values(&b, &cx);
    built_view(&b);

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
    built_free(&b);
    free(si.p);
    free(body.p);
    return failures;
}

static json_t *load_table(void)
{
    char *p = tu_path("tests/vectors/badinput/verifier.json");
    json_error_t e;
    json_t *j = json_load_file(p, JSON_ALLOW_NUL, &e);
    cr_assert_not_null(j, "%s: %s (line %d)", p, e.text, e.line);
    free(p);
    return j;
}

static struct reqsign_key *load_key(uint8_t pk[32])
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

Test(badinput, verifier_table)
{
    json_t *root = load_table();
    const json_t *t = json_object_get(root, "template");
    const json_t *cases = json_object_get(root, "cases");
    cr_assert(json_is_object(t) && json_is_array(cases));
    uint8_t pk[32];
    struct reqsign_key *key = load_key(pk);
    size_t i;
    const json_t *c;
    int failures = 0;
    json_array_foreach(cases, i, c) {
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
    json_t *root = load_table();
    const json_t *cases = json_object_get(root, "cases");
    cr_assert_geq(json_array_size(cases), 60);
    size_t i, j;
    const json_t *c;
    json_array_foreach(cases, i, c) {
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
