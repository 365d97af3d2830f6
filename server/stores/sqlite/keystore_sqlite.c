/* reqsign: the SQLite key store.
 *
 * Schema. A `schema_version(version INTEGER NOT NULL)` table holds one row,
 * the number of migrations applied; `sq_migrations[i]` takes the schema from
 * version i to i + 1. A read-write open applies the missing ones in one
 * BEGIN IMMEDIATE transaction (so two processes opening at once serialise and
 * the second finds nothing to do) and refuses a database newer than this
 * build. A read-only open migrates nothing: it refuses a file that is
 * missing, has no schema_version table, or has a version other than
 * REQSIGN_SQLITE_SCHEMA_VERSION.
 *
 * Files. The database runs in WAL mode, so readers never block the writer nor
 * each other. A store opened with REQSIGN_KEYSTORE_CREATE creates a missing
 * file itself with open(O_CREAT | O_EXCL, 0600) before SQLite sees it; SQLite
 * gives the -wal and -shm files the database file's mode. They are kept when
 * the last connection closes (SQLITE_FCNTL_PERSIST_WAL), so that a
 * READONLY store of a user who cannot write the directory opens even when no
 * writer runs: SQLite then reads the WAL through a read-only -shm
 * (sqlite.org/wal.html, "read-only databases"), and sees every commit. Nothing private is
 * ever stored: the keys table has no column for it.
 *
 * Connections. The stores' one pool (server/stores/pool/pool.h): a call
 * takes an idle connection (or opens a new one, SQLITE_OPEN_NOMUTEX, with the
 * busy timeout REQSIGN_SQLITE_BUSY_MS and foreign_keys on), uses it alone, and
 * gives it back. At most REQSIGN_SQLITE_POOL_MAX (64) connections are open and
 * REQSIGN_SQLITE_POOL_IDLE_MAX (32) kept idle; a call that finds all 64 in use
 * waits up to REQSIGN_SQLITE_POOL_WAIT_MS (2000 ms, monotonic clock) for one,
 * then fails with REQSIGN_E_KEYSTORE_UNAVAILABLE naming the limit. So
 * concurrent readers never wait for each other below the limit, and threads
 * that come and go leak nothing. Prepared statements are cached per
 * connection. A connection that failed with an I/O or corruption error is
 * closed rather than reused (a local file has no other liveness to check).
 *
 * Errors. SQLITE_BUSY / SQLITE_LOCKED (after the busy timeout) and a file
 * that cannot be opened when a connection is opened lazily map to
 * REQSIGN_E_KEYSTORE_UNAVAILABLE; a UNIQUE violation on insert to
 * REQSIGN_E_CONFLICT, naming the keyid or the public key; out of memory to
 * REQSIGN_E_NOMEM; anything else to REQSIGN_E_STORE with sqlite3_errmsg().
 * Writes on a store opened REQSIGN_KEYSTORE_READONLY are refused with
 * REQSIGN_E_STORE before SQLite is asked.
 */
#include <reqsign/keystore_sqlite.h>

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pool.h"

#define SQ_STR(x) #x
#define SQ_XSTR(x) SQ_STR(x)

static const char sq_src[] = "key store";

/* Migration i takes the schema from version i to i + 1. Append only. */
static const char *const sq_migrations[] = {
    /* 1: the keys table. Public data only. */
    "CREATE TABLE keys ("
    " keyid TEXT PRIMARY KEY,"
    " public_key BLOB NOT NULL UNIQUE CHECK(length(public_key) = 32),"
    " label TEXT NOT NULL,"
    " scopes TEXT NOT NULL,"
    " created_at INTEGER NOT NULL,"
    " expires_at INTEGER,"
    " revoked_at INTEGER"
    ");",
    /* 2: accounts (existing keys go to acct_operator, which may hold any
     * scope: "*"), the key lifecycle columns, enrollment tokens (SHA-256 of
     * the token only), the append-only audit log. */
    "CREATE TABLE accounts ("
    " id TEXT PRIMARY KEY,"
    " name TEXT NOT NULL,"
    " allowed_scopes TEXT NOT NULL,"
    " key_limit INTEGER NOT NULL CHECK(key_limit >= 1),"
    " max_key_lifetime_s INTEGER,"
    " created_at INTEGER NOT NULL,"
    " disabled_at INTEGER"
    ");"
    "INSERT INTO accounts VALUES ('" REQSIGN_ACCOUNT_OPERATOR "', 'operator', '*', 1000000, NULL,"
    " CAST(strftime('%s', 'now') AS INTEGER), NULL);"
    "ALTER TABLE keys ADD COLUMN account TEXT NOT NULL DEFAULT '" REQSIGN_ACCOUNT_OPERATOR "';"
    "ALTER TABLE keys ADD COLUMN disabled_at INTEGER;"
    "ALTER TABLE keys ADD COLUMN replaces TEXT;"
    "ALTER TABLE keys ADD COLUMN replaced_by TEXT;"
    "ALTER TABLE keys ADD COLUMN revoke_reason TEXT;"
    "ALTER TABLE keys ADD COLUMN last_used_at INTEGER;"
    "ALTER TABLE keys ADD COLUMN last_used_by TEXT;"
    "CREATE INDEX keys_by_account ON keys(account, keyid);"
    "CREATE TABLE enrollments ("
    " token_sha256 BLOB PRIMARY KEY CHECK(length(token_sha256) = 32),"
    " account TEXT NOT NULL REFERENCES accounts(id),"
    " created_at INTEGER NOT NULL,"
    " expires_at INTEGER NOT NULL,"
    " used_at INTEGER"
    ");"
    "CREATE TABLE audit ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " time INTEGER NOT NULL,"
    " actor TEXT NOT NULL,"
    " account TEXT NOT NULL,"
    " action TEXT NOT NULL,"
    " target TEXT NOT NULL,"
    " target_account TEXT NOT NULL,"
    " outcome TEXT NOT NULL,"
    " source TEXT NOT NULL,"
    " nonce TEXT NOT NULL"
    ");"
    "CREATE INDEX audit_by_account ON audit(account, seq);"
    "CREATE INDEX audit_by_target_account ON audit(target_account, seq);"
    "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit"
    " BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;"
    "CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit"
    " BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;",
    /* 3: the public directory lists a key only when it or its account says
     * so (issue 16): off for every existing key and account. */
    ("ALTER TABLE keys ADD COLUMN publish INTEGER NOT NULL DEFAULT 0;"
     "ALTER TABLE accounts ADD COLUMN publish_keys INTEGER NOT NULL DEFAULT 0;"),
};
_Static_assert(sizeof(sq_migrations) / sizeof(sq_migrations[0]) == REQSIGN_SQLITE_SCHEMA_VERSION,
               "one migration per schema version");

enum sq_stmt {
    SQ_GET,
    SQ_INSERT,
    SQ_LIST,
    SQ_REVOKE,
    SQ_UPDATE,
    SQ_LIST_FILTER,
    SQ_COUNT_ACTIVE,
    SQ_TOUCH,
    SQ_ACCT_INSERT,
    SQ_ACCT_GET,
    SQ_ACCT_LIST,
    SQ_ACCT_DISABLE,
    SQ_ENROLL_INSERT,
    SQ_ENROLL_CONSUME,
    SQ_AUDIT_APPEND,
    SQ_AUDIT_LIST,
    SQ_NSTMT
};

