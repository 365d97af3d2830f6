/* Criterion suite `sf`: RFC 8941 structured fields (reqsign/sf.h).
 *
 * Runs the HTTP WG structured-field-tests suite (tests/vectors/structured-field-tests,
 * every file except the RFC 9651-only date.json and display-string.json), then
 * focused cases: error offsets, limits, duplicates, accessors, serializer edge
 * cases, and a guard-page check that parsing never reads past `len`.
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <reqsign/sf.h>

#include "testutil.h"

#define SF_DIR "tests/vectors/structured-field-tests"
#define CAP 4096

static struct reqsign_sf_member g_members[CAP];
static struct reqsign_sf_item g_items[CAP];
static struct reqsign_sf_param g_params[CAP];

static void sf_storage(struct reqsign_sf_parsed *p, size_t mcap, size_t icap, size_t pcap)
{
    memset(p, 0, sizeof(*p));
    p->members = g_members;
    p->members_cap = mcap;
    p->items = g_items;
    p->items_cap = icap;
    p->params = g_params;
    p->params_cap = pcap;
}

static enum reqsign_status parse_as(const char *type, const char *in, size_t len,
                                    struct reqsign_sf_parsed *p, struct reqsign_error *err)
{
    if (strcmp(type, "dictionary") == 0)
        return reqsign_sf_parse_dict(in, len, p, err);
    if (strcmp(type, "list") == 0)
        return reqsign_sf_parse_list(in, len, p, err);
    return reqsign_sf_parse_item(in, len, p, err);
}

static enum reqsign_status write_as(const char *type, const struct reqsign_sf_parsed *p, char *out,
                                    size_t cap, size_t *pos)
{
    if (strcmp(type, "dictionary") == 0)
        return reqsign_sf_write_dict(p, out, cap, pos);
    if (strcmp(type, "list") == 0)
        return reqsign_sf_write_list(p, out, cap, pos);
    return reqsign_sf_write_item(p, out, cap, pos);
}

/* Lines of a JSON string array joined with ", " (malloc'd). */
static char *join_lines(const json_t *arr, size_t *len)
{
    size_t total = 1, i, o = 0;
    json_t *v;

    json_array_foreach(arr, i, v) total += json_string_length(v) + 2;
    char *s = malloc(total);
    cr_assert(s != NULL);
    json_array_foreach(arr, i, v)
    {
        if (i > 0) {
            s[o++] = ',';
            s[o++] = ' ';
        }
        memcpy(s + o, json_string_value(v), json_string_length(v));
        o += json_string_length(v);
    }
    s[o] = '\0';
    *len = o;
    return s;
}

/* RFC 4648 base32 (the suite's encoding of binary values). */
static uint8_t *base32_decode(const char *s, size_t *len)
{
    size_t n = strlen(s), o = 0;
    uint8_t *out = malloc(n + 1);
    uint32_t acc = 0;
    int bits = 0;

    cr_assert(out != NULL);
    for (size_t i = 0; i < n && s[i] != '='; i++) {
        const char *alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        const char *q = strchr(alpha, s[i]);
        cr_assert(q != NULL && s[i] != '\0', "bad base32 %s", s);
        acc = (acc << 5) | (uint32_t)(q - alpha);
        bits += 5;
        if (bits >= 8) {
            out[o++] = (uint8_t)(acc >> (bits - 8));
            bits -= 8;
        }
    }
    *len = o;
    return out;
}

/* ---- comparing a parse result with the suite's `expected` ---- */

static char g_why[512];

static int fail_why(const char *what)
{
    snprintf(g_why, sizeof(g_why), "%s", what);
    return 0;
}

static int bare_matches(const json_t *j, const struct reqsign_sf_bare *b)
{
    if (json_is_integer(j)) {
        if (b->type != REQSIGN_SF_INTEGER)
            return fail_why("expected an integer");
        return b->num == (int64_t)json_integer_value(j) ? 1 : fail_why("integer value");
    }
    if (json_is_real(j)) {
        if (b->type != REQSIGN_SF_DECIMAL)
            return fail_why("expected a decimal");
        return fabs((double)b->num - json_real_value(j) * 1000.0) < 0.5 ? 1
                                                                        : fail_why("decimal value");
    }
    if (json_is_boolean(j)) {
        if (b->type != REQSIGN_SF_BOOLEAN)
            return fail_why("expected a boolean");
        return b->num == (json_is_true(j) ? 1 : 0) ? 1 : fail_why("boolean value");
    }
    if (json_is_string(j)) {
        char buf[4096];
        size_t n = 0;
        if (b->type != REQSIGN_SF_STRING)
            return fail_why("expected a string");
        if (reqsign_sf_string_value(b, buf, sizeof(buf), &n) != REQSIGN_OK)
            return fail_why("string_value failed");
        return n == json_string_length(j) && memcmp(buf, json_string_value(j), n) == 0
                   ? 1
                   : fail_why("string value");
    }
    if (json_is_object(j)) {
        const char *t = json_string_value(json_object_get(j, "__type"));
        const json_t *v = json_object_get(j, "value");
        if (t != NULL && strcmp(t, "token") == 0) {
            if (b->type != REQSIGN_SF_TOKEN)
                return fail_why("expected a token");
            return b->str.len == json_string_length(v) &&
                           memcmp(b->str.ptr, json_string_value(v), b->str.len) == 0
                       ? 1
                       : fail_why("token value");
        }
        if (t != NULL && strcmp(t, "binary") == 0) {
            size_t want_len = 0, n = 0;
            uint8_t *want = base32_decode(json_string_value(v), &want_len);
            uint8_t *got = malloc(want_len + 16);
            int ok;
            if (b->type != REQSIGN_SF_BINARY) {
                free(want);
                free(got);
                return fail_why("expected binary");
            }
            ok = reqsign_sf_binary_value(b, got, want_len + 16, &n) == REQSIGN_OK &&
                 n == want_len && (n == 0 || memcmp(got, want, n) == 0);
            free(want);
            free(got);
            return ok ? 1 : fail_why("binary value");
        }
    }
    return fail_why("unsupported expected type");
}

static int params_match(const json_t *j, const struct reqsign_sf_parsed *p, uint32_t off,
                        uint32_t len)
{
    size_t i;
    json_t *kv;

    if (json_array_size(j) != len)
        return fail_why("parameter count");
    json_array_foreach(j, i, kv)
    {
        const struct reqsign_sf_param *prm = &p->params[off + i];
        const json_t *k = json_array_get(kv, 0);
        if (prm->key.len != json_string_length(k) ||
            memcmp(prm->key.ptr, json_string_value(k), prm->key.len) != 0)
            return fail_why("parameter key");
        if (!bare_matches(json_array_get(kv, 1), &prm->value))
            return 0;
    }
    return 1;
}

