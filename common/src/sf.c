/* reqsign: RFC 8941 structured field values, zero-copy parser and canonical
 * serializer (RFC 8941 section 4). No allocation; every loop is linear in the
 * input, except duplicate-key detection past KIDX_MAX keys (see below).
 */
#include <string.h>

#include <reqsign/base64.h>
#include <reqsign/sf.h>

#include "b64_internal.h"
#include "sf_internal.h"

#define SF_SOURCE "structured field"
#define SF_INT_MAX 999999999999999LL /* 15 digits; also the largest decimal x 1000 */
#define SF_B64_LENIENT (REQSIGN__B64_PAD_OPTIONAL | REQSIGN__B64_LAX_BITS)

/* Character classes, one table lookup per byte. */
#define C_TCHAR 0x01u       /* tchar (RFC 9110) */
#define C_TOKEN 0x02u       /* tchar / ":" / "/" : token continuation */
#define C_TOKEN_START 0x04u /* ALPHA / "*" */
#define C_KEY 0x08u         /* lcalpha / DIGIT / "_" / "-" / "." / "*" */
#define C_KEY_START 0x10u   /* lcalpha / "*" */
#define C_B64 0x20u         /* ALPHA / DIGIT / "+" / "/" / "=" */
#define C_STR 0x40u         /* unescaped string char: %x20-21 / %x23-5B / %x5D-7E */
#define C_DIGIT 0x80u

static const uint8_t cls[256] = {
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x40, 0x43, 0x00, 0x43, 0x43, 0x43, 0x43, 0x43, 0x40, 0x40, 0x5f, 0x63, 0x40, 0x4b, 0x4b, 0x62,
    0xeb, 0xeb, 0xeb, 0xeb, 0xeb, 0xeb, 0xeb, 0xeb, 0xeb, 0xeb, 0x42, 0x40, 0x40, 0x60, 0x40, 0x40,
    0x40, 0x67, 0x67, 0x67, 0x67, 0x67, 0x67, 0x67, 0x67, 0x67, 0x67, 0x67, 0x67, 0x67, 0x67, 0x67,
    0x67, 0x67, 0x67, 0x67, 0x67, 0x67, 0x67, 0x67, 0x67, 0x67, 0x67, 0x40, 0x00, 0x40, 0x43, 0x4b,
    0x43, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f,
    0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x40, 0x43, 0x40, 0x43, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
};

#define IS(c, k) ((cls[(unsigned char)(c)] & (k)) != 0)

/* ------------------------------------------------------------------------ */
/* Duplicate-key index. Dictionaries and parameter lists look a new key up
 * among the keys already stored. Up to KIDX_LINEAR keys a scan is cheapest;
 * beyond, a lazily built open-addressing table on the stack keeps the parse
 * linear up to KIDX_MAX keys (RFC 8941 asks for 1024 members); past that
 * (only with caller arrays larger than RFC minimums) lookups scan again. The
 * hash is seeded from the table's (ASLR-randomised) address. */
#define KIDX_SLOTS 2048u
#define KIDX_MAX (KIDX_SLOTS / 2)
#define KIDX_LINEAR 8u

struct kidx {
    const char *base; /* first entry */
    size_t stride;    /* sizeof one entry */
    size_t key_off;   /* offsetof(entry, key) */
    uint32_t seed;
    uint32_t n_indexed;        /* entries in slot[]; 0 = not built */
    uint16_t slot[KIDX_SLOTS]; /* entry index + 1; 0 = empty */
};

static void kidx_init(struct kidx *k, const void *base, size_t stride, size_t key_off)
{
    k->base = base;
    k->stride = stride;
    k->key_off = key_off;
    k->n_indexed = 0;
    k->seed = (uint32_t)(((uintptr_t)k >> 4) * 0x9e3779b1u);
}

static const struct reqsign_span *kidx_key(const struct kidx *k, size_t i)
{
    return (const struct reqsign_span *)(const void *)(k->base + i * k->stride + k->key_off);
}

static uint32_t kidx_hash(const struct kidx *k, const char *s, size_t n)
{
    uint32_t h = 2166136261u ^ k->seed;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    h ^= h >> 15;
    h *= 0x2c1b3c6du;
    h ^= h >> 13;
    return h;
}

static int span_eq(const struct reqsign_span *a, const char *s, size_t n)
{
    return a->len == n && (n == 0 || memcmp(a->ptr, s, n) == 0);
}

static void kidx_insert(struct kidx *k, size_t i)
{
    const struct reqsign_span *key = kidx_key(k, i);
    uint32_t h = kidx_hash(k, key->ptr, key->len) & (KIDX_SLOTS - 1);
    while (k->slot[h] != 0)
        h = (h + 1) & (KIDX_SLOTS - 1);
    k->slot[h] = (uint16_t)(i + 1);
}

