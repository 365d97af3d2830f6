/* reqsign: the key directory consumer (reqsign/keydir.h).
 *
 * Layout. A snapshot is one allocation: the keys sorted by keyid bytes
 * (binary search), immutable once published. The keydir holds the current
 * snapshot pointer with its fetch time and lifetime under an rwlock; a lookup
 * copies what it needs out under the read lock, a fetch swaps the pointer
 * under the write lock and frees the old snapshot after unlocking.
 *
 * Fetches. One libcurl easy handle, used only under fetch_mu, which also
 * guards the ETag and the rate limit (last_attempt). A lookup that wants a
 * fetch takes fetch_mu (blocking, unless it already holds a usable answer:
 * then it only tries), checks the rate limit, and fetches; lookups that
 * queued behind it find the rate limit spent and re-read the new snapshot.
 *
 * Locks: fetch_mu may be held while taking the rwlock, never the reverse;
 * no lock but fetch_mu is held during a transfer.
 */
#include <reqsign/keydir.h>
#include <reqsign/util.h>

#include <reqsign/base64.h>
#include <reqsign/key.h>
#include <reqsign/limits.h>

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static const char kd_src[] = "key directory";

struct kd_key {
    uint8_t public_key[REQSIGN_ED25519_PUBLIC_LEN];
    uint16_t kid_len;
    uint32_t ord; /* position in the document: the first of equal keyids wins */
    char kid[REQSIGN_KEYID_IN_MAX];
};

struct kd_snap {
    size_t n;
    uint64_t skipped;
    struct kd_key keys[];
};

struct reqsign_keydir {
    pthread_rwlock_t lock; /* snap, fetched_at, lifetime */
    struct kd_snap *snap;  /* NULL until the first good fetch */
    int64_t fetched_at, lifetime;

    pthread_mutex_t fetch_mu; /* curl, etag, attempted, last_attempt */
    CURL *curl;
    char etag[REQSIGN_KEYDIR_ETAG_IN_MAX + 1];
    bool attempted;
    int64_t last_attempt;

    char *url;
    int64_t min_refresh, max_refresh;
    long timeout_ms;
    size_t max_body, max_keys;
    reqsign_verifier_clock_fn clock;
    void *clock_ctx;

    _Atomic uint64_t hits, misses, unavailable, fetches, updates, not_modified, fetch_errors,
        parse_errors, rate_limited;
};

/* ---- time ---- */

static int64_t kd_now(const struct reqsign_keydir *kd)
{
    return kd->clock != NULL ? kd->clock(kd->clock_ctx) : (int64_t)time(NULL);
}

/* |a - b| without overflow, so a clock stepped back cannot keep a snapshot alive. */
static uint64_t kd_absdiff(int64_t a, int64_t b)
{
    return a >= b ? (uint64_t)a - (uint64_t)b : (uint64_t)b - (uint64_t)a;
}

/* ---- snapshot ---- */

static int kd_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c != 0)
        return c;
    return alen < blen ? -1 : alen > blen ? 1 : 0;
}

static int kd_key_cmp(const void *pa, const void *pb)
{
    const struct kd_key *a = pa, *b = pb;
    int c = kd_cmp(a->kid, a->kid_len, b->kid, b->kid_len);
    if (c != 0)
        return c;
    return a->ord < b->ord ? -1 : a->ord > b->ord ? 1 : 0;
}

