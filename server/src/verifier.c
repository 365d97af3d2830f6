/* reqsign: the verifier. The order of checks is normative (spec/PROTOCOL.md
 * section 9, "Verification order"): parse -> select -> required components
 * and parameters (parameter types, request-target, profile rules, configured
 * components and tag, alg, Content-Digest parsed) -> time window -> key
 * lookup -> base -> signature -> nonce; then, in phase two, the body digest
 * and the key's state again (two-phase only). verify_headers() runs one
 * static step_* function per step, in that order, over a struct vctx; the
 * large buffers are in a per-thread scratch block (no allocation per verify,
 * a bounded stack: reqsign/verifier.h, "Allocation and stack"). */
#include <reqsign/base.h>
#include <reqsign/base64.h>
#include <reqsign/sf.h>
#include <reqsign/verifier.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util.h"

/* vs->state */
enum { VS_NEW = 0, VS_HEADERS_OK = 1, VS_DONE = 2, VS_FAILED = 3 };

/* Prepared public keys (struct reqsign_key: the backend's parsed key, e.g. an
 * EVP_PKEY), so that a verify does not make a key object per request. Keyed
 * by the public key bytes the lookup returned, so lookups, revocation and
 * expiry are untouched. Slots fill once and stay until reqsign_verifier_free();
 * when the slots near a key's are taken, that key uses the raw-key verify. */
#define VK_SLOTS 256
#define VK_PROBES 8
enum { VK_EMPTY = 0, VK_BUSY = 1, VK_READY = 2 };
struct vk_slot {
    _Atomic int state; /* VK_*; pk and key are written before VK_READY (release) */
    uint8_t pk[REQSIGN_ED25519_PUBLIC_LEN];
    struct reqsign_key *key;
};

struct reqsign_verifier {
    enum reqsign_profile profile;
    int64_t max_age, skew;
    char *label;
    char **authorities; /* the accepted authorities as configured; none: any_authority */
    size_t n_authorities;
    char *public_scheme;
    char *required_tag;
    char **required;
    size_t n_required;
    reqsign_verifier_clock_fn clock;
    void *clock_ctx;
    reqsign_key_lookup_fn lookup;
    void *lookup_ctx;
    struct reqsign_nonce_store *nonces;
    struct vk_slot keys[VK_SLOTS]; /* the only mutable part; thread-safe */
};

static char *dupstr(const char *s)
{
    if (s == NULL)
        return NULL;
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d != NULL)
        memcpy(d, s, n);
    return d;
}

/* see reqsign/verifier.h */
void reqsign_verifier_free(struct reqsign_verifier *v)
{
    if (v == NULL)
        return;
    free(v->label);
    for (size_t i = 0; i < v->n_authorities; i++)
        free(v->authorities[i]);
    free(v->authorities);
    free(v->public_scheme);
    free(v->required_tag);
    for (size_t i = 0; i < v->n_required; i++)
        free(v->required[i]);
    free(v->required);
    for (size_t i = 0; i < VK_SLOTS; i++)
        if (atomic_load(&v->keys[i].state) == VK_READY)
            reqsign_key_free(v->keys[i].key);
    free(v);
}

static const char VERIFIER_SRC[] = "verifier";

/* The options reqsign_verifier_new() refuses: no lookup, an unknown
 * profile, the reqsign profile without a nonce store, a negative max_age,
 * and the accepted authorities (@n_auth of them) neither set nor
 * any_authority, or both, or too many. */
static enum reqsign_status check_opts(const struct reqsign_verifier_opts *o, size_t n_auth,
                                      struct reqsign_error *err)
{
    const char *why = NULL;
    if (o->lookup == NULL)
        why = "a key lookup is required";
    else if (o->profile != REQSIGN_PROFILE_REQSIGN && o->profile != REQSIGN_PROFILE_RFC9421)
        why = "unknown profile";
    else if (o->profile == REQSIGN_PROFILE_REQSIGN && o->nonces == NULL)
        why = "the reqsign profile needs a nonce store";
    else if (o->max_age < 0)
        why = "max_age must not be negative";
    else if (o->n_authorities > 0 && o->authorities == NULL)
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, VERIFIER_SRC, REQSIGN_NO_OFFSET,
                                 "n_authorities is %zu but authorities is NULL", o->n_authorities);
    else if (n_auth == 0 && !o->any_authority)
        why = "no accepted authority: set public_authority or authorities to the "
              "host[:port] clients sign for this service, or set any_authority to "
              "take @authority from each request's Host (then a request signed "
              "for another service that trusts the same keys verifies here too)";
    else if (n_auth > 0 && o->any_authority)
        why = "any_authority and configured authorities exclude each other";
    else if (n_auth > REQSIGN_VERIFIER_AUTHORITIES_IN_MAX)
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, VERIFIER_SRC, REQSIGN_NO_OFFSET,
                                 "more than %d accepted authorities",
                                 REQSIGN_VERIFIER_AUTHORITIES_IN_MAX);
    if (why != NULL)
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, VERIFIER_SRC, REQSIGN_NO_OFFSET, "%s",
                                 why);
    return REQSIGN_OK;
}

/* The accepted authorities (public_authority first, then authorities[]),
 * each checked by normalising it, copied into @v. */
static enum reqsign_status copy_authorities(struct reqsign_verifier *v,
                                            const struct reqsign_verifier_opts *o, size_t n_auth,
                                            struct reqsign_error *err)
{
    if (n_auth > 0 && (v->authorities = calloc(n_auth, sizeof(char *))) == NULL)
        return REQSIGN_E_NOMEM;
    for (size_t i = 0; i < n_auth; i++) {
        const char *a = o->public_authority != NULL
                            ? (i == 0 ? o->public_authority : o->authorities[i - 1])
                            : o->authorities[i];
        char tmp[REQSIGN_AUTHORITY_OUT_BUF];
        size_t n;
        struct reqsign_span sch = reqsign__span_cstr(o->public_scheme);
        if (a == NULL)
            return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, VERIFIER_SRC, REQSIGN_NO_OFFSET,
                                     "authorities[%zu] is NULL", i);
        enum reqsign_status st =
            reqsign_authority_normalize(sch, reqsign__span_cstr(a), tmp, sizeof(tmp), &n, err);
        if (st != REQSIGN_OK)
            return st;
        if ((v->authorities[i] = dupstr(a)) == NULL)
            return REQSIGN_E_NOMEM;
        v->n_authorities++;
    }
    return REQSIGN_OK;
}

/* The components every signature must cover, copied into @v. */
static enum reqsign_status copy_required(struct reqsign_verifier *v,
                                         const struct reqsign_verifier_opts *o,
                                         struct reqsign_error *err)
{
    if (o->n_required_components == 0)
        return REQSIGN_OK;
    if (o->n_required_components > REQSIGN_COMPONENTS_IN_MAX)
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, VERIFIER_SRC, REQSIGN_NO_OFFSET,
                                 "too many required components");
    v->required = calloc(o->n_required_components, sizeof(char *));
    if (v->required == NULL)
        return REQSIGN_E_NOMEM;
    for (size_t i = 0; i < o->n_required_components; i++) {
        v->required[i] = dupstr(o->required_components[i]);
        if (v->required[i] == NULL)
            return REQSIGN_E_NOMEM;
        v->n_required++;
    }
    return REQSIGN_OK;
}

