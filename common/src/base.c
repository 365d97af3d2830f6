/* reqsign: the RFC 9421 signature base builder (section 2.5). */
#include <reqsign/base.h>
#include <reqsign/base64.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "sf_internal.h"
#include "util.h"
#include <reqsign/token.h>

static const char SRC[] = "Signature-Input";

/* Fields whose structured type is known, for the `sf` parameter (RFC 9421 2.1.1). */
static const struct {
    const char *name;
    enum sf_kind kind;
} known_sf[] = {
    {"accept-ch", SF_LIST},           {"accept-signature", SF_DICT}, {"cache-status", SF_LIST},
    {"cdn-cache-control", SF_DICT},   {"client-cert", SF_ITEM},      {"client-cert-chain", SF_LIST},
    {"content-digest", SF_DICT},      {"priority", SF_DICT},         {"proxy-status", SF_LIST},
    {"repr-digest", SF_DICT},         {"signature", SF_DICT},        {"signature-input", SF_DICT},
    {"want-content-digest", SF_DICT}, {"want-repr-digest", SF_DICT},
};

static enum sf_kind sf_kind_of(struct reqsign_span name)
{
    for (size_t i = 0; i < sizeof(known_sf) / sizeof(known_sf[0]); i++)
        if (reqsign__span_eq(name, known_sf[i].name))
            return known_sf[i].kind;
    return SF_NONE;
}

/* A tchar that is not an uppercase letter: what a lowercased field name is made of. */
static int is_tchar_lower(unsigned char c)
{
    return reqsign_is_tchar(c) && !(c >= 'A' && c <= 'Z');
}

/* Two component identifiers are equal if names match and parameter sets match
 * regardless of order (RFC 9421 2, 2.5 step 2.0). */
static int bare_eq(const struct reqsign_sf_bare *a, const struct reqsign_sf_bare *b)
{
    if (a->type != b->type || a->num != b->num)
        return 0;
    if (a->type == REQSIGN_SF_STRING || a->type == REQSIGN_SF_TOKEN || a->type == REQSIGN_SF_BINARY)
        return a->str.len == b->str.len &&
               (a->str.len == 0 || memcmp(a->str.ptr, b->str.ptr, a->str.len) == 0);
    return 1;
}

static int params_eq(const struct reqsign_sf_param *a, size_t na, const struct reqsign_sf_param *b,
                     size_t nb)
{
    if (na != nb)
        return 0;
    for (size_t i = 0; i < na; i++) {
        size_t j;
        for (j = 0; j < nb; j++)
            if (a[i].key.len == b[j].key.len &&
                memcmp(a[i].key.ptr, b[j].key.ptr, a[i].key.len) == 0)
                break;
        if (j == nb || !bare_eq(&a[i].value, &b[j].value))
            return 0;
    }
    return 1;
}

/* Component parameters we understand. */
struct comp_params {
    int sf, bs, req, tr;
    const struct reqsign_sf_bare *key;  /* `key` */
    const struct reqsign_sf_bare *name; /* `name` */
};