/* j: [bare-or-inner-list, params] */
static int member_matches(const json_t *j, const struct reqsign_sf_parsed *p,
                          const struct reqsign_sf_member *m)
{
    const json_t *v = json_array_get(j, 0);

    if (json_is_array(v)) {
        size_t i;
        json_t *it;
        if (!m->is_inner_list)
            return fail_why("expected an inner list");
        if (json_array_size(v) != m->items_len)
            return fail_why("inner list length");
        json_array_foreach(v, i, it)
        {
            const struct reqsign_sf_item *item = &p->items[m->items_off + i];
            if (!bare_matches(json_array_get(it, 0), &item->value) ||
                !params_match(json_array_get(it, 1), p, item->params_off, item->params_len))
                return 0;
        }
    } else {
        if (m->is_inner_list)
            return fail_why("unexpected inner list");
        if (!bare_matches(v, &m->value))
            return 0;
    }
    return params_match(json_array_get(j, 1), p, m->params_off, m->params_len);
}

static int parsed_matches(const char *type, const json_t *exp, const struct reqsign_sf_parsed *p)
{
    size_t i;
    json_t *v;

    if (strcmp(type, "item") == 0)
        return p->n_members == 1 ? member_matches(exp, p, &p->members[0])
                                 : fail_why("item member count");
    if (json_array_size(exp) != p->n_members)
        return fail_why("member count");
    json_array_foreach(exp, i, v)
    {
        const struct reqsign_sf_member *m = &p->members[i];
        if (strcmp(type, "dictionary") == 0) {
            const json_t *k = json_array_get(v, 0);
            if (m->key.len != json_string_length(k) ||
                memcmp(m->key.ptr, json_string_value(k), m->key.len) != 0)
                return fail_why("dictionary key");
            if (!member_matches(json_array_get(v, 1), p, m))
                return 0;
        } else if (!member_matches(v, p, m)) {
            return 0;
        }
    }
    return 1;
}

/* ---- building a structure from `expected` (caller-built values) ---- */

struct builder {
    struct reqsign_sf_parsed *p;
    uint8_t *blobs[CAP]; /* decoded binaries to free */
    size_t n_blobs;
};

/* Decimal x 1000, rounded half to even on the decimal text of the double. */
static int64_t decimal_milli(double v)
{
    char buf[64];
    int neg = v < 0;
    snprintf(buf, sizeof(buf), "%.7f", fabs(v));
    char *dot = strchr(buf, '.');
    int64_t ip = strtoll(buf, NULL, 10), frac3 = 0, rest = 0;
    for (int i = 1; i <= 3; i++)
        frac3 = frac3 * 10 + (dot[i] - '0');
    for (int i = 4; i <= 7; i++)
        rest = rest * 10 + (dot[i] - '0');
    int64_t m = ip * 1000 + frac3;
    if (rest > 5000 || (rest == 5000 && (m & 1)))
        m++;
    return neg ? -m : m;
}

static int build_bare(struct builder *bd, const json_t *j, struct reqsign_sf_bare *b)
{
    memset(b, 0, sizeof(*b));
    if (json_is_integer(j)) {
        b->type = REQSIGN_SF_INTEGER;
        b->num = (int64_t)json_integer_value(j);
    } else if (json_is_real(j)) {
        b->type = REQSIGN_SF_DECIMAL;
        b->num = decimal_milli(json_real_value(j));
    } else if (json_is_boolean(j)) {
        b->type = REQSIGN_SF_BOOLEAN;
        b->num = json_is_true(j);
    } else if (json_is_string(j)) {
        b->type = REQSIGN_SF_STRING;
        b->str.ptr = json_string_value(j);
        b->str.len = json_string_length(j);
    } else if (json_is_object(j)) {
        const char *t = json_string_value(json_object_get(j, "__type"));
        const json_t *v = json_object_get(j, "value");
        if (t != NULL && strcmp(t, "token") == 0) {
            b->type = REQSIGN_SF_TOKEN;
            b->str.ptr = json_string_value(v);
            b->str.len = json_string_length(v);
        } else if (t != NULL && strcmp(t, "binary") == 0) {
            size_t n;
            uint8_t *bytes = base32_decode(json_string_value(v), &n);
            cr_assert(bd->n_blobs < CAP);
            bd->blobs[bd->n_blobs++] = bytes;
            b->type = REQSIGN_SF_BINARY;
            b->str.ptr = (const char *)bytes;
            b->str.len = n;
        } else {
            return 0;
        }
    } else {
        return 0;
    }
    return 1;
}

static int build_params(struct builder *bd, const json_t *j, uint32_t *off, uint32_t *len)
{
    struct reqsign_sf_parsed *p = bd->p;
    size_t i;
    json_t *kv;

    *off = (uint32_t)p->n_params;
    json_array_foreach(j, i, kv)
    {
        struct reqsign_sf_param *prm = &p->params[p->n_params++];
        const json_t *k = json_array_get(kv, 0);
        prm->key.ptr = json_string_value(k);
        prm->key.len = json_string_length(k);
        if (!build_bare(bd, json_array_get(kv, 1), &prm->value))
            return 0;
    }
    *len = (uint32_t)(p->n_params - *off);
    return 1;
}

static int build_member(struct builder *bd, const json_t *j, struct reqsign_sf_member *m)
{
    struct reqsign_sf_parsed *p = bd->p;
    const json_t *v = json_array_get(j, 0);

    if (json_is_array(v)) {
        size_t i;
        json_t *it;
        /* Items first (contiguous), then their params. */
        m->is_inner_list = 1;
        m->items_off = (uint32_t)p->n_items;
        m->items_len = (uint32_t)json_array_size(v);
        p->n_items += json_array_size(v);
        json_array_foreach(v, i, it)
        {
            struct reqsign_sf_item *item = &p->items[m->items_off + i];
            if (!build_bare(bd, json_array_get(it, 0), &item->value) ||
                !build_params(bd, json_array_get(it, 1), &item->params_off, &item->params_len))
                return 0;
        }
    } else if (!build_bare(bd, v, &m->value)) {
        return 0;
    }
    return build_params(bd, json_array_get(j, 1), &m->params_off, &m->params_len);
}

