/* reqsign: the PostgreSQL key store and its LISTEN/NOTIFY cache invalidation.
 *
 * The library reqsign-keystore-pg (server/stores/pg/meson.build), built only
 * where libpq is found (meson option fleet); otherwise it is not built at all.
 *
 * Schema. Mirrors the SQLite store: `schema_version(version integer)` holds
 * one row, the number of migrations applied; pg_migrations[i] takes the schema
 * from version i to i + 1. A REQSIGN_KEYSTORE_CREATE open applies the missing
 * ones in one transaction that first takes pg_advisory_xact_lock(PG_LOCK_*),
 * so processes migrating at once serialise (the lock also covers the
 * CREATE TABLE IF NOT EXISTS of schema_version, which is not safe to run
 * concurrently by itself) and the later ones find nothing to do. Any other
 * open checks the version and refuses a schema it does not match. keyid is
 * `COLLATE "C"`, so list order is byte order whatever the database locale.
 *
 * Connections. The stores' one pool (server/stores/pool/pool.h) of at most
 * REQSIGN_PG_POOL_MAX (16) connections, REQSIGN_PG_POOL_IDLE_MAX (8) kept
 * idle: a call takes an idle connection or makes one (outside the pool's
 * lock), uses it alone, and gives it back. A call that finds all 16 in use
 * waits up to REQSIGN_PG_POOL_WAIT_MS (2000 ms, on the monotonic clock) and
 * then fails with REQSIGN_E_KEYSTORE_UNAVAILABLE naming the limit. Each
 * connection gets connect_timeout
 * REQSIGN_PG_CONNECT_TIMEOUT (unless the conninfo sets one), client_encoding
 * UTF8, statement_timeout REQSIGN_PG_STATEMENT_TIMEOUT_MS, read-only
 * transactions for a READONLY store, and its four statements prepared once
 * (PQprepare). Parameters and results use the binary format, so the public
 * key goes over as exactly 32 bytes and times as int8. An idle connection with
 * unread input (the server said goodbye: shutdown, restart, terminate) is
 * dropped at take time; a call whose connection breaks returns
 * REQSIGN_E_KEYSTORE_UNAVAILABLE and the connection is dropped, so the next
 * call connects again. get, list and revoke (idempotent) retry once on a new
 * connection when a pooled one turns out dead; insert does not (it may have
 * committed).
 *
 * Writes. insert and revoke are single statements (a data-modifying WITH
 * whose outer SELECT calls pg_notify), so the NOTIFY reqsign_keys '<keyid>'
 * is sent exactly when, and only if, the change commits.
 *
 * Errors. unique_violation (23505) maps to REQSIGN_E_CONFLICT naming the keyid
 * or the public key (by constraint name); a lost or refused connection,
 * connection_exception (08xxx), admin/crash shutdown and cannot_connect_now
 * (57P01..57P03), query_canceled (57014: the statement timeout),
 * too_many_connections (53300) and lock_not_available (55P03) to
 * REQSIGN_E_KEYSTORE_UNAVAILABLE; anything else to REQSIGN_E_STORE with the
 * server's primary message and SQLSTATE. The conninfo (it may hold a
 * password) never goes into an error message and is wiped on free.
 *
 * Keyids. Stored keyids are printable ASCII (the wrapper validates inserts),
 * so a lookup keyid with any other byte (a NUL included, which a text
 * parameter could not carry) is REQSIGN_E_KEY_UNKNOWN without a query; a list
 * cursor with a byte >= 0x80 (not valid UTF-8 on its own) is replaced by an
 * equivalent one: its prefix before that byte, then 0x7f.
 */
#include <reqsign/keystore_pg.h>

#include <stdlib.h>
#include <string.h>

static const char pg_src[] = "key store";

#include <libpq-fe.h>

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "pool.h"

#define PG_STR(x) #x
#define PG_XSTR(x) PG_STR(x)

/* pg_advisory_xact_lock(int4, int4): "reqs", 1 = schema migrations. */
#define PG_LOCK_CLASS 1919250803
#define PG_LOCK_MIGRATE 1

/* Type OIDs (fixed in pg_type.dat since forever). */
#define PG_OID_BYTEA 17
#define PG_OID_INT8 20
#define PG_OID_BOOL 16
#define PG_OID_TEXT 25

/* Migration i takes the schema from version i to i + 1. Append only. */
static const char *const pg_migrations[] = {
    /* 1: the keys table. Public data only. */
    "CREATE TABLE keys ("
    " keyid text COLLATE \"C\" NOT NULL,"
    " public_key bytea NOT NULL CHECK (length(public_key) = 32),"
    " label text NOT NULL,"
    " scopes text NOT NULL,"
    " created_at bigint NOT NULL,"
    " expires_at bigint,"
    " revoked_at bigint,"
    " CONSTRAINT keys_pkey PRIMARY KEY (keyid),"
    " CONSTRAINT keys_public_key_key UNIQUE (public_key)"
    ")",
    /* 2: the public directory lists a key only when it says so (issue 16). */
    "ALTER TABLE keys ADD COLUMN publish boolean NOT NULL DEFAULT false",
};
_Static_assert(sizeof(pg_migrations) / sizeof(pg_migrations[0]) == REQSIGN_PG_SCHEMA_VERSION,
               "one migration per schema version");

enum pg_stmt { PG_GET, PG_INSERT, PG_LIST, PG_REVOKE, PG_NSTMT };

