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
    /* 3: accounts (existing keys go to acct_operator, which may hold any
     * scope: "*"), the key lifecycle columns, enrollment tokens (SHA-256 of
     * the token only), the append-only audit log. As the SQLite store's
     * migrations 2 and 3. */
    "CREATE TABLE accounts ("
    " id text COLLATE \"C\" NOT NULL,"
    " name text NOT NULL,"
    " allowed_scopes text NOT NULL,"
    " key_limit bigint NOT NULL CHECK (key_limit >= 1),"
    " max_key_lifetime_s bigint,"
    " created_at bigint NOT NULL,"
    " disabled_at bigint,"
    " publish_keys boolean NOT NULL DEFAULT false,"
    " CONSTRAINT accounts_pkey PRIMARY KEY (id)"
    ");"
    "INSERT INTO accounts (id, name, allowed_scopes, key_limit, created_at)"
    " VALUES ('" REQSIGN_ACCOUNT_OPERATOR "', 'operator', '*', 1000000,"
    " CAST(extract(epoch FROM now()) AS bigint));"
    "ALTER TABLE keys"
    " ADD COLUMN account text COLLATE \"C\" NOT NULL DEFAULT '" REQSIGN_ACCOUNT_OPERATOR "'"
    " CONSTRAINT keys_account_fkey REFERENCES accounts (id),"
    " ADD COLUMN disabled_at bigint,"
    " ADD COLUMN replaces text,"
    " ADD COLUMN replaced_by text,"
    " ADD COLUMN revoke_reason text,"
    " ADD COLUMN last_used_at bigint,"
    " ADD COLUMN last_used_by text;"
    "CREATE INDEX keys_by_account ON keys (account, keyid);"
    "CREATE TABLE enrollments ("
    " token_sha256 bytea NOT NULL CHECK (length(token_sha256) = 32),"
    " account text COLLATE \"C\" NOT NULL CONSTRAINT enrollments_account_fkey"
    " REFERENCES accounts (id),"
    " created_at bigint NOT NULL,"
    " expires_at bigint NOT NULL,"
    " used_at bigint,"
    " CONSTRAINT enrollments_pkey PRIMARY KEY (token_sha256)"
    ");"
    "CREATE TABLE audit ("
    " seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    " time bigint NOT NULL,"
    " actor text NOT NULL,"
    " account text NOT NULL,"
    " action text NOT NULL,"
    " target text NOT NULL,"
    " target_account text NOT NULL,"
    " outcome text NOT NULL,"
    " source text NOT NULL,"
    " nonce text NOT NULL"
    ");"
    "CREATE INDEX audit_by_account ON audit (account, seq);"
    "CREATE INDEX audit_by_target_account ON audit (target_account, seq);"
    "CREATE FUNCTION reqsign_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS"
    " 'BEGIN RAISE EXCEPTION ''the audit log is append-only''; END';"
    "CREATE TRIGGER audit_no_change BEFORE UPDATE OR DELETE ON audit"
    " FOR EACH ROW EXECUTE FUNCTION reqsign_audit_append_only();"
    "CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit"
    " FOR EACH STATEMENT EXECUTE FUNCTION reqsign_audit_append_only()",
};
_Static_assert(sizeof(pg_migrations) / sizeof(pg_migrations[0]) == REQSIGN_PG_SCHEMA_VERSION,
               "one migration per schema version");

enum pg_stmt {
    PG_GET,
    PG_INSERT,
    PG_LIST,
    PG_REVOKE,
    PG_UPDATE,
    PG_LIST_FILTER,
    PG_COUNT_ACTIVE,
    PG_TOUCH,
    PG_ACCT_INSERT,
    PG_ACCT_GET,
    PG_ACCT_LIST,
    PG_ACCT_DISABLE,
    PG_ENROLL_INSERT,
    PG_ENROLL_CONSUME,
    PG_AUDIT_APPEND,
    PG_AUDIT_LIST,
    PG_ACCT_LOCK,
    PG_NSTMT
};

#define PG_NPARAMS_MAX 12
#define PG_KCOLUMNS                                                                                \
    "k.keyid, k.public_key, k.label, k.scopes, k.created_at, k.expires_at, k.revoked_at,"          \
    " k.publish, k.account, k.disabled_at, a.disabled_at, k.replaces, k.replaced_by,"              \
    " k.revoke_reason, k.last_used_at, k.last_used_by, a.publish_keys"
#define PG_KFROM " FROM keys k LEFT JOIN accounts a ON a.id = k.account "
#define PG_ACOLUMNS                                                                                \
    "id, name, allowed_scopes, key_limit, max_key_lifetime_s, created_at, disabled_at,"            \
    " publish_keys"