static int build(struct builder *bd, const char *type, const json_t *exp)
{
    struct reqsign_sf_parsed *p = bd->p;
    size_t i;
    json_t *v;

    if (strcmp(type, "item") == 0) {
        memset(&p->members[0], 0, sizeof(p->members[0]));
        p->n_members = 1;
        return build_member(bd, exp, &p->members[0]);
    }
    json_array_foreach(exp, i, v)
    {
        struct reqsign_sf_member *m = &p->members[p->n_members++];
        memset(m, 0, sizeof(*m));
        if (strcmp(type, "dictionary") == 0) {
            const json_t *k = json_array_get(v, 0);
            m->key.ptr = json_string_value(k);
            m->key.len = json_string_length(k);
            if (!build_member(bd, json_array_get(v, 1), m))
                return 0;
        } else if (!build_member(bd, v, m)) {
            return 0;
        }
    }
    return 1;
}

static void builder_free(struct builder *bd)
{
    for (size_t i = 0; i < bd->n_blobs; i++)
        free(bd->blobs[i]);
    bd->n_blobs = 0;
}

/* Serialize a structure built from @exp; 1 if OK and equal to @want (may be NULL = must fail). */
static int serialise_expected(const char *type, const json_t *exp, const char *want, size_t wlen)
{
    static struct builder bd;
    static char out[65536];
    struct reqsign_sf_parsed p;
    size_t pos = 0;
    enum reqsign_status st;
    int ok;

    sf_storage(&p, CAP, CAP, CAP);
    bd.p = &p;
    if (!build(&bd, type, exp)) {
        builder_free(&bd);
        return fail_why("cannot build expected");
    }
    st = write_as(type, &p, out, sizeof(out), &pos);
    builder_free(&bd);
    if (want == NULL)
        return st == REQSIGN_E_SF_SERIALIZE ? 1 : fail_why("serialisation should fail");
    if (st != REQSIGN_OK)
        return fail_why("serialisation of expected failed");
    ok = pos == wlen && memcmp(out, want, wlen) == 0;
    if (!ok)
        snprintf(g_why, sizeof(g_why), "serialised expected as '%.*s'",
                 (int)(pos > 200 ? 200 : pos), out);
    return ok;
}

/* ---- the suite ---- */

struct file_stats {
    char name[64];
    size_t records, run, passed, must_fail, can_fail_failed, failed;
};

static int skip_file(const char *name)
{
    return strcmp(name, "date.json") == 0 || strcmp(name, "display-string.json") == 0;
}

/* tu_json() without JSON_ALLOW_NUL cannot load the suite's "\u0000" cases. */
static json_t *load_json(const char *rel)
{
    size_t len = 0;
    char *text = tu_read(rel, &len);
    json_error_t e;
    json_t *j = json_loadb(text, len, JSON_ALLOW_NUL | JSON_DECODE_ANY, &e);

    cr_assert(j != NULL, "%s: %s (line %d)", rel, e.text, e.line);
    free(text);
    return j;
}

static size_t list_json(const char *rel, char names[][64], size_t max)
{
    char *dir = tu_path(rel);
    DIR *d = opendir(dir);
    struct dirent *e;
    size_t n = 0;

    cr_assert(d != NULL, "cannot open %s", dir);
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l > 5 && l < 64 && strcmp(e->d_name + l - 5, ".json") == 0 && !skip_file(e->d_name)) {
            cr_assert(n < max);
            snprintf(names[n++], 64, "%s", e->d_name);
        }
    }
    closedir(d);
    free(dir);
    qsort(names, n, 64, (int (*)(const void *, const void *))strcmp);
    return n;
}

static void run_parse_record(const json_t *t, struct file_stats *fs)
{
    static char out[65536];
    const char *name = json_string_value(json_object_get(t, "name"));
    const char *type = json_string_value(json_object_get(t, "header_type"));
    const json_t *exp = json_object_get(t, "expected");
    const json_t *canon = json_object_get(t, "canonical");
    int must_fail = json_is_true(json_object_get(t, "must_fail"));
    int can_fail = json_is_true(json_object_get(t, "can_fail"));
    struct reqsign_sf_parsed p;
    struct reqsign_error err;
    size_t len, clen, pos = 0;
    char *raw = join_lines(json_object_get(t, "raw"), &len), *want;
    enum reqsign_status st;
    int ok = 1;

    fs->run++;
    sf_storage(&p, CAP, CAP, CAP);
    reqsign_error_clear(&err);
    st = parse_as(type, raw, len, &p, &err);
    g_why[0] = '\0';
    if (must_fail) {
        fs->must_fail++;
        if (st == REQSIGN_OK) {
            ok = 0;
            snprintf(g_why, sizeof(g_why), "parsed but must fail");
        } else if (st != REQSIGN_E_SF_PARSE && st != REQSIGN_E_LIMIT) {
            ok = 0;
            snprintf(g_why, sizeof(g_why), "unexpected status %d", (int)st);
        } else if (err.offset > len || strcmp(err.source, "structured field") != 0) {
            ok = 0;
            snprintf(g_why, sizeof(g_why), "bad error detail (offset %zu)", err.offset);
        } else if (p.n_members != 0 || p.n_items != 0 || p.n_params != 0) {
            ok = 0;
            snprintf(g_why, sizeof(g_why), "counts not reset on failure");
        }
    } else if (st != REQSIGN_OK) {
        if (can_fail) {
            fs->can_fail_failed++;
        } else {
            ok = 0;
            snprintf(g_why, sizeof(g_why), "parse failed: %s at %zu", err.message, err.offset);
        }
    } else {
        want =
            canon != NULL ? join_lines(canon, &clen) : join_lines(json_object_get(t, "raw"), &clen);
        if (!parsed_matches(type, exp, &p)) {
            ok = 0;
        } else if ((st = write_as(type, &p, out, sizeof(out), &pos)) != REQSIGN_OK) {
            ok = 0;
            snprintf(g_why, sizeof(g_why), "serialise failed: %d", (int)st);
        } else if (pos != clen || memcmp(out, want, clen) != 0) {
            ok = 0;
            snprintf(g_why, sizeof(g_why), "serialised as '%.*s'", (int)(pos > 200 ? 200 : pos),
                     out);
        } else if (!serialise_expected(type, exp, want, clen)) {
            /* expected structure built by hand (plain strings, raw bytes) */
            ok = 0;
        }
        free(want);
    }
    if (ok) {
        fs->passed++;
    } else {
        fs->failed++;
        fprintf(stderr, "FAIL %s: %s: %s\n", fs->name, name, g_why);
    }
    free(raw);
}

