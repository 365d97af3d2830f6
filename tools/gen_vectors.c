/* gen-vectors: write spec/vectors/positive.json and negative.json from
 * spec/vectors/src/cases.json.
 *
 *   ./build/tools/gen-vectors spec/vectors
 *
 * Every positive vector is signed by the library's signer (reqsign_signer_sign)
 * with the RFC 9421 B.1.4 key test-key-ed25519; the request "received" by the
 * server is what libcurl would send for that URL plus the three signature
 * fields. Every negative vector starts from such a signed request and applies
 * the case's mutations ("mutate" ops, in order). Ops that need a different
 * covered set or different parameters re-sign by hand: the Signature-Input
 * given in the case is parsed, its signature base built with
 * reqsign_base_build() and signed with reqsign_key_sign(), so the signature
 * is otherwise valid.
 *
 * Nothing depends on the clock or on randomness: created and nonce are fixed
 * (the nonce defaults to "nonce-<case name>"), and Ed25519 is deterministic.
 *
 * The generator also runs the verifier over each vector and reports any
 * vector whose outcome differs from what it records (exit status 1; the
 * files are written anyway so the difference can be inspected).
 */
#include <reqsign/base.h>
#include <reqsign/base64.h>
#include <reqsign/digest.h>
#include <reqsign/error.h>
#include <reqsign/key.h>
#include <reqsign/nonce.h>
#include <reqsign/request.h>
#include <reqsign/sf.h>
#include <reqsign/signer.h>
#include <reqsign/verifier.h>

#include <curl/curl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_HEADERS 64

struct hdr {
    char *name, *value;
};

/* A request as the server receives it. */
struct rq {
    char *method, *scheme, *authority, *target;
    struct hdr h[MAX_HEADERS];
    size_t nh;
    uint8_t *body;
    size_t body_len;
    int rep_valid; /* body is still body_repeat {rep_byte x rep_count} */
    char rep_byte;
    size_t rep_count;
};

static const char *g_dir;
static struct reqsign_key *g_test_key, *g_other_key;
static int g_mismatches;

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "gen-vectors: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

static char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d == NULL)
        die("out of memory");
    memcpy(d, s, n);
    return d;
}