static enum reqsign_status read_params(const struct reqsign_sf_param *p, size_t n,
                                       struct comp_params *cp, struct reqsign_span comp,
                                       struct reqsign_error *err)
{
    memset(cp, 0, sizeof(*cp));
    for (size_t i = 0; i < n; i++) {
        const struct reqsign_sf_bare *v = &p[i].value;
        int *flag = NULL;
        if (reqsign__span_eq(p[i].key, "sf"))
            flag = &cp->sf;
        else if (reqsign__span_eq(p[i].key, "bs"))
            flag = &cp->bs;
        else if (reqsign__span_eq(p[i].key, "req"))
            flag = &cp->req;
        else if (reqsign__span_eq(p[i].key, "tr"))
            flag = &cp->tr;
        if (flag != NULL) {
            if (v->type != REQSIGN_SF_BOOLEAN)
                return reqsign_error_set(err, REQSIGN_E_COMPONENT_INVALID, SRC, REQSIGN_NO_OFFSET,
                                         "parameter '%.*s' of \"%.*s\" must be a Boolean",
                                         (int)p[i].key.len, p[i].key.ptr, (int)comp.len, comp.ptr);
            *flag = (int)v->num;
        } else if (reqsign__span_eq(p[i].key, "key") || reqsign__span_eq(p[i].key, "name")) {
            if (v->type != REQSIGN_SF_STRING)
                return reqsign_error_set(err, REQSIGN_E_COMPONENT_INVALID, SRC, REQSIGN_NO_OFFSET,
                                         "parameter '%.*s' of \"%.*s\" must be a String",
                                         (int)p[i].key.len, p[i].key.ptr, (int)comp.len, comp.ptr);
            if (p[i].key.ptr[0] == 'k')
                cp->key = v;
            else
                cp->name = v;
        } else {
            return reqsign_error_set(err, REQSIGN_E_COMPONENT_UNKNOWN, SRC, REQSIGN_NO_OFFSET,
                                     "unknown parameter '%.*s' on component \"%.*s\"",
                                     (int)p[i].key.len, p[i].key.ptr, (int)comp.len, comp.ptr);
        }
    }
    return REQSIGN_OK;
}

/* Derived and field values must be printable ASCII (HTAB allowed inside fields). */
static enum reqsign_status check_value(struct reqsign_span v, int allow_tab,
                                       struct reqsign_span comp, struct reqsign_error *err)
{
    for (size_t i = 0; i < v.len; i++) {
        unsigned char c = (unsigned char)v.ptr[i];
        if ((c < 0x20 && !(allow_tab && c == '\t')) || c >= 0x7f)
            return reqsign_error_set(err, REQSIGN_E_COMPONENT_INVALID, SRC, REQSIGN_NO_OFFSET,
                                     "value of \"%.*s\" has byte 0x%02x at %zu, which cannot be "
                                     "signed (non-ASCII or control)",
                                     (int)comp.len, comp.ptr, c, i);
    }
    return REQSIGN_OK;
}

/* ---- @query-param (RFC 9421 2.2.8) ---- */

/* Percent-encode one byte with the application/x-www-form-urlencoded set
 * (space as %20, RFC 9421 2.2.8). */
static void form_put_byte(struct reqsign__buf *b, unsigned char c)
{
    static const char hex[] = "0123456789ABCDEF";
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '*' ||
        c == '-' || c == '.' || c == '_') {
        reqsign__buf_putc(b, (char)c);
    } else {
        char e[3] = {'%', hex[c >> 4], hex[c & 15]};
        reqsign__buf_put(b, e, 3);
    }
}

static void form_put_replacement(struct reqsign__buf *b)
{
    form_put_byte(b, 0xEF);
    form_put_byte(b, 0xBF);
    form_put_byte(b, 0xBD);
}

/* WHATWG form-urlencoded decode of @in ('+' -> SP, %XX -> byte), then the
 * WHATWG UTF-8 decoder (invalid sequences become U+FFFD), then percent-encode
 * the UTF-8 bytes into @b. */