static void run_serialise_record(const json_t *t, struct file_stats *fs)
{
    const char *name = json_string_value(json_object_get(t, "name"));
    const char *type = json_string_value(json_object_get(t, "header_type"));
    const json_t *exp = json_object_get(t, "expected");
    const json_t *canon = json_object_get(t, "canonical");
    int must_fail = json_is_true(json_object_get(t, "must_fail"));
    size_t clen = 0;
    char *want = NULL;
    int ok;

    fs->run++;
    g_why[0] = '\0';
    if (must_fail) {
        fs->must_fail++;
    } else {
        cr_assert(canon != NULL, "%s: no canonical", name);
        want = join_lines(canon, &clen);
    }
    ok = serialise_expected(type, exp, want, clen);
    if (ok) {
        fs->passed++;
    } else {
        fs->failed++;
        fprintf(stderr, "FAIL serialisation-tests/%s: %s: %s\n", fs->name, name, g_why);
    }
    free(want);
}

static void run_dir(const char *rel, int serialise, size_t *total_records, size_t *total_run,
                    size_t *total_failed)
{
    static char names[64][64];
    size_t n = list_json(rel, names, 64);

    cr_assert_gt(n, 0, "no test files in %s", rel);
    for (size_t f = 0; f < n; f++) {
        struct file_stats fs;
        char path[256];
        size_t i;
        json_t *t;

        memset(&fs, 0, sizeof(fs));
        snprintf(fs.name, sizeof(fs.name), "%s", names[f]);
        snprintf(path, sizeof(path), "%s/%s", rel, names[f]);
        json_t *arr = load_json(path);
        cr_assert(json_is_array(arr), "%s is not an array", path);
        fs.records = json_array_size(arr);
        json_array_foreach(arr, i, t)
        {
            if (serialise)
                run_serialise_record(t, &fs);
            else
                run_parse_record(t, &fs);
        }
        json_decref(arr);
        fprintf(stderr,
                "sf suite %s%s: %zu records, %zu run, %zu passed (%zu must_fail), "
                "%zu can_fail failed (allowed), %zu FAILED\n",
                serialise ? "serialisation-tests/" : "", fs.name, fs.records, fs.run, fs.passed,
                fs.must_fail, fs.can_fail_failed, fs.failed);
        *total_records += fs.records;
        *total_run += fs.run;
        *total_failed += fs.failed;
    }
}

Test(sf, httpwg_parse_suite)
{
    size_t records = 0, run = 0, failed = 0;

    run_dir(SF_DIR, 0, &records, &run, &failed);
    fprintf(stderr, "sf suite parse total: %zu records, %zu run, %zu failed\n", records, run,
            failed);
    cr_assert_gt(run, 0);
    cr_assert_geq(run, records);
    cr_assert_gt(records, 1500); /* the 18 RFC 8941 files hold ~1570 records */
    cr_assert_eq(failed, 0, "%zu suite cases failed (see stderr)", failed);
}

Test(sf, httpwg_serialisation_suite)
{
    size_t records = 0, run = 0, failed = 0;

    run_dir(SF_DIR "/serialisation-tests", 1, &records, &run, &failed);
    fprintf(stderr, "sf suite serialisation total: %zu records, %zu run, %zu failed\n", records,
            run, failed);
    cr_assert_gt(run, 0);
    cr_assert_geq(run, records);
    cr_assert_gt(records, 500);
    cr_assert_eq(failed, 0, "%zu suite cases failed (see stderr)", failed);
}

/* ---- focused cases ---- */

struct off_case {
    const char *type, *in;
    enum reqsign_status code;
    size_t offset;
};

static const struct off_case off_cases[] = {
    {"item", "", REQSIGN_E_SF_PARSE, 0},
    {"item", "   ", REQSIGN_E_SF_PARSE, 3},
    {"item", "\t1", REQSIGN_E_SF_PARSE, 0},
    {"item", "1\t", REQSIGN_E_SF_PARSE, 1},
    {"item", "  1  x", REQSIGN_E_SF_PARSE, 5},
    {"item", "\xc3\xa9", REQSIGN_E_SF_PARSE, 0},
    {"item", "\"abc", REQSIGN_E_SF_PARSE, 4},
    {"item", "\"a\\x\"", REQSIGN_E_SF_PARSE, 3},
    {"item", "\"a\\", REQSIGN_E_SF_PARSE, 3},
    {"item", "\"a\tb\"", REQSIGN_E_SF_PARSE, 2},
    {"item", "\"a\x7f\"", REQSIGN_E_SF_PARSE, 2},
    {"item", "1.", REQSIGN_E_SF_PARSE, 2},
    {"item", "1.1234", REQSIGN_E_SF_PARSE, 5},
    {"item", "1234567890123456", REQSIGN_E_SF_PARSE, 15},
    {"item", "-1234567890123.0", REQSIGN_E_SF_PARSE, 14},
    {"item", "1.5.4", REQSIGN_E_SF_PARSE, 3},
    {"item", "--1", REQSIGN_E_SF_PARSE, 1},
    {"item", "-", REQSIGN_E_SF_PARSE, 1},
    {"item", "?2", REQSIGN_E_SF_PARSE, 1},
    {"item", "?", REQSIGN_E_SF_PARSE, 1},
    {"item", ":aGVsbG8.:", REQSIGN_E_SF_PARSE, 8},
    {"item", ":a=GVsbG8=:", REQSIGN_E_SF_PARSE, 2},
    {"item", ":=aGVsbG8=:", REQSIGN_E_SF_PARSE, 1},
    {"item", ":aGVsbG8=", REQSIGN_E_SF_PARSE, 9},
    {"item", ":aGVsbG8===:", REQSIGN_E_SF_PARSE, 9},
    {"item", ":a:", REQSIGN_E_SF_PARSE, 1},
    {"item", "1;a=", REQSIGN_E_SF_PARSE, 4},
    {"item", "1; ", REQSIGN_E_SF_PARSE, 3},
    {"item", "a;B", REQSIGN_E_SF_PARSE, 2},
    {"item", "a ;b", REQSIGN_E_SF_PARSE, 2},
    {"item", "a;b =1", REQSIGN_E_SF_PARSE, 4},
    {"item", "(1 2)", REQSIGN_E_SF_PARSE, 0},
    {"item", "@1659578233", REQSIGN_E_SF_PARSE, 0},
    {"item", "%\"x\"", REQSIGN_E_SF_PARSE, 0},
    {"list", "1,,42", REQSIGN_E_SF_PARSE, 2},
    {"list", "1, 2,", REQSIGN_E_SF_PARSE, 5},
    {"list", "1, 2, \t", REQSIGN_E_SF_PARSE, 7},
    {"list", "1 2", REQSIGN_E_SF_PARSE, 2},
    {"list", ",1", REQSIGN_E_SF_PARSE, 0},
    {"list", "(1 2", REQSIGN_E_SF_PARSE, 4},
    {"list", "(1\t2)", REQSIGN_E_SF_PARSE, 2},
    {"list", "(1,2)", REQSIGN_E_SF_PARSE, 2},
    {"list", "(1 (2))", REQSIGN_E_SF_PARSE, 3},
    {"dictionary", "a=1, B=2", REQSIGN_E_SF_PARSE, 5},
    {"dictionary", "a=(1 2", REQSIGN_E_SF_PARSE, 6},
    {"dictionary", "a=(1,2)", REQSIGN_E_SF_PARSE, 4},
    {"dictionary", "a=", REQSIGN_E_SF_PARSE, 2},
    {"dictionary", "a = 1", REQSIGN_E_SF_PARSE, 2},
    {"dictionary", "a=1,", REQSIGN_E_SF_PARSE, 4},
    {"dictionary", "a=1;", REQSIGN_E_SF_PARSE, 4},
    {"dictionary", "1=a", REQSIGN_E_SF_PARSE, 0},
    {"dictionary", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa=1" /* 65 */,
     REQSIGN_E_LIMIT, 64},
    {"item", "a;aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", REQSIGN_E_LIMIT,
     66},
};