static char *xasprintf(const char *fmt, ...)
{
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        die("format error");
    char *s = malloc((size_t)n + 1);
    if (s == NULL)
        die("out of memory");
    vsnprintf(s, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    return s;
}

static char *dir_path(const char *rel)
{
    return xasprintf("%s/%s", g_dir, rel);
}

static struct reqsign_key *load_key(const char *rel)
{
    struct reqsign_key *k = NULL;
    struct reqsign_error err;
    char *p = dir_path(rel);
    reqsign_error_clear(&err);
    if ((k = reqsign_key_load_file(p, REQSIGN_KEY_ALLOW_PERMISSIVE, &err)) == NULL)
        die("%s: %s", p, err.message);
    free(p);
    return k;
}

/* ---- JSON helpers ---- */

static const char *jstr(const json_t *o, const char *key, const char *dflt)
{
    const json_t *v = json_object_get(o, key);
    if (v == NULL || json_is_null(v))
        return dflt;
    if (!json_is_string(v))
        die("'%s' must be a string", key);
    return json_string_value(v);
}

static long long jint(const json_t *o, const char *key, long long dflt)
{
    const json_t *v = json_object_get(o, key);
    if (v == NULL)
        return dflt;
    if (!json_is_integer(v))
        die("'%s' must be an integer", key);
    return json_integer_value(v);
}

/* @over's keys replace @base's (shallow); body keys replace each other. */
static json_t *merge(const json_t *base, const json_t *over)
{
    json_t *m = base != NULL ? json_deep_copy(base) : json_object();
    if (over == NULL)
        return m;
    if (json_object_get(over, "body") || json_object_get(over, "body_base64") ||
        json_object_get(over, "body_repeat")) {
        json_object_del(m, "body");
        json_object_del(m, "body_base64");
        json_object_del(m, "body_repeat");
    }
    json_object_update(m, (json_t *)over);
    return m;
}

/* ---- request editing ---- */

static long hdr_find(const struct rq *r, const char *name)
{
    for (size_t i = 0; i < r->nh; i++)
        if (strcasecmp(r->h[i].name, name) == 0)
            return (long)i;
    return -1;
}

static void hdr_add(struct rq *r, const char *name, const char *value)
{
    if (r->nh == MAX_HEADERS)
        die("too many header lines");
    r->h[r->nh].name = xstrdup(name);
    r->h[r->nh].value = xstrdup(value);
    r->nh++;
}

static void hdr_remove(struct rq *r, const char *name)
{
    size_t j = 0;
    for (size_t i = 0; i < r->nh; i++) {
        if (strcasecmp(r->h[i].name, name) == 0) {
            free(r->h[i].name);
            free(r->h[i].value);
            continue;
        }
        r->h[j++] = r->h[i];
    }
    r->nh = j;
}

/* Replace the value of the first line named @name (keeping its spelling and
 * position) and drop the other lines of that name; append if absent. */
static void hdr_set(struct rq *r, const char *name, const char *value)
{
    long i = hdr_find(r, name);
    if (i < 0) {
        hdr_add(r, name, value);
        return;
    }
    free(r->h[i].value);
    r->h[i].value = xstrdup(value);
    for (size_t k = (size_t)i + 1; k < r->nh;) {
        if (strcasecmp(r->h[k].name, name) == 0) {
            free(r->h[k].name);
            free(r->h[k].value);
            memmove(&r->h[k], &r->h[k + 1], (r->nh - k - 1) * sizeof(r->h[0]));
            r->nh--;
        } else {
            k++;
        }
    }
}

static void set_body(struct rq *r, const uint8_t *b, size_t n)
{
    free(r->body);
    r->body = malloc(n + 1);
    if (r->body == NULL)
        die("out of memory");
    if (n > 0)
        memcpy(r->body, b, n);
    r->body_len = n;
    r->rep_valid = 0;
    char cl[32];
    snprintf(cl, sizeof(cl), "%zu", n);
    if (n == 0)
        hdr_remove(r, "Content-Length");
    else if (hdr_find(r, "Content-Length") >= 0)
        hdr_set(r, "Content-Length", cl);
}

static void rq_free(struct rq *r)
{
    free(r->method);
    free(r->scheme);
    free(r->authority);
    free(r->target);
    for (size_t i = 0; i < r->nh; i++) {
        free(r->h[i].name);
        free(r->h[i].value);
    }
    free(r->body);
    memset(r, 0, sizeof(*r));
}

static struct reqsign_span span(const char *s)
{
    struct reqsign_span sp = {s, strlen(s)};
    return sp;
}

static void rq_view(const struct rq *r, struct reqsign_request *req, struct reqsign_header *hv)
{
    for (size_t i = 0; i < r->nh; i++) {
        hv[i].name = span(r->h[i].name);
        hv[i].value = span(r->h[i].value);
    }
    req->method = span(r->method);
    req->scheme = span(r->scheme);
    req->authority = span(r->authority);
    req->target = span(r->target);
    req->headers = hv;
    req->n_headers = r->nh;
}

/* ---- body ---- */

static void body_from_json(const json_t *o, uint8_t **out, size_t *len, struct rq *r)
{
    const json_t *v;
    if ((v = json_object_get(o, "body_repeat")) != NULL) {
        const char *byte = jstr(v, "byte", NULL);
        long long count = jint(v, "count", -1);
        if (byte == NULL || strlen(byte) != 1 || count < 0)
            die("body_repeat needs a one-character byte and a count");
        *out = malloc((size_t)count + 1);
        if (*out == NULL)
            die("out of memory");
        memset(*out, byte[0], (size_t)count);
        *len = (size_t)count;
        if (r != NULL) {
            r->rep_valid = 1;
            r->rep_byte = byte[0];
            r->rep_count = (size_t)count;
        }
    } else if ((v = json_object_get(o, "body_base64")) != NULL) {
        const char *b = json_string_value(v);
        size_t n = strlen(b);
        *out = malloc(n + 1);
        if (*out == NULL)
            die("out of memory");
        if (reqsign_base64_decode(b, n, *out, n + 1, len, NULL) != REQSIGN_OK)
            die("bad body_base64");
    } else {
        const char *b = jstr(o, "body", "");
        size_t n = strlen(b);
        *out = malloc(n + 1);
        if (*out == NULL)
            die("out of memory");
        memcpy(*out, b, n);
        *len = n;
    }
}

static int printable_body(const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((b[i] < 0x20 && b[i] != '\n' && b[i] != '\t') || b[i] >= 0x7f)
            return 0;
    return 1;
}

static void body_to_json(json_t *o, const struct rq *r)
{
    if (r->rep_valid) {
        json_t *rep = json_object();
        char byte[2] = {r->rep_byte, 0};
        json_object_set_new(rep, "byte", json_string(byte));
        json_object_set_new(rep, "count", json_integer((json_int_t)r->rep_count));
        json_object_set_new(o, "body_repeat", rep);
    } else if (printable_body(r->body, r->body_len)) {
        json_object_set_new(o, "body", json_stringn((const char *)r->body, r->body_len));
    } else {
        size_t cap = r->body_len * 4 / 3 + 8, n = 0;
        char *b = malloc(cap);
        if (b == NULL || reqsign_base64_encode(r->body, r->body_len, b, cap, &n) != REQSIGN_OK)
            die("base64");
        json_object_set_new(o, "body_base64", json_stringn(b, n));
        free(b);
    }
}

/* ---- URL -> the request libcurl sends ---- */

static void url_to_rq(const char *url, struct rq *r)
{
    CURLU *h = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL, *query = NULL;
    if (h == NULL || curl_url_set(h, CURLUPART_URL, url, 0) != CURLUE_OK)
        die("bad URL %s", url);
    if (curl_url_get(h, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(h, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        curl_url_get(h, CURLUPART_PATH, &path, 0) != CURLUE_OK)
        die("bad URL %s", url);
    if (curl_url_get(h, CURLUPART_PORT, &port, 0) != CURLUE_OK)
        port = NULL;
    if (curl_url_get(h, CURLUPART_QUERY, &query, 0) != CURLUE_OK)
        query = NULL;
    r->scheme = xstrdup(scheme);
    /* libcurl's Host header: the port only when it is not the scheme's default */
    int dflt = port != NULL && ((strcmp(scheme, "https") == 0 && strcmp(port, "443") == 0) ||
                                (strcmp(scheme, "http") == 0 && strcmp(port, "80") == 0));
    if (port != NULL && !dflt)
        r->authority = xasprintf("%s:%s", host, port);
    else
        r->authority = xstrdup(host);
    r->target = xasprintf("%s%s%s%s", path[0] == '/' ? "" : "/", path, query ? "?" : "",
                          query ? query : "");
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(path);
    curl_free(query);
    curl_url_cleanup(h);
}

/* ---- signing ---- */

static unsigned digest_algs(const char *d)
{
    if (strcmp(d, "sha-256") == 0)
        return REQSIGN_DIGEST_SHA256;
    if (strcmp(d, "sha-512") == 0)
        return REQSIGN_DIGEST_SHA512;
    if (strcmp(d, "sha-256+sha-512") == 0)
        return REQSIGN_DIGEST_SHA256 | REQSIGN_DIGEST_SHA512;
    die("unknown digest '%s'", d);
    return 0;
}

struct signed_req {
    struct reqsign_signed out;
    char *base;
    char keyid[REQSIGN_KEYID_IN_MAX + 1];
};

/* Sign @sign (merged) with the library signer; fill @r with the received request. */
static void sign_case(const char *name, const json_t *sign, const char *keyid,
                      struct signed_req *sr, struct rq *r)
{
    struct reqsign_signer_opts so;
    struct reqsign_error err;
    char *keyfile = dir_path("keys/test-key-ed25519.pem");
    memset(&so, 0, sizeof(so));
    so.key_file = keyfile;
    so.key_flags = REQSIGN_KEY_ALLOW_PERMISSIVE;
    so.keyid = keyid;
    so.label = jstr(sign, "label", NULL);
    so.tag = jstr(sign, "tag", NULL);
    so.expires_in = jint(sign, "expires_in", 0);
    so.digest_algs = digest_algs(jstr(sign, "digest", "sha-256"));
    reqsign_error_clear(&err);
    struct reqsign_signer *s = reqsign_signer_new(&so, &err);
    if (s == NULL)
        die("%s: signer: %s", name, err.message);
    snprintf(sr->keyid, sizeof(sr->keyid), "%s", reqsign_signer_keyid(s));

    uint8_t *body;
    size_t body_len;
    memset(r, 0, sizeof(*r));
    body_from_json(sign, &body, &body_len, r);
    struct reqsign_sign_input in;
    memset(&in, 0, sizeof(in));
    in.method = jstr(sign, "method", NULL);
    in.url = jstr(sign, "url", NULL);
    in.body = body;
    in.body_len = body_len;
    in.created = jint(sign, "created", 0);
    in.nonce = jstr(sign, "nonce", NULL);
    if (in.method == NULL || in.url == NULL || in.created <= 0 || in.nonce == NULL)
        die("%s: sign needs method, url, created and nonce", name);
    memset(&sr->out, 0, sizeof(sr->out));
    sr->base = malloc(REQSIGN_BASE_BUF);
    sr->out.base_buf = sr->base;
    sr->out.base_cap = REQSIGN_BASE_BUF;
    reqsign_error_clear(&err);
    if (reqsign_signer_sign(s, &in, &sr->out, &err) != REQSIGN_OK)
        die("%s: sign: %s", name, err.message);
    reqsign_signer_free(s);
    free(keyfile);

    r->method = xstrdup(in.method);
    url_to_rq(in.url, r);
    r->body = body;
    r->body_len = body_len;
    hdr_add(r, "Host", r->authority);
    if (body_len > 0) {
        char cl[32];
        snprintf(cl, sizeof(cl), "%zu", body_len);
        hdr_add(r, "Content-Length", cl);
    }
    hdr_add(r, "Content-Digest", sr->out.content_digest);
    hdr_add(r, "Signature-Input", sr->out.signature_input);
    hdr_add(r, "Signature", sr->out.signature);
}

/* Sign every member of @si over @r with @key; return the Signature value. */
static char *hand_sign(const char *name, const struct rq *r, const char *si,
                       const struct reqsign_key *key)
{
    struct reqsign_sf_member mem[REQSIGN_SIGNATURES_IN_MAX];
    struct reqsign_sf_item items[256];
    struct reqsign_sf_param params[256];
    struct reqsign_sf_parsed p = {mem, REQSIGN_SIGNATURES_IN_MAX, 0, items, 256, 0, params, 256, 0};
    struct reqsign_error err;
    struct reqsign_header hv[MAX_HEADERS];
    struct reqsign_request req;
    char *base = malloc(REQSIGN_BASE_BUF);
    char *out = malloc(4096);
    size_t pos = 0;

    if (base == NULL || out == NULL)
        die("out of memory");
    reqsign_error_clear(&err);
    if (reqsign_sf_parse_dict(si, strlen(si), &p, &err) != REQSIGN_OK)
        die("%s: resign: Signature-Input does not parse: %s", name, err.message);
    rq_view(r, &req, hv);
    for (size_t i = 0; i < p.n_members; i++) {
        size_t blen = 0, n = 0;
        uint8_t sig[REQSIGN_ED25519_SIG_LEN];
        char b64[128];
        reqsign_error_clear(&err);
        if (reqsign_base_build(&req, &p, &mem[i], base, REQSIGN_BASE_BUF, &blen, &err) !=
            REQSIGN_OK)
            die("%s: resign: no signature base: %s", name, err.message);
        if (reqsign_key_sign(key, (const uint8_t *)base, blen, sig, NULL) != REQSIGN_OK ||
            reqsign_base64_encode(sig, sizeof(sig), b64, sizeof(b64), &n) != REQSIGN_OK)
            die("%s: resign: signing failed", name);
        pos += (size_t)snprintf(out + pos, 4096 - pos, "%s%.*s=:%.*s:", i ? ", " : "",
                                (int)mem[i].key.len, mem[i].key.ptr, (int)n, b64);
    }
    free(base);
    return out;
}

/* The Signature line's first member: label, and base64 text span. */
static void sig_parts(const struct rq *r, const char *name, size_t *lab_len, size_t *b64_off,
                      size_t *b64_len)
{
    long i = hdr_find(r, "Signature");
    if (i < 0)
        die("%s: no Signature field", name);
    const char *v = r->h[i].value;
    const char *eq = strchr(v, '=');
    if (eq == NULL || eq[1] != ':')
        die("%s: Signature is not label=:b64:", name);
    const char *end = strchr(eq + 2, ':');
    if (end == NULL)
        die("%s: Signature is not label=:b64:", name);
    *lab_len = (size_t)(eq - v);
    *b64_off = (size_t)(eq + 2 - v);
    *b64_len = (size_t)(end - (eq + 2));
}

static char *value_of(const json_t *op, const char *name)
{
    const json_t *pad = json_object_get(op, "value_pad");
    if (pad != NULL) {
        const char *pre = jstr(pad, "prefix", ""), *suf = jstr(pad, "suffix", "");
        const char *byte = jstr(pad, "byte", "a");
        long long count = jint(pad, "count", 0);
        size_t n = strlen(pre) + (size_t)count + strlen(suf);
        char *s = malloc(n + 1);
        if (s == NULL)
            die("out of memory");
        memcpy(s, pre, strlen(pre));
        memset(s + strlen(pre), byte[0], (size_t)count);
        memcpy(s + strlen(pre) + (size_t)count, suf, strlen(suf) + 1);
        return s;
    }
    const char *v = jstr(op, "value", NULL);
    if (v == NULL)
        die("%s: op needs a value", name);
    return xstrdup(v);
}

static const struct reqsign_key *key_named(const char *k)
{
    if (k == NULL || strcmp(k, "test") == 0)
        return g_test_key;
    if (strcmp(k, "other") == 0)
        return g_other_key;
    die("unknown key '%s' (test or other)", k);
    return NULL;
}

static void apply_op(const char *name, const json_t *op, struct rq *r)
{
    const char *o = jstr(op, "op", NULL);
    if (o == NULL)
        die("%s: op without a name", name);
    if (strcmp(o, "set_method") == 0) {
        free(r->method);
        r->method = value_of(op, name);
    } else if (strcmp(o, "set_target") == 0) {
        free(r->target);
        r->target = value_of(op, name);
    } else if (strcmp(o, "set_scheme") == 0) {
        free(r->scheme);
        r->scheme = value_of(op, name);
    } else if (strcmp(o, "set_authority") == 0) {
        free(r->authority);
        r->authority = value_of(op, name);
        hdr_set(r, "Host", r->authority);
    } else if (strcmp(o, "set_body") == 0) {
        uint8_t *b;
        size_t n;
        body_from_json(op, &b, &n, NULL);
        set_body(r, b, n);
        free(b);
    } else if (strcmp(o, "set_header") == 0 || strcmp(o, "add_header") == 0) {
        char *v = value_of(op, name);
        const char *hn = jstr(op, "name", NULL);
        if (hn == NULL)
            die("%s: %s needs a name", name, o);
        if (o[0] == 's')
            hdr_set(r, hn, v);
        else
            hdr_add(r, hn, v);
        free(v);
    } else if (strcmp(o, "replace_in_header") == 0) {
        /* first occurrence of "from" in the first line named "name" -> "to" */
        const char *hn = jstr(op, "name", ""), *from = jstr(op, "from", ""),
                   *to = jstr(op, "to", "");
        long i = hdr_find(r, hn);
        char *at = i < 0 || from[0] == 0 ? NULL : strstr(r->h[i].value, from);
        if (at == NULL)
            die("%s: replace_in_header: '%s' not in %s", name, from, hn);
        char *v =
            xasprintf("%.*s%s%s", (int)(at - r->h[i].value), r->h[i].value, to, at + strlen(from));
        free(r->h[i].value);
        r->h[i].value = v;
    } else if (strcmp(o, "remove_header") == 0) {
        hdr_remove(r, jstr(op, "name", ""));
    } else if (strcmp(o, "split_header") == 0) {
        /* one line "a, b" -> two lines "a" and "b" at the end */
        const char *hn = jstr(op, "name", "");
        long i = hdr_find(r, hn);
        if (i < 0)
            die("%s: split_header: no %s", name, hn);
        char *v = xstrdup(r->h[i].value), *nm = xstrdup(r->h[i].name);
        hdr_remove(r, hn);
        for (char *save = NULL, *t = strtok_r(v, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            while (*t == ' ')
                t++;
            hdr_add(r, nm, t);
        }
        free(v);
        free(nm);
    } else if (strcmp(o, "duplicate_header") == 0) {
        const char *hn = jstr(op, "name", "");
        long i = hdr_find(r, hn);
        if (i < 0)
            die("%s: duplicate_header: no %s", name, hn);
        char *v = xstrdup(r->h[i].value), *nm = xstrdup(r->h[i].name);
        hdr_add(r, nm, v);
        free(v);
        free(nm);
    } else if (strcmp(o, "header_names") == 0) {
        const char *c = jstr(op, "value", "upper");
        for (size_t i = 0; i < r->nh; i++)
            for (char *p = r->h[i].name; *p; p++)
                *p = c[0] == 'u' ? (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p)
                                 : (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
    } else if (strcmp(o, "resign") == 0 || strcmp(o, "add_signature") == 0) {
        const char *si = jstr(op, "signature_input", NULL);
        if (si == NULL)
            die("%s: %s needs signature_input", name, o);
        char *sig = hand_sign(name, r, si, key_named(jstr(op, "key", NULL)));
        if (o[0] == 'r') {
            hdr_set(r, "Signature-Input", si);
            hdr_set(r, "Signature", sig);
        } else {
            hdr_add(r, "Signature-Input", si);
            hdr_add(r, "Signature", sig);
        }
        free(sig);
    } else if (strcmp(o, "flip_sig_bit") == 0 || strcmp(o, "truncate_sig") == 0) {
        size_t ll, off, bl, n = 0;
        sig_parts(r, name, &ll, &off, &bl);
        long i = hdr_find(r, "Signature");
        uint8_t raw[128];
        char b64[200];
        if (reqsign_base64_decode(r->h[i].value + off, bl, raw, sizeof(raw), &n, NULL) !=
            REQSIGN_OK)
            die("%s: Signature base64", name);
        if (o[0] == 'f') {
            long long bit = jint(op, "bit", 0);
            raw[bit / 8] ^= (uint8_t)(0x80u >> (bit % 8));
        } else {
            n = (size_t)jint(op, "length", 63);
        }
        size_t m = 0;
        if (reqsign_base64_encode(raw, n, b64, sizeof(b64), &m) != REQSIGN_OK)
            die("base64");
        char *v = xasprintf("%.*s=:%.*s:%s", (int)ll, r->h[i].value, (int)m, b64,
                            r->h[i].value + off + bl + 1);
        free(r->h[i].value);
        r->h[i].value = v;
    } else if (strcmp(o, "corrupt_sig_b64") == 0) {
        size_t ll, off, bl;
        sig_parts(r, name, &ll, &off, &bl);
        long i = hdr_find(r, "Signature");
        long long at = jint(op, "pos", 0);
        const char *c = jstr(op, "char", "*");
        if (at < 0 || (size_t)at >= bl)
            die("%s: corrupt_sig_b64 pos", name);
        r->h[i].value[off + (size_t)at] = c[0];
    } else if (strcmp(o, "relabel_sig") == 0) {
        size_t ll, off, bl;
        sig_parts(r, name, &ll, &off, &bl);
        long i = hdr_find(r, "Signature");
        char *v = xasprintf("%s%s", jstr(op, "label", "sig2"), r->h[i].value + ll);
        free(r->h[i].value);
        r->h[i].value = v;
    } else {
        die("%s: unknown op '%s'", name, o);
    }
}

static void apply_ops(const char *name, const json_t *ops, struct rq *r)
{
    size_t i;
    const json_t *op;
    if (ops == NULL)
        return;
    json_array_foreach(ops, i, op) apply_op(name, op, r);
}

/* ---- verification (self-check) ---- */

static int64_t fixed_clock(void *ctx)
{
    return *(const int64_t *)ctx;
}

/* Run the verifier as the vector says; return the last status; base into @base. */
static enum reqsign_status run_verifier(const struct rq *r, const json_t *verify,
                                        const uint8_t pk[32], const char *keyid, char *base,
                                        size_t *base_len, char *msg, size_t msg_cap)
{
    struct reqsign_static_key sk;
    struct reqsign_verifier_opts vo;
    struct reqsign_error err;
    struct reqsign_header hv[MAX_HEADERS];
    struct reqsign_request req;
    int64_t now = jint(verify, "now", 0);
    const char *profile = jstr(verify, "profile", "reqsign");
    enum reqsign_status st = REQSIGN_E_INTERNAL;

    memset(&sk, 0, sizeof(sk));
    sk.keyid = keyid;
    memcpy(sk.public_key, pk, 32);
    memset(&vo, 0, sizeof(vo));
    vo.profile =
        strcmp(profile, "rfc9421") == 0 ? REQSIGN_PROFILE_RFC9421 : REQSIGN_PROFILE_REQSIGN;
    vo.max_age = jint(verify, "max_age", 0);
    vo.skew = jint(verify, "skew", 0);
    vo.label = jstr(verify, "label", NULL);
    vo.required_tag = jstr(verify, "required_tag", NULL);
    vo.public_authority = jstr(verify, "public_authority", NULL);
    vo.any_authority = vo.public_authority == NULL; /* else the vector's Host */
    vo.clock = fixed_clock;
    vo.clock_ctx = &now;
    vo.lookup = reqsign_static_key_lookup;
    vo.lookup_ctx = &sk;
    vo.nonces = reqsign_nonce_store_memory_new(NULL, NULL);
    reqsign_error_clear(&err);
    struct reqsign_verifier *v = reqsign_verifier_new(&vo, &err);
    if (v == NULL)
        die("verifier: %s", err.message);
    rq_view(r, &req, hv);
    long long repeat = jint(verify, "repeat", 1);
    for (long long k = 0; k < repeat; k++) {
        struct reqsign_verification vs;
        reqsign_verification_init(&vs);
        vs.base_buf = base;
        vs.base_cap = REQSIGN_BASE_BUF;
        reqsign_error_clear(&err);
        st = reqsign_verifier_verify(v, &req, r->body, r->body_len, &vs, &err);
        *base_len = vs.base_len;
        reqsign_verification_cleanup(&vs);
    }
    snprintf(msg, msg_cap, "%s", err.message);
    reqsign_verifier_free(v);
    reqsign_nonce_store_free(vo.nonces);
    return st;
}

/* ---- output ---- */

static json_t *received_json(const struct rq *r)
{
    json_t *o = json_object(), *hs = json_array();
    json_object_set_new(o, "method", json_string(r->method));
    json_object_set_new(o, "scheme", json_string(r->scheme));
    json_object_set_new(o, "authority", json_string(r->authority));
    json_object_set_new(o, "target", json_string(r->target));
    for (size_t i = 0; i < r->nh; i++)
        json_array_append_new(hs, json_pack("[ss]", r->h[i].name, r->h[i].value));
    json_object_set_new(o, "headers", hs);
    body_to_json(o, r);
    return o;
}

/* The "sign" object, keys in a fixed order. */
static json_t *sign_json(const json_t *s)
{
    static const char *const keys[] = {"method",      "url",        "body",  "body_base64",
                                       "body_repeat", "created",    "nonce", "digest",
                                       "tag",         "expires_in", "label"};
    json_t *o = json_object();
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        json_t *v = json_object_get(s, keys[i]);
        if (v != NULL)
            json_object_set_new(o, keys[i], json_deep_copy(v));
    }
    if (json_object_get(o, "digest") == NULL)
        json_object_set_new(o, "digest", json_string("sha-256"));
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)s, k, v)
    {
        if (json_object_get(o, k) == NULL)
            die("sign: unknown key '%s'", k);
    }
    return o;
}

static json_t *verify_json(const json_t *s)
{
    static const char *const keys[] = {"now",   "profile",      "max_age",          "skew",
                                       "label", "required_tag", "public_authority", "repeat"};
    json_t *o = json_object();
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        json_t *v = json_object_get(s, keys[i]);
        if (v != NULL)
            json_object_set_new(o, keys[i], json_deep_copy(v));
    }
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)s, k, v)
    {
        if (json_object_get(o, k) == NULL)
            die("verify: unknown key '%s'", k);
    }
    return o;
}