static const struct kd_key *kd_find(const struct kd_snap *s, const char *kid, size_t len)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = kd_cmp(kid, len, s->keys[mid].kid, s->keys[mid].kid_len);
        if (c == 0)
            return &s->keys[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

/* ---- parsing ---- */

/* Nesting depth of @body, strings skipped; stops counting past @max. jansson
 * has no run-time depth limit (only its compiled-in 2048), so we check first. */
static bool kd_depth_ok(const char *body, size_t len, unsigned max)
{
    unsigned depth = 0;
    bool in_str = false, esc = false;
    for (size_t i = 0; i < len; i++) {
        char c = body[i];
        if (in_str) {
            if (esc)
                esc = false;
            else if (c == '\\')
                esc = true;
            else if (c == '"')
                in_str = false;
        } else if (c == '"') {
            in_str = true;
        } else if (c == '[' || c == '{') {
            if (++depth > max)
                return false;
        } else if ((c == ']' || c == '}') && depth > 0) {
            depth--;
        }
    }
    return true;
}

static bool kd_str_is(const json_t *v, const char *want)
{
    return json_is_string(v) && json_string_length(v) == strlen(want) &&
           memcmp(json_string_value(v), want, strlen(want)) == 0;
}

/* One JWKS entry -> @k; false if it must be skipped. */
static bool kd_entry(const json_t *e, struct kd_key *k)
{
    if (!json_is_object(e))
        return false;
    if (!kd_str_is(json_object_get(e, "kty"), "OKP") ||
        !kd_str_is(json_object_get(e, "crv"), "Ed25519"))
        return false;
    if (json_object_get(e, "d") != NULL)
        return false; /* a private key has no business in a public directory */
    const json_t *alg = json_object_get(e, "alg");
    if (alg != NULL && !kd_str_is(alg, "ed25519") && !kd_str_is(alg, "EdDSA"))
        return false;
    const json_t *use = json_object_get(e, "use");
    if (use != NULL && !kd_str_is(use, "sig"))
        return false;

    const json_t *x = json_object_get(e, "x");
    if (!json_is_string(x) || json_string_length(x) != REQSIGN_THUMBPRINT_LEN)
        return false; /* 32 bytes are 43 base64url characters */
    size_t n = 0;
    if (reqsign_base64url_decode(json_string_value(x), json_string_length(x), k->public_key,
                                 sizeof(k->public_key), &n, NULL) != REQSIGN_OK ||
        n != sizeof(k->public_key))
        return false;
    char canon[REQSIGN_THUMBPRINT_BUF];
    size_t cl = 0;
    if (reqsign_base64url_encode(k->public_key, sizeof(k->public_key), canon, sizeof(canon), &cl) !=
            REQSIGN_OK ||
        cl != json_string_length(x) || memcmp(canon, json_string_value(x), cl) != 0)
        return false; /* non-canonical trailing bits */

    const json_t *kid = json_object_get(e, "kid");
    if (kid == NULL) {
        char tp[REQSIGN_THUMBPRINT_BUF];
        if (reqsign_thumbprint_raw(k->public_key, tp) != REQSIGN_OK)
            return false;
        k->kid_len = (uint16_t)strnlen(tp, sizeof(tp) - 1);
        memcpy(k->kid, tp, k->kid_len);
        return true;
    }
    if (!json_is_string(kid) || json_string_length(kid) == 0 ||
        json_string_length(kid) > REQSIGN_KEYID_IN_MAX)
        return false;
    k->kid_len = (uint16_t)json_string_length(kid);
    memcpy(k->kid, json_string_value(kid), k->kid_len);
    return true;
}

static enum reqsign_status kd_parse(const struct reqsign_keydir *kd, const char *body, size_t len,
                                    struct kd_snap **out, struct reqsign_error *err)
{
    *out = NULL;
    if (!kd_depth_ok(body, len, REQSIGN_KEYDIR_DEPTH_IN_MAX))
        return reqsign_error_set(err, REQSIGN_E_LIMIT, kd_src, REQSIGN_NO_OFFSET,
                                 "directory nested deeper than %d", REQSIGN_KEYDIR_DEPTH_IN_MAX);
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL)
        return reqsign_error_set(err, REQSIGN_E_JSON, kd_src, (size_t)jerr.position,
                                 "directory is not JSON: %s", jerr.text);
    enum reqsign_status st = REQSIGN_OK;
    const json_t *keys = json_object_get(root, "keys");
    if (!json_is_object(root) || !json_is_array(keys)) {
        st = reqsign_error_set(err, REQSIGN_E_JSON, kd_src, REQSIGN_NO_OFFSET,
                               "directory is not an object with a \"keys\" array");
        goto out;
    }
    size_t n = json_array_size(keys);
    if (n > kd->max_keys) {
        st = reqsign_error_set(err, REQSIGN_E_LIMIT, kd_src, REQSIGN_NO_OFFSET,
                               "directory lists %zu keys, more than %zu", n, kd->max_keys);
        goto out;
    }
    struct kd_snap *s = malloc(sizeof(*s) + n * sizeof(s->keys[0]));
    if (s == NULL) {
        st = reqsign_error_set(err, REQSIGN_E_NOMEM, kd_src, REQSIGN_NO_OFFSET, NULL);
        goto out;
    }
    s->n = 0;
    s->skipped = 0;
    for (size_t i = 0; i < n; i++) {
        struct kd_key *k = &s->keys[s->n];
        if (kd_entry(json_array_get(keys, i), k)) {
            k->ord = (uint32_t)i;
            s->n++;
        } else {
            s->skipped++;
        }
    }
    if (s->n > 1) {
        qsort(s->keys, s->n, sizeof(s->keys[0]), kd_key_cmp);
        size_t w = 1; /* equal keyids are adjacent, first in the document first */
        for (size_t r = 1; r < s->n; r++) {
            const struct kd_key *prev = &s->keys[w - 1];
            if (kd_cmp(prev->kid, prev->kid_len, s->keys[r].kid, s->keys[r].kid_len) == 0) {
                s->skipped++;
                continue;
            }
            if (w != r)
                s->keys[w] = s->keys[r];
            w++;
        }
        s->n = w;
    }
    *out = s;
out:
    json_decref(root);
    return st;
}

