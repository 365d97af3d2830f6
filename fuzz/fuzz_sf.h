/* Body of the three structured-field targets: parse a field of one
 * top-level type; on success serialise, re-parse, re-serialise and require
 * the two serialisations to be equal (RFC 8941 round-trip stability). The
 * includer defines SF_PARSE and SF_WRITE. */
#include "fuzz_common.h"

#include <string.h>

#include <reqsign/sf.h>

#define SF_MEMBERS 64
#define SF_ITEMS 256
#define SF_PARAMS 256

struct sf_store {
    struct reqsign_sf_member members[SF_MEMBERS];
    struct reqsign_sf_item items[SF_ITEMS];
    struct reqsign_sf_param params[SF_PARAMS];
    struct reqsign_sf_parsed p;
};

static void store_init(struct sf_store *s)
{
    memset(&s->p, 0, sizeof(s->p));
    s->p.members = s->members;
    s->p.members_cap = SF_MEMBERS;
    s->p.items = s->items;
    s->p.items_cap = SF_ITEMS;
    s->p.params = s->params;
    s->p.params_cap = SF_PARAMS;
}

/* Decode every string and byte sequence: must not crash or read out of bounds. */
static void touch_bare(const struct reqsign_sf_bare *b)
{
    static char sbuf[16384];
    static uint8_t bbuf[16384];
    size_t n = 0;
    if (b->type == REQSIGN_SF_STRING) {
        enum reqsign_status st = reqsign_sf_string_value(b, sbuf, sizeof(sbuf), &n);
        FUZZ_CHECK(st == REQSIGN_OK || st == REQSIGN_E_BUFFER_TOO_SMALL, "string_value: %d", st);
        FUZZ_CHECK(st != REQSIGN_OK || n <= b->str.len, "unescaped string grew");
    } else if (b->type == REQSIGN_SF_BINARY) {
        (void)reqsign_sf_binary_value(b, bbuf, sizeof(bbuf), &n);
    }
}

static void touch_all(const struct reqsign_sf_parsed *p)
{
    for (size_t i = 0; i < p->n_members; i++) {
        const struct reqsign_sf_member *m = &p->members[i];
        if (!m->is_inner_list)
            touch_bare(&m->value);
        FUZZ_CHECK(m->items_off + (size_t)m->items_len <= p->n_items, "items range");
        FUZZ_CHECK(m->params_off + (size_t)m->params_len <= p->n_params, "params range");
        for (uint32_t k = 0; k < m->items_len; k++) {
            const struct reqsign_sf_item *it = &p->items[m->items_off + k];
            touch_bare(&it->value);
            FUZZ_CHECK(it->params_off + (size_t)it->params_len <= p->n_params, "item params range");
        }
        for (uint32_t k = 0; k < m->params_len; k++)
            touch_bare(&p->params[m->params_off + k].value);
        if (m->key.len > 0)
            FUZZ_CHECK(reqsign_sf_dict_find(p, m->key.ptr, m->key.len, NULL), "dict_find");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct sf_store a, b;
    static char out1[1 << 17], out2[1 << 17];
    if (size > 16384)
        return 0;
    /* an exact-size heap copy, so ASan catches any read past the end */
    char *in = malloc(size ? size : 1);
    FUZZ_CHECK(in != NULL, "malloc");
    if (size)
        memcpy(in, data, size);

    store_init(&a);
    struct reqsign_error err;
    reqsign_error_clear(&err);
    enum reqsign_status st = SF_PARSE(in, size, &a.p, &err);
    FUZZ_CHECK(st == REQSIGN_OK || st == REQSIGN_E_SF_PARSE || st == REQSIGN_E_LIMIT,
               "parse status %d", st);
    if (st != REQSIGN_OK) {
        FUZZ_CHECK(err.code == st, "err.code %d != %d", err.code, st);
        FUZZ_CHECK(st != REQSIGN_E_SF_PARSE || err.offset <= size, "offset %zu > len %zu",
                   err.offset, size);
        free(in);
        return 0;
    }
    touch_all(&a.p);

    size_t n1 = 0;
    st = SF_WRITE(&a.p, out1, sizeof(out1), &n1);
    FUZZ_CHECK(st == REQSIGN_OK, "serialise of a parsed value failed: %s", reqsign_errname(st));
    FUZZ_CHECK(n1 <= sizeof(out1), "pos past cap");

    store_init(&b);
    reqsign_error_clear(&err);
    st = SF_PARSE(out1, n1, &b.p, &err);
    FUZZ_CHECK(st == REQSIGN_OK, "re-parse of own serialisation failed: %s at %zu: %s\n[%.*s]",
               reqsign_errname(st), err.offset, err.message, (int)n1, out1);
    size_t n2 = 0;
    st = SF_WRITE(&b.p, out2, sizeof(out2), &n2);
    FUZZ_CHECK(st == REQSIGN_OK, "second serialise failed: %s", reqsign_errname(st));
    FUZZ_CHECK(n1 == n2 && memcmp(out1, out2, n1) == 0,
               "round trip unstable:\n  1: [%.*s]\n  2: [%.*s]", (int)n1, out1, (int)n2, out2);
    FUZZ_CHECK(a.p.n_members == b.p.n_members, "member count %zu != %zu", a.p.n_members,
               b.p.n_members);

    /* a too-small buffer must fail cleanly, never write past cap */
    if (n1 > 1) {
        size_t cap = n1 / 2, pos = 0;
        char *small = malloc(cap);
        FUZZ_CHECK(small != NULL, "malloc");
        st = SF_WRITE(&a.p, small, cap, &pos);
        FUZZ_CHECK(st == REQSIGN_E_BUFFER_TOO_SMALL, "short buffer: %s", reqsign_errname(st));
        free(small);
    }
    free(in);
    return 0;
}