#define SQ_COLUMNS "keyid, public_key, label, scopes, created_at, expires_at, revoked_at"
#define SQ_KCOLUMNS                                                                                \
    "k.keyid, k.public_key, k.label, k.scopes, k.created_at, k.expires_at, k.revoked_at,"          \
    " k.account, k.disabled_at, a.disabled_at, k.replaces, k.replaced_by, k.revoke_reason,"        \
    " k.last_used_at, k.last_used_by, k.publish, a.publish_keys"
#define SQ_FROM " FROM keys k LEFT JOIN accounts a ON a.id = k.account "
#define SQ_ACOLUMNS                                                                                \
    "id, name, allowed_scopes, key_limit, max_key_lifetime_s, created_at, disabled_at, "           \
    "publish_keys"
#define SQ_EVCOLUMNS "seq, time, actor, account, action, target, outcome, source, nonce"

static const char *const sq_sql[SQ_NSTMT] = {
    [SQ_GET] = "SELECT " SQ_KCOLUMNS SQ_FROM "WHERE k.keyid = ?1",
    [SQ_INSERT] = "INSERT INTO keys (" SQ_COLUMNS ", account, disabled_at, replaces, replaced_by,"
                  " publish)"
                  " SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, NULLIF(?10, ''), NULLIF(?11, ''),"
                  " ?12"
                  " WHERE EXISTS (SELECT 1 FROM accounts WHERE id = ?8)",
    [SQ_LIST] = "SELECT " SQ_KCOLUMNS SQ_FROM "WHERE k.keyid > ?1 ORDER BY k.keyid LIMIT ?2",
    [SQ_REVOKE] = "UPDATE keys SET revoked_at = COALESCE(revoked_at, ?2) WHERE keyid = ?1",
    [SQ_UPDATE] = "UPDATE keys SET expires_at = ?2, disabled_at = ?3, replaces = NULLIF(?4, ''),"
                  " replaced_by = NULLIF(?5, ''), revoked_at = COALESCE(revoked_at, ?6),"
                  " revoke_reason = CASE WHEN revoked_at IS NULL THEN NULLIF(?7, '')"
                  " ELSE revoke_reason END WHERE keyid = ?1",
    [SQ_LIST_FILTER] =
        "SELECT " SQ_KCOLUMNS SQ_FROM "WHERE k.keyid > ?1 AND (?3 = '' OR k.account = ?3) AND"
        " (?4 = 0 OR COALESCE(k.last_used_at, k.created_at) < ?4)"
        " ORDER BY k.keyid LIMIT ?2",
    [SQ_COUNT_ACTIVE] = "SELECT count(*) FROM keys WHERE account = ?1 AND revoked_at IS NULL"
                        " AND (expires_at IS NULL OR expires_at > ?2)",
    [SQ_TOUCH] = "UPDATE keys SET last_used_at = ?2, last_used_by = ?3 WHERE keyid = ?1"
                 " AND (last_used_at IS NULL OR last_used_at < ?2)",
    [SQ_ACCT_INSERT] =
        "INSERT INTO accounts (" SQ_ACOLUMNS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [SQ_ACCT_GET] = "SELECT " SQ_ACOLUMNS " FROM accounts WHERE id = ?1",
    [SQ_ACCT_LIST] = "SELECT " SQ_ACOLUMNS " FROM accounts WHERE id > ?1 ORDER BY id LIMIT ?2",
    [SQ_ACCT_DISABLE] = "UPDATE accounts SET disabled_at = ?2 WHERE id = ?1",
    [SQ_ENROLL_INSERT] = "INSERT INTO enrollments (token_sha256, account, created_at, expires_at)"
                         " VALUES (?1, ?2, ?3, ?4)",
    [SQ_ENROLL_CONSUME] = "UPDATE enrollments SET used_at = ?2 WHERE token_sha256 = ?1 AND"
                          " used_at IS NULL AND expires_at > ?2 AND EXISTS (SELECT 1 FROM"
                          " accounts a WHERE a.id = enrollments.account AND a.disabled_at IS NULL)"
                          " RETURNING account",
    [SQ_AUDIT_APPEND] = "INSERT INTO audit (time, actor, account, action, target, target_account,"
                        " outcome, source, nonce) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    [SQ_AUDIT_LIST] = "SELECT " SQ_EVCOLUMNS " FROM audit WHERE seq > ?1 AND"
                      " (?2 = '' OR account = ?2 OR target_account = ?2) ORDER BY seq LIMIT ?3",
};

struct sq_conn {
    struct reqsign_pool_link link;
    sqlite3 *db;
    sqlite3_stmt *st[SQ_NSTMT];
};

struct sq_store {
    char *path;
    bool readonly;
    struct reqsign_pool *pool;
};

/* ---- errors ---- */

static enum reqsign_status sq_code(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_CANTOPEN:
    case SQLITE_PERM:
        return REQSIGN_E_KEYSTORE_UNAVAILABLE;
    case SQLITE_NOMEM:
        return REQSIGN_E_NOMEM;
    default:
        return REQSIGN_E_STORE;
    }
}

/* Record a failure of @what; @db may be NULL (then the static text of @rc). */
static enum reqsign_status sq_fail(sqlite3 *db, int rc, const char *what, struct reqsign_error *err)
{
    const char *msg = db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    return reqsign_error_set(err, sq_code(rc), sq_src, REQSIGN_NO_OFFSET, "%s: %s (sqlite %d)",
                             what, msg, rc);
}

/* Errors after which a connection is not worth keeping. */
static bool sq_broken(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_IOERR:
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
    case SQLITE_CANTOPEN:
    case SQLITE_FULL:
        return true;
    default:
        return false;
    }
}

/* ---- connections ---- */

static void conn_close(struct sq_conn *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < SQ_NSTMT; i++)
        sqlite3_finalize(c->st[i]);
    sqlite3_close(c->db);
    free(c);
}

/* @lazy: a connection opened for a call, after the store was opened: any
 * failure means the file went away or became unreadable, so the store is
 * unavailable. */