static void form_reencode(struct reqsign_span in, struct reqsign__buf *b)
{
    unsigned char pend[4];
    unsigned needed = 0, seen = 0, lower = 0x80, upper = 0xBF;

    for (size_t i = 0; i < in.len; i++) {
        unsigned char c = (unsigned char)in.ptr[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%' && i + 2 < in.len &&
                   reqsign__hexval((unsigned char)in.ptr[i + 1]) >= 0 &&
                   reqsign__hexval((unsigned char)in.ptr[i + 2]) >= 0) {
            c = (unsigned char)(reqsign__hexval((unsigned char)in.ptr[i + 1]) * 16 +
                                reqsign__hexval((unsigned char)in.ptr[i + 2]));
            i += 2;
        }
    again:
        if (needed == 0) {
            if (c <= 0x7F) {
                form_put_byte(b, c);
                continue;
            }
            if (c >= 0xC2 && c <= 0xDF) {
                needed = 1;
            } else if (c >= 0xE0 && c <= 0xEF) {
                if (c == 0xE0)
                    lower = 0xA0;
                if (c == 0xED)
                    upper = 0x9F;
                needed = 2;
            } else if (c >= 0xF0 && c <= 0xF4) {
                if (c == 0xF0)
                    lower = 0x90;
                if (c == 0xF4)
                    upper = 0x8F;
                needed = 3;
            } else {
                form_put_replacement(b);
                continue;
            }
            pend[0] = c;
            seen = 0;
            continue;
        }
        if (c < lower || c > upper) {
            needed = seen = 0;
            lower = 0x80;
            upper = 0xBF;
            form_put_replacement(b);
            goto again; /* the byte starts afresh */
        }
        lower = 0x80;
        upper = 0xBF;
        pend[++seen] = c;
        if (seen == needed) {
            for (unsigned k = 0; k <= needed; k++)
                form_put_byte(b, pend[k]);
            needed = seen = 0;
        }
    }
    if (needed != 0)
        form_put_replacement(b);
}

static enum reqsign_status query_param(struct reqsign_span query,
                                       const struct reqsign_sf_bare *name, struct reqsign__buf *out,
                                       struct reqsign_error *err)
{
    char nbuf[1024];
    size_t found = 0;
    /* the name parameter is already in encoded form; it has no escapes to undo
     * unless it contains '"' or '\\', which an encoded name never does */
    if (name->escaped) {
        for (size_t i = 0; i < name->str.len; i++)
            if (name->str.ptr[i] == '\\')
                return reqsign_error_set(err, REQSIGN_E_COMPONENT_ABSENT, SRC, REQSIGN_NO_OFFSET,
                                         "@query-param name is not percent-encoded");
    }
    const char *q = query.ptr + 1; /* skip '?' */
    size_t qn = query.len - 1, start = 0;
    struct reqsign_span val = {NULL, 0};
    while (start <= qn && qn > 0) {
        size_t end = start;
        while (end < qn && q[end] != '&')
            end++;
        if (end > start) {
            size_t eq = start;
            while (eq < end && q[eq] != '=')
                eq++;
            struct reqsign__buf nb = {nbuf, sizeof(nbuf), 0, 0};
            struct reqsign_span raw = {q + start, eq - start};
            form_reencode(raw, &nb);
            if (!nb.overflow && nb.len == name->str.len &&
                memcmp(nbuf, name->str.ptr, nb.len) == 0) {
                found++;
                val.ptr = q + (eq < end ? eq + 1 : end);
                val.len = eq < end ? end - eq - 1 : 0;
            }
        }
        start = end + 1;
    }
    if (found == 0)
        return reqsign_error_set(err, REQSIGN_E_COMPONENT_ABSENT, SRC, REQSIGN_NO_OFFSET,
                                 "@query-param \"%.*s\" is not in the query", (int)name->str.len,
                                 name->str.ptr);
    if (found > 1)
        return reqsign_error_set(err, REQSIGN_E_COMPONENT_INVALID, SRC, REQSIGN_NO_OFFSET,
                                 "@query-param \"%.*s\" occurs more than once (RFC 9421 2.2.8)",
                                 (int)name->str.len, name->str.ptr);
    form_reencode(val, out);
    return REQSIGN_OK;
}

/* ---- HTTP fields (RFC 9421 2.1) ---- */

/* Combine all lines of the field: each trimmed, joined with ", ". */
static enum reqsign_status field_combined(const struct reqsign_request *req,
                                          struct reqsign_span name, struct reqsign__buf *b,
                                          size_t *count)
{
    *count = 0;
    for (size_t i = 0; i < req->n_headers; i++) {
        if (!reqsign__span_eq_nocase(req->headers[i].name, name))
            continue;
        if (*count > 0)
            reqsign__buf_put(b, ", ", 2);
        struct reqsign_span v = reqsign__trim_ows(req->headers[i].value);
        reqsign__buf_put(b, v.ptr, v.len);
        (*count)++;
    }
    return b->overflow ? REQSIGN_E_LIMIT : REQSIGN_OK;
}