/* Index of @key among entries [0, n), or -1. */
static long kidx_find(struct kidx *k, size_t n, const char *key, size_t key_len)
{
    if (n <= KIDX_LINEAR || n > KIDX_MAX) {
        for (size_t i = 0; i < n; i++)
            if (span_eq(kidx_key(k, i), key, key_len))
                return (long)i;
        return -1;
    }
    if (k->n_indexed == 0)
        memset(k->slot, 0, sizeof(k->slot));
    for (; k->n_indexed < n; k->n_indexed++)
        kidx_insert(k, k->n_indexed);
    uint32_t h = kidx_hash(k, key, key_len) & (KIDX_SLOTS - 1);
    while (k->slot[h] != 0) {
        size_t i = (size_t)k->slot[h] - 1;
        if (span_eq(kidx_key(k, i), key, key_len))
            return (long)i;
        h = (h + 1) & (KIDX_SLOTS - 1);
    }
    return -1;
}

/* ------------------------------------------------------------------------ */
/* Parser (RFC 8941 section 4.2). */

struct sf_parser {
    const char *s;
    size_t len, pos;
    struct reqsign_sf_parsed *out;
    struct reqsign_error *err;
};

static enum reqsign_status perr(struct sf_parser *p, size_t off, const char *what)
{
    return reqsign_error_set(p->err, REQSIGN_E_SF_PARSE, SF_SOURCE, off, "%s at offset %zu", what,
                             off);
}

static enum reqsign_status plimit(struct sf_parser *p, size_t off, const char *what)
{
    return reqsign_error_set(p->err, REQSIGN_E_LIMIT, SF_SOURCE, off, "%s at offset %zu", what,
                             off);
}

static void skip_sp(struct sf_parser *p)
{
    while (p->pos < p->len && p->s[p->pos] == ' ')
        p->pos++;
}

