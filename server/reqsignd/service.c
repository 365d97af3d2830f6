/* reqsignd's request handling: see service.h and docs/KEYSERVICE.md.
 *
 * Every /v1/ request is a reqsign-signed request, verified in two phases
 * (headers before the body, then the body streamed into the digest check),
 * and its key must carry the scope keys:admin. The service stores public keys
 * and metadata only; a generated private key exists in memory for the one
 * response that carries it and is wiped once that response is sent.
 */
#include "service.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>

#include <reqsign/key.h>
#include <reqsign/keycache.h>
#include <reqsign/keystore.h>
#include <reqsign/nonce.h>
#include <reqsign/verifier.h>

#include "util.h"

#define ADMIN_SCOPE REQSIGND_ADMIN_SCOPE
#define MAX_SCOPES REQSIGND_MAX_SCOPES
#define LIST_DEFAULT 100
#define PEM_MAX 512
#define JWK_MAX 256
#define DIRECTORY_PATH "/.well-known/http-message-signatures-directory"

struct reqsignd_service {
    struct reqsign_keystore *store; /* borrowed */
    struct reqsign_keycache *cache;
    struct reqsign_nonce_store *nonces;
    int own_nonces; /* the in-memory store made here (else borrowed from the options) */
    struct reqsign_verifier *verifier;
    char service_url[300]; /* "service" in credentials; empty: from the request's Host */
    size_t max_body;       /* in-process requests */
};

enum route { R_NONE = 0, R_HEALTH, R_DIRECTORY, R_KEYS, R_KEY };

/* Per-request state of a /v1/ request. */
struct call {
    enum route route;
    struct reqsign_verification vs;
    char *body; /* the JSON body (public data only), at most the body limit */
    size_t len, cap;
};

/* ---- time ---- */

static int64_t now_s(void)
{
    return (int64_t)time(NULL);
}

/* RFC 3339 UTC, "YYYY-MM-DDTHH:MM:SSZ". */
static void fmt_time(int64_t t, char out[32])
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (gmtime_r(&tt, &tm) == NULL || strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, 32, "1970-01-01T00:00:00Z");
}

static json_t *time_or_null(int64_t t)
{
    char buf[32];
    if (t == 0)
        return json_null();
    fmt_time(t, buf);
    return json_string(buf);
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? (unsigned)-3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static int digits(const char *s, size_t n, unsigned *out)
{
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    *out = v;
    return 0;
}

/* RFC 3339 date-time: YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM). 0 or -1. */
static int parse_rfc3339(const char *s, int64_t *out)
{
    size_t n = strlen(s);
    unsigned y, mo, d, h, mi, se, oh = 0, om = 0;
    if (n < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' ||
        s[16] != ':' || digits(s, 4, &y) || digits(s + 5, 2, &mo) || digits(s + 8, 2, &d) ||
        digits(s + 11, 2, &h) || digits(s + 14, 2, &mi) || digits(s + 17, 2, &se))
        return -1;
    size_t i = 19;
    if (s[i] == '.') {
        i++;
        size_t f = i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == f)
            return -1;
    }
    int sign = 0;
    if (i < n && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i < n && (s[i] == '+' || s[i] == '-')) {
        sign = s[i] == '+' ? 1 : -1;
        if (n - i != 6 || s[i + 3] != ':' || digits(s + i + 1, 2, &oh) ||
            digits(s + i + 4, 2, &om) || oh > 23 || om > 59)
            return -1;
        i += 6;
    } else {
        return -1;
    }
    if (i != n)
        return -1;
    static const unsigned mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || (mo == 2 && d == 29 && !leap) ||
        h > 23 || mi > 59 || se > 60)
        return -1;
    int64_t t = days_from_civil((int64_t)y, mo, d) * 86400 + (int64_t)h * 3600 + mi * 60 + se;
    t -= sign * ((int64_t)oh * 3600 + (int64_t)om * 60);
    *out = t;
    return 0;
}

/* ---- JSON of keys ---- */

static json_t *scopes_json(const char *scopes)
{
    json_t *a = json_array();
    const char *p = scopes;
    while (a != NULL && *p) {
        while (*p == ' ')
            p++;
        const char *e = p;
        while (*e && *e != ' ')
            e++;
        if (e > p)
            json_array_append_new(a, json_stringn(p, (size_t)(e - p)));
        p = e;
    }
    return a;
}

/* The public key as PEM and as a JWK object. 0 or -1. */
static int public_forms(const uint8_t pk[REQSIGN_ED25519_PUBLIC_LEN], char pem[PEM_MAX],
                        json_t **jwk)
{
    struct reqsign_key *key = NULL;
    char jbuf[JWK_MAX];
    size_t n;
    *jwk = NULL;
    if (reqsign_key_from_public(pk, &key, NULL) != REQSIGN_OK)
        return -1;
    int ok = reqsign_key_public_pem(key, pem, PEM_MAX, &n) == REQSIGN_OK &&
             reqsign_key_public_jwk(key, jbuf, sizeof(jbuf), &n) == REQSIGN_OK;
    reqsign_key_free(key);
    if (ok)
        *jwk = json_loadb(jbuf, n, 0, NULL);
    return *jwk != NULL ? 0 : -1;
}

static const char *key_status(const struct reqsign_key_record *k, int64_t now)
{
    if (k->revoked_at != 0)
        return "revoked";
    if (k->expires_at != 0 && now >= k->expires_at)
        return "expired";
    return "active";
}

/* @label as a JSON string. A label stored before labels were checked (a
 * legacy row) may not be UTF-8, which jansson refuses (the whole answer then
 * failed as "out of memory"): each byte that does not start a well-formed
 * sequence becomes U+FFFD. NULL only when out of memory. */