/* see reqsign/verifier.h */
struct reqsign_verifier *reqsign_verifier_new(const struct reqsign_verifier_opts *o,
                                              struct reqsign_error *err)
{
    reqsign_error_clear(err);
    if (o == NULL) {
        reqsign_error_set(err, REQSIGN_E_INVALID_ARG, VERIFIER_SRC, REQSIGN_NO_OFFSET,
                          "a key lookup is required");
        return NULL;
    }
    size_t n_auth = (o->public_authority != NULL) + o->n_authorities;
    if (check_opts(o, n_auth, err) != REQSIGN_OK)
        return NULL;
    struct reqsign_verifier *v = calloc(1, sizeof(*v));
    if (v == NULL) {
        reqsign_error_set(err, REQSIGN_E_NOMEM, VERIFIER_SRC, REQSIGN_NO_OFFSET, NULL);
        return NULL;
    }
    v->profile = o->profile;
    v->max_age = o->max_age != 0 ? o->max_age : REQSIGN_DEFAULT_MAX_AGE;
    v->skew = o->skew == 0 ? REQSIGN_DEFAULT_SKEW : o->skew < 0 ? 0 : o->skew;
    v->clock = o->clock;
    v->clock_ctx = o->clock_ctx;
    v->lookup = o->lookup;
    v->lookup_ctx = o->lookup_ctx;
    v->nonces = o->nonces;
    enum reqsign_status st = REQSIGN_OK;
    if ((o->label && !(v->label = dupstr(o->label))) ||
        (o->public_scheme && !(v->public_scheme = dupstr(o->public_scheme))) ||
        (o->required_tag && !(v->required_tag = dupstr(o->required_tag))))
        st = REQSIGN_E_NOMEM;
    if (st == REQSIGN_OK)
        st = copy_authorities(v, o, n_auth, err);
    if (st == REQSIGN_OK)
        st = copy_required(v, o, err);
    if (st == REQSIGN_OK)
        return v;
    reqsign_verifier_free(v);
    if (st == REQSIGN_E_NOMEM) /* the others are set where they happen */
        reqsign_error_set(err, REQSIGN_E_NOMEM, VERIFIER_SRC, REQSIGN_NO_OFFSET, NULL);
    return NULL;
}

/* see reqsign/verifier.h */
void reqsign_verification_init(struct reqsign_verification *vs)
{
    memset(vs, 0, sizeof(*vs));
}

/* see reqsign/verifier.h */
void reqsign_verification_cleanup(struct reqsign_verification *vs)
{
    if (vs == NULL)
        return;
    reqsign_digest_cleanup(&vs->body);
    vs->state = VS_DONE;
}

/* Combine every line of field @name with ", " into @b. Returns the count. */
static size_t combine(const struct reqsign_request *req, const char *name, struct reqsign__buf *b)
{
    size_t count = 0;
    for (size_t i = 0; i < req->n_headers; i++) {
        if (!reqsign__span_ieq(req->headers[i].name, name))
            continue;
        if (count++ > 0)
            reqsign__buf_put(b, ", ", 2);
        struct reqsign_span v = reqsign__trim_ows(req->headers[i].value);
        reqsign__buf_put(b, v.ptr, v.len);
    }
    return count;
}

/* Does the request carry content? (RFC 9112 6.3) */
static int has_content(const struct reqsign_request *req)
{
    for (size_t i = 0; i < req->n_headers; i++) {
        const struct reqsign_header *h = &req->headers[i];
        if (reqsign__span_ieq(h->name, "transfer-encoding"))
            return 1;
        if (reqsign__span_ieq(h->name, "content-length")) {
            struct reqsign_span v = reqsign__trim_ows(h->value);
            if (!reqsign__span_eq(v, "0"))
                return 1;
        }
    }
    return 0;
}

/* Is the component @name covered by member @m: plainly (@any_params 0: no
 * component parameters) or in any form (@any_params 1: e.g. ;sf, ;bs)? */
static int covers_as(const struct reqsign_sf_parsed *p, const struct reqsign_sf_member *m,
                     const char *name, int any_params)
{
    for (uint32_t i = 0; i < m->items_len; i++) {
        const struct reqsign_sf_item *it = &p->items[m->items_off + i];
        if (it->value.type == REQSIGN_SF_STRING && (any_params || it->params_len == 0) &&
            reqsign__span_eq(it->value.str, name))
            return 1;
    }
    return 0;
}

/* Is the plain component @name (no parameters) covered by member @m? */
static int covers(const struct reqsign_sf_parsed *p, const struct reqsign_sf_member *m,
                  const char *name)
{
    return covers_as(p, m, name, 0);
}

struct sig_params {
    int has_created, has_expires;
    int64_t created, expires;
    const struct reqsign_sf_bare *nonce, *keyid, *alg, *tag;
};

static enum reqsign_status read_sig_params(const struct reqsign_sf_parsed *p,
                                           const struct reqsign_sf_member *m, struct sig_params *sp,
                                           struct reqsign_error *err)
{
    static const char SRC[] = "Signature-Input";
    memset(sp, 0, sizeof(*sp));
    for (uint32_t i = 0; i < m->params_len; i++) {
        const struct reqsign_sf_param *pa = &p->params[m->params_off + i];
        const struct reqsign_sf_bare *b = &pa->value;
        int want_int = 0;
        const struct reqsign_sf_bare **slot = NULL;
        size_t minlen = 0, maxlen = 0;

        if (reqsign__span_eq(pa->key, "created") || reqsign__span_eq(pa->key, "expires")) {
            want_int = 1;
        } else if (reqsign__span_eq(pa->key, "nonce")) {
            slot = &sp->nonce;
            minlen = REQSIGN_NONCE_IN_MIN;
            maxlen = REQSIGN_NONCE_IN_MAX;
        } else if (reqsign__span_eq(pa->key, "keyid")) {
            slot = &sp->keyid;
            minlen = 1;
            maxlen = REQSIGN_KEYID_IN_MAX;
        } else if (reqsign__span_eq(pa->key, "alg")) {
            slot = &sp->alg;
            maxlen = 64;
        } else if (reqsign__span_eq(pa->key, "tag")) {
            slot = &sp->tag;
            maxlen = REQSIGN_TAG_IN_MAX;
        } else {
            continue; /* unknown parameters are kept in the base and ignored */
        }
        if (want_int) {
            if (b->type != REQSIGN_SF_INTEGER || b->num < 0)
                return reqsign_error_set(err, REQSIGN_E_PARAM_INVALID, SRC, REQSIGN_NO_OFFSET,
                                         "'%.*s' must be a non-negative Integer", (int)pa->key.len,
                                         pa->key.ptr);
            if (pa->key.ptr[0] == 'c') {
                sp->has_created = 1;
                sp->created = b->num;
            } else {
                sp->has_expires = 1;
                sp->expires = b->num;
            }
            continue;
        }
        if (b->type != REQSIGN_SF_STRING)
            return reqsign_error_set(err, REQSIGN_E_PARAM_INVALID, SRC, REQSIGN_NO_OFFSET,
                                     "'%.*s' must be a String", (int)pa->key.len, pa->key.ptr);
        if (b->str.len < minlen || b->str.len > maxlen)
            return reqsign_error_set(err, REQSIGN_E_PARAM_INVALID, SRC, REQSIGN_NO_OFFSET,
                                     "'%.*s' must be %zu..%zu characters long", (int)pa->key.len,
                                     pa->key.ptr, minlen, maxlen);
        *slot = b;
    }
    if (sp->has_created && sp->has_expires && sp->expires < sp->created)
        return reqsign_error_set(err, REQSIGN_E_PARAM_INVALID, SRC, REQSIGN_NO_OFFSET,
                                 "expires (%lld) is before created (%lld)", (long long)sp->expires,
                                 (long long)sp->created);
    return REQSIGN_OK;
}

