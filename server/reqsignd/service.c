/* reqsignd's request handling: see service.h and docs/KEYSERVICE.md.
 *
 * Every /v1/ request is a reqsign-signed request, verified in two phases
 * (headers before the body, then the body streamed into the digest check),
 * and its key must carry the scope keys:admin. The service stores public keys
 * and metadata only; a generated private key exists in memory for the one
 * response that carries it and is wiped once that response is sent.
 */
#include "service.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>

#include <reqsign/base64.h>
#include <reqsign/digest.h>

#include <reqsign/key.h>
#include <reqsign/keycache.h>
#include <reqsign/keystore.h>
#include <reqsign/nonce.h>
#include <reqsign/verifier.h>

#include "console.h"
#include "util.h"

#define ADMIN_SCOPE REQSIGND_ADMIN_SCOPE
#define MAX_SCOPES REQSIGND_MAX_SCOPES
#define LIST_DEFAULT 100
#define PEM_MAX 512
#define JWK_MAX 256
#define DIRECTORY_PATH "/.well-known/http-message-signatures-directory"
#define DIRECTORY_MAX_AGE 60 /* seconds: at most this, and at most the key cache TTL */
#define DIRECTORY_TYPE "application/http-message-signatures-directory+json"
#define RL_SLOTS 256

struct reqsignd_service {
    struct reqsign_keystore *store; /* borrowed */
    struct reqsign_keycache *cache;
    struct reqsign_nonce_store *nonces;
    int own_nonces; /* the in-memory store made here (else borrowed from the options) */
    struct reqsign_verifier *verifier;
    /* The same, but a disabled key (or a key of a disabled account) passes:
     * used only to re-verify, in full, a DELETE of the signing key's own
     * keyid that the verifier refused with key_disabled / account_disabled
     * (revoke by possession). Revoked and expired keys stay refused. */
    struct reqsign_verifier *self_revoke;
    char service_url[300];           /* "service" in credentials; empty: from the request's Host */
    char api_url[300];               /* "api" in credentials (--api-url); empty: none */
    size_t max_body;                 /* in-process requests */
    struct reqsign_verifier_opts vo; /* for proof-of-possession verifiers (enroll) */
    int64_t enrollment_ttl;
    int64_t dir_max_age;   /* the directory's max-age: at most the revocation bound */
    int accounts;          /* the store has accounts (else: keys:admin only, as before issue 13) */
    pthread_mutex_t rl_mu; /* failed enrollments per source address */
    /* Held from the last-admin check of a revoke or disable of a keys:admin
     * key to its write, so two such changes in this process cannot each see
     * the other key as the one that remains. */
    pthread_mutex_t admin_mu;
    struct {
        char peer[64];
        int64_t window;
        int fails;
    } rl[RL_SLOTS];
};

enum route {
    R_NONE = 0,
    R_HEALTH,
    R_DIRECTORY,
    R_KEYS,
    R_KEY,
    R_KEY_ACTION,
    R_ACCOUNTS,
    R_ACCOUNT,
    R_ACCOUNT_ACTION,
    R_ENROLL,
    R_AUDIT
};

/* Per-request state of a /v1/ request. */
struct call {
    enum route route;
    struct reqsign_verification vs;
    /* DELETE of the signing key's own keyid (revoke by possession): allowed
     * to a disabled key, or a key of a disabled account, too (and nothing else) */
    int own_delete;
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
    if ((key = reqsign_key_from_public(pk, NULL)) == NULL)
        return -1;
    int ok = reqsign_key_public_pem(key, pem, PEM_MAX, &n) == REQSIGN_OK &&
             reqsign_key_public_jwk(key, jbuf, sizeof(jbuf), &n) == REQSIGN_OK;
    reqsign_key_free(key);
    if (ok)
        *jwk = json_loadb(jbuf, n, 0, NULL);
    return *jwk != NULL ? 0 : -1;
}

static void add_lifecycle(json_t *o, const struct reqsign_key_record *k, int64_t now);

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
        size_t k = c < 0x80                   ? 1
                   : (c >= 0xc2 && c <= 0xdf) ? 2
                   : (c & 0xf0) == 0xe0       ? 3
                   : (c >= 0xf0 && c <= 0xf4) ? 4
                                              : 0;
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
    json_t *o = json_pack("{s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:s}", "keyid", k->keyid,
                          "alg", "ed25519", "public_key", pem, "jwk", jwk, "scopes",
                          scopes_json(k->scopes), "label", label_json(k->label), "created_at",
                          time_or_null(k->created_at), "expires_at", time_or_null(k->expires_at),
                          "revoked_at", time_or_null(k->revoked_at), "status", key_status(k, now));
    if (o != NULL)
        add_lifecycle(o, k, now);
    return o;
}