static void skip_ows(struct sf_parser *p)
{
    while (p->pos < p->len && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t'))
        p->pos++;
}

static enum reqsign_status parse_key(struct sf_parser *p, struct reqsign_span *key)
{
    size_t start = p->pos;

    if (p->pos >= p->len || !IS(p->s[p->pos], C_KEY_START))
        return perr(p, p->pos, "expected a key (lowercase letter or '*')");
    p->pos++;
    while (p->pos < p->len && IS(p->s[p->pos], C_KEY))
        p->pos++;
    if (p->pos - start > REQSIGN_SF_KEY_IN_MAX)
        return plimit(p, start + REQSIGN_SF_KEY_IN_MAX, "key longer than 64 characters");
    key->ptr = p->s + start;
    key->len = p->pos - start;
    return REQSIGN_OK;
}

static enum reqsign_status parse_number(struct sf_parser *p, struct reqsign_sf_bare *b)
{
    int neg = 0, dec = 0;
    int64_t ip = 0, fp = 0;
    size_t nd = 0, fd = 0;

    if (p->s[p->pos] == '-') {
        neg = 1;
        p->pos++;
    }
    if (p->pos >= p->len || !IS(p->s[p->pos], C_DIGIT))
        return perr(p, p->pos, "expected a digit");
    for (; p->pos < p->len; p->pos++) {
        char c = p->s[p->pos];
        if (IS(c, C_DIGIT)) {
            if (!dec) {
                if (nd == 15)
                    return perr(p, p->pos, "integer with more than 15 digits");
                ip = ip * 10 + (c - '0');
                nd++;
            } else {
                if (fd == 3)
                    return perr(p, p->pos, "decimal with more than 3 fractional digits");
                fp = fp * 10 + (c - '0');
                fd++;
            }
        } else if (c == '.' && !dec) {
            if (nd > 12)
                return perr(p, p->pos, "decimal with more than 12 integer digits");
            dec = 1;
        } else {
            break;
        }
    }
    if (dec) {
        if (fd == 0)
            return perr(p, p->pos, "decimal without fractional digits");
        while (fd < 3) {
            fp *= 10;
            fd++;
        }
        b->type = REQSIGN_SF_DECIMAL;
        b->num = ip * 1000 + fp;
    } else {
        b->type = REQSIGN_SF_INTEGER;
        b->num = ip;
    }
    if (neg)
        b->num = -b->num;
    return REQSIGN_OK;
}

static enum reqsign_status parse_string(struct sf_parser *p, struct reqsign_sf_bare *b)
{
    size_t start = ++p->pos; /* after the opening DQUOTE */

    b->type = REQSIGN_SF_STRING;
    while (p->pos < p->len) {
        char c = p->s[p->pos];
        if (IS(c, C_STR)) {
            p->pos++;
        } else if (c == '"') {
            b->str.ptr = p->s + start;
            b->str.len = p->pos - start;
            p->pos++;
            return REQSIGN_OK;
        } else if (c == '\\') {
            p->pos++;
            if (p->pos >= p->len)
                return perr(p, p->pos, "unterminated escape in string");
            if (p->s[p->pos] != '"' && p->s[p->pos] != '\\')
                return perr(p, p->pos, "invalid escape in string (only \\\" and \\\\)");
            b->escaped = 1;
            p->pos++;
        } else {
            return perr(p, p->pos, "invalid character in string");
        }
    }
    return perr(p, p->pos, "unterminated string");
}

static enum reqsign_status parse_binary(struct sf_parser *p, struct reqsign_sf_bare *b)
{
    size_t start = ++p->pos, n = 0, bad = 0;
    const char *why = "malformed base64";

    while (p->pos < p->len && IS(p->s[p->pos], C_B64))
        p->pos++;
    if (p->pos >= p->len)
        return perr(p, p->pos, "unterminated byte sequence");
    if (p->s[p->pos] != ':')
        return perr(p, p->pos, "invalid character in byte sequence");
    if (reqsign__b64_decode(p->s + start, p->pos - start, SF_B64_LENIENT, NULL, 0, &n, &bad,
                            &why) != REQSIGN_OK)
        return perr(p, start + bad, why);
    b->type = REQSIGN_SF_BINARY;
    b->str.ptr = p->s + start;
    b->str.len = p->pos - start;
    b->wire = 1;
    p->pos++;
    return REQSIGN_OK;
}

static enum reqsign_status parse_bare(struct sf_parser *p, struct reqsign_sf_bare *b)
{
    char c;

    memset(b, 0, sizeof(*b));
    if (p->pos >= p->len)
        return perr(p, p->pos, "expected an item");
    c = p->s[p->pos];
    if (c == '-' || IS(c, C_DIGIT))
        return parse_number(p, b);
    if (c == '"')
        return parse_string(p, b);
    if (c == ':')
        return parse_binary(p, b);
    if (c == '?') {
        p->pos++;
        if (p->pos >= p->len || (p->s[p->pos] != '0' && p->s[p->pos] != '1'))
            return perr(p, p->pos, "expected 0 or 1 after '?'");
        b->type = REQSIGN_SF_BOOLEAN;
        b->num = p->s[p->pos] == '1';
        p->pos++;
        return REQSIGN_OK;
    }
    if (IS(c, C_TOKEN_START)) {
        size_t start = p->pos++;
        while (p->pos < p->len && IS(p->s[p->pos], C_TOKEN))
            p->pos++;
        b->type = REQSIGN_SF_TOKEN;
        b->str.ptr = p->s + start;
        b->str.len = p->pos - start;
        return REQSIGN_OK;
    }
    return perr(p, p->pos, "unexpected character at the start of an item");
}

static enum reqsign_status parse_params(struct sf_parser *p, uint32_t *off, uint32_t *n)
{
    struct reqsign_sf_parsed *o = p->out;
    struct kidx k;
    size_t first = o->n_params;
    enum reqsign_status st;

    *off = (uint32_t)first;
    *n = 0;
    kidx_init(&k, o->params + first, sizeof(o->params[0]), offsetof(struct reqsign_sf_param, key));
    while (p->pos < p->len && p->s[p->pos] == ';') {
        struct reqsign_sf_param prm;
        size_t key_at;
        long dup;

        p->pos++;
        skip_sp(p);
        key_at = p->pos;
        if ((st = parse_key(p, &prm.key)) != REQSIGN_OK)
            return st;
        if (p->pos < p->len && p->s[p->pos] == '=') {
            p->pos++;
            if ((st = parse_bare(p, &prm.value)) != REQSIGN_OK)
                return st;
        } else {
            memset(&prm.value, 0, sizeof(prm.value));
            prm.value.type = REQSIGN_SF_BOOLEAN;
            prm.value.num = 1;
        }
        dup = kidx_find(&k, o->n_params - first, prm.key.ptr, prm.key.len);
        if (dup >= 0) {
            o->params[first + (size_t)dup].value = prm.value; /* last value wins */
            continue;
        }
        if (o->n_params >= o->params_cap || o->n_params >= UINT32_MAX)
            return plimit(p, key_at, "too many parameters");
        o->params[o->n_params++] = prm;
    }
    *n = (uint32_t)(o->n_params - first);
    return REQSIGN_OK;
}

static enum reqsign_status parse_inner_list(struct sf_parser *p, struct reqsign_sf_member *m)
{
    struct reqsign_sf_parsed *o = p->out;
    size_t first = o->n_items;
    enum reqsign_status st;

    p->pos++; /* '(' */
    m->is_inner_list = 1;
    m->items_off = (uint32_t)first;
    for (;;) {
        struct reqsign_sf_item *it;

        skip_sp(p);
        if (p->pos >= p->len)
            return perr(p, p->pos, "unterminated inner list");
        if (p->s[p->pos] == ')') {
            p->pos++;
            m->items_len = (uint32_t)(o->n_items - first);
            return parse_params(p, &m->params_off, &m->params_len);
        }
        if (o->n_items >= o->items_cap || o->n_items >= UINT32_MAX)
            return plimit(p, p->pos, "too many inner-list items");
        it = &o->items[o->n_items];
        if ((st = parse_bare(p, &it->value)) != REQSIGN_OK)
            return st;
        if ((st = parse_params(p, &it->params_off, &it->params_len)) != REQSIGN_OK)
            return st;
        o->n_items++;
        if (p->pos >= p->len)
            return perr(p, p->pos, "unterminated inner list");
        if (p->s[p->pos] != ' ' && p->s[p->pos] != ')')
            return perr(p, p->pos, "expected SP or ')' in inner list");
    }
}

static enum reqsign_status parse_item_or_inner(struct sf_parser *p, struct reqsign_sf_member *m)
{
    enum reqsign_status st;

    if (p->pos < p->len && p->s[p->pos] == '(')
        return parse_inner_list(p, m);
    if ((st = parse_bare(p, &m->value)) != REQSIGN_OK)
        return st;
    return parse_params(p, &m->params_off, &m->params_len);
}

/* After a member: OWS, then end, or ',' OWS and another member. */
static enum reqsign_status after_member(struct sf_parser *p, int *more)
{
    skip_ows(p);
    *more = 0;
    if (p->pos >= p->len)
        return REQSIGN_OK;
    if (p->s[p->pos] != ',')
        return perr(p, p->pos, "expected ',' between members");
    p->pos++;
    skip_ows(p);
    if (p->pos >= p->len)
        return perr(p, p->pos, "trailing comma");
    *more = 1;
    return REQSIGN_OK;
}

static enum reqsign_status parse_list(struct sf_parser *p)
{
    struct reqsign_sf_parsed *o = p->out;
    enum reqsign_status st;
    int more = p->pos < p->len;

    while (more) {
        struct reqsign_sf_member *m;

        if (o->n_members >= o->members_cap)
            return plimit(p, p->pos, "too many list members");
        m = &o->members[o->n_members];
        memset(m, 0, sizeof(*m));
        if ((st = parse_item_or_inner(p, m)) != REQSIGN_OK)
            return st;
        o->n_members++;
        if ((st = after_member(p, &more)) != REQSIGN_OK)
            return st;
    }
    return REQSIGN_OK;
}

static enum reqsign_status parse_dict(struct sf_parser *p)
{
    struct reqsign_sf_parsed *o = p->out;
    struct kidx k;
    enum reqsign_status st;
    int more = p->pos < p->len;

    kidx_init(&k, o->members, sizeof(o->members[0]), offsetof(struct reqsign_sf_member, key));
    while (more) {
        struct reqsign_sf_member m;
        size_t key_at = p->pos;
        long dup;

        memset(&m, 0, sizeof(m));
        if ((st = parse_key(p, &m.key)) != REQSIGN_OK)
            return st;
        if (p->pos < p->len && p->s[p->pos] == '=') {
            p->pos++;
            st = parse_item_or_inner(p, &m);
        } else {
            m.value.type = REQSIGN_SF_BOOLEAN;
            m.value.num = 1;
            st = parse_params(p, &m.params_off, &m.params_len);
        }
        if (st != REQSIGN_OK)
            return st;
        dup = kidx_find(&k, o->n_members, m.key.ptr, m.key.len);
        if (dup >= 0) {
            o->members[dup] = m; /* first position, last value */
        } else {
            if (o->n_members >= o->members_cap)
                return plimit(p, key_at, "too many dictionary members");
            o->members[o->n_members++] = m;
        }
        if ((st = after_member(p, &more)) != REQSIGN_OK)
            return st;
    }
    return REQSIGN_OK;
}

/* see sf_internal.h */
enum reqsign_status reqsign__sf_parse(enum sf_kind kind, const char *in, size_t len,
                                      struct reqsign_sf_parsed *out, struct reqsign_error *err)
{
    struct sf_parser p;
    enum reqsign_status st;

    if (out == NULL || (in == NULL && len > 0) || kind == SF_NONE)
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, SF_SOURCE, REQSIGN_NO_OFFSET, NULL);
    out->n_members = out->n_items = out->n_params = 0;
    if ((out->members == NULL && out->members_cap > 0) ||
        (out->items == NULL && out->items_cap > 0) || (out->params == NULL && out->params_cap > 0))
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, SF_SOURCE, REQSIGN_NO_OFFSET, NULL);
    p.s = in;
    p.len = len;
    p.pos = 0;
    p.out = out;
    p.err = err;
    skip_sp(&p);
    if (kind == SF_DICT) {
        st = parse_dict(&p);
    } else if (kind == SF_LIST) {
        st = parse_list(&p);
    } else if (out->members_cap < 1) {
        st = plimit(&p, p.pos, "no room for the item");
    } else {
        memset(&out->members[0], 0, sizeof(out->members[0]));
        st = parse_bare(&p, &out->members[0].value);
        if (st == REQSIGN_OK)
            st = parse_params(&p, &out->members[0].params_off, &out->members[0].params_len);
        if (st == REQSIGN_OK)
            out->n_members = 1;
    }
    if (st == REQSIGN_OK) {
        skip_sp(&p);
        if (p.pos < p.len)
            st = perr(&p, p.pos, "unexpected character after the field value");
    }
    if (st != REQSIGN_OK)
        out->n_members = out->n_items = out->n_params = 0;
    return st;
}