static void write_json(const char *rel, json_t *root)
{
    char *path = dir_path(rel);
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
    FILE *f = fopen(path, "wb");
    if (text == NULL || f == NULL)
        die("cannot write %s", path);
    fputs(text, f);
    fputc('\n', f);
    if (fclose(f) != 0)
        die("cannot write %s", path);
    free(text);
    free(path);
}

/* keyid for a case: absent -> default; null -> the key's thumbprint (NULL). */
static const char *case_keyid(const json_t *c, const json_t *defaults)
{
    const json_t *k = json_object_get(c, "keyid");
    if (k == NULL)
        k = json_object_get(defaults, "keyid");
    if (k == NULL || json_is_null(k))
        return NULL;
    return json_string_value(k);
}

static json_t *case_sign(const json_t *c, const json_t *defaults, const char *name)
{
    json_t *s = merge(json_object_get(defaults, "sign"), json_object_get(c, "sign"));
    if (json_object_get(s, "nonce") == NULL) {
        char *n = xasprintf("nonce-%s", name);
        json_object_set_new(s, "nonce", json_string(n));
        free(n);
    }
    return s;
}

static json_t *gen_positive(const json_t *c, const json_t *defaults)
{
    const char *name = jstr(c, "name", NULL);
    if (name == NULL)
        die("case without a name");
    json_t *sign = case_sign(c, defaults, name);
    json_t *verify = merge(json_object_get(defaults, "verify"), json_object_get(c, "verify"));
    struct signed_req sr;
    struct rq r;
    sign_case(name, sign, case_keyid(c, defaults), &sr, &r);
    apply_ops(name, json_object_get(c, "mutate"), &r);

    uint8_t pk[32];
    char msg[256];
    char *vbase = malloc(REQSIGN_BASE_BUF);
    size_t vlen = 0;
    reqsign_key_public_raw(g_test_key, pk);
    enum reqsign_status st = run_verifier(&r, verify, pk, sr.keyid, vbase, &vlen, msg, sizeof(msg));
    if (st != REQSIGN_OK) {
        fprintf(stderr, "MISMATCH positive %s: verifier says %s (%s)\n", name, reqsign_errname(st),
                msg);
        g_mismatches++;
    } else if (vlen != sr.out.base_len || memcmp(vbase, sr.base, vlen) != 0) {
        fprintf(stderr, "MISMATCH positive %s: verifier base differs from signer base\n", name);
        g_mismatches++;
    }

    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(name));
    json_object_set_new(o, "description", json_string(jstr(c, "description", "")));
    json_object_set_new(o, "key", json_string("keys/test-key-ed25519.pem"));
    json_object_set_new(o, "keyid", json_string(sr.keyid));
    json_object_set_new(o, "sign", sign_json(sign));
    json_t *e = json_object();
    json_object_set_new(e, "content_digest", json_string(sr.out.content_digest));
    json_object_set_new(e, "signature_input", json_string(sr.out.signature_input));
    json_object_set_new(e, "signature", json_string(sr.out.signature));
    json_object_set_new(e, "base", json_stringn(sr.base, sr.out.base_len));
    json_object_set_new(o, "expected", e);
    json_object_set_new(o, "received", received_json(&r));
    json_object_set_new(o, "verify", verify_json(verify));
    free(vbase);
    free(sr.base);
    rq_free(&r);
    json_decref(sign);
    json_decref(verify);
    return o;
}