/* ---- fetching ---- */

struct kd_xfer {
    char *buf;
    size_t len, cap, max;
    bool too_large;
    char etag[REQSIGN_KEYDIR_ETAG_IN_MAX + 1];
    bool etag_too_long;
    int64_t max_age; /* -1: none seen */
    bool no_cache;
};

static size_t kd_on_body(char *p, size_t sz, size_t nm, void *ud)
{
    struct kd_xfer *x = ud;
    size_t n = sz * nm;
    if (n > x->max - x->len) {
        x->too_large = true;
        return 0; /* aborts the transfer */
    }
    if (x->len + n > x->cap) {
        size_t cap = x->cap != 0 ? x->cap : 16384;
        while (cap < x->len + n)
            cap = cap > x->max / 2 ? x->max : cap * 2;
        char *nb = realloc(x->buf, cap);
        if (nb == NULL)
            return 0;
        x->buf = nb;
        x->cap = cap;
    }
    memcpy(x->buf + x->len, p, n);
    x->len += n;
    return n;
}

static bool kd_tchar_space(char c)
{
    return c == ' ' || c == '\t';
}

/* Cache-Control directives in @v (@len bytes): max-age=N (or "N"), no-cache, no-store. */
static void kd_cache_control(struct kd_xfer *x, const char *v, size_t len)
{
    size_t i = 0;
    while (i < len) {
        while (i < len && (kd_tchar_space(v[i]) || v[i] == ','))
            i++;
        size_t s = i;
        while (i < len && v[i] != ',' && v[i] != '=')
            i++;
        size_t e = i;
        while (e > s && kd_tchar_space(v[e - 1]))
            e--;
        const char *name = v + s;
        size_t nl = e - s;
        if (i < len && v[i] == '=') {
            i++;
            while (i < len && kd_tchar_space(v[i]))
                i++;
            bool q = i < len && v[i] == '"';
            if (q)
                i++;
            int64_t val = 0;
            size_t d0 = i;
            while (i < len && v[i] >= '0' && v[i] <= '9') {
                if (val < INT64_MAX / 100) /* saturate; clamped later anyway */
                    val = val * 10 + (v[i] - '0');
                i++;
            }
            bool digits = i > d0;
            if (q && i < len && v[i] == '"')
                i++;
            while (i < len && v[i] != ',') /* rest of a value we do not understand */
                i++;
            if (nl == 7 && strncasecmp(name, "max-age", 7) == 0 && digits)
                x->max_age = x->max_age < 0 || val < x->max_age ? val : x->max_age;
        } else if ((nl == 8 && strncasecmp(name, "no-cache", 8) == 0) ||
                   (nl == 8 && strncasecmp(name, "no-store", 8) == 0)) {
            x->no_cache = true;
        }
    }
}