Test(sf, error_offsets)
{
    for (size_t i = 0; i < sizeof(off_cases) / sizeof(off_cases[0]); i++) {
        const struct off_case *c = &off_cases[i];
        struct reqsign_sf_parsed p;
        struct reqsign_error err;

        sf_storage(&p, 16, 16, 16);
        reqsign_error_clear(&err);
        enum reqsign_status st = parse_as(c->type, c->in, strlen(c->in), &p, &err);
        cr_assert_eq(st, c->code, "case %zu (%s): status %d", i, c->in, (int)st);
        cr_assert_eq(err.code, c->code);
        cr_assert_eq(err.offset, c->offset, "case %zu (%s): offset %zu, want %zu (%s)", i, c->in,
                     err.offset, c->offset, err.message);
        cr_assert_str_eq(err.source, "structured field");
        cr_assert(err.message[0] != '\0');
        cr_assert(p.n_members == 0 && p.n_items == 0 && p.n_params == 0);
        /* NULL err is fine */
        cr_assert_eq(parse_as(c->type, c->in, strlen(c->in), &p, NULL), c->code);
    }
}

Test(sf, limits_on_small_arrays)
{
    struct reqsign_sf_parsed p;
    struct reqsign_error err;

    sf_storage(&p, 2, 16, 16);
    reqsign_error_clear(&err);
    cr_assert_eq(reqsign_sf_parse_dict("a=1, b=2, c=3", 13, &p, &err), REQSIGN_E_LIMIT);
    cr_assert_eq(err.offset, 10);
    cr_assert_eq(p.n_members, 0);
    cr_assert_eq(reqsign_sf_parse_dict("a=1, b=2", 8, &p, NULL), REQSIGN_OK);
    cr_assert_eq(p.n_members, 2);
    /* duplicates take no extra slot */
    sf_storage(&p, 1, 16, 16);
    cr_assert_eq(reqsign_sf_parse_dict("a=1, a=2, a=3", 13, &p, NULL), REQSIGN_OK);
    cr_assert(p.n_members == 1 && p.members[0].value.num == 3);
    reqsign_error_clear(&err);
    cr_assert_eq(reqsign_sf_parse_list("1, 2", 4, &p, &err), REQSIGN_E_LIMIT);
    cr_assert_eq(err.offset, 3);

    sf_storage(&p, 4, 2, 16);
    reqsign_error_clear(&err);
    cr_assert_eq(reqsign_sf_parse_list("(1 2 3)", 7, &p, &err), REQSIGN_E_LIMIT);
    cr_assert_eq(err.offset, 5);
    cr_assert_eq(reqsign_sf_parse_list("(1 2), ()", 9, &p, NULL), REQSIGN_OK);
    cr_assert_eq(reqsign_sf_parse_list("(1 2), (3)", 10, &p, NULL), REQSIGN_E_LIMIT);

    sf_storage(&p, 4, 4, 2);
    reqsign_error_clear(&err);
    cr_assert_eq(reqsign_sf_parse_item("a;x;y;z", 7, &p, &err), REQSIGN_E_LIMIT);
    cr_assert_eq(err.offset, 6);
    cr_assert_eq(reqsign_sf_parse_item("a;x=1;x=2;y", 11, &p, NULL), REQSIGN_OK);
    cr_assert(p.n_params == 2 && p.params[0].value.num == 2);

    sf_storage(&p, 0, 0, 0);
    cr_assert_eq(reqsign_sf_parse_item("1", 1, &p, NULL), REQSIGN_E_LIMIT);
    cr_assert_eq(reqsign_sf_parse_list("", 0, &p, NULL), REQSIGN_OK);
    cr_assert_eq(reqsign_sf_parse_dict("  ", 2, &p, NULL), REQSIGN_OK);
    cr_assert_eq(p.n_members, 0);
    cr_assert_eq(reqsign_sf_parse_item(NULL, 0, NULL, NULL), REQSIGN_E_INVALID_ARG);
}

Test(sf, dict_find_and_duplicates)
{
    struct reqsign_sf_parsed p;
    char out[256];
    size_t pos = 0, idx = 0;
    const char *in = "a=1,b=2, c;x=1;y=2;x=3, a=(\"z\");q, d=?0";

    sf_storage(&p, 8, 8, 8);
    cr_assert_eq(reqsign_sf_parse_dict(in, strlen(in), &p, NULL), REQSIGN_OK);
    cr_assert_eq(p.n_members, 4);
    cr_assert(reqsign_sf_dict_find(&p, "a", 1, &idx) && idx == 0);
    cr_assert(reqsign_sf_dict_find(&p, "b", 1, &idx) && idx == 1);
    cr_assert(reqsign_sf_dict_find(&p, "c", 1, &idx) && idx == 2);
    cr_assert(reqsign_sf_dict_find(&p, "d", 1, &idx) && idx == 3);
    cr_assert(!reqsign_sf_dict_find(&p, "e", 1, &idx));
    cr_assert(!reqsign_sf_dict_find(&p, "", 0, &idx));
    cr_assert(!reqsign_sf_dict_find(&p, "ab", 2, &idx));
    cr_assert(p.members[0].is_inner_list);
    cr_assert_eq(p.members[2].value.type, REQSIGN_SF_BOOLEAN);
    cr_assert_eq(p.members[2].value.num, 1);
    cr_assert_eq(reqsign_sf_write_dict(&p, out, sizeof(out), &pos), REQSIGN_OK);
    cr_assert_eq(pos, strlen("a=(\"z\");q, b=2, c;x=3;y=2, d=?0"));
    cr_assert(memcmp(out, "a=(\"z\");q, b=2, c;x=3;y=2, d=?0", pos) == 0);
}