static enum reqsign_status conn_open(const char *path, bool readonly, bool lazy,
                                     struct sq_conn **out, struct reqsign_error *err)
{
    *out = NULL;
    struct sq_conn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return reqsign_error_set(err, REQSIGN_E_NOMEM, sq_src, REQSIGN_NO_OFFSET, NULL);
    /* Never SQLITE_OPEN_CREATE: the open function creates the file (mode 0600). */
    int oflags = (readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE) | SQLITE_OPEN_NOMUTEX |
                 SQLITE_OPEN_PRIVATECACHE;
    int rc = sqlite3_open_v2(path, &c->db, oflags, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_extended_result_codes(c->db, 1);
        sqlite3_busy_timeout(c->db, REQSIGN_SQLITE_BUSY_MS);
        /* Keep the -wal and -shm files when the last connection closes: a
         * verifier that may only read the database (another user, a 0644 or
         * 0640 file in a directory it cannot write) can open a WAL database
         * only if both exist (sqlite.org/wal.html, "read-only databases"). */
        int persist = 1;
        (void)sqlite3_file_control(c->db, "main", SQLITE_FCNTL_PERSIST_WAL, &persist);
        rc = sqlite3_exec(c->db, "PRAGMA foreign_keys = ON", NULL, NULL, NULL);
    }
    if (rc != SQLITE_OK) {
        const char *msg = c->db != NULL ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc);
        enum reqsign_status st =
            reqsign_error_set(err, lazy ? REQSIGN_E_KEYSTORE_UNAVAILABLE : sq_code(rc), sq_src,
                              REQSIGN_NO_OFFSET, "cannot open %s: %s (sqlite %d)", path, msg, rc);
        conn_close(c);
        return st;
    }
    *out = c;
    return REQSIGN_OK;
}

/* The pool's callbacks: a connection opened for a call is opened lazily. */
static enum reqsign_status pool_open(void *ctx, void *arg, struct reqsign_pool_link **out,
                                     struct reqsign_error *err)
{
    (void)arg;
    struct sq_store *s = ctx;
    struct sq_conn *c = NULL;
    enum reqsign_status st = conn_open(s->path, s->readonly, true, &c, err);
    *out = c != NULL ? &c->link : NULL;
    return st;
}

static void pool_close(void *ctx, struct reqsign_pool_link *l)
{
    (void)ctx;
    conn_close(REQSIGN_POOL_OF(l, struct sq_conn, link));
}

static const struct reqsign_pool_ops sq_pool_ops = {.open = pool_open, .close = pool_close};

static enum reqsign_status conn_get(struct sq_store *s, struct sq_conn **out,
                                    struct reqsign_error *err)
{
    struct reqsign_pool_link *l;
    *out = NULL;
    enum reqsign_status st = reqsign_pool_get(s->pool, false, NULL, &l, NULL, err);
    if (st == REQSIGN_OK)
        *out = REQSIGN_POOL_OF(l, struct sq_conn, link);
    return st;
}

/* Give @c back after a call that ended with SQLite code @rc. */
static void conn_put(struct sq_store *s, struct sq_conn *c, int rc)
{
    if (c != NULL)
        reqsign_pool_put(s->pool, &c->link, sq_broken(rc) ? REQSIGN_POOL_DROP : REQSIGN_POOL_KEEP);
}

static int conn_stmt(struct sq_conn *c, enum sq_stmt which, sqlite3_stmt **out)
{
    if (c->st[which] == NULL) {
        int rc = sqlite3_prepare_v3(c->db, sq_sql[which], -1, SQLITE_PREPARE_PERSISTENT,
                                    &c->st[which], NULL);
        if (rc != SQLITE_OK) {
            sqlite3_finalize(c->st[which]);
            c->st[which] = NULL;
            return rc;
        }
    }
    *out = c->st[which];
    return SQLITE_OK;
}

static void stmt_done(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

/* A pooled connection and its prepared statement @which, for operation @what
 * (named in the error). On failure nothing is held. */
static enum reqsign_status conn_stmt_get(struct sq_store *s, enum sq_stmt which, const char *what,
                                         struct sq_conn **c, sqlite3_stmt **st,
                                         struct reqsign_error *err)
{
    *c = NULL;
    *st = NULL;
    enum reqsign_status ret = conn_get(s, c, err);
    if (ret != REQSIGN_OK)
        return ret;
    int rc = conn_stmt(*c, which, st);
    if (rc != SQLITE_OK) {
        ret = sq_fail((*c)->db, rc, what, err);
        conn_put(s, *c, rc);
        *c = NULL;
        return ret;
    }
    return REQSIGN_OK;
}

/* ---- rows ---- */

static enum reqsign_status corrupt(const char *what, struct reqsign_error *err)
{
    return reqsign_error_set(err, REQSIGN_E_STORE, sq_src, REQSIGN_NO_OFFSET,
                             "malformed row in keys: %s", what);
}

static enum reqsign_status copy_text(sqlite3_stmt *st, int col, char *dst, size_t cap,
                                     bool nonempty, const char *what, struct reqsign_error *err)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    int len = sqlite3_column_bytes(st, col);
    if (t == NULL || len < 0 || (size_t)len >= cap || (nonempty && len == 0) ||
        memchr(t, '\0', (size_t)len) != NULL)
        return corrupt(what, err);
    memcpy(dst, t, (size_t)len);
    dst[len] = '\0';
    return REQSIGN_OK;
}

/* A nullable text column: NULL reads as "". */
static enum reqsign_status copy_opt(sqlite3_stmt *st, int col, char *dst, size_t cap,
                                    const char *what, struct reqsign_error *err)
{
    if (sqlite3_column_type(st, col) == SQLITE_NULL) {
        dst[0] = '\0';
        return REQSIGN_OK;
    }
    return copy_text(st, col, dst, cap, false, what, err);
}

static int64_t column_time(sqlite3_stmt *st, int col)
{
    if (sqlite3_column_type(st, col) == SQLITE_NULL)
        return 0;
    return (int64_t)sqlite3_column_int64(st, col);
}

static enum reqsign_status row_to_record(sqlite3_stmt *st, void *dst, struct reqsign_error *err)
{
    struct reqsign_key_record *r = dst;
    memset(r, 0, sizeof(*r));
    enum reqsign_status s = copy_text(st, 0, r->keyid, sizeof(r->keyid), true, "keyid", err);
    if (s == REQSIGN_OK)
        s = copy_text(st, 2, r->label, sizeof(r->label), false, "label", err);
    if (s == REQSIGN_OK)
        s = copy_text(st, 3, r->scopes, sizeof(r->scopes), false, "scopes", err);
    if (s != REQSIGN_OK)
        return s;
    const void *pk = sqlite3_column_blob(st, 1);
    if (pk == NULL || sqlite3_column_bytes(st, 1) != REQSIGN_ED25519_PUBLIC_LEN)
        return corrupt("public_key", err);
    memcpy(r->public_key, pk, REQSIGN_ED25519_PUBLIC_LEN);
    r->created_at = (int64_t)sqlite3_column_int64(st, 4);
    r->expires_at = column_time(st, 5);
    r->revoked_at = column_time(st, 6);
    if (sqlite3_column_count(st) < 17)
        return REQSIGN_OK;
    s = copy_text(st, 7, r->account, sizeof(r->account), true, "account", err);
    if (s == REQSIGN_OK)
        s = copy_opt(st, 10, r->replaces, sizeof(r->replaces), "replaces", err);
    if (s == REQSIGN_OK)
        s = copy_opt(st, 11, r->replaced_by, sizeof(r->replaced_by), "replaced_by", err);
    if (s == REQSIGN_OK)
        s = copy_opt(st, 12, r->revoke_reason, sizeof(r->revoke_reason), "revoke_reason", err);
    if (s == REQSIGN_OK)
        s = copy_opt(st, 14, r->last_used_by, sizeof(r->last_used_by), "last_used_by", err);
    r->disabled_at = column_time(st, 8);
    r->account_disabled_at = column_time(st, 9);
    r->last_used_at = column_time(st, 13);
    r->publish = sqlite3_column_int(st, 15) != 0;
    r->account_publish_keys = sqlite3_column_int(st, 16) != 0;
    return s;
}