#define PG_NOTIFY(cte, col) " SELECT pg_notify('" REQSIGN_PG_CHANNEL "', " col ") FROM " cte
#define T PG_OID_TEXT
#define I PG_OID_INT8

/* Every statement returns rows (writes use RETURNING or a data-modifying
 * WITH), so conn_run has one success status to check. Writes that change
 * what a verifier decides send NOTIFY reqsign_keys '<keyid>' for each key
 * they touch, in the same statement: exactly when, and only if, they commit. */
static const struct {
    const char *name, *sql;
    int nparams;
    Oid types[PG_NPARAMS_MAX];
} pg_stmts[PG_NSTMT] = {
    [PG_GET] = {"reqsign_get", "SELECT " PG_KCOLUMNS PG_KFROM "WHERE k.keyid = $1", 1, {T}},
    [PG_INSERT] =
        {"reqsign_insert",
         "WITH ins AS (INSERT INTO keys (keyid, public_key, label, scopes, created_at,"
         " expires_at, revoked_at, publish, account, disabled_at, replaces, replaced_by)"
         " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING keyid)" PG_NOTIFY(
             "ins", "keyid"),
         12,
         {T, PG_OID_BYTEA, T, T, I, I, I, PG_OID_BOOL, T, I, T, T}},
    [PG_LIST] = {"reqsign_list",
                 "SELECT " PG_KCOLUMNS PG_KFROM "WHERE k.keyid > $1 ORDER BY k.keyid LIMIT $2",
                 2,
                 {T, I}},
    [PG_REVOKE] = {"reqsign_revoke",
                   "WITH u AS (UPDATE keys SET revoked_at = COALESCE(revoked_at, $2)"
                   " WHERE keyid = $1 RETURNING keyid)" PG_NOTIFY("u", "keyid"),
                   2,
                   {T, I}},
    /* the right-hand sides see the row as it was: a revocation is final */
    [PG_UPDATE] = {"reqsign_update",
                   "WITH u AS (UPDATE keys SET expires_at = $2, disabled_at = $3, replaces = $4,"
                   " replaced_by = $5, revoked_at = COALESCE(revoked_at, $6),"
                   " revoke_reason = CASE WHEN revoked_at IS NULL THEN $7 ELSE revoke_reason END"
                   " WHERE keyid = $1 RETURNING keyid)" PG_NOTIFY("u", "keyid"),
                   7,
                   {T, I, I, T, T, I, T}},
    [PG_LIST_FILTER] = {"reqsign_list_filter",
                        "SELECT " PG_KCOLUMNS PG_KFROM
                        "WHERE k.keyid > $1 AND ($3 = '' OR k.account = $3) AND"
                        " ($4 = 0 OR COALESCE(k.last_used_at, k.created_at) < $4)"
                        " ORDER BY k.keyid LIMIT $2",
                        4,
                        {T, I, T, I}},
    [PG_COUNT_ACTIVE] = {"reqsign_count_active",
                         "SELECT count(*) FROM keys WHERE account = $1 AND revoked_at IS NULL"
                         " AND (expires_at IS NULL OR expires_at > $2)",
                         2,
                         {T, I}},
    /* last use is not a change a verifier acts on: no NOTIFY */
    [PG_TOUCH] = {"reqsign_touch",
                  "UPDATE keys SET last_used_at = $2, last_used_by = $3 WHERE keyid = $1"
                  " AND (last_used_at IS NULL OR last_used_at < $2) RETURNING keyid",
                  3,
                  {T, I, T}},
    [PG_ACCT_INSERT] = {"reqsign_account_insert",
                        "INSERT INTO accounts (" PG_ACOLUMNS ")"
                        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
                        8,
                        {T, T, T, I, I, I, I, PG_OID_BOOL}},
    [PG_ACCT_GET] = {"reqsign_account_get",
                     "SELECT " PG_ACOLUMNS " FROM accounts WHERE id = $1",
                     1,
                     {T}},
    [PG_ACCT_LIST] = {"reqsign_account_list",
                      "SELECT " PG_ACOLUMNS " FROM accounts WHERE id > $1 ORDER BY id LIMIT $2",
                      2,
                      {T, I}},
    /* every key of the account changes state for a verifier */
    [PG_ACCT_DISABLE] = {"reqsign_account_disable",
                         "WITH u AS (UPDATE accounts SET disabled_at = $2 WHERE id = $1"
                         " RETURNING id),"
                         " n AS (SELECT pg_notify('" REQSIGN_PG_CHANNEL "', k.keyid)"
                         " FROM keys k JOIN u ON k.account = u.id)"
                         " SELECT u.id, (SELECT count(*) FROM n) FROM u",
                         2,
                         {T, I}},
    [PG_ENROLL_INSERT] = {"reqsign_enrollment_insert",
                          "INSERT INTO enrollments (token_sha256, account, created_at, expires_at)"
                          " VALUES ($1, $2, $3, $4) RETURNING account",
                          4,
                          {PG_OID_BYTEA, T, I, I}},
    /* under READ COMMITTED a second UPDATE of the same row waits for the
     * first and re-checks used_at IS NULL: a token is consumed once */
    [PG_ENROLL_CONSUME] = {"reqsign_enrollment_consume",
                           "UPDATE enrollments SET used_at = $2 WHERE token_sha256 = $1 AND"
                           " used_at IS NULL AND expires_at > $2 AND EXISTS (SELECT 1 FROM"
                           " accounts a WHERE a.id = enrollments.account AND a.disabled_at IS NULL)"
                           " RETURNING account",
                           2,
                           {PG_OID_BYTEA, I}},
    [PG_AUDIT_APPEND] = {"reqsign_audit_append",
                         "INSERT INTO audit (time, actor, account, action, target, target_account,"
                         " outcome, source, nonce) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
                         " RETURNING seq",
                         9,
                         {I, T, T, T, T, T, T, T, T}},
    [PG_AUDIT_LIST] = {"reqsign_audit_list",
                       "SELECT seq, time, actor, account, action, target, outcome, source, nonce"
                       " FROM audit WHERE seq > $1 AND ($2 = '' OR account = $2 OR"
                       " target_account = $2) ORDER BY seq LIMIT $3",
                       3,
                       {I, T, I}},
    /* insert_limited: the account row locked until the transaction ends, so
     * concurrent limited inserts into one account take turns */
    [PG_ACCT_LOCK] = {"reqsign_account_lock",
                      "SELECT id FROM accounts WHERE id = $1 FOR UPDATE",
                      1,
                      {T}},
};
#undef T
#undef I

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
    static const int fmts[PG_NPARAMS_MAX] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
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
            st = reqsign_error_set(err, REQSIGN_E_CONFLICT, pg_src, REQSIGN_NO_OFFSET,
                                   "%s: already exists", what);
    } else if (state != NULL && strcmp(state, "23503") == 0) {
        /* foreign_key_violation: a key or an enrollment for no account */
        st = reqsign_error_set(err, REQSIGN_E_NOT_FOUND, pg_src, REQSIGN_NO_OFFSET,
                               "%s: no such account", what);
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

/* A nullable text column: NULL reads as "". */
static enum reqsign_status copy_opt(const PGresult *res, int row, int col, char *dst, size_t cap,
                                    const char *what, struct reqsign_error *err)
{
    if (PQgetisnull(res, row, col)) {
        dst[0] = '\0';
        return REQSIGN_OK;
    }
    return copy_text(res, row, col, dst, cap, false, what, err);
}

/* A boolean column; NULL (an outer join's missing side) reads as false. */
static enum reqsign_status column_bool(const PGresult *res, int row, int col, int *out,
                                       const char *what, struct reqsign_error *err)
{
    *out = 0;
    if (PQgetisnull(res, row, col))
        return REQSIGN_OK;
    if (PQgetlength(res, row, col) != 1)
        return corrupt(what, err);
    *out = PQgetvalue(res, row, col)[0] != 0;
    return REQSIGN_OK;
}

/* A row of PG_KCOLUMNS. */
static enum reqsign_status row_to_record(const PGresult *res, int row, struct reqsign_key_record *r,
                                         struct reqsign_error *err)
{
    memset(r, 0, sizeof(*r));
    if (PQnfields(res) != 17)
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
    if (s == REQSIGN_OK)
        s = PQgetisnull(res, row, 7) ? corrupt("publish", err)
                                     : column_bool(res, row, 7, &r->publish, "publish", err);
    if (s == REQSIGN_OK)
        s = copy_text(res, row, 8, r->account, sizeof(r->account), true, "account", err);
    if (s == REQSIGN_OK)
        s = column_time(res, row, 9, true, &r->disabled_at, "disabled_at", err);
    if (s == REQSIGN_OK)
        s = column_time(res, row, 10, true, &r->account_disabled_at, "account disabled_at", err);
    if (s == REQSIGN_OK)
        s = copy_opt(res, row, 11, r->replaces, sizeof(r->replaces), "replaces", err);
    if (s == REQSIGN_OK)
        s = copy_opt(res, row, 12, r->replaced_by, sizeof(r->replaced_by), "replaced_by", err);
    if (s == REQSIGN_OK)
        s = copy_opt(res, row, 13, r->revoke_reason, sizeof(r->revoke_reason), "revoke_reason",
                     err);
    if (s == REQSIGN_OK)
        s = column_time(res, row, 14, true, &r->last_used_at, "last_used_at", err);
    if (s == REQSIGN_OK)
        s = copy_opt(res, row, 15, r->last_used_by, sizeof(r->last_used_by), "last_used_by", err);
    if (s == REQSIGN_OK)
        s = column_bool(res, row, 16, &r->account_publish_keys, "publish_keys", err);
    if (s != REQSIGN_OK)
        return s;
    if (PQgetisnull(res, row, 1) || PQgetlength(res, row, 1) != REQSIGN_ED25519_PUBLIC_LEN)
        return corrupt("public_key", err);
    memcpy(r->public_key, PQgetvalue(res, row, 1), REQSIGN_ED25519_PUBLIC_LEN);
    return REQSIGN_OK;
}

/* A row of PG_ACOLUMNS. */
static enum reqsign_status row_to_account(const PGresult *res, int row, struct reqsign_account *a,
                                          struct reqsign_error *err)
{
    memset(a, 0, sizeof(*a));
    if (PQnfields(res) != 8)
        return corrupt("column count", err);
    enum reqsign_status s = copy_text(res, row, 0, a->id, sizeof(a->id), true, "account id", err);
    if (s == REQSIGN_OK)
        s = copy_text(res, row, 1, a->name, sizeof(a->name), false, "account name", err);
    if (s == REQSIGN_OK)
        s = copy_text(res, row, 2, a->allowed_scopes, sizeof(a->allowed_scopes), false,
                      "allowed_scopes", err);
    if (s == REQSIGN_OK)
        s = column_time(res, row, 3, false, &a->key_limit, "key_limit", err);
    if (s == REQSIGN_OK)
        s = column_time(res, row, 4, true, &a->max_key_lifetime_s, "max_key_lifetime_s", err);
    if (s == REQSIGN_OK)
        s = column_time(res, row, 5, false, &a->created_at, "account created_at", err);
    if (s == REQSIGN_OK)
        s = column_time(res, row, 6, true, &a->disabled_at, "account disabled_at", err);
    if (s == REQSIGN_OK)
        s = column_bool(res, row, 7, &a->publish_keys, "publish_keys", err);
    return s;
}

/* A row of the audit list. */
static enum reqsign_status row_to_audit(const PGresult *res, int row, struct reqsign_audit_event *e,
                                        struct reqsign_error *err)
{
    memset(e, 0, sizeof(*e));
    if (PQnfields(res) != 9)
        return corrupt("column count", err);
    enum reqsign_status s = column_time(res, row, 0, false, &e->seq, "audit seq", err);
    if (s == REQSIGN_OK)
        s = column_time(res, row, 1, false, &e->time, "audit time", err);
    struct {
        char *dst;
        size_t cap;
    } f[7] = {{e->actor, sizeof(e->actor)},     {e->account, sizeof(e->account)},
              {e->action, sizeof(e->action)},   {e->target, sizeof(e->target)},
              {e->outcome, sizeof(e->outcome)}, {e->source, sizeof(e->source)},
              {e->nonce, sizeof(e->nonce)}};
    for (int i = 0; i < 7 && s == REQSIGN_OK; i++)
        s = copy_text(res, row, i + 2, f[i].dst, f[i].cap, false, "audit", err);
    return s;
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

static enum reqsign_status no_account(struct reqsign_error *err)
{
    return reqsign_error_set(err, REQSIGN_E_NOT_FOUND, pg_src, REQSIGN_NO_OFFSET,
                             "no such account");
}

/* The values of PG_INSERT for @rec: @a holds them and the times. */
struct pg_insert_args {
    char created[8], expires[8], revoked[8], disabled[8];
    char publish;
    const char *vals[12];
    int lens[12];
};

static void insert_args(const struct reqsign_key_record *rec, struct pg_insert_args *a)
{
    put_int8(a->created, rec->created_at);
    put_int8(a->expires, rec->expires_at);
    put_int8(a->revoked, rec->revoked_at);
    put_int8(a->disabled, rec->disabled_at);
    a->publish = rec->publish != 0;
    /* The wrapper checked that the strings are NUL-terminated in their arrays. */
    const char *account = rec->account[0] != '\0' ? rec->account : REQSIGN_ACCOUNT_OPERATOR;
    const char *vals[12] = {rec->keyid,
                            (const char *)rec->public_key,
                            rec->label,
                            rec->scopes,
                            a->created,
                            rec->expires_at != 0 ? a->expires : NULL,
                            rec->revoked_at != 0 ? a->revoked : NULL,
                            &a->publish,
                            account,
                            rec->disabled_at != 0 ? a->disabled : NULL,
                            rec->replaces[0] != '\0' ? rec->replaces : NULL,
                            rec->replaced_by[0] != '\0' ? rec->replaced_by : NULL};
    const int lens[12] = {(int)strlen(rec->keyid),
                          REQSIGN_ED25519_PUBLIC_LEN,
                          (int)strlen(rec->label),
                          (int)strlen(rec->scopes),
                          8,
                          8,
                          8,
                          1,
                          (int)strlen(account),
                          8,
                          (int)strlen(rec->replaces),
                          (int)strlen(rec->replaced_by)};
    memcpy(a->vals, vals, sizeof(vals));
    memcpy(a->lens, lens, sizeof(lens));
}

/* Run a statement without parameters on @c (BEGIN, COMMIT, ROLLBACK). */
static enum reqsign_status conn_command(struct pg_conn *c, const char *sql, const char *what,
                                        struct reqsign_error *err)
{
    PGresult *res = PQexec(c->pg, sql);
    enum reqsign_status st = REQSIGN_OK;
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        st = res_fail(c->pg, res, what, err);
    PQclear(res);
    return st;
}

/* One transaction: lock the account row, count its active keys, insert. The
 * row lock makes a second limited insert into the same account wait for the
 * first to commit, and its count (a new statement, so a new snapshot under
 * READ COMMITTED) then sees the first one's key. */
static enum reqsign_status pg_insert_limited(void *impl, const struct reqsign_key_record *rec,
                                             int64_t now, int64_t max_active,
                                             struct reqsign_error *err)
{
    struct pg_store *s = impl;
    if (s->readonly)
        return refuse_readonly("insert", err);
    struct pg_insert_args a;
    insert_args(rec, &a);
    struct pg_conn *c;
    bool reused;
    enum reqsign_status st = conn_get(s, false, &c, &reused, err);
    if (st != REQSIGN_OK)
        return st;
    PGresult *res = NULL;
    st = conn_command(c, "BEGIN", "insert", err);
    if (st == REQSIGN_OK) {
        const char *vals[1] = {a.vals[8]};
        const int lens[1] = {a.lens[8]};
        st = conn_run(c, PG_ACCT_LOCK, vals, lens, "insert", &res, err);
        if (st == REQSIGN_OK && PQntuples(res) == 0)
            st = no_account(err);
        PQclear(res);
        res = NULL;
    }
    if (st == REQSIGN_OK) {
        char t[8];
        put_int8(t, now);
        const char *vals[2] = {a.vals[8], t};
        const int lens[2] = {a.lens[8], 8};
        int64_t n = 0;
        st = conn_run(c, PG_COUNT_ACTIVE, vals, lens, "count", &res, err);
        if (st == REQSIGN_OK)
            st = PQntuples(res) == 1 ? column_time(res, 0, 0, false, &n, "count", err)
                                     : corrupt("count", err);
        PQclear(res);
        res = NULL;
        if (st == REQSIGN_OK && n >= max_active)
            st = reqsign_error_set(err, REQSIGN_E_KEY_LIMIT, pg_src, REQSIGN_NO_OFFSET,
                                   "the account has %lld of at most %lld active keys", (long long)n,
                                   (long long)max_active);
    }
    if (st == REQSIGN_OK) {
        st = conn_run(c, PG_INSERT, a.vals, a.lens, "insert", &res, err);
        PQclear(res);
    }
    if (st == REQSIGN_OK)
        st = conn_command(c, "COMMIT", "insert", err);
    if (st != REQSIGN_OK && PQstatus(c->pg) == CONNECTION_OK &&
        PQtransactionStatus(c->pg) != PQTRANS_IDLE)
        (void)conn_command(c, "ROLLBACK", "insert", NULL);
    conn_put(s, c);
    return st;
}

static enum reqsign_status pg_insert(void *impl, const struct reqsign_key_record *rec,
                                     struct reqsign_error *err)
{
    struct pg_store *s = impl;
    if (s->readonly)
        return refuse_readonly("insert", err);
    struct pg_insert_args a;
    insert_args(rec, &a);
    PGresult *res = NULL;
    enum reqsign_status st = pg_call(s, PG_INSERT, false, a.vals, a.lens, "insert", &res, err);
    if (st != REQSIGN_OK)
        return st;
    if (PQntuples(res) != 1)
        st = reqsign_error_set(err, REQSIGN_E_STORE, pg_src, REQSIGN_NO_OFFSET,
                               "insert: %d rows inserted", PQntuples(res));
    PQclear(res);
    return st;
}

/* Copy up to @limit rows of @res into @out (elements of @size) with @row_fn;
 * *@n gets how many. */
typedef enum reqsign_status (*pg_row_fn)(const PGresult *res, int row, void *out,
                                         struct reqsign_error *err);

static enum reqsign_status rows_into(const PGresult *res, size_t limit, pg_row_fn row_fn, void *out,
                                     size_t size, size_t *n, struct reqsign_error *err)
{
    size_t got = 0;
    int rows = PQntuples(res);
    for (int i = 0; i < rows && got < limit; i++) {
        enum reqsign_status st = row_fn(res, i, (char *)out + got * size, err);
        if (st != REQSIGN_OK)
            return st;
        got++;
    }
    *n = got;
    return REQSIGN_OK;
}

static enum reqsign_status key_row(const PGresult *res, int row, void *out,
                                   struct reqsign_error *err)
{
    return row_to_record(res, row, out, err);
}

static enum reqsign_status account_row(const PGresult *res, int row, void *out,
                                       struct reqsign_error *err)
{
    return row_to_account(res, row, out, err);
}

static enum reqsign_status audit_row(const PGresult *res, int row, void *out,
                                     struct reqsign_error *err)
{
    return row_to_audit(res, row, out, err);
}

/* Run a query @which whose rows go into @out through @row_fn. */
static enum reqsign_status pg_rows(struct pg_store *s, enum pg_stmt which, const char *const *vals,
                                   const int *lens, const char *what, size_t limit,
                                   pg_row_fn row_fn, void *out, size_t size, size_t *n,
                                   struct reqsign_error *err)
{
    *n = 0;
    PGresult *res = NULL;
    enum reqsign_status st = pg_call(s, which, true, vals, lens, what, &res, err);
    if (st != REQSIGN_OK)
        return st;
    st = rows_into(res, limit, row_fn, out, size, n, err);
    PQclear(res);
    if (st != REQSIGN_OK)
        *n = 0;
    return st;
}

/* A list cursor as a text parameter. A cursor byte >= 0x80 cannot be sent as
 * text on its own; every keyid is printable ASCII, so "prefix before it" +
 * 0x7f orders the same way. Returns its length (@cursor is not terminated). */
static size_t list_cursor(const char *after, char cursor[REQSIGN_KEYID_IN_MAX + 2])
{
    size_t clen = 0;
    while (after[clen] != '\0' && (unsigned char)after[clen] < 0x80 &&
           clen < REQSIGN_KEYID_IN_MAX) {
        cursor[clen] = after[clen];
        clen++;
    }
    if (after[clen] != '\0')
        cursor[clen++] = 0x7f;
    return clen;
}

static enum reqsign_status pg_list(void *impl, const char *after, size_t limit,
                                   struct reqsign_key_record *out, size_t *n,
                                   struct reqsign_error *err)
{
    struct pg_store *s = impl;
    *n = 0;
    char cursor[REQSIGN_KEYID_IN_MAX + 2];
    size_t clen = list_cursor(after, cursor);
    char lim[8];
    put_int8(lim, (int64_t)limit);
    const char *vals[2] = {cursor, lim};
    const int lens[2] = {(int)clen, 8};
    return pg_rows(s, PG_LIST, vals, lens, "list", limit, key_row, out, sizeof(*out), n, err);
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

/* ---- accounts and the key lifecycle ---- */

/* A text value for a statement: NULL for a NULL pointer, else the string. */
static int text_len(const char *v)
{
    return v != NULL ? (int)strlen(v) : 0;
}

static enum reqsign_status pg_update(void *impl, const struct reqsign_key_record *rec,
                                     struct reqsign_error *err)
{
    struct pg_store *s = impl;
    if (s->readonly)
        return refuse_readonly("update", err);
    char expires[8], disabled[8], revoked[8];
    put_int8(expires, rec->expires_at);
    put_int8(disabled, rec->disabled_at);
    put_int8(revoked, rec->revoked_at);
    const char *replaces = rec->replaces[0] ? rec->replaces : NULL;
    const char *replaced_by = rec->replaced_by[0] ? rec->replaced_by : NULL;
    const char *reason = rec->revoke_reason[0] ? rec->revoke_reason : NULL;
    const char *vals[7] = {rec->keyid,
                           rec->expires_at != 0 ? expires : NULL,
                           rec->disabled_at != 0 ? disabled : NULL,
                           replaces,
                           replaced_by,
                           rec->revoked_at != 0 ? revoked : NULL,
                           reason};
    const int lens[7] = {text_len(rec->keyid), 8, 8, text_len(replaces), text_len(replaced_by), 8,
                         text_len(reason)};
    PGresult *res = NULL;
    /* idempotent: it writes absolute values */
    enum reqsign_status st = pg_call(s, PG_UPDATE, true, vals, lens, "update", &res, err);
    if (st != REQSIGN_OK)
        return st;
    if (PQntuples(res) == 0)
        st = unknown_key(err);
    PQclear(res);
    return st;
}

static enum reqsign_status pg_list_filter(void *impl, const struct reqsign_key_filter *f,
                                          const char *after, size_t limit,
                                          struct reqsign_key_record *out, size_t *n,
                                          struct reqsign_error *err)
{
    struct pg_store *s = impl;
    char cursor[REQSIGN_KEYID_IN_MAX + 2];
    size_t clen = list_cursor(after, cursor);
    char lim[8], unused[8];
    put_int8(lim, (int64_t)limit);
    put_int8(unused, f->unused_before);
    const char *account = f->account != NULL ? f->account : "";
    const char *vals[4] = {cursor, lim, account, unused};
    const int lens[4] = {(int)clen, 8, text_len(account), 8};
    return pg_rows(s, PG_LIST_FILTER, vals, lens, "list", limit, key_row, out, sizeof(*out), n,
                   err);
}

static enum reqsign_status pg_count_active(void *impl, const char *account, int64_t now, int64_t *n,
                                           struct reqsign_error *err)
{
    struct pg_store *s = impl;
    *n = 0;
    char t[8];
    put_int8(t, now);
    const char *vals[2] = {account, t};
    const int lens[2] = {text_len(account), 8};
    PGresult *res = NULL;
    enum reqsign_status st = pg_call(s, PG_COUNT_ACTIVE, true, vals, lens, "count", &res, err);
    if (st != REQSIGN_OK)
        return st;
    if (PQntuples(res) != 1)
        st = corrupt("count", err);
    else
        st = column_time(res, 0, 0, false, n, "count", err);
    PQclear(res);
    return st;
}

static enum reqsign_status pg_touch(void *impl, const char *keyid, int64_t at, const char *by,
                                    struct reqsign_error *err)
{
    struct pg_store *s = impl;
    if (s->readonly)
        return refuse_readonly("touch", err);
    if (!keyid_storable(keyid, strlen(keyid)))
        return REQSIGN_OK; /* unknown keys: OK */
    char t[8];
    put_int8(t, at);
    const char *vals[3] = {keyid, t, by};
    const int lens[3] = {text_len(keyid), 8, text_len(by)};
    PGresult *res = NULL;
    enum reqsign_status st = pg_call(s, PG_TOUCH, true, vals, lens, "touch", &res, err);
    PQclear(res);
    return st;
}

static enum reqsign_status pg_account_insert(void *impl, const struct reqsign_account *a,
                                             struct reqsign_error *err)
{
    struct pg_store *s = impl;
    if (s->readonly)
        return refuse_readonly("account insert", err);
    char limit[8], life[8], created[8], disabled[8];
    put_int8(limit, a->key_limit);
    put_int8(life, a->max_key_lifetime_s);
    put_int8(created, a->created_at);
    put_int8(disabled, a->disabled_at);
    const char publish = a->publish_keys != 0;
    const char *vals[8] = {a->id,
                           a->name,
                           a->allowed_scopes,
                           limit,
                           a->max_key_lifetime_s != 0 ? life : NULL,
                           created,
                           a->disabled_at != 0 ? disabled : NULL,
                           &publish};
    const int lens[8] = {
        text_len(a->id), text_len(a->name), text_len(a->allowed_scopes), 8, 8, 8, 8, 1};
    PGresult *res = NULL;
    enum reqsign_status st =
        pg_call(s, PG_ACCT_INSERT, false, vals, lens, "account insert", &res, err);
    PQclear(res);
    return st;
}

static enum reqsign_status pg_account_get(void *impl, const char *id, struct reqsign_account *out,
                                          struct reqsign_error *err)
{
    struct pg_store *s = impl;
    memset(out, 0, sizeof(*out));
    const char *vals[1] = {id};
    const int lens[1] = {text_len(id)};
    size_t n = 0;
    enum reqsign_status st = pg_rows(s, PG_ACCT_GET, vals, lens, "account get", 1, account_row, out,
                                     sizeof(*out), &n, err);
    if (st == REQSIGN_OK && n == 0)
        st = no_account(err);
    return st;
}

static enum reqsign_status pg_account_list(void *impl, const char *after, size_t limit,
                                           struct reqsign_account *out, size_t *n,
                                           struct reqsign_error *err)
{
    struct pg_store *s = impl;
    char lim[8];
    put_int8(lim, (int64_t)limit);
    const char *vals[2] = {after, lim};
    const int lens[2] = {text_len(after), 8};
    return pg_rows(s, PG_ACCT_LIST, vals, lens, "account list", limit, account_row, out,
                   sizeof(*out), n, err);
}

static enum reqsign_status pg_account_set_disabled(void *impl, const char *id, int64_t at,
                                                   struct reqsign_error *err)
{
    struct pg_store *s = impl;
    if (s->readonly)
        return refuse_readonly("account update", err);
    char t[8];
    put_int8(t, at);
    const char *vals[2] = {id, at != 0 ? t : NULL};
    const int lens[2] = {text_len(id), 8};
    PGresult *res = NULL;
    enum reqsign_status st =
        pg_call(s, PG_ACCT_DISABLE, true, vals, lens, "account update", &res, err);
    if (st != REQSIGN_OK)
        return st;
    if (PQntuples(res) == 0)
        st = no_account(err);
    PQclear(res);
    return st;
}

static enum reqsign_status pg_enrollment_insert(void *impl,
                                                const uint8_t hash[REQSIGN_ENROLLMENT_HASH_LEN],
                                                const char *account, int64_t created_at,
                                                int64_t expires_at, struct reqsign_error *err)
{
    struct pg_store *s = impl;
    if (s->readonly)
        return refuse_readonly("enrollment insert", err);
    char created[8], expires[8];
    put_int8(created, created_at);
    put_int8(expires, expires_at);
    const char *vals[4] = {(const char *)hash, account, created, expires};
    const int lens[4] = {REQSIGN_ENROLLMENT_HASH_LEN, text_len(account), 8, 8};
    PGresult *res = NULL;
    enum reqsign_status st =
        pg_call(s, PG_ENROLL_INSERT, false, vals, lens, "enrollment insert", &res, err);
    PQclear(res);
    return st;
}

static enum reqsign_status
pg_enrollment_consume(void *impl, const uint8_t hash[REQSIGN_ENROLLMENT_HASH_LEN], int64_t now,
                      char account_out[REQSIGN_ACCOUNT_ID_IN_MAX + 1], struct reqsign_error *err)
{
    struct pg_store *s = impl;
    account_out[0] = '\0';
    if (s->readonly)
        return refuse_readonly("enrollment", err);
    char t[8];
    put_int8(t, now);
    const char *vals[2] = {(const char *)hash, t};
    const int lens[2] = {REQSIGN_ENROLLMENT_HASH_LEN, 8};
    PGresult *res = NULL;
    /* not retried: a consumed token must not be consumed again */
    enum reqsign_status st =
        pg_call(s, PG_ENROLL_CONSUME, false, vals, lens, "enrollment", &res, err);
    if (st != REQSIGN_OK)
        return st;
    if (PQntuples(res) == 0)
        st = reqsign_error_set(err, REQSIGN_E_ENROLLMENT_INVALID, pg_src, REQSIGN_NO_OFFSET,
                               "enrollment token unknown, used or expired");
    else
        st = copy_text(res, 0, 0, account_out, REQSIGN_ACCOUNT_ID_IN_MAX + 1, true, "account", err);
    PQclear(res);
    if (st != REQSIGN_OK)
        account_out[0] = '\0';
    return st;
}

static enum reqsign_status pg_audit_append(void *impl, const struct reqsign_audit_event *ev,
                                           struct reqsign_error *err)
{
    struct pg_store *s = impl;
    if (s->readonly)
        return refuse_readonly("audit", err);
    char t[8];
    put_int8(t, ev->time);
    const char *vals[9] = {t,           ev->actor,  ev->account,
                           ev->action,  ev->target, ev->target_account,
                           ev->outcome, ev->source, ev->nonce};
    int lens[9] = {8};
    for (int i = 1; i < 9; i++)
        lens[i] = text_len(vals[i]);
    PGresult *res = NULL;
    enum reqsign_status st = pg_call(s, PG_AUDIT_APPEND, false, vals, lens, "audit", &res, err);
    PQclear(res);
    return st;
}

static enum reqsign_status pg_audit_list(void *impl, const char *account, int64_t after,
                                         size_t limit, struct reqsign_audit_event *out, size_t *n,
                                         struct reqsign_error *err)
{
    struct pg_store *s = impl;
    char a[8], lim[8];
    put_int8(a, after);
    put_int8(lim, (int64_t)limit);
    const char *vals[3] = {a, account, lim};
    const int lens[3] = {8, text_len(account), 8};
    return pg_rows(s, PG_AUDIT_LIST, vals, lens, "audit list", limit, audit_row, out, sizeof(*out),
                   n, err);
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
        .update = pg_update,
        .list_filter = pg_list_filter,
        .count_active = pg_count_active,
        .touch = pg_touch,
        .account_insert = pg_account_insert,
        .account_get = pg_account_get,
        .account_list = pg_account_list,
        .account_set_disabled = pg_account_set_disabled,
        .enrollment_insert = pg_enrollment_insert,
        .enrollment_consume = pg_enrollment_consume,
        .audit_append = pg_audit_append,
        .audit_list = pg_audit_list,
        .insert_limited = pg_insert_limited,
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