static json_t *label_json(const char *label)
{
    json_t *j = json_string(label);
    if (j != NULL)
        return j;
    size_t n = strlen(label);
    char *buf = malloc(3 * n + 1), *o = buf;
    if (buf == NULL)
        return NULL;
    for (const unsigned char *p = (const unsigned char *)label; *p;) {
        unsigned char c = *p;
        size_t k = c < 0x80 ? 1 : (c >= 0xc2 && c <= 0xdf) ? 2 : (c & 0xf0) == 0xe0 ? 3
                                  : (c >= 0xf0 && c <= 0xf4) ? 4 : 0;
        for (size_t i = 1; i < k; i++)
            if ((p[i] & 0xc0) != 0x80)
                k = 0;
        /* overlong 3-byte, surrogates, overlong 4-byte and > U+10FFFF */
        if (k == 3 && ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] >= 0xa0)))
            k = 0;
        if (k == 4 && ((c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] >= 0x90)))
            k = 0;
        if (k == 0) {
            memcpy(o, "\xef\xbf\xbd", 3);
            o += 3;
            p++;
        } else {
            memcpy(o, p, k);
            o += k;
            p += k;
        }
    }
    *o = '\0';
    j = json_string(buf);
    free(buf);
    return j;
}

/* A record: keyid, alg, public_key, jwk, scopes, label, created_at,
 * expires_at, revoked_at, status. */
static json_t *record_json(const struct reqsign_key_record *k, int64_t now)
{
    char pem[PEM_MAX];
    json_t *jwk;
    if (public_forms(k->public_key, pem, &jwk) != 0)
        return NULL;
    return json_pack("{s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:s}", "keyid", k->keyid, "alg",
                     "ed25519", "public_key", pem, "jwk", jwk, "scopes", scopes_json(k->scopes),
                     "label", label_json(k->label), "created_at", time_or_null(k->created_at), "expires_at",
                     time_or_null(k->expires_at), "revoked_at", time_or_null(k->revoked_at),
                     "status", key_status(k, now));
}

/* The credential without its private key. */
static json_t *credential_json(const struct reqsign_key_record *k, const char *service)
{
    char pem[PEM_MAX];
    json_t *jwk;
    if (public_forms(k->public_key, pem, &jwk) != 0)
        return NULL;
    json_decref(jwk);
    return json_pack("{s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:o}", "keyid", k->keyid, "alg",
                     "ed25519", "public_key", pem, "scopes", scopes_json(k->scopes), "label",
                     label_json(k->label), "created_at", time_or_null(k->created_at), "expires_at",
                     time_or_null(k->expires_at), "service",
                     service != NULL && *service ? json_string(service) : json_null());
}

/* JSON-escape @s into @out at *@n (bounds-checked). 0 or -1. */
static int put_escaped(char *out, size_t cap, size_t *n, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char e[6];
        size_t el = 0;
        if (*p == '"' || *p == '\\') {
            e[0] = '\\';
            e[1] = (char)*p;
            el = 2;
        } else if (*p == '\n') {
            e[0] = '\\';
            e[1] = 'n';
            el = 2;
        } else if (*p < 0x20) {
            e[0] = '\\';
            e[1] = 'u';
            e[2] = '0';
            e[3] = '0';
            e[4] = hex[*p >> 4];
            e[5] = hex[*p & 15];
            el = 6;
        } else {
            e[0] = (char)*p;
            el = 1;
        }
        if (*n + el >= cap)
            return -1;
        memcpy(out + *n, e, el);
        *n += el;
    }
    return 0;
}

/*
 * The credential with its private key, in a malloc'd buffer the caller wipes
 * (reqsign_memzero) and frees. The private PEM never goes through jansson
 * (whose buffers are freed without wiping): the public part is serialized by
 * jansson and the private_key member is spliced in after "alg".
 */
static char *secret_credential(const struct reqsign_key *key, const struct reqsign_key_record *k,
                               const char *service, size_t *out_len)
{
    json_t *pub = credential_json(k, service);
    char *pubs = pub != NULL ? json_dumps(pub, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(pub);
    if (pubs == NULL)
        return NULL;
    static const char anchor[] = "\"alg\": \"ed25519\",";
    char *at = strstr(pubs, anchor);
    char pem[PEM_MAX]; /* secret */
    size_t pem_len = 0;
    char *out = NULL;
    size_t cap = strlen(pubs) + 2 * PEM_MAX + 64, n = 0;
    if (at != NULL && reqsign_key_private_pem(key, pem, sizeof(pem), &pem_len) == REQSIGN_OK)
        out = malloc(cap);
    if (out != NULL) {
        size_t head = (size_t)(at - pubs) + sizeof(anchor) - 1;
        static const char mid[] = "\n  \"private_key\": \"";
        memcpy(out, pubs, head);
        n = head;
        memcpy(out + n, mid, sizeof(mid) - 1);
        n += sizeof(mid) - 1;
        if (put_escaped(out, cap, &n, pem) != 0 || n + 2 + strlen(at) + 2 > cap) {
            reqsign_memzero(out, cap);
            free(out);
            out = NULL;
        } else {
            out[n++] = '"';
            out[n++] = ',';
            size_t rest = strlen(at + sizeof(anchor) - 1);
            memcpy(out + n, at + sizeof(anchor) - 1, rest);
            n += rest;
            out[n++] = '\n';
            out[n] = '\0';
        }
    }
    reqsign_memzero(pem, sizeof(pem));
    free(pubs);
    *out_len = n;
    return out;
}

/* ---- request handling ---- */

static int has_scope(const char *scopes, const char *want)
{
    size_t wl = strlen(want);
    for (const char *p = scopes; *p;) {
        while (*p == ' ')
            p++;
        const char *e = p;
        while (*e && *e != ' ')
            e++;
        if ((size_t)(e - p) == wl && memcmp(p, want, wl) == 0)
            return 1;
        p = e;
    }
    return 0;
}


/* Percent-decode @s (@n bytes) into @out (NUL-terminated). 0 or -1. */
static int pct_decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= n)
                return -1;
            int hi = reqsign__hexval((unsigned char)s[i + 1]);
            int lo = reqsign__hexval((unsigned char)s[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = (char)(hi * 16 + lo);
            i += 2;
        } else if (c == '+') {
            c = ' ';
        }
        if (c == '\0' || o + 1 >= cap)
            return -1;
        out[o++] = c;
    }
    out[o] = '\0';
    return 0;
}