/* Many keys: exercises the hashed duplicate lookup and its linear fallback. */
Test(sf, many_duplicate_keys)
{
    static char in[200000];
    struct reqsign_sf_parsed p;
    size_t n = 0;
    size_t idx = 0;
    const size_t nkeys[] = {5, 9, 100, 1024, 1500};

    for (size_t r = 0; r < sizeof(nkeys) / sizeof(nkeys[0]); r++) {
        size_t k = nkeys[r];
        n = 0;
        for (int pass = 0; pass < 2; pass++)
            for (size_t i = 0; i < k; i++)
                n += (size_t)snprintf(in + n, sizeof(in) - n, "%sk%zu=%d", n ? ", " : "", i, pass);
        sf_storage(&p, k, 8, 8);
        cr_assert_eq(reqsign_sf_parse_dict(in, n, &p, NULL), REQSIGN_OK, "%zu keys", k);
        cr_assert_eq(p.n_members, k);
        for (size_t i = 0; i < k; i++) {
            char key[16];
            int kl = snprintf(key, sizeof(key), "k%zu", i);
            cr_assert(reqsign_sf_dict_find(&p, key, (size_t)kl, &idx) && idx == i);
            cr_assert_eq(p.members[i].value.num, 1);
        }
        /* params too */
        n = (size_t)snprintf(in, sizeof(in), "t");
        for (int pass = 0; pass < 2; pass++)
            for (size_t i = 0; i < k && i < 300; i++)
                n += (size_t)snprintf(in + n, sizeof(in) - n, ";p%zu=%d", i, pass);
        sf_storage(&p, 1, 1, k < 300 ? k : 300);
        cr_assert_eq(reqsign_sf_parse_item(in, n, &p, NULL), REQSIGN_OK);
        cr_assert_eq(p.n_params, k < 300 ? k : 300);
        for (size_t i = 0; i < p.n_params; i++)
            cr_assert_eq(p.params[i].value.num, 1);
    }
}

Test(sf, string_value_unescape)
{
    struct reqsign_sf_parsed p;
    char buf[16];
    size_t n = 0;
    const char *in = "\"a\\\"b\\\\c\"";

    sf_storage(&p, 1, 1, 1);
    cr_assert_eq(reqsign_sf_parse_item(in, strlen(in), &p, NULL), REQSIGN_OK);
    const struct reqsign_sf_bare *b = &p.members[0].value;
    cr_assert_eq(b->type, REQSIGN_SF_STRING);
    cr_assert_eq(b->escaped, 1);
    cr_assert_eq(b->str.ptr, in + 1); /* zero-copy */
    cr_assert_eq(b->str.len, 7);
    cr_assert_eq(reqsign_sf_string_value(b, buf, 4, &n), REQSIGN_E_BUFFER_TOO_SMALL);
    cr_assert_eq(n, 5);
    cr_assert_eq(reqsign_sf_string_value(b, buf, 5, &n), REQSIGN_OK);
    cr_assert(n == 5 && memcmp(buf, "a\"b\\c", 5) == 0);

    cr_assert_eq(reqsign_sf_parse_item("\"plain\"", 7, &p, NULL), REQSIGN_OK);
    cr_assert_eq(p.members[0].value.escaped, 0);
    cr_assert_eq(reqsign_sf_string_value(&p.members[0].value, buf, sizeof(buf), &n), REQSIGN_OK);
    cr_assert(n == 5 && memcmp(buf, "plain", 5) == 0);
    cr_assert_eq(reqsign_sf_parse_item("tok", 3, &p, NULL), REQSIGN_OK);
    cr_assert_eq(reqsign_sf_string_value(&p.members[0].value, buf, sizeof(buf), &n),
                 REQSIGN_E_INVALID_ARG);
}

Test(sf, binary_value_and_canonical_binary)
{
    struct reqsign_sf_parsed p;
    uint8_t buf[16];
    char out[64];
    size_t n = 0, pos = 0;

    sf_storage(&p, 1, 1, 1);
    cr_assert_eq(reqsign_sf_parse_item(":aGVsbG8:", 9, &p, NULL), REQSIGN_OK);
    cr_assert_eq(p.members[0].value.wire, 1);
    cr_assert_eq(reqsign_sf_binary_value(&p.members[0].value, buf, 4, &n),
                 REQSIGN_E_BUFFER_TOO_SMALL);
    cr_assert_eq(n, 5);
    cr_assert_eq(reqsign_sf_binary_value(&p.members[0].value, buf, sizeof(buf), &n), REQSIGN_OK);
    cr_assert(n == 5 && memcmp(buf, "hello", 5) == 0);
    cr_assert_eq(reqsign_sf_write_item(&p, out, sizeof(out), &pos), REQSIGN_OK);
    cr_assert(pos == 10 && memcmp(out, ":aGVsbG8=:", 10) == 0);

    cr_assert_eq(reqsign_sf_parse_item(":iZ==:", 6, &p, NULL), REQSIGN_OK);
    pos = 0;
    cr_assert_eq(reqsign_sf_write_item(&p, out, sizeof(out), &pos), REQSIGN_OK);
    cr_assert(pos == 6 && memcmp(out, ":iQ==:", 6) == 0);

    /* caller-built wire text outside the alphabet */
    struct reqsign_sf_bare bad = {.type = REQSIGN_SF_BINARY, .str = {"a_bc", 4}, .wire = 1};
    cr_assert_eq(reqsign_sf_binary_value(&bad, buf, sizeof(buf), &n), REQSIGN_E_BASE64);
    pos = 0;
    cr_assert_eq(reqsign_sf_write_bare(&bad, out, sizeof(out), &pos), REQSIGN_E_SF_SERIALIZE);
    cr_assert_eq(pos, 0);
    /* raw bytes */
    struct reqsign_sf_bare raw = {.type = REQSIGN_SF_BINARY, .str = {"\xff\xfe", 2}};
    cr_assert_eq(reqsign_sf_write_bare(&raw, out, sizeof(out), &pos), REQSIGN_OK);
    cr_assert(pos == 6 && memcmp(out, "://4=:", 6) == 0);
}

