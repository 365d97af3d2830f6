/* Key store tests.
 *
 * Part one is a CONTRACT suite: every test in it loops over `backends[]` and
 * uses only the public reqsign_keystore_* API plus the backend's two hooks
 * (a fresh location, and open), so a new backend (PostgreSQL) runs it
 * unchanged by adding one row. Part two checks what only SQLite has: files,
 * modes, read-only opens, the schema_version table and migrations.
 */
#include <criterion/criterion.h>

#include <reqsign/keycache.h>
#include <reqsign/keystore_sqlite.h>
#ifdef REQSIGN_TEST_PG
#include <reqsign/keystore_pg.h>
#endif

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pgutil.h"
#include "testutil.h"

/* ---- backends ---- */

struct backend {
    const char *name;
    /* A fresh, empty place to open a store (malloc'd). */
    char *(*new_location)(void);
    /* Open (creating if needed) the store at @location, read-write. */
    struct reqsign_keystore *(*open)(const char *location, struct reqsign_error *err);
};

static char *sqlite_location(void)
{
    char *dir = tu_tmpdir();
    size_t n = strlen(dir) + sizeof("/keys.db");
    char *p = malloc(n);
    cr_assert_not_null(p);
    snprintf(p, n, "%s/keys.db", dir);
    free(dir);
    return p;
}

static struct reqsign_keystore *sqlite_open_rw(const char *location, struct reqsign_error *err)
{
    return reqsign_keystore_sqlite_open(location, REQSIGN_KEYSTORE_CREATE, err);
}

#ifdef REQSIGN_TEST_PG
/* A fresh database on the suite's shared PostgreSQL server (pgutil.h). */
static char *pg_location(void)
{
    char *ci = tu_pg_new_db();
    cr_assert_not_null(ci, "no PostgreSQL test database (see pgutil messages above)");
    return ci;
}

static struct reqsign_keystore *pg_open_rw(const char *location, struct reqsign_error *err)
{
    return reqsign_keystore_pg_open(location, REQSIGN_KEYSTORE_CREATE, err);
}
#endif

static const struct backend backends[] = {
    {"sqlite", sqlite_location, sqlite_open_rw},
#ifdef REQSIGN_TEST_PG
    {"postgresql", pg_location, pg_open_rw},
#endif
};
#define N_BACKENDS (sizeof(backends) / sizeof(backends[0]))

static struct reqsign_keystore *open_or_die(const struct backend *b, const char *loc)
{
    struct reqsign_error err;
    reqsign_error_clear(&err);
    struct reqsign_keystore *ks = b->open(loc, &err);
    cr_assert_not_null(ks, "[%s] open %s: %s", b->name, loc, err.message);
    return ks;
}

/* A distinct record for @i: keyid "key-%05d", public key bytes from @i. */
static void make_record(int i, struct reqsign_key_record *r)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->keyid, sizeof(r->keyid), "key-%05d", i);
    for (int j = 0; j < REQSIGN_ED25519_PUBLIC_LEN; j++)
        r->public_key[j] = (uint8_t)((i * 131 + j * 7 + (i >> 8) * 13) ^ (j == 0 ? i : 0));
    r->public_key[30] = (uint8_t)(i & 0xff);
    r->public_key[31] = (uint8_t)(i >> 8);
    snprintf(r->label, sizeof(r->label), "label %d", i);
    snprintf(r->scopes, sizeof(r->scopes), "payments:write scope-%d", i);
    r->created_at = 1700000000 + i;
}

static void assert_same(const char *bn, const struct reqsign_key_record *a,
                        const struct reqsign_key_record *b)
{
    cr_assert_str_eq(a->keyid, b->keyid, "[%s]", bn);
    cr_assert(memcmp(a->public_key, b->public_key, sizeof(a->public_key)) == 0,
              "[%s] public key of %s", bn, a->keyid);
    cr_assert_str_eq(a->label, b->label, "[%s]", bn);
    cr_assert_str_eq(a->scopes, b->scopes, "[%s]", bn);
    cr_assert_eq(a->created_at, b->created_at, "[%s]", bn);
    cr_assert_eq(a->expires_at, b->expires_at, "[%s]", bn);
    cr_assert_eq(a->revoked_at, b->revoked_at, "[%s]", bn);
    cr_assert_eq(a->publish, b->publish, "[%s] publish of %s", bn, a->keyid);
}

static void insert_ok(const char *bn, struct reqsign_keystore *ks,
                      const struct reqsign_key_record *r)
{
    struct reqsign_error err;
    reqsign_error_clear(&err);
    enum reqsign_status st = reqsign_keystore_insert(ks, r, &err);
    cr_assert_eq(st, REQSIGN_OK, "[%s] insert %s: %s", bn, r->keyid, err.message);
}

#define FOR_EACH_BACKEND(b) for (const struct backend *b = backends; b < backends + N_BACKENDS; b++)