/* The parse tables of a structured field (`sf`, `key`): 31 KiB, too much
 * for a verify's stack bound (reqsign/verifier.h), so one block per thread,
 * made by its first use and freed when the thread exits. A base is built
 * without callbacks, so the block is never in use twice on one thread. */
struct sf_tables {
    struct reqsign_sf_member members[64];
    struct reqsign_sf_item items[256];
    struct reqsign_sf_param params[256];
};
static _Thread_local struct sf_tables *sf_tls;
static pthread_key_t sf_key;
static pthread_once_t sf_once = PTHREAD_ONCE_INIT;
static int sf_key_ok;

static void sf_free(void *p) /* at thread exit, on that thread */
{
    if (sf_tls == p)
        sf_tls = NULL;
    free(p);
}

static void sf_key_init(void)
{
    sf_key_ok = pthread_key_create(&sf_key, sf_free) == 0;
}

static struct sf_tables *sf_tables(void)
{
    if (sf_tls != NULL)
        return sf_tls;
    pthread_once(&sf_once, sf_key_init);
    struct sf_tables *t = malloc(sizeof(*t));
    if (t == NULL)
        return NULL;
    if (!sf_key_ok || pthread_setspecific(sf_key, t) != 0) {
        free(t);
        return NULL;
    }
    return sf_tls = t;
}

/* `sf` and `key`: parse and re-serialise strictly. */
static enum reqsign_status field_structured(struct reqsign_span comp, struct reqsign_span value,
                                            const struct comp_params *cp, struct reqsign__buf *out,
                                            struct reqsign_error *err)
{
    struct sf_tables *t = sf_tables();
    if (t == NULL)
        return reqsign_error_set(err, REQSIGN_E_NOMEM, SRC, REQSIGN_NO_OFFSET,
                                 "no memory for the parse of \"%.*s\"", (int)comp.len, comp.ptr);
    struct reqsign_sf_parsed p = {t->members, 64, 0, t->items, 256, 0, t->params, 256, 0};
    enum sf_kind kind = cp->key != NULL ? SF_DICT : sf_kind_of(comp);
    enum reqsign_status st;

    if (kind == SF_NONE)
        return reqsign_error_set(err, REQSIGN_E_COMPONENT_INVALID, SRC, REQSIGN_NO_OFFSET,
                                 "\"%.*s\";sf: the field is not a known structured field",
                                 (int)comp.len, comp.ptr);
    st = reqsign__sf_parse(kind, value.ptr, value.len, &p, NULL);
    if (st != REQSIGN_OK)
        return reqsign_error_set(err, REQSIGN_E_COMPONENT_INVALID, SRC, REQSIGN_NO_OFFSET,
                                 "field \"%.*s\" is not a valid structured field", (int)comp.len,
                                 comp.ptr);
    size_t pos = out->len;
    if (cp->key != NULL) {
        size_t idx;
        if (!reqsign_sf_dict_find(&p, cp->key->str.ptr, cp->key->str.len, &idx))
            return reqsign_error_set(err, REQSIGN_E_COMPONENT_ABSENT, SRC, REQSIGN_NO_OFFSET,
                                     "dictionary field \"%.*s\" has no member '%.*s'",
                                     (int)comp.len, comp.ptr, (int)cp->key->str.len,
                                     cp->key->str.ptr);
        st = reqsign_sf_write_member_value(&p, &p.members[idx], out->p, out->cap, &pos);
    } else if (kind == SF_DICT) {
        st = reqsign_sf_write_dict(&p, out->p, out->cap, &pos);
    } else if (kind == SF_LIST) {
        st = reqsign_sf_write_list(&p, out->p, out->cap, &pos);
    } else {
        st = reqsign_sf_write_item(&p, out->p, out->cap, &pos);
    }
    if (st == REQSIGN_E_BUFFER_TOO_SMALL) {
        out->overflow = 1;
        return REQSIGN_OK;
    }
    if (st != REQSIGN_OK)
        return reqsign_error_set(err, REQSIGN_E_COMPONENT_INVALID, SRC, REQSIGN_NO_OFFSET,
                                 "field \"%.*s\" cannot be re-serialised", (int)comp.len, comp.ptr);
    out->len = pos;
    return REQSIGN_OK;
}