static void expect_bare(const struct reqsign_sf_bare *b, enum reqsign_status want_st,
                        const char *want)
{
    char out[64];
    size_t pos = 0;
    enum reqsign_status st = reqsign_sf_write_bare(b, out, sizeof(out), &pos);

    cr_assert_eq(st, want_st, "status %d", (int)st);
    if (want != NULL)
        cr_assert(pos == strlen(want) && memcmp(out, want, pos) == 0, "got '%.*s', want '%s'",
                  (int)pos, out, want);
    else
        cr_assert_eq(pos, 0);
}

Test(sf, serializer_bare_items)
{
    struct reqsign_sf_bare b;

    memset(&b, 0, sizeof(b));
    b.type = REQSIGN_SF_DECIMAL;
    b.num = 1500;
    expect_bare(&b, REQSIGN_OK, "1.5");
    b.num = -500;
    expect_bare(&b, REQSIGN_OK, "-0.5");
    b.num = 0;
    expect_bare(&b, REQSIGN_OK, "0.0");
    b.num = 1230;
    expect_bare(&b, REQSIGN_OK, "1.23");
    b.num = 5;
    expect_bare(&b, REQSIGN_OK, "0.005");
    b.num = 999999999999999;
    expect_bare(&b, REQSIGN_OK, "999999999999.999");
    b.num = -999999999999999;
    expect_bare(&b, REQSIGN_OK, "-999999999999.999");
    b.num = 1000000000000000;
    expect_bare(&b, REQSIGN_E_SF_SERIALIZE, NULL);
    b.num = INT64_MIN;
    expect_bare(&b, REQSIGN_E_SF_SERIALIZE, NULL);

    b.type = REQSIGN_SF_INTEGER;
    b.num = -999999999999999;
    expect_bare(&b, REQSIGN_OK, "-999999999999999");
    b.num = 0;
    expect_bare(&b, REQSIGN_OK, "0");
    b.num = INT64_MIN;
    expect_bare(&b, REQSIGN_E_SF_SERIALIZE, NULL);

    b.type = REQSIGN_SF_BOOLEAN;
    b.num = 2;
    expect_bare(&b, REQSIGN_E_SF_SERIALIZE, NULL);

    b.type = REQSIGN_SF_STRING;
    b.str = (struct reqsign_span){"a\"b\\", 4};
    expect_bare(&b, REQSIGN_OK, "\"a\\\"b\\\\\"");
    b.escaped = 1; /* as parsed: a lone quote / bad escape is invalid */
    expect_bare(&b, REQSIGN_E_SF_SERIALIZE, NULL);
    b.str = (struct reqsign_span){"a\\\"b", 4};
    expect_bare(&b, REQSIGN_OK, "\"a\\\"b\"");
    b.escaped = 0;
    b.str = (struct reqsign_span){"caf\xc3\xa9", 5};
    expect_bare(&b, REQSIGN_E_SF_SERIALIZE, NULL);
    b.str = (struct reqsign_span){"", 0};
    expect_bare(&b, REQSIGN_OK, "\"\"");

    b.type = REQSIGN_SF_TOKEN;
    b.str = (struct reqsign_span){"foo/bar:baz*", 12};
    expect_bare(&b, REQSIGN_OK, "foo/bar:baz*");
    b.str = (struct reqsign_span){"1foo", 4};
    expect_bare(&b, REQSIGN_E_SF_SERIALIZE, NULL);
    b.str = (struct reqsign_span){"fo o", 4};
    expect_bare(&b, REQSIGN_E_SF_SERIALIZE, NULL);
    b.str = (struct reqsign_span){"", 0};
    expect_bare(&b, REQSIGN_E_SF_SERIALIZE, NULL);

    b.type = (enum reqsign_sf_type)99;
    expect_bare(&b, REQSIGN_E_SF_SERIALIZE, NULL);
}

Test(sf, serializer_buffers_and_inner_lists)
{
    /* RFC 9421 2.3: @signature-params is the member value, re-serialized. */
    const char *si = "sig1=(\"@method\" \"@authority\" \"@path\" \"content-digest\";sf);"
                     "created=1618884473;keyid=\"test-key-ed25519\"";
    const char *want = "(\"@method\" \"@authority\" \"@path\" \"content-digest\";sf);"
                       "created=1618884473;keyid=\"test-key-ed25519\"";
    struct reqsign_sf_parsed p;
    char out[256];
    size_t pos = 0;

    sf_storage(&p, 4, 8, 8);
    cr_assert_eq(reqsign_sf_parse_dict(si, strlen(si), &p, NULL), REQSIGN_OK);
    cr_assert_eq(reqsign_sf_write_member_value(&p, &p.members[0], out, sizeof(out), &pos),
                 REQSIGN_OK);
    cr_assert(pos == strlen(want) && memcmp(out, want, pos) == 0, "%.*s", (int)pos, out);

    /* too small: *pos untouched, error reported, every cap below the size fails */
    for (size_t cap = 0; cap < strlen(want); cap++) {
        pos = 0;
        cr_assert_eq(reqsign_sf_write_member_value(&p, &p.members[0], out, cap, &pos),
                     REQSIGN_E_BUFFER_TOO_SMALL, "cap %zu", cap);
        cr_assert_eq(pos, 0);
    }
    /* appends after *pos */
    memcpy(out, "X: ", 3);
    pos = 3;
    cr_assert_eq(reqsign_sf_write_member_value(&p, &p.members[0], out, sizeof(out), &pos),
                 REQSIGN_OK);
    cr_assert_eq(pos, 3 + strlen(want));

    /* hand-built inner list */
    struct reqsign_sf_item items[2] = {
        {.value = {.type = REQSIGN_SF_STRING, .str = {"@method", 7}}},
        {.value = {.type = REQSIGN_SF_STRING, .str = {"content-digest", 14}},
         .params_off = 0,
         .params_len = 1},
    };
    struct reqsign_sf_param item_params[1] = {
        {.key = {"sf", 2}, .value = {.type = REQSIGN_SF_BOOLEAN, .num = 1}}};
    struct reqsign_sf_param lparams[2] = {
        {.key = {"created", 7}, .value = {.type = REQSIGN_SF_INTEGER, .num = 1618884473}},
        {.key = {"keyid", 5}, .value = {.type = REQSIGN_SF_STRING, .str = {"k", 1}}},
    };
    pos = 0;
    cr_assert_eq(reqsign_sf_write_inner_list(items, 2, lparams, 2, out, sizeof(out), &pos),
                 REQSIGN_E_INVALID_ARG);
    cr_assert_eq(reqsign_sf_write_inner_list(items, 1, lparams, 2, out, sizeof(out), &pos),
                 REQSIGN_OK);
    const char *w1 = "(\"@method\");created=1618884473;keyid=\"k\"";
    cr_assert(pos == strlen(w1) && memcmp(out, w1, pos) == 0, "%.*s", (int)pos, out);
    pos = 0;
    cr_assert_eq(reqsign_sf_write_inner_list_ex(items, 2, item_params, 1, lparams, 2, out,
                                                sizeof(out), &pos),
                 REQSIGN_OK);
    const char *w2 = "(\"@method\" \"content-digest\";sf);created=1618884473;keyid=\"k\"";
    cr_assert(pos == strlen(w2) && memcmp(out, w2, pos) == 0, "%.*s", (int)pos, out);
    pos = 0;
    cr_assert_eq(
        reqsign_sf_write_inner_list_ex(items, 2, item_params, 0, NULL, 0, out, sizeof(out), &pos),
        REQSIGN_E_INVALID_ARG);
    /* bad parameter key */
    struct reqsign_sf_param badk = {.key = {"Key", 3}, .value = {.type = REQSIGN_SF_INTEGER}};
    pos = 0;
    cr_assert_eq(reqsign_sf_write_params(&badk, 1, out, sizeof(out), &pos), REQSIGN_E_SF_SERIALIZE);
    cr_assert_eq(pos, 0);
    cr_assert_eq(reqsign_sf_write_bare(NULL, out, sizeof(out), &pos), REQSIGN_E_INVALID_ARG);
}