/* The keyid of /v1/keys/{keyid}, decoded. 0 or -1 (not this route). */
static int key_from_path(const struct reqsign_httpd_req *r, char keyid[REQSIGN_KEYID_MAX_LEN + 1])
{
    static const char pre[] = "/v1/keys/";
    size_t pl = sizeof(pre) - 1;
    if (r->path.len <= pl || memcmp(r->path.ptr, pre, pl) != 0 ||
        memchr(r->path.ptr + pl, '/', r->path.len - pl) != NULL)
        return -1;
    return pct_decode(r->path.ptr + pl, r->path.len - pl, keyid, REQSIGN_KEYID_MAX_LEN + 1);
}

static enum route route_of(const struct reqsign_httpd_req *r)
{
    char keyid[REQSIGN_KEYID_MAX_LEN + 1];
    if (reqsign_httpd_path_is(r, "/healthz"))
        return R_HEALTH;
    if (reqsign_httpd_path_is(r, DIRECTORY_PATH))
        return R_DIRECTORY;
    if (reqsign_httpd_path_is(r, "/v1/keys"))
        return R_KEYS;
    if (key_from_path(r, keyid) == 0)
        return R_KEY;
    return R_NONE;
}

/* 405 unless @method is one of @allow ("GET, POST"). 1 if answered. */
static int check_method(struct reqsign_httpd_req *r, const char *allow)
{
    size_t ml = strlen(r->method);
    for (const char *p = allow; *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *e = p;
        while (*e && *e != ',')
            e++;
        if ((size_t)(e - p) == ml && memcmp(p, r->method, ml) == 0)
            return 0;
        p = e;
    }
    reqsign_httpd_fail(r, REQSIGN_E_METHOD_NOT_ALLOWED, "%.32s is not allowed here; use %s",
                       r->method, allow);
    reqsign_httpd_add_header(r, "Allow", allow);
    return 1;
}

static void store_error(struct reqsign_httpd_req *r, const struct reqsign_error *err)
{
    struct reqsign_error e = *err;
    if (e.code == REQSIGN_E_KEY_UNKNOWN) {
        reqsign_error_clear(&e);
        reqsign_httpd_fail(r, REQSIGN_E_NOT_FOUND, "no such key");
        return;
    }
    reqsign_httpd_respond_error(r, &e);
}

static void do_health(struct reqsign_httpd_req *r)
{
    static const char ok[] = "{\"status\":\"ok\"}";
    reqsign_httpd_respond(r, 200, "application/json", ok, sizeof(ok) - 1);
}

/* The public directory: JWKS of keys neither revoked nor expired. */
static void do_directory(struct reqsignd_service *s, struct reqsign_httpd_req *r)
{
    struct reqsign_error err;
    reqsign_error_clear(&err);
    struct reqsign_key_record *page = calloc(REQSIGN_KEYSTORE_PAGE_MAX, sizeof(*page));
    json_t *keys = json_array();
    char after[REQSIGN_KEYID_MAX_LEN + 1] = "";
    int64_t now = now_s();
    if (page == NULL || keys == NULL) {
        reqsign_httpd_fail(r, REQSIGN_E_NOMEM, "out of memory");
        goto out;
    }
    for (;;) {
        size_t n = 0;
        if (reqsign_keystore_list(s->store, after, REQSIGN_KEYSTORE_PAGE_MAX, page, &n, &err) !=
            REQSIGN_OK) {
            store_error(r, &err);
            goto out;
        }
        for (size_t i = 0; i < n; i++) {
            char pem[PEM_MAX];
            json_t *jwk;
            if (strcmp(key_status(&page[i], now), "active") != 0 ||
                public_forms(page[i].public_key, pem, &jwk) != 0)
                continue;
            json_object_set_new(jwk, "kid", json_string(page[i].keyid));
            json_object_set_new(jwk, "alg", json_string("ed25519"));
            json_object_set_new(jwk, "use", json_string("sig"));
            json_array_append_new(keys, jwk);
        }
        if (n < REQSIGN_KEYSTORE_PAGE_MAX)
            break;
        snprintf(after, sizeof(after), "%s", page[n - 1].keyid);
    }
    json_t *doc = json_pack("{s:O}", "keys", keys);
    reqsign_httpd_respond_json_cache(r, 200, doc, "max-age=60");
    json_decref(doc);
out:
    json_decref(keys);
    free(page);
}