#define PG_COLUMNS "keyid, public_key, label, scopes, created_at, expires_at, revoked_at, publish"

static const struct {
    const char *name, *sql;
    int nparams;
    Oid types[8];
} pg_stmts[PG_NSTMT] = {
    [PG_GET] = {"reqsign_get",
                "SELECT " PG_COLUMNS " FROM keys WHERE keyid = $1",
                1,
                {PG_OID_TEXT}},
    [PG_INSERT] = {"reqsign_insert",
                   "WITH ins AS (INSERT INTO keys (" PG_COLUMNS ")"
                   " VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING keyid)"
                   " SELECT pg_notify('" REQSIGN_PG_CHANNEL "', keyid) FROM ins",
                   8,
                   {PG_OID_TEXT, PG_OID_BYTEA, PG_OID_TEXT, PG_OID_TEXT, PG_OID_INT8, PG_OID_INT8,
                    PG_OID_INT8, PG_OID_BOOL}},
    [PG_LIST] = {"reqsign_list",
                 "SELECT " PG_COLUMNS " FROM keys WHERE keyid > $1 ORDER BY keyid LIMIT $2",
                 2,
                 {PG_OID_TEXT, PG_OID_INT8}},
    [PG_REVOKE] = {"reqsign_revoke",
                   "WITH u AS (UPDATE keys SET revoked_at = COALESCE(revoked_at, $2)"
                   " WHERE keyid = $1 RETURNING keyid)"
                   " SELECT pg_notify('" REQSIGN_PG_CHANNEL "', keyid) FROM u",
                   2,
                   {PG_OID_TEXT, PG_OID_INT8}},
};

struct pg_conn {
    struct reqsign_pool_link link;
    PGconn *pg;
};

struct pg_store {
    char *conninfo;
    bool readonly;
    struct reqsign_pool *pool;
};

/* ---- connecting ---- */

/* Server notices ("relation already exists, skipping") and the FATAL a
 * server sends an idle connection it terminates are not for stderr. */