/* Test @name: c_@name on a fresh store of each backend of @set (@n of them). */
#define STORE_TEST(name, set, n)                                                                   \
    Test(keystore, name)                                                                           \
    {                                                                                              \
        on_each_store(set, n, c_##name);                                                           \
    }

/* Run the contract check @fn on a fresh, empty store of each backend of @set. */
static void on_each_store(const struct backend *set, size_t n,
                          void (*fn)(const struct backend *b, struct reqsign_keystore *ks))
{
    for (const struct backend *b = set; b < set + n; b++) {
        char *loc = b->new_location();
        struct reqsign_keystore *ks = open_or_die(b, loc);
        fn(b, ks);
        reqsign_keystore_free(ks);
        free(loc);
    }
}

/* ---- contract ---- */

static void c_round_trip_every_field(const struct backend *b, struct reqsign_keystore *ks)
{
    struct reqsign_key_record r, got;
    struct reqsign_error err;

    /* Every field at its largest. */
    memset(&r, 0, sizeof(r));
    memset(r.keyid, 'k', REQSIGN_KEYID_IN_MAX);
    r.keyid[0] = '~';
    for (int j = 0; j < REQSIGN_ED25519_PUBLIC_LEN; j++)
        r.public_key[j] = (uint8_t)(0xff - j);
    r.public_key[5] = 0; /* a NUL inside the blob */
    memset(r.label, 'L', REQSIGN_KEY_LABEL_IN_MAX);
    memcpy(r.label, "caf\xc3\xa9 ", 6); /* UTF-8 */
    size_t off = 0;
    while (off + REQSIGN_SCOPE_IN_MAX + 1 < sizeof(r.scopes) - 1) {
        memset(r.scopes + off, 's', REQSIGN_SCOPE_IN_MAX);
        off += REQSIGN_SCOPE_IN_MAX;
        r.scopes[off++] = ' ';
    }
    r.scopes[off - 1] = '\0';
    r.created_at = 1700000000;
    r.expires_at = INT64_C(1800000000);
    r.revoked_at = INT64_C(1750000000);
    r.publish = 1;
    insert_ok(b->name, ks, &r);

    reqsign_error_clear(&err);
    cr_assert_eq(reqsign_keystore_get(ks, r.keyid, strlen(r.keyid), &got, &err), REQSIGN_OK,
                 "[%s] %s", b->name, err.message);
    assert_same(b->name, &r, &got);

    /* Zero times round-trip as zero (never / not revoked). */
    make_record(1, &r);
    insert_ok(b->name, ks, &r);
    cr_assert_eq(reqsign_keystore_get(ks, r.keyid, strlen(r.keyid), &got, &err), REQSIGN_OK);
    assert_same(b->name, &r, &got);
    cr_assert_eq(got.expires_at, 0);
    cr_assert_eq(got.revoked_at, 0);

    /* Empty label and scopes are allowed. */
    make_record(2, &r);
    r.label[0] = '\0';
    r.scopes[0] = '\0';
    insert_ok(b->name, ks, &r);
    cr_assert_eq(reqsign_keystore_get(ks, r.keyid, strlen(r.keyid), &got, &err), REQSIGN_OK);
    assert_same(b->name, &r, &got);
}

STORE_TEST(round_trip_every_field, backends, N_BACKENDS)

static void c_conflict_names_keyid_or_public_key(const struct backend *b,
                                                 struct reqsign_keystore *ks)
{
    struct reqsign_key_record r, dup;
    struct reqsign_error err;

    make_record(1, &r);
    insert_ok(b->name, ks, &r);

    /* Same keyid, another public key. */
    make_record(2, &dup);
    memcpy(dup.keyid, r.keyid, sizeof(dup.keyid));
    reqsign_error_clear(&err);
    cr_assert_eq(reqsign_keystore_insert(ks, &dup, &err), REQSIGN_E_CONFLICT, "[%s]", b->name);
    cr_assert_not_null(strstr(err.message, "keyid"), "[%s] %s", b->name, err.message);
    cr_assert_null(strstr(err.message, "public key"), "[%s] %s", b->name, err.message);

    /* Same public key, another keyid. */
    make_record(3, &dup);
    memcpy(dup.public_key, r.public_key, sizeof(dup.public_key));
    reqsign_error_clear(&err);
    cr_assert_eq(reqsign_keystore_insert(ks, &dup, &err), REQSIGN_E_CONFLICT, "[%s]", b->name);
    cr_assert_not_null(strstr(err.message, "public key"), "[%s] %s", b->name, err.message);
    cr_assert_null(strstr(err.message, "keyid"), "[%s] %s", b->name, err.message);

    /* Revoked keys still conflict. */
    cr_assert_eq(reqsign_keystore_revoke(ks, r.keyid, strlen(r.keyid), 5, NULL), REQSIGN_OK);
    reqsign_error_clear(&err);
    cr_assert_eq(reqsign_keystore_insert(ks, &dup, &err), REQSIGN_E_CONFLICT);

    /* The original is untouched and nothing else got in. */
    struct reqsign_key_record got[4];
    size_t n = 99;
    cr_assert_eq(reqsign_keystore_list(ks, NULL, 4, got, &n, NULL), REQSIGN_OK);
    cr_assert_eq(n, 1, "[%s] %zu rows", b->name, n);
    cr_assert_str_eq(got[0].label, r.label);
}

STORE_TEST(conflict_names_keyid_or_public_key, backends, N_BACKENDS)

static void c_list_pagination(const struct backend *b, struct reqsign_keystore *ks)
{
    static struct reqsign_key_record page[REQSIGN_KEYSTORE_PAGE_IN_MAX];
    struct reqsign_key_record r;
    struct reqsign_error err;
    size_t n;

    /* Insert in a scrambled order; list must come back sorted. */
    for (int i = 0; i < 250; i++) {
        make_record((i * 97) % 250, &r);
        insert_ok(b->name, ks, &r);
    }
    const size_t want[] = {100, 100, 50, 0};
    char after[REQSIGN_KEYID_IN_MAX + 1] = "";
    int next = 0;
    for (size_t p = 0; p < sizeof(want) / sizeof(want[0]); p++) {
        reqsign_error_clear(&err);
        cr_assert_eq(reqsign_keystore_list(ks, p == 0 ? NULL : after, 100, page, &n, &err),
                     REQSIGN_OK, "[%s] %s", b->name, err.message);
        cr_assert_eq(n, want[p], "[%s] page %zu: %zu keys", b->name, p, n);
        for (size_t i = 0; i < n; i++) {
            make_record(next++, &r);
            assert_same(b->name, &r, &page[i]);
        }
        if (n > 0)
            memcpy(after, page[n - 1].keyid, sizeof(after));
    }
    cr_assert_eq(next, 250);

    /* After a cursor that is not a keyid: strictly greater. */
    cr_assert_eq(reqsign_keystore_list(ks, "key-00041x", 3, page, &n, NULL), REQSIGN_OK);
    cr_assert_eq(n, 3);
    cr_assert_str_eq(page[0].keyid, "key-00042");
    cr_assert_str_eq(page[2].keyid, "key-00044");
    /* After the exact keyid. */
    cr_assert_eq(reqsign_keystore_list(ks, "key-00042", 1, page, &n, NULL), REQSIGN_OK);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(page[0].keyid, "key-00043");
    /* "" is the first page. */
    cr_assert_eq(reqsign_keystore_list(ks, "", 1, page, &n, NULL), REQSIGN_OK);
    cr_assert_str_eq(page[0].keyid, "key-00000");
    /* Past the end. */
    cr_assert_eq(reqsign_keystore_list(ks, "zzz", 10, page, &n, NULL), REQSIGN_OK);
    cr_assert_eq(n, 0);

    /* Limits: 0 gives nothing; above the page maximum is clamped to it. */
    n = 7;
    cr_assert_eq(reqsign_keystore_list(ks, NULL, 0, page, &n, NULL), REQSIGN_OK);
    cr_assert_eq(n, 0);
    cr_assert_eq(reqsign_keystore_list(ks, NULL, 1000000, page, &n, NULL), REQSIGN_OK);
    cr_assert_eq(n, 250);
    /* Bad arguments. */
    cr_assert_eq(reqsign_keystore_list(ks, NULL, 10, page, NULL, NULL), REQSIGN_E_INVALID_ARG);
    cr_assert_eq(reqsign_keystore_list(ks, NULL, 10, NULL, &n, NULL), REQSIGN_E_INVALID_ARG);
}

STORE_TEST(list_pagination, backends, N_BACKENDS)

static void c_list_limit_clamped_to_page_max(const struct backend *b, struct reqsign_keystore *ks)
{
    static struct reqsign_key_record page[REQSIGN_KEYSTORE_PAGE_IN_MAX + 10];
    struct reqsign_key_record r;
    for (int i = 0; i < REQSIGN_KEYSTORE_PAGE_IN_MAX + 5; i++) {
        make_record(i, &r);
        insert_ok(b->name, ks, &r);
    }
    size_t n = 0;
    cr_assert_eq(reqsign_keystore_list(ks, NULL, REQSIGN_KEYSTORE_PAGE_IN_MAX + 10, page, &n, NULL),
                 REQSIGN_OK);
    cr_assert_eq(n, REQSIGN_KEYSTORE_PAGE_IN_MAX, "[%s] %zu", b->name, n);
    cr_assert_eq(reqsign_keystore_list(ks, page[n - 1].keyid, 100, page, &n, NULL), REQSIGN_OK);
    cr_assert_eq(n, 5);
}

STORE_TEST(list_limit_clamped_to_page_max, backends, N_BACKENDS)

static void c_revoke_keeps_first_time(const struct backend *b, struct reqsign_keystore *ks)
{
    struct reqsign_key_record r, got;
    struct reqsign_error err;

    make_record(7, &r);
    insert_ok(b->name, ks, &r);
    make_record(8, &r);
    insert_ok(b->name, ks, &r);
    cr_assert_eq(reqsign_keystore_revoke(ks, "key-00007", 9, 1000, NULL), REQSIGN_OK);
    cr_assert_eq(reqsign_keystore_get(ks, "key-00007", 9, &got, NULL), REQSIGN_OK);
    cr_assert_eq(got.revoked_at, 1000);
    /* Second revoke succeeds and keeps the first time. */
    cr_assert_eq(reqsign_keystore_revoke(ks, "key-00007", 9, 2000, NULL), REQSIGN_OK);
    cr_assert_eq(reqsign_keystore_get(ks, "key-00007", 9, &got, NULL), REQSIGN_OK);
    cr_assert_eq(got.revoked_at, 1000, "[%s] %lld", b->name, (long long)got.revoked_at);
    /* Others untouched. */
    cr_assert_eq(reqsign_keystore_get(ks, "key-00008", 9, &got, NULL), REQSIGN_OK);
    cr_assert_eq(got.revoked_at, 0);
    /* Unknown key. */
    reqsign_error_clear(&err);
    cr_assert_eq(reqsign_keystore_revoke(ks, "key-00009", 9, 1000, &err), REQSIGN_E_KEY_UNKNOWN);
    /* The keyid is pointer + length: a longer buffer does not matter. */
    cr_assert_eq(reqsign_keystore_revoke(ks, "key-00008xyz", 9, 1500, NULL), REQSIGN_OK);
    cr_assert_eq(reqsign_keystore_get(ks, "key-00008", 9, &got, NULL), REQSIGN_OK);
    cr_assert_eq(got.revoked_at, 1500);
    /* 0 means "not revoked", so it is not a revocation time. */
    cr_assert_eq(reqsign_keystore_revoke(ks, "key-00007", 9, 0, NULL), REQSIGN_E_INVALID_ARG);
}

STORE_TEST(revoke_keeps_first_time, backends, N_BACKENDS)

static void c_unknown_and_bad_keyids(const struct backend *b, struct reqsign_keystore *ks)
{
    struct reqsign_key_record r, got;
    struct reqsign_error err;
    make_record(1, &r);
    insert_ok(b->name, ks, &r);

    memset(&got, 0xa5, sizeof(got));
    reqsign_error_clear(&err);
    cr_assert_eq(reqsign_keystore_get(ks, "key-00002", 9, &got, &err), REQSIGN_E_KEY_UNKNOWN);
    cr_assert_eq(err.code, REQSIGN_E_KEY_UNKNOWN);
    cr_assert_eq(got.keyid[0], '\0', "output cleared on failure");
    cr_assert_eq(got.created_at, 0);
    char longid[REQSIGN_KEYID_IN_MAX + 2];
    memset(longid, 'a', sizeof(longid));
    const struct {
        const char *keyid;
        size_t len;
        enum reqsign_status want;
    } gets[] = {
        /* A prefix or an extension of a keyid is another keyid. */
        {"key-0000", 8, REQSIGN_E_KEY_UNKNOWN},
        {"key-000011", 10, REQSIGN_E_KEY_UNKNOWN},
        {"key-00001\0", 10, REQSIGN_E_KEY_UNKNOWN},
        {"key-000011", 9, REQSIGN_OK}, /* pointer + length */
        /* Lengths. */
        {longid, sizeof(longid), REQSIGN_E_INVALID_ARG},
        {longid, REQSIGN_KEYID_IN_MAX, REQSIGN_E_KEY_UNKNOWN},
        {"", 0, REQSIGN_E_INVALID_ARG},
        {NULL, 3, REQSIGN_E_INVALID_ARG},
    };
    for (size_t i = 0; i < sizeof(gets) / sizeof(gets[0]); i++)
        cr_assert_eq(reqsign_keystore_get(ks, gets[i].keyid, gets[i].len, &got, NULL), gets[i].want,
                     "[%s] get case %zu", b->name, i);
    cr_assert_eq(reqsign_keystore_get(ks, "key-00001", 9, NULL, NULL), REQSIGN_E_INVALID_ARG);
}

STORE_TEST(unknown_and_bad_keyids, backends, N_BACKENDS)

static void c_insert_validates_records(const struct backend *b, struct reqsign_keystore *ks)
{
    struct reqsign_key_record r;
    struct reqsign_error err;
    int i = 0;
#define BAD(mutation)                                                                              \
    do {                                                                                           \
        make_record(++i, &r);                                                                      \
        mutation;                                                                                  \
        reqsign_error_clear(&err);                                                                 \
        cr_assert_eq(reqsign_keystore_insert(ks, &r, &err), REQSIGN_E_INVALID_ARG,                 \
                     "[%s] %s accepted", b->name, #mutation);                                      \
    } while (0)
    BAD(r.keyid[0] = '\0');
    BAD(memset(r.keyid, 'a', sizeof(r.keyid))); /* no NUL: 257 characters */
    BAD(r.keyid[3] = '\n');
    BAD(r.keyid[3] = (char)0xc3);
    BAD(memset(r.label, 'a', sizeof(r.label)));   /* 129 bytes */
    BAD(memset(r.scopes, 'a', sizeof(r.scopes))); /* no NUL */
    BAD(memset(r.scopes, 'a', REQSIGN_SCOPE_IN_MAX + 1); r.scopes[REQSIGN_SCOPE_IN_MAX + 1] = '\0');
    BAD(r.scopes[2] = '\t');
    BAD(r.created_at = -1);
#undef BAD
    cr_assert_eq(reqsign_keystore_insert(ks, NULL, NULL), REQSIGN_E_INVALID_ARG);
    size_t n = 1;
    struct reqsign_key_record page[4];
    cr_assert_eq(reqsign_keystore_list(ks, NULL, 4, page, &n, NULL), REQSIGN_OK);
    cr_assert_eq(n, 0, "[%s] an invalid record got in", b->name);
}

STORE_TEST(insert_validates_records, backends, N_BACKENDS)

Test(keystore, reopen_persists)
{
    FOR_EACH_BACKEND(b)
    {
        char *loc = b->new_location();
        struct reqsign_keystore *ks = open_or_die(b, loc);
        struct reqsign_key_record r, got;
        make_record(3, &r);
        r.expires_at = 1900000000;
        insert_ok(b->name, ks, &r);
        cr_assert_eq(reqsign_keystore_revoke(ks, r.keyid, strlen(r.keyid), 1800000000, NULL),
                     REQSIGN_OK);
        r.revoked_at = 1800000000;
        reqsign_keystore_free(ks);

        ks = open_or_die(b, loc);
        cr_assert_eq(reqsign_keystore_get(ks, r.keyid, strlen(r.keyid), &got, NULL), REQSIGN_OK);
        assert_same(b->name, &r, &got);
        reqsign_keystore_free(ks);
        free(loc);
    }
}

struct ins_arg {
    const struct backend *b;
    struct reqsign_keystore *ks;
    int base;
    int failures;
};

#define INS_THREADS 4
#define INS_PER_THREAD 200

static void *ins_thread(void *p)
{
    struct ins_arg *a = p;
    for (int i = 0; i < INS_PER_THREAD; i++) {
        struct reqsign_key_record r;
        struct reqsign_error err;
        make_record(a->base + i, &r);
        reqsign_error_clear(&err);
        if (reqsign_keystore_insert(a->ks, &r, &err) != REQSIGN_OK) {
            fprintf(stderr, "[%s] insert %s: %s\n", a->b->name, r.keyid, err.message);
            a->failures++;
        }
        /* Readers run alongside the writers. */
        struct reqsign_key_record got;
        if (reqsign_keystore_get(a->ks, r.keyid, strlen(r.keyid), &got, &err) != REQSIGN_OK)
            a->failures++;
    }
    return NULL;
}

static void c_concurrent_inserts(const struct backend *b, struct reqsign_keystore *ks)
{
    static struct reqsign_key_record page[REQSIGN_KEYSTORE_PAGE_IN_MAX];
    pthread_t t[INS_THREADS];
    struct ins_arg args[INS_THREADS];
    for (int i = 0; i < INS_THREADS; i++) {
        args[i] = (struct ins_arg){b, ks, i * INS_PER_THREAD, 0};
        cr_assert_eq(pthread_create(&t[i], NULL, ins_thread, &args[i]), 0);
    }
    for (int i = 0; i < INS_THREADS; i++) {
        pthread_join(t[i], NULL);
        cr_assert_eq(args[i].failures, 0, "[%s] thread %d", b->name, i);
    }
    size_t n = 0;
    cr_assert_eq(reqsign_keystore_list(ks, NULL, REQSIGN_KEYSTORE_PAGE_IN_MAX, page, &n, NULL),
                 REQSIGN_OK);
    cr_assert_eq(n, INS_THREADS * INS_PER_THREAD, "[%s] %zu keys", b->name, n);
    for (int i = 0; i < INS_THREADS * INS_PER_THREAD; i++) {
        struct reqsign_key_record r;
        make_record(i, &r);
        assert_same(b->name, &r, &page[i]);
    }
}

STORE_TEST(concurrent_inserts, backends, N_BACKENDS)

/* ---- accounts and the key lifecycle: every store implements them ---- */

static void make_account(const char *id, struct reqsign_account *a)
{
    memset(a, 0, sizeof(*a));
    snprintf(a->id, sizeof(a->id), "%s", id);
    snprintf(a->name, sizeof(a->name), "name of %s", id);
    snprintf(a->allowed_scopes, sizeof(a->allowed_scopes), "payments:write orders:read");
    a->key_limit = 3;
    a->max_key_lifetime_s = 86400;
    a->created_at = 1700000000;
}

static void c_accounts_round_trip_list_disable(const struct backend *b, struct reqsign_keystore *ks)
{
    struct reqsign_error err;
    reqsign_error_clear(&err);
    struct reqsign_account a, got, page[4];
    size_t n = 0;
    /* the migration made the operator's account */
    cr_assert_eq(reqsign_keystore_account_get(ks, REQSIGN_ACCOUNT_OPERATOR, &got, &err), REQSIGN_OK,
                 "[%s] %s", b->name, err.message);
    cr_assert_str_eq(got.allowed_scopes, "*");
    cr_assert_eq(got.disabled_at, 0);

    make_account("acct_b", &a);
    cr_assert_eq(reqsign_keystore_account_insert(ks, &a, &err), REQSIGN_OK, "%s", err.message);
    cr_assert_eq(reqsign_keystore_account_insert(ks, &a, &err), REQSIGN_E_CONFLICT);
    make_account("acct_a", &a);
    a.max_key_lifetime_s = 0;
    cr_assert_eq(reqsign_keystore_account_insert(ks, &a, &err), REQSIGN_OK, "%s", err.message);
    cr_assert_eq(reqsign_keystore_account_get(ks, "acct_a", &got, &err), REQSIGN_OK);
    cr_assert_str_eq(got.name, "name of acct_a");
    cr_assert_str_eq(got.allowed_scopes, "payments:write orders:read");
    cr_assert_eq(got.key_limit, 3);
    cr_assert_eq(got.max_key_lifetime_s, 0);
    cr_assert_eq(got.created_at, 1700000000);
    cr_assert_eq(reqsign_keystore_account_get(ks, "acct_nope", &got, &err), REQSIGN_E_NOT_FOUND);

    cr_assert_eq(reqsign_keystore_account_list(ks, NULL, 2, page, &n, &err), REQSIGN_OK);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(page[0].id, "acct_a");
    cr_assert_str_eq(page[1].id, "acct_b");
    cr_assert_eq(reqsign_keystore_account_list(ks, "acct_b", 4, page, &n, &err), REQSIGN_OK);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(page[0].id, REQSIGN_ACCOUNT_OPERATOR);

    cr_assert_eq(reqsign_keystore_account_set_disabled(ks, "acct_a", 1700000100, &err), REQSIGN_OK);
    cr_assert_eq(reqsign_keystore_account_get(ks, "acct_a", &got, &err), REQSIGN_OK);
    cr_assert_eq(got.disabled_at, 1700000100);
    cr_assert_eq(reqsign_keystore_account_set_disabled(ks, "acct_a", 0, &err), REQSIGN_OK);
    cr_assert_eq(reqsign_keystore_account_get(ks, "acct_a", &got, &err), REQSIGN_OK);
    cr_assert_eq(got.disabled_at, 0);
    cr_assert_eq(reqsign_keystore_account_set_disabled(ks, "acct_nope", 5, &err),
                 REQSIGN_E_NOT_FOUND);
}

STORE_TEST(accounts_round_trip_list_disable, backends, N_BACKENDS)

static void c_key_lifecycle_fields(const struct backend *b, struct reqsign_keystore *ks)
{
    struct reqsign_error err;
    reqsign_error_clear(&err);
    struct reqsign_account a;
    struct reqsign_key_record r, r2, got;
    make_account("acct_a", &a);
    cr_assert_eq(reqsign_keystore_account_insert(ks, &a, &err), REQSIGN_OK);

    /* a key without an account goes to the operator's */
    make_record(1, &r);
    insert_ok(b->name, ks, &r);
    cr_assert_eq(reqsign_keystore_get(ks, r.keyid, strlen(r.keyid), &got, &err), REQSIGN_OK);
    cr_assert_str_eq(got.account, REQSIGN_ACCOUNT_OPERATOR);
    cr_assert_eq(got.disabled_at, 0);
    cr_assert_eq(got.last_used_at, 0);
    cr_assert_str_eq(got.replaces, "");

    make_record(2, &r2);
    snprintf(r2.account, sizeof(r2.account), "acct_a");
    snprintf(r2.replaces, sizeof(r2.replaces), "%s", r.keyid);
    insert_ok(b->name, ks, &r2);
    cr_assert_eq(reqsign_keystore_get(ks, r2.keyid, strlen(r2.keyid), &got, &err), REQSIGN_OK);
    cr_assert_str_eq(got.account, "acct_a");
    cr_assert_str_eq(got.replaces, r.keyid);
    assert_same(b->name, &r2, &got);

    /* a key of an unknown account is refused */
    struct reqsign_key_record r3;
    make_record(3, &r3);
    snprintf(r3.account, sizeof(r3.account), "acct_nope");
    cr_assert_eq(reqsign_keystore_insert(ks, &r3, &err), REQSIGN_E_NOT_FOUND, "%s", err.message);

    /* update: disable, successor, expiry */
    got.disabled_at = 1700000200;
    snprintf(got.replaced_by, sizeof(got.replaced_by), "key-00009");
    got.expires_at = 1800000000;
    cr_assert_eq(reqsign_keystore_update(ks, &got, &err), REQSIGN_OK, "%s", err.message);
    cr_assert_eq(reqsign_keystore_get(ks, r2.keyid, strlen(r2.keyid), &got, &err), REQSIGN_OK);
    cr_assert_eq(got.disabled_at, 1700000200);
    cr_assert_str_eq(got.replaced_by, "key-00009");
    cr_assert_eq(got.expires_at, 1800000000);
    cr_assert_str_eq(got.replaces, r.keyid, "untouched fields stay");
    /* the account's state shows through */
    cr_assert_eq(got.account_disabled_at, 0);
    cr_assert_eq(reqsign_keystore_account_set_disabled(ks, "acct_a", 1700000300, &err), REQSIGN_OK);
    cr_assert_eq(reqsign_keystore_get(ks, r2.keyid, strlen(r2.keyid), &got, &err), REQSIGN_OK);
    cr_assert_eq(got.account_disabled_at, 1700000300);

    /* revocation with a reason is final: neither time nor reason change */
    got.revoked_at = 1700000400;
    snprintf(got.revoke_reason, sizeof(got.revoke_reason), "compromised");
    cr_assert_eq(reqsign_keystore_update(ks, &got, &err), REQSIGN_OK);
    got.revoked_at = 1700000500;
    snprintf(got.revoke_reason, sizeof(got.revoke_reason), "superseded");
    got.disabled_at = 0;
    cr_assert_eq(reqsign_keystore_update(ks, &got, &err), REQSIGN_OK);
    cr_assert_eq(reqsign_keystore_get(ks, r2.keyid, strlen(r2.keyid), &got, &err), REQSIGN_OK);
    cr_assert_eq(got.revoked_at, 1700000400);
    cr_assert_str_eq(got.revoke_reason, "compromised");
    cr_assert_eq(got.disabled_at, 0);

    struct reqsign_key_record ghost;
    make_record(7, &ghost);
    cr_assert_eq(reqsign_keystore_update(ks, &ghost, &err), REQSIGN_E_KEY_UNKNOWN);
}

STORE_TEST(key_lifecycle_fields, backends, N_BACKENDS)

static void c_count_touch_and_filtered_lists(const struct backend *b, struct reqsign_keystore *ks)
{
    struct reqsign_error err;
    reqsign_error_clear(&err);
    struct reqsign_account a;
    make_account("acct_a", &a);
    cr_assert_eq(reqsign_keystore_account_insert(ks, &a, &err), REQSIGN_OK);
    /* keys 0..4 in acct_a: 3 revoked, 4 expired; 5..6 in the operator's */
    for (int i = 0; i < 7; i++) {
        struct reqsign_key_record r;
        make_record(i, &r);
        if (i < 5)
            snprintf(r.account, sizeof(r.account), "acct_a");
        if (i == 3)
            r.revoked_at = 1700000050;
        if (i == 4)
            r.expires_at = 1700000100;
        if (i == 2)
            r.disabled_at = 1700000010;
        insert_ok(b->name, ks, &r);
    }
    int64_t n = -1;
    cr_assert_eq(reqsign_keystore_count_active(ks, "acct_a", 1700000099, &n, &err), REQSIGN_OK);
    cr_assert_eq(n, 4, "disabled keys count, revoked ones do not");
    cr_assert_eq(reqsign_keystore_count_active(ks, "acct_a", 1700000100, &n, &err), REQSIGN_OK);
    cr_assert_eq(n, 3, "expired keys do not count");

    /* touch: only ever forward */
    cr_assert_eq(reqsign_keystore_touch(ks, "key-00000", 1700001000, "backend-1", &err), REQSIGN_OK,
                 "%s", err.message);
    cr_assert_eq(reqsign_keystore_touch(ks, "key-00000", 1700000900, "backend-2", &err),
                 REQSIGN_OK);
    cr_assert_eq(reqsign_keystore_touch(ks, "key-00099", 1700000900, "x", &err), REQSIGN_OK,
                 "an unknown key is no failure");
    struct reqsign_key_record got;
    cr_assert_eq(reqsign_keystore_get(ks, "key-00000", 9, &got, &err), REQSIGN_OK);
    cr_assert_eq(got.last_used_at, 1700001000);
    cr_assert_str_eq(got.last_used_by, "backend-1");

    struct reqsign_key_record page[10];
    size_t cnt = 0;
    struct reqsign_key_filter f = {.account = "acct_a"};
    cr_assert_eq(reqsign_keystore_list_filter(ks, &f, NULL, 10, page, &cnt, &err), REQSIGN_OK);
    cr_assert_eq(cnt, 5);
    cr_assert_eq(reqsign_keystore_list_filter(ks, &f, "key-00002", 2, page, &cnt, &err),
                 REQSIGN_OK);
    cr_assert_eq(cnt, 2);
    cr_assert_str_eq(page[0].keyid, "key-00003");
    /* unused since 1700000500: all but key 0 (used at 1700001000) */
    f.unused_before = 1700000500;
    cr_assert_eq(reqsign_keystore_list_filter(ks, &f, NULL, 10, page, &cnt, &err), REQSIGN_OK);
    cr_assert_eq(cnt, 4);
    cr_assert_str_eq(page[0].keyid, "key-00001");
    f.account = NULL;
    cr_assert_eq(reqsign_keystore_list_filter(ks, &f, NULL, 10, page, &cnt, &err), REQSIGN_OK);
    cr_assert_eq(cnt, 6);
    /* created after the cutoff and never used: not "unused for that long" */
    f.unused_before = 1700000002;
    cr_assert_eq(reqsign_keystore_list_filter(ks, &f, NULL, 10, page, &cnt, &err), REQSIGN_OK);
    cr_assert_eq(cnt, 1);
    cr_assert_str_eq(page[0].keyid, "key-00001", "created at 1700000001, never used");
}

STORE_TEST(count_touch_and_filtered_lists, backends, N_BACKENDS)

static void c_enrollment_tokens_single_use(const struct backend *b, struct reqsign_keystore *ks)
{
    struct reqsign_error err;
    reqsign_error_clear(&err);
    struct reqsign_account a;
    char acct[REQSIGN_ACCOUNT_ID_IN_MAX + 1];
    uint8_t h1[32], h2[32], h3[32];
    memset(h1, 1, 32);
    memset(h2, 2, 32);
    memset(h3, 3, 32);
    make_account("acct_a", &a);
    cr_assert_eq(reqsign_keystore_account_insert(ks, &a, &err), REQSIGN_OK);
    cr_assert_eq(reqsign_keystore_enrollment_insert(ks, h1, "acct_a", 100, 200, &err), REQSIGN_OK,
                 "%s", err.message);
    cr_assert_eq(reqsign_keystore_enrollment_insert(ks, h2, "acct_a", 100, 150, &err), REQSIGN_OK);
    cr_assert_eq(reqsign_keystore_enrollment_insert(ks, h1, "acct_a", 100, 200, &err),
                 REQSIGN_E_CONFLICT);
    cr_assert_eq(reqsign_keystore_enrollment_insert(ks, h3, "acct_nope", 100, 200, &err),
                 REQSIGN_E_NOT_FOUND, "%s", err.message);

    cr_assert_eq(reqsign_keystore_enrollment_consume(ks, h1, 199, acct, &err), REQSIGN_OK, "%s",
                 err.message);
    cr_assert_str_eq(acct, "acct_a");
    cr_assert_eq(reqsign_keystore_enrollment_consume(ks, h1, 199, acct, &err),
                 REQSIGN_E_ENROLLMENT_INVALID, "used");
    cr_assert_str_eq(acct, "");
    cr_assert_eq(reqsign_keystore_enrollment_consume(ks, h2, 150, acct, &err),
                 REQSIGN_E_ENROLLMENT_INVALID, "expired");
    cr_assert_eq(reqsign_keystore_enrollment_consume(ks, h3, 1, acct, &err),
                 REQSIGN_E_ENROLLMENT_INVALID, "unknown");
    /* a disabled account's token is refused and not used up: it works after enable */
    uint8_t h4[32];
    memset(h4, 4, 32);
    cr_assert_eq(reqsign_keystore_enrollment_insert(ks, h4, "acct_a", 100, 200, &err), REQSIGN_OK);
    cr_assert_eq(reqsign_keystore_account_set_disabled(ks, "acct_a", 150, &err), REQSIGN_OK);
    cr_assert_eq(reqsign_keystore_enrollment_consume(ks, h4, 160, acct, &err),
                 REQSIGN_E_ENROLLMENT_INVALID, "[%s] account disabled", b->name);
    cr_assert_eq(reqsign_keystore_account_set_disabled(ks, "acct_a", 0, &err), REQSIGN_OK);
    cr_assert_eq(reqsign_keystore_enrollment_consume(ks, h4, 170, acct, &err), REQSIGN_OK,
                 "[%s] the token after the account's enable: %s", b->name, err.message);
    cr_assert_str_eq(acct, "acct_a");
}

STORE_TEST(enrollment_tokens_single_use, backends, N_BACKENDS)

static void c_audit_append_only_and_filtered(const struct backend *b, struct reqsign_keystore *ks)
{
    struct reqsign_error err;
    reqsign_error_clear(&err);
    struct reqsign_audit_event ev, out[8];
    size_t n = 0;
    static const char *const accts[] = {"acct_a", "acct_b", "acct_operator"};
    static const char *const targets[] = {"", "", "acct_a"};
    for (int i = 0; i < 6; i++) {
        memset(&ev, 0, sizeof(ev));
        ev.time = 1700000000 + i;
        snprintf(ev.actor, sizeof(ev.actor), "key-%d", i);
        snprintf(ev.account, sizeof(ev.account), "%s", accts[i % 3]);
        snprintf(ev.action, sizeof(ev.action), "key.create");
        snprintf(ev.target, sizeof(ev.target), "t-%d", i);
        snprintf(ev.target_account, sizeof(ev.target_account), "%s", targets[i % 3]);
        snprintf(ev.outcome, sizeof(ev.outcome), i == 1 ? "scope" : "ok");
        snprintf(ev.source, sizeof(ev.source), "127.0.0.1");
        snprintf(ev.nonce, sizeof(ev.nonce), "nonce-%d", i);
        cr_assert_eq(reqsign_keystore_audit_append(ks, &ev, &err), REQSIGN_OK, "%s", err.message);
    }
    cr_assert_eq(reqsign_keystore_audit_list(ks, NULL, 0, 8, out, &n, &err), REQSIGN_OK);
    cr_assert_eq(n, 6);
    cr_assert_lt(out[0].seq, out[1].seq);
    cr_assert_str_eq(out[1].outcome, "scope");
    cr_assert_str_eq(out[1].nonce, "nonce-1");
    cr_assert_eq(out[5].time, 1700000005);
    cr_assert_eq(reqsign_keystore_audit_list(ks, NULL, out[3].seq, 8, out, &n, &err), REQSIGN_OK);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(out[0].actor, "key-4");
    /* acct_a sees its own events and those about it */
    cr_assert_eq(reqsign_keystore_audit_list(ks, "acct_a", 0, 8, out, &n, &err), REQSIGN_OK);
    cr_assert_eq(n, 4);
    cr_assert_str_eq(out[1].actor, "key-2");
    cr_assert_eq(reqsign_keystore_audit_list(ks, "acct_b", 0, 8, out, &n, &err), REQSIGN_OK);
    cr_assert_eq(n, 2);
}

STORE_TEST(audit_append_only_and_filtered, backends, N_BACKENDS)

/* The key limit holds under concurrency: threads racing to insert into one
 * account with key_limit 3 (each a batch of limited inserts, started
 * together) end with exactly 3 keys; every other insert gets KEY_LIMIT. */
#define LIM_THREADS 8
#define LIM_PER_THREAD 3
#define LIM_MAX 3

struct lim_arg {
    struct reqsign_keystore *ks;
    pthread_barrier_t *start;
    int base, ok, limited, other;
};

static void *lim_thread(void *p)
{
    struct lim_arg *a = p;
    /* each thread holds a connection at once, so the pool has one per thread
     * when the race starts (a store opening its connections one by one would
     * otherwise serialise the racers) */
    struct reqsign_key_record warm;
    pthread_barrier_wait(a->start);
    if (reqsign_keystore_get(a->ks, "key-00900", 9, &warm, NULL) != REQSIGN_OK)
        a->other++; /* key-00900 exists (inserted revoked before the race) */
    pthread_barrier_wait(a->start);
    for (int i = 0; i < LIM_PER_THREAD; i++) {
        struct reqsign_key_record r;
        struct reqsign_error err;
        make_record(a->base + i, &r);
        snprintf(r.account, sizeof(r.account), "acct_lim");
        reqsign_error_clear(&err);
        enum reqsign_status st =
            reqsign_keystore_insert_limited(a->ks, &r, 1700000100, LIM_MAX, &err);
        if (st == REQSIGN_OK)
            a->ok++;
        else if (st == REQSIGN_E_KEY_LIMIT)
            a->limited++;
        else {
            fprintf(stderr, "insert_limited %s: %s\n", r.keyid, err.message);
            a->other++;
        }
    }
    return NULL;
}

static void c_insert_limited_atomic(const struct backend *b, struct reqsign_keystore *ks)
{
    struct reqsign_error err;
    reqsign_error_clear(&err);
    struct reqsign_account acct;
    make_account("acct_lim", &acct);
    cr_assert_eq(reqsign_keystore_account_insert(ks, &acct, &err), REQSIGN_OK, "%s", err.message);
    /* revoked and expired keys do not count; a disabled one does */
    struct reqsign_key_record r;
    make_record(900, &r);
    snprintf(r.account, sizeof(r.account), "acct_lim");
    r.revoked_at = 1700000050;
    cr_assert_eq(reqsign_keystore_insert_limited(ks, &r, 1700000100, 1, &err), REQSIGN_OK,
                 "[%s] %s", b->name, err.message);
    make_record(901, &r);
    snprintf(r.account, sizeof(r.account), "acct_lim");
    r.expires_at = 1700000100; /* expired at now */
    cr_assert_eq(reqsign_keystore_insert_limited(ks, &r, 1700000100, 1, &err), REQSIGN_OK,
                 "[%s] %s", b->name, err.message);
    make_record(902, &r);
    snprintf(r.account, sizeof(r.account), "acct_none");
    cr_assert_eq(reqsign_keystore_insert_limited(ks, &r, 1700000100, 5, &err), REQSIGN_E_NOT_FOUND,
                 "[%s] %s", b->name, err.message);
    cr_assert_eq(reqsign_keystore_insert_limited(ks, &r, 1700000100, 0, &err),
                 REQSIGN_E_INVALID_ARG);

    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, LIM_THREADS);
    pthread_t t[LIM_THREADS];
    struct lim_arg args[LIM_THREADS];
    for (int i = 0; i < LIM_THREADS; i++) {
        args[i] = (struct lim_arg){ks, &start, 1000 + i * LIM_PER_THREAD, 0, 0, 0};
        cr_assert_eq(pthread_create(&t[i], NULL, lim_thread, &args[i]), 0);
    }
    int ok = 0, limited = 0, other = 0;
    for (int i = 0; i < LIM_THREADS; i++) {
        pthread_join(t[i], NULL);
        ok += args[i].ok;
        limited += args[i].limited;
        other += args[i].other;
    }
    pthread_barrier_destroy(&start);
    cr_assert_eq(other, 0, "[%s] %d inserts failed otherwise", b->name, other);
    cr_assert_eq(ok, LIM_MAX, "[%s] %d limited inserts succeeded, the limit is %d", b->name, ok,
                 LIM_MAX);
    cr_assert_eq(limited, LIM_THREADS * LIM_PER_THREAD - LIM_MAX);
    int64_t n = 0;
    cr_assert_eq(reqsign_keystore_count_active(ks, "acct_lim", 1700000100, &n, &err), REQSIGN_OK);
    cr_assert_eq(n, LIM_MAX, "[%s] %lld active keys", b->name, (long long)n);
    /* a disabled key still counts */
    struct reqsign_key_record page[16];
    size_t got = 0;
    struct reqsign_key_filter f = {.account = "acct_lim"};
    cr_assert_eq(reqsign_keystore_list_filter(ks, &f, NULL, 16, page, &got, &err), REQSIGN_OK);
    for (size_t k = 0; k < got; k++)
        if (page[k].revoked_at == 0 && page[k].expires_at == 0) {
            page[k].disabled_at = 1700000090;
            cr_assert_eq(reqsign_keystore_update(ks, &page[k], &err), REQSIGN_OK);
            break;
        }
    make_record(903, &r);
    snprintf(r.account, sizeof(r.account), "acct_lim");
    cr_assert_eq(reqsign_keystore_insert_limited(ks, &r, 1700000100, LIM_MAX, &err),
                 REQSIGN_E_KEY_LIMIT, "[%s]", b->name);
    /* one over the limit, as a rotation may go during its grace period */
    cr_assert_eq(reqsign_keystore_insert_limited(ks, &r, 1700000100, LIM_MAX + 1, &err), REQSIGN_OK,
                 "[%s] %s", b->name, err.message);
}

STORE_TEST(insert_limited_atomic, backends, N_BACKENDS)

/* ---- SQLite only ---- */

static char *sqlite_path(void)
{
    return sqlite_location();
}

/* Direct SQLite access for the checks below. The test links only against the
 * reqsign libraries (tests/meson.build gives it keystore_sqlite_dep, which
 * does not export sqlite3), so the few functions needed are taken from the
 * libsqlite3 the SQLite store library already loaded. */
#define RAW_FUNCS(X)                                                                               \
    X(int, sqlite3_open_v2, (const char *, sqlite3 **, int, const char *))                         \
    X(int, sqlite3_busy_timeout, (sqlite3 *, int))                                                 \
    X(int, sqlite3_close, (sqlite3 *))                                                             \
    X(int, sqlite3_exec,                                                                           \
      (sqlite3 *, const char *, int (*)(void *, int, char **, char **), void *, char **))          \
    X(int, sqlite3_prepare_v2, (sqlite3 *, const char *, int, sqlite3_stmt **, const char **))     \
    X(int, sqlite3_step, (sqlite3_stmt *))                                                         \
    X(int, sqlite3_finalize, (sqlite3_stmt *))                                                     \
    X(sqlite3_int64, sqlite3_column_int64, (sqlite3_stmt *, int))                                  \
    X(int, sqlite3_column_int, (sqlite3_stmt *, int))                                              \
    X(const unsigned char *, sqlite3_column_text, (sqlite3_stmt *, int))                           \
    X(const char *, sqlite3_errmsg, (sqlite3 *))

#define RAW_DECL(ret, name, args) static ret(*raw_##name) args;
RAW_FUNCS(RAW_DECL)
#undef RAW_DECL

static void raw_init(void)
{
    void *self = dlopen(NULL, RTLD_NOW);
    cr_assert_not_null(self, "%s", dlerror());
#define RAW_LOAD(ret, name, args)                                                                  \
    do {                                                                                           \
        void *sym = dlsym(self, #name);                                                            \
        cr_assert_not_null(sym, "%s: %s", #name, dlerror());                                       \
        memcpy(&raw_##name, &sym, sizeof(sym));                                                    \
    } while (0);
    RAW_FUNCS(RAW_LOAD)
#undef RAW_LOAD
}

#define sqlite3_open_v2 raw_sqlite3_open_v2
#define sqlite3_busy_timeout raw_sqlite3_busy_timeout
#define sqlite3_close raw_sqlite3_close
#define sqlite3_exec raw_sqlite3_exec
#define sqlite3_prepare_v2 raw_sqlite3_prepare_v2
#define sqlite3_step raw_sqlite3_step
#define sqlite3_finalize raw_sqlite3_finalize
#define sqlite3_column_int64 raw_sqlite3_column_int64
#define sqlite3_column_int raw_sqlite3_column_int
#define sqlite3_column_text raw_sqlite3_column_text
#define sqlite3_errmsg raw_sqlite3_errmsg

static sqlite3 *raw_open(const char *path)
{
    raw_init();
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    return db;
}

static int64_t raw_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, "%s: %s", sql,
                 sqlite3_errmsg(db));
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW, "%s", sql);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

Test(keystore, sqlite_readonly_sees_writes_and_refuses_writes)
{
    char *path = sqlite_path();
    struct reqsign_error err;
    struct reqsign_key_record r, got;
    struct reqsign_keystore *rw = reqsign_keystore_sqlite_open(path, REQSIGN_KEYSTORE_CREATE, NULL);
    cr_assert_not_null(rw);
    make_record(1, &r);
    insert_ok("sqlite", rw, &r);

    reqsign_error_clear(&err);
    struct reqsign_keystore *ro =
        reqsign_keystore_sqlite_open(path, REQSIGN_KEYSTORE_READONLY, &err);
    cr_assert_not_null(ro, "%s", err.message);
    cr_assert_eq(reqsign_keystore_get(ro, r.keyid, strlen(r.keyid), &got, NULL), REQSIGN_OK);
    assert_same("sqlite", &r, &got);

    /* Writes by the other connection, while the read-only one is open. */
    make_record(2, &r);
    insert_ok("sqlite", rw, &r);
    cr_assert_eq(reqsign_keystore_revoke(rw, "key-00001", 9, 4242, NULL), REQSIGN_OK);
    cr_assert_eq(reqsign_keystore_get(ro, "key-00002", 9, &got, NULL), REQSIGN_OK);
    cr_assert_eq(reqsign_keystore_get(ro, "key-00001", 9, &got, NULL), REQSIGN_OK);
    cr_assert_eq(got.revoked_at, 4242);
    size_t n = 0;
    struct reqsign_key_record page[4];
    cr_assert_eq(reqsign_keystore_list(ro, NULL, 4, page, &n, NULL), REQSIGN_OK);
    cr_assert_eq(n, 2);

    /* A read-only store refuses writes with REQSIGN_E_STORE ("... read-only"). */
    make_record(3, &r);
    reqsign_error_clear(&err);
    cr_assert_eq(reqsign_keystore_insert(ro, &r, &err), REQSIGN_E_STORE);
    cr_assert_not_null(strstr(err.message, "read-only"), "%s", err.message);
    reqsign_error_clear(&err);
    cr_assert_eq(reqsign_keystore_revoke(ro, "key-00002", 9, 5, &err), REQSIGN_E_STORE);
    cr_assert_eq(reqsign_keystore_get(rw, "key-00003", 9, &got, NULL), REQSIGN_E_KEY_UNKNOWN);
    cr_assert_eq(reqsign_keystore_get(rw, "key-00002", 9, &got, NULL), REQSIGN_OK);
    cr_assert_eq(got.revoked_at, 0);

    /* The writer goes away (WAL checkpointed, -wal/-shm removed); a new
     * read-only open still works. */
    reqsign_keystore_free(ro);
    reqsign_keystore_free(rw);
    ro = reqsign_keystore_sqlite_open(path, REQSIGN_KEYSTORE_READONLY, &err);
    cr_assert_not_null(ro, "%s", err.message);
    cr_assert_eq(reqsign_keystore_get(ro, "key-00002", 9, &got, NULL), REQSIGN_OK);
    reqsign_keystore_free(ro);
    free(path);
}

Test(keystore, sqlite_missing_file)
{
    char *path = sqlite_path();
    struct reqsign_error err;
    reqsign_error_clear(&err);
    cr_assert_null(reqsign_keystore_sqlite_open(path, REQSIGN_KEYSTORE_READONLY, &err));
    cr_assert_eq(err.code, REQSIGN_E_IO);
    cr_assert_not_null(strstr(err.message, path), "%s", err.message);
    /* Read-write without CREATE does not create it either. */
    reqsign_error_clear(&err);
    cr_assert_null(reqsign_keystore_sqlite_open(path, 0, &err));
    cr_assert_eq(err.code, REQSIGN_E_IO);
    cr_assert_eq(access(path, F_OK), -1, "nothing was created");
    /* Bad flags. */
    reqsign_error_clear(&err);
    cr_assert_null(reqsign_keystore_sqlite_open(
        path, REQSIGN_KEYSTORE_READONLY | REQSIGN_KEYSTORE_CREATE, &err));
    cr_assert_eq(err.code, REQSIGN_E_INVALID_ARG);
    cr_assert_null(reqsign_keystore_sqlite_open(path, 0x80, NULL));
    cr_assert_null(reqsign_keystore_sqlite_open(NULL, REQSIGN_KEYSTORE_CREATE, NULL));
    /* A read-only open of an empty (unmigrated) file. */
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fclose(f);
    reqsign_error_clear(&err);
    cr_assert_null(reqsign_keystore_sqlite_open(path, REQSIGN_KEYSTORE_READONLY, &err));
    cr_assert_eq(err.code, REQSIGN_E_STORE);
    cr_assert_not_null(strstr(err.message, "schema_version"), "%s", err.message);
    /* A file that is not a database. */
    f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("this is not an SQLite database, not at all, not even close........", f);
    fclose(f);
    reqsign_error_clear(&err);
    cr_assert_null(reqsign_keystore_sqlite_open(path, 0, &err));
    cr_assert_eq(err.code, REQSIGN_E_STORE, "%s", err.message);
    free(path);
}

Test(keystore, sqlite_migrations_idempotent_and_versioned)
{
    char *path = sqlite_path();
    struct reqsign_key_record r;
    struct reqsign_keystore *a = reqsign_keystore_sqlite_open(path, REQSIGN_KEYSTORE_CREATE, NULL);
    cr_assert_not_null(a);
    make_record(1, &r);
    insert_ok("sqlite", a, &r);
    /* A second open while the first is live, then again after both closed. */
    struct reqsign_keystore *b2 = reqsign_keystore_sqlite_open(path, REQSIGN_KEYSTORE_CREATE, NULL);
    cr_assert_not_null(b2);
    reqsign_keystore_free(b2);
    reqsign_keystore_free(a);
    a = reqsign_keystore_sqlite_open(path, 0, NULL);
    cr_assert_not_null(a);
    struct reqsign_key_record got;
    cr_assert_eq(reqsign_keystore_get(a, "key-00001", 9, &got, NULL), REQSIGN_OK);
    reqsign_keystore_free(a);

    sqlite3 *db = raw_open(path);
    cr_assert_eq(raw_int(db, "SELECT count(*) FROM schema_version"), 1);
    cr_assert_eq(raw_int(db, "SELECT version FROM schema_version"), REQSIGN_SQLITE_SCHEMA_VERSION);
    cr_assert_eq(raw_int(db, "SELECT count(*) FROM keys"), 1);
    /* WAL mode is persistent in the file. */
    sqlite3_stmt *st;
    cr_assert_eq(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    cr_assert_str_eq((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    sqlite3_close(db);
    free(path);
}

/* Issue 13: a database made by the previous schema (version 1, exactly what
 * the code before accounts created) keeps working: its keys land in
 * acct_operator, nothing is lost, the new operations work on it. */
Test(keystore, sqlite_migrates_version_1_database)
{
    char *path = sqlite_path();
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    cr_assert_geq(fd, 0);
    close(fd);
    sqlite3 *db = raw_open(path);
    cr_assert_eq(sqlite3_exec(db,
                              "PRAGMA journal_mode = WAL;"
                              "CREATE TABLE schema_version (version INTEGER NOT NULL);"
                              "INSERT INTO schema_version VALUES (1);"
                              "CREATE TABLE keys ("
                              " keyid TEXT PRIMARY KEY,"
                              " public_key BLOB NOT NULL UNIQUE CHECK(length(public_key) = 32),"
                              " label TEXT NOT NULL,"
                              " scopes TEXT NOT NULL,"
                              " created_at INTEGER NOT NULL,"
                              " expires_at INTEGER,"
                              " revoked_at INTEGER);"
                              "INSERT INTO keys VALUES ('old-admin', zeroblob(32), 'admin', "
                              "'keys:admin', 1700000000, NULL, NULL);"
                              "INSERT INTO keys VALUES ('old-revoked', randomblob(32), 'x', "
                              "'payments:write', 1700000001, 1800000000, 1700000500);",
                              NULL, NULL, NULL),
                 SQLITE_OK, "%s", sqlite3_errmsg(db));
    sqlite3_close(db);

    struct reqsign_error err;
    reqsign_error_clear(&err);
    /* a read-only open (a verifying backend) asks for the migration first */
    cr_assert_null(reqsign_keystore_sqlite_open(path, REQSIGN_KEYSTORE_READONLY, &err));
    cr_assert_not_null(strstr(err.message, "older"), "%s", err.message);

    reqsign_error_clear(&err);
    struct reqsign_keystore *ks = reqsign_keystore_sqlite_open(path, 0, &err);
    cr_assert_not_null(ks, "%s", err.message);
    struct reqsign_key_record got;
    cr_assert_eq(reqsign_keystore_get(ks, "old-admin", 9, &got, &err), REQSIGN_OK, "%s",
                 err.message);
    cr_assert_str_eq(got.account, REQSIGN_ACCOUNT_OPERATOR);
    cr_assert_str_eq(got.scopes, "keys:admin");
    cr_assert_eq(got.created_at, 1700000000);
    cr_assert_eq(got.disabled_at, 0);
    cr_assert_eq(got.publish, 0, "an existing key is not published");
    cr_assert_eq(got.account_publish_keys, 0);
    cr_assert_eq(reqsign_keystore_get(ks, "old-revoked", 11, &got, &err), REQSIGN_OK);
    cr_assert_eq(got.revoked_at, 1700000500);
    cr_assert_eq(got.expires_at, 1800000000);
    cr_assert_str_eq(got.account, REQSIGN_ACCOUNT_OPERATOR);
    struct reqsign_account a;
    cr_assert_eq(reqsign_keystore_account_get(ks, REQSIGN_ACCOUNT_OPERATOR, &a, &err), REQSIGN_OK);
    int64_t n = 0;
    cr_assert_eq(reqsign_keystore_count_active(ks, REQSIGN_ACCOUNT_OPERATOR, 1700000600, &n, &err),
                 REQSIGN_OK);
    cr_assert_eq(n, 1);
    cr_assert_eq(reqsign_keystore_touch(ks, "old-admin", 1700000700, "t", &err), REQSIGN_OK);
    reqsign_keystore_free(ks);

    ks = reqsign_keystore_sqlite_open(path, REQSIGN_KEYSTORE_READONLY, &err);
    cr_assert_not_null(ks, "%s", err.message);
    cr_assert_eq(reqsign_keystore_get(ks, "old-admin", 9, &got, &err), REQSIGN_OK);
    cr_assert_eq(got.last_used_at, 1700000700);
    reqsign_keystore_free(ks);
    db = raw_open(path);
    cr_assert_eq(raw_int(db, "SELECT version FROM schema_version"), REQSIGN_SQLITE_SCHEMA_VERSION);
    cr_assert_eq(raw_int(db, "SELECT count(*) FROM keys"), 2);
    /* the audit log is append-only, the token column holds a SHA-256 only */
    cr_assert_eq(sqlite3_exec(db,
                              "INSERT INTO audit (time, actor, account, action, target, "
                              "target_account, outcome, source, nonce) VALUES "
                              "(1, '', '', 'x', '', '', 'ok', '', '')",
                              NULL, NULL, NULL),
                 SQLITE_OK);
    cr_assert_neq(sqlite3_exec(db, "UPDATE audit SET outcome = 'forged'", NULL, NULL, NULL),
                  SQLITE_OK);
    cr_assert_neq(sqlite3_exec(db, "DELETE FROM audit", NULL, NULL, NULL), SQLITE_OK);
    cr_assert_neq(sqlite3_exec(db,
                               "INSERT INTO enrollments VALUES (zeroblob(44), "
                               "'acct_operator', 1, 2, NULL)",
                               NULL, NULL, NULL),
                  SQLITE_OK);
    sqlite3_close(db);
    free(path);
}

Test(keystore, sqlite_schema_version_mismatch_refused)
{
    char *path = sqlite_path();
    struct reqsign_error err;
    struct reqsign_keystore *ks = reqsign_keystore_sqlite_open(path, REQSIGN_KEYSTORE_CREATE, NULL);
    cr_assert_not_null(ks);
    reqsign_keystore_free(ks);

    sqlite3 *db = raw_open(path);
    cr_assert_eq(sqlite3_exec(db, "UPDATE schema_version SET version = 999", NULL, NULL, NULL),
                 SQLITE_OK);
    sqlite3_close(db);
    reqsign_error_clear(&err);
    cr_assert_null(reqsign_keystore_sqlite_open(path, 0, &err));
    cr_assert_eq(err.code, REQSIGN_E_STORE);
    cr_assert_not_null(strstr(err.message, "999"), "%s", err.message);
    reqsign_error_clear(&err);
    cr_assert_null(reqsign_keystore_sqlite_open(path, REQSIGN_KEYSTORE_READONLY, &err));
    cr_assert_eq(err.code, REQSIGN_E_STORE);
    cr_assert_not_null(strstr(err.message, "newer"), "%s", err.message);

    /* Older than this build: read-only refuses (it cannot migrate); read-write migrates. */
    db = raw_open(path);
    cr_assert_eq(sqlite3_exec(db,
                              "UPDATE schema_version SET version = 0; DROP TABLE keys; "
                              "DROP TABLE accounts; DROP TABLE enrollments; DROP TABLE audit",
                              NULL, NULL, NULL),
                 SQLITE_OK);
    sqlite3_close(db);
    reqsign_error_clear(&err);
    cr_assert_null(reqsign_keystore_sqlite_open(path, REQSIGN_KEYSTORE_READONLY, &err));
    cr_assert_eq(err.code, REQSIGN_E_STORE);
    cr_assert_not_null(strstr(err.message, "older"), "%s", err.message);
    reqsign_error_clear(&err);
    ks = reqsign_keystore_sqlite_open(path, 0, &err);
    cr_assert_not_null(ks, "%s", err.message);
    reqsign_keystore_free(ks);
    db = raw_open(path);
    cr_assert_eq(raw_int(db, "SELECT version FROM schema_version"), REQSIGN_SQLITE_SCHEMA_VERSION);
    sqlite3_close(db);
    free(path);
}

Test(keystore, sqlite_file_mode_0600)
{
    mode_t old = umask(0); /* the mode must not depend on the umask */
    char *path = sqlite_path();
    struct reqsign_keystore *ks = reqsign_keystore_sqlite_open(path, REQSIGN_KEYSTORE_CREATE, NULL);
    umask(old);
    cr_assert_not_null(ks);
    struct reqsign_key_record r;
    make_record(1, &r);
    insert_ok("sqlite", ks, &r);
    const char *suffix[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < 3; i++) {
        char p[512];
        snprintf(p, sizeof(p), "%s%s", path, suffix[i]);
        struct stat sb;
        cr_assert_eq(stat(p, &sb), 0, "%s: %s", p, strerror(errno));
        cr_assert_eq(sb.st_mode & 0777, 0600, "%s has mode %o", p, (unsigned)(sb.st_mode & 0777));
    }
    reqsign_keystore_free(ks);
    free(path);
}

Test(keystore, sqlite_no_column_can_hold_a_private_key)
{
    char *path = sqlite_path();
    struct reqsign_keystore *ks = reqsign_keystore_sqlite_open(path, REQSIGN_KEYSTORE_CREATE, NULL);
    cr_assert_not_null(ks);
    reqsign_keystore_free(ks);

    sqlite3 *db = raw_open(path);
    /* Exactly these tables... */
    cr_assert_eq(raw_int(db, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name "
                             "NOT IN ('keys', 'schema_version', 'accounts', 'enrollments', "
                             "'audit', 'sqlite_sequence')"),
                 0);
    /* ...and exactly these columns: a new column has to be added here on purpose. */
    static const struct {
        const char *name, *type;
        int notnull;
    } want[] = {
        {"keyid", "TEXT", 0},
        {"public_key", "BLOB", 1},
        {"label", "TEXT", 1},
        {"scopes", "TEXT", 1},
        {"created_at", "INTEGER", 1},
        {"expires_at", "INTEGER", 0},
        {"revoked_at", "INTEGER", 0},
        /* issue 13: accounts and the key lifecycle */
        {"account", "TEXT", 1},
        {"disabled_at", "INTEGER", 0},
        {"replaces", "TEXT", 0},
        {"replaced_by", "TEXT", 0},
        {"revoke_reason", "TEXT", 0},
        {"last_used_at", "INTEGER", 0},
        {"last_used_by", "TEXT", 0},
        /* issue 16: the public directory */
        {"publish", "INTEGER", 1},
    };
    sqlite3_stmt *st;
    cr_assert_eq(sqlite3_prepare_v2(db, "PRAGMA table_info(keys)", -1, &st, NULL), SQLITE_OK);
    size_t n = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 1);
        const char *type = (const char *)sqlite3_column_text(st, 2);
        cr_assert_lt(n, sizeof(want) / sizeof(want[0]), "unexpected column %s", name);
        cr_assert_str_eq(name, want[n].name);
        cr_assert_str_eq(type, want[n].type);
        cr_assert_eq(sqlite3_column_int(st, 3), want[n].notnull, "%s notnull", name);
        cr_assert_null(strstr(name, "priv"));
        cr_assert_null(strstr(name, "secret"));
        cr_assert_null(strstr(name, "seed"));
        n++;
    }
    sqlite3_finalize(st);
    cr_assert_eq(n, sizeof(want) / sizeof(want[0]));
    /* The one BLOB holds exactly 32 bytes: a 64-byte private key cannot go in. */
    cr_assert_neq(sqlite3_exec(db,
                               "INSERT INTO keys (keyid, public_key, label, scopes, created_at) "
                               "VALUES ('x', zeroblob(64), '', '', 1)",
                               NULL, NULL, NULL),
                  SQLITE_OK);
    sqlite3_close(db);
    free(path);
}

Test(keystore, sqlite_busy_is_unavailable)
{
    char *path = sqlite_path();
    struct reqsign_error err;
    struct reqsign_keystore *ks = reqsign_keystore_sqlite_open(path, REQSIGN_KEYSTORE_CREATE, NULL);
    cr_assert_not_null(ks);
    struct reqsign_key_record r;
    make_record(1, &r);
    insert_ok("sqlite", ks, &r);

    /* Another connection holds the write lock past the busy timeout. */
    sqlite3 *db = raw_open(path);
    cr_assert_eq(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    make_record(2, &r);
    reqsign_error_clear(&err);
    cr_assert_eq(reqsign_keystore_insert(ks, &r, &err), REQSIGN_E_KEYSTORE_UNAVAILABLE, "%s",
                 err.message);
    /* Readers are not blocked by a writer in WAL mode. */
    struct reqsign_key_record got;
    cr_assert_eq(reqsign_keystore_get(ks, "key-00001", 9, &got, NULL), REQSIGN_OK);
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(db);
    insert_ok("sqlite", ks, &r);
    reqsign_keystore_free(ks);
    free(path);
}

/* ---- PostgreSQL only ----
 *
 * The runner (ReportHook PRE_ALL) initdb's a template once and starts one
 * shared server (pgutil.h); each contract test takes a fresh database on it.
 * Tests that stop the server start a private one from the template. */

#ifdef REQSIGN_TEST_PG
#include <criterion/hooks.h>
#include <libpq-fe.h>
#include <reqsign/keycache.h>
#include <sys/wait.h>
#include <time.h>

ReportHook(PRE_ALL)(struct criterion_test_set *set)
{
    (void)set;
    tu_pg_suite_begin();
}

ReportHook(POST_ALL)(struct criterion_global_stats *stats)
{
    (void)stats;
    tu_pg_suite_end();
}

static long pg_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void pg_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int64_t pg_query_int(const char *conninfo, const char *sql)
{
    char *v = tu_pg_query(conninfo, sql);
    cr_assert_not_null(v, "%s", sql);
    char *end;
    long long n = strtoll(v, &end, 10);
    cr_assert(end != v && *end == '\0', "%s: not an integer: '%s'", sql, v);
    free(v);
    return n;
}

/* Wait (bounded) until the listener has LISTENed @n times. */
static void wait_listening(struct reqsign_keystore_pg_listener *l, uint64_t n, long timeout_ms)
{
    long end = pg_now_ms() + timeout_ms;
    struct reqsign_keystore_pg_listener_stats s;
    for (;;) {
        reqsign_keystore_pg_listener_stats(l, &s);
        if (s.connects >= n)
            return;
        cr_assert_lt(pg_now_ms(), end, "listener not listening (%llu connects) after %ld ms",
                     (unsigned long long)s.connects, timeout_ms);
        pg_sleep_ms(10);
    }
}

/* Poll the cache until @keyid reads as revoked; the time it took in ms. */
static long wait_revoked(struct reqsign_keycache *c, const char *keyid, long timeout_ms)
{
    long t0 = pg_now_ms();
    for (;;) {
        struct reqsign_key_info info;
        enum reqsign_status st = reqsign_keycache_lookup(c, keyid, strlen(keyid), &info, NULL);
        cr_assert_eq(st, REQSIGN_OK, "%s: %s", keyid, reqsign_strerror(st));
        if (info.state == REQSIGN_KEY_REVOKED)
            return pg_now_ms() - t0;
        cr_assert_lt(pg_now_ms() - t0, timeout_ms, "%s not seen revoked within %ld ms", keyid,
                     timeout_ms);
        pg_sleep_ms(5);
    }
}

Test(keystore, pg_open_flags_and_schema_checks)
{
    char *loc = pg_location();
    struct reqsign_error err;

    /* Bad arguments. */
    reqsign_error_clear(&err);
    cr_assert_null(reqsign_keystore_pg_open(NULL, REQSIGN_KEYSTORE_CREATE, &err));
    cr_assert_eq(err.code, REQSIGN_E_INVALID_ARG);
    reqsign_error_clear(&err);
    cr_assert_null(reqsign_keystore_pg_open("postgresql://[::1", REQSIGN_KEYSTORE_CREATE, &err));
    cr_assert_eq(err.code, REQSIGN_E_INVALID_ARG, "%s", err.message);
    reqsign_error_clear(&err);
    cr_assert_null(reqsign_keystore_pg_open("nosuchoption=1", REQSIGN_KEYSTORE_CREATE, &err));
    cr_assert_eq(err.code, REQSIGN_E_INVALID_ARG, "%s", err.message);
    reqsign_error_clear(&err);
    cr_assert_null(
        reqsign_keystore_pg_open(loc, REQSIGN_KEYSTORE_READONLY | REQSIGN_KEYSTORE_CREATE, &err));
    cr_assert_eq(err.code, REQSIGN_E_INVALID_ARG);
    cr_assert_null(reqsign_keystore_pg_open(loc, 0x80, NULL));

    /* Not migrated yet: neither read-only nor plain read-write opens it. */
    reqsign_error_clear(&err);
    cr_assert_null(reqsign_keystore_pg_open(loc, REQSIGN_KEYSTORE_READONLY, &err));
    cr_assert_eq(err.code, REQSIGN_E_STORE);
    cr_assert_not_null(strstr(err.message, "schema_version"), "%s", err.message);
    reqsign_error_clear(&err);
    cr_assert_null(reqsign_keystore_pg_open(loc, 0, &err));
    cr_assert_eq(err.code, REQSIGN_E_STORE);

    /* CREATE migrates; read-only sees writes and refuses its own. */
    struct reqsign_keystore *rw = reqsign_keystore_pg_open(loc, REQSIGN_KEYSTORE_CREATE, &err);
    cr_assert_not_null(rw, "%s", err.message);
    reqsign_error_clear(&err);
    struct reqsign_keystore *ro = reqsign_keystore_pg_open(loc, REQSIGN_KEYSTORE_READONLY, &err);
    cr_assert_not_null(ro, "%s", err.message);
    struct reqsign_key_record r, got;
    make_record(1, &r);
    insert_ok("postgresql", rw, &r);
    cr_assert_eq(reqsign_keystore_get(ro, "key-00001", 9, &got, NULL), REQSIGN_OK);
    assert_same("postgresql", &r, &got);
    make_record(2, &r);
    reqsign_error_clear(&err);
    cr_assert_eq(reqsign_keystore_insert(ro, &r, &err), REQSIGN_E_STORE);
    cr_assert_not_null(strstr(err.message, "read-only"), "%s", err.message);
    reqsign_error_clear(&err);
    cr_assert_eq(reqsign_keystore_revoke(ro, "key-00001", 9, 5, &err), REQSIGN_E_STORE);
    cr_assert_not_null(strstr(err.message, "read-only"), "%s", err.message);
    cr_assert_eq(reqsign_keystore_get(rw, "key-00001", 9, &got, NULL), REQSIGN_OK);
    cr_assert_eq(got.revoked_at, 0);
    reqsign_keystore_free(ro);

    /* Plain read-write on a migrated schema. */
    struct reqsign_keystore *plain = reqsign_keystore_pg_open(loc, 0, &err);
    cr_assert_not_null(plain, "%s", err.message);
    insert_ok("postgresql", plain, &r);
    reqsign_keystore_free(plain);
    reqsign_keystore_free(rw);

    /* Exactly one schema_version row; the 32-byte check is in the schema too. */
    cr_assert_eq(pg_query_int(loc, "SELECT count(*) FROM schema_version"), 1);
    cr_assert_eq(pg_query_int(loc, "SELECT version FROM schema_version"),
                 REQSIGN_PG_SCHEMA_VERSION);
    PGconn *raw = PQconnectdb(loc);
    cr_assert_eq(PQstatus(raw), CONNECTION_OK, "%s", PQerrorMessage(raw));
    PGresult *res = PQexec(raw, "INSERT INTO keys VALUES ('x', '\\x00', '', '', 1, NULL, NULL)");
    cr_assert_eq(PQresultStatus(res), PGRES_FATAL_ERROR, "a 1-byte public key was accepted");
    cr_assert_str_eq(PQresultErrorField(res, PG_DIAG_SQLSTATE), "23514"); /* check_violation */
    PQclear(res);
    PQfinish(raw);
    char *v;

    /* A newer schema is refused by every open; an older one only migrates with CREATE. */
    v = tu_pg_query(loc, "UPDATE schema_version SET version = 999");
    cr_assert_not_null(v);
    free(v);
    reqsign_error_clear(&err);
    cr_assert_null(reqsign_keystore_pg_open(loc, REQSIGN_KEYSTORE_CREATE, &err));
    cr_assert_eq(err.code, REQSIGN_E_STORE);
    cr_assert_not_null(strstr(err.message, "999"), "%s", err.message);
    reqsign_error_clear(&err);
    cr_assert_null(reqsign_keystore_pg_open(loc, REQSIGN_KEYSTORE_READONLY, &err));
    cr_assert_not_null(strstr(err.message, "newer"), "%s", err.message);
    v = tu_pg_query(
        loc, "UPDATE schema_version SET version = 0; DROP TABLE keys, enrollments, audit, accounts;"
             " DROP FUNCTION reqsign_audit_append_only()");
    cr_assert_not_null(v);
    free(v);
    reqsign_error_clear(&err);
    cr_assert_null(reqsign_keystore_pg_open(loc, 0, &err));
    cr_assert_not_null(strstr(err.message, "older"), "%s", err.message);
    rw = reqsign_keystore_pg_open(loc, REQSIGN_KEYSTORE_CREATE, &err);
    cr_assert_not_null(rw, "%s", err.message);
    reqsign_keystore_free(rw);
    cr_assert_eq(pg_query_int(loc, "SELECT version FROM schema_version"),
                 REQSIGN_PG_SCHEMA_VERSION);
    free(loc);
}

/* Several processes open (CREATE) one empty database at the same instant. */
Test(keystore, pg_two_processes_migrating_at_once)
{
    enum { ROUNDS = 3, PROCS = 3 };
    for (int round = 0; round < ROUNDS; round++) {
        char *loc = pg_location();
        int gate[2];
        cr_assert_eq(pipe(gate), 0);
        pid_t kids[PROCS];
        for (int i = 0; i < PROCS; i++) {
            kids[i] = fork();
            cr_assert_geq(kids[i], 0);
            if (kids[i] == 0) {
                close(gate[1]);
                char c;
                while (read(gate[0], &c, 1) < 0 && errno == EINTR)
                    ;
                struct reqsign_error err;
                reqsign_error_clear(&err);
                struct reqsign_keystore *ks =
                    reqsign_keystore_pg_open(loc, REQSIGN_KEYSTORE_CREATE, &err);
                if (ks == NULL) {
                    fprintf(stderr, "child %d: %s\n", i, err.message);
                    _exit(1);
                }
                struct reqsign_key_record r;
                make_record(round * 100 + i, &r);
                enum reqsign_status st = reqsign_keystore_insert(ks, &r, &err);
                if (st != REQSIGN_OK)
                    fprintf(stderr, "child %d insert: %s\n", i, err.message);
                reqsign_keystore_free(ks);
                _exit(st == REQSIGN_OK ? 0 : 2);
            }
        }
        close(gate[0]);
        close(gate[1]); /* release them all at once */
        for (int i = 0; i < PROCS; i++) {
            int status;
            cr_assert_eq(waitpid(kids[i], &status, 0), kids[i]);
            cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                      "round %d child %d: status 0x%x", round, i, (unsigned)status);
        }
        cr_assert_eq(pg_query_int(loc, "SELECT count(*) FROM schema_version"), 1);
        cr_assert_eq(pg_query_int(loc, "SELECT version FROM schema_version"),
                     REQSIGN_PG_SCHEMA_VERSION);
        cr_assert_eq(pg_query_int(loc, "SELECT count(*) FROM keys"), PROCS);
        free(loc);
    }
}

/* Keyids and cursors no stored keyid can match: same answers as SQLite. */
static void c_pg_non_ascii_keyids_and_cursors(const struct backend *b, struct reqsign_keystore *ks)
{
    struct reqsign_key_record r, got;
    struct reqsign_error err;
    for (int i = 40; i < 45; i++) {
        make_record(i, &r);
        insert_ok(b->name, ks, &r);
    }
    reqsign_error_clear(&err);
    cr_assert_eq(reqsign_keystore_get(ks, "key-00041\xff", 10, &got, &err), REQSIGN_E_KEY_UNKNOWN,
                 "[%s] %s", b->name, err.message);
    cr_assert_eq(reqsign_keystore_get(ks, "key-0004\xc3\xa9", 10, &got, NULL),
                 REQSIGN_E_KEY_UNKNOWN, "[%s]", b->name);
    cr_assert_eq(reqsign_keystore_revoke(ks, "key-00041\x01", 10, 5, NULL), REQSIGN_E_KEY_UNKNOWN,
                 "[%s]", b->name);
    struct reqsign_key_record page[8];
    size_t n = 0;
    reqsign_error_clear(&err);
    cr_assert_eq(reqsign_keystore_list(ks, "key-00041\xff", 8, page, &n, &err), REQSIGN_OK,
                 "[%s] %s", b->name, err.message);
    cr_assert_eq(n, 3, "[%s] %zu", b->name, n);
    cr_assert_str_eq(page[0].keyid, "key-00042");
    cr_assert_eq(reqsign_keystore_list(ks, "key-0004\xff", 8, page, &n, NULL), REQSIGN_OK);
    cr_assert_eq(n, 0, "[%s] %zu", b->name, n);
    cr_assert_eq(reqsign_keystore_list(ks, "key-00041\x01", 8, page, &n, NULL), REQSIGN_OK);
    cr_assert_eq(n, 3, "[%s] %zu", b->name, n);
    cr_assert_str_eq(page[0].keyid, "key-00042");
    cr_assert_eq(reqsign_keystore_list(ks, "\xc3\xa9", 8, page, &n, NULL), REQSIGN_OK);
    cr_assert_eq(n, 0, "[%s] %zu", b->name, n);
}

STORE_TEST(pg_non_ascii_keyids_and_cursors, backends, N_BACKENDS)

/* A revocation or insert reaches a long-TTL cache through NOTIFY within ~1 s. */
Test(keystore, pg_notify_invalidates_keycache)
{
    char *loc = pg_location();
    struct reqsign_error err;
    reqsign_error_clear(&err);
    struct reqsign_keystore *ks = reqsign_keystore_pg_open(loc, REQSIGN_KEYSTORE_CREATE, &err);
    cr_assert_not_null(ks, "%s", err.message);
    /* Another process's store, as a key service would be. */
    struct reqsign_keystore *writer = reqsign_keystore_pg_open(loc, 0, &err);
    cr_assert_not_null(writer, "%s", err.message);
    struct reqsign_keycache_opts o = {.store = ks, .positive_ttl = 3600, .negative_ttl = 3600};
    struct reqsign_keycache *cache = reqsign_keycache_new(&o, &err);
    cr_assert_not_null(cache, "%s", err.message);
    struct reqsign_keystore_pg_listener *l = reqsign_keystore_pg_listen(loc, cache, &err);
    cr_assert_not_null(l, "%s", err.message);
    wait_listening(l, 1, 5000);

    struct reqsign_key_record r;
    make_record(1, &r);
    insert_ok("postgresql", writer, &r);
    /* Let the insert's own notification arrive before caching the key. */
    struct reqsign_keystore_pg_listener_stats ls;
    long t0 = pg_now_ms();
    do {
        cr_assert_lt(pg_now_ms() - t0, 1000, "the insert's NOTIFY did not arrive");
        pg_sleep_ms(5);
        reqsign_keystore_pg_listener_stats(l, &ls);
    } while (ls.notifications < 1);
    struct reqsign_key_info info;
    cr_assert_eq(reqsign_keycache_lookup(cache, "key-00001", 9, &info, NULL), REQSIGN_OK);
    cr_assert_eq(info.state, REQSIGN_KEY_ACTIVE);
    /* Cached now: a second lookup is a hit. */
    struct reqsign_keycache_stats st0, st1;
    reqsign_keycache_stats(cache, &st0);
    cr_assert_eq(reqsign_keycache_lookup(cache, "key-00001", 9, &info, NULL), REQSIGN_OK);
    reqsign_keycache_stats(cache, &st1);
    cr_assert_eq(st1.hits, st0.hits + 1);

    cr_assert_eq(reqsign_keystore_revoke(writer, "key-00001", 9, 1234, NULL), REQSIGN_OK);
    long ms = wait_revoked(cache, "key-00001", 1000);
    cr_log_info("revocation seen by the cache after %ld ms", ms);

    /* A negative entry goes too when the key is created. */
    cr_assert_eq(reqsign_keycache_lookup(cache, "key-00002", 9, &info, NULL),
                 REQSIGN_E_KEY_UNKNOWN);
    make_record(2, &r);
    insert_ok("postgresql", writer, &r);
    t0 = pg_now_ms();
    while (reqsign_keycache_lookup(cache, "key-00002", 9, &info, NULL) != REQSIGN_OK) {
        cr_assert_lt(pg_now_ms() - t0, 1000, "new key not seen within 1 s");
        pg_sleep_ms(5);
    }
    reqsign_keystore_pg_listener_stats(l, &ls);
    cr_assert_geq(ls.notifications, 3);

    reqsign_keystore_pg_listener_stop(l);
    reqsign_keycache_free(cache);
    reqsign_keystore_free(writer);
    reqsign_keystore_free(ks);
    free(loc);
}

/* A database made by the previous schema (version 2: keys with publish)
 * migrates to accounts: its keys go to acct_operator and keep working; the
 * audit log refuses changes. */
Test(keystore, pg_migrates_version_2_database)
{
    char *loc = pg_location();
    char *v = tu_pg_query(
        loc, "CREATE TABLE schema_version (version integer NOT NULL);"
             "INSERT INTO schema_version VALUES (2);"
             "CREATE TABLE keys (keyid text COLLATE \"C\" NOT NULL,"
             " public_key bytea NOT NULL CHECK (length(public_key) = 32), label text NOT NULL,"
             " scopes text NOT NULL, created_at bigint NOT NULL, expires_at bigint,"
             " revoked_at bigint, CONSTRAINT keys_pkey PRIMARY KEY (keyid),"
             " CONSTRAINT keys_public_key_key UNIQUE (public_key));"
             "ALTER TABLE keys ADD COLUMN publish boolean NOT NULL DEFAULT false;"
             "INSERT INTO keys VALUES ('old-key', decode(repeat('ab', 32), 'hex'), 'old',"
             " 'keys:admin', 1700000000, NULL, NULL, true);"
             "INSERT INTO keys VALUES ('old-revoked', decode(repeat('cd', 32), 'hex'), 'gone',"
             " 'orders:read', 1700000001, 1800000000, 1700000100, false)");
    cr_assert_not_null(v);
    free(v);
    struct reqsign_error err;
    reqsign_error_clear(&err);
    /* a plain open refuses the old schema; CREATE migrates it */
    cr_assert_null(reqsign_keystore_pg_open(loc, 0, &err));
    struct reqsign_keystore *ks = reqsign_keystore_pg_open(loc, REQSIGN_KEYSTORE_CREATE, &err);
    cr_assert_not_null(ks, "%s", err.message);
    cr_assert_eq(pg_query_int(loc, "SELECT version FROM schema_version"),
                 REQSIGN_PG_SCHEMA_VERSION);
    struct reqsign_key_record r;
    cr_assert_eq(reqsign_keystore_get(ks, "old-key", 7, &r, &err), REQSIGN_OK, "%s", err.message);
    cr_assert_str_eq(r.account, REQSIGN_ACCOUNT_OPERATOR);
    cr_assert_str_eq(r.scopes, "keys:admin");
    cr_assert_eq(r.publish, 1);
    cr_assert_eq(r.disabled_at, 0);
    cr_assert_eq(r.last_used_at, 0);
    cr_assert_eq(reqsign_keystore_get(ks, "old-revoked", 11, &r, &err), REQSIGN_OK);
    cr_assert_eq(r.revoked_at, 1700000100);
    cr_assert_eq(r.expires_at, 1800000000);
    struct reqsign_account a;
    cr_assert_eq(reqsign_keystore_account_get(ks, REQSIGN_ACCOUNT_OPERATOR, &a, &err), REQSIGN_OK,
                 "%s", err.message);
    cr_assert_str_eq(a.allowed_scopes, "*");
    int64_t n = 0;
    cr_assert_eq(reqsign_keystore_count_active(ks, REQSIGN_ACCOUNT_OPERATOR, 1750000000, &n, &err),
                 REQSIGN_OK);
    cr_assert_eq(n, 1);
    /* a new key in a new account, as reqsignd makes them after the upgrade */
    make_account("acct_new", &a);
    cr_assert_eq(reqsign_keystore_account_insert(ks, &a, &err), REQSIGN_OK, "%s", err.message);
    make_record(7, &r);
    snprintf(r.account, sizeof(r.account), "acct_new");
    insert_ok("postgresql", ks, &r);
    /* a key for no account is refused */
    make_record(8, &r);
    snprintf(r.account, sizeof(r.account), "acct_none");
    reqsign_error_clear(&err);
    cr_assert_eq(reqsign_keystore_insert(ks, &r, &err), REQSIGN_E_NOT_FOUND, "%s", err.message);
    /* the audit log is append-only, for the store's own role too */
    struct reqsign_audit_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.time = 1700000000;
    snprintf(ev.action, sizeof(ev.action), "key.create");
    snprintf(ev.outcome, sizeof(ev.outcome), "ok");
    cr_assert_eq(reqsign_keystore_audit_append(ks, &ev, &err), REQSIGN_OK, "%s", err.message);
    v = tu_pg_query(loc, "UPDATE audit SET outcome = 'forged'");
    cr_assert_null(v, "an UPDATE of the audit log went through");
    v = tu_pg_query(loc, "DELETE FROM audit");
    cr_assert_null(v, "a DELETE from the audit log went through");
    v = tu_pg_query(loc, "TRUNCATE audit");
    cr_assert_null(v, "a TRUNCATE of the audit log went through");
    cr_assert_eq(pg_query_int(loc, "SELECT count(*) FROM audit"), 1);
    reqsign_keystore_free(ks);
    free(loc);
}

/* A disable, an enable and an account's disable reach a verifier's key
 * cache at once over NOTIFY, as a revocation does. */
Test(keystore, pg_notify_on_disable_and_account_disable)
{
    char *loc = pg_location();
    struct reqsign_error err;
    reqsign_error_clear(&err);
    struct reqsign_keystore *ks = reqsign_keystore_pg_open(loc, REQSIGN_KEYSTORE_CREATE, &err);
    cr_assert_not_null(ks, "%s", err.message);
    struct reqsign_keystore *writer = reqsign_keystore_pg_open(loc, 0, &err);
    cr_assert_not_null(writer, "%s", err.message);
    struct reqsign_keycache_opts o = {.store = ks, .positive_ttl = 3600, .negative_ttl = 3600};
    struct reqsign_keycache *cache = reqsign_keycache_new(&o, &err);
    cr_assert_not_null(cache, "%s", err.message);
    struct reqsign_keystore_pg_listener *l = reqsign_keystore_pg_listen(loc, cache, &err);
    cr_assert_not_null(l, "%s", err.message);
    wait_listening(l, 1, 5000);

    struct reqsign_account a;
    make_account("acct_n", &a);
    cr_assert_eq(reqsign_keystore_account_insert(writer, &a, &err), REQSIGN_OK, "%s", err.message);
    struct reqsign_key_record r;
    make_record(1, &r);
    snprintf(r.account, sizeof(r.account), "acct_n");
    insert_ok("postgresql", writer, &r);
    struct reqsign_key_info info;
    long t0 = pg_now_ms();
    while (reqsign_keycache_lookup(cache, "key-00001", 9, &info, NULL) != REQSIGN_OK) {
        cr_assert_lt(pg_now_ms() - t0, 1000, "new key not seen within 1 s");
        pg_sleep_ms(5);
    }
    cr_assert_eq(info.state, REQSIGN_KEY_ACTIVE);

    /* the key disabled: the cached entry goes */
    cr_assert_eq(reqsign_keystore_get(writer, "key-00001", 9, &r, &err), REQSIGN_OK);
    r.disabled_at = 1700000500;
    cr_assert_eq(reqsign_keystore_update(writer, &r, &err), REQSIGN_OK, "%s", err.message);
    t0 = pg_now_ms();
    for (;;) {
        cr_assert_eq(reqsign_keycache_lookup(cache, "key-00001", 9, &info, NULL), REQSIGN_OK);
        if (info.state == REQSIGN_KEY_DISABLED)
            break;
        cr_assert_lt(pg_now_ms() - t0, 1000, "disable not seen within 1 s");
        pg_sleep_ms(5);
    }
    cr_log_info("disable seen by the cache after %ld ms", pg_now_ms() - t0);
    r.disabled_at = 0;
    cr_assert_eq(reqsign_keystore_update(writer, &r, &err), REQSIGN_OK, "%s", err.message);
    t0 = pg_now_ms();
    for (;;) {
        cr_assert_eq(reqsign_keycache_lookup(cache, "key-00001", 9, &info, NULL), REQSIGN_OK);
        if (info.state == REQSIGN_KEY_ACTIVE)
            break;
        cr_assert_lt(pg_now_ms() - t0, 1000, "enable not seen within 1 s");
        pg_sleep_ms(5);
    }
    /* the account disabled: every key of it */
    cr_assert_eq(reqsign_keystore_account_set_disabled(writer, "acct_n", 1700000600, &err),
                 REQSIGN_OK, "%s", err.message);
    t0 = pg_now_ms();
    for (;;) {
        cr_assert_eq(reqsign_keycache_lookup(cache, "key-00001", 9, &info, NULL), REQSIGN_OK);
        if (info.state == REQSIGN_KEY_ACCOUNT_DISABLED)
            break;
        cr_assert_lt(pg_now_ms() - t0, 1000, "account disable not seen within 1 s");
        pg_sleep_ms(5);
    }
    cr_log_info("account disable seen by the cache after %ld ms", pg_now_ms() - t0);
    reqsign_error_clear(&err);
    cr_assert_eq(reqsign_keystore_account_set_disabled(writer, "acct_none", 1, &err),
                 REQSIGN_E_NOT_FOUND, "%s", err.message);

    reqsign_keystore_pg_listener_stop(l);
    reqsign_keycache_free(cache);
    reqsign_keystore_free(writer);
    reqsign_keystore_free(ks);
    free(loc);
}

/* A statement stuck behind a lock ends at statement_timeout as unavailable;
 * a connection the server terminated is replaced on the next call. */
Test(keystore, pg_timeout_and_terminated_connections)
{
    char *loc = pg_location();
    struct reqsign_error err;
    reqsign_error_clear(&err);
    struct reqsign_keystore *ks = reqsign_keystore_pg_open(loc, REQSIGN_KEYSTORE_CREATE, &err);
    cr_assert_not_null(ks, "%s", err.message);
    struct reqsign_key_record r, got;
    make_record(1, &r);
    insert_ok("postgresql", ks, &r);

    PGconn *locker = PQconnectdb(loc);
    cr_assert_eq(PQstatus(locker), CONNECTION_OK, "%s", PQerrorMessage(locker));
    PGresult *res = PQexec(locker, "BEGIN; LOCK TABLE keys IN ACCESS EXCLUSIVE MODE");
    cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK, "%s", PQresultErrorMessage(res));
    PQclear(res);
    long t0 = pg_now_ms();
    reqsign_error_clear(&err);
    cr_assert_eq(reqsign_keystore_get(ks, "key-00001", 9, &got, &err),
                 REQSIGN_E_KEYSTORE_UNAVAILABLE, "%s", err.message);
    long ms = pg_now_ms() - t0;
    cr_assert(ms >= REQSIGN_PG_STATEMENT_TIMEOUT_MS - 100 && ms < 3000, "%ld ms", ms);
    cr_assert_not_null(strstr(err.message, "57014"), "%s", err.message);
    res = PQexec(locker, "ROLLBACK");
    PQclear(res);
    cr_assert_eq(reqsign_keystore_get(ks, "key-00001", 9, &got, NULL), REQSIGN_OK);

    /* The server ends every store connection (admin shutdown of backends). */
    res = PQexec(locker, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
                         "current_database() AND pid <> pg_backend_pid()");
    cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s", PQresultErrorMessage(res));
    PQclear(res);
    PQfinish(locker);
    pg_sleep_ms(50);
    for (int i = 0; i < 3; i++) {
        reqsign_error_clear(&err);
        cr_assert_eq(reqsign_keystore_get(ks, "key-00001", 9, &got, &err), REQSIGN_OK,
                     "call %d after terminate: %s", i, err.message);
    }
    make_record(2, &r);
    insert_ok("postgresql", ks, &r);
    reqsign_keystore_free(ks);
    free(loc);
}

static int64_t fake_now;
static int64_t fake_clock(void *ctx)
{
    (void)ctx;
    return fake_now;
}

/* The server goes away and comes back under one store, cache and listener. */
Test(keystore, pg_server_stopped_and_restarted)
{
    struct tu_pg srv;
    cr_assert_eq(tu_pg_start(&srv), 0, "private PostgreSQL server did not start");
    char *loc = tu_pg_new_db_on(&srv);
    cr_assert_not_null(loc);
    struct reqsign_error err;
    reqsign_error_clear(&err);
    struct reqsign_keystore *ks = reqsign_keystore_pg_open(loc, REQSIGN_KEYSTORE_CREATE, &err);
    cr_assert_not_null(ks, "%s", err.message);
    fake_now = 1700000000;
    struct reqsign_keycache_opts o = {
        .store = ks, .positive_ttl = 60, .negative_ttl = 60, .clock = fake_clock};
    struct reqsign_keycache *cache = reqsign_keycache_new(&o, &err);
    cr_assert_not_null(cache, "%s", err.message);
    struct reqsign_keystore_pg_listener *l = reqsign_keystore_pg_listen(loc, cache, &err);
    cr_assert_not_null(l, "%s", err.message);
    wait_listening(l, 1, 5000);

    struct reqsign_key_record r, got;
    for (int i = 1; i <= 3; i++) {
        make_record(i, &r);
        insert_ok("postgresql", ks, &r);
    }
    /* The inserts' notifications arrive before anything is cached. */
    struct reqsign_keystore_pg_listener_stats ls;
    long t1 = pg_now_ms();
    do {
        cr_assert_lt(pg_now_ms() - t1, 1000, "the inserts' NOTIFYs did not arrive");
        pg_sleep_ms(5);
        reqsign_keystore_pg_listener_stats(l, &ls);
    } while (ls.notifications < 3);
    struct reqsign_key_info info;
    cr_assert_eq(reqsign_keycache_lookup(cache, "key-00001", 9, &info, NULL), REQSIGN_OK);

    cr_assert_eq(tu_pg_stop(&srv), 0);

    /* Every operation fails fast with KEYSTORE_UNAVAILABLE. */
    long t0 = pg_now_ms();
    reqsign_error_clear(&err);
    cr_assert_eq(reqsign_keystore_get(ks, "key-00002", 9, &got, &err),
                 REQSIGN_E_KEYSTORE_UNAVAILABLE, "%s", err.message);
    long ms = pg_now_ms() - t0;
    cr_assert_lt(ms, 3000, "get took %ld ms with the server down", ms);
    cr_log_info("get with the server down: %ld ms (%s)", ms, err.message);
    make_record(4, &r);
    cr_assert_eq(reqsign_keystore_insert(ks, &r, NULL), REQSIGN_E_KEYSTORE_UNAVAILABLE);
    cr_assert_eq(reqsign_keystore_revoke(ks, "key-00002", 9, 5, NULL),
                 REQSIGN_E_KEYSTORE_UNAVAILABLE);
    struct reqsign_key_record page[4];
    size_t n = 9;
    cr_assert_eq(reqsign_keystore_list(ks, NULL, 4, page, &n, NULL),
                 REQSIGN_E_KEYSTORE_UNAVAILABLE);
    cr_assert_eq(n, 0);

    /* The cache serves what it holds until the TTL, and nothing else. */
    cr_assert_eq(reqsign_keycache_lookup(cache, "key-00001", 9, &info, NULL), REQSIGN_OK);
    cr_assert_eq(info.state, REQSIGN_KEY_ACTIVE);
    cr_assert_eq(reqsign_keycache_lookup(cache, "key-00002", 9, &info, NULL),
                 REQSIGN_E_KEYSTORE_UNAVAILABLE);
    fake_now += 59;
    cr_assert_eq(reqsign_keycache_lookup(cache, "key-00001", 9, &info, NULL), REQSIGN_OK);
    fake_now += 1;
    cr_assert_eq(reqsign_keycache_lookup(cache, "key-00001", 9, &info, NULL),
                 REQSIGN_E_KEYSTORE_UNAVAILABLE);
    cr_assert_lt(pg_now_ms() - t0, 3000, "the down phase took %ld ms", pg_now_ms() - t0);

    /* Back: the same store works at the first call; the listener reconnects. */
    cr_assert_eq(tu_pg_restart(&srv), 0);
    reqsign_error_clear(&err);
    cr_assert_eq(reqsign_keystore_get(ks, "key-00002", 9, &got, &err), REQSIGN_OK, "%s",
                 err.message);
    insert_ok("postgresql", ks, &r);
    wait_listening(l, 2, 5000);
    cr_assert_eq(reqsign_keycache_lookup(cache, "key-00003", 9, &info, NULL), REQSIGN_OK);
    cr_assert_eq(reqsign_keystore_revoke(ks, "key-00003", 9, 77, NULL), REQSIGN_OK);
    wait_revoked(cache, "key-00003", 1000);

    reqsign_keystore_pg_listener_stop(l);
    reqsign_keycache_free(cache);
    reqsign_keystore_free(ks);
    free(loc);
    tu_pg_destroy(&srv);
}

Test(keystore, pg_server_down_at_open_and_listen)
{
    struct tu_pg srv;
    cr_assert_eq(tu_pg_start(&srv), 0);
    char *loc = tu_pg_new_db_on(&srv);
    cr_assert_not_null(loc);
    cr_assert_eq(tu_pg_stop(&srv), 0);

    struct reqsign_error err;
    reqsign_error_clear(&err);
    long t0 = pg_now_ms();
    cr_assert_null(reqsign_keystore_pg_open(loc, REQSIGN_KEYSTORE_CREATE, &err));
    cr_assert_eq(err.code, REQSIGN_E_KEYSTORE_UNAVAILABLE, "%s", err.message);
    cr_assert_lt(pg_now_ms() - t0, 3000);

    /* A listener started with no server retries in the background and stops at once. */
    char *path = sqlite_location();
    struct reqsign_keystore *sq = reqsign_keystore_sqlite_open(path, REQSIGN_KEYSTORE_CREATE, NULL);
    cr_assert_not_null(sq);
    struct reqsign_keycache_opts o = {.store = sq};
    struct reqsign_keycache *cache = reqsign_keycache_new(&o, NULL);
    cr_assert_not_null(cache);
    reqsign_error_clear(&err);
    struct reqsign_keystore_pg_listener *l = reqsign_keystore_pg_listen(loc, cache, &err);
    cr_assert_not_null(l, "%s", err.message);
    pg_sleep_ms(400);
    struct reqsign_keystore_pg_listener_stats ls;
    reqsign_keystore_pg_listener_stats(l, &ls);
    cr_assert_eq(ls.connects, 0);
    t0 = pg_now_ms();
    reqsign_keystore_pg_listener_stop(l);
    cr_assert_lt(pg_now_ms() - t0, 500, "stop took %ld ms", pg_now_ms() - t0);
    cr_assert_null(reqsign_keystore_pg_listen(loc, NULL, NULL));
    cr_assert_null(reqsign_keystore_pg_listen("postgresql://[::1", cache, NULL));
    reqsign_keystore_pg_listener_stop(NULL);

    reqsign_keycache_free(cache);
    reqsign_keystore_free(sq);
    free(path);
    free(loc);
    tu_pg_destroy(&srv);
}
#endif

/* Issue 13: the key cache answers the disabled states from the store's record,
 * and the verifier refuses them (key_disabled / account_disabled). */
Test(keystore, keycache_reports_disabled_key_and_account)
{
    char *path = sqlite_path();
    struct reqsign_error err;
    reqsign_error_clear(&err);
    struct reqsign_keystore *ks = reqsign_keystore_sqlite_open(path, REQSIGN_KEYSTORE_CREATE, &err);
    cr_assert_not_null(ks, "%s", err.message);
    struct reqsign_account a;
    make_account("acct_a", &a);
    cr_assert_eq(reqsign_keystore_account_insert(ks, &a, &err), REQSIGN_OK);
    struct reqsign_key_record r;
    make_record(1, &r);
    snprintf(r.account, sizeof(r.account), "acct_a");
    insert_ok("sqlite", ks, &r);
    struct reqsign_keycache_opts co = {.store = ks};
    struct reqsign_keycache *c = reqsign_keycache_new(&co, &err);
    cr_assert_not_null(c);
    struct reqsign_key_info info;
    cr_assert_eq(reqsign_keycache_lookup(c, r.keyid, strlen(r.keyid), &info, &err), REQSIGN_OK);
    cr_assert_eq(info.state, REQSIGN_KEY_ACTIVE);

    r.disabled_at = 1700000100;
    cr_assert_eq(reqsign_keystore_update(ks, &r, &err), REQSIGN_OK);
    reqsign_keycache_invalidate(c, r.keyid, strlen(r.keyid));
    cr_assert_eq(reqsign_keycache_lookup(c, r.keyid, strlen(r.keyid), &info, &err), REQSIGN_OK);
    cr_assert_eq(info.state, REQSIGN_KEY_DISABLED);
    cr_assert_eq(reqsign_keycache_lookup(c, r.keyid, strlen(r.keyid), &info, &err), REQSIGN_OK);
    cr_assert_eq(info.state, REQSIGN_KEY_DISABLED, "from the cached entry too");

    r.disabled_at = 0;
    cr_assert_eq(reqsign_keystore_update(ks, &r, &err), REQSIGN_OK);
    cr_assert_eq(reqsign_keystore_account_set_disabled(ks, "acct_a", 1700000200, &err), REQSIGN_OK);
    reqsign_keycache_invalidate(c, r.keyid, strlen(r.keyid));
    cr_assert_eq(reqsign_keycache_lookup(c, r.keyid, strlen(r.keyid), &info, &err), REQSIGN_OK);
    cr_assert_eq(info.state, REQSIGN_KEY_ACCOUNT_DISABLED);
    cr_assert_eq(reqsign_keystore_account_set_disabled(ks, "acct_a", 0, &err), REQSIGN_OK);
    reqsign_keycache_invalidate(c, NULL, 0);
    cr_assert_eq(reqsign_keycache_lookup(c, r.keyid, strlen(r.keyid), &info, &err), REQSIGN_OK);
    cr_assert_eq(info.state, REQSIGN_KEY_ACTIVE);
    reqsign_keycache_free(c);
    reqsign_keystore_free(ks);
    free(path);
}

/* Issue 13, last use: recorded in memory by record_use, written by the
 * background thread within interval + 1 s, at most once per key per interval,
 * never when only looked up. */
Test(keystore, keycache_last_use_flushed_in_background)
{
    char *path = sqlite_path();
    struct reqsign_error err;
    reqsign_error_clear(&err);
    struct reqsign_keystore *ks = reqsign_keystore_sqlite_open(path, REQSIGN_KEYSTORE_CREATE, &err);
    cr_assert_not_null(ks, "%s", err.message);
    struct reqsign_key_record r, r2, got;
    make_record(1, &r);
    make_record(2, &r2);
    insert_ok("sqlite", ks, &r);
    insert_ok("sqlite", ks, &r2);
    struct reqsign_keycache_opts co = {.store = ks, .positive_ttl = 60};
    struct reqsign_keycache *c = reqsign_keycache_new(&co, &err);
    cr_assert_not_null(c);
    cr_assert_eq(reqsign_keycache_start_flusher(c, ks, "unit-verifier", 2, &err), REQSIGN_OK, "%s",
                 err.message);
    struct reqsign_key_info info;
    cr_assert_eq(reqsign_keycache_lookup(c, r.keyid, strlen(r.keyid), &info, &err), REQSIGN_OK);
    cr_assert_eq(reqsign_keycache_lookup(c, r2.keyid, strlen(r2.keyid), &info, &err), REQSIGN_OK);
    int64_t t0 = (int64_t)time(NULL);
    /* uses of key 1 for 3.5 s; key 2 only looked up */
    for (int i = 0; i < 35; i++) {
        reqsign_keycache_record_use(c, r.keyid, strlen(r.keyid));
        usleep(100 * 1000);
    }
    cr_assert_eq(reqsign_keystore_get(ks, r.keyid, strlen(r.keyid), &got, &err), REQSIGN_OK);
    cr_assert_geq(got.last_used_at, t0, "not written within interval + 1 s");
    cr_assert_str_eq(got.last_used_by, "unit-verifier");
    uint64_t writes = 0, errors = 0;
    reqsign_keycache_use_stats(c, &writes, &errors);
    cr_assert_leq(writes, 2, "at most once per 2 s interval in 3.5 s: %llu writes",
                  (unsigned long long)writes);
    cr_assert_geq(writes, 1);
    cr_assert_eq(errors, 0);
    cr_assert_eq(reqsign_keystore_get(ks, r2.keyid, strlen(r2.keyid), &got, &err), REQSIGN_OK);
    cr_assert_eq(got.last_used_at, 0, "a lookup alone is no use");
    reqsign_keycache_free(c);
    reqsign_keystore_free(ks);
    free(path);
}

/* A store that is down never fails a lookup because of the last-use writes. */
static enum reqsign_status down_touch(void *impl, const char *keyid, int64_t at, const char *by,
                                      struct reqsign_error *err)
{
    (void)impl;
    (void)keyid;
    (void)at;
    (void)by;
    return reqsign_error_set(err, REQSIGN_E_KEYSTORE_UNAVAILABLE, "test", REQSIGN_NO_OFFSET,
                             "down");
}

static enum reqsign_status fake_get(void *impl, const char *keyid, size_t keyid_len,
                                    struct reqsign_key_record *out, struct reqsign_error *err)
{
    (void)impl;
    make_record(1, out);
    snprintf(out->keyid, sizeof(out->keyid), "%.*s", (int)keyid_len, keyid);
    return REQSIGN_OK;
}
static enum reqsign_status fake_insert(void *impl, const struct reqsign_key_record *rec,
                                       struct reqsign_error *err)
{
    return REQSIGN_E_STORE;
}
static enum reqsign_status fake_list(void *impl, const char *after, size_t limit,
                                     struct reqsign_key_record *out, size_t *n,
                                     struct reqsign_error *err)
{
    *n = 0;
    return REQSIGN_OK;
}
static enum reqsign_status fake_revoke(void *impl, const char *keyid, size_t keyid_len, int64_t now,
                                       struct reqsign_error *err)
{
    return REQSIGN_E_STORE;
}

Test(keystore, keycache_last_use_store_down_fails_nothing)
{
    static const struct reqsign_keystore_ops ops = {.get = fake_get,
                                                    .insert = fake_insert,
                                                    .list = fake_list,
                                                    .revoke = fake_revoke,
                                                    .touch = down_touch};
    struct reqsign_keystore *ks = reqsign_keystore_new(&ops, NULL, NULL);
    struct reqsign_error err;
    reqsign_error_clear(&err);
    struct reqsign_keycache_opts co = {.store = ks};
    struct reqsign_keycache *c = reqsign_keycache_new(&co, &err);
    cr_assert_eq(reqsign_keycache_start_flusher(c, ks, "v", 1, &err), REQSIGN_OK);
    struct reqsign_key_info info;
    for (int i = 0; i < 25; i++) {
        cr_assert_eq(reqsign_keycache_lookup(c, "k1", 2, &info, &err), REQSIGN_OK);
        reqsign_keycache_record_use(c, "k1", 2);
        usleep(100 * 1000);
    }
    uint64_t writes = 0, errors = 0;
    reqsign_keycache_use_stats(c, &writes, &errors);
    cr_assert_eq(writes, 0);
    cr_assert_geq(errors, 1, "the flusher tried");
    reqsign_keycache_free(c);
    reqsign_keystore_free(ks);
}

/* Schema version 3 (issue 16): a version-2 database gains keys.publish and
 * accounts.publish_keys, off for what it holds; both round-trip. */
Test(keystore, sqlite_migrates_v2_publish)
{
    char *path = sqlite_path();
    struct reqsign_error err;
    reqsign_error_clear(&err);
    struct reqsign_keystore *ks = reqsign_keystore_sqlite_open(path, REQSIGN_KEYSTORE_CREATE, &err);
    cr_assert_not_null(ks, "%s", err.message);
    struct reqsign_key_record r, got;
    make_record(1, &r);
    insert_ok("sqlite", ks, &r);
    reqsign_keystore_free(ks);
    /* back to what version 2 made */
    sqlite3 *db = raw_open(path);
    cr_assert_eq(sqlite3_exec(db,
                              "ALTER TABLE keys DROP COLUMN publish;"
                              "ALTER TABLE accounts DROP COLUMN publish_keys;"
                              "UPDATE schema_version SET version = 2",
                              NULL, NULL, NULL),
                 SQLITE_OK, "%s", sqlite3_errmsg(db));
    sqlite3_close(db);
    cr_assert_null(reqsign_keystore_sqlite_open(path, REQSIGN_KEYSTORE_READONLY, &err));
    ks = reqsign_keystore_sqlite_open(path, 0, &err);
    cr_assert_not_null(ks, "%s", err.message);
    cr_assert_eq(reqsign_keystore_get(ks, r.keyid, strlen(r.keyid), &got, &err), REQSIGN_OK);
    cr_assert_eq(got.publish, 0);
    struct reqsign_key_record p;
    make_record(2, &p);
    p.publish = 1;
    insert_ok("sqlite", ks, &p);
    cr_assert_eq(reqsign_keystore_get(ks, p.keyid, strlen(p.keyid), &got, &err), REQSIGN_OK);
    cr_assert_eq(got.publish, 1);
    struct reqsign_account a;
    memset(&a, 0, sizeof(a));
    snprintf(a.id, sizeof(a.id), "acct_pub");
    snprintf(a.name, sizeof(a.name), "pub");
    a.key_limit = 5;
    a.created_at = 1;
    a.publish_keys = 1;
    cr_assert_eq(reqsign_keystore_account_insert(ks, &a, &err), REQSIGN_OK, "%s", err.message);
    struct reqsign_account ga;
    cr_assert_eq(reqsign_keystore_account_get(ks, "acct_pub", &ga, &err), REQSIGN_OK);
    cr_assert_eq(ga.publish_keys, 1);
    struct reqsign_key_record k3;
    make_record(3, &k3);
    snprintf(k3.account, sizeof(k3.account), "acct_pub");
    insert_ok("sqlite", ks, &k3);
    cr_assert_eq(reqsign_keystore_get(ks, k3.keyid, strlen(k3.keyid), &got, &err), REQSIGN_OK);
    cr_assert_eq(got.publish, 0);
    cr_assert_eq(got.account_publish_keys, 1);
    reqsign_keystore_free(ks);
    db = raw_open(path);
    cr_assert_eq(raw_int(db, "SELECT version FROM schema_version"), 3);
    sqlite3_close(db);
    free(path);
}