static json_t *gen_negative(const json_t *c, const json_t *defaults)
{
    const char *name = jstr(c, "name", NULL);
    const char *expect = jstr(c, "expect_error", NULL);
    if (name == NULL || expect == NULL)
        die("negative case needs name and expect_error");
    json_t *sign = case_sign(c, defaults, name);
    json_t *verify = merge(json_object_get(defaults, "verify"), json_object_get(c, "verify"));
    json_t *key = merge(json_object_get(defaults, "trust"), json_object_get(c, "trust"));
    struct signed_req sr;
    struct rq r;
    sign_case(name, sign, case_keyid(c, defaults), &sr, &r);
    apply_ops(name, json_object_get(c, "mutate"), &r);

    const char *pub = jstr(key, "public", "keys/test-key-ed25519.pub.pem");
    struct reqsign_key *pk_key = load_key(pub);
    uint8_t pk[32];
    reqsign_key_public_raw(pk_key, pk);
    reqsign_key_free(pk_key);
    char msg[256];
    char *vbase = malloc(REQSIGN_BASE_BUF);
    size_t vlen = 0;
    enum reqsign_status st =
        run_verifier(&r, verify, pk, jstr(key, "keyid", NULL), vbase, &vlen, msg, sizeof(msg));
    if (getenv("GEN_VECTORS_VERBOSE") != NULL)
        fprintf(stderr, "%-45s %-20s %s\n", name, reqsign_errname(st), msg);
    if (strcmp(reqsign_errname(st), expect) != 0) {
        fprintf(stderr, "MISMATCH negative %s: expected %s, verifier says %s (%s)\n", name, expect,
                reqsign_errname(st), msg);
        g_mismatches++;
    }

    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(name));
    json_object_set_new(o, "description", json_string(jstr(c, "description", "")));
    json_object_set_new(o, "received", received_json(&r));
    json_object_set_new(o, "verify", verify_json(verify));
    json_t *k = json_object();
    json_object_set_new(k, "public", json_string(pub));
    json_object_set_new(
        k, "keyid", jstr(key, "keyid", NULL) ? json_string(jstr(key, "keyid", NULL)) : json_null());
    json_object_set_new(o, "key", k);
    json_object_set_new(o, "expect_error", json_string(expect));
    free(vbase);
    free(sr.base);
    rq_free(&r);
    json_decref(sign);
    json_decref(verify);
    json_decref(key);
    return o;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s SPEC_VECTORS_DIR   (e.g. %s spec/vectors)\n", argv[0], argv[0]);
        return 2;
    }
    g_dir = argv[1];
    curl_global_init(CURL_GLOBAL_DEFAULT);
    g_test_key = load_key("keys/test-key-ed25519.pem");
    g_other_key = load_key("keys/other-key-ed25519.pem");

    char *cases_path = dir_path("src/cases.json");
    json_error_t je;
    json_t *cases = json_load_file(cases_path, 0, &je);
    if (cases == NULL)
        die("%s:%d: %s", cases_path, je.line, je.text);
    free(cases_path);
    const json_t *defaults = json_object_get(cases, "defaults");

    const char *about = "Generated by tools/gen_vectors.c from spec/vectors/src/cases.json "
                        "(./build/tools/gen-vectors spec/vectors); do not edit by hand. "
                        "See spec/vectors/README.md.";
    json_t *pos = json_object(), *pv = json_array();
    json_t *neg = json_object(), *nv = json_array();
    size_t i;
    const json_t *c;
    json_array_foreach(json_object_get(cases, "positive"), i, c)
        json_array_append_new(pv, gen_positive(c, defaults));
    json_array_foreach(json_object_get(cases, "negative"), i, c)
        json_array_append_new(nv, gen_negative(c, defaults));

    json_object_set_new(pos, "about", json_string(about));
    json_object_set_new(pos, "vectors", pv);
    json_object_set_new(neg, "about", json_string(about));
    json_object_set_new(neg, "vectors", nv);
    write_json("positive.json", pos);
    write_json("negative.json", neg);
    printf("gen-vectors: %zu positive, %zu negative vectors written to %s\n", json_array_size(pv),
           json_array_size(nv), g_dir);
    json_decref(pos);
    json_decref(neg);
    json_decref(cases);
    reqsign_key_free(g_test_key);
    reqsign_key_free(g_other_key);
    curl_global_cleanup();
    if (g_mismatches > 0) {
        fprintf(stderr, "gen-vectors: %d vector(s) disagree with the library (see above)\n",
                g_mismatches);
        return 1;
    }
    return 0;
}