/* ---- no read past len: inputs end against a PROT_NONE page ---- */

static const char *seeds[] = {
    "a=1, b=2;x=?0, c=(\"x\" y;z=:aGVsbG8=:);p=1.5",
    "sig1=(\"@method\" \"@authority\" \"content-digest\";sf);created=1618884473;keyid=\"k\"",
    "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:, sha-512=:YQ==:",
    "(1 2 3);a, (\"s\\\"t\" tok/en:x);b=-12.345, ?1",
    "\"string with \\\\ escapes\"",
    ":iZ==:",
    "-999999999999999",
    "123456789012.123",
    "token*a:b/c;k=v;k2",
    "a, b, c;d=(1), e",
    "()",
    "",
};

static const char mut_chars[] = "\"\\:;=,()? \t-.0123456789az*AZ@%/+\x7f\x80\xff";

static void guard_check(char *page_end, const char *in, size_t len)
{
    static const char *types[] = {"dictionary", "list", "item"};
    char *p = page_end - len;

    memcpy(p, in, len);
    for (int t = 0; t < 3; t++) {
        struct reqsign_sf_parsed a, b;
        static struct reqsign_sf_member m2[64];
        static struct reqsign_sf_item i2[64];
        static struct reqsign_sf_param p2[64];
        static char ser[8192], ser2[8192];
        size_t pos = 0, pos2 = 0;

        sf_storage(&a, 64, 64, 64);
        enum reqsign_status s1 = parse_as(types[t], p, len, &a, NULL);
        /* same result as from a heap copy; serialized form is stable */
        b = (struct reqsign_sf_parsed){m2, 64, 0, i2, 64, 0, p2, 64, 0};
        enum reqsign_status s2 = parse_as(types[t], in, len, &b, NULL);
        cr_assert_eq(s1, s2);
        cr_assert(a.n_members == b.n_members && a.n_items == b.n_items && a.n_params == b.n_params);
        if (s1 != REQSIGN_OK)
            continue;
        for (size_t i = 0; i < a.n_members; i++) {
            const struct reqsign_sf_bare *v = &a.members[i].value;
            uint8_t bin[4096];
            char str[4096];
            size_t n;
            if (v->type == REQSIGN_SF_BINARY)
                cr_assert_eq(reqsign_sf_binary_value(v, bin, sizeof(bin), &n), REQSIGN_OK);
            if (v->type == REQSIGN_SF_STRING)
                cr_assert_eq(reqsign_sf_string_value(v, str, sizeof(str), &n), REQSIGN_OK);
        }
        cr_assert_eq(write_as(types[t], &a, ser, sizeof(ser), &pos), REQSIGN_OK);
        cr_assert_eq(parse_as(types[t], ser, pos, &b, NULL), REQSIGN_OK, "reparse '%.*s'", (int)pos,
                     ser);
        cr_assert_eq(write_as(types[t], &b, ser2, sizeof(ser2), &pos2), REQSIGN_OK);
        cr_assert(pos == pos2 && memcmp(ser, ser2, pos) == 0);
    }
}

Test(sf, no_read_past_len)
{
    long pg = sysconf(_SC_PAGESIZE);
    char *map =
        mmap(NULL, (size_t)pg * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char buf[512];
    size_t nseeds = sizeof(seeds) / sizeof(seeds[0]), cases = 0;

    cr_assert(map != MAP_FAILED);
    cr_assert_eq(mprotect(map + pg, (size_t)pg, PROT_NONE), 0);
    srand(8941);
    for (size_t s = 0; s < nseeds; s++) {
        size_t len = strlen(seeds[s]);
        /* every prefix of every seed */
        for (size_t l = 0; l <= len; l++, cases++)
            guard_check(map + pg, seeds[s], l);
    }
    for (int r = 0; r < 600; r++, cases++) {
        const char *seed = seeds[(size_t)rand() % nseeds];
        size_t len = strlen(seed);
        memcpy(buf, seed, len);
        int edits = 1 + rand() % 3;
        for (int e = 0; e < edits; e++) {
            size_t at = len ? (size_t)rand() % len : 0;
            char c = mut_chars[(size_t)rand() % (sizeof(mut_chars) - 1)];
            switch (rand() % 3) {
            case 0: /* replace */
                if (len)
                    buf[at] = c;
                break;
            case 1: /* insert */
                if (len + 1 < sizeof(buf)) {
                    memmove(buf + at + 1, buf + at, len - at);
                    buf[at] = c;
                    len++;
                }
                break;
            default: /* truncate */
                len = at;
                break;
            }
        }
        guard_check(map + pg, buf, len);
    }
    munmap(map, (size_t)pg * 2);
    cr_assert_gt(cases, 600);
}