/* Fills the row at @dst (a struct of the list's type) from @st's current row. */
typedef enum reqsign_status (*sq_row_fn)(sqlite3_stmt *st, void *dst, struct reqsign_error *err);

/* The loop of every list: step @st (parameters bound; @rc the result of
 * binding them) and read at most @limit rows with @row into @out, an array of
 * elements of @size bytes; a row beyond @limit (the statements say LIMIT, so
 * never) is stepped over, never written. Then reset @st and give @c back.
 * *@n gets the rows read, on success only. @what names the operation in
 * errors. */
static enum reqsign_status sq_rows(struct sq_store *s, struct sq_conn *c, sqlite3_stmt *st, int rc,
                                   const char *what, sq_row_fn row, void *out, size_t size,
                                   size_t limit, size_t *n, struct reqsign_error *err)
{
    enum reqsign_status ret = REQSIGN_OK;
    size_t got = 0;
    while (rc == SQLITE_OK || rc == SQLITE_ROW) {
        rc = sqlite3_step(st);
        if (rc != SQLITE_ROW)
            break;
        if (got == limit)
            continue;
        ret = row(st, (char *)out + got * size, err);
        if (ret != REQSIGN_OK)
            break;
        got++;
    }
    if (ret == REQSIGN_OK && rc != SQLITE_DONE)
        ret = sq_fail(c->db, rc, what, err);
    if (rc == SQLITE_DONE || rc == SQLITE_ROW)
        rc = SQLITE_OK; /* a row that did not parse leaves the connection healthy */
    stmt_done(st);
    conn_put(s, c, rc);
    if (ret == REQSIGN_OK)
        *n = got;
    return ret;
}

/* ---- operations ---- */

static int bind_time(sqlite3_stmt *st, int i, int64_t t)
{
    return t != 0 ? sqlite3_bind_int64(st, i, t) : sqlite3_bind_null(st, i);
}

static enum reqsign_status sq_get(void *impl, const char *keyid, size_t keyid_len,
                                  struct reqsign_key_record *out, struct reqsign_error *err)
{
    struct sq_store *s = impl;
    struct sq_conn *c;
    sqlite3_stmt *st;
    enum reqsign_status ret = conn_stmt_get(s, SQ_GET, "get", &c, &st, err);
    if (ret != REQSIGN_OK)
        return ret;
    int rc = sqlite3_bind_text(st, 1, keyid, (int)keyid_len, SQLITE_STATIC);
    size_t n = 0;
    ret = sq_rows(s, c, st, rc, "get", row_to_record, out, sizeof(*out), 1, &n, err);
    if (ret == REQSIGN_OK && n == 0)
        ret = reqsign_error_set(err, REQSIGN_E_KEY_UNKNOWN, sq_src, REQSIGN_NO_OFFSET,
                                "no key with this keyid");
    if (ret != REQSIGN_OK)
        memset(out, 0, sizeof(*out));
    return ret;
}

static enum reqsign_status refuse_readonly(const char *what, struct reqsign_error *err)
{
    return reqsign_error_set(err, REQSIGN_E_STORE, sq_src, REQSIGN_NO_OFFSET,
                             "%s refused: the key store is open read-only", what);
}

/* Insert @rec on @c; *@rc_out as conn_put wants it. */
static enum reqsign_status sq_insert_on(struct sq_conn *c, const struct reqsign_key_record *rec,
                                        int *rc_out, struct reqsign_error *err)
{
    enum reqsign_status ret = REQSIGN_OK;
    sqlite3_stmt *st;
    int rc = conn_stmt(c, SQ_INSERT, &st);
    if (rc != SQLITE_OK) {
        *rc_out = rc;
        return sq_fail(c->db, rc, "insert", err);
    }
    /* The wrapper checked that the strings are NUL-terminated in their arrays. */
    rc = sqlite3_bind_text(st, 1, rec->keyid, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_blob(st, 2, rec->public_key, REQSIGN_ED25519_PUBLIC_LEN, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 3, rec->label, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 4, rec->scopes, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 5, rec->created_at);
    if (rc == SQLITE_OK)
        rc = rec->expires_at != 0 ? sqlite3_bind_int64(st, 6, rec->expires_at)
                                  : sqlite3_bind_null(st, 6);
    if (rc == SQLITE_OK)
        rc = rec->revoked_at != 0 ? sqlite3_bind_int64(st, 7, rec->revoked_at)
                                  : sqlite3_bind_null(st, 7);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 8, rec->account[0] ? rec->account : REQSIGN_ACCOUNT_OPERATOR, -1,
                               SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = bind_time(st, 9, rec->disabled_at);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 10, rec->replaces, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 11, rec->replaced_by, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(st, 12, rec->publish != 0);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        rc = SQLITE_OK;
        if (sqlite3_changes(c->db) == 0) /* keys.account has no REFERENCES (ALTER TABLE) */
            ret = reqsign_error_set(err, REQSIGN_E_NOT_FOUND, sq_src, REQSIGN_NO_OFFSET,
                                    "no such account");
    } else if ((rc & 0xff) == SQLITE_CONSTRAINT) {
        const char *msg = sqlite3_errmsg(c->db);
        if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || strstr(msg, "keys.keyid") != NULL)
            ret = reqsign_error_set(err, REQSIGN_E_CONFLICT, sq_src, REQSIGN_NO_OFFSET,
                                    "keyid already exists (revoked keys included)");
        else if (strstr(msg, "keys.public_key") != NULL)
            ret = reqsign_error_set(err, REQSIGN_E_CONFLICT, sq_src, REQSIGN_NO_OFFSET,
                                    "public key already registered (revoked keys included)");
        else
            ret = sq_fail(c->db, rc, "insert", err);
        rc = SQLITE_OK;
    } else {
        ret = sq_fail(c->db, rc, "insert", err);
    }
    stmt_done(st);
    *rc_out = rc;
    return ret;
}

static enum reqsign_status sq_insert(void *impl, const struct reqsign_key_record *rec,
                                     struct reqsign_error *err)
{
    struct sq_store *s = impl;
    if (s->readonly)
        return refuse_readonly("insert", err);
    struct sq_conn *c;
    enum reqsign_status ret = conn_get(s, &c, err);
    if (ret != REQSIGN_OK)
        return ret;
    int rc = SQLITE_OK;
    ret = sq_insert_on(c, rec, &rc, err);
    conn_put(s, c, rc);
    return ret;
}

/* Active keys of @account at @now, on @c. */
static enum reqsign_status sq_count_on(struct sq_conn *c, const char *account, int64_t now,
                                       int64_t *n, int *rc_out, struct reqsign_error *err)
{
    sqlite3_stmt *st = NULL;
    enum reqsign_status ret = REQSIGN_OK;
    int rc = conn_stmt(c, SQ_COUNT_ACTIVE, &st);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 1, account, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 2, now);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *n = (int64_t)sqlite3_column_int64(st, 0);
        rc = SQLITE_OK;
    } else {
        ret = sq_fail(c->db, rc, "count", err);
    }
    if (st != NULL)
        stmt_done(st);
    *rc_out = rc;
    return ret;
}