/* Copy an sf-string's value (escapes undone) into a NUL-terminated buffer. */
static enum reqsign_status str_copy(const struct reqsign_sf_bare *b, char *out, size_t cap)
{
    size_t n = 0;
    enum reqsign_status st = reqsign_sf_string_value(b, out, cap - 1, &n);
    if (st != REQSIGN_OK)
        return st;
    out[n] = '\0';
    return REQSIGN_OK;
}

/* The prepared key for @pk, made on first use; NULL if none can be had (then
 * the caller verifies with the raw key: same result, slower). Thread-safe. */
static const struct reqsign_key *prepared_key(const struct reqsign_verifier *cv,
                                              const uint8_t pk[REQSIGN_ED25519_PUBLIC_LEN])
{
    struct reqsign_verifier *v = (struct reqsign_verifier *)(uintptr_t)cv; /* cache only */
    size_t h = ((size_t)pk[0] | (size_t)pk[1] << 8) % VK_SLOTS;
    for (size_t i = 0; i < VK_PROBES; i++) {
        struct vk_slot *s = &v->keys[(h + i) % VK_SLOTS];
        int st = atomic_load_explicit(&s->state, memory_order_acquire);
        if (st == VK_EMPTY) {
            if (!atomic_compare_exchange_strong(&s->state, &st, VK_BUSY))
                return NULL; /* another thread took the slot meanwhile */
            struct reqsign_key *k = NULL;
            if ((k = reqsign_key_from_public(pk, NULL)) == NULL) {
                atomic_store_explicit(&s->state, VK_EMPTY, memory_order_release);
                return NULL;
            }
            memcpy(s->pk, pk, REQSIGN_ED25519_PUBLIC_LEN);
            s->key = k;
            atomic_store_explicit(&s->state, VK_READY, memory_order_release);
            return k;
        }
        if (st == VK_BUSY)
            return NULL;
        if (memcmp(s->pk, pk, REQSIGN_ED25519_PUBLIC_LEN) == 0)
            return s->key;
    }
    return NULL;
}

static int64_t now_of(const struct reqsign_verifier *v)
{
    return v->clock != NULL ? v->clock(v->clock_ctx) : (int64_t)time(NULL);
}

/* The request's Host must be a valid uri-host[:port] even when the base
 * takes the configured authority (RFC 9112 section 3.2: 400 for an invalid
 * Host): REQSIGN_E_URL for an empty one, userinfo, a bad port, a zone id,
 * an unbracketed IPv6 address. */
static enum reqsign_status check_host(const struct reqsign_request *req, struct reqsign_error *err)
{
    char host[REQSIGN_AUTHORITY_OUT_BUF];
    size_t hn;
    enum reqsign_status st =
        reqsign_authority_normalize(req->scheme, req->authority, host, sizeof(host), &hn, err);
    if (st == REQSIGN_E_LIMIT)
        return reqsign_error_set(err, REQSIGN_E_URL, "@authority", REQSIGN_NO_OFFSET,
                                 "the request's Host is longer than %d bytes",
                                 REQSIGN_AUTHORITY_IN_MAX);
    return st;
}

/* The authority that goes into the base (spec/PROTOCOL.md section 5.2.3):
 * none configured (any_authority): the request's own; one: that one,
 * whatever valid Host the request has (a proxy may rewrite Host); several:
 * the one the request's Host names, or REQSIGN_E_URL (not listing them). @req->scheme is
 * already the public scheme if one is configured. */
static enum reqsign_status pick_authority(const struct reqsign_verifier *v,
                                          struct reqsign_request *req, const char **picked,
                                          struct reqsign_error *err)
{
    char host[REQSIGN_AUTHORITY_OUT_BUF], mine[REQSIGN_AUTHORITY_OUT_BUF];
    size_t hn, mn;
    enum reqsign_status st;

    *picked = NULL;
    if (v->n_authorities == 0)
        return REQSIGN_OK;
    if (v->n_authorities == 1) {
        st = check_host(req, err);
        if (st != REQSIGN_OK)
            return st;
        *picked = v->authorities[0];
        req->authority = reqsign__span_cstr(*picked);
        return REQSIGN_OK;
    }
    st = reqsign_authority_normalize(req->scheme, req->authority, host, sizeof(host), &hn, err);
    if (st != REQSIGN_OK)
        return st;
    for (size_t i = 0; i < v->n_authorities; i++) {
        if (reqsign_authority_normalize(req->scheme, reqsign__span_cstr(v->authorities[i]), mine,
                                        sizeof(mine), &mn, NULL) == REQSIGN_OK &&
            mn == hn && memcmp(mine, host, hn) == 0) {
            *picked = v->authorities[i];
            req->authority = reqsign__span_cstr(*picked);
            return REQSIGN_OK;
        }
    }
    /* the accepted authorities are not named to the client (internal names) */
    return reqsign_error_set(err, REQSIGN_E_URL, "@authority", REQSIGN_NO_OFFSET,
                             "the request's Host '%s' is not an authority this service accepts",
                             host);
}

/* ---- phase one, one function per step of spec/PROTOCOL.md section 9 ---- */

/* The large buffers of one phase one: the two combined fields, their parse
 * tables, the combined Content-Digest and the signature base. One block per
 * thread (scratch_get()), so that a verify neither allocates nor uses much
 * stack (see "Allocation and stack" in reqsign/verifier.h). */
struct scratch {
    char si_buf[REQSIGN_SIG_FIELD_IN_MAX], sg_buf[REQSIGN_SIG_FIELD_IN_MAX];
    struct reqsign_sf_member si_m[REQSIGN_SIGNATURES_IN_MAX], sg_m[REQSIGN_SIGNATURES_IN_MAX];
    struct reqsign_sf_item si_i[REQSIGN_SIGNATURES_IN_MAX * REQSIGN_COMPONENTS_IN_MAX];
    struct reqsign_sf_param
        si_p[REQSIGN_SIGNATURES_IN_MAX * (REQSIGN_COMPONENTS_IN_MAX + REQSIGN_SIG_PARAMS_IN_MAX)];
    struct reqsign_sf_item sg_i[REQSIGN_SIGNATURES_IN_MAX];
    struct reqsign_sf_param sg_p[REQSIGN_SIGNATURES_IN_MAX * 4];
    char cd[REQSIGN_CONTENT_DIGEST_IN_MAX];
    char base[REQSIGN_BASE_BUF];
    int busy; /* in use by a verify on this thread */
};

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static int scratch_key_ok;
static _Thread_local struct scratch *scratch_tls;