static void pg_quiet(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

/* Connect with our defaults: the keywords before "dbname" can be overridden
 * by @conninfo (expanded in place of dbname), the ones after cannot. */
static PGconn *pg_connect(const char *conninfo)
{
    static const char *const kw[] = {"connect_timeout",  "fallback_application_name",
                                     "keepalives_idle",  "keepalives_interval",
                                     "keepalives_count", "dbname",
                                     "client_encoding",  NULL};
    const char *const val[] = {
        PG_XSTR(REQSIGN_PG_CONNECT_TIMEOUT), "reqsign", "10", "5", "3", conninfo, "UTF8", NULL};
    PGconn *pg = PQconnectdbParams(kw, val, 1);
    if (pg != NULL)
        PQsetNoticeProcessor(pg, pg_quiet, NULL);
    return pg;
}

/* Copy libpq's message (possibly multi-line, ending in a newline) into @out
 * as one line. */
static void one_line(const char *msg, char *out, size_t cap)
{
    size_t n = 0;
    if (msg == NULL)
        msg = "";
    for (const char *p = msg; *p != '\0' && n + 1 < cap; p++) {
        char c = (*p == '\n' || *p == '\r' || *p == '\t') ? ' ' : *p;
        if (c == ' ' && (n == 0 || out[n - 1] == ' '))
            continue;
        out[n++] = c;
    }
    while (n > 0 && out[n - 1] == ' ')
        n--;
    out[n] = '\0';
}

static enum reqsign_status conn_fail(PGconn *pg, const char *what, struct reqsign_error *err)
{
    char msg[200];
    one_line(pg != NULL ? PQerrorMessage(pg) : "out of memory", msg, sizeof(msg));
    return reqsign_error_set(err, REQSIGN_E_KEYSTORE_UNAVAILABLE, pg_src, REQSIGN_NO_OFFSET,
                             "%s: %s", what, msg);
}

static bool sqlstate_unavailable(const char *state)
{
    if (state == NULL)
        return false;
    return strncmp(state, "08", 2) == 0 || strcmp(state, "57P01") == 0 ||
           strcmp(state, "57P02") == 0 || strcmp(state, "57P03") == 0 ||
           strcmp(state, "57014") == 0 || strcmp(state, "53300") == 0 ||
           strcmp(state, "55P03") == 0;
}

/* Record the failure of @what whose result is @res (may be NULL). */
static enum reqsign_status res_fail(PGconn *pg, const PGresult *res, const char *what,
                                    struct reqsign_error *err)
{
    const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *primary = res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    char msg[200];
    one_line(primary != NULL ? primary : PQerrorMessage(pg), msg, sizeof(msg));
    enum reqsign_status code = (PQstatus(pg) != CONNECTION_OK || sqlstate_unavailable(state))
                                   ? REQSIGN_E_KEYSTORE_UNAVAILABLE
                                   : REQSIGN_E_STORE;
    if (state != NULL)
        return reqsign_error_set(err, code, pg_src, REQSIGN_NO_OFFSET, "%s: %s (SQLSTATE %s)", what,
                                 msg, state);
    return reqsign_error_set(err, code, pg_src, REQSIGN_NO_OFFSET, "%s: %s", what, msg);
}

/* Run @sql (no parameters, text results); on success *@out (if not NULL) gets
 * the result, else it is cleared. */
static enum reqsign_status pg_exec(PGconn *pg, const char *sql, const char *what, PGresult **out,
                                   struct reqsign_error *err)
{
    PGresult *res = PQexec(pg, sql);
    ExecStatusType rs = PQresultStatus(res);
    if (rs != PGRES_COMMAND_OK && rs != PGRES_TUPLES_OK) {
        enum reqsign_status st = res_fail(pg, res, what, err);
        PQclear(res);
        return st;
    }
    if (out != NULL)
        *out = res;
    else
        PQclear(res);
    return REQSIGN_OK;
}

/* Per-connection settings. */
#define PG_SET_TIMEOUT "SET statement_timeout = " PG_XSTR(REQSIGN_PG_STATEMENT_TIMEOUT_MS)
static const char pg_setup_rw[] = PG_SET_TIMEOUT;
static const char pg_setup_ro[] = PG_SET_TIMEOUT "; SET default_transaction_read_only = on";

static void conn_close(struct pg_conn *c)
{
    if (c == NULL)
        return;
    PQfinish(c->pg);
    free(c);
}

static enum reqsign_status conn_open(const char *conninfo, bool readonly, struct pg_conn **out,
                                     struct reqsign_error *err)
{
    *out = NULL;
    struct pg_conn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return reqsign_error_set(err, REQSIGN_E_NOMEM, pg_src, REQSIGN_NO_OFFSET, NULL);
    c->pg = pg_connect(conninfo);
    if (c->pg == NULL || PQstatus(c->pg) != CONNECTION_OK) {
        enum reqsign_status st = conn_fail(c->pg, "cannot connect to PostgreSQL", err);
        conn_close(c);
        return st;
    }
    enum reqsign_status st = pg_exec(c->pg, readonly ? pg_setup_ro : pg_setup_rw,
                                     "cannot set up the connection", NULL, err);
    for (int i = 0; st == REQSIGN_OK && i < PG_NSTMT; i++) {
        PGresult *res = PQprepare(c->pg, pg_stmts[i].name, pg_stmts[i].sql, pg_stmts[i].nparams,
                                  pg_stmts[i].types);
        if (PQresultStatus(res) != PGRES_COMMAND_OK)
            st = res_fail(c->pg, res, "cannot prepare statements", err);
        PQclear(res);
    }
    if (st != REQSIGN_OK) {
        conn_close(c);
        return st;
    }
    *out = c;
    return REQSIGN_OK;
}

/* An idle store connection has nothing to read (it does not LISTEN): input
 * means the server is closing it (shutdown, terminate) or it is gone. */
static bool conn_alive(struct pg_conn *c)
{
    if (PQstatus(c->pg) != CONNECTION_OK || PQtransactionStatus(c->pg) != PQTRANS_IDLE)
        return false;
    struct pollfd p = {.fd = PQsocket(c->pg), .events = POLLIN};
    if (p.fd < 0)
        return false;
    int r = poll(&p, 1, 0);
    return r == 0;
}

/* The pool's callbacks. */
static enum reqsign_status pool_open(void *ctx, void *arg, struct reqsign_pool_link **out,
                                     struct reqsign_error *err)
{
    (void)arg;
    struct pg_store *s = ctx;
    struct pg_conn *c = NULL;
    enum reqsign_status st = conn_open(s->conninfo, s->readonly, &c, err);
    *out = c != NULL ? &c->link : NULL;
    return st;
}

static bool pool_alive(void *ctx, struct reqsign_pool_link *l)
{
    (void)ctx;
    return conn_alive(REQSIGN_POOL_OF(l, struct pg_conn, link));
}

static void pool_close(void *ctx, struct reqsign_pool_link *l)
{
    (void)ctx;
    conn_close(REQSIGN_POOL_OF(l, struct pg_conn, link));
}

static const struct reqsign_pool_ops pg_pool_ops = {
    .open = pool_open, .alive = pool_alive, .close = pool_close};

/* Take a connection: an idle one (*@reused = true) or a new one; @fresh: a new one. */
static enum reqsign_status conn_get(struct pg_store *s, bool fresh, struct pg_conn **out,
                                    bool *reused, struct reqsign_error *err)
{
    struct reqsign_pool_link *l;
    *out = NULL;
    enum reqsign_status st = reqsign_pool_get(s->pool, fresh, NULL, &l, reused, err);
    if (st == REQSIGN_OK)
        *out = REQSIGN_POOL_OF(l, struct pg_conn, link);
    return st;
}

/* Give @c back; a connection that is no longer usable is closed. */
static void conn_put(struct pg_store *s, struct pg_conn *c)
{
    if (c == NULL)
        return;
    bool keep = PQstatus(c->pg) == CONNECTION_OK && PQtransactionStatus(c->pg) == PQTRANS_IDLE;
    reqsign_pool_put(s->pool, &c->link, keep ? REQSIGN_POOL_KEEP : REQSIGN_POOL_DROP);
}

/* Run prepared statement @which with binary parameters and results. */
static enum reqsign_status conn_run(struct pg_conn *c, enum pg_stmt which, const char *const *vals,
                                    const int *lens, const char *what, PGresult **out,
                                    struct reqsign_error *err)
{
    static const int fmts[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    *out = NULL;
    PGresult *res =
        PQexecPrepared(c->pg, pg_stmts[which].name, pg_stmts[which].nparams, vals, lens, fmts, 1);
    if (PQresultStatus(res) == PGRES_TUPLES_OK) {
        *out = res;
        return REQSIGN_OK;
    }
    const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    enum reqsign_status st;
    if (state != NULL && strcmp(state, "23505") == 0) {
        const char *cons = PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME);
        if (cons != NULL && strcmp(cons, "keys_pkey") == 0)
            st = reqsign_error_set(err, REQSIGN_E_CONFLICT, pg_src, REQSIGN_NO_OFFSET,
                                   "keyid already exists (revoked keys included)");
        else if (cons != NULL && strcmp(cons, "keys_public_key_key") == 0)
            st = reqsign_error_set(err, REQSIGN_E_CONFLICT, pg_src, REQSIGN_NO_OFFSET,
                                   "public key already registered (revoked keys included)");
        else
            st = res_fail(c->pg, res, what, err);
    } else {
        st = res_fail(c->pg, res, what, err);
    }
    PQclear(res);
    return st;
}

/* ---- values ---- */

static void put_int8(char buf[8], int64_t v)
{
    uint64_t u = (uint64_t)v;
    for (int i = 7; i >= 0; i--) {
        buf[i] = (char)(u & 0xff);
        u >>= 8;
    }
}

static int64_t get_int8(const char *p)
{
    uint64_t u = 0;
    for (int i = 0; i < 8; i++)
        u = (u << 8) | (unsigned char)p[i];
    return (int64_t)u;
}

static bool keyid_storable(const char *keyid, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)keyid[i] < 0x20 || (unsigned char)keyid[i] > 0x7e)
            return false;
    return true;
}