/* see reqsign/sf.h */
enum reqsign_status reqsign_sf_parse_dict(const char *in, size_t len, struct reqsign_sf_parsed *out,
                                          struct reqsign_error *err)
{
    reqsign_error_clear(err);
    return reqsign__sf_parse(SF_DICT, in, len, out, err);
}

/* see reqsign/sf.h */
enum reqsign_status reqsign_sf_parse_list(const char *in, size_t len, struct reqsign_sf_parsed *out,
                                          struct reqsign_error *err)
{
    reqsign_error_clear(err);
    return reqsign__sf_parse(SF_LIST, in, len, out, err);
}

/* see reqsign/sf.h */
enum reqsign_status reqsign_sf_parse_item(const char *in, size_t len, struct reqsign_sf_parsed *out,
                                          struct reqsign_error *err)
{
    reqsign_error_clear(err);
    return reqsign__sf_parse(SF_ITEM, in, len, out, err);
}

/* see reqsign/sf.h */
bool reqsign_sf_dict_find(const struct reqsign_sf_parsed *p, const char *key, size_t key_len,
                          size_t *idx)
{
    if (p == NULL || (key == NULL && key_len > 0))
        return false;
    for (size_t i = 0; i < p->n_members; i++)
        if (span_eq(&p->members[i].key, key, key_len)) {
            if (idx != NULL)
                *idx = i;
            return true;
        }
    return false;
}

