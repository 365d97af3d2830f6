/* Key store tests.
 *
 * Part one is a CONTRACT suite: every test in it loops over `backends[]` and
 * uses only the public reqsign_keystore_* API plus the backend's two hooks
 * (a fresh location, and open), so a new backend (PostgreSQL) runs it
 * unchanged by adding one row. Part two checks what only SQLite has: files,
 * modes, read-only opens, the schema_version table and migrations.
 */
#include <criterion/criterion.h>

#include <reqsign/keystore.h>

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

static const struct backend backends[] = {
    {"sqlite", sqlite_location, sqlite_open_rw},
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

/* ---- contract ---- */

Test(keystore, round_trip_every_field)
{
    FOR_EACH_BACKEND(b)
    {
        char *loc = b->new_location();
        struct reqsign_keystore *ks = open_or_die(b, loc);
        struct reqsign_key_record r, got;
        struct reqsign_error err;

        /* Every field at its largest. */
        memset(&r, 0, sizeof(r));
        memset(r.keyid, 'k', REQSIGN_KEYID_MAX_LEN);
        r.keyid[0] = '~';
        for (int j = 0; j < REQSIGN_ED25519_PUBLIC_LEN; j++)
            r.public_key[j] = (uint8_t)(0xff - j);
        r.public_key[5] = 0; /* a NUL inside the blob */
        memset(r.label, 'L', REQSIGN_LABEL_MAX);
        memcpy(r.label, "caf\xc3\xa9 ", 6); /* UTF-8 */
        size_t off = 0;
        while (off + REQSIGN_SCOPE_MAX + 1 < sizeof(r.scopes) - 1) {
            memset(r.scopes + off, 's', REQSIGN_SCOPE_MAX);
            off += REQSIGN_SCOPE_MAX;
            r.scopes[off++] = ' ';
        }
        r.scopes[off - 1] = '\0';
        r.created_at = 1700000000;
        r.expires_at = INT64_C(1800000000);
        r.revoked_at = INT64_C(1750000000);
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

        reqsign_keystore_free(ks);
        free(loc);
    }
}

Test(keystore, conflict_names_keyid_or_public_key)
{
    FOR_EACH_BACKEND(b)
    {
        char *loc = b->new_location();
        struct reqsign_keystore *ks = open_or_die(b, loc);
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

        reqsign_keystore_free(ks);
        free(loc);
    }
}

Test(keystore, list_pagination)
{
    static struct reqsign_key_record page[REQSIGN_KEYSTORE_PAGE_MAX];
    FOR_EACH_BACKEND(b)
    {
        char *loc = b->new_location();
        struct reqsign_keystore *ks = open_or_die(b, loc);
        struct reqsign_key_record r;
        struct reqsign_error err;
        size_t n;

        /* Insert in a scrambled order; list must come back sorted. */
        for (int i = 0; i < 250; i++) {
            make_record((i * 97) % 250, &r);
            insert_ok(b->name, ks, &r);
        }
        const size_t want[] = {100, 100, 50, 0};
        char after[REQSIGN_KEYID_MAX_LEN + 1] = "";
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

        reqsign_keystore_free(ks);
        free(loc);
    }
}

Test(keystore, list_limit_clamped_to_page_max)
{
    static struct reqsign_key_record page[REQSIGN_KEYSTORE_PAGE_MAX + 10];
    FOR_EACH_BACKEND(b)
    {
        char *loc = b->new_location();
        struct reqsign_keystore *ks = open_or_die(b, loc);
        struct reqsign_key_record r;
        for (int i = 0; i < REQSIGN_KEYSTORE_PAGE_MAX + 5; i++) {
            make_record(i, &r);
            insert_ok(b->name, ks, &r);
        }
        size_t n = 0;
        cr_assert_eq(
            reqsign_keystore_list(ks, NULL, REQSIGN_KEYSTORE_PAGE_MAX + 10, page, &n, NULL),
            REQSIGN_OK);
        cr_assert_eq(n, REQSIGN_KEYSTORE_PAGE_MAX, "[%s] %zu", b->name, n);
        cr_assert_eq(reqsign_keystore_list(ks, page[n - 1].keyid, 100, page, &n, NULL), REQSIGN_OK);
        cr_assert_eq(n, 5);
        reqsign_keystore_free(ks);
        free(loc);
    }
}

Test(keystore, revoke_keeps_first_time)
{
    FOR_EACH_BACKEND(b)
    {
        char *loc = b->new_location();
        struct reqsign_keystore *ks = open_or_die(b, loc);
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
        cr_assert_eq(reqsign_keystore_revoke(ks, "key-00009", 9, 1000, &err),
                     REQSIGN_E_KEY_UNKNOWN);
        /* The keyid is pointer + length: a longer buffer does not matter. */
        cr_assert_eq(reqsign_keystore_revoke(ks, "key-00008xyz", 9, 1500, NULL), REQSIGN_OK);
        cr_assert_eq(reqsign_keystore_get(ks, "key-00008", 9, &got, NULL), REQSIGN_OK);
        cr_assert_eq(got.revoked_at, 1500);
        /* 0 means "not revoked", so it is not a revocation time. */
        cr_assert_eq(reqsign_keystore_revoke(ks, "key-00007", 9, 0, NULL), REQSIGN_E_INVALID_ARG);
        reqsign_keystore_free(ks);
        free(loc);
    }
}

Test(keystore, unknown_and_bad_keyids)
{
    FOR_EACH_BACKEND(b)
    {
        char *loc = b->new_location();
        struct reqsign_keystore *ks = open_or_die(b, loc);
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
        /* A prefix or an extension of a keyid is another keyid. */
        cr_assert_eq(reqsign_keystore_get(ks, "key-0000", 8, &got, NULL), REQSIGN_E_KEY_UNKNOWN);
        cr_assert_eq(reqsign_keystore_get(ks, "key-000011", 10, &got, NULL), REQSIGN_E_KEY_UNKNOWN);
        cr_assert_eq(reqsign_keystore_get(ks, "key-00001\0", 10, &got, NULL),
                     REQSIGN_E_KEY_UNKNOWN);
        cr_assert_eq(reqsign_keystore_get(ks, "key-000011", 9, &got, NULL), REQSIGN_OK);
        /* Lengths. */
        char longid[REQSIGN_KEYID_MAX_LEN + 2];
        memset(longid, 'a', sizeof(longid));
        cr_assert_eq(reqsign_keystore_get(ks, longid, sizeof(longid), &got, NULL),
                     REQSIGN_E_INVALID_ARG);
        cr_assert_eq(reqsign_keystore_get(ks, longid, REQSIGN_KEYID_MAX_LEN, &got, NULL),
                     REQSIGN_E_KEY_UNKNOWN);
        cr_assert_eq(reqsign_keystore_get(ks, "", 0, &got, NULL), REQSIGN_E_INVALID_ARG);
        cr_assert_eq(reqsign_keystore_get(ks, NULL, 3, &got, NULL), REQSIGN_E_INVALID_ARG);
        cr_assert_eq(reqsign_keystore_get(ks, "key-00001", 9, NULL, NULL), REQSIGN_E_INVALID_ARG);
        reqsign_keystore_free(ks);
        free(loc);
    }
}

Test(keystore, insert_validates_records)
{
    FOR_EACH_BACKEND(b)
    {
        char *loc = b->new_location();
        struct reqsign_keystore *ks = open_or_die(b, loc);
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
        BAD(memset(r.scopes, 'a', REQSIGN_SCOPE_MAX + 1); r.scopes[REQSIGN_SCOPE_MAX + 1] = '\0');
        BAD(r.scopes[2] = '\t');
        BAD(r.created_at = -1);
#undef BAD
        cr_assert_eq(reqsign_keystore_insert(ks, NULL, NULL), REQSIGN_E_INVALID_ARG);
        size_t n = 1;
        struct reqsign_key_record page[4];
        cr_assert_eq(reqsign_keystore_list(ks, NULL, 4, page, &n, NULL), REQSIGN_OK);
        cr_assert_eq(n, 0, "[%s] an invalid record got in", b->name);
        reqsign_keystore_free(ks);
        free(loc);
    }
}

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

Test(keystore, concurrent_inserts)
{
    static struct reqsign_key_record page[REQSIGN_KEYSTORE_PAGE_MAX];
    FOR_EACH_BACKEND(b)
    {
        char *loc = b->new_location();
        struct reqsign_keystore *ks = open_or_die(b, loc);
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
        cr_assert_eq(reqsign_keystore_list(ks, NULL, REQSIGN_KEYSTORE_PAGE_MAX, page, &n, NULL),
                     REQSIGN_OK);
        cr_assert_eq(n, INS_THREADS * INS_PER_THREAD, "[%s] %zu keys", b->name, n);
        for (int i = 0; i < INS_THREADS * INS_PER_THREAD; i++) {
            struct reqsign_key_record r;
            make_record(i, &r);
            assert_same(b->name, &r, &page[i]);
        }
        reqsign_keystore_free(ks);
        free(loc);
    }
}

/* ---- SQLite only ---- */

static char *sqlite_path(void)
{
    return sqlite_location();
}

/* Direct SQLite access for the checks below. The test links only against the
 * reqsign libraries (tests/meson.build gives it server_dep, which does not
 * export sqlite3), so the few functions needed are taken from the libsqlite3
 * the server library already loaded. */
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
    cr_assert_eq(sqlite3_exec(db, "UPDATE schema_version SET version = 0; DROP TABLE keys", NULL,
                              NULL, NULL),
                 SQLITE_OK);
    sqlite3_close(db);
    reqsign_error_clear(&err);
    cr_assert_null(reqsign_keystore_sqlite_open(path, REQSIGN_KEYSTORE_READONLY, &err));
    cr_assert_eq(err.code, REQSIGN_E_STORE);
    cr_assert_not_null(strstr(err.message, "older"), "%s", err.message);
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
                             "NOT IN ('keys', 'schema_version')"),
                 0);
    /* ...and exactly these columns: a new column has to be added here on purpose. */
    static const struct {
        const char *name, *type;
        int notnull;
    } want[] = {
        {"keyid", "TEXT", 0},         {"public_key", "BLOB", 1},    {"label", "TEXT", 1},
        {"scopes", "TEXT", 1},        {"created_at", "INTEGER", 1}, {"expires_at", "INTEGER", 0},
        {"revoked_at", "INTEGER", 0},
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
                               "INSERT INTO keys VALUES ('x', zeroblob(64), '', '', 1, NULL, "
                               "NULL)",
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