/* GET /v1/keys?limit=N&after=KEYID */
static void do_list(struct reqsignd_service *s, struct reqsign_httpd_req *r)
{
    size_t limit = LIST_DEFAULT;
    char after[REQSIGN_KEYID_MAX_LEN + 1] = "";
    const char *q = r->query.ptr, *end = r->query.ptr + r->query.len;
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *pe = amp != NULL ? amp : end;
        const char *eq = memchr(q, '=', (size_t)(pe - q));
        const char *v = eq != NULL ? eq + 1 : pe;
        size_t kl = (size_t)((eq != NULL ? eq : pe) - q), vl = (size_t)(pe - v);
        if (kl == 5 && memcmp(q, "limit", 5) == 0) {
            char num[8];
            int64_t lv;
            if (vl == 0 || vl >= sizeof(num)) {
                reqsign_httpd_fail(r, REQSIGN_E_INVALID_REQUEST, "limit must be 1..%d",
                                   REQSIGN_KEYSTORE_PAGE_MAX);
                return;
            }
            memcpy(num, v, vl);
            num[vl] = '\0';
            if (reqsign_httpd_parse_seconds(num, &lv) != 0 || lv < 1 ||
                lv > REQSIGN_KEYSTORE_PAGE_MAX) {
                reqsign_httpd_fail(r, REQSIGN_E_INVALID_REQUEST, "limit must be 1..%d",
                                   REQSIGN_KEYSTORE_PAGE_MAX);
                return;
            }
            limit = (size_t)lv;
        } else if (kl == 5 && memcmp(q, "after", 5) == 0) {
            if (pct_decode(v, vl, after, sizeof(after)) != 0) {
                reqsign_httpd_fail(r, REQSIGN_E_INVALID_REQUEST, "after must be a keyid");
                return;
            }
        }
        q = pe + (pe < end);
    }

    struct reqsign_error err;
    reqsign_error_clear(&err);
    /* one more than asked, to know whether this is the last page */
    size_t want = limit < REQSIGN_KEYSTORE_PAGE_MAX ? limit + 1 : limit;
    struct reqsign_key_record *page = calloc(want, sizeof(*page));
    size_t n = 0;
    if (page == NULL) {
        reqsign_httpd_fail(r, REQSIGN_E_NOMEM, "out of memory");
        return;
    }
    if (reqsign_keystore_list(s->store, after, want, page, &n, &err) != REQSIGN_OK) {
        store_error(r, &err);
        free(page);
        return;
    }
    int more = n > limit;
    if (n > limit)
        n = limit;
    if (!more && n == REQSIGN_KEYSTORE_PAGE_MAX) { /* a full page of the maximum: probe */
        struct reqsign_key_record probe;
        size_t pn = 0;
        if (reqsign_keystore_list(s->store, page[n - 1].keyid, 1, &probe, &pn, &err) !=
            REQSIGN_OK) {
            store_error(r, &err);
            free(page);
            return;
        }
        more = pn > 0;
    }
    json_t *keys = json_array();
    int64_t now = now_s();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(keys, record_json(&page[i], now));
    json_t *doc = json_pack("{s:o, s:o}", "keys", keys, "next",
                            more && n > 0 ? json_string(page[n - 1].keyid) : json_null());
    free(page);
    if (doc == NULL) {
        reqsign_httpd_fail(r, REQSIGN_E_NOMEM, "out of memory");
        return;
    }
    reqsign_httpd_respond_json(r, 200, doc);
    json_decref(doc);
}

/*
 * The signing key may have been revoked (or have expired) after its request's
 * headers passed, while the body was still arriving (up to
 * REQSIGN_HTTPD_REQUEST_SECONDS later). Called immediately before a change:
 * the key's record is read from the store itself, not the key cache. 0 if the
 * key is still active, else the request is answered (401 key_revoked,
 * key_expired or key_unknown, or the store's error) and -1.
 */
static int signer_still_active(struct reqsignd_service *s, struct reqsign_httpd_req *r,
                               const struct call *c)
{
    struct reqsign_key_record rec;
    struct reqsign_error err;
    reqsign_error_clear(&err);
    size_t kl = strlen(c->vs.keyid);
    if (kl == 0) {
        reqsign_httpd_fail(r, REQSIGN_E_INTERNAL, "no verified key");
        return -1;
    }
    if (reqsign_keystore_get(s->store, c->vs.keyid, kl, &rec, &err) != REQSIGN_OK) {
        if (err.code == REQSIGN_E_KEY_UNKNOWN) {
            reqsign_error_clear(&err);
            reqsign_httpd_fail(r, REQSIGN_E_KEY_UNKNOWN, "the signing key is no longer known");
        } else {
            reqsign_httpd_respond_error(r, &err);
        }
        return -1;
    }
    if (rec.revoked_at != 0) {
        reqsign_httpd_fail(r, REQSIGN_E_KEY_REVOKED, "the signing key was revoked");
        return -1;
    }
    if (rec.expires_at != 0 && now_s() >= rec.expires_at) {
        reqsign_httpd_fail(r, REQSIGN_E_KEY_EXPIRED, "the signing key has expired");
        return -1;
    }
    if (!has_scope(rec.scopes, ADMIN_SCOPE)) {
        reqsign_httpd_fail(r, REQSIGN_E_SCOPE, "key lacks the scope " ADMIN_SCOPE);
        return -1;
    }
    return 0;
}

static void do_get(struct reqsignd_service *s, struct reqsign_httpd_req *r, const struct call *c,
                   int revoke)
{
    char keyid[REQSIGN_KEYID_MAX_LEN + 1];
    struct reqsign_key_record rec;
    struct reqsign_error err;
    reqsign_error_clear(&err);
    if (key_from_path(r, keyid) != 0) {
        reqsign_httpd_fail(r, REQSIGN_E_NOT_FOUND, "no such key");
        return;
    }
    if (revoke) {
        if (signer_still_active(s, r, c) != 0)
            return;
        if (reqsign_keystore_revoke(s->store, keyid, strlen(keyid), now_s(), &err) != REQSIGN_OK) {
            store_error(r, &err);
            return;
        }
        /* this process stops accepting the key at once; others within the cache TTL */
        reqsign_keycache_invalidate(s->cache, keyid, strlen(keyid));
    }
    if (reqsign_keystore_get(s->store, keyid, strlen(keyid), &rec, &err) != REQSIGN_OK) {
        store_error(r, &err);
        return;
    }
    json_t *doc = record_json(&rec, now_s());
    if (doc == NULL) {
        reqsign_httpd_fail(r, REQSIGN_E_INTERNAL, "cannot encode the key");
        return;
    }
    reqsign_httpd_respond_json(r, 200, doc);
    json_decref(doc);
}