/* see reqsign/sf.h */
enum reqsign_status reqsign_sf_string_value(const struct reqsign_sf_bare *b, char *out, size_t cap,
                                            size_t *out_len)
{
    size_t need = 0, i, o;

    if (b == NULL || out_len == NULL || b->type != REQSIGN_SF_STRING || (out == NULL && cap > 0) ||
        (b->str.ptr == NULL && b->str.len > 0))
        return REQSIGN_E_INVALID_ARG;
    if (!b->escaped) {
        *out_len = b->str.len;
        if (cap < b->str.len)
            return REQSIGN_E_BUFFER_TOO_SMALL;
        if (b->str.len > 0)
            memcpy(out, b->str.ptr, b->str.len);
        return REQSIGN_OK;
    }
    for (i = 0; i < b->str.len; i++, need++)
        if (b->str.ptr[i] == '\\' && i + 1 < b->str.len)
            i++;
    *out_len = need;
    if (cap < need)
        return REQSIGN_E_BUFFER_TOO_SMALL;
    for (i = 0, o = 0; i < b->str.len; i++) {
        if (b->str.ptr[i] == '\\' && i + 1 < b->str.len)
            i++;
        out[o++] = b->str.ptr[i];
    }
    return REQSIGN_OK;
}

/* see reqsign/sf.h */
enum reqsign_status reqsign_sf_binary_value(const struct reqsign_sf_bare *b, uint8_t *out,
                                            size_t cap, size_t *out_len)
{
    size_t bad = 0;

    if (b == NULL || out_len == NULL || b->type != REQSIGN_SF_BINARY || (out == NULL && cap > 0) ||
        (b->str.ptr == NULL && b->str.len > 0))
        return REQSIGN_E_INVALID_ARG;
    if (!b->wire) {
        *out_len = b->str.len;
        if (cap < b->str.len)
            return REQSIGN_E_BUFFER_TOO_SMALL;
        if (b->str.len > 0)
            memcpy(out, b->str.ptr, b->str.len);
        return REQSIGN_OK;
    }
    /* Lenient, as RFC 8941 4.2.7 asks: missing padding and non-zero pad bits
     * are accepted, characters outside the base64 alphabet are not.
     * One call: the core validates the whole input before writing. */
    enum reqsign_status st =
        reqsign__b64_decode(b->str.ptr, b->str.len, SF_B64_LENIENT, out, cap, out_len, &bad, NULL);
    if (st == REQSIGN_OK && out == NULL && *out_len > 0)
        return REQSIGN_E_BUFFER_TOO_SMALL;
    return st;
}

/* ------------------------------------------------------------------------ */
/* Serializer (RFC 8941 section 4.1). Writers work on a local cursor that is
 * committed to *pos only on success. */

struct wbuf {
    char *out;
    size_t cap, pos;
};

static enum reqsign_status put(struct wbuf *w, const char *s, size_t n)
{
    if (n > w->cap - w->pos)
        return REQSIGN_E_BUFFER_TOO_SMALL;
    if (n > 0)
        memcpy(w->out + w->pos, s, n);
    w->pos += n;
    return REQSIGN_OK;
}

static enum reqsign_status putc1(struct wbuf *w, char c)
{
    if (w->pos >= w->cap)
        return REQSIGN_E_BUFFER_TOO_SMALL;
    w->out[w->pos++] = c;
    return REQSIGN_OK;
}

static enum reqsign_status put_uint(struct wbuf *w, uint64_t v)
{
    char tmp[20];
    size_t n = sizeof(tmp);