static size_t kd_on_header(char *p, size_t sz, size_t nm, void *ud)
{
    struct kd_xfer *x = ud;
    size_t n = sz * nm, len = n;
    while (len > 0 && (p[len - 1] == '\r' || p[len - 1] == '\n'))
        len--;
    if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) { /* a new response (after 1xx): reset */
        x->etag[0] = '\0';
        x->etag_too_long = false;
        x->max_age = -1;
        x->no_cache = false;
        return n;
    }
    const char *colon = memchr(p, ':', len);
    if (colon == NULL)
        return n;
    size_t nl = (size_t)(colon - p);
    const char *v = colon + 1;
    size_t vl = len - nl - 1;
    while (vl > 0 && kd_tchar_space(*v)) {
        v++;
        vl--;
    }
    while (vl > 0 && kd_tchar_space(v[vl - 1]))
        vl--;
    if (nl == 4 && strncasecmp(p, "etag", 4) == 0) {
        bool ok = vl > 0 && vl <= REQSIGN_KEYDIR_ETAG_IN_MAX;
        for (size_t i = 0; ok && i < vl; i++)
            ok = v[i] >= 0x20 && v[i] <= 0x7e;
        x->etag_too_long = !ok;
        if (ok) {
            memcpy(x->etag, v, vl);
            x->etag[vl] = '\0';
        } else {
            x->etag[0] = '\0';
        }
    } else if (nl == 13 && strncasecmp(p, "cache-control", 13) == 0) {
        kd_cache_control(x, v, vl);
    }
    return n;
}

/* The lifetime a response's Cache-Control gives, clamped. */
static int64_t kd_lifetime(const struct reqsign_keydir *kd, const struct kd_xfer *x)
{
    if (x->no_cache || x->max_age < 0)
        return kd->min_refresh;
    if (x->max_age < kd->min_refresh)
        return kd->min_refresh;
    if (x->max_age > kd->max_refresh)
        return kd->max_refresh;
    return x->max_age;
}

static enum reqsign_status kd_setup(struct reqsign_keydir *kd, struct kd_xfer *x,
                                    struct curl_slist **hdrs, char *errbuf)
{
    CURL *c = kd->curl;
    curl_easy_reset(c); /* keeps the connection cache */
    /* the IETF directory type first; a plain JWKS is the same document */
    struct curl_slist *h =
        curl_slist_append(NULL, "Accept: application/http-message-signatures-directory+json, "
                                "application/jwk-set+json;q=0.9, application/json;q=0.8");
    if (h == NULL)
        return REQSIGN_E_NOMEM;
    *hdrs = h;
    if (kd->etag[0] != '\0') {
        char line[sizeof(kd->etag) + 32];
        snprintf(line, sizeof(line), "If-None-Match: %s", kd->etag);
        struct curl_slist *h2 = curl_slist_append(h, line);
        if (h2 == NULL)
            return REQSIGN_E_NOMEM;
        *hdrs = h2;
    }
    bool ok = true;
    ok = ok && curl_easy_setopt(c, CURLOPT_URL, kd->url) == CURLE_OK;
#if LIBCURL_VERSION_NUM >= 0x075500
    ok = ok && curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK;
#else
    ok = ok && curl_easy_setopt(c, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS)) ==
                   CURLE_OK;