/* `bs`: each line, trimmed, as a byte sequence; serialised as a List. */
static void field_bs(const struct reqsign_request *req, struct reqsign_span name,
                     struct reqsign__buf *out)
{
    size_t count = 0;
    for (size_t i = 0; i < req->n_headers; i++) {
        if (!reqsign__span_eq_nocase(req->headers[i].name, name))
            continue;
        struct reqsign_span v = reqsign__trim_ows(req->headers[i].value);
        if (count++ > 0)
            reqsign__buf_put(out, ", ", 2);
        reqsign__buf_putc(out, ':');
        size_t need = REQSIGN_BASE64_LEN(v.len) + 1, used = 0;
        if (out->overflow || need > out->cap - out->len) {
            out->overflow = 1;
            return;
        }
        if (reqsign_base64_encode((const uint8_t *)v.ptr, v.len, out->p + out->len,
                                  out->cap - out->len, &used) != REQSIGN_OK) {
            out->overflow = 1;
            return;
        }
        out->len += used;
        reqsign__buf_putc(out, ':');
    }
}

static enum reqsign_status field_value(const struct reqsign_request *req, struct reqsign_span comp,
                                       const struct comp_params *cp, struct reqsign__buf *out,
                                       struct reqsign_error *err)
{
    char tmp[REQSIGN_COVERED_FIELD_IN_MAX];
    struct reqsign__buf tb = {tmp, sizeof(tmp), 0, 0};
    size_t count;

    if (cp->req)
        return reqsign_error_set(err, REQSIGN_E_COMPONENT_INVALID, SRC, REQSIGN_NO_OFFSET,
                                 "\"%.*s\";req cannot be used in a request signature",
                                 (int)comp.len, comp.ptr);
    if (cp->tr)
        return reqsign_error_set(err, REQSIGN_E_COMPONENT_UNKNOWN, SRC, REQSIGN_NO_OFFSET,
                                 "\"%.*s\";tr: trailers are not signed by this profile",
                                 (int)comp.len, comp.ptr);
    if (cp->bs && (cp->sf || cp->key != NULL))
        return reqsign_error_set(err, REQSIGN_E_COMPONENT_INVALID, SRC, REQSIGN_NO_OFFSET,
                                 "\"%.*s\": bs cannot be combined with sf or key", (int)comp.len,
                                 comp.ptr);
    if (field_combined(req, comp, &tb, &count) != REQSIGN_OK)
        return reqsign_error_set(err, REQSIGN_E_LIMIT, SRC, REQSIGN_NO_OFFSET,
                                 "field \"%.*s\" is longer than %d bytes", (int)comp.len, comp.ptr,
                                 REQSIGN_COVERED_FIELD_IN_MAX);
    if (count == 0)
        return reqsign_error_set(err, REQSIGN_E_COMPONENT_ABSENT, SRC, REQSIGN_NO_OFFSET,
                                 "covered field \"%.*s\" is not in the request", (int)comp.len,
                                 comp.ptr);
    struct reqsign_span v = {tmp, tb.len};
    if (cp->bs) {
        field_bs(req, comp, out);
        return REQSIGN_OK;
    }
    enum reqsign_status st = check_value(v, 1, comp, err);
    if (st != REQSIGN_OK)
        return st;
    if (cp->sf || cp->key != NULL)
        return field_structured(comp, v, cp, out, err);
    reqsign__buf_put(out, v.ptr, v.len);
    return REQSIGN_OK;
}