/* The credential without its private key. */
static json_t *credential_json(const struct reqsign_key_record *k, const char *service,
                               const char *api)
{
    char pem[PEM_MAX];
    json_t *jwk;
    if (public_forms(k->public_key, pem, &jwk) != 0)
        return NULL;
    json_decref(jwk);
    json_t *o = json_pack("{s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:o}", "keyid", k->keyid, "alg",
                          "ed25519", "public_key", pem, "scopes", scopes_json(k->scopes), "label",
                          label_json(k->label), "created_at", time_or_null(k->created_at),
                          "expires_at", time_or_null(k->expires_at), "service",
                          service != NULL && *service ? json_string(service) : json_null());
    if (o != NULL)
        add_lifecycle(o, k, now_s());
    /* "api": the provider's API base URL (--api-url), so `reqsign send PATH` works */
    if (o != NULL && api != NULL && *api && json_object_set_new(o, "api", json_string(api)) != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
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
                               const char *service, const char *api, size_t *out_len)
{
    json_t *pub = credential_json(k, service, api);
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
static int key_from_path(const struct reqsign_httpd_req *r, char keyid[REQSIGN_KEYID_IN_MAX + 1])
{
    static const char pre[] = "/v1/keys/";
    size_t pl = sizeof(pre) - 1;
    if (r->path.len <= pl || memcmp(r->path.ptr, pre, pl) != 0 ||
        memchr(r->path.ptr + pl, '/', r->path.len - pl) != NULL)
        return -1;
    return pct_decode(r->path.ptr + pl, r->path.len - pl, keyid, REQSIGN_KEYID_IN_MAX + 1);
}

static int split_path(const struct reqsign_httpd_req *r, const char *pre, char *id, size_t idcap,
                      char *action, size_t actcap);

static enum route route_of(const struct reqsign_httpd_req *r)
{
    char keyid[REQSIGN_KEYID_IN_MAX + 1];
    if (reqsign_httpd_path_is(r, "/healthz"))
        return R_HEALTH;
    if (reqsign_httpd_path_is(r, DIRECTORY_PATH))
        return R_DIRECTORY;
    if (reqsign_httpd_path_is(r, "/v1/keys"))
        return R_KEYS;
    if (key_from_path(r, keyid) == 0)
        return R_KEY;
    if (reqsign_httpd_path_is(r, "/v1/accounts"))
        return R_ACCOUNTS;
    if (reqsign_httpd_path_is(r, "/v1/enroll"))
        return R_ENROLL;
    if (reqsign_httpd_path_is(r, "/v1/audit"))
        return R_AUDIT;
    char id[REQSIGN_KEYID_IN_MAX + 1], action[16];
    if (split_path(r, "/v1/keys/", id, sizeof(id), action, sizeof(action)) == 0 &&
        (!strcmp(action, "disable") || !strcmp(action, "enable") || !strcmp(action, "rotate")))
        return R_KEY_ACTION;
    if (split_path(r, "/v1/accounts/", id, sizeof(id), action, sizeof(action)) == 0) {
        if (action[0] == '\0')
            return R_ACCOUNT;
        if (!strcmp(action, "disable") || !strcmp(action, "enable") ||
            !strcmp(action, "enrollments"))
            return R_ACCOUNT_ACTION;
    }
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

static const char *status_of(const struct reqsign_key_record *k, int64_t now);

/* The q of @type (e.g. "application/json") in the Accept header @accept:
 * an exact media range, else TYPE/ANY, else ANY/ANY (the wildcards); -1 if none
 * matches. Parameters other than q are ignored. */
static int accept_q(const char *accept, const char *type)
{
    int best = -1, spec = -1; /* q in thousandths; specificity of the match */
    size_t tl = strlen(type), sl = (size_t)(strchr(type, '/') - type);
    for (const char *p = accept; *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *e = p;
        while (*e && *e != ',')
            e++;
        const char *semi = memchr(p, ';', (size_t)(e - p));
        const char *re = semi != NULL ? semi : e;
        while (re > p && (re[-1] == ' ' || re[-1] == '\t'))
            re--;
        size_t rl = (size_t)(re - p);
        int sp = -1;
        if (rl == tl && strncasecmp(p, type, tl) == 0)
            sp = 2;
        else if (rl == sl + 2 && strncasecmp(p, type, sl) == 0 && memcmp(p + sl, "/*", 2) == 0)
            sp = 1;
        else if (rl == 3 && memcmp(p, "*/*", 3) == 0)
            sp = 0;
        if (sp > spec) {
            int q = 1000;
            for (const char *x = semi; x != NULL && x < e;
                 x = memchr(x + 1, ';', (size_t)(e - x - 1))) {
                const char *v = x + 1;
                while (*v == ' ' || *v == '\t')
                    v++;
                if ((v[0] == 'q' || v[0] == 'Q') && v[1] == '=') {
                    double d = strtod(v + 2, NULL);
                    q = d <= 0 ? 0 : d >= 1 ? 1000 : (int)(d * 1000 + 0.5);
                }
            }
            spec = sp;
            best = q;
        }
        p = e;
    }
    return best;
}

/* The media type of the directory for @accept (NULL: none given): the IETF
 * directory type, unless the client asks for a plain JWKS
 * (application/jwk-set+json or application/json) at least as much. */
static const char *directory_type(const char *accept)
{
    static const char *const types[] = {DIRECTORY_TYPE, "application/jwk-set+json",
                                        "application/json"};
    if (accept == NULL || *accept == '\0')
        return types[0];
    int best = 0, bq = accept_q(accept, types[0]);
    for (int i = 1; i < 3; i++) {
        int q = accept_q(accept, types[i]);
        if (q > bq && q > 0) {
            best = i;
            bq = q;
        }
    }
    return types[best];
}

/* The public directory (spec/PROTOCOL.md, the IETF HTTP message signatures
 * directory): a JWKS of the keys that work now (neither revoked, expired nor
 * disabled, their account enabled) and are published (the key's "publish" or
 * its account's "publish_keys"); a keys:admin key never, whatever its flag. */
static void do_directory(struct reqsignd_service *s, struct reqsign_httpd_req *r)
{
    struct reqsign_error err;
    reqsign_error_clear(&err);
    struct reqsign_key_record *page = calloc(REQSIGN_KEYSTORE_PAGE_IN_MAX, sizeof(*page));
    json_t *keys = json_array();
    char after[REQSIGN_KEYID_IN_MAX + 1] = "";
    int64_t now = now_s();
    if (page == NULL || keys == NULL) {
        reqsign_httpd_fail(r, REQSIGN_E_NOMEM, "out of memory");
        goto out;
    }
    for (;;) {
        size_t n = 0;
        if (reqsign_keystore_list(s->store, after, REQSIGN_KEYSTORE_PAGE_IN_MAX, page, &n, &err) !=
            REQSIGN_OK) {
            store_error(r, &err);
            goto out;
        }
        for (size_t i = 0; i < n; i++) {
            const struct reqsign_key_record *k = &page[i];
            char pem[PEM_MAX];
            json_t *jwk;
            if (strcmp(status_of(k, now), "active") != 0 || k->account_disabled_at != 0 ||
                has_scope(k->scopes, ADMIN_SCOPE) || !(k->publish || k->account_publish_keys) ||
                public_forms(k->public_key, pem, &jwk) != 0)
                continue;
            /* RFC 8037: kty OKP, crv Ed25519, alg EdDSA */
            json_object_set_new(jwk, "kid", json_string(k->keyid));
            json_object_set_new(jwk, "alg", json_string("EdDSA"));
            json_object_set_new(jwk, "use", json_string("sig"));
            json_array_append_new(keys, jwk);
        }
        if (n < REQSIGN_KEYSTORE_PAGE_IN_MAX)
            break;
        snprintf(after, sizeof(after), "%s", page[n - 1].keyid);
    }
    json_t *doc = json_pack("{s:O}", "keys", keys);
    char *text = doc != NULL ? json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(doc);
    if (text == NULL) {
        reqsign_httpd_fail(r, REQSIGN_E_NOMEM, "out of memory");
        goto out;
    }
    char cc[32];
    snprintf(cc, sizeof(cc), "max-age=%lld", (long long)s->dir_max_age);
    reqsign_httpd_respond_cache(r, 200, directory_type(reqsign_httpd_header(r, "Accept")), text,
                                strlen(text), cc);
    reqsign_httpd_add_header(r, "Vary", "Accept");
    free(text);
out:
    json_decref(keys);
    free(page);
}

static int scope_ok(const char *s, size_t n)
{
    if (n < 1 || n > REQSIGN_SCOPE_IN_MAX)
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
    if (data == NULL || (*out = reqsign_key_load_mem(data, len, 0, &err)) == NULL) {
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
            strcmp(name, "expires_at") != 0 && strcmp(name, "public_key") != 0 &&
            strcmp(name, "account") != 0 && strcmp(name, "publish") != 0) {
            st = set_error(err, REQSIGN_E_INVALID_REQUEST, "unknown member \"%.64s\"", name);
            goto out;
        }
    }
    json_t *label = json_object_get(doc, "label");
    if (label != NULL && !json_is_null(label)) {
        if (!json_is_string(label) || json_string_length(label) > REQSIGN_KEY_LABEL_IN_MAX ||
            strlen(json_string_value(label)) != json_string_length(label)) {
            st = set_error(err, REQSIGN_E_INVALID_REQUEST,
                           "label must be a string of at most %d bytes", REQSIGN_KEY_LABEL_IN_MAX);
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
    json_t *acct = json_object_get(doc, "account");
    if (acct != NULL && !json_is_null(acct)) {
        if (!json_is_string(acct) || json_string_length(acct) == 0 ||
            json_string_length(acct) > REQSIGN_ACCOUNT_ID_IN_MAX ||
            strlen(json_string_value(acct)) != json_string_length(acct)) {
            st = set_error(err, REQSIGN_E_INVALID_REQUEST, "account must be an account id");
            goto out;
        }
        snprintf(out->account, sizeof(out->account), "%s", json_string_value(acct));
    }
    json_t *pub = json_object_get(doc, "publish");
    if (pub != NULL && !json_is_null(pub)) {
        if (!json_is_boolean(pub)) {
            st = set_error(err, REQSIGN_E_INVALID_REQUEST, "publish must be true or false");
            goto out;
        }
        out->publish = json_is_true(pub);
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

/* ---- accounts and the key lifecycle (issue 13) ---- */

#define SELF_SCOPE "keys:self"
#define GRACE_DEFAULT 86400
#define GRACE_MAX (30 * 86400)
#define ENROLL_FAIL_WINDOW 60
#define ENROLL_FAIL_MAX 10

/* Who signed the request, as the store says now (not the cache). */
struct actor {
    struct reqsign_key_record rec;
    int admin, self;
};

static void audit(struct reqsignd_service *s, const struct reqsign_httpd_req *r,
                  const struct call *c, const struct actor *a, const char *action,
                  const char *target, const char *target_account, const char *outcome)
{
    struct reqsign_audit_event ev;
    struct reqsign_error err;
    if (!s->accounts)
        return;
    reqsign_error_clear(&err);
    memset(&ev, 0, sizeof(ev));
    ev.time = now_s();
    if (a != NULL) {
        snprintf(ev.actor, sizeof(ev.actor), "%s", a->rec.keyid);
        snprintf(ev.account, sizeof(ev.account), "%s", a->rec.account);
    }
    snprintf(ev.action, sizeof(ev.action), "%s", action);
    snprintf(ev.target, sizeof(ev.target), "%s", target != NULL ? target : "");
    snprintf(ev.target_account, sizeof(ev.target_account), "%s",
             target_account != NULL ? target_account : "");
    snprintf(ev.outcome, sizeof(ev.outcome), "%s", outcome);
    snprintf(ev.source, sizeof(ev.source), "%s", r->peer);
    if (c != NULL)
        snprintf(ev.nonce, sizeof(ev.nonce), "%s", c->vs.nonce);
    if (reqsign_keystore_audit_append(s->store, &ev, &err) != REQSIGN_OK)
        fprintf(stderr, "reqsignd: audit %s %s: %s\n", action, outcome, err.message);
}

/* Answer @code and record the refusal. */
static void refuse(struct reqsignd_service *s, struct reqsign_httpd_req *r, const struct call *c,
                   const struct actor *a, const char *action, const char *target,
                   const char *target_account, enum reqsign_status code, const char *msg)
{
    reqsign_httpd_fail(r, code, "%s", msg);
    audit(s, r, c, a, action, target, target_account, reqsign_errname(code));
}

static void refuse_err(struct reqsignd_service *s, struct reqsign_httpd_req *r,
                       const struct call *c, const struct actor *a, const char *action,
                       const char *target, const struct reqsign_error *err)
{
    if (err->code == REQSIGN_E_KEY_UNKNOWN || err->code == REQSIGN_E_NOT_FOUND) {
        refuse(s, r, c, a, action, target, NULL, REQSIGN_E_NOT_FOUND, "no such resource");
        return;
    }
    reqsign_httpd_respond_error(r, err);
    audit(s, r, c, a, action, target, NULL, reqsign_errname(err->code));
}

/* The signer's record, read from the store: still active, its account not
 * disabled (both may be for a key revoking itself: @c->own_delete). 0, or
 * answered and -1. */
static int load_actor(struct reqsignd_service *s, struct reqsign_httpd_req *r, const struct call *c,
                      struct actor *a)
{
    struct reqsign_error err;
    reqsign_error_clear(&err);
    memset(a, 0, sizeof(*a));
    size_t kl = strlen(c->vs.keyid);
    if (kl == 0) {
        reqsign_httpd_fail(r, REQSIGN_E_INTERNAL, "no verified key");
        return -1;
    }
    if (reqsign_keystore_get(s->store, c->vs.keyid, kl, &a->rec, &err) != REQSIGN_OK) {
        if (err.code == REQSIGN_E_KEY_UNKNOWN) {
            reqsign_error_clear(&err);
            reqsign_httpd_fail(r, REQSIGN_E_KEY_UNKNOWN, "the signing key is no longer known");
        } else {
            reqsign_httpd_respond_error(r, &err);
        }
        return -1;
    }
    if (a->rec.revoked_at != 0) {
        reqsign_httpd_fail(r, REQSIGN_E_KEY_REVOKED, "the signing key was revoked");
        return -1;
    }
    if (a->rec.expires_at != 0 && now_s() >= a->rec.expires_at) {
        reqsign_httpd_fail(r, REQSIGN_E_KEY_EXPIRED, "the signing key has expired");
        return -1;
    }
    if (a->rec.disabled_at != 0 && !c->own_delete) {
        reqsign_httpd_fail(r, REQSIGN_E_KEY_DISABLED, "the signing key is disabled");
        return -1;
    }
    if (a->rec.account_disabled_at != 0 && !c->own_delete) {
        reqsign_httpd_fail(r, REQSIGN_E_ACCOUNT_DISABLED, "the signing key's account is disabled");
        return -1;
    }
    a->admin = has_scope(a->rec.scopes, ADMIN_SCOPE);
    a->self = has_scope(a->rec.scopes, SELF_SCOPE);
    return 0;
}

/* May @a see objects of @account? (tenant isolation: else 404) */
static int sees(const struct actor *a, const char *account)
{
    return a->admin || (a->self && strcmp(a->rec.account, account) == 0);
}

static const char *status_of(const struct reqsign_key_record *k, int64_t now)
{
    if (k->revoked_at != 0)
        return "revoked";
    if (k->expires_at != 0 && now >= k->expires_at)
        return "expired";
    if (k->disabled_at != 0)
        return "disabled";
    return "active";
}

static json_t *str_or_null(const char *v)
{
    return v != NULL && v[0] ? json_string(v) : json_null();
}

/* The lifecycle members of a key record. */
static void add_lifecycle(json_t *o, const struct reqsign_key_record *k, int64_t now)
{
    json_object_set_new(o, "account",
                        json_string(k->account[0] ? k->account : REQSIGN_ACCOUNT_OPERATOR));
    json_object_set_new(o, "status", json_string(status_of(k, now)));
    json_object_set_new(o, "disabled_at", time_or_null(k->disabled_at));
    json_object_set_new(o, "revoked_at", time_or_null(k->revoked_at));
    json_object_set_new(o, "revocation_reason", str_or_null(k->revoke_reason));
    json_object_set_new(o, "replaces", str_or_null(k->replaces));
    json_object_set_new(o, "replaced_by", str_or_null(k->replaced_by));
    json_object_set_new(o, "last_used_at", time_or_null(k->last_used_at));
    json_object_set_new(o, "last_used_by", str_or_null(k->last_used_by));
    json_object_set_new(o, "publish", json_boolean(k->publish));
}

static json_t *account_json(const struct reqsign_account *a)
{
    return json_pack("{s:s, s:s, s:o, s:I, s:o, s:o, s:o, s:s, s:b}", "id", a->id, "name", a->name,
                     "allowed_scopes", scopes_json(a->allowed_scopes), "key_limit",
                     (json_int_t)a->key_limit, "max_key_lifetime_s",
                     a->max_key_lifetime_s ? json_integer(a->max_key_lifetime_s) : json_null(),
                     "created_at", time_or_null(a->created_at), "disabled_at",
                     time_or_null(a->disabled_at), "status", a->disabled_at ? "disabled" : "active",
                     "publish_keys", a->publish_keys != 0);
}

/* The segments of a path under @pre: "/v1/keys/" -> id and an optional action. 0 or -1. */
static int split_path(const struct reqsign_httpd_req *r, const char *pre, char *id, size_t idcap,
                      char *action, size_t actcap)
{
    size_t pl = strlen(pre);
    action[0] = '\0';
    if (r->path.len <= pl || memcmp(r->path.ptr, pre, pl) != 0)
        return -1;
    const char *p = r->path.ptr + pl, *end = r->path.ptr + r->path.len;
    const char *slash = memchr(p, '/', (size_t)(end - p));
    const char *idend = slash != NULL ? slash : end;
    if (idend == p || pct_decode(p, (size_t)(idend - p), id, idcap) != 0)
        return -1;
    if (slash != NULL) {
        size_t al = (size_t)(end - slash - 1);
        if (al == 0 || al >= actcap || memchr(slash + 1, '/', al) != NULL)
            return -1;
        memcpy(action, slash + 1, al);
        action[al] = '\0';
    }
    return 0;
}

/* A JSON object body (empty: {}). NULL answered (400). */
static json_t *body_object(struct reqsign_httpd_req *r, const struct call *c)
{
    json_error_t jerr;
    if (c->len == 0)
        return json_object();
    json_t *doc = json_loadb(c->body, c->len, JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL) {
        json_t *e = json_pack("{s:s, s:s, s:i}", "error", reqsign_errname(REQSIGN_E_JSON),
                              "message", jerr.text, "position", (int)jerr.position);
        reqsign_httpd_respond_json(r, 400, e);
        json_decref(e);
        return NULL;
    }
    if (!json_is_object(doc)) {
        json_decref(doc);
        reqsign_httpd_fail(r, REQSIGN_E_INVALID_REQUEST, "the body must be a JSON object");
        return NULL;
    }
    return doc;
}

/* Scopes (space-separated) from a JSON array, each [a-z0-9:._-]{1,64}. 0 or -1. */
static int scopes_from_json(json_t *arr, char *out, size_t cap)
{
    size_t used = 0, i;
    json_t *sc;
    out[0] = '\0';
    if (!json_is_array(arr) || json_array_size(arr) > MAX_SCOPES)
        return -1;
    json_array_foreach(arr, i, sc)
    {
        const char *v = json_string_value(sc);
        size_t vl = json_string_length(sc);
        if (v == NULL || !scope_ok(v, vl) || strlen(v) != vl || used + vl + 2 > cap)
            return -1;
        if (used > 0)
            out[used++] = ' ';
        memcpy(out + used, v, vl);
        used += vl;
        out[used] = '\0';
    }
    return 0;
}

/* A fresh id with @prefix and 16 random bytes in base64url (22 characters). */
static int random_id(const char *prefix, char *out, size_t cap)
{
    uint8_t b[16];
    char enc[32];
    size_t n = 0;
    if (reqsign_random_bytes(b, sizeof(b), NULL) != REQSIGN_OK ||
        reqsign_base64url_encode(b, sizeof(b), enc, sizeof(enc), &n) != REQSIGN_OK)
        return -1;
    snprintf(out, cap, "%s%.*s", prefix, (int)n, enc);
    return 0;
}

static void token_hash(const char *token, size_t len, uint8_t h[REQSIGN_ENROLLMENT_HASH_LEN])
{
    struct reqsign_digest d;
    memset(h, 0, REQSIGN_ENROLLMENT_HASH_LEN);
    if (reqsign_digest_init(&d, REQSIGN_DIGEST_SHA256, NULL) != REQSIGN_OK)
        return;
    if (reqsign_digest_update(&d, token, len, NULL) != REQSIGN_OK ||
        reqsign_digest_final(&d, NULL, 0, NULL, h, NULL, NULL) != REQSIGN_OK)
        memset(h, 0, REQSIGN_ENROLLMENT_HASH_LEN);
    reqsign_digest_cleanup(&d);
}

/* A new enrollment token for @account into @tok (shown once); 0 or -1. */
static int new_enrollment(struct reqsignd_service *s, const char *account, char tok[64],
                          int64_t *expires, struct reqsign_error *err)
{
    uint8_t b[32], h[REQSIGN_ENROLLMENT_HASH_LEN];
    size_t n = 0;
    int64_t now = now_s();
    if (reqsign_random_bytes(b, sizeof(b), NULL) != REQSIGN_OK ||
        reqsign_base64url_encode(b, sizeof(b), tok, 64, &n) != REQSIGN_OK) {
        reqsign_memzero(b, sizeof(b));
        set_error(err, REQSIGN_E_RANDOM, "cannot make a token");
        return -1;
    }
    reqsign_memzero(b, sizeof(b));
    tok[n] = '\0';
    token_hash(tok, n, h);
    *expires = now + s->enrollment_ttl;
    if (reqsign_keystore_enrollment_insert(s->store, h, account, now, *expires, err) != REQSIGN_OK)
        return -1;
    return 0;
}

/* Per source address: failed enrollments in the current window. */
static int enroll_limited(struct reqsignd_service *s, const char *peer, int failed)
{
    int64_t now = now_s();
    int over = 0;
    pthread_mutex_lock(&s->rl_mu);
    size_t slot = 0, oldest = 0;
    int found = 0;
    for (size_t i = 0; i < RL_SLOTS; i++) {
        if (strcmp(s->rl[i].peer, peer) == 0) {
            slot = i;
            found = 1;
            break;
        }
        if (s->rl[i].window < s->rl[oldest].window)
            oldest = i;
    }
    if (!found && failed) {
        slot = oldest;
        snprintf(s->rl[slot].peer, sizeof(s->rl[slot].peer), "%s", peer);
        s->rl[slot].window = now;
        s->rl[slot].fails = 0;
        found = 1;
    }
    if (found) {
        if (now - s->rl[slot].window >= ENROLL_FAIL_WINDOW) {
            s->rl[slot].window = now;
            s->rl[slot].fails = 0;
        }
        if (failed)
            s->rl[slot].fails++;
        over = s->rl[slot].fails >= ENROLL_FAIL_MAX;
    }
    pthread_mutex_unlock(&s->rl_mu);
    return over;
}

/* May a key of @acct carry @scope, created by @a? (no escalation) */
static int scope_grantable(const struct actor *a, const struct reqsign_account *acct,
                           const char *scope)
{
    if (a != NULL && !a->admin && !has_scope(a->rec.scopes, scope))
        return 0; /* a key cannot give what it does not hold */
    if (strcmp(scope, SELF_SCOPE) == 0)
        return 1;
    return has_scope(acct->allowed_scopes, "*") || has_scope(acct->allowed_scopes, scope);
}

/* The account of a new key: enabled, under key_limit (+@extra), its expiry
 * within max_key_lifetime_s (*@expires set when null). 0, or @err and -1. */
static int account_admits(struct reqsignd_service *s, const struct reqsign_account *acct,
                          int64_t extra, int64_t *expires, struct reqsign_error *err)
{
    int64_t now = now_s(), n = 0;
    if (!s->accounts)
        return 0;
    if (acct->disabled_at != 0) {
        set_error(err, REQSIGN_E_ACCOUNT_DISABLED, "the account is disabled");
        return -1;
    }
    if (reqsign_keystore_count_active(s->store, acct->id, now, &n, err) != REQSIGN_OK)
        return -1;
    if (n >= acct->key_limit + extra) {
        set_error(err, REQSIGN_E_KEY_LIMIT, "the account has its maximum of %lld active keys",
                  (long long)acct->key_limit);
        return -1;
    }
    if (acct->max_key_lifetime_s > 0) {
        if (*expires == 0)
            *expires = now + acct->max_key_lifetime_s;
        else if (*expires > now + acct->max_key_lifetime_s) {
            set_error(err, REQSIGN_E_INVALID_REQUEST,
                      "expires_at is beyond the account's max_key_lifetime_s (%lld)",
                      (long long)acct->max_key_lifetime_s);
            return -1;
        }
    }
    return 0;
}

/* Insert the new key @rec of @acct. With accounts, the key limit is checked
 * again by the store atomically with the insert (account_admits() checked
 * it before the key was made, but two requests may pass that check at
 * once): @extra as for account_admits(). */
static enum reqsign_status insert_key(struct reqsignd_service *s,
                                      const struct reqsign_account *acct,
                                      const struct reqsign_key_record *rec, int64_t extra,
                                      struct reqsign_error *err)
{
    if (!s->accounts)
        return reqsign_keystore_insert(s->store, rec, err);
    enum reqsign_status st =
        reqsign_keystore_insert_limited(s->store, rec, now_s(), acct->key_limit + extra, err);
    if (st == REQSIGN_E_KEY_LIMIT) {
        reqsign_error_clear(err);
        set_error(err, REQSIGN_E_KEY_LIMIT, "the account has its maximum of %lld active keys",
                  (long long)acct->key_limit);
    }
    return st;
}

/* Insert @rec and answer 201 with its record (+ private_key when @key was generated). */
static void answer_new_key(struct reqsignd_service *s, struct reqsign_httpd_req *r,
                           struct reqsign_key *key, int generated,
                           const struct reqsign_key_record *rec);

/* POST /v1/accounts */
static void do_account_create(struct reqsignd_service *s, struct reqsign_httpd_req *r,
                              const struct call *c, const struct actor *a)
{
    if (!a->admin) {
        refuse(s, r, c, a, "account.create", "", NULL, REQSIGN_E_SCOPE,
               "key lacks the scope " ADMIN_SCOPE);
        return;
    }
    json_t *doc = body_object(r, c);
    if (doc == NULL)
        return;
    struct reqsign_account acct;
    struct reqsign_error err;
    reqsign_error_clear(&err);
    memset(&acct, 0, sizeof(acct));
    json_t *name = json_object_get(doc, "name");
    json_t *sc = json_object_get(doc, "allowed_scopes");
    json_t *lim = json_object_get(doc, "key_limit");
    json_t *life = json_object_get(doc, "max_key_lifetime_s");
    json_t *pubk = json_object_get(doc, "publish_keys");
    const char *bad = NULL;
    if (!json_is_string(name) || json_string_length(name) == 0 ||
        json_string_length(name) > REQSIGN_ACCOUNT_NAME_IN_MAX ||
        strlen(json_string_value(name)) != json_string_length(name) ||
        !label_text_ok(json_string_value(name)))
        bad = "name must be a string of 1..128 bytes without control characters";
    else if (sc != NULL && scopes_from_json(sc, acct.allowed_scopes, sizeof(acct.allowed_scopes)))
        bad = "allowed_scopes must be an array of at most 16 scopes [a-z0-9:._-]{1,64}";
    else if (lim != NULL && !json_is_null(lim) &&
             (!json_is_integer(lim) || json_integer_value(lim) < 1 ||
              json_integer_value(lim) > 1000000))
        bad = "key_limit must be an integer 1..1000000";
    else if (life != NULL && !json_is_null(life) &&
             (!json_is_integer(life) || json_integer_value(life) < 1))
        bad = "max_key_lifetime_s must be a positive integer or null";
    else if (pubk != NULL && !json_is_null(pubk) && !json_is_boolean(pubk))
        bad = "publish_keys must be true or false";
    if (bad == NULL) {
        const char *k;
        json_t *v;
        json_object_foreach(doc, k, v)
        {
            if (strcmp(k, "name") && strcmp(k, "allowed_scopes") && strcmp(k, "key_limit") &&
                strcmp(k, "max_key_lifetime_s") && strcmp(k, "publish_keys"))
                bad = "unknown member";
        }
    }
    if (bad != NULL) {
        json_decref(doc);
        reqsign_httpd_fail(r, REQSIGN_E_INVALID_REQUEST, "%s", bad);
        return;
    }
    snprintf(acct.name, sizeof(acct.name), "%s", json_string_value(name));
    acct.key_limit = json_is_integer(lim) ? json_integer_value(lim) : 10;
    acct.max_key_lifetime_s = json_is_integer(life) ? json_integer_value(life) : 0;
    acct.publish_keys = json_is_true(pubk);
    acct.created_at = now_s();
    json_decref(doc);
    if (random_id("acct_", acct.id, sizeof(acct.id)) != 0) {
        reqsign_httpd_fail(r, REQSIGN_E_RANDOM, "cannot make an id");
        return;
    }
    if (reqsign_keystore_account_insert(s->store, &acct, &err) != REQSIGN_OK) {
        refuse_err(s, r, c, a, "account.create", acct.id, &err);
        return;
    }
    char tok[64];
    int64_t exp = 0;
    if (new_enrollment(s, acct.id, tok, &exp, &err) != 0) {
        reqsign_httpd_respond_error(r, &err);
        return;
    }
    json_t *out = json_pack("{s:o, s:{s:s, s:o}}", "account", account_json(&acct), "enrollment",
                            "token", tok, "expires_at", time_or_null(exp));
    reqsign_memzero(tok, sizeof(tok));
    reqsign_httpd_respond_json(r, 201, out);
    json_decref(out); /* wiped when freed (reqsign_httpd_wipe_json) */
    audit(s, r, c, a, "account.create", acct.id, acct.id, "ok");
}

static void query_param(const struct reqsign_httpd_req *r, const char *name, char *out, size_t cap,
                        int *present)
{
    const char *q = r->query.ptr, *end = r->query.ptr + r->query.len;
    size_t nl = strlen(name);
    out[0] = '\0';
    *present = 0;
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *pe = amp != NULL ? amp : end;
        const char *eq = memchr(q, '=', (size_t)(pe - q));
        const char *v = eq != NULL ? eq + 1 : pe;
        size_t kl = (size_t)((eq != NULL ? eq : pe) - q);
        if (kl == nl && memcmp(q, name, nl) == 0) {
            *present = pct_decode(v, (size_t)(pe - v), out, cap) == 0 ? 1 : -1;
            return;
        }
        q = pe + (pe < end);
    }
}

/* ?limit= (default LIST_DEFAULT, 1..1000). -1 answered. */
static long list_limit(struct reqsign_httpd_req *r)
{
    char v[16];
    int present;
    int64_t lv = LIST_DEFAULT;
    query_param(r, "limit", v, sizeof(v), &present);
    if (present && (present < 0 || reqsign_httpd_parse_seconds(v, &lv) != 0 || lv < 1 ||
                    lv > REQSIGN_KEYSTORE_PAGE_IN_MAX)) {
        reqsign_httpd_fail(r, REQSIGN_E_INVALID_REQUEST, "limit must be 1..%d",
                           REQSIGN_KEYSTORE_PAGE_IN_MAX);
        return -1;
    }
    return (long)lv;
}

/* GET /v1/accounts */
static void do_account_list(struct reqsignd_service *s, struct reqsign_httpd_req *r,
                            const struct actor *a)
{
    long limit = list_limit(r);
    if (limit < 0)
        return;
    char after[REQSIGN_ACCOUNT_ID_IN_MAX + 1];
    int present;
    query_param(r, "after", after, sizeof(after), &present);
    struct reqsign_error err;
    reqsign_error_clear(&err);
    json_t *arr = json_array();
    json_t *next = json_null();
    if (!a->admin) { /* keys:self: its own account only */
        struct reqsign_account acct;
        if (after[0] == '\0' &&
            reqsign_keystore_account_get(s->store, a->rec.account, &acct, &err) == REQSIGN_OK)
            json_array_append_new(arr, account_json(&acct));
    } else {
        struct reqsign_account *page = calloc((size_t)limit + 1, sizeof(*page));
        size_t n = 0;
        if (page == NULL || reqsign_keystore_account_list(s->store, after, (size_t)limit + 1, page,
                                                          &n, &err) != REQSIGN_OK) {
            free(page);
            json_decref(arr);
            if (err.code != REQSIGN_OK)
                reqsign_httpd_respond_error(r, &err);
            else
                reqsign_httpd_fail(r, REQSIGN_E_NOMEM, "out of memory");
            return;
        }
        size_t shown = n > (size_t)limit ? (size_t)limit : n;
        for (size_t i = 0; i < shown; i++)
            json_array_append_new(arr, account_json(&page[i]));
        if (n > (size_t)limit && shown > 0)
            next = json_string(page[shown - 1].id);
        free(page);
    }
    json_t *doc = json_pack("{s:o, s:o}", "accounts", arr, "next", next);
    reqsign_httpd_respond_json(r, 200, doc);
    json_decref(doc);
}

/* /v1/accounts/{id}[/action] */
static void do_account(struct reqsignd_service *s, struct reqsign_httpd_req *r,
                       const struct call *c, const struct actor *a)
{
    char id[REQSIGN_ACCOUNT_ID_IN_MAX + 1], action[16];
    struct reqsign_account acct;
    struct reqsign_error err;
    reqsign_error_clear(&err);
    if (split_path(r, "/v1/accounts/", id, sizeof(id), action, sizeof(action)) != 0) {
        reqsign_httpd_fail(r, REQSIGN_E_NOT_FOUND, "no such resource");
        return;
    }
    const char *act = action[0] == '\0'                ? "account.get"
                      : strcmp(action, "disable") == 0 ? "account.disable"
                      : strcmp(action, "enable") == 0  ? "account.enable"
                                                       : "account.enrollment";
    if (!sees(a, id) || reqsign_keystore_account_get(s->store, id, &acct, &err) != REQSIGN_OK) {
        if (err.code != REQSIGN_OK && err.code != REQSIGN_E_NOT_FOUND) {
            reqsign_httpd_respond_error(r, &err);
            return;
        }
        refuse(s, r, c, a, act, id, NULL, REQSIGN_E_NOT_FOUND, "no such account");
        return;
    }
    if (action[0] == '\0') {
        json_t *doc = account_json(&acct);
        reqsign_httpd_respond_json(r, 200, doc);
        json_decref(doc);
        return;
    }
    if (strcmp(action, "enrollments") == 0) {
        char tok[64];
        int64_t exp = 0;
        if (acct.disabled_at != 0) {
            refuse(s, r, c, a, act, id, id, REQSIGN_E_ACCOUNT_DISABLED, "the account is disabled");
            return;
        }
        if (new_enrollment(s, acct.id, tok, &exp, &err) != 0) {
            reqsign_httpd_respond_error(r, &err);
            return;
        }
        json_t *out = json_pack("{s:s, s:o, s:s}", "token", tok, "expires_at", time_or_null(exp),
                                "account", acct.id);
        reqsign_memzero(tok, sizeof(tok));
        reqsign_httpd_respond_json(r, 201, out);
        json_decref(out);
        audit(s, r, c, a, act, id, id, "ok");
        return;
    }
    if (!a->admin) {
        refuse(s, r, c, a, act, id, id, REQSIGN_E_SCOPE, "key lacks the scope " ADMIN_SCOPE);
        return;
    }
    int disable = strcmp(action, "disable") == 0;
    if (strcmp(acct.id, REQSIGN_ACCOUNT_OPERATOR) == 0 && disable) {
        refuse(s, r, c, a, act, id, id, REQSIGN_E_INVALID_REQUEST,
               "the operator's account cannot be disabled");
        return;
    }
    if (reqsign_keystore_account_set_disabled(s->store, id, disable ? now_s() : 0, &err) !=
            REQSIGN_OK ||
        reqsign_keystore_account_get(s->store, id, &acct, &err) != REQSIGN_OK) {
        refuse_err(s, r, c, a, act, id, &err);
        return;
    }
    reqsign_keycache_invalidate(s->cache, NULL, 0); /* every key of the account */
    json_t *doc = account_json(&acct);
    reqsign_httpd_respond_json(r, 200, doc);
    json_decref(doc);
    audit(s, r, c, a, act, id, id, "ok");
}

static void answer_new_key(struct reqsignd_service *s, struct reqsign_httpd_req *r,
                           struct reqsign_key *key, int generated,
                           const struct reqsign_key_record *rec)
{
    char svc[300];
    service_url(s, r, svc, sizeof(svc));
    /* a negative cache entry for this keyid may exist: drop it */
    reqsign_keycache_invalidate(s->cache, rec->keyid, strlen(rec->keyid));
    if (generated) {
        size_t n = 0;
        char *cred = secret_credential(key, rec, svc, s->api_url, &n);
        if (cred == NULL) {
            reqsign_httpd_fail(r, REQSIGN_E_INTERNAL, "cannot build the credential");
            return;
        }
        reqsign_httpd_respond_secret(r, 201, cred, n); /* wiped once sent */
        char disp[128];
        snprintf(disp, sizeof(disp), "attachment; filename=\"reqsign-%s.json\"", rec->keyid);
        reqsign_httpd_add_header(r, "Content-Disposition", disp);
    } else {
        json_t *cred = credential_json(rec, svc, s->api_url);
        if (cred == NULL) {
            reqsign_httpd_fail(r, REQSIGN_E_INTERNAL, "cannot build the credential");
            return;
        }
        reqsign_httpd_respond_json(r, 201, cred);
        json_decref(cred);
    }
}

/* GET /v1/keys?limit&after&account&unused_for */
static void do_key_list(struct reqsignd_service *s, struct reqsign_httpd_req *r,
                        const struct actor *a)
{
    long limit = list_limit(r);
    if (limit < 0)
        return;
    char after[REQSIGN_KEYID_IN_MAX + 1], account[REQSIGN_ACCOUNT_ID_IN_MAX + 1], unused[24];
    int p1, p2, p3;
    query_param(r, "after", after, sizeof(after), &p1);
    query_param(r, "account", account, sizeof(account), &p2);
    query_param(r, "unused_for", unused, sizeof(unused), &p3);
    int64_t uf = 0;
    if (p1 < 0 || p2 < 0 ||
        (p3 != 0 && (p3 < 0 || reqsign_httpd_parse_seconds(unused, &uf) != 0 || uf < 0))) {
        reqsign_httpd_fail(r, REQSIGN_E_INVALID_REQUEST,
                           "after, account: percent-encoded strings; unused_for: seconds");
        return;
    }
    struct reqsign_key_filter f;
    memset(&f, 0, sizeof(f));
    f.account = a->admin ? account : a->rec.account; /* keys:self: its own account only */
    int64_t now = now_s();
    f.unused_before = p3 ? now - uf : 0;
    if (p3 && f.unused_before <= 0)
        f.unused_before = 1;
    struct reqsign_error err;
    reqsign_error_clear(&err);
    struct reqsign_key_record *page = calloc((size_t)limit + 1, sizeof(*page));
    size_t n = 0;
    enum reqsign_status lst =
        page == NULL ? REQSIGN_E_NOMEM
        : !s->accounts && a->admin && f.account[0] == '\0' && f.unused_before == 0
            ? reqsign_keystore_list(s->store, after, (size_t)limit + 1, page, &n, &err)
            : reqsign_keystore_list_filter(s->store, &f, after, (size_t)limit + 1, page, &n, &err);
    if (lst != REQSIGN_OK) {
        free(page);
        if (err.code != REQSIGN_OK)
            reqsign_httpd_respond_error(r, &err);
        else
            reqsign_httpd_fail(r, REQSIGN_E_NOMEM, "out of memory");
        return;
    }
    size_t shown = n > (size_t)limit ? (size_t)limit : n;
    json_t *keys = json_array();
    for (size_t i = 0; i < shown; i++)
        json_array_append_new(keys, record_json(&page[i], now));
    json_t *doc = json_pack("{s:o, s:o}", "keys", keys, "next",
                            n > (size_t)limit && shown > 0 ? json_string(page[shown - 1].keyid)
                                                           : json_null());
    free(page);
    reqsign_httpd_respond_json(r, 200, doc);
    json_decref(doc);
}

/* POST /v1/keys */
static void do_key_create(struct reqsignd_service *s, struct reqsign_httpd_req *r, struct call *c,
                          const struct actor *a)
{
    struct reqsignd_create_req cr;
    struct reqsign_key *key = NULL;
    struct reqsign_key_record rec;
    struct reqsign_account acct;
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
    key = cr.public_key;
    const char *target = cr.account[0] ? cr.account
                         : a->admin    ? REQSIGN_ACCOUNT_OPERATOR
                                       : a->rec.account;
    memset(&acct, 0, sizeof(acct));
    if (!s->accounts && a->admin && cr.account[0] == '\0') { /* a store without accounts */
        snprintf(acct.id, sizeof(acct.id), "%s", REQSIGN_ACCOUNT_OPERATOR);
        snprintf(acct.allowed_scopes, sizeof(acct.allowed_scopes), "*");
    } else if (!sees(a, target) ||
               reqsign_keystore_account_get(s->store, target, &acct, &err) != REQSIGN_OK) {
        if (err.code != REQSIGN_OK && err.code != REQSIGN_E_NOT_FOUND)
            reqsign_httpd_respond_error(r, &err);
        else
            refuse(s, r, c, a, "key.create", target, NULL, REQSIGN_E_NOT_FOUND, "no such account");
        goto out;
    }
    for (const char *p = cr.scopes; *p;) {
        char one[REQSIGN_SCOPE_IN_MAX + 1];
        size_t l = strcspn(p, " ");
        snprintf(one, sizeof(one), "%.*s", (int)l, p);
        if (!scope_grantable(a, &acct, one)) {
            char msg[160];
            snprintf(msg, sizeof(msg),
                     "scope %s is not held by the signing key or not allowed "
                     "in the account",
                     one);
            refuse(s, r, c, a, "key.create", acct.id, acct.id, REQSIGN_E_SCOPE, msg);
            goto out;
        }
        p += l;
        while (*p == ' ')
            p++;
    }
    rec.expires_at = cr.expires_at;
    if (account_admits(s, &acct, 0, &rec.expires_at, &err) != 0) {
        refuse(s, r, c, a, "key.create", acct.id, acct.id, err.code, err.message);
        goto out;
    }
    snprintf(rec.label, sizeof(rec.label), "%s", cr.label);
    snprintf(rec.scopes, sizeof(rec.scopes), "%s", cr.scopes);
    snprintf(rec.account, sizeof(rec.account), "%s", acct.id);
    rec.publish = cr.publish;
    int generated = key == NULL;
    if (generated && (key = reqsign_key_generate(&err)) == NULL) {
        reqsign_httpd_respond_error(r, &err);
        goto out;
    }
    if (reqsign_key_thumbprint(key, rec.keyid) != REQSIGN_OK) {
        reqsign_httpd_fail(r, REQSIGN_E_INTERNAL, "cannot compute the keyid");
        goto out;
    }
    snprintf(r->target_keyid, sizeof(r->target_keyid), "%s", rec.keyid); /* the request log */
    reqsign_key_public_raw(key, rec.public_key);
    rec.created_at = now;
    if (insert_key(s, &acct, &rec, 0, &err) != REQSIGN_OK) {
        if (err.code == REQSIGN_E_CONFLICT) {
            reqsign_error_clear(&err);
            refuse(s, r, c, a, "key.create", rec.keyid, acct.id, REQSIGN_E_CONFLICT,
                   "this public key is already registered");
        } else if (err.code == REQSIGN_E_KEY_LIMIT) {
            refuse(s, r, c, a, "key.create", acct.id, acct.id, err.code, err.message);
        } else {
            reqsign_httpd_respond_error(r, &err);
        }
        goto out;
    }
    answer_new_key(s, r, key, generated, &rec);
    audit(s, r, c, a, "key.create", rec.keyid, acct.id, "ok");
out:
    reqsign_key_free(key);
}

/* 1 if @k is a keys:admin key that works now: neither revoked, expired nor
 * disabled, its account enabled. */
static int active_admin(const struct reqsign_key_record *k, int64_t now)
{
    return has_scope(k->scopes, ADMIN_SCOPE) && strcmp(status_of(k, now), "active") == 0 &&
           k->account_disabled_at == 0;
}

/* Is there an active keys:admin key other than @keyid? *@found 1 or 0.
 * keys:admin keys live in acct_operator only (a store without accounts: all
 * keys are listed). */
static enum reqsign_status other_admin(struct reqsignd_service *s, const char *keyid, int64_t now,
                                       int *found, struct reqsign_error *err)
{
    struct reqsign_key_record *page = calloc(REQSIGN_KEYSTORE_PAGE_IN_MAX, sizeof(*page));
    char after[REQSIGN_KEYID_IN_MAX + 1] = "";
    struct reqsign_key_filter f;
    memset(&f, 0, sizeof(f));
    f.account = REQSIGN_ACCOUNT_OPERATOR;
    *found = 0;
    if (page == NULL)
        return set_error(err, REQSIGN_E_NOMEM, "out of memory");
    for (;;) {
        size_t n = 0;
        enum reqsign_status st =
            s->accounts ? reqsign_keystore_list_filter(s->store, &f, after,
                                                       REQSIGN_KEYSTORE_PAGE_IN_MAX, page, &n, err)
                        : reqsign_keystore_list(s->store, after, REQSIGN_KEYSTORE_PAGE_IN_MAX, page,
                                                &n, err);
        if (st != REQSIGN_OK) {
            free(page);
            return st;
        }
        for (size_t i = 0; i < n && !*found; i++)
            *found = strcmp(page[i].keyid, keyid) != 0 && active_admin(&page[i], now);
        if (*found || n < REQSIGN_KEYSTORE_PAGE_IN_MAX)
            break;
        snprintf(after, sizeof(after), "%s", page[n - 1].keyid);
    }
    free(page);
    return REQSIGN_OK;
}

/*
 * Proof of possession of @key (a public key sent in the body): the request,
 * as received and with its whole body, verified by a verifier whose only key
 * is @key under its RFC 7638 thumbprint, selecting the signature @label (NULL:
 * the only one, else "sig1"; "pop": the second signature of a rotation to a
 * key of the client's own). Every check of a request signature applies:
 * covered components, window, nonce, Content-Digest. @kid gets the
 * thumbprint ("" if none), @nonce (NULL: not wanted) that signature's nonce.
 * REQSIGN_OK, or the verification's code with @err set (key_unknown: the
 * signature names another keyid; sig_invalid: another key signed it).
 */
static enum reqsign_status verify_possession(struct reqsignd_service *s,
                                             struct reqsign_httpd_req *r, const struct call *c,
                                             const struct reqsign_key *key, const char *label,
                                             char kid[REQSIGN_KEYID_IN_MAX + 1],
                                             char nonce[REQSIGN_NONCE_IN_MAX + 1],
                                             struct reqsign_error *err)
{
    struct reqsign_static_key sk;
    reqsign_error_clear(err);
    memset(&sk, 0, sizeof(sk));
    kid[0] = '\0';
    if (reqsign_key_thumbprint(key, kid) != REQSIGN_OK) {
        kid[0] = '\0';
        return set_error(err, REQSIGN_E_INTERNAL, "cannot compute the keyid");
    }
    sk.keyid = kid;
    reqsign_key_public_raw(key, sk.public_key);
    sk.scopes = "";
    struct reqsign_verifier_opts vo = s->vo;
    vo.lookup = reqsign_static_key_lookup;
    vo.lookup_ctx = &sk;
    vo.label = label;
    struct reqsign_verifier *v = reqsign_verifier_new(&vo, err);
    struct reqsign_verification vs;
    reqsign_verification_init(&vs);
    enum reqsign_status vst = v != NULL
                                  ? reqsign_verifier_verify(v, &r->view, c->body, c->len, &vs, err)
                                  : (err->code != REQSIGN_OK ? err->code : REQSIGN_E_NOMEM);
    if (nonce != NULL)
        snprintf(nonce, REQSIGN_NONCE_IN_MAX + 1, "%s", vs.nonce);
    reqsign_verification_cleanup(&vs);
    reqsign_verifier_free(v);
    return vst;
}

/* /v1/keys/{keyid}[/disable|enable|rotate], GET, DELETE, POST */
static void do_key(struct reqsignd_service *s, struct reqsign_httpd_req *r, struct call *c,
                   const struct actor *a)
{
    char keyid[REQSIGN_KEYID_IN_MAX + 1], action[16];
    struct reqsign_key_record rec;
    struct reqsign_error err;
    reqsign_error_clear(&err);
    int del = strcmp(r->method, "DELETE") == 0;
    if (split_path(r, "/v1/keys/", keyid, sizeof(keyid), action, sizeof(action)) != 0) {
        reqsign_httpd_fail(r, REQSIGN_E_NOT_FOUND, "no such resource");
        return;
    }
    snprintf(r->target_keyid, sizeof(r->target_keyid), "%s", keyid); /* the request log */
    const char *act = del                              ? "key.revoke"
                      : action[0] == '\0'              ? "key.get"
                      : strcmp(action, "disable") == 0 ? "key.disable"
                      : strcmp(action, "enable") == 0  ? "key.enable"
                                                       : "key.rotate";
    int own = strcmp(keyid, a->rec.keyid) == 0;
    enum reqsign_status gst = reqsign_keystore_get(s->store, keyid, strlen(keyid), &rec, &err);
    if (gst != REQSIGN_OK && gst != REQSIGN_E_KEY_UNKNOWN) {
        reqsign_httpd_respond_error(r, &err);
        return;
    }
    /* revoke by possession: a key may always revoke itself */
    if (gst != REQSIGN_OK || !(sees(a, rec.account) || (del && own))) {
        refuse(s, r, c, a, act, keyid, NULL, REQSIGN_E_NOT_FOUND, "no such key");
        return;
    }
    int64_t now = now_s();
    if (action[0] == '\0' && !del) {
        json_t *doc = record_json(&rec, now);
        reqsign_httpd_respond_json(r, 200, doc);
        json_decref(doc);
        return;
    }
    json_t *body = body_object(r, c);
    if (body == NULL)
        return;
    if (del) {
        json_t *reason = json_object_get(body, "reason");
        const char *rs = json_string_value(reason);
        if (reason != NULL && !json_is_null(reason) &&
            (rs == NULL || (strcmp(rs, "unspecified") && strcmp(rs, "superseded") &&
                            strcmp(rs, "compromised")))) {
            json_decref(body);
            reqsign_httpd_fail(r, REQSIGN_E_INVALID_REQUEST,
                               "reason must be unspecified, superseded or compromised");
            return;
        }
        if (rec.revoked_at == 0) {
            rec.revoked_at = now;
            snprintf(rec.revoke_reason, sizeof(rec.revoke_reason), "%s",
                     rs != NULL ? rs : "unspecified");
        }
    } else if (strcmp(action, "disable") == 0 || strcmp(action, "enable") == 0) {
        if (rec.revoked_at != 0) {
            json_decref(body);
            refuse(s, r, c, a, act, keyid, rec.account, REQSIGN_E_CONFLICT,
                   "the key is revoked (final)");
            return;
        }
        rec.disabled_at =
            strcmp(action, "disable") == 0 ? (rec.disabled_at ? rec.disabled_at : now) : 0;
    } else if (strcmp(action, "rotate") == 0) {
        json_t *grace = json_object_get(body, "grace_s");
        int64_t g = GRACE_DEFAULT;
        if (grace != NULL && (!json_is_integer(grace) || json_integer_value(grace) < 0 ||
                              json_integer_value(grace) > GRACE_MAX)) {
            json_decref(body);
            reqsign_httpd_fail(r, REQSIGN_E_INVALID_REQUEST, "grace_s must be 0..%d", GRACE_MAX);
            return;
        }
        if (grace != NULL)
            g = json_integer_value(grace);
        /* a key of the client's own (BYO): its public key here, its proof of
         * possession the request's second signature, "pop" */
        struct reqsign_key *key = NULL;
        json_t *pk = json_object_get(body, "public_key");
        if (pk != NULL && !json_is_null(pk) && load_public(pk, &key, &err) != REQSIGN_OK) {
            json_decref(body);
            reqsign_httpd_respond_error(r, &err);
            return;
        }
        int generated = key == NULL;
        json_decref(body);
        body = NULL;
        if (strcmp(status_of(&rec, now), "active") != 0 || rec.replaced_by[0]) {
            reqsign_key_free(key);
            refuse(s, r, c, a, act, keyid, rec.account, REQSIGN_E_CONFLICT,
                   "only an active key that was not rotated yet can be rotated");
            return;
        }
        struct reqsign_account acct;
        struct reqsign_key_record nrec;
        memset(&nrec, 0, sizeof(nrec));
        if (!generated) {
            char kid[REQSIGN_KEYID_IN_MAX + 1];
            enum reqsign_status vst = verify_possession(s, r, c, key, "pop", kid, NULL, &err);
            if (vst == REQSIGN_E_SIG_LABEL) /* no signature "pop" (or half of one) */
                set_error(&err, REQSIGN_E_SIG_MISSING,
                          "rotating to a public_key needs the proof of possession: a second "
                          "signature labelled \"pop\", made by the new key (keyid %s) over "
                          "the same components as the first",
                          kid);
            else if (vst != REQSIGN_OK && err.code == REQSIGN_OK)
                set_error(&err, vst, "proof of possession failed");
            if (vst != REQSIGN_OK) {
                reqsign_key_free(key);
                reqsign_httpd_respond_error(r, &err);
                audit(s, r, c, a, act, keyid, rec.account, reqsign_errname(err.code));
                return;
            }
        }
        if (reqsign_keystore_account_get(s->store, rec.account, &acct, &err) != REQSIGN_OK) {
            reqsign_key_free(key);
            refuse_err(s, r, c, a, act, keyid, &err);
            return;
        }
        if (account_admits(s, &acct, 1, &nrec.expires_at, &err) != 0) {
            reqsign_key_free(key);
            refuse(s, r, c, a, act, keyid, rec.account, err.code, err.message);
            return;
        }
        snprintf(nrec.label, sizeof(nrec.label), "%s", rec.label);
        snprintf(nrec.scopes, sizeof(nrec.scopes), "%s", rec.scopes);
        snprintf(nrec.account, sizeof(nrec.account), "%s", rec.account);
        snprintf(nrec.replaces, sizeof(nrec.replaces), "%s", rec.keyid);
        nrec.publish = rec.publish;
        nrec.created_at = now;
        if ((generated && (key = reqsign_key_generate(&err)) == NULL) ||
            reqsign_key_thumbprint(key, nrec.keyid) != REQSIGN_OK) {
            reqsign_key_free(key);
            reqsign_httpd_fail(r, REQSIGN_E_INTERNAL, "cannot make the key");
            return;
        }
        reqsign_key_public_raw(key, nrec.public_key);
        if (insert_key(s, &acct, &nrec, 1, &err) != REQSIGN_OK) {
            reqsign_key_free(key);
            if (err.code == REQSIGN_E_CONFLICT) {
                reqsign_error_clear(&err);
                refuse(s, r, c, a, act, keyid, rec.account, REQSIGN_E_CONFLICT,
                       "this public key is already registered");
            } else if (err.code == REQSIGN_E_KEY_LIMIT) {
                refuse(s, r, c, a, act, keyid, rec.account, err.code, err.message);
            } else {
                reqsign_httpd_respond_error(r, &err);
            }
            return;
        }
        snprintf(rec.replaced_by, sizeof(rec.replaced_by), "%s", nrec.keyid);
        if (rec.expires_at == 0 || rec.expires_at > now + g)
            rec.expires_at = now + g;
        if (rec.expires_at <= rec.created_at) /* grace 0 in the creation second */
            rec.expires_at = rec.created_at + 1;
        if (reqsign_keystore_update(s->store, &rec, &err) != REQSIGN_OK) {
            reqsign_key_free(key);
            reqsign_httpd_respond_error(r, &err);
            return;
        }
        reqsign_keycache_invalidate(s->cache, rec.keyid, strlen(rec.keyid));
        answer_new_key(s, r, key, generated, &nrec);
        reqsign_key_free(key);
        audit(s, r, c, a, act, keyid, rec.account, "ok");
        return;
    } else {
        json_decref(body);
        reqsign_httpd_fail(r, REQSIGN_E_NOT_FOUND, "no such resource");
        return;
    }
    json_decref(body);
    /* The last active keys:admin key is neither revoked (not even by
     * possession) nor disabled: nothing online could recover the service.
     * `reqsignd admin add` is the offline way back. */
    struct reqsign_key_record cur;
    int guard = 0;
    if ((del || strcmp(action, "disable") == 0) &&
        reqsign_keystore_get(s->store, keyid, strlen(keyid), &cur, &err) == REQSIGN_OK &&
        active_admin(&cur, now)) {
        int others = 0;
        guard = 1;
        pthread_mutex_lock(&s->admin_mu);
        if (other_admin(s, keyid, now, &others, &err) != REQSIGN_OK) {
            pthread_mutex_unlock(&s->admin_mu);
            reqsign_httpd_respond_error(r, &err);
            return;
        }
        if (!others) {
            pthread_mutex_unlock(&s->admin_mu);
            refuse(s, r, c, a, act, keyid, rec.account, REQSIGN_E_LAST_ADMIN,
                   "this is the last active keys:admin key: create another admin key first "
                   "(POST /v1/keys with scopes [\"keys:admin\"]); offline recovery is "
                   "'reqsignd admin add'");
            return;
        }
    }
    reqsign_error_clear(&err);
    enum reqsign_status wst = REQSIGN_OK;
    if (!s->accounts && del) /* a store without the lifecycle columns */
        wst = reqsign_keystore_revoke(s->store, keyid, strlen(keyid), now, &err);
    else
        wst = reqsign_keystore_update(s->store, &rec, &err);
    if (guard)
        pthread_mutex_unlock(&s->admin_mu);
    if (wst != REQSIGN_OK ||
        reqsign_keystore_get(s->store, keyid, strlen(keyid), &rec, &err) != REQSIGN_OK) {
        refuse_err(s, r, c, a, act, keyid, &err);
        return;
    }
    /* this process stops accepting the key at once; others within the cache TTL */
    reqsign_keycache_invalidate(s->cache, keyid, strlen(keyid));
    json_t *doc = record_json(&rec, now);
    reqsign_httpd_respond_json(r, 200, doc);
    json_decref(doc);
    audit(s, r, c, a, act, keyid, sees(a, rec.account) ? rec.account : NULL, "ok");
}

/* GET /v1/audit?account=&after=&limit= */
static void do_audit(struct reqsignd_service *s, struct reqsign_httpd_req *r, const struct actor *a)
{
    long limit = list_limit(r);
    if (limit < 0)
        return;
    if (!a->admin && !a->self) {
        reqsign_httpd_fail(r, REQSIGN_E_SCOPE, "key lacks the scope " SELF_SCOPE);
        return;
    }
    char account[REQSIGN_ACCOUNT_ID_IN_MAX + 1], after[24];
    int p1, p2;
    int64_t av = 0;
    query_param(r, "account", account, sizeof(account), &p1);
    query_param(r, "after", after, sizeof(after), &p2);
    if (p1 < 0 || (p2 != 0 && (p2 < 0 || reqsign_httpd_parse_seconds(after, &av) != 0))) {
        reqsign_httpd_fail(r, REQSIGN_E_INVALID_REQUEST, "after must be a cursor from next");
        return;
    }
    const char *filter = a->admin ? account : a->rec.account;
    struct reqsign_error err;
    reqsign_error_clear(&err);
    struct reqsign_audit_event *ev = calloc((size_t)limit + 1, sizeof(*ev));
    size_t n = 0;
    if (ev == NULL || reqsign_keystore_audit_list(s->store, filter, av, (size_t)limit + 1, ev, &n,
                                                  &err) != REQSIGN_OK) {
        free(ev);
        if (err.code != REQSIGN_OK)
            reqsign_httpd_respond_error(r, &err);
        else
            reqsign_httpd_fail(r, REQSIGN_E_NOMEM, "out of memory");
        return;
    }
    size_t shown = n > (size_t)limit ? (size_t)limit : n;
    json_t *arr = json_array();
    for (size_t i = 0; i < shown; i++)
        json_array_append_new(
            arr, json_pack("{s:o, s:o, s:o, s:s, s:o, s:s, s:o, s:o}", "time",
                           time_or_null(ev[i].time), "actor", str_or_null(ev[i].actor), "account",
                           str_or_null(ev[i].account), "action", ev[i].action, "target",
                           str_or_null(ev[i].target), "outcome", ev[i].outcome, "source",
                           str_or_null(ev[i].source), "nonce", str_or_null(ev[i].nonce)));
    char nx[24];
    snprintf(nx, sizeof(nx), "%lld", shown > 0 ? (long long)ev[shown - 1].seq : 0LL);
    json_t *doc = json_pack("{s:o, s:o}", "events", arr, "next",
                            n > (size_t)limit ? json_string(nx) : json_null());
    free(ev);
    reqsign_httpd_respond_json(r, 200, doc);
    json_decref(doc);
}

/* POST /v1/enroll: {"token", "label"?, "public_key"?}. With public_key the
 * request must be signed by that very key (proof of possession): a verifier
 * whose only key is that one checks the whole request here. */
static void do_enroll(struct reqsignd_service *s, struct reqsign_httpd_req *r, struct call *c)
{
    struct reqsign_error err;
    reqsign_error_clear(&err);
    struct reqsign_key *key = NULL;
    struct reqsign_key_record rec;
    struct reqsign_account acct;
    memset(&rec, 0, sizeof(rec));
    json_t *doc = body_object(r, c);
    if (doc == NULL)
        return;
    json_t *tok = json_object_get(doc, "token");
    json_t *label = json_object_get(doc, "label");
    json_t *pk = json_object_get(doc, "public_key");
    json_t *pub = json_object_get(doc, "publish");
    const char *ls = json_string_value(label);
    if (pub != NULL && !json_is_null(pub) && !json_is_boolean(pub)) {
        json_decref(doc);
        reqsign_httpd_fail(r, REQSIGN_E_INVALID_REQUEST, "publish must be true or false");
        return;
    }
    rec.publish = json_is_true(pub);
    if (!json_is_string(tok) || json_string_length(tok) > 128 ||
        (label != NULL && !json_is_null(label) &&
         (ls == NULL || json_string_length(label) > REQSIGN_KEY_LABEL_IN_MAX ||
          strlen(ls) != json_string_length(label) || !label_text_ok(ls)))) {
        json_decref(doc);
        reqsign_httpd_fail(r, REQSIGN_E_INVALID_REQUEST,
                           "token must be a string; label a string of at most 128 bytes");
        return;
    }
    if (ls != NULL)
        snprintf(rec.label, sizeof(rec.label), "%s", ls);
    if (pk != NULL && !json_is_null(pk) && load_public(pk, &key, &err) != REQSIGN_OK) {
        json_decref(doc);
        reqsign_httpd_respond_error(r, &err);
        return;
    }
    int generated = key == NULL;
    if (!generated) {
        /* proof of possession: the request signed by this very key */
        char kid[REQSIGN_KEYID_IN_MAX + 1];
        enum reqsign_status vst = verify_possession(s, r, c, key, NULL, kid, c->vs.nonce, &err);
        if (vst != REQSIGN_OK) {
            json_decref(doc);
            reqsign_key_free(key);
            if (err.code == REQSIGN_OK)
                reqsign_httpd_fail(r, vst, "proof of possession failed");
            else
                reqsign_httpd_respond_error(r, &err); /* key_unknown: signed by another key */
            audit(s, r, c, NULL, "key.enroll", kid, NULL, reqsign_errname(vst));
            return;
        }
        snprintf(r->keyid, sizeof(r->keyid), "%s", kid);
    }
    /* the token: rate-limited per source, single use, by its SHA-256 */
    uint8_t h[REQSIGN_ENROLLMENT_HASH_LEN];
    char acct_id[REQSIGN_ACCOUNT_ID_IN_MAX + 1] = "";
    int limited = enroll_limited(s, r->peer, 0);
    token_hash(json_string_value(tok), json_string_length(tok), h);
    json_decref(doc); /* the token's copy is wiped (reqsign_httpd_wipe_json) */
    enum reqsign_status est = REQSIGN_E_ENROLLMENT_INVALID;
    if (!limited)
        est = reqsign_keystore_enrollment_consume(s->store, h, now_s(), acct_id, &err);
    reqsign_memzero(h, sizeof(h));
    if (est == REQSIGN_OK &&
        (reqsign_keystore_account_get(s->store, acct_id, &acct, &err) != REQSIGN_OK ||
         acct.disabled_at != 0))
        est = REQSIGN_E_ENROLLMENT_INVALID;
    if (est != REQSIGN_OK && est != REQSIGN_E_ENROLLMENT_INVALID) {
        reqsign_key_free(key);
        reqsign_httpd_respond_error(r, &err);
        return;
    }
    if (est != REQSIGN_OK) {
        reqsign_key_free(key);
        enroll_limited(s, r->peer, 1);
        refuse(s, r, c, NULL, "key.enroll", "", NULL, REQSIGN_E_ENROLLMENT_INVALID,
               "enrollment token unknown, used or expired");
        return;
    }
    /* keys:self plus the account's allowed scopes */
    snprintf(rec.scopes, sizeof(rec.scopes), "%s", SELF_SCOPE);
    if (!has_scope(acct.allowed_scopes, "*"))
        for (const char *p = acct.allowed_scopes; *p;) {
            size_t l = strcspn(p, " ");
            size_t used = strlen(rec.scopes);
            if (l > 0 && used + l + 2 <= sizeof(rec.scopes) &&
                !(l == strlen(SELF_SCOPE) && memcmp(p, SELF_SCOPE, l) == 0))
                snprintf(rec.scopes + used, sizeof(rec.scopes) - used, " %.*s", (int)l, p);
            p += l;
            while (*p == ' ')
                p++;
        }
    snprintf(rec.account, sizeof(rec.account), "%s", acct.id);
    if (account_admits(s, &acct, 0, &rec.expires_at, &err) != 0) {
        reqsign_key_free(key);
        refuse(s, r, c, NULL, "key.enroll", acct.id, acct.id, err.code, err.message);
        return;
    }
    if (generated && (key = reqsign_key_generate(&err)) == NULL) {
        reqsign_httpd_respond_error(r, &err);
        return;
    }
    if (reqsign_key_thumbprint(key, rec.keyid) != REQSIGN_OK) {
        reqsign_key_free(key);
        reqsign_httpd_fail(r, REQSIGN_E_INTERNAL, "cannot compute the keyid");
        return;
    }
    snprintf(r->target_keyid, sizeof(r->target_keyid), "%s", rec.keyid); /* the request log */
    reqsign_key_public_raw(key, rec.public_key);
    rec.created_at = now_s();
    if (insert_key(s, &acct, &rec, 0, &err) != REQSIGN_OK) {
        reqsign_key_free(key);
        if (err.code == REQSIGN_E_CONFLICT) {
            reqsign_error_clear(&err);
            refuse(s, r, c, NULL, "key.enroll", rec.keyid, acct.id, REQSIGN_E_CONFLICT,
                   "this public key is already registered");
        } else if (err.code == REQSIGN_E_KEY_LIMIT) {
            refuse(s, r, c, NULL, "key.enroll", acct.id, acct.id, err.code, err.message);
        } else {
            reqsign_httpd_respond_error(r, &err);
        }
        return;
    }
    answer_new_key(s, r, key, generated, &rec);
    reqsign_key_free(key);
    struct actor self;
    memset(&self, 0, sizeof(self));
    self.rec = rec;
    audit(s, r, c, &self, "key.enroll", rec.keyid, acct.id, "ok");
}

/* ---- the three phases ---- */

/* The audit action of a request refused before its route ran. */
static const char *audit_action(const struct reqsign_httpd_req *r, enum route rt)
{
    int post = strcmp(r->method, "POST") == 0;
    switch (rt) {
    case R_KEYS:
        return post ? "key.create" : "key.list";
    case R_KEY:
        return strcmp(r->method, "DELETE") == 0 ? "key.revoke" : "key.get";
    case R_KEY_ACTION:
        return "key.action";
    case R_ACCOUNTS:
        return post ? "account.create" : "account.list";
    case R_ACCOUNT:
    case R_ACCOUNT_ACTION:
        return "account.action";
    case R_AUDIT:
        return "audit.list";
    default:
        return "request";
    }
}

/* A request that says it has no body: Content-Length 0, or neither a length
 * nor Transfer-Encoding. */
static int no_body(const struct reqsign_httpd_req *r)
{
    if (r->has_content_length)
        return r->content_length == 0;
    return reqsign_httpd_header(r, "Transfer-Encoding") == NULL;
}

/* application/json, or no body at all (POST .../disable, .../enable, ... may
 * come without one: it reads as {}). */
static int content_type_ok(const struct reqsign_httpd_req *r)
{
    if (no_body(r))
        return 1;
    const char *ct = reqsign_httpd_header(r, "Content-Type");
    size_t tl = strlen("application/json");
    return ct != NULL && strncasecmp(ct, "application/json", tl) == 0 &&
           (ct[tl] == '\0' || ct[tl] == ';' || ct[tl] == ' ');
}

static void on_headers(void *ctx, struct reqsign_httpd_req *r)
{
    struct reqsignd_service *s = ctx;
    if (reqsignd_console_handle(r)) /* the web console's static files (console.c) */
        return;
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
    case R_KEY_ACTION:
    case R_ACCOUNT_ACTION:
    case R_ENROLL:
        if (check_method(r, "POST"))
            return;
        break;
    case R_ACCOUNTS:
        if (check_method(r, "GET, POST"))
            return;
        break;
    case R_ACCOUNT:
    case R_AUDIT:
        if (check_method(r, "GET"))
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
    if (rt == R_ENROLL) { /* unsigned, or signed by the key it registers: checked at the end */
        if (!content_type_ok(r))
            reqsign_httpd_fail(r, REQSIGN_E_UNSUPPORTED_MEDIA_TYPE,
                               "the body must be application/json");
        return;
    }

    /* phase one: the signature, before any byte of the body is read */
    struct reqsign_error err;
    reqsign_error_clear(&err);
    enum reqsign_status st = reqsign_verifier_verify_headers(s->verifier, &r->view, &c->vs, &err);
    if (c->vs.keyid[0])
        snprintf(r->keyid, sizeof(r->keyid), "%s", c->vs.keyid);
    /* keys:admin and keys:self manage keys; any key may revoke itself */
    char kid[REQSIGN_KEYID_IN_MAX + 1];
    int own_delete = rt == R_KEY && strcmp(r->method, "DELETE") == 0 &&
                     key_from_path(r, kid) == 0 && c->vs.keyid[0] != '\0' &&
                     strcmp(kid, c->vs.keyid) == 0;
    c->own_delete = own_delete;
    /* Revoke by possession holds for a disabled key too (and a key of a
     * disabled account), for that one request only. The verifier refuses the
     * key's state at its key step, before the signature, the nonce and the
     * digest are checked: the request is verified again, from the start, by
     * a verifier that takes such a key for active (revoked and expired keys
     * stay refused); the nonce was not used by the first verification, which
     * stopped before its nonce step. (A key disabled in the store that this
     * process's cache still holds as active passes the first verification,
     * and load_actor() lets it revoke itself too.) */
    if ((st == REQSIGN_E_KEY_DISABLED || st == REQSIGN_E_ACCOUNT_DISABLED) && own_delete) {
        reqsign_verification_cleanup(&c->vs);
        reqsign_verification_init(&c->vs);
        st = reqsign_verifier_verify_headers(s->self_revoke, &r->view, &c->vs, &err);
    }
    if (st != REQSIGN_OK) {
        reqsign_httpd_respond_error(r, &err);
        return;
    }
    if (!has_scope(c->vs.scopes, ADMIN_SCOPE) && !has_scope(c->vs.scopes, SELF_SCOPE) &&
        !own_delete) {
        struct actor a;
        struct reqsign_error gerr;
        reqsign_error_clear(&gerr);
        memset(&a, 0, sizeof(a));
        if (reqsign_keystore_get(s->store, c->vs.keyid, strlen(c->vs.keyid), &a.rec, &gerr) !=
            REQSIGN_OK)
            snprintf(a.rec.keyid, sizeof(a.rec.keyid), "%s", c->vs.keyid);
        refuse(s, r, c, &a, audit_action(r, rt), key_from_path(r, kid) == 0 ? kid : "", NULL,
               REQSIGN_E_SCOPE, "key lacks the scope " ADMIN_SCOPE " or " SELF_SCOPE);
        return;
    }
    if (strcmp(r->method, "POST") == 0 && !content_type_ok(r)) {
        reqsign_httpd_fail(r, REQSIGN_E_UNSUPPORTED_MEDIA_TYPE,
                           "the body must be application/json");
        return;
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
    if (c->route != R_ENROLL && reqsign_verification_body(&c->vs, data, len, &err) != REQSIGN_OK) {
        reqsign_httpd_respond_error(r, &err);
        return;
    }
    if (strcmp(r->method, "GET") == 0)
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
    if (c->route == R_ENROLL) {
        do_enroll(s, r, c);
        return;
    }
    /* nothing is acted on before the content digest matched */
    if (reqsign_verification_finish(&c->vs, &err) != REQSIGN_OK) {
        reqsign_httpd_respond_error(r, &err);
        return;
    }
    struct actor a;
    if (load_actor(s, r, c, &a) != 0)
        return;
    reqsign_keycache_record_use(s->cache, a.rec.keyid, strlen(a.rec.keyid));
    int post = strcmp(r->method, "POST") == 0;
    switch (c->route) {
    case R_KEYS:
        if (post)
            do_key_create(s, r, c, &a);
        else
            do_key_list(s, r, &a);
        break;
    case R_KEY:
    case R_KEY_ACTION:
        do_key(s, r, c, &a);
        break;
    case R_ACCOUNTS:
        if (post)
            do_account_create(s, r, c, &a);
        else
            do_account_list(s, r, &a);
        break;
    case R_ACCOUNT:
    case R_ACCOUNT_ACTION:
        do_account(s, r, c, &a);
        break;
    case R_AUDIT:
        do_audit(s, r, &a);
        break;
    default:
        reqsign_httpd_fail(r, REQSIGN_E_NOT_FOUND, "no such resource");
    }
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

/* The key cache's lookup, with a disabled key (or a key of a disabled
 * account) answered as active: the lookup of s->self_revoke only. A revoked or
 * expired key keeps its state (the cache reports those first). Thread-safe. */
static enum reqsign_status lookup_revocable(void *ctx, const char *keyid, size_t keyid_len,
                                            struct reqsign_key_info *out, struct reqsign_error *err)
{
    enum reqsign_status st = reqsign_keycache_lookup(ctx, keyid, keyid_len, out, err);
    if (st == REQSIGN_OK &&
        (out->state == REQSIGN_KEY_DISABLED || out->state == REQSIGN_KEY_ACCOUNT_DISABLED))
        out->state = REQSIGN_KEY_ACTIVE;
    return st;
}

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
        snprintf(s->service_url, sizeof(s->service_url), "%s://%s",
                 o->public_scheme != NULL ? o->public_scheme : "http", o->authorities[0]);
    if (o->api_url != NULL)
        snprintf(s->api_url, sizeof(s->api_url), "%s", o->api_url);
    struct reqsign_keycache_opts co;
    memset(&co, 0, sizeof(co));
    co.store = store;
    co.positive_ttl = o->cache_ttl;
    co.negative_ttl = o->cache_ttl;
    s->cache = reqsign_keycache_new(&co, err);
    s->own_nonces = o->nonces == NULL;
    s->nonces = o->nonces != NULL ? o->nonces : reqsign_nonce_store_memory_new(NULL, NULL);
    struct reqsign_verifier_opts vo;
    memset(&vo, 0, sizeof(vo));
    vo.profile = REQSIGN_PROFILE_REQSIGN;
    vo.max_age = o->max_age;
    vo.skew = o->skew == 0 ? -1 : o->skew; /* the verifier reads 0 as "default", < 0 as none */
    vo.authorities = o->authorities;
    vo.n_authorities = o->n_authorities;
    vo.any_authority = o->any_authority;
    vo.public_scheme = o->verify_scheme;
    vo.lookup = reqsign_keycache_lookup;
    vo.lookup_ctx = s->cache;
    vo.nonces = s->nonces;
    s->vo = vo;
    {
        struct reqsign_account op;
        struct reqsign_error perr;
        reqsign_error_clear(&perr);
        s->accounts = reqsign_keystore_account_get(store, REQSIGN_ACCOUNT_OPERATOR, &op, &perr) ==
                          REQSIGN_OK ||
                      perr.code != REQSIGN_E_STORE;
    }
    if (s->cache != NULL && o->last_used_interval > 0 &&
        reqsign_keycache_start_flusher(s->cache, store,
                                       o->verifier_name != NULL ? o->verifier_name : "reqsignd",
                                       o->last_used_interval, err) != REQSIGN_OK) {
        reqsignd_service_free(s);
        return NULL;
    }
    s->enrollment_ttl = o->enrollment_ttl > 0 ? o->enrollment_ttl : REQSIGND_ENROLLMENT_TTL;
    /* a consumer caching the directory longer than the key cache would keep
     * a revoked key past the bound every verifier here holds to */
    s->dir_max_age = o->cache_ttl > 0 ? o->cache_ttl : REQSIGN_KEYCACHE_DEFAULT_TTL;
    if (s->dir_max_age > DIRECTORY_MAX_AGE)
        s->dir_max_age = DIRECTORY_MAX_AGE;
    pthread_mutex_init(&s->rl_mu, NULL);
    pthread_mutex_init(&s->admin_mu, NULL);
    if (s->cache != NULL && s->nonces != NULL)
        s->verifier = reqsign_verifier_new(&vo, err);
    if (s->verifier != NULL) {
        struct reqsign_verifier_opts ro = vo;
        ro.lookup = lookup_revocable;
        s->self_revoke = reqsign_verifier_new(&ro, err);
    }
    if (s->verifier == NULL || s->self_revoke == NULL) {
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
    reqsign_verifier_free(s->self_revoke);
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
                        size_t *cred_len, char keyid[REQSIGN_KEYID_IN_MAX + 1],
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
    if ((key = reqsign_key_generate(err)) == NULL ||
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
    *cred = secret_credential(key, &rec, service, NULL, cred_len);
    if (*cred == NULL) {
        rc = 3;
        goto done;
    }
    snprintf(keyid, REQSIGN_KEYID_IN_MAX + 1, "%s", rec.keyid);
    if (key_out != NULL) {
        *key_out = key;
        key = NULL;
    }
done:
    reqsign_key_free(key);
    return rc;
}