static int scope_ok(const char *s, size_t n)
{
    if (n < 1 || n > REQSIGN_SCOPE_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == ':' || c == '.' ||
              c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

/* @err := a fresh error with @code and a printf-style message (what
 * reqsign_httpd_fail() answers). Return: @code. */
static enum reqsign_status
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    set_error(struct reqsign_error *err, enum reqsign_status code, const char *fmt, ...)
{
    va_list ap;
    reqsign_error_clear(err);
    err->code = code;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    return code;
}

/* 1 if @s (UTF-8: jansson checked it) holds no control character: C0
 * (U+0000..U+001F), DEL (U+007F) or C1 (U+0080..U+009F, UTF-8 C2 80..C2 9F).
 * A label is printed by `reqsign keys list`; terminals act on these. */
static int label_text_ok(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p == 0x7f)
            return 0;
        if (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f)
            return 0;
        /* bidi controls and line/paragraph separators reorder or break what
         * a terminal shows: U+061C (D8 9C), U+200E/F (E2 80 8E/8F), U+2028/9
         * (E2 80 A8/A9), U+202A..E (E2 80 AA..AE), U+2066..9 (E2 81 A6..A9) */
        if (p[0] == 0xd8 && p[1] == 0x9c)
            return 0;
        if (p[0] == 0xe2 && p[1] == 0x80 &&
            (p[2] == 0x8e || p[2] == 0x8f || (p[2] >= 0xa8 && p[2] <= 0xae)))
            return 0;
        if (p[0] == 0xe2 && p[1] == 0x81 && p[2] >= 0xa6 && p[2] <= 0xa9)
            return 0;
    }
    return 1;
}

/* 1 if @p (@n bytes, NULs allowed) holds @needle. */
static int holds(const char *p, size_t n, const char *needle)
{
    size_t nl = strlen(needle);
    for (size_t i = 0; i + nl <= n; i++)
        if (memcmp(p + i, needle, nl) == 0)
            return 1;
    return 0;
}

/* Load a BYO public key: a PEM (SPKI) string, a JWK object or a JWK string. */
static enum reqsign_status load_public(json_t *pk, struct reqsign_key **out,
                                       struct reqsign_error *rerr)
{
    struct reqsign_error err;
    reqsign_error_clear(&err);
    char *text = NULL;
    const char *data;
    size_t len;
    *out = NULL;
    /* A private key sent by mistake is refused before any decoder sees it:
     * OpenSSL's PKCS#8 decoding leaves a copy of the seed in freed memory. */
    if (json_is_object(pk) && json_object_get(pk, "d") != NULL)
        return set_error(rerr, REQSIGN_E_INVALID_REQUEST,
                         "public_key holds a private key; send only the public key");
    if (json_is_string(pk) && holds(json_string_value(pk), json_string_length(pk), "PRIVATE KEY"))
        return set_error(rerr, REQSIGN_E_INVALID_REQUEST,
                         "public_key holds a private key; send only the public key");
    if (json_is_object(pk)) {
        text = json_dumps(pk, JSON_COMPACT);
        data = text;
        len = text != NULL ? strlen(text) : 0;
    } else if (json_is_string(pk)) {
        data = json_string_value(pk);
        len = json_string_length(pk);
        while (len > 0 && (*data == ' ' || *data == '\n' || *data == '\r' || *data == '\t')) {
            data++;
            len--;
        }
        if (len == 0 || (data[0] != '-' && data[0] != '{'))
            return set_error(rerr, REQSIGN_E_INVALID_REQUEST,
                             "public_key must be a PEM public key or a JWK");
    } else {
        return set_error(rerr, REQSIGN_E_INVALID_REQUEST,
                         "public_key must be a PEM string or a JWK object");
    }
    if (data == NULL || reqsign_key_load_mem(data, len, 0, out, &err) != REQSIGN_OK) {
        /* the loader's message names the format problem, never key bytes */
        set_error(rerr, REQSIGN_E_INVALID_REQUEST, "public_key: %s",
                  err.message[0] ? err.message : "not an Ed25519 public key");
        if (text != NULL)
            reqsign_memzero(text, strlen(text));
        free(text);
        return REQSIGN_E_INVALID_REQUEST;
    }
    if (text != NULL) {
        reqsign_memzero(text, strlen(text)); /* a JWK with "d" would be a secret */
        free(text);
    }
    if (reqsign_key_has_private(*out)) {
        reqsign_key_free(*out);
        *out = NULL;
        return set_error(rerr, REQSIGN_E_INVALID_REQUEST,
                         "public_key holds a private key; send only the public key");
    }
    return REQSIGN_OK;
}