#endif
    ok = ok && curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L) == CURLE_OK;
    ok = ok && curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) == CURLE_OK;
    ok = ok && curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, kd->timeout_ms) == CURLE_OK;
    ok = ok && curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, kd->timeout_ms) == CURLE_OK;
    ok = ok && curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)kd->max_body) == CURLE_OK;
    ok = ok && curl_easy_setopt(c, CURLOPT_HTTPHEADER, *hdrs) == CURLE_OK;
    ok = ok && curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, kd_on_body) == CURLE_OK;
    ok = ok && curl_easy_setopt(c, CURLOPT_WRITEDATA, x) == CURLE_OK;
    ok = ok && curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, kd_on_header) == CURLE_OK;
    ok = ok && curl_easy_setopt(c, CURLOPT_HEADERDATA, x) == CURLE_OK;
    ok = ok && curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf) == CURLE_OK;
    ok = ok && curl_easy_setopt(c, CURLOPT_USERAGENT, "reqsign-keydir") == CURLE_OK;
    return ok ? REQSIGN_OK : REQSIGN_E_HTTP;
}

/* One fetch; fetch_mu held. @now: the clock read before the request. */
static enum reqsign_status kd_fetch(struct reqsign_keydir *kd, int64_t now,
                                    struct reqsign_error *err)
{
    struct kd_xfer x;
    memset(&x, 0, sizeof(x));
    x.max = kd->max_body;
    x.max_age = -1;
    struct curl_slist *hdrs = NULL;
    char errbuf[CURL_ERROR_SIZE];
    errbuf[0] = '\0';
    enum reqsign_status st = kd_setup(kd, &x, &hdrs, errbuf);
    if (st != REQSIGN_OK) {
        curl_slist_free_all(hdrs);
        atomic_fetch_add(&kd->fetch_errors, 1);
        return reqsign_error_set(err, st, kd_src, REQSIGN_NO_OFFSET,
                                 "cannot set up the directory request");
    }
    atomic_fetch_add(&kd->fetches, 1);
    CURLcode cc = curl_easy_perform(kd->curl);
    long status = 0;
    curl_easy_getinfo(kd->curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_setopt(kd->curl, CURLOPT_ERRORBUFFER, (char *)NULL); /* errbuf goes out of scope */
    curl_slist_free_all(hdrs);

    struct kd_snap *s = NULL;
    if (cc != CURLE_OK) {
        if (x.too_large || cc == CURLE_FILESIZE_EXCEEDED) {
            atomic_fetch_add(&kd->parse_errors, 1);
            st = reqsign_error_set(err, REQSIGN_E_BODY_TOO_LARGE, kd_src, REQSIGN_NO_OFFSET,
                                   "directory larger than %zu bytes", kd->max_body);
        } else {
            atomic_fetch_add(&kd->fetch_errors, 1);
            st = reqsign_error_set(err, REQSIGN_E_HTTP, kd_src, REQSIGN_NO_OFFSET,
                                   "directory fetch failed: %s%s%s", curl_easy_strerror(cc),
                                   errbuf[0] ? ": " : "", errbuf);
        }
        goto out;
    }
    if (status == 304 && kd->etag[0] != '\0') {
        pthread_rwlock_wrlock(&kd->lock);
        bool have = kd->snap != NULL;
        if (have) {
            kd->fetched_at = now;
            kd->lifetime = kd_lifetime(kd, &x);
        }
        pthread_rwlock_unlock(&kd->lock);
        if (have) {
            atomic_fetch_add(&kd->not_modified, 1);
            goto out;
        }
    }
    if (status != 200) {
        atomic_fetch_add(&kd->fetch_errors, 1);
        st = reqsign_error_set(err, REQSIGN_E_HTTP, kd_src, REQSIGN_NO_OFFSET,
                               "directory answered HTTP %ld", status);
        goto out;
    }
    st = kd_parse(kd, x.buf != NULL ? x.buf : "", x.len, &s, err);
    if (st != REQSIGN_OK) {
        atomic_fetch_add(&kd->parse_errors, 1);
        goto out;
    }
    pthread_rwlock_wrlock(&kd->lock);
    struct kd_snap *old = kd->snap;
    kd->snap = s;
    kd->fetched_at = now;
    kd->lifetime = kd_lifetime(kd, &x);
    pthread_rwlock_unlock(&kd->lock);
    free(old);
    if (x.etag[0] != '\0')
        memcpy(kd->etag, x.etag, sizeof(kd->etag));
    else
        kd->etag[0] = '\0';
    atomic_fetch_add(&kd->updates, 1);
out:
    free(x.buf);
    return st;
}

/* ---- lookup ---- */

struct kd_view {
    bool have, found;
    int64_t fetched_at, lifetime;
    uint8_t public_key[REQSIGN_ED25519_PUBLIC_LEN];
};

static void kd_peek(struct reqsign_keydir *kd, const char *kid, size_t len, struct kd_view *v)
{
    memset(v, 0, sizeof(*v));
    pthread_rwlock_rdlock(&kd->lock);
    if (kd->snap != NULL) {
        v->have = true;
        v->fetched_at = kd->fetched_at;
        v->lifetime = kd->lifetime;
        const struct kd_key *k = kd_find(kd->snap, kid, len);
        if (k != NULL) {
            v->found = true;
            memcpy(v->public_key, k->public_key, sizeof(v->public_key));
        }
    }
    pthread_rwlock_unlock(&kd->lock);
}

static enum reqsign_status kd_hit(struct reqsign_keydir *kd, const struct kd_view *v,
                                  struct reqsign_key_info *out)
{
    atomic_fetch_add_explicit(&kd->hits, 1, memory_order_relaxed);
    memcpy(out->public_key, v->public_key, sizeof(out->public_key));
    out->state = REQSIGN_KEY_ACTIVE;
    out->scopes[0] = '\0';
    return REQSIGN_OK;
}

static enum reqsign_status kd_miss(struct reqsign_keydir *kd, struct reqsign_error *err)
{
    atomic_fetch_add_explicit(&kd->misses, 1, memory_order_relaxed);
    return reqsign_error_set(err, REQSIGN_E_KEY_UNKNOWN, kd_src, REQSIGN_NO_OFFSET,
                             "no key with this keyid in the directory");
}

/* see reqsign/keydir.h */
enum reqsign_status reqsign_keydir_lookup(void *ctx, const char *keyid, size_t keyid_len,
                                          struct reqsign_key_info *out, struct reqsign_error *err)
{
    reqsign_error_clear(err);
    struct reqsign_keydir *kd = ctx;
    if (out != NULL)
        memset(out, 0, sizeof(*out));
    if (kd == NULL || out == NULL)
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, kd_src, REQSIGN_NO_OFFSET,
                                 "keydir and output are required");
    if (keyid == NULL || keyid_len == 0 || keyid_len > REQSIGN_KEYID_IN_MAX)
        return kd_miss(kd, err); /* no directory entry can have it */