static enum reqsign_status corrupt(const char *what, struct reqsign_error *err)
{
    return reqsign_error_set(err, REQSIGN_E_STORE, pg_src, REQSIGN_NO_OFFSET,
                             "malformed row in keys: %s", what);
}

static enum reqsign_status copy_text(const PGresult *res, int row, int col, char *dst, size_t cap,
                                     bool nonempty, const char *what, struct reqsign_error *err)
{
    if (PQgetisnull(res, row, col))
        return corrupt(what, err);
    const char *t = PQgetvalue(res, row, col);
    int len = PQgetlength(res, row, col);
    if (len < 0 || (size_t)len >= cap || (nonempty && len == 0) ||
        memchr(t, '\0', (size_t)len) != NULL)
        return corrupt(what, err);
    memcpy(dst, t, (size_t)len);
    dst[len] = '\0';
    return REQSIGN_OK;
}

static enum reqsign_status column_time(const PGresult *res, int row, int col, bool nullable,
                                       int64_t *out, const char *what, struct reqsign_error *err)
{
    *out = 0;
    if (PQgetisnull(res, row, col))
        return nullable ? REQSIGN_OK : corrupt(what, err);
    if (PQgetlength(res, row, col) != 8)
        return corrupt(what, err);
    *out = get_int8(PQgetvalue(res, row, col));
    return REQSIGN_OK;
}

static enum reqsign_status row_to_record(const PGresult *res, int row, struct reqsign_key_record *r,
                                         struct reqsign_error *err)
{
    memset(r, 0, sizeof(*r));
    if (PQnfields(res) != 8)
        return corrupt("column count", err);
    enum reqsign_status s = copy_text(res, row, 0, r->keyid, sizeof(r->keyid), true, "keyid", err);
    if (s == REQSIGN_OK)
        s = copy_text(res, row, 2, r->label, sizeof(r->label), false, "label", err);
    if (s == REQSIGN_OK)
        s = copy_text(res, row, 3, r->scopes, sizeof(r->scopes), false, "scopes", err);
    if (s == REQSIGN_OK)
        s = column_time(res, row, 4, false, &r->created_at, "created_at", err);
    if (s == REQSIGN_OK)
        s = column_time(res, row, 5, true, &r->expires_at, "expires_at", err);
    if (s == REQSIGN_OK)
        s = column_time(res, row, 6, true, &r->revoked_at, "revoked_at", err);
    if (s != REQSIGN_OK)
        return s;
    if (PQgetisnull(res, row, 1) || PQgetlength(res, row, 1) != REQSIGN_ED25519_PUBLIC_LEN)
        return corrupt("public_key", err);
    memcpy(r->public_key, PQgetvalue(res, row, 1), REQSIGN_ED25519_PUBLIC_LEN);
    if (PQgetisnull(res, row, 7) || PQgetlength(res, row, 7) != 1)
        return corrupt("publish", err);
    r->publish = PQgetvalue(res, row, 7)[0] != 0;
    return REQSIGN_OK;
}

/* ---- operations ---- */

/* Run @which on a pooled connection; if that connection was reused and died
 * under the call, and @retry (the statement is idempotent), once more on a
 * new one. */
static enum reqsign_status pg_call(struct pg_store *s, enum pg_stmt which, bool retry,
                                   const char *const *vals, const int *lens, const char *what,
                                   PGresult **out, struct reqsign_error *err)
{
    *out = NULL;
    for (int attempt = 0;; attempt++) {
        struct pg_conn *c;
        bool reused;
        enum reqsign_status st = conn_get(s, attempt > 0, &c, &reused, err);
        if (st != REQSIGN_OK)
            return st;
        struct reqsign_error mine;
        reqsign_error_clear(&mine);
        st = conn_run(c, which, vals, lens, what, out, &mine);
        bool dead = PQstatus(c->pg) != CONNECTION_OK;
        conn_put(s, c);
        if (st == REQSIGN_E_KEYSTORE_UNAVAILABLE && dead && reused && retry && attempt == 0)
            continue;
        if (st != REQSIGN_OK && err != NULL && err->code == REQSIGN_OK)
            *err = mine;
        return st;
    }
}