/* BEGIN IMMEDIATE takes the write lock before the count, so no other writer
 * can add a key between the count and the insert (in WAL mode a deferred
 * transaction would fail with SQLITE_BUSY_SNAPSHOT instead of waiting). */
static enum reqsign_status sq_insert_limited(void *impl, const struct reqsign_key_record *rec,
                                             int64_t now, int64_t max_active,
                                             struct reqsign_error *err)
{
    struct sq_store *s = impl;
    if (s->readonly)
        return refuse_readonly("insert", err);
    struct sq_conn *c;
    enum reqsign_status ret = conn_get(s, &c, err);
    if (ret != REQSIGN_OK)
        return ret;
    const char *account = rec->account[0] ? rec->account : REQSIGN_ACCOUNT_OPERATOR;
    int rc = sqlite3_exec(c->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        ret = sq_fail(c->db, rc, "insert", err);
        conn_put(s, c, rc);
        return ret;
    }
    int64_t n = 0;
    ret = sq_count_on(c, account, now, &n, &rc, err);
    if (ret == REQSIGN_OK && n >= max_active)
        ret = reqsign_error_set(err, REQSIGN_E_KEY_LIMIT, sq_src, REQSIGN_NO_OFFSET,
                                "the account has %lld of at most %lld active keys", (long long)n,
                                (long long)max_active);
    if (ret == REQSIGN_OK)
        ret = sq_insert_on(c, rec, &rc, err);
    if (ret == REQSIGN_OK) {
        rc = sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL);
        if (rc != SQLITE_OK)
            ret = sq_fail(c->db, rc, "insert", err);
    }
    if (ret != REQSIGN_OK && !sqlite3_get_autocommit(c->db))
        (void)sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
    conn_put(s, c, rc);
    return ret;
}

static enum reqsign_status sq_list(void *impl, const char *after, size_t limit,
                                   struct reqsign_key_record *out, size_t *n,
                                   struct reqsign_error *err)
{
    struct sq_store *s = impl;
    *n = 0;
    struct sq_conn *c;
    sqlite3_stmt *st;
    enum reqsign_status ret = conn_stmt_get(s, SQ_LIST, "list", &c, &st, err);
    if (ret != REQSIGN_OK)
        return ret;
    int rc = sqlite3_bind_text(st, 1, after, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 2, (sqlite3_int64)limit);
    return sq_rows(s, c, st, rc, "list", row_to_record, out, sizeof(*out), limit, n, err);
}

static enum reqsign_status sq_revoke(void *impl, const char *keyid, size_t keyid_len, int64_t now,
                                     struct reqsign_error *err)
{
    struct sq_store *s = impl;
    if (s->readonly)
        return refuse_readonly("revoke", err);
    struct sq_conn *c;
    sqlite3_stmt *st;
    enum reqsign_status ret = conn_stmt_get(s, SQ_REVOKE, "revoke", &c, &st, err);
    if (ret != REQSIGN_OK)
        return ret;
    int rc = sqlite3_bind_text(st, 1, keyid, (int)keyid_len, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 2, now);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        rc = SQLITE_OK;
        if (sqlite3_changes(c->db) == 0)
            ret = reqsign_error_set(err, REQSIGN_E_KEY_UNKNOWN, sq_src, REQSIGN_NO_OFFSET,
                                    "no key with this keyid");
    } else {
        ret = sq_fail(c->db, rc, "revoke", err);
    }
    stmt_done(st);
    conn_put(s, c, rc);
    return ret;
}

/* ---- accounts and the key lifecycle ---- */

/* Step a write statement whose parameters are bound; rc as conn_put wants it.
 * *@changes gets sqlite3_changes(). */
static enum reqsign_status sq_step_write(struct sq_conn *c, sqlite3_stmt *st, int rc,
                                         const char *what, int *changes, int *rc_out,
                                         struct reqsign_error *err)
{
    enum reqsign_status ret = REQSIGN_OK;
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        rc = SQLITE_OK;
        if (changes != NULL)
            *changes = sqlite3_changes(c->db);
    } else if ((rc & 0xff) == SQLITE_CONSTRAINT &&
               (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE)) {
        ret = reqsign_error_set(err, REQSIGN_E_CONFLICT, sq_src, REQSIGN_NO_OFFSET,
                                "%s: already exists", what);
        rc = SQLITE_OK;
    } else if (rc == SQLITE_CONSTRAINT_FOREIGNKEY) {
        ret = reqsign_error_set(err, REQSIGN_E_NOT_FOUND, sq_src, REQSIGN_NO_OFFSET,
                                "%s: no such account", what);
        rc = SQLITE_OK;
    } else {
        ret = sq_fail(c->db, rc, what, err);
    }
    stmt_done(st);
    *rc_out = rc;
    return ret;
}

static enum reqsign_status sq_update(void *impl, const struct reqsign_key_record *rec,
                                     struct reqsign_error *err)
{
    struct sq_store *s = impl;
    if (s->readonly)
        return refuse_readonly("update", err);
    struct sq_conn *c;
    sqlite3_stmt *st;
    enum reqsign_status ret = conn_stmt_get(s, SQ_UPDATE, "update", &c, &st, err);
    if (ret != REQSIGN_OK)
        return ret;
    int rc = sqlite3_bind_text(st, 1, rec->keyid, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = bind_time(st, 2, rec->expires_at);
    if (rc == SQLITE_OK)
        rc = bind_time(st, 3, rec->disabled_at);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 4, rec->replaces, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 5, rec->replaced_by, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = bind_time(st, 6, rec->revoked_at);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 7, rec->revoke_reason, -1, SQLITE_STATIC);
    int changes = 0;
    ret = sq_step_write(c, st, rc, "update", &changes, &rc, err);
    conn_put(s, c, rc);
    if (ret == REQSIGN_OK && changes == 0)
        ret = reqsign_error_set(err, REQSIGN_E_KEY_UNKNOWN, sq_src, REQSIGN_NO_OFFSET,
                                "no key with this keyid");
    return ret;
}

static enum reqsign_status sq_list_filter(void *impl, const struct reqsign_key_filter *f,
                                          const char *after, size_t limit,
                                          struct reqsign_key_record *out, size_t *n,
                                          struct reqsign_error *err)
{
    struct sq_store *s = impl;
    *n = 0;
    struct sq_conn *c;
    sqlite3_stmt *st;
    enum reqsign_status ret = conn_stmt_get(s, SQ_LIST_FILTER, "list", &c, &st, err);
    if (ret != REQSIGN_OK)
        return ret;
    int rc = sqlite3_bind_text(st, 1, after, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 2, (sqlite3_int64)limit);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 3, f->account != NULL ? f->account : "", -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 4, f->unused_before);
    return sq_rows(s, c, st, rc, "list", row_to_record, out, sizeof(*out), limit, n, err);
}