    const int64_t now = kd_now(kd);
    struct kd_view v;
    kd_peek(kd, keyid, keyid_len, &v);
    uint64_t age = kd_absdiff(now, v.fetched_at);
    if (v.have && age < (uint64_t)v.lifetime) {
        if (v.found)
            return kd_hit(kd, &v, out);
        if (age < (uint64_t)kd->min_refresh)
            return kd_miss(kd, err); /* too recent to ask again */
    }

    /* Fetch wanted: the snapshot is stale or missing, or the keyid may be new. */
    bool usable = v.have && age < (uint64_t)kd->max_refresh;
    if (v.found && usable) {
        if (pthread_mutex_trylock(&kd->fetch_mu) != 0)
            return kd_hit(kd, &v, out); /* someone is fetching; the stale answer will do */
    } else {
        pthread_mutex_lock(&kd->fetch_mu);
    }
    if (kd->attempted && kd_absdiff(now, kd->last_attempt) < (uint64_t)kd->min_refresh) {
        atomic_fetch_add_explicit(&kd->rate_limited, 1, memory_order_relaxed);
    } else {
        kd->attempted = true;
        kd->last_attempt = now;
        (void)kd_fetch(kd, now, NULL); /* failures are counted; the snapshot decides below */
    }
    pthread_mutex_unlock(&kd->fetch_mu);