static void scratch_free(void *p) /* at thread exit, on that thread */
{
    if (scratch_tls == p)
        scratch_tls = NULL;
    free(p);
}

static void scratch_key_init(void)
{
    scratch_key_ok = pthread_key_create(&scratch_key, scratch_free) == 0;
}

/* This thread's scratch block, made by its first verify and freed when the
 * thread exits; a block of its own (freed by scratch_put()) if the thread's
 * is in use (a verify from inside a key lookup) or cannot be registered. */
static struct scratch *scratch_get(void)
{
    struct scratch *s = scratch_tls;
    if (s != NULL && !s->busy) {
        s->busy = 1;
        return s;
    }
    s = malloc(sizeof(*s));
    if (s == NULL)
        return NULL;
    s->busy = 1;
    if (scratch_tls == NULL) {
        pthread_once(&scratch_once, scratch_key_init);
        if (scratch_key_ok && pthread_setspecific(scratch_key, s) == 0)
            scratch_tls = s;
    }
    return s;
}

static void scratch_put(struct scratch *s)
{
    s->busy = 0;
    if (s != scratch_tls)
        free(s);
}

/* What the steps share. */
struct vctx {
    const struct reqsign_verifier *v;
    const struct reqsign_request *req_in; /* as received */
    struct reqsign_request req;           /* scheme and authority as the client saw them */
    struct reqsign_verification *vs;
    struct reqsign_error *err;
    struct scratch *s;
    struct reqsign_sf_parsed si, sg;   /* Signature-Input, Signature */
    const struct reqsign_sf_member *m; /* the selected Signature-Input member */
    uint8_t sig[REQSIGN_ED25519_SIG_LEN + 3];
    struct sig_params sp;
    bool has_query;
    int64_t now;
    struct reqsign_key_info info;
    const char *picked; /* the configured authority put in the base, if any */
    size_t base_len;    /* the base is in s->base */
};

/* 1. Parse: both fields present, combined, within the limit, parsed. */
static enum reqsign_status step_parse(struct vctx *c)
{
    struct scratch *s = c->s;
    struct reqsign__buf sib = {s->si_buf, sizeof(s->si_buf), 0, 0};
    struct reqsign__buf sgb = {s->sg_buf, sizeof(s->sg_buf), 0, 0};
    struct reqsign_sf_parsed si = {s->si_m,
                                   REQSIGN_SIGNATURES_IN_MAX,
                                   0,
                                   s->si_i,
                                   sizeof(s->si_i) / sizeof(s->si_i[0]),
                                   0,
                                   s->si_p,
                                   sizeof(s->si_p) / sizeof(s->si_p[0]),
                                   0};
    struct reqsign_sf_parsed sg = {s->sg_m, REQSIGN_SIGNATURES_IN_MAX,     0,
                                   s->sg_i, REQSIGN_SIGNATURES_IN_MAX,     0,
                                   s->sg_p, REQSIGN_SIGNATURES_IN_MAX * 4, 0};
    struct reqsign_error *err = c->err;
    enum reqsign_status st;

    c->si = si;
    c->sg = sg;
    size_t n_si = combine(&c->req, "signature-input", &sib);
    size_t n_sg = combine(&c->req, "signature", &sgb);
    if (n_si == 0 && n_sg == 0)
        return reqsign_error_set(err, REQSIGN_E_SIG_MISSING, "Signature", REQSIGN_NO_OFFSET,
                                 "request has no Signature-Input and no Signature field");
    /* half a signature is not an unsigned request: its own code, so that an
     * application falling back to other authentication on sig_missing cannot
     * be downgraded by stripping one field */
    if (n_si == 0 || n_sg == 0)
        return reqsign_error_set(err, REQSIGN_E_SIG_INCOMPLETE,
                                 n_si == 0 ? "Signature-Input" : "Signature", REQSIGN_NO_OFFSET,
                                 "request has a %s field but no %s field",
                                 n_si == 0 ? "Signature" : "Signature-Input",
                                 n_si == 0 ? "Signature-Input" : "Signature");
    if (sib.overflow || sgb.overflow)
        return reqsign_error_set(
            err, REQSIGN_E_LIMIT, sib.overflow ? "Signature-Input" : "Signature", REQSIGN_NO_OFFSET,
            "%s field longer than %d bytes", sib.overflow ? "Signature-Input" : "Signature",
            REQSIGN_SIG_FIELD_IN_MAX);
    struct reqsign_error perr;
    reqsign_error_clear(&perr);
    st = reqsign_sf_parse_dict(s->si_buf, sib.len, &c->si, &perr);
    if (st != REQSIGN_OK)
        return reqsign_error_set(
            err, st == REQSIGN_E_LIMIT ? REQSIGN_E_LIMIT : REQSIGN_E_SIG_INPUT_MALFORMED,
            "Signature-Input", perr.offset, "Signature-Input: %s", perr.message);
    reqsign_error_clear(&perr);
    st = reqsign_sf_parse_dict(s->sg_buf, sgb.len, &c->sg, &perr);
    if (st != REQSIGN_OK)
        return reqsign_error_set(err,
                                 st == REQSIGN_E_LIMIT ? REQSIGN_E_LIMIT : REQSIGN_E_SIG_MALFORMED,
                                 "Signature", perr.offset, "Signature: %s", perr.message);
    return REQSIGN_OK;
}

/* 2. Select the signature; the shape of the selected members. */
static enum reqsign_status step_select(struct vctx *c)
{
    const struct reqsign_verifier *v = c->v;
    const struct reqsign_sf_parsed *si = &c->si, *sg = &c->sg;
    struct reqsign_verification *vs = c->vs;
    struct reqsign_error *err = c->err;
    size_t idx;