static enum reqsign_status unknown_key(struct reqsign_error *err)
{
    return reqsign_error_set(err, REQSIGN_E_KEY_UNKNOWN, pg_src, REQSIGN_NO_OFFSET,
                             "no key with this keyid");
}

static enum reqsign_status pg_get(void *impl, const char *keyid, size_t keyid_len,
                                  struct reqsign_key_record *out, struct reqsign_error *err)
{
    struct pg_store *s = impl;
    memset(out, 0, sizeof(*out));
    if (!keyid_storable(keyid, keyid_len))
        return unknown_key(err);
    const char *vals[1] = {keyid};
    const int lens[1] = {(int)keyid_len};
    PGresult *res = NULL;
    enum reqsign_status st = pg_call(s, PG_GET, true, vals, lens, "get", &res, err);
    if (st != REQSIGN_OK)
        return st;
    if (PQntuples(res) == 0)
        st = unknown_key(err);
    else
        st = row_to_record(res, 0, out, err);
    PQclear(res);
    if (st != REQSIGN_OK)
        memset(out, 0, sizeof(*out));
    return st;
}

static enum reqsign_status refuse_readonly(const char *what, struct reqsign_error *err)
{
    return reqsign_error_set(err, REQSIGN_E_STORE, pg_src, REQSIGN_NO_OFFSET,
                             "%s refused: the key store is open read-only", what);
}

static enum reqsign_status pg_insert(void *impl, const struct reqsign_key_record *rec,
                                     struct reqsign_error *err)
{
    struct pg_store *s = impl;
    if (s->readonly)
        return refuse_readonly("insert", err);
    char created[8], expires[8], revoked[8];
    put_int8(created, rec->created_at);
    put_int8(expires, rec->expires_at);
    put_int8(revoked, rec->revoked_at);
    /* The wrapper checked that the strings are NUL-terminated in their arrays. */
    const char publish = rec->publish != 0;
    const char *vals[8] = {rec->keyid,
                           (const char *)rec->public_key,
                           rec->label,
                           rec->scopes,
                           created,
                           rec->expires_at != 0 ? expires : NULL,
                           rec->revoked_at != 0 ? revoked : NULL,
                           &publish};
    const int lens[8] = {(int)strlen(rec->keyid),
                         REQSIGN_ED25519_PUBLIC_LEN,
                         (int)strlen(rec->label),
                         (int)strlen(rec->scopes),
                         8,
                         8,
                         8,
                         1};
    PGresult *res = NULL;
    enum reqsign_status st = pg_call(s, PG_INSERT, false, vals, lens, "insert", &res, err);
    if (st != REQSIGN_OK)
        return st;
    if (PQntuples(res) != 1)
        st = reqsign_error_set(err, REQSIGN_E_STORE, pg_src, REQSIGN_NO_OFFSET,
                               "insert: %d rows inserted", PQntuples(res));
    PQclear(res);
    return st;
}

static enum reqsign_status pg_list(void *impl, const char *after, size_t limit,
                                   struct reqsign_key_record *out, size_t *n,
                                   struct reqsign_error *err)
{
    struct pg_store *s = impl;
    *n = 0;
    /* A cursor byte >= 0x80 cannot be sent as text on its own; every keyid is
     * printable ASCII, so "prefix before it" + 0x7f orders the same way. */
    char cursor[REQSIGN_KEYID_IN_MAX + 2];
    size_t clen = 0;
    while (after[clen] != '\0' && (unsigned char)after[clen] < 0x80 && clen < sizeof(cursor) - 2) {
        cursor[clen] = after[clen];
        clen++;
    }
    if (after[clen] != '\0')
        cursor[clen++] = 0x7f;
    char lim[8];
    put_int8(lim, (int64_t)limit);
    const char *vals[2] = {cursor, lim};
    const int lens[2] = {(int)clen, 8};
    PGresult *res = NULL;
    enum reqsign_status st = pg_call(s, PG_LIST, true, vals, lens, "list", &res, err);
    if (st != REQSIGN_OK)
        return st;
    int rows = PQntuples(res);
    size_t got = 0;
    for (int i = 0; i < rows && got < limit && st == REQSIGN_OK; i++) {
        st = row_to_record(res, i, &out[got], err);
        if (st == REQSIGN_OK)
            got++;
    }
    PQclear(res);
    if (st == REQSIGN_OK)
        *n = got;
    return st;
}

static enum reqsign_status pg_revoke(void *impl, const char *keyid, size_t keyid_len, int64_t now,
                                     struct reqsign_error *err)
{
    struct pg_store *s = impl;
    if (s->readonly)
        return refuse_readonly("revoke", err);
    if (!keyid_storable(keyid, keyid_len))
        return unknown_key(err);
    char t[8];
    put_int8(t, now);
    const char *vals[2] = {keyid, t};
    const int lens[2] = {(int)keyid_len, 8};
    PGresult *res = NULL;
    /* Idempotent: COALESCE keeps the first time; a repeated NOTIFY is harmless. */
    enum reqsign_status st = pg_call(s, PG_REVOKE, true, vals, lens, "revoke", &res, err);
    if (st != REQSIGN_OK)
        return st;
    if (PQntuples(res) == 0)
        st = unknown_key(err);
    PQclear(res);
    return st;
}