    kd_peek(kd, keyid, keyid_len, &v);
    age = kd_absdiff(now, v.fetched_at);
    if (!v.have || age >= (uint64_t)kd->max_refresh) {
        atomic_fetch_add_explicit(&kd->unavailable, 1, memory_order_relaxed);
        if (!v.have)
            return reqsign_error_set(err, REQSIGN_E_KEYSTORE_UNAVAILABLE, kd_src, REQSIGN_NO_OFFSET,
                                     "key directory not fetched yet");
        return reqsign_error_set(err, REQSIGN_E_KEYSTORE_UNAVAILABLE, kd_src, REQSIGN_NO_OFFSET,
                                 "key directory not fetched for %lld s or more",
                                 (long long)kd->max_refresh);
    }
    return v.found ? kd_hit(kd, &v, out) : kd_miss(kd, err);
}

/* see reqsign/keydir.h */
enum reqsign_status reqsign_keydir_refresh(struct reqsign_keydir *kd, struct reqsign_error *err)
{
    reqsign_error_clear(err);
    if (kd == NULL)
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, kd_src, REQSIGN_NO_OFFSET,
                                 "keydir is required");
    const int64_t now = kd_now(kd);
    pthread_mutex_lock(&kd->fetch_mu);
    kd->attempted = true;
    kd->last_attempt = now;
    enum reqsign_status st = kd_fetch(kd, now, err);
    pthread_mutex_unlock(&kd->fetch_mu);
    return st;
}

/* see reqsign/keydir.h */
void reqsign_keydir_stats(struct reqsign_keydir *kd, struct reqsign_keydir_stats *out)
{
    if (out == NULL)
        return;
    memset(out, 0, sizeof(*out));
    if (kd == NULL)
        return;
    out->hits = atomic_load(&kd->hits);
    out->misses = atomic_load(&kd->misses);
    out->unavailable = atomic_load(&kd->unavailable);
    out->fetches = atomic_load(&kd->fetches);
    out->updates = atomic_load(&kd->updates);
    out->not_modified = atomic_load(&kd->not_modified);
    out->fetch_errors = atomic_load(&kd->fetch_errors);
    out->parse_errors = atomic_load(&kd->parse_errors);
    out->rate_limited = atomic_load(&kd->rate_limited);
    pthread_rwlock_rdlock(&kd->lock);
    if (kd->snap != NULL) {
        out->keys = kd->snap->n;
        out->skipped = kd->snap->skipped;
        out->fetched_at = kd->fetched_at;
        out->lifetime = kd->lifetime;
    }
    pthread_rwlock_unlock(&kd->lock);
}

/* ---- life cycle ---- */

/* see reqsign/keydir.h */
void reqsign_keydir_free(struct reqsign_keydir *kd)
{
    if (kd == NULL)
        return;
    if (kd->curl != NULL)
        curl_easy_cleanup(kd->curl);
    free(kd->snap);
    free(kd->url);
    pthread_rwlock_destroy(&kd->lock);
    pthread_mutex_destroy(&kd->fetch_mu);
    free(kd);
}