/* see service.h */
enum reqsign_status reqsignd_parse_create(const char *body, size_t len, int64_t now,
                                          struct reqsignd_create_req *out,
                                          struct reqsign_error *err)
{
    json_error_t jerr;
    json_t *doc = json_loadb(body != NULL ? body : "", len, JSON_REJECT_DUPLICATES, &jerr);
    enum reqsign_status st = REQSIGN_OK;
    memset(out, 0, sizeof(*out));
    out->json_position = -1;
    if (doc == NULL) {
        out->json_position = (long)jerr.position;
        return set_error(err, REQSIGN_E_JSON, "%s", jerr.text);
    }
    if (!json_is_object(doc)) {
        st = set_error(err, REQSIGN_E_INVALID_REQUEST, "the body must be a JSON object");
        goto out;
    }
    const char *name;
    json_t *val;
    json_object_foreach(doc, name, val)
    {
        if (strcmp(name, "label") != 0 && strcmp(name, "scopes") != 0 &&
            strcmp(name, "expires_at") != 0 && strcmp(name, "public_key") != 0) {
            st = set_error(err, REQSIGN_E_INVALID_REQUEST, "unknown member \"%.64s\"", name);
            goto out;
        }
    }
    json_t *label = json_object_get(doc, "label");
    if (label != NULL && !json_is_null(label)) {
        if (!json_is_string(label) || json_string_length(label) > REQSIGN_LABEL_MAX ||
            strlen(json_string_value(label)) != json_string_length(label)) {
            st = set_error(err, REQSIGN_E_INVALID_REQUEST,
                           "label must be a string of at most %d bytes", REQSIGN_LABEL_MAX);
            goto out;
        }
        if (!label_text_ok(json_string_value(label))) {
            st = set_error(err, REQSIGN_E_INVALID_REQUEST,
                           "label must not contain control characters (U+0000..U+001F, "
                           "U+007F..U+009F), bidi controls (U+061C, U+200E, U+200F, "
                           "U+202A..U+202E, U+2066..U+2069) or line/paragraph separators "
                           "(U+2028, U+2029)");
            goto out;
        }
        snprintf(out->label, sizeof(out->label), "%s", json_string_value(label));
    }
    json_t *scopes = json_object_get(doc, "scopes");
    if (scopes != NULL && !json_is_null(scopes)) {
        if (!json_is_array(scopes) || json_array_size(scopes) > MAX_SCOPES) {
            st = set_error(err, REQSIGN_E_INVALID_REQUEST,
                           "scopes must be an array of at most %d strings", MAX_SCOPES);
            goto out;
        }
        size_t used = 0, i;
        json_t *sc;
        json_array_foreach(scopes, i, sc)
        {
            const char *v = json_string_value(sc);
            size_t vl = json_string_length(sc);
            if (v == NULL || !scope_ok(v, vl) || strlen(v) != vl) {
                st = set_error(err, REQSIGN_E_INVALID_REQUEST,
                               "scopes[%zu] must match [a-z0-9:._-]{1,64}", i);
                goto out;
            }
            if (used + vl + 2 > sizeof(out->scopes)) {
                st = set_error(err, REQSIGN_E_INVALID_REQUEST, "scopes are too long together");
                goto out;
            }
            if (used > 0)
                out->scopes[used++] = ' ';
            memcpy(out->scopes + used, v, vl);
            used += vl;
            out->scopes[used] = '\0';
        }
    }
    json_t *exp = json_object_get(doc, "expires_at");
    if (exp != NULL && !json_is_null(exp)) {
        if (!json_is_string(exp) || parse_rfc3339(json_string_value(exp), &out->expires_at) != 0) {
            st = set_error(err, REQSIGN_E_INVALID_REQUEST,
                           "expires_at must be an RFC 3339 date-time or null");
            goto out;
        }
        if (out->expires_at <= now) {
            st = set_error(err, REQSIGN_E_INVALID_REQUEST, "expires_at must be in the future");
            goto out;
        }
    }
    json_t *pk = json_object_get(doc, "public_key");
    if (pk != NULL && !json_is_null(pk))
        st = load_public(pk, &out->public_key, err);
out:
    json_decref(doc);
    return st;
}

/* The "service" of a credential: the configured one, else from the request. */
static void service_url(const struct reqsignd_service *s, const struct reqsign_httpd_req *r,
                        char *out, size_t cap)
{
    if (s->service_url[0]) {
        snprintf(out, cap, "%s", s->service_url);
        return;
    }
    const char *host = reqsign_httpd_header(r, "Host");
    snprintf(out, cap, "%.*s://%s", (int)r->view.scheme.len, r->view.scheme.ptr,
             host != NULL ? host : "localhost");
}

/* POST /v1/keys */
static void do_create(struct reqsignd_service *s, struct reqsign_httpd_req *r, struct call *c)
{
    struct reqsignd_create_req cr;
    struct reqsign_key *key = NULL;
    struct reqsign_key_record rec;
    struct reqsign_error err;
    reqsign_error_clear(&err);
    memset(&rec, 0, sizeof(rec));
    int64_t now = now_s();
    enum reqsign_status st = reqsignd_parse_create(c->body, c->len, now, &cr, &err);
    if (st == REQSIGN_E_JSON) {
        json_t *e = json_pack("{s:s, s:s, s:i}", "error", reqsign_errname(REQSIGN_E_JSON),
                              "message", err.message, "position", (int)cr.json_position);
        reqsign_httpd_respond_json(r, 400, e);
        json_decref(e);
        return;
    }
    if (st != REQSIGN_OK) {
        reqsign_httpd_respond_error(r, &err);
        return;
    }
    snprintf(rec.label, sizeof(rec.label), "%s", cr.label);
    snprintf(rec.scopes, sizeof(rec.scopes), "%s", cr.scopes);
    rec.expires_at = cr.expires_at;
    key = cr.public_key;
    int generated = key == NULL;
    if (generated && reqsign_key_generate(&key, &err) != REQSIGN_OK) {
        reqsign_httpd_respond_error(r, &err);
        goto out;
    }
    if (reqsign_key_thumbprint(key, rec.keyid) != REQSIGN_OK) {
        reqsign_httpd_fail(r, REQSIGN_E_INTERNAL, "cannot compute the keyid");
        goto out;
    }
    reqsign_key_public_raw(key, rec.public_key);
    rec.created_at = now;
    if (signer_still_active(s, r, c) != 0)
        goto out;
    if (reqsign_keystore_insert(s->store, &rec, &err) != REQSIGN_OK) {
        if (err.code == REQSIGN_E_CONFLICT) {
            reqsign_error_clear(&err);
            reqsign_httpd_fail(r, REQSIGN_E_CONFLICT, "this public key is already registered");
        } else {
            reqsign_httpd_respond_error(r, &err);
        }
        goto out;
    }
    /* a negative cache entry for this keyid may exist: drop it */
    reqsign_keycache_invalidate(s->cache, rec.keyid, strlen(rec.keyid));

    char svc[300];
    service_url(s, r, svc, sizeof(svc));
    if (generated) {
        size_t n = 0;
        char *cred = secret_credential(key, &rec, svc, &n);
        if (cred == NULL) {
            reqsign_httpd_fail(r, REQSIGN_E_INTERNAL, "cannot build the credential");
            goto out;
        }
        reqsign_httpd_respond_secret(r, 201, cred, n); /* wiped once sent */
        char disp[128];
        snprintf(disp, sizeof(disp), "attachment; filename=\"reqsign-%s.json\"", rec.keyid);
        reqsign_httpd_add_header(r, "Content-Disposition", disp);
    } else {
        json_t *cred = credential_json(&rec, svc);
        if (cred == NULL) {
            reqsign_httpd_fail(r, REQSIGN_E_INTERNAL, "cannot build the credential");
            goto out;
        }
        reqsign_httpd_respond_json(r, 201, cred);
        json_decref(cred);
    }
out:
    reqsign_key_free(key); /* wipes the private key */
}