    if (si->n_members == 0 && sg->n_members == 0)
        return reqsign_error_set(err, REQSIGN_E_SIG_MISSING, "Signature-Input", REQSIGN_NO_OFFSET,
                                 "the Signature-Input and Signature fields are both empty");
    if (si->n_members == 0 || sg->n_members == 0)
        return reqsign_error_set(err, REQSIGN_E_SIG_INCOMPLETE,
                                 si->n_members == 0 ? "Signature-Input" : "Signature",
                                 REQSIGN_NO_OFFSET, "the %s field is empty but %s is not",
                                 si->n_members == 0 ? "Signature-Input" : "Signature",
                                 si->n_members == 0 ? "Signature" : "Signature-Input");
    if (v->label != NULL) {
        if (!reqsign_sf_dict_find(si, v->label, strlen(v->label), &idx))
            return reqsign_error_set(err, REQSIGN_E_SIG_LABEL, "Signature-Input", REQSIGN_NO_OFFSET,
                                     "no signature labelled '%s'", v->label);
    } else if (si->n_members == 1) {
        idx = 0;
    } else {
        if (!reqsign_sf_dict_find(si, "sig1", 4, &idx))
            return reqsign_error_set(err, REQSIGN_E_SIG_AMBIGUOUS, "Signature-Input",
                                     REQSIGN_NO_OFFSET, "%zu signatures and none labelled 'sig1'",
                                     si->n_members);
    }
    const struct reqsign_sf_member *m = &si->members[idx];
    c->m = m;
    memcpy(vs->label, m->key.ptr, m->key.len);
    vs->label[m->key.len] = '\0';
    size_t sidx;
    if (!reqsign_sf_dict_find(sg, m->key.ptr, m->key.len, &sidx))
        return reqsign_error_set(err, REQSIGN_E_SIG_LABEL, "Signature", REQSIGN_NO_OFFSET,
                                 "Signature has no member '%s' to match Signature-Input",
                                 vs->label);
    const struct reqsign_sf_member *sm = &sg->members[sidx];
    size_t sig_len = 0;
    if (sm->is_inner_list || sm->value.type != REQSIGN_SF_BINARY)
        return reqsign_error_set(err, REQSIGN_E_SIG_MALFORMED, "Signature", REQSIGN_NO_OFFSET,
                                 "signature '%s' is not a Byte Sequence", vs->label);
    /* strict profile: canonical base64 only (padding, zero pad bits), so one
     * signature has exactly one encoding */
    enum reqsign_status st = reqsign_base64_decode(sm->value.str.ptr, sm->value.str.len, c->sig,
                                                   sizeof(c->sig), &sig_len, NULL);
    if (st != REQSIGN_OK || sig_len != REQSIGN_ED25519_SIG_LEN)
        return reqsign_error_set(err, REQSIGN_E_SIG_MALFORMED, "Signature", REQSIGN_NO_OFFSET,
                                 "signature '%s' is not %d bytes in canonical base64", vs->label,
                                 REQSIGN_ED25519_SIG_LEN);
    if (!m->is_inner_list)
        return reqsign_error_set(err, REQSIGN_E_SIG_INPUT_MALFORMED, "Signature-Input",
                                 REQSIGN_NO_OFFSET,
                                 "signature '%s' is not an inner list of components", vs->label);
    if (m->items_len > REQSIGN_COMPONENTS_IN_MAX || m->params_len > REQSIGN_SIG_PARAMS_IN_MAX)
        return reqsign_error_set(err, REQSIGN_E_LIMIT, "Signature-Input", REQSIGN_NO_OFFSET,
                                 "more than %d components or %d parameters",
                                 REQSIGN_COMPONENTS_IN_MAX, REQSIGN_SIG_PARAMS_IN_MAX);
    return REQSIGN_OK;
}

/* 3.3. The reqsign profile's rules: components, then parameters. */
static enum reqsign_status profile_rules(struct vctx *c)
{
    static const char *const always[] = {"@method", "@authority", "@path"};
    const struct sig_params *sp = &c->sp;
    struct reqsign_error *err = c->err;

    for (size_t i = 0; i < 3; i++)
        if (!covers(&c->si, c->m, always[i]))
            return reqsign_error_set(err, REQSIGN_E_COMPONENT_REQUIRED, "Signature-Input",
                                     REQSIGN_NO_OFFSET, "\"%s\" must be covered", always[i]);
    if (c->has_query && !covers(&c->si, c->m, "@query"))
        return reqsign_error_set(err, REQSIGN_E_COMPONENT_REQUIRED, "Signature-Input",
                                 REQSIGN_NO_OFFSET,
                                 "the request has a query, so \"@query\" must be covered");
    if (c->vs->has_content && !c->vs->digest_covered)
        return reqsign_error_set(err, REQSIGN_E_DIGEST_REQUIRED, "Signature-Input",
                                 REQSIGN_NO_OFFSET,
                                 "the request has content, so \"content-digest\" must be "
                                 "covered");
    if (!sp->has_created || sp->nonce == NULL || sp->keyid == NULL)
        return reqsign_error_set(err, REQSIGN_E_PARAM_MISSING, "Signature-Input", REQSIGN_NO_OFFSET,
                                 "signature parameter '%s' is required",
                                 !sp->has_created    ? "created"
                                 : sp->nonce == NULL ? "nonce"
                                                     : "keyid");
    return REQSIGN_OK;
}

/* 3.1 - 3.4. Required components and parameters: parameter types, the
 * request-target, the profile's rules, the configured components and tag. */
static enum reqsign_status step_required(struct vctx *c)
{
    const struct reqsign_verifier *v = c->v;
    struct reqsign_error *err = c->err;
    struct reqsign_span path, query;
    enum reqsign_status st;

    st = read_sig_params(&c->si, c->m, &c->sp, err);
    if (st != REQSIGN_OK)
        return st;
    st = reqsign_target_split(c->req.target, &path, &query, &c->has_query, err);
    if (st != REQSIGN_OK)
        return st;
    c->vs->has_content = has_content(&c->req);
    c->vs->digest_covered = covers(&c->si, c->m, "content-digest");
    if (v->profile == REQSIGN_PROFILE_REQSIGN && (st = profile_rules(c)) != REQSIGN_OK)
        return st;
    for (size_t i = 0; i < v->n_required; i++)
        if (!covers(&c->si, c->m, v->required[i]))
            return reqsign_error_set(err, REQSIGN_E_COMPONENT_REQUIRED, "Signature-Input",
                                     REQSIGN_NO_OFFSET, "\"%s\" must be covered", v->required[i]);
    const struct reqsign_sf_bare *tag = c->sp.tag;
    if (v->required_tag != NULL &&
        (tag == NULL || tag->escaped || !reqsign__span_eq(tag->str, v->required_tag)))
        return reqsign_error_set(err, REQSIGN_E_TAG_MISMATCH, "Signature-Input", REQSIGN_NO_OFFSET,
                                 "tag must be \"%s\"", v->required_tag);
    return REQSIGN_OK;
}

/* 3.5. Algorithm agreement: no key is needed to decide it. */
static enum reqsign_status step_alg(struct vctx *c)
{
    const struct reqsign_sf_bare *alg = c->sp.alg;
    if (alg != NULL && !reqsign__span_eq(alg->str, "ed25519"))
        return reqsign_error_set(c->err, REQSIGN_E_ALG_MISMATCH, "Signature-Input",
                                 REQSIGN_NO_OFFSET,
                                 "alg \"%.*s\" does not match the key's algorithm ed25519",
                                 (int)(alg->str.len > 64 ? 64 : alg->str.len), alg->str.ptr);
    return REQSIGN_OK;
}

/* 3.6. Content-Digest is parsed with the other fields, checked after the
 * body (step 9). A present one is checked whenever it is covered (in any
 * form) or the request has content, covered or not: a mismatch is an altered
 * or corrupted request either way. */
static enum reqsign_status step_content_digest(struct vctx *c)
{
    struct reqsign_verification *vs = c->vs;
    struct reqsign__buf cdb = {c->s->cd, sizeof(c->s->cd), 0, 0};
    size_t n_cd = combine(&c->req, "content-digest", &cdb);
    int named = covers_as(&c->si, c->m, "content-digest", 1);
    enum reqsign_status st;