static void wipe_free(char *p)
{
    if (p == NULL)
        return;
    OPENSSL_cleanse(p, strlen(p));
    free(p);
}

static void pg_free(void *impl)
{
    struct pg_store *s = impl;
    if (s == NULL)
        return;
    reqsign_pool_free(s->pool);
    wipe_free(s->conninfo);
    free(s);
}

/* ---- open: schema ---- */

/* One integer from the first column of @sql; *@found = false if no row or NULL. */
static enum reqsign_status pg_int(PGconn *pg, const char *sql, int64_t *val, bool *found,
                                  const char *what, struct reqsign_error *err)
{
    PGresult *res = NULL;
    *found = false;
    *val = 0;
    enum reqsign_status st = pg_exec(pg, sql, what, &res, err);
    if (st != REQSIGN_OK)
        return st;
    if (PQntuples(res) > 0 && PQnfields(res) > 0 && !PQgetisnull(res, 0, 0)) {
        char *end;
        errno = 0;
        long long v = strtoll(PQgetvalue(res, 0, 0), &end, 10);
        if (errno == 0 && *end == '\0') {
            *val = v;
            *found = true;
        } else {
            st = reqsign_error_set(err, REQSIGN_E_STORE, pg_src, REQSIGN_NO_OFFSET,
                                   "%s: not an integer", what);
        }
    }
    PQclear(res);
    return st;
}

static enum reqsign_status migrate(PGconn *pg, struct reqsign_error *err)
{
    enum reqsign_status st = pg_exec(pg, "BEGIN", "cannot begin the migrations", NULL, err);
    if (st != REQSIGN_OK)
        return st;
    /* Migrations may legitimately take longer than a query. */
    st = pg_exec(pg, "SET LOCAL statement_timeout = 60000", "cannot set the timeout", NULL, err);
    if (st == REQSIGN_OK)
        st = pg_exec(pg,
                     "SELECT pg_advisory_xact_lock(" PG_XSTR(PG_LOCK_CLASS) ", " PG_XSTR(
                         PG_LOCK_MIGRATE) ")",
                     "cannot take the migration lock", NULL, err);
    if (st == REQSIGN_OK)
        st = pg_exec(pg, "CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)",
                     "cannot create schema_version", NULL, err);
    int64_t v = 0;
    bool found = false;
    if (st == REQSIGN_OK)
        st = pg_int(pg, "SELECT max(version) FROM schema_version", &v, &found,
                    "cannot read schema_version", err);
    if (st == REQSIGN_OK && (v < 0 || v > REQSIGN_PG_SCHEMA_VERSION))
        st = reqsign_error_set(err, REQSIGN_E_STORE, pg_src, REQSIGN_NO_OFFSET,
                               "database schema version %lld is not one this build knows "
                               "(it migrates to %d); upgrade reqsign",
                               (long long)v, REQSIGN_PG_SCHEMA_VERSION);
    for (int64_t i = v; st == REQSIGN_OK && i < REQSIGN_PG_SCHEMA_VERSION; i++)
        st = pg_exec(pg, pg_migrations[i], "migration failed", NULL, err);
    if (st == REQSIGN_OK && v < REQSIGN_PG_SCHEMA_VERSION)
        st = pg_exec(pg,
                     found
                         ? "UPDATE schema_version SET version = " PG_XSTR(REQSIGN_PG_SCHEMA_VERSION)
                         : "INSERT INTO schema_version (version) VALUES (" PG_XSTR(
                               REQSIGN_PG_SCHEMA_VERSION) ")",
                     "cannot record the schema version", NULL, err);
    if (st == REQSIGN_OK)
        st = pg_exec(pg, "COMMIT", "cannot commit the migrations", NULL, err);
    if (st != REQSIGN_OK && PQstatus(pg) == CONNECTION_OK) {
        PGresult *res = PQexec(pg, "ROLLBACK");
        PQclear(res);
    }
    return st;
}

static enum reqsign_status check_schema(PGconn *pg, struct reqsign_error *err)
{
    int64_t present = 0, v = 0;
    bool found = false;
    enum reqsign_status st =
        pg_int(pg,
               "SELECT count(*) FROM pg_catalog.pg_tables WHERE tablename = 'schema_version' "
               "AND schemaname = ANY (pg_catalog.current_schemas(false))",
               &present, &found, "cannot read the schema", err);
    if (st != REQSIGN_OK)
        return st;
    if (present == 0)
        return reqsign_error_set(err, REQSIGN_E_STORE, pg_src, REQSIGN_NO_OFFSET,
                                 "the database is not a migrated reqsign key store (no "
                                 "schema_version table); open it with "
                                 "REQSIGN_KEYSTORE_CREATE once first");
    st = pg_int(pg, "SELECT max(version) FROM schema_version", &v, &found,
                "cannot read schema_version", err);
    if (st != REQSIGN_OK)
        return st;
    if (!found || v != REQSIGN_PG_SCHEMA_VERSION)
        return reqsign_error_set(
            err, REQSIGN_E_STORE, pg_src, REQSIGN_NO_OFFSET,
            "database schema version %lld %s this build's (%d); %s", (long long)(found ? v : 0),
            v > REQSIGN_PG_SCHEMA_VERSION ? "is newer than" : "is older than",
            REQSIGN_PG_SCHEMA_VERSION,
            v > REQSIGN_PG_SCHEMA_VERSION ? "upgrade reqsign"
                                          : "open it with REQSIGN_KEYSTORE_CREATE to migrate");
    return REQSIGN_OK;
}