    do {
        tmp[--n] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    return put(w, tmp + n, sizeof(tmp) - n);
}

#define TRY(x)                                                                                     \
    do {                                                                                           \
        enum reqsign_status try_st_ = (x);                                                         \
        if (try_st_ != REQSIGN_OK)                                                                 \
            return try_st_;                                                                        \
    } while (0)

static int key_ok(const struct reqsign_span *k)
{
    if (k->len == 0 || k->ptr == NULL || !IS(k->ptr[0], C_KEY_START))
        return 0;
    for (size_t i = 1; i < k->len; i++)
        if (!IS(k->ptr[i], C_KEY))
            return 0;
    return 1;
}

static enum reqsign_status w_key(struct wbuf *w, const struct reqsign_span *k)
{
    if (!key_ok(k))
        return REQSIGN_E_SF_SERIALIZE;
    return put(w, k->ptr, k->len);
}

static enum reqsign_status w_string(struct wbuf *w, const struct reqsign_sf_bare *b)
{
    const char *s = b->str.ptr;
    size_t n = b->str.len, i, run;

    /* The common case first: printable ASCII with no '"' or '\\' is written
     * as it is, between quotes (one pass to check, one copy). */
    unsigned bad = 0, special = 0;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        bad |= (unsigned char)(c - 0x20) > 0x5e;
        special |= (c == '"') | (c == '\\');
    }
    if (bad)
        return REQSIGN_E_SF_SERIALIZE;
    if (!special) {
        if (n > w->cap - w->pos || w->cap - w->pos - n < 2)
            return REQSIGN_E_BUFFER_TOO_SMALL;
        w->out[w->pos] = '"';
        if (n > 0)
            memcpy(w->out + w->pos + 1, s, n);
        w->out[w->pos + 1 + n] = '"';
        w->pos += n + 2;
        return REQSIGN_OK;
    }
    /* Validate first so nothing depends on a partial write. */
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (b->escaped) {
            if (c == '"')
                return REQSIGN_E_SF_SERIALIZE;
            if (c == '\\') {
                if (i + 1 >= n || (s[i + 1] != '"' && s[i + 1] != '\\'))
                    return REQSIGN_E_SF_SERIALIZE;
                i++;
            }
        }
    }
    TRY(putc1(w, '"'));
    if (b->escaped) {
        TRY(put(w, s, n));
    } else {
        for (i = 0; i < n; i = run) {
            for (run = i; run < n && IS(s[run], C_STR); run++)
                ;
            TRY(put(w, s + i, run - i));
            if (run < n) {
                TRY(putc1(w, '\\'));
                TRY(putc1(w, s[run]));
                run++;
            }
        }
    }
    return putc1(w, '"');
}

static enum reqsign_status w_binary(struct wbuf *w, const struct reqsign_sf_bare *b)
{
    size_t n = 0, bad = 0;

    if (b->str.ptr == NULL && b->str.len > 0)
        return REQSIGN_E_INVALID_ARG;
    TRY(putc1(w, ':'));
    if (!b->wire) {
        TRY(reqsign__b64_encode((const uint8_t *)b->str.ptr, b->str.len, 0, w->out + w->pos,
                                w->cap - w->pos, &n));
        w->pos += n;
        return putc1(w, ':');
    }
    /* Parsed text: re-encode canonically (padding, zero pad bits), one
     * 4-character group at a time, no buffer needed. */
    if (reqsign__b64_decode(b->str.ptr, b->str.len, SF_B64_LENIENT, NULL, 0, &n, &bad, NULL) !=
        REQSIGN_OK)
        return REQSIGN_E_SF_SERIALIZE;
    for (size_t i = 0; i < b->str.len; i += 4) {
        size_t chunk = b->str.len - i < 4 ? b->str.len - i : 4, got = 0, enc = 0;
        uint8_t bytes[3];

        if (reqsign__b64_decode(b->str.ptr + i, chunk, SF_B64_LENIENT, bytes, sizeof(bytes), &got,
                                &bad, NULL) != REQSIGN_OK)
            return REQSIGN_E_SF_SERIALIZE;
        if (got == 0)
            continue;
        TRY(reqsign__b64_encode(bytes, got, 0, w->out + w->pos, w->cap - w->pos, &enc));
        w->pos += enc;
    }
    return putc1(w, ':');
}