    if (n_cd == 0 && vs->digest_covered)
        return reqsign_error_set(c->err, REQSIGN_E_COMPONENT_ABSENT, "Content-Digest",
                                 REQSIGN_NO_OFFSET,
                                 "content-digest is covered but the field is absent");
    vs->digest_named = named;
    if (n_cd == 0)
        return REQSIGN_OK;
    /* without coverage or announced content, a bad field only matters if
     * content bytes arrive after all: reqsign_verification_body() */
    int now_or_never = named || vs->has_content;
    struct reqsign_error cerr;
    reqsign_error_clear(&cerr);
    struct reqsign_error *e = now_or_never ? c->err : &cerr;
    if (cdb.overflow)
        st = reqsign_error_set(e, REQSIGN_E_LIMIT, "Content-Digest", REQSIGN_NO_OFFSET,
                               "Content-Digest field longer than %d bytes",
                               REQSIGN_CONTENT_DIGEST_IN_MAX);
    else
        st = reqsign_content_digest_parse(c->s->cd, cdb.len, &vs->expect, e);
    if (st == REQSIGN_OK)
        vs->digest_parsed = 1;
    else if (now_or_never)
        return st;
    else
        vs->digest_defer = st;
    return REQSIGN_OK;
}

/* 4. Time window. */
static enum reqsign_status step_window(struct vctx *c)
{
    const struct reqsign_verifier *v = c->v;
    const struct sig_params *sp = &c->sp;
    int64_t now = c->now = now_of(v);

    c->vs->created = sp->has_created ? sp->created : -1;
    c->vs->expires = sp->has_expires ? sp->expires : -1;
    if (sp->has_created && sp->created > now + v->skew)
        return reqsign_error_set(c->err, REQSIGN_E_SIG_FUTURE, "Signature-Input", REQSIGN_NO_OFFSET,
                                 "created %lld is %lld s ahead of the server clock (%lld); "
                                 "allowed skew %lld s",
                                 (long long)sp->created, (long long)(sp->created - now),
                                 (long long)now, (long long)v->skew);
    if (sp->has_created && sp->created < now - v->max_age - v->skew)
        return reqsign_error_set(c->err, REQSIGN_E_SIG_TOO_OLD, "Signature-Input",
                                 REQSIGN_NO_OFFSET,
                                 "created %lld is %lld s old at server time %lld; maximum "
                                 "age %lld s (+%lld s skew)",
                                 (long long)sp->created, (long long)(now - sp->created),
                                 (long long)now, (long long)v->max_age, (long long)v->skew);
    if (sp->has_expires && now > sp->expires + v->skew)
        return reqsign_error_set(c->err, REQSIGN_E_SIG_EXPIRED, "Signature-Input",
                                 REQSIGN_NO_OFFSET, "signature expired at %lld; server time %lld",
                                 (long long)sp->expires, (long long)now);
    return REQSIGN_OK;
}

/* A key state other than active, revoked or expired: disabled, its account
 * disabled, or a state this build does not know (refused as revoked: fail closed). */
static enum reqsign_status key_state_error(enum reqsign_key_state state, const char *keyid,
                                           const char *when, struct reqsign_error *err)
{
    if (state == REQSIGN_KEY_DISABLED)
        return reqsign_error_set(err, REQSIGN_E_KEY_DISABLED, "key", REQSIGN_NO_OFFSET,
                                 "key '%s' is disabled%s", keyid, when);
    if (state == REQSIGN_KEY_ACCOUNT_DISABLED)
        return reqsign_error_set(err, REQSIGN_E_ACCOUNT_DISABLED, "key", REQSIGN_NO_OFFSET,
                                 "the account of key '%s' is disabled%s", keyid, when);
    return reqsign_error_set(err, REQSIGN_E_KEY_REVOKED, "key", REQSIGN_NO_OFFSET,
                             "key '%s' has an unknown state %d%s", keyid, (int)state, when);
}

/* The key lookup of the key step (and of the re-check at the end of the
 * content). An unknown key is named in the message, so that whoever sent the
 * request sees which keyid the service does not know (the lookup's own text
 * cannot: it answers for the store); any other failure keeps the lookup's
 * error as it is (a store's detail is for the log, and the caller decides
 * what a client sees). */
static enum reqsign_status lookup_key(const struct reqsign_verifier *v, const char *keyid,
                                      struct reqsign_key_info *info, const char *when,
                                      struct reqsign_error *err)
{
    struct reqsign_error le;
    reqsign_error_clear(&le);
    enum reqsign_status st = v->lookup(v->lookup_ctx, keyid, strlen(keyid), info, &le);
    if (st == REQSIGN_OK)
        return REQSIGN_OK;
    if (st == REQSIGN_E_KEY_UNKNOWN)
        return reqsign_error_set(err, st, "key", REQSIGN_NO_OFFSET, "no key with keyid '%.120s'%s",
                                 keyid, when);
    if (le.code == st && err != NULL) {
        *err = le;
        return st;
    }
    return reqsign_error_set(err, st, "key", REQSIGN_NO_OFFSET, "%s: key '%.120s'%s",
                             reqsign_strerror(st), keyid, when);
}

/* 5. Key lookup by keyid (empty if none), then the key's state. The nonce is
 * kept for the caller's audit log (checked in step 8). */
static enum reqsign_status step_key(struct vctx *c)
{
    const struct reqsign_verifier *v = c->v;
    struct reqsign_verification *vs = c->vs;
    struct reqsign_error *err = c->err;

    memset(&c->info, 0, sizeof(c->info));
    vs->nonce[0] = '\0';
    if (c->sp.nonce != NULL && str_copy(c->sp.nonce, vs->nonce, sizeof(vs->nonce)) != REQSIGN_OK)
        vs->nonce[0] = '\0'; /* too long: the nonce step refuses it */
    vs->keyid[0] = '\0';
    if (c->sp.keyid != NULL && str_copy(c->sp.keyid, vs->keyid, sizeof(vs->keyid)) != REQSIGN_OK)
        return reqsign_error_set(err, REQSIGN_E_PARAM_INVALID, "Signature-Input", REQSIGN_NO_OFFSET,
                                 "keyid too long");
    enum reqsign_status st = lookup_key(v, vs->keyid, &c->info, "", err);
    if (st != REQSIGN_OK)
        return st;
    if (c->info.state == REQSIGN_KEY_REVOKED)
        return reqsign_error_set(err, REQSIGN_E_KEY_REVOKED, "key", REQSIGN_NO_OFFSET,
                                 "key '%s' has been revoked", vs->keyid);
    if (c->info.state == REQSIGN_KEY_EXPIRED)
        return reqsign_error_set(err, REQSIGN_E_KEY_EXPIRED, "key", REQSIGN_NO_OFFSET,
                                 "key '%s' has expired", vs->keyid);
    if (c->info.state != REQSIGN_KEY_ACTIVE)
        return key_state_error(c->info.state, vs->keyid, "", err);
    return REQSIGN_OK;
}

/* 6. The signature base, as the client saw the request (public scheme,
 * chosen authority), into the scratch block; a copy for the caller's debug
 * buffer if it set one. */
static enum reqsign_status step_base(struct vctx *c)
{
    const struct reqsign_verifier *v = c->v;
    struct reqsign_verification *vs = c->vs;
    enum reqsign_status st;