/* ---- derived components (RFC 9421 2.2) ---- */

static enum reqsign_status derived_value(const struct reqsign_request *req,
                                         struct reqsign_span comp, const struct comp_params *cp,
                                         struct reqsign__buf *out, struct reqsign_error *err)
{
    struct reqsign_span path, query;
    enum reqsign_status st;

    if (cp->sf || cp->bs || cp->tr || cp->key != NULL)
        return reqsign_error_set(err, REQSIGN_E_COMPONENT_UNKNOWN, SRC, REQSIGN_NO_OFFSET,
                                 "parameter not applicable to derived component \"%.*s\"",
                                 (int)comp.len, comp.ptr);
    if (cp->req)
        return reqsign_error_set(err, REQSIGN_E_COMPONENT_INVALID, SRC, REQSIGN_NO_OFFSET,
                                 "\"%.*s\";req cannot be used in a request signature",
                                 (int)comp.len, comp.ptr);
    if (cp->name != NULL && !reqsign__span_eq(comp, "@query-param"))
        return reqsign_error_set(err, REQSIGN_E_COMPONENT_UNKNOWN, SRC, REQSIGN_NO_OFFSET,
                                 "parameter 'name' only applies to @query-param");

    if (reqsign__span_eq(comp, "@method")) {
        if (req->method.len == 0)
            return reqsign_error_set(err, REQSIGN_E_COMPONENT_ABSENT, SRC, REQSIGN_NO_OFFSET,
                                     "request has no method");
        if (req->method.len > REQSIGN_METHOD_IN_MAX)
            return reqsign_error_set(err, REQSIGN_E_LIMIT, SRC, REQSIGN_NO_OFFSET,
                                     "@method longer than %d bytes", REQSIGN_METHOD_IN_MAX);
        st = check_value(req->method, 0, comp, err);
        if (st == REQSIGN_OK)
            reqsign__buf_put(out, req->method.ptr, req->method.len);
        return st;
    }
    if (reqsign__span_eq(comp, "@authority") || reqsign__span_eq(comp, "@target-uri")) {
        char auth[REQSIGN_AUTHORITY_OUT_BUF];
        size_t alen;
        st = reqsign_authority_normalize(req->scheme, req->authority, auth, sizeof(auth), &alen,
                                         err);
        if (st != REQSIGN_OK)
            return st;
        if (comp.len == sizeof("@authority") - 1) {
            reqsign__buf_put(out, auth, alen);
            return REQSIGN_OK;
        }
        if (req->scheme.len == 0)
            return reqsign_error_set(err, REQSIGN_E_COMPONENT_ABSENT, SRC, REQSIGN_NO_OFFSET,
                                     "@target-uri: the request's scheme is not known");
        st = reqsign_target_split(req->target, &path, &query, NULL, err);
        if (st != REQSIGN_OK)
            return st;
        for (size_t i = 0; i < req->scheme.len; i++)
            reqsign__buf_putc(out, (char)reqsign__lower((unsigned char)req->scheme.ptr[i]));
        reqsign__buf_put(out, "://", 3);
        reqsign__buf_put(out, auth, alen);
        reqsign__buf_put(out, req->target.ptr, req->target.len);
        return REQSIGN_OK;
    }
    if (reqsign__span_eq(comp, "@scheme")) {
        if (req->scheme.len == 0)
            return reqsign_error_set(err, REQSIGN_E_COMPONENT_ABSENT, SRC, REQSIGN_NO_OFFSET,
                                     "@scheme: the request's scheme is not known");
        st = check_value(req->scheme, 0, comp, err);
        if (st != REQSIGN_OK)
            return st;
        for (size_t i = 0; i < req->scheme.len; i++)
            reqsign__buf_putc(out, (char)reqsign__lower((unsigned char)req->scheme.ptr[i]));
        return REQSIGN_OK;
    }
    if (reqsign__span_eq(comp, "@request-target")) {
        st = reqsign_target_split(req->target, &path, &query, NULL, err);
        if (st == REQSIGN_OK)
            reqsign__buf_put(out, req->target.ptr, req->target.len);
        return st;
    }
    if (reqsign__span_eq(comp, "@path") || reqsign__span_eq(comp, "@query") ||
        reqsign__span_eq(comp, "@query-param")) {
        st = reqsign_target_split(req->target, &path, &query, NULL, err);
        if (st != REQSIGN_OK)
            return st;
        if (comp.len == sizeof("@path") - 1) {
            reqsign__buf_put(out, path.ptr, path.len);
        } else if (comp.len == sizeof("@query") - 1) {
            reqsign__buf_put(out, query.ptr, query.len);
        } else {
            if (cp->name == NULL)
                return reqsign_error_set(err, REQSIGN_E_COMPONENT_INVALID, SRC, REQSIGN_NO_OFFSET,
                                         "@query-param needs a 'name' parameter");
            return query_param(query, cp->name, out, err);
        }
        return REQSIGN_OK;
    }
    if (reqsign__span_eq(comp, "@status"))
        return reqsign_error_set(err, REQSIGN_E_COMPONENT_INVALID, SRC, REQSIGN_NO_OFFSET,
                                 "@status cannot be used in a request signature");
    if (reqsign__span_eq(comp, "@signature-params"))
        return reqsign_error_set(err, REQSIGN_E_COMPONENT_INVALID, SRC, REQSIGN_NO_OFFSET,
                                 "@signature-params must not be listed as a covered component");
    return reqsign_error_set(err, REQSIGN_E_COMPONENT_UNKNOWN, SRC, REQSIGN_NO_OFFSET,
                             "unknown derived component \"%.*s\"", (int)comp.len, comp.ptr);
}