static enum reqsign_status check_conninfo(const char *conninfo, struct reqsign_error *err)
{
    if (conninfo == NULL || conninfo[0] == '\0')
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, pg_src, REQSIGN_NO_OFFSET,
                                 "a PostgreSQL connection string is required");
    char *msg = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &msg);
    if (opts == NULL) {
        char line[200];
        one_line(msg != NULL ? msg : "out of memory", line, sizeof(line));
        PQfreemem(msg);
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, pg_src, REQSIGN_NO_OFFSET,
                                 "bad PostgreSQL connection string: %s", line);
    }
    PQconninfoFree(opts);
    return REQSIGN_OK;
}

/* see reqsign/keystore_pg.h */
struct reqsign_keystore *reqsign_keystore_pg_open(const char *conninfo, unsigned flags,
                                                  struct reqsign_error *err)
{
    reqsign_error_clear(err);
    static const struct reqsign_keystore_ops ops = {
        .get = pg_get,
        .insert = pg_insert,
        .list = pg_list,
        .revoke = pg_revoke,
        .free = pg_free,
    };
    const bool readonly = (flags & REQSIGN_KEYSTORE_READONLY) != 0;
    const bool create = (flags & REQSIGN_KEYSTORE_CREATE) != 0;

    if ((flags & ~(REQSIGN_KEYSTORE_READONLY | REQSIGN_KEYSTORE_CREATE)) != 0 ||
        (readonly && create)) {
        reqsign_error_set(err, REQSIGN_E_INVALID_ARG, pg_src, REQSIGN_NO_OFFSET,
                          "bad flags 0x%x (READONLY and CREATE exclude each other)", flags);
        return NULL;
    }
    if (check_conninfo(conninfo, err) != REQSIGN_OK)
        return NULL;
    if (!PQisthreadsafe()) {
        reqsign_error_set(err, REQSIGN_E_STORE, pg_src, REQSIGN_NO_OFFSET,
                          "libpq was built without thread support");
        return NULL;
    }

    struct pg_store *s = calloc(1, sizeof(*s));
    if (s == NULL || (s->conninfo = strdup(conninfo)) == NULL) {
        free(s);
        reqsign_error_set(err, REQSIGN_E_NOMEM, pg_src, REQSIGN_NO_OFFSET, NULL);
        return NULL;
    }
    s->readonly = readonly;
    const struct reqsign_pool_config pc = {
        .max_open = REQSIGN_PG_POOL_MAX,
        .max_idle = REQSIGN_PG_POOL_IDLE_MAX,
        .wait_ms = REQSIGN_PG_POOL_WAIT_MS,
        .busy = REQSIGN_E_KEYSTORE_UNAVAILABLE,
        .src = pg_src,
        .name = "PostgreSQL",
    };
    s->pool = reqsign_pool_new(&pc, &pg_pool_ops, s, err);
    if (s->pool == NULL) {
        pg_free(s);
        return NULL;
    }

    /* The first connection: migrate or check the schema, then prepare. The
     * statements are prepared after the migration (they need the table). */
    PGconn *pg = pg_connect(conninfo);
    enum reqsign_status st = REQSIGN_OK;
    if (pg == NULL || PQstatus(pg) != CONNECTION_OK)
        st = conn_fail(pg, "cannot connect to PostgreSQL", err);
    else
        st = pg_exec(pg, readonly ? pg_setup_ro : pg_setup_rw, "cannot set up the connection", NULL,
                     err);
    if (st == REQSIGN_OK)
        st = create ? migrate(pg, err) : check_schema(pg, err);
    PQfinish(pg);
    struct pg_conn *c = NULL;
    if (st == REQSIGN_OK)
        st = conn_open(s->conninfo, readonly, &c, err);
    if (st != REQSIGN_OK) {
        pg_free(s);
        return NULL;
    }
    reqsign_pool_add(s->pool, &c->link);

    struct reqsign_keystore *ks = reqsign_keystore_new(&ops, s, NULL);
    if (ks == NULL) {
        pg_free(s);
        reqsign_error_set(err, REQSIGN_E_NOMEM, pg_src, REQSIGN_NO_OFFSET, NULL);
    }
    return ks;
}

/* ---- LISTEN/NOTIFY ---- */

#define PG_BACKOFF_MIN_MS 100
#define PG_BACKOFF_MAX_MS 2000

struct reqsign_keystore_pg_listener {
    char *conninfo;
    struct reqsign_keycache *cache;
    pthread_t thread;
    int wake[2]; /* stop writes to wake[1] */
    atomic_bool stop;
    atomic_uint_fast64_t connects, notifications;
};

/* Wait up to @ms for a stop request; true if stopping. */
static bool listener_sleep(struct reqsign_keystore_pg_listener *l, int ms)
{
    struct pollfd p = {.fd = l->wake[0], .events = POLLIN};
    if (atomic_load(&l->stop))
        return true;
    (void)poll(&p, 1, ms);
    return atomic_load(&l->stop);
}