    if (v->public_scheme != NULL)
        c->req.scheme = reqsign__span_cstr(v->public_scheme);
    st = pick_authority(v, &c->req, &c->picked, c->err);
    if (st != REQSIGN_OK)
        return st;
    /* A base that does not fit the scratch block is a limit of this
     * verifier (E_LIMIT), not the caller's buffer: the builder's detail goes
     * to a local error first, so that it can be replaced. */
    struct reqsign_error berr;
    st = reqsign_base_build(&c->req, &c->si, c->m, c->s->base, sizeof(c->s->base), &c->base_len,
                            &berr);
    if (st == REQSIGN_E_BUFFER_TOO_SMALL)
        return reqsign_error_set(c->err, REQSIGN_E_LIMIT, "Signature-Input", REQSIGN_NO_OFFSET,
                                 "signature base longer than %d bytes", REQSIGN_BASE_BUF);
    if (st != REQSIGN_OK) {
        if (c->err != NULL)
            *c->err = berr;
        return st;
    }
    if (vs->base_buf != NULL && vs->base_cap > 0) {
        vs->base_len = c->base_len < vs->base_cap ? c->base_len : vs->base_cap;
        memcpy(vs->base_buf, c->s->base, vs->base_len);
    }
    return REQSIGN_OK;
}

/* The sig_invalid message: names the authority the base used, and whether
 * it was the configured one rather than the request's Host. */
static enum reqsign_status mismatch(const struct vctx *c)
{
    const struct reqsign_verification *vs = c->vs;
    char seen[REQSIGN_AUTHORITY_OUT_BUF] = "";
    size_t n;
    int differs = 0;

    if (c->picked != NULL && reqsign_authority_normalize(c->req.scheme, c->req_in->authority, seen,
                                                         sizeof(seen), &n, NULL) == REQSIGN_OK) {
        char pub[REQSIGN_AUTHORITY_OUT_BUF];
        if (reqsign_authority_normalize(c->req.scheme, c->req.authority, pub, sizeof(pub), &n,
                                        NULL) == REQSIGN_OK &&
            strcmp(pub, seen) != 0)
            differs = 1;
    }
    if (differs)
        return reqsign_error_set(c->err, REQSIGN_E_SIG_INVALID, "Signature", REQSIGN_NO_OFFSET,
                                 "signature '%s' does not verify with key '%s'; @authority "
                                 "was the configured public authority '%s', not the "
                                 "request's Host '%s'",
                                 vs->label, vs->keyid, c->picked, seen);
    return reqsign_error_set(c->err, REQSIGN_E_SIG_INVALID, "Signature", REQSIGN_NO_OFFSET,
                             "signature '%s' does not verify with key '%s': the "
                             "request differs from what was signed or the key is "
                             "wrong (@authority was '%.*s'; behind a proxy that "
                             "rewrites Host, configure the public authority)",
                             vs->label, vs->keyid, (int)c->req.authority.len, c->req.authority.ptr);
}

/* 7. Ed25519 over the base, with the prepared key if one can be had. */
static enum reqsign_status step_signature(struct vctx *c)
{
    const uint8_t *base = (const uint8_t *)c->s->base;
    const struct reqsign_key *pk = prepared_key(c->v, c->info.public_key);
    enum reqsign_status st =
        pk != NULL ? reqsign_key_verify(pk, c->sig, base, c->base_len, NULL)
                   : reqsign_ed25519_verify(c->sig, base, c->base_len, c->info.public_key);
    return st == REQSIGN_OK ? REQSIGN_OK : mismatch(c);
}

/* 8. Nonce check-and-insert: only now that the signature is valid. */
static enum reqsign_status step_nonce(struct vctx *c)
{
    const struct reqsign_verifier *v = c->v;
    const char *keyid = c->vs->keyid;
    if (c->sp.nonce == NULL || v->nonces == NULL)
        return REQSIGN_OK;
    int64_t until = c->now + v->max_age + 2 * v->skew + 1;
    enum reqsign_status st =
        reqsign_nonce_store_check_insert(v->nonces, keyid, strlen(keyid), c->sp.nonce->str.ptr,
                                         c->sp.nonce->str.len, c->now, until, c->err);
    if (st != REQSIGN_OK)
        return reqsign_error_set(c->err, st, "nonce", REQSIGN_NO_OFFSET, "%s (key '%s')",
                                 reqsign_strerror(st), keyid);
    return REQSIGN_OK;
}

/* The results, then 9. (its start): hash the content for a parsed
 * Content-Digest. */
static enum reqsign_status step_digest(struct vctx *c)
{
    struct reqsign_verification *vs = c->vs;
    memcpy(vs->scopes, c->info.scopes, sizeof(vs->scopes));
    vs->scopes[sizeof(vs->scopes) - 1] = '\0';
    memcpy(vs->account, c->info.account, sizeof(vs->account));
    vs->account[sizeof(vs->account) - 1] = '\0';
    vs->verifier = c->v;
    memcpy(vs->public_key, c->info.public_key, sizeof(vs->public_key));
    if (!vs->digest_parsed)
        return REQSIGN_OK;
    enum reqsign_status st = reqsign_digest_init(&vs->body, vs->expect.algs, NULL);
    if (st != REQSIGN_OK)
        return reqsign_error_set(c->err, st, "Content-Digest", REQSIGN_NO_OFFSET, NULL);
    return REQSIGN_OK;
}

/* Phase one in the spec's order; the first failing step ends it. */
static enum reqsign_status verify_headers(const struct reqsign_verifier *v,
                                          const struct reqsign_request *req,
                                          struct reqsign_verification *vs,
                                          struct reqsign_error *err)
{
    static enum reqsign_status (*const steps[])(struct vctx *) = {
        step_parse, step_select, step_required,  step_alg,   step_content_digest, step_window,
        step_key,   step_base,   step_signature, step_nonce, step_digest,
    };
    struct vctx c = {.v = v, .req_in = req, .req = *req, .vs = vs, .err = err};
    enum reqsign_status st = REQSIGN_OK;

    c.s = scratch_get();
    if (c.s == NULL)
        return reqsign_error_set(err, REQSIGN_E_NOMEM, "verifier", REQSIGN_NO_OFFSET, NULL);
    for (size_t i = 0; st == REQSIGN_OK && i < sizeof(steps) / sizeof(steps[0]); i++)
        st = steps[i](&c);
    scratch_put(c.s);
    return st;
}

/* see reqsign/verifier.h */
enum reqsign_status reqsign_verifier_verify_headers(const struct reqsign_verifier *v,
                                                    const struct reqsign_request *req,
                                                    struct reqsign_verification *vs,
                                                    struct reqsign_error *err)
{
    reqsign_error_clear(err);
    if (v == NULL || req == NULL || vs == NULL)
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, "verifier", REQSIGN_NO_OFFSET,
                                 "verifier, request and state are required");
    if (vs->state != VS_NEW)
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, "verifier", REQSIGN_NO_OFFSET,
                                 "verification state already used; call "
                                 "reqsign_verification_init()");
    vs->base_len = 0;
    vs->label[0] = vs->keyid[0] = vs->scopes[0] = vs->account[0] = '\0';
    vs->created = vs->expires = -1;
    vs->digest_covered = vs->has_content = 0;
    vs->digest_named = vs->digest_parsed = 0;
    vs->digest_optional = v->profile == REQSIGN_PROFILE_RFC9421;
    vs->digest_defer = REQSIGN_OK;
    vs->verifier = NULL;
    memset(&vs->body, 0, sizeof(vs->body));
    memset(&vs->expect, 0, sizeof(vs->expect));
    enum reqsign_status st = verify_headers(v, req, vs, err);
    vs->state = st == REQSIGN_OK ? VS_HEADERS_OK : VS_FAILED;
    return st;
}