/* ---- the three phases ---- */

static void on_headers(void *ctx, struct reqsign_httpd_req *r)
{
    struct reqsignd_service *s = ctx;
    enum route rt = route_of(r);
    switch (rt) {
    case R_NONE:
        reqsign_httpd_fail(r, REQSIGN_E_NOT_FOUND, "no such resource");
        return;
    case R_HEALTH:
        if (!check_method(r, "GET, HEAD"))
            do_health(r);
        return;
    case R_DIRECTORY:
        if (!check_method(r, "GET, HEAD"))
            do_directory(s, r);
        return;
    case R_KEYS:
        if (check_method(r, "GET, POST"))
            return;
        break;
    case R_KEY:
        if (check_method(r, "GET, DELETE"))
            return;
        break;
    }

    struct call *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        reqsign_httpd_fail(r, REQSIGN_E_NOMEM, "out of memory");
        return;
    }
    c->route = rt;
    reqsign_verification_init(&c->vs);
    r->app = c;

    /* phase one: the signature, before any byte of the body is read */
    struct reqsign_error err;
    reqsign_error_clear(&err);
    enum reqsign_status st = reqsign_verifier_verify_headers(s->verifier, &r->view, &c->vs, &err);
    if (c->vs.keyid[0])
        snprintf(r->keyid, sizeof(r->keyid), "%s", c->vs.keyid);
    if (st != REQSIGN_OK) {
        reqsign_httpd_respond_error(r, &err);
        return;
    }
    if (!has_scope(c->vs.scopes, ADMIN_SCOPE)) {
        reqsign_httpd_fail(r, REQSIGN_E_SCOPE, "key lacks the scope " ADMIN_SCOPE);
        return;
    }
    if (strcmp(r->method, "POST") == 0) {
        const char *ct = reqsign_httpd_header(r, "Content-Type");
        size_t tl = strlen("application/json");
        if (ct == NULL || strncasecmp(ct, "application/json", tl) != 0 ||
            (ct[tl] != '\0' && ct[tl] != ';' && ct[tl] != ' ')) {
            reqsign_httpd_fail(r, REQSIGN_E_UNSUPPORTED_MEDIA_TYPE,
                               "the body must be application/json");
            return;
        }
    }
}

static void on_body(void *ctx, struct reqsign_httpd_req *r, const char *data, size_t len)
{
    struct call *c = r->app;
    struct reqsign_error err;
    (void)ctx;
    reqsign_error_clear(&err);
    if (c == NULL)
        return;
    /* phase two, streamed: the digest sees every byte */
    if (reqsign_verification_body(&c->vs, data, len, &err) != REQSIGN_OK) {
        reqsign_httpd_respond_error(r, &err);
        return;
    }
    if (c->route != R_KEYS || strcmp(r->method, "POST") != 0)
        return; /* covered by the digest, not used */
    if (c->len + len > c->cap) {
        /* not realloc(): the old block may hold a key sent by mistake and is wiped */
        size_t ncap = c->cap ? c->cap : 1024;
        while (ncap < c->len + len)
            ncap *= 2;
        char *nb = malloc(ncap);
        if (nb == NULL) {
            reqsign_httpd_fail(r, REQSIGN_E_NOMEM, "out of memory");
            return;
        }
        if (c->len > 0)
            memcpy(nb, c->body, c->len);
        if (c->body != NULL)
            reqsign_memzero(c->body, c->cap);
        free(c->body);
        c->body = nb;
        c->cap = ncap;
    }
    memcpy(c->body + c->len, data, len);
    c->len += len;
}

static void on_end(void *ctx, struct reqsign_httpd_req *r)
{
    struct reqsignd_service *s = ctx;
    struct call *c = r->app;
    struct reqsign_error err;
    reqsign_error_clear(&err);
    if (c == NULL) {
        reqsign_httpd_fail(r, REQSIGN_E_INTERNAL, "no state");
        return;
    }
    /* nothing is acted on before the content digest matched */
    if (reqsign_verification_finish(&c->vs, &err) != REQSIGN_OK) {
        reqsign_httpd_respond_error(r, &err);
        return;
    }
    if (c->route == R_KEYS && strcmp(r->method, "POST") == 0)
        do_create(s, r, c);
    else if (c->route == R_KEYS)
        do_list(s, r);
    else
        do_get(s, r, c, strcmp(r->method, "DELETE") == 0);
}