/* The builder. REQSIGN_E_BUFFER_TOO_SMALL is returned without a detail in
 * @err; reqsign_base_build() adds it. */
static enum reqsign_status build(const struct reqsign_request *req,
                                 const struct reqsign_sf_parsed *si,
                                 const struct reqsign_sf_member *m, char *out, size_t cap,
                                 size_t *out_len, struct reqsign_error *err)
{
    struct reqsign__buf b = {out, cap, 0, 0};
    enum reqsign_status st;

    *out_len = 0;
    if (!m->is_inner_list)
        return reqsign_error_set(err, REQSIGN_E_SIG_INPUT_MALFORMED, SRC, REQSIGN_NO_OFFSET,
                                 "signature '%.*s' is not an inner list of components",
                                 (int)m->key.len, m->key.ptr);
    if (m->items_len > REQSIGN_COMPONENTS_IN_MAX)
        return reqsign_error_set(err, REQSIGN_E_LIMIT, SRC, REQSIGN_NO_OFFSET,
                                 "more than %d covered components", REQSIGN_COMPONENTS_IN_MAX);
    if (m->params_len > REQSIGN_SIG_PARAMS_IN_MAX)
        return reqsign_error_set(err, REQSIGN_E_LIMIT, SRC, REQSIGN_NO_OFFSET,
                                 "more than %d signature parameters", REQSIGN_SIG_PARAMS_IN_MAX);

    const struct reqsign_sf_item *items = si->items + m->items_off;
    for (uint32_t i = 0; i < m->items_len; i++) {
        const struct reqsign_sf_item *it = &items[i];
        const struct reqsign_sf_param *ip = si->params + it->params_off;
        struct reqsign_span comp = it->value.str;
        struct comp_params cp;

        if (it->value.type != REQSIGN_SF_STRING)
            return reqsign_error_set(err, REQSIGN_E_SIG_INPUT_MALFORMED, SRC, REQSIGN_NO_OFFSET,
                                     "covered component %u is not a String", (unsigned)i);
        if (comp.len == 0)
            return reqsign_error_set(err, REQSIGN_E_COMPONENT_INVALID, SRC, REQSIGN_NO_OFFSET,
                                     "empty component name");
        for (size_t k = comp.ptr[0] == '@' ? 1 : 0; k < comp.len; k++)
            if (!is_tchar_lower((unsigned char)comp.ptr[k]))
                return reqsign_error_set(err, REQSIGN_E_COMPONENT_INVALID, SRC, REQSIGN_NO_OFFSET,
                                         "component name \"%.*s\" is not a lowercase field name",
                                         (int)comp.len, comp.ptr);
        for (uint32_t j = 0; j < i; j++) {
            if (items[j].value.str.len == comp.len &&
                memcmp(items[j].value.str.ptr, comp.ptr, comp.len) == 0 &&
                params_eq(si->params + items[j].params_off, items[j].params_len, ip,
                          it->params_len))
                return reqsign_error_set(err, REQSIGN_E_COMPONENT_DUPLICATE, SRC, REQSIGN_NO_OFFSET,
                                         "component \"%.*s\" is covered twice", (int)comp.len,
                                         comp.ptr);
        }
        st = read_params(ip, it->params_len, &cp, comp, err);
        if (st != REQSIGN_OK)
            return st;

        /* identifier: serialised name and parameters. A name that passed the
         * check above has no '"' or '\\', so its sf-string is the name in quotes. */
        size_t pos = b.len;
        if (it->params_len == 0 && !it->value.escaped) {
            reqsign__buf_putc(&b, '"');
            reqsign__buf_put(&b, comp.ptr, comp.len);
            reqsign__buf_putc(&b, '"');
            if (b.overflow)
                return REQSIGN_E_BUFFER_TOO_SMALL;
            pos = b.len;
            st = REQSIGN_OK;
        } else {
            st = reqsign_sf_write_bare(&it->value, b.p, b.cap, &pos);
            if (st == REQSIGN_OK)
                st = reqsign_sf_write_params(ip, it->params_len, b.p, b.cap, &pos);
        }
        if (st == REQSIGN_E_BUFFER_TOO_SMALL)
            return st;
        if (st != REQSIGN_OK)
            return reqsign_error_set(err, REQSIGN_E_COMPONENT_INVALID, SRC, REQSIGN_NO_OFFSET,
                                     "component identifier cannot be serialised");
        b.len = pos;
        reqsign__buf_put(&b, ": ", 2);
        if (comp.ptr[0] == '@')
            st = derived_value(req, comp, &cp, &b, err);
        else
            st = field_value(req, comp, &cp, &b, err);
        if (st != REQSIGN_OK)
            return st;
        reqsign__buf_putc(&b, '\n');
        if (b.overflow)
            return REQSIGN_E_BUFFER_TOO_SMALL;
    }

    reqsign__buf_puts(&b, "\"@signature-params\": ");
    if (b.overflow)
        return REQSIGN_E_BUFFER_TOO_SMALL;
    size_t pos = b.len;
    st = reqsign_sf_write_member_value(si, m, b.p, b.cap, &pos);
    if (st == REQSIGN_E_BUFFER_TOO_SMALL)
        return st;
    if (st != REQSIGN_OK)
        return reqsign_error_set(err, REQSIGN_E_SIG_INPUT_MALFORMED, SRC, REQSIGN_NO_OFFSET,
                                 "signature parameters cannot be serialised");
    *out_len = pos;
    return REQSIGN_OK;
}

/* see reqsign/base.h */
enum reqsign_status reqsign_base_build(const struct reqsign_request *req,
                                       const struct reqsign_sf_parsed *si,
                                       const struct reqsign_sf_member *m, char *out, size_t cap,
                                       size_t *out_len, struct reqsign_error *err)
{
    reqsign_error_clear(err);
    enum reqsign_status st = build(req, si, m, out, cap, out_len, err);
    if (st == REQSIGN_E_BUFFER_TOO_SMALL)
        return reqsign_error_set(err, st, SRC, REQSIGN_NO_OFFSET,
                                 "signature base longer than the %zu-byte buffer", cap);
    return st;
}