/* Serve one connection until it breaks or stop is asked. */
static void listener_serve(struct reqsign_keystore_pg_listener *l, PGconn *pg)
{
    for (;;) {
        struct pollfd p[2] = {{.fd = l->wake[0], .events = POLLIN},
                              {.fd = PQsocket(pg), .events = POLLIN}};
        if (p[1].fd < 0)
            return;
        int r = poll(p, 2, -1);
        if (atomic_load(&l->stop))
            return;
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        if ((p[1].revents & (POLLIN | POLLHUP | POLLERR)) == 0)
            continue;
        if (!PQconsumeInput(pg))
            return;
        PGnotify *n;
        while ((n = PQnotifies(pg)) != NULL) {
            if (strcmp(n->relname, REQSIGN_PG_CHANNEL) == 0 && n->extra != NULL) {
                reqsign_keycache_invalidate(l->cache, n->extra, strlen(n->extra));
                atomic_fetch_add(&l->notifications, 1);
            }
            PQfreemem(n);
        }
        if (PQstatus(pg) != CONNECTION_OK)
            return;
    }
}

static void *listener_main(void *arg)
{
    struct reqsign_keystore_pg_listener *l = arg;
    int backoff = PG_BACKOFF_MIN_MS;
    while (!atomic_load(&l->stop)) {
        PGconn *pg = pg_connect(l->conninfo);
        bool ok = pg != NULL && PQstatus(pg) == CONNECTION_OK;
        if (ok) {
            PGresult *res = PQexec(pg, "LISTEN " REQSIGN_PG_CHANNEL);
            ok = PQresultStatus(res) == PGRES_COMMAND_OK;
            PQclear(res);
        }
        if (ok) {
            backoff = PG_BACKOFF_MIN_MS;
            /* Anything may have changed while nobody listened. */
            reqsign_keycache_invalidate(l->cache, NULL, 0);
            atomic_fetch_add(&l->connects, 1);
            listener_serve(l, pg);
        }
        PQfinish(pg);
        if (!ok) {
            if (listener_sleep(l, backoff))
                break;
            backoff = backoff * 2 > PG_BACKOFF_MAX_MS ? PG_BACKOFF_MAX_MS : backoff * 2;
        } else if (listener_sleep(l, PG_BACKOFF_MIN_MS)) {
            break;
        }
    }
    return NULL;
}

static void listener_free(struct reqsign_keystore_pg_listener *l)
{
    if (l->wake[0] >= 0)
        close(l->wake[0]);
    if (l->wake[1] >= 0)
        close(l->wake[1]);
    wipe_free(l->conninfo);
    free(l);
}

/* see reqsign/keystore_pg.h */
struct reqsign_keystore_pg_listener *reqsign_keystore_pg_listen(const char *conninfo,
                                                                struct reqsign_keycache *cache,
                                                                struct reqsign_error *err)
{
    reqsign_error_clear(err);
    if (cache == NULL) {
        reqsign_error_set(err, REQSIGN_E_INVALID_ARG, pg_src, REQSIGN_NO_OFFSET,
                          "a key cache is required");
        return NULL;
    }
    if (check_conninfo(conninfo, err) != REQSIGN_OK)
        return NULL;
    struct reqsign_keystore_pg_listener *l = calloc(1, sizeof(*l));
    if (l == NULL) {
        reqsign_error_set(err, REQSIGN_E_NOMEM, pg_src, REQSIGN_NO_OFFSET, NULL);
        return NULL;
    }
    l->wake[0] = l->wake[1] = -1;
    l->cache = cache;
    atomic_init(&l->stop, false);
    atomic_init(&l->connects, 0);
    atomic_init(&l->notifications, 0);
    if ((l->conninfo = strdup(conninfo)) == NULL) {
        listener_free(l);
        reqsign_error_set(err, REQSIGN_E_NOMEM, pg_src, REQSIGN_NO_OFFSET, NULL);
        return NULL;
    }
    if (pipe(l->wake) != 0 || fcntl(l->wake[0], F_SETFD, FD_CLOEXEC) != 0 ||
        fcntl(l->wake[1], F_SETFD, FD_CLOEXEC) != 0) {
        int e = errno;
        if (l->wake[0] >= 0) {
            close(l->wake[0]);
            close(l->wake[1]);
        }
        l->wake[0] = l->wake[1] = -1;
        listener_free(l);
        reqsign_error_set(err, REQSIGN_E_INTERNAL, pg_src, REQSIGN_NO_OFFSET, "pipe: %s",
                          strerror(e));
        return NULL;
    }
    int rc = pthread_create(&l->thread, NULL, listener_main, l);
    if (rc != 0) {
        listener_free(l);
        reqsign_error_set(err, REQSIGN_E_INTERNAL, pg_src, REQSIGN_NO_OFFSET,
                          "cannot start the listener thread: %s", strerror(rc));
        return NULL;
    }
    return l;
}

/* see reqsign/keystore_pg.h */
void reqsign_keystore_pg_listener_stats(struct reqsign_keystore_pg_listener *l,
                                        struct reqsign_keystore_pg_listener_stats *out)
{
    if (out == NULL)
        return;
    memset(out, 0, sizeof(*out));
    if (l == NULL)
        return;
    out->connects = atomic_load(&l->connects);
    out->notifications = atomic_load(&l->notifications);
}

/* see reqsign/keystore_pg.h */
void reqsign_keystore_pg_listener_stop(struct reqsign_keystore_pg_listener *l)
{
    if (l == NULL)
        return;
    atomic_store(&l->stop, true);
    ssize_t w;
    do
        w = write(l->wake[1], "x", 1);
    while (w < 0 && errno == EINTR);
    pthread_join(l->thread, NULL);
    listener_free(l);
}