static void on_done(void *ctx, struct reqsign_httpd_req *r)
{
    struct call *c = r->app;
    (void)ctx;
    if (c == NULL)
        return;
    reqsign_verification_cleanup(&c->vs);
    if (c->body != NULL)
        reqsign_memzero(c->body, c->cap); /* may hold a key sent by mistake */
    free(c->body);
    free(c);
    r->app = NULL;
}

/* ---- the service ---- */

/* see service.h */
const struct reqsign_httpd_handlers *reqsignd_service_handlers(void)
{
    static const struct reqsign_httpd_handlers handlers = {on_headers, on_body, on_end, on_done};
    return &handlers;
}

/* see service.h */
struct reqsignd_service *reqsignd_service_new(struct reqsign_keystore *store,
                                              const struct reqsignd_service_opts *o,
                                              struct reqsign_error *err)
{
    struct reqsignd_service *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->store = store;
    s->max_body = o->max_body ? o->max_body : REQSIGN_HTTPD_DEFAULT_MAX_BODY;
    if (o->n_authorities == 1)
        snprintf(s->service_url, sizeof(s->service_url), "http://%s", o->authorities[0]);
    struct reqsign_keycache_opts co;
    memset(&co, 0, sizeof(co));
    co.store = store;
    co.positive_ttl = o->cache_ttl;
    co.negative_ttl = o->cache_ttl;
    s->cache = reqsign_keycache_new(&co, err);
    s->own_nonces = o->nonces == NULL;
    s->nonces = o->nonces != NULL ? o->nonces : reqsign_nonce_store_memory_new(NULL);
    struct reqsign_verifier_opts vo;
    memset(&vo, 0, sizeof(vo));
    vo.profile = REQSIGN_PROFILE_REQSIGN;
    vo.max_age = o->max_age;
    vo.skew = o->skew == 0 ? -1 : o->skew; /* the verifier reads 0 as "default", < 0 as none */
    vo.authorities = o->authorities;
    vo.n_authorities = o->n_authorities;
    vo.any_authority = o->any_authority;
    vo.lookup = reqsign_keycache_lookup;
    vo.lookup_ctx = s->cache;
    vo.nonces = s->nonces;
    if (s->cache != NULL && s->nonces != NULL)
        s->verifier = reqsign_verifier_new(&vo, err);
    if (s->verifier == NULL) {
        reqsignd_service_free(s);
        return NULL;
    }
    return s;
}

/* see service.h */
void reqsignd_service_free(struct reqsignd_service *s)
{
    if (s == NULL)
        return;
    reqsign_verifier_free(s->verifier);
    if (s->own_nonces)
        reqsign_nonce_store_free(s->nonces);
    reqsign_keycache_free(s->cache);
    free(s);
}

/* see service.h */
struct reqsign_keycache *reqsignd_service_keycache(struct reqsignd_service *s)
{
    return s->cache;
}

/* see service.h */
struct reqsign_httpd_local *reqsignd_begin(struct reqsignd_service *s,
                                           const struct reqsignd_request *req)
{
    struct reqsign_httpd_opts o;
    memset(&o, 0, sizeof(o));
    o.scheme = "http";
    o.max_body = s->max_body;
    o.handlers = reqsignd_service_handlers();
    o.ctx = s;
    return reqsign_httpd_local_begin(&o, req->method, req->target, req->target_len, req->headers,
                                     req->n_headers);
}

/* see service.h */
int reqsignd_handle(struct reqsignd_service *s, const struct reqsignd_request *req,
                    const char *body, size_t body_len, struct reqsign_httpd_response *out)
{
    memset(out, 0, sizeof(*out));
    struct reqsign_httpd_local *l = reqsignd_begin(s, req);
    if (l == NULL)
        return -1;
    if (body_len > 0)
        (void)reqsign_httpd_local_body(l, body, body_len);
    reqsign_httpd_local_finish(l, out);
    return out->status != 0 ? 0 : -1;
}

/* see service.h */
int reqsignd_init_admin(struct reqsign_keystore *ks, const char *service, char **cred,
                        size_t *cred_len, char keyid[REQSIGN_KEYID_MAX_LEN + 1],
                        struct reqsign_key **key_out, struct reqsign_error *err)
{
    struct reqsign_key *key = NULL;
    struct reqsign_key_record rec;
    int rc = 0;
    memset(&rec, 0, sizeof(rec));
    *cred = NULL;
    *cred_len = 0;
    if (key_out != NULL)
        *key_out = NULL;
    if (reqsign_key_generate(&key, err) != REQSIGN_OK ||
        reqsign_key_thumbprint(key, rec.keyid) != REQSIGN_OK) {
        rc = 1;
        goto done;
    }
    reqsign_key_public_raw(key, rec.public_key);
    snprintf(rec.label, sizeof(rec.label), "admin");
    snprintf(rec.scopes, sizeof(rec.scopes), ADMIN_SCOPE);
    rec.created_at = now_s();
    if (reqsign_keystore_insert(ks, &rec, err) != REQSIGN_OK) {
        rc = 2;
        goto done;
    }
    *cred = secret_credential(key, &rec, service, cred_len);
    if (*cred == NULL) {
        rc = 3;
        goto done;
    }
    snprintf(keyid, REQSIGN_KEYID_MAX_LEN + 1, "%s", rec.keyid);
    if (key_out != NULL) {
        *key_out = key;
        key = NULL;
    }
done:
    reqsign_key_free(key);
    return rc;
}