static enum reqsign_status w_bare(struct wbuf *w, const struct reqsign_sf_bare *b)
{
    switch (b->type) {
    case REQSIGN_SF_INTEGER:
        if (b->num < -SF_INT_MAX || b->num > SF_INT_MAX)
            return REQSIGN_E_SF_SERIALIZE;
        if (b->num < 0)
            TRY(putc1(w, '-'));
        return put_uint(w, (uint64_t)(b->num < 0 ? -b->num : b->num));
    case REQSIGN_SF_DECIMAL: {
        /* num = value x 1000; integer part at most 12 digits. */
        uint64_t u, frac;
        char f[3];
        size_t fl = 3;

        if (b->num < -SF_INT_MAX || b->num > SF_INT_MAX)
            return REQSIGN_E_SF_SERIALIZE;
        u = (uint64_t)(b->num < 0 ? -b->num : b->num);
        if (b->num < 0)
            TRY(putc1(w, '-'));
        TRY(put_uint(w, u / 1000));
        TRY(putc1(w, '.'));
        frac = u % 1000;
        f[0] = (char)('0' + frac / 100);
        f[1] = (char)('0' + frac / 10 % 10);
        f[2] = (char)('0' + frac % 10);
        while (fl > 1 && f[fl - 1] == '0')
            fl--;
        return put(w, f, fl);
    }
    case REQSIGN_SF_STRING:
        if (b->str.ptr == NULL && b->str.len > 0)
            return REQSIGN_E_INVALID_ARG;
        return w_string(w, b);
    case REQSIGN_SF_TOKEN:
        if (b->str.len == 0 || b->str.ptr == NULL || !IS(b->str.ptr[0], C_TOKEN_START))
            return REQSIGN_E_SF_SERIALIZE;
        for (size_t i = 1; i < b->str.len; i++)
            if (!IS(b->str.ptr[i], C_TOKEN))
                return REQSIGN_E_SF_SERIALIZE;
        return put(w, b->str.ptr, b->str.len);
    case REQSIGN_SF_BINARY:
        return w_binary(w, b);
    case REQSIGN_SF_BOOLEAN:
        if (b->num != 0 && b->num != 1)
            return REQSIGN_E_SF_SERIALIZE;
        return put(w, b->num ? "?1" : "?0", 2);
    }
    return REQSIGN_E_SF_SERIALIZE;
}

static int is_true(const struct reqsign_sf_bare *b)
{
    return b->type == REQSIGN_SF_BOOLEAN && b->num == 1;
}

static enum reqsign_status w_params(struct wbuf *w, const struct reqsign_sf_param *params, size_t n)
{
    if (params == NULL && n > 0)
        return REQSIGN_E_INVALID_ARG;
    for (size_t i = 0; i < n; i++) {
        TRY(putc1(w, ';'));
        TRY(w_key(w, &params[i].key));
        if (!is_true(&params[i].value)) {
            TRY(putc1(w, '='));
            TRY(w_bare(w, &params[i].value));
        }
    }
    return REQSIGN_OK;
}

/* [off, off + len) within [0, n)? */
static int range_ok(uint32_t off, uint32_t len, size_t n)
{
    return off <= n && len <= n - off;
}

static enum reqsign_status w_inner(struct wbuf *w, const struct reqsign_sf_item *items,
                                   size_t n_items, const struct reqsign_sf_param *item_params,
                                   size_t n_item_params, const struct reqsign_sf_param *params,
                                   size_t n_params)
{
    if (items == NULL && n_items > 0)
        return REQSIGN_E_INVALID_ARG;
    TRY(putc1(w, '('));
    for (size_t i = 0; i < n_items; i++) {
        const struct reqsign_sf_item *it = &items[i];

        if (!range_ok(it->params_off, it->params_len, n_item_params))
            return REQSIGN_E_INVALID_ARG;
        if (i > 0)
            TRY(putc1(w, ' '));
        TRY(w_bare(w, &it->value));
        if (it->params_len > 0)
            TRY(w_params(w, item_params + it->params_off, it->params_len));
    }
    TRY(putc1(w, ')'));
    return w_params(w, params, n_params);
}

static enum reqsign_status w_member_value(struct wbuf *w, const struct reqsign_sf_parsed *p,
                                          const struct reqsign_sf_member *m)
{
    if (!range_ok(m->params_off, m->params_len, p->n_params))
        return REQSIGN_E_INVALID_ARG;
    if (m->is_inner_list) {
        if (!range_ok(m->items_off, m->items_len, p->n_items))
            return REQSIGN_E_INVALID_ARG;
        return w_inner(w, p->items + m->items_off, m->items_len, p->params, p->n_params,
                       p->params + m->params_off, m->params_len);
    }
    TRY(w_bare(w, &m->value));
    return w_params(w, p->params + m->params_off, m->params_len);
}

static enum reqsign_status w_dict(struct wbuf *w, const struct reqsign_sf_parsed *p)
{
    if (p->members == NULL && p->n_members > 0)
        return REQSIGN_E_INVALID_ARG;
    for (size_t i = 0; i < p->n_members; i++) {
        const struct reqsign_sf_member *m = &p->members[i];

        if (i > 0)
            TRY(put(w, ", ", 2));
        TRY(w_key(w, &m->key));
        if (!m->is_inner_list && is_true(&m->value)) {
            if (!range_ok(m->params_off, m->params_len, p->n_params))
                return REQSIGN_E_INVALID_ARG;
            TRY(w_params(w, p->params + m->params_off, m->params_len));
        } else {
            TRY(putc1(w, '='));
            TRY(w_member_value(w, p, m));
        }
    }
    return REQSIGN_OK;
}