static enum reqsign_status sq_count_active(void *impl, const char *account, int64_t now, int64_t *n,
                                           struct reqsign_error *err)
{
    struct sq_store *s = impl;
    struct sq_conn *c;
    sqlite3_stmt *st;
    enum reqsign_status ret = conn_stmt_get(s, SQ_COUNT_ACTIVE, "count", &c, &st, err);
    if (ret != REQSIGN_OK)
        return ret;
    int rc = sqlite3_bind_text(st, 1, account, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 2, now);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *n = (int64_t)sqlite3_column_int64(st, 0);
        rc = SQLITE_OK;
    } else {
        ret = sq_fail(c->db, rc, "count", err);
    }
    stmt_done(st);
    conn_put(s, c, rc);
    return ret;
}

static enum reqsign_status sq_touch(void *impl, const char *keyid, int64_t at, const char *by,
                                    struct reqsign_error *err)
{
    struct sq_store *s = impl;
    if (s->readonly)
        return refuse_readonly("touch", err);
    struct sq_conn *c;
    sqlite3_stmt *st;
    enum reqsign_status ret = conn_stmt_get(s, SQ_TOUCH, "touch", &c, &st, err);
    if (ret != REQSIGN_OK)
        return ret;
    int rc = sqlite3_bind_text(st, 1, keyid, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 2, at);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 3, by, -1, SQLITE_STATIC);
    ret = sq_step_write(c, st, rc, "touch", NULL, &rc, err);
    conn_put(s, c, rc);
    return ret;
}

static enum reqsign_status row_to_account(sqlite3_stmt *st, void *dst, struct reqsign_error *err)
{
    struct reqsign_account *a = dst;
    memset(a, 0, sizeof(*a));
    enum reqsign_status s = copy_text(st, 0, a->id, sizeof(a->id), true, "account id", err);
    if (s == REQSIGN_OK)
        s = copy_text(st, 1, a->name, sizeof(a->name), false, "account name", err);
    if (s == REQSIGN_OK)
        s = copy_text(st, 2, a->allowed_scopes, sizeof(a->allowed_scopes), false, "allowed_scopes",
                      err);
    a->key_limit = (int64_t)sqlite3_column_int64(st, 3);
    a->max_key_lifetime_s = column_time(st, 4);
    a->created_at = (int64_t)sqlite3_column_int64(st, 5);
    a->disabled_at = column_time(st, 6);
    a->publish_keys = sqlite3_column_int(st, 7) != 0;
    return s;
}

static enum reqsign_status sq_account_insert(void *impl, const struct reqsign_account *a,
                                             struct reqsign_error *err)
{
    struct sq_store *s = impl;
    if (s->readonly)
        return refuse_readonly("account insert", err);
    struct sq_conn *c;
    sqlite3_stmt *st;
    enum reqsign_status ret = conn_stmt_get(s, SQ_ACCT_INSERT, "account insert", &c, &st, err);
    if (ret != REQSIGN_OK)
        return ret;
    int rc = sqlite3_bind_text(st, 1, a->id, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 2, a->name, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 3, a->allowed_scopes, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 4, a->key_limit);
    if (rc == SQLITE_OK)
        rc = bind_time(st, 5, a->max_key_lifetime_s);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 6, a->created_at);
    if (rc == SQLITE_OK)
        rc = bind_time(st, 7, a->disabled_at);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(st, 8, a->publish_keys != 0);
    ret = sq_step_write(c, st, rc, "account insert", NULL, &rc, err);
    conn_put(s, c, rc);
    return ret;
}

static enum reqsign_status sq_account_get(void *impl, const char *id, struct reqsign_account *out,
                                          struct reqsign_error *err)
{
    struct sq_store *s = impl;
    struct sq_conn *c;
    sqlite3_stmt *st;
    enum reqsign_status ret = conn_stmt_get(s, SQ_ACCT_GET, "account get", &c, &st, err);
    if (ret != REQSIGN_OK)
        return ret;
    int rc = sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    size_t n = 0;
    ret = sq_rows(s, c, st, rc, "account get", row_to_account, out, sizeof(*out), 1, &n, err);
    if (ret == REQSIGN_OK && n == 0)
        ret = reqsign_error_set(err, REQSIGN_E_NOT_FOUND, sq_src, REQSIGN_NO_OFFSET,
                                "no such account");
    return ret;
}

static enum reqsign_status sq_account_list(void *impl, const char *after, size_t limit,
                                           struct reqsign_account *out, size_t *n,
                                           struct reqsign_error *err)
{
    struct sq_store *s = impl;
    struct sq_conn *c;
    sqlite3_stmt *st;
    enum reqsign_status ret = conn_stmt_get(s, SQ_ACCT_LIST, "account list", &c, &st, err);
    if (ret != REQSIGN_OK)
        return ret;
    int rc = sqlite3_bind_text(st, 1, after, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 2, (sqlite3_int64)limit);
    return sq_rows(s, c, st, rc, "account list", row_to_account, out, sizeof(*out), limit, n, err);
}

static enum reqsign_status sq_account_set_disabled(void *impl, const char *id, int64_t at,
                                                   struct reqsign_error *err)
{
    struct sq_store *s = impl;
    if (s->readonly)
        return refuse_readonly("account update", err);
    struct sq_conn *c;
    sqlite3_stmt *st;
    enum reqsign_status ret = conn_stmt_get(s, SQ_ACCT_DISABLE, "account update", &c, &st, err);
    if (ret != REQSIGN_OK)
        return ret;
    int rc = sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = bind_time(st, 2, at);
    int changes = 0;
    ret = sq_step_write(c, st, rc, "account update", &changes, &rc, err);
    conn_put(s, c, rc);
    if (ret == REQSIGN_OK && changes == 0)
        ret = reqsign_error_set(err, REQSIGN_E_NOT_FOUND, sq_src, REQSIGN_NO_OFFSET,
                                "no such account");
    return ret;
}

static enum reqsign_status sq_enrollment_insert(void *impl,
                                                const uint8_t hash[REQSIGN_ENROLLMENT_HASH_LEN],
                                                const char *account, int64_t created_at,
                                                int64_t expires_at, struct reqsign_error *err)
{
    struct sq_store *s = impl;
    if (s->readonly)
        return refuse_readonly("enrollment insert", err);
    struct sq_conn *c;
    sqlite3_stmt *st;
    enum reqsign_status ret = conn_stmt_get(s, SQ_ENROLL_INSERT, "enrollment insert", &c, &st, err);
    if (ret != REQSIGN_OK)
        return ret;
    int rc = sqlite3_bind_blob(st, 1, hash, REQSIGN_ENROLLMENT_HASH_LEN, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 2, account, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 3, created_at);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 4, expires_at);
    ret = sq_step_write(c, st, rc, "enrollment insert", NULL, &rc, err);
    conn_put(s, c, rc);
    return ret;
}