static struct reqsign_keydir *kd_fail(struct reqsign_keydir *kd, struct reqsign_error *err,
                                      enum reqsign_status code, const char *msg)
{
    reqsign_keydir_free(kd);
    reqsign_error_set(err, code, kd_src, REQSIGN_NO_OFFSET, "%s", msg);
    return NULL;
}

static bool kd_url_ok(const char *url)
{
    size_t n = strnlen(url, REQSIGN_KEYDIR_URL_IN_MAX + 1);
    if (n > REQSIGN_KEYDIR_URL_IN_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)url[i] <= 0x20 || (unsigned char)url[i] >= 0x7f)
            return false;
    return (n > 7 && strncasecmp(url, "http://", 7) == 0) ||
           (n > 8 && strncasecmp(url, "https://", 8) == 0);
}

/* see reqsign/keydir.h */
struct reqsign_keydir *reqsign_keydir_new(const struct reqsign_keydir_opts *o,
                                          struct reqsign_error *err)
{
    reqsign_error_clear(err);
    if (o == NULL || o->url == NULL || !kd_url_ok(o->url))
        return kd_fail(NULL, err, REQSIGN_E_INVALID_ARG,
                       "an http:// or https:// directory URL is required");
    if (o->min_refresh < 0 || o->max_refresh < 0 || o->timeout_ms < 0)
        return kd_fail(NULL, err, REQSIGN_E_INVALID_ARG,
                       "refresh intervals and timeout must not be negative");
    int64_t min = o->min_refresh != 0 ? o->min_refresh : REQSIGN_KEYDIR_DEFAULT_MIN_REFRESH;
    int64_t max = o->max_refresh != 0 ? o->max_refresh : REQSIGN_KEYDIR_DEFAULT_MAX_REFRESH;
    if (min > max)
        return kd_fail(NULL, err, REQSIGN_E_INVALID_ARG, "min_refresh must not exceed max_refresh");
    /* libcurl's global setup, through the one documented place (reqsign/util.h);
     * idempotent, and a no-op when the program already called it. */
    if (reqsign_global_init() != REQSIGN_OK)
        return kd_fail(NULL, err, REQSIGN_E_HTTP, "libcurl initialisation failed");

    struct reqsign_keydir *kd = calloc(1, sizeof(*kd));
    if (kd == NULL)
        return kd_fail(NULL, err, REQSIGN_E_NOMEM, "out of memory");
    if (pthread_rwlock_init(&kd->lock, NULL) != 0) {
        free(kd);
        return kd_fail(NULL, err, REQSIGN_E_NOMEM, "cannot create a lock");
    }
    if (pthread_mutex_init(&kd->fetch_mu, NULL) != 0) {
        pthread_rwlock_destroy(&kd->lock);
        free(kd);
        return kd_fail(NULL, err, REQSIGN_E_NOMEM, "cannot create a lock");
    }
    kd->min_refresh = min;
    kd->max_refresh = max;
    kd->timeout_ms = o->timeout_ms != 0 ? o->timeout_ms : REQSIGN_KEYDIR_DEFAULT_TIMEOUT_MS;
    kd->max_body = o->max_body != 0 ? o->max_body : REQSIGN_KEYDIR_DEFAULT_MAX_BODY;
    kd->max_keys = o->max_keys != 0 ? o->max_keys : REQSIGN_KEYDIR_DEFAULT_MAX_KEYS;
    if (kd->max_keys > UINT32_MAX)
        kd->max_keys = UINT32_MAX;
    kd->clock = o->clock;
    kd->clock_ctx = o->clock_ctx;
    kd->url = strdup(o->url);
    if (kd->url == NULL)
        return kd_fail(kd, err, REQSIGN_E_NOMEM, "out of memory");
    kd->curl = curl_easy_init();
    if (kd->curl == NULL)
        return kd_fail(kd, err, REQSIGN_E_HTTP, "curl_easy_init failed");
    return kd;
}