static enum reqsign_status w_list(struct wbuf *w, const struct reqsign_sf_parsed *p)
{
    if (p->members == NULL && p->n_members > 0)
        return REQSIGN_E_INVALID_ARG;
    for (size_t i = 0; i < p->n_members; i++) {
        if (i > 0)
            TRY(put(w, ", ", 2));
        TRY(w_member_value(w, p, &p->members[i]));
    }
    return REQSIGN_OK;
}

static enum reqsign_status w_item(struct wbuf *w, const struct reqsign_sf_parsed *p)
{
    if (p->members == NULL || p->n_members != 1 || p->members[0].is_inner_list)
        return REQSIGN_E_SF_SERIALIZE;
    return w_member_value(w, p, &p->members[0]);
}

/* Set up the local cursor; commit it on success. */
static int w_begin(struct wbuf *w, char *out, size_t cap, const size_t *pos)
{
    if (pos == NULL || (out == NULL && cap > 0) || *pos > cap)
        return 0;
    w->out = out;
    w->cap = cap;
    w->pos = *pos;
    return 1;
}

static enum reqsign_status w_end(const struct wbuf *w, enum reqsign_status st, size_t *pos)
{
    if (st == REQSIGN_OK)
        *pos = w->pos;
    return st;
}

/* see reqsign/sf.h */
enum reqsign_status reqsign_sf_write_bare(const struct reqsign_sf_bare *b, char *out, size_t cap,
                                          size_t *pos)
{
    struct wbuf w;

    if (b == NULL || !w_begin(&w, out, cap, pos))
        return REQSIGN_E_INVALID_ARG;
    return w_end(&w, w_bare(&w, b), pos);
}

/* see reqsign/sf.h */
enum reqsign_status reqsign_sf_write_params(const struct reqsign_sf_param *params, size_t n,
                                            char *out, size_t cap, size_t *pos)
{
    struct wbuf w;

    if (!w_begin(&w, out, cap, pos))
        return REQSIGN_E_INVALID_ARG;
    return w_end(&w, w_params(&w, params, n), pos);
}

/* see reqsign/sf.h */
enum reqsign_status reqsign_sf_write_inner_list(const struct reqsign_sf_item *items, size_t n_items,
                                                const struct reqsign_sf_param *params,
                                                size_t n_params, char *out, size_t cap, size_t *pos)
{
    struct wbuf w;

    if (!w_begin(&w, out, cap, pos))
        return REQSIGN_E_INVALID_ARG;
    /* no item parameter pool: any item with parameters is rejected by range_ok */
    return w_end(&w, w_inner(&w, items, n_items, NULL, 0, params, n_params), pos);
}

/* see reqsign/sf.h */
enum reqsign_status
reqsign_sf_write_inner_list_ex(const struct reqsign_sf_item *items, size_t n_items,
                               const struct reqsign_sf_param *item_params, size_t n_item_params,
                               const struct reqsign_sf_param *params, size_t n_params, char *out,
                               size_t cap, size_t *pos)
{
    struct wbuf w;

    if (!w_begin(&w, out, cap, pos) || (item_params == NULL && n_item_params > 0))
        return REQSIGN_E_INVALID_ARG;
    return w_end(&w, w_inner(&w, items, n_items, item_params, n_item_params, params, n_params),
                 pos);
}

/* see reqsign/sf.h */
enum reqsign_status reqsign_sf_write_member_value(const struct reqsign_sf_parsed *p,
                                                  const struct reqsign_sf_member *m, char *out,
                                                  size_t cap, size_t *pos)
{
    struct wbuf w;

    if (p == NULL || m == NULL || !w_begin(&w, out, cap, pos))
        return REQSIGN_E_INVALID_ARG;
    return w_end(&w, w_member_value(&w, p, m), pos);
}

/* see reqsign/sf.h */
enum reqsign_status reqsign_sf_write_dict(const struct reqsign_sf_parsed *p, char *out, size_t cap,
                                          size_t *pos)
{
    struct wbuf w;

    if (p == NULL || !w_begin(&w, out, cap, pos))
        return REQSIGN_E_INVALID_ARG;
    return w_end(&w, w_dict(&w, p), pos);
}

/* see reqsign/sf.h */
enum reqsign_status reqsign_sf_write_list(const struct reqsign_sf_parsed *p, char *out, size_t cap,
                                          size_t *pos)
{
    struct wbuf w;

    if (p == NULL || !w_begin(&w, out, cap, pos))
        return REQSIGN_E_INVALID_ARG;
    return w_end(&w, w_list(&w, p), pos);
}

/* see reqsign/sf.h */
enum reqsign_status reqsign_sf_write_item(const struct reqsign_sf_parsed *p, char *out, size_t cap,
                                          size_t *pos)
{
    struct wbuf w;

    if (p == NULL || !w_begin(&w, out, cap, pos))
        return REQSIGN_E_INVALID_ARG;
    return w_end(&w, w_item(&w, p), pos);
}