static enum reqsign_status
sq_enrollment_consume(void *impl, const uint8_t hash[REQSIGN_ENROLLMENT_HASH_LEN], int64_t now,
                      char account_out[REQSIGN_ACCOUNT_ID_IN_MAX + 1], struct reqsign_error *err)
{
    struct sq_store *s = impl;
    if (s->readonly)
        return refuse_readonly("enrollment", err);
    struct sq_conn *c;
    sqlite3_stmt *st;
    enum reqsign_status ret = conn_stmt_get(s, SQ_ENROLL_CONSUME, "enrollment", &c, &st, err);
    if (ret != REQSIGN_OK)
        return ret;
    int rc = sqlite3_bind_blob(st, 1, hash, REQSIGN_ENROLLMENT_HASH_LEN, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 2, now);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        ret = copy_text(st, 0, account_out, REQSIGN_ACCOUNT_ID_IN_MAX + 1, true, "account", err);
        rc = sqlite3_step(st); /* to SQLITE_DONE: the UPDATE is complete */
        if (rc == SQLITE_DONE)
            rc = SQLITE_OK;
        else if (ret == REQSIGN_OK)
            ret = sq_fail(c->db, rc, "enrollment", err);
    } else if (rc == SQLITE_DONE) {
        ret = reqsign_error_set(err, REQSIGN_E_ENROLLMENT_INVALID, sq_src, REQSIGN_NO_OFFSET,
                                "enrollment token unknown, used or expired");
        rc = SQLITE_OK;
    } else {
        ret = sq_fail(c->db, rc, "enrollment", err);
    }
    stmt_done(st);
    conn_put(s, c, rc);
    if (ret != REQSIGN_OK)
        account_out[0] = '\0';
    return ret;
}

static enum reqsign_status sq_audit_append(void *impl, const struct reqsign_audit_event *ev,
                                           struct reqsign_error *err)
{
    struct sq_store *s = impl;
    if (s->readonly)
        return refuse_readonly("audit", err);
    struct sq_conn *c;
    sqlite3_stmt *st;
    enum reqsign_status ret = conn_stmt_get(s, SQ_AUDIT_APPEND, "audit", &c, &st, err);
    if (ret != REQSIGN_OK)
        return ret;
    int rc = sqlite3_bind_int64(st, 1, ev->time);
    const char *txt[8] = {ev->actor,          ev->account, ev->action, ev->target,
                          ev->target_account, ev->outcome, ev->source, ev->nonce};
    for (int i = 0; i < 8 && rc == SQLITE_OK; i++)
        rc = sqlite3_bind_text(st, i + 2, txt[i], -1, SQLITE_STATIC);
    ret = sq_step_write(c, st, rc, "audit", NULL, &rc, err);
    conn_put(s, c, rc);
    return ret;
}

static enum reqsign_status row_to_audit(sqlite3_stmt *st, void *dst, struct reqsign_error *err)
{
    struct reqsign_audit_event *e = dst;
    memset(e, 0, sizeof(*e));
    e->seq = (int64_t)sqlite3_column_int64(st, 0);
    e->time = (int64_t)sqlite3_column_int64(st, 1);
    struct {
        char *dst;
        size_t cap;
    } f[7] = {{e->actor, sizeof(e->actor)},     {e->account, sizeof(e->account)},
              {e->action, sizeof(e->action)},   {e->target, sizeof(e->target)},
              {e->outcome, sizeof(e->outcome)}, {e->source, sizeof(e->source)},
              {e->nonce, sizeof(e->nonce)}};
    enum reqsign_status ret = REQSIGN_OK;
    for (int i = 0; i < 7 && ret == REQSIGN_OK; i++)
        ret = copy_text(st, i + 2, f[i].dst, f[i].cap, false, "audit", err);
    return ret;
}

static enum reqsign_status sq_audit_list(void *impl, const char *account, int64_t after,
                                         size_t limit, struct reqsign_audit_event *out, size_t *n,
                                         struct reqsign_error *err)
{
    struct sq_store *s = impl;
    struct sq_conn *c;
    sqlite3_stmt *st;
    enum reqsign_status ret = conn_stmt_get(s, SQ_AUDIT_LIST, "audit list", &c, &st, err);
    if (ret != REQSIGN_OK)
        return ret;
    int rc = sqlite3_bind_int64(st, 1, after);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 2, account, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 3, (sqlite3_int64)limit);
    return sq_rows(s, c, st, rc, "audit list", row_to_audit, out, sizeof(*out), limit, n, err);
}

static void sq_free(void *impl)
{
    struct sq_store *s = impl;
    if (s == NULL)
        return;
    reqsign_pool_free(s->pool);
    free(s->path);
    free(s);
}

/* ---- open: journal mode, schema ---- */

static enum reqsign_status sq_exec(sqlite3 *db, const char *sql, const char *what,
                                   struct reqsign_error *err)
{
    int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return sq_fail(db, rc, what, err);
    return REQSIGN_OK;
}

/* One integer from @sql; *@found = 0 if no row. */
static enum reqsign_status sq_int(sqlite3 *db, const char *sql, int64_t *val, int *found,
                                  const char *what, struct reqsign_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    enum reqsign_status ret = REQSIGN_OK;
    *found = 0;
    if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
        *val = (int64_t)sqlite3_column_int64(st, 0);
        *found = 1;
    } else if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        ret = sq_fail(db, rc, what, err);
    }
    sqlite3_finalize(st);
    return ret;
}

static enum reqsign_status set_wal(sqlite3 *db, struct reqsign_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    enum reqsign_status ret = REQSIGN_OK;
    if (rc == SQLITE_ROW) {
        const unsigned char *mode = sqlite3_column_text(st, 0);
        if (mode == NULL || strcmp((const char *)mode, "wal") != 0)
            ret = reqsign_error_set(err, REQSIGN_E_STORE, sq_src, REQSIGN_NO_OFFSET,
                                    "cannot switch the database to WAL mode (mode is %s)",
                                    mode != NULL ? (const char *)mode : "unknown");
    } else {
        ret = sq_fail(db, rc, "cannot switch the database to WAL mode", err);
    }
    sqlite3_finalize(st);
    return ret;
}

static enum reqsign_status migrate(sqlite3 *db, struct reqsign_error *err)
{
    enum reqsign_status st = sq_exec(db, "BEGIN IMMEDIATE", "cannot lock the database", err);
    if (st != REQSIGN_OK)
        return st;
    st = sq_exec(db, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
                 "cannot create schema_version", err);
    int64_t v = 0;
    int found = 0;
    if (st == REQSIGN_OK)
        st = sq_int(db, "SELECT max(version) FROM schema_version", &v, &found,
                    "cannot read schema_version", err);
    if (st == REQSIGN_OK && (v < 0 || v > REQSIGN_SQLITE_SCHEMA_VERSION))
        st = reqsign_error_set(err, REQSIGN_E_STORE, sq_src, REQSIGN_NO_OFFSET,
                               "database schema version %lld is not one this build knows "
                               "(it migrates to %d); upgrade reqsign",
                               (long long)v, REQSIGN_SQLITE_SCHEMA_VERSION);
    for (int64_t i = v; st == REQSIGN_OK && i < REQSIGN_SQLITE_SCHEMA_VERSION; i++)
        st = sq_exec(db, sq_migrations[i], "migration failed", err);
    if (st == REQSIGN_OK && v < REQSIGN_SQLITE_SCHEMA_VERSION)
        st = sq_exec(
            db,
            found ? "UPDATE schema_version SET version = " SQ_XSTR(REQSIGN_SQLITE_SCHEMA_VERSION)
                  : "INSERT INTO schema_version (version) VALUES (" SQ_XSTR(
                        REQSIGN_SQLITE_SCHEMA_VERSION) ")",
            "cannot record the schema version", err);
    if (st == REQSIGN_OK)
        st = sq_exec(db, "COMMIT", "cannot commit the migrations", err);
    if (st != REQSIGN_OK)
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return st;
}