/* see reqsign/verifier.h */
enum reqsign_status reqsign_verification_body(struct reqsign_verification *vs, const void *data,
                                              size_t len, struct reqsign_error *err)
{
    reqsign_error_clear(err);
    if (vs == NULL || vs->state != VS_HEADERS_OK)
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, "verifier", REQSIGN_NO_OFFSET,
                                 "the headers have not been verified");
    if (len == 0)
        return REQSIGN_OK;
    if (!vs->digest_covered && !vs->digest_optional) {
        vs->state = VS_FAILED;
        return reqsign_error_set(err, REQSIGN_E_DIGEST_REQUIRED, "body", REQSIGN_NO_OFFSET,
                                 "the request has content but its signature does not cover "
                                 "content-digest");
    }
    if (vs->digest_defer != REQSIGN_OK) {
        vs->state = VS_FAILED;
        return reqsign_error_set(err, vs->digest_defer, "Content-Digest", REQSIGN_NO_OFFSET,
                                 "the request has content and a Content-Digest field that "
                                 "cannot be checked (%s)",
                                 reqsign_strerror(vs->digest_defer));
    }
    if (!vs->digest_parsed)
        return REQSIGN_OK; /* rfc9421 profile: content without any Content-Digest */
    enum reqsign_status st = reqsign_digest_update(&vs->body, data, len, NULL);
    if (st != REQSIGN_OK) {
        vs->state = VS_FAILED;
        return reqsign_error_set(err, st, "body", REQSIGN_NO_OFFSET, NULL);
    }
    return REQSIGN_OK;
}

/* Step 10: the key's state again, through the lookup (its cache, if any),
 * now that the content is in: a key revoked, expired, removed or replaced
 * while the body was arriving is refused. Nothing allocated here. */
static enum reqsign_status recheck_key(struct reqsign_verification *vs, struct reqsign_error *err)
{
    const struct reqsign_verifier *v = vs->verifier;
    struct reqsign_key_info info;
    info.state = REQSIGN_KEY_REVOKED; /* a lookup that fills nothing fails closed */
    info.scopes[0] = '\0';
    info.account[0] = '\0';
    memset(info.public_key, 0, sizeof(info.public_key));
    enum reqsign_status st =
        lookup_key(v, vs->keyid, &info, " (looked up again at the end of the content)", err);
    if (st != REQSIGN_OK)
        return st;
    if (info.state == REQSIGN_KEY_REVOKED)
        return reqsign_error_set(err, REQSIGN_E_KEY_REVOKED, "key", REQSIGN_NO_OFFSET,
                                 "key '%s' has been revoked (seen at the end of the content)",
                                 vs->keyid);
    if (info.state == REQSIGN_KEY_EXPIRED)
        return reqsign_error_set(err, REQSIGN_E_KEY_EXPIRED, "key", REQSIGN_NO_OFFSET,
                                 "key '%s' has expired (seen at the end of the content)",
                                 vs->keyid);
    if (info.state != REQSIGN_KEY_ACTIVE)
        return key_state_error(info.state, vs->keyid, " (seen at the end of the content)", err);
    if (reqsign_memcmp_ct(info.public_key, vs->public_key, sizeof(vs->public_key)) != 0)
        return reqsign_error_set(err, REQSIGN_E_KEY_REVOKED, "key", REQSIGN_NO_OFFSET,
                                 "key '%s' was replaced by another public key while the content "
                                 "was arriving",
                                 vs->keyid);
    memcpy(vs->scopes, info.scopes, sizeof(vs->scopes));
    vs->scopes[sizeof(vs->scopes) - 1] = '\0';
    memcpy(vs->account, info.account, sizeof(vs->account));
    vs->account[sizeof(vs->account) - 1] = '\0';
    return REQSIGN_OK;
}

static enum reqsign_status finish(struct reqsign_verification *vs, int recheck,
                                  struct reqsign_error *err)
{
    if (vs == NULL || vs->state != VS_HEADERS_OK)
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, "verifier", REQSIGN_NO_OFFSET,
                                 "the headers have not been verified");
    enum reqsign_status st = REQSIGN_OK;
    /* step 9: a present Content-Digest is compared when it is covered or the
     * request has content (announced by the headers or arrived) */
    if (vs->digest_parsed && (vs->digest_named || vs->has_content || vs->body.total > 0))
        st = reqsign_content_digest_check(&vs->body, &vs->expect, err);
    else
        reqsign_digest_cleanup(&vs->body);
    if (st == REQSIGN_OK && recheck)
        st = recheck_key(vs, err);
    vs->state = st == REQSIGN_OK ? VS_DONE : VS_FAILED;
    return st;
}

/* see reqsign/verifier.h */
enum reqsign_status reqsign_verification_finish(struct reqsign_verification *vs,
                                                struct reqsign_error *err)
{
    reqsign_error_clear(err);
    return finish(vs, 1, err);
}

/* see reqsign/verifier.h */
enum reqsign_status reqsign_verifier_verify(const struct reqsign_verifier *v,
                                            const struct reqsign_request *req, const void *body,
                                            size_t body_len, struct reqsign_verification *vs,
                                            struct reqsign_error *err)
{
    reqsign_error_clear(err);
    enum reqsign_status st = reqsign_verifier_verify_headers(v, req, vs, err);
    if (st == REQSIGN_OK)
        st = reqsign_verification_body(vs, body, body_len, err);
    if (st == REQSIGN_OK)
        st = finish(vs, 0, err); /* the key was looked up a moment ago */
    if (st != REQSIGN_OK)
        reqsign_digest_cleanup(&vs->body);
    return st;
}

/* see reqsign/verifier.h */
enum reqsign_status reqsign_static_key_lookup(void *ctx, const char *keyid, size_t keyid_len,
                                              struct reqsign_key_info *out,
                                              struct reqsign_error *err)
{
    reqsign_error_clear(err);
    const struct reqsign_static_key *k = ctx;
    if (k->keyid != NULL &&
        (strlen(k->keyid) != keyid_len || memcmp(k->keyid, keyid, keyid_len) != 0))
        return reqsign_error_set(err, REQSIGN_E_KEY_UNKNOWN, "key", REQSIGN_NO_OFFSET,
                                 "unknown key '%.*s'", (int)(keyid_len > 80 ? 80 : keyid_len),
                                 keyid);
    memcpy(out->public_key, k->public_key, sizeof(out->public_key));
    out->state = REQSIGN_KEY_ACTIVE;
    snprintf(out->scopes, sizeof(out->scopes), "%s", k->scopes != NULL ? k->scopes : "");
    out->account[0] = '\0';
    return REQSIGN_OK;
}