static enum reqsign_status check_schema(sqlite3 *db, const char *path, struct reqsign_error *err)
{
    int64_t present = 0, v = 0;
    int found = 0;
    enum reqsign_status st = sq_int(db,
                                    "SELECT count(*) FROM sqlite_master WHERE type = 'table' "
                                    "AND name = 'schema_version'",
                                    &present, &found, "cannot read the schema", err);
    if (st != REQSIGN_OK)
        return st;
    if (present == 0)
        return reqsign_error_set(err, REQSIGN_E_STORE, sq_src, REQSIGN_NO_OFFSET,
                                 "%s is not a migrated reqsign key store (no schema_version "
                                 "table); open it read-write once first",
                                 path);
    st = sq_int(db, "SELECT max(version) FROM schema_version", &v, &found,
                "cannot read schema_version", err);
    if (st != REQSIGN_OK)
        return st;
    if (!found || v != REQSIGN_SQLITE_SCHEMA_VERSION)
        return reqsign_error_set(
            err, REQSIGN_E_STORE, sq_src, REQSIGN_NO_OFFSET,
            "database schema version %lld %s this build's (%d); %s", (long long)(found ? v : 0),
            v > REQSIGN_SQLITE_SCHEMA_VERSION ? "is newer than" : "is older than",
            REQSIGN_SQLITE_SCHEMA_VERSION,
            v > REQSIGN_SQLITE_SCHEMA_VERSION ? "upgrade reqsign"
                                              : "open it read-write once to migrate");
    return REQSIGN_OK;
}

/* Make sure @path exists (creating it mode 0600 if @create). */
static enum reqsign_status ensure_file(const char *path, bool create, struct reqsign_error *err)
{
    struct stat sb;
    if (stat(path, &sb) == 0) {
        if (!S_ISREG(sb.st_mode))
            return reqsign_error_set(err, REQSIGN_E_IO, sq_src, REQSIGN_NO_OFFSET,
                                     "%s is not a regular file", path);
        return REQSIGN_OK;
    }
    if (errno != ENOENT)
        return reqsign_error_set(err, REQSIGN_E_IO, sq_src, REQSIGN_NO_OFFSET, "%s: %s", path,
                                 strerror(errno));
    if (!create)
        return reqsign_error_set(err, REQSIGN_E_IO, sq_src, REQSIGN_NO_OFFSET,
                                 "no key store database at %s", path);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 && errno != EEXIST)
        return reqsign_error_set(err, REQSIGN_E_IO, sq_src, REQSIGN_NO_OFFSET,
                                 "cannot create %s: %s", path, strerror(errno));
    if (fd >= 0)
        close(fd);
    return REQSIGN_OK;
}

/* see reqsign/keystore.h */
struct reqsign_keystore *reqsign_keystore_sqlite_open(const char *path, unsigned flags,
                                                      struct reqsign_error *err)
{
    reqsign_error_clear(err);
    static const struct reqsign_keystore_ops ops = {
        .get = sq_get,
        .insert = sq_insert,
        .list = sq_list,
        .revoke = sq_revoke,
        .free = sq_free,
        .update = sq_update,
        .list_filter = sq_list_filter,
        .count_active = sq_count_active,
        .touch = sq_touch,
        .account_insert = sq_account_insert,
        .account_get = sq_account_get,
        .account_list = sq_account_list,
        .account_set_disabled = sq_account_set_disabled,
        .enrollment_insert = sq_enrollment_insert,
        .enrollment_consume = sq_enrollment_consume,
        .audit_append = sq_audit_append,
        .audit_list = sq_audit_list,
        .insert_limited = sq_insert_limited,
    };
    const bool readonly = (flags & REQSIGN_KEYSTORE_READONLY) != 0;
    const bool create = (flags & REQSIGN_KEYSTORE_CREATE) != 0;

    if (path == NULL || path[0] == '\0') {
        reqsign_error_set(err, REQSIGN_E_INVALID_ARG, sq_src, REQSIGN_NO_OFFSET,
                          "a database path is required");
        return NULL;
    }
    if ((flags & ~(REQSIGN_KEYSTORE_READONLY | REQSIGN_KEYSTORE_CREATE)) != 0 ||
        (readonly && create)) {
        reqsign_error_set(err, REQSIGN_E_INVALID_ARG, sq_src, REQSIGN_NO_OFFSET,
                          "bad flags 0x%x (READONLY and CREATE exclude each other)", flags);
        return NULL;
    }
    if (!sqlite3_threadsafe()) {
        reqsign_error_set(err, REQSIGN_E_STORE, sq_src, REQSIGN_NO_OFFSET,
                          "SQLite was built without thread support");
        return NULL;
    }
    if (ensure_file(path, create, err) != REQSIGN_OK)
        return NULL;

    struct sq_store *s = calloc(1, sizeof(*s));
    if (s == NULL || (s->path = strdup(path)) == NULL) {
        free(s);
        reqsign_error_set(err, REQSIGN_E_NOMEM, sq_src, REQSIGN_NO_OFFSET, NULL);
        return NULL;
    }
    s->readonly = readonly;
    const struct reqsign_pool_config pc = {
        .max_open = REQSIGN_SQLITE_POOL_MAX,
        .max_idle = REQSIGN_SQLITE_POOL_IDLE_MAX,
        .wait_ms = REQSIGN_SQLITE_POOL_WAIT_MS,
        .busy = REQSIGN_E_KEYSTORE_UNAVAILABLE,
        .src = sq_src,
        .name = "SQLite",
    };
    s->pool = reqsign_pool_new(&pc, &sq_pool_ops, s, err);
    if (s->pool == NULL) {
        sq_free(s);
        return NULL;
    }

    struct sq_conn *c = NULL;
    enum reqsign_status st = conn_open(s->path, readonly, false, &c, err);
    if (st == REQSIGN_OK && !readonly)
        st = set_wal(c->db, err);
    if (st == REQSIGN_OK)
        st = readonly ? check_schema(c->db, path, err) : migrate(c->db, err);
    if (st != REQSIGN_OK) {
        conn_close(c);
        sq_free(s);
        return NULL;
    }
    reqsign_pool_add(s->pool, &c->link);

    struct reqsign_keystore *ks = reqsign_keystore_new(&ops, s, NULL);
    if (ks == NULL) {
        sq_free(s);
        reqsign_error_set(err, REQSIGN_E_NOMEM, sq_src, REQSIGN_NO_OFFSET, NULL);
    }
    return ks;
}
