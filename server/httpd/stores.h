/* reqsign-httpd: the store options shared by reqsignd and the example
 * api-backend (`--key-store`, `--db`, `--nonce-store`), and opening what
 * they name. Internal, not installed.
 *
 *   --key-store sqlite:PATH | PATH | postgresql://... | postgres://...
 *   --db PATH                      the same as --key-store sqlite:PATH
 *   --nonce-store memory | redis://[USER@]HOST[:PORT][/DB] | unix:/path
 *   REQSIGN_KEY_STORE, REQSIGN_NONCE_STORE: the same values, from the
 *                  environment, when the option is absent; the only place for a
 *                  URL with a password (redis://[[USER]:PASSWORD@]HOST...), which
 *                  the options refuse (see reqsign_stores_option())
 *                  a Redis URL may end in ?per_key_max=N&max_entries=N&assume_noeviction=1
 *                  (reqsign/nonce_redis.h); a password's '@', ':' or '/' percent-encoded
 *
 * Start-up policy: a store that cannot be reached when the server starts is
 * a start-up failure (a message naming the store on stderr, exit status 1):
 * PostgreSQL is connected to by reqsign_keystore_pg_open(), Redis is sent a
 * PING. A typo in a URL or a store that is down is then seen at once rather
 * than as a fleet answering 503. Once running, an outage of either store is
 * answered per request, fail-closed (503 nonce_store_unavailable /
 * keystore_unavailable with Retry-After), and service resumes by itself when
 * the store is back.
 */
#ifndef REQSIGN_HTTPD_STORES_H
#define REQSIGN_HTTPD_STORES_H

#include <reqsign/keycache.h>
#include <reqsign/keystore.h>
#include <reqsign/nonce.h>

#include "opt.h"

struct reqsign_keystore_pg_listener;

struct reqsign_stores_opts {
    const char *key_store;   /* as given to --key-store / --db; NULL: not given */
    int key_store_from_db;   /* it came from --db (for messages) */
    const char *nonce_store; /* as given to --nonce-store; NULL: "memory" */
};

/* The store options, as rows of a server's option table (common/opt/opt.h),
 * and their ids (above every server's own). */
enum {
    REQSIGN_STORES_O_KEY_STORE = 2100,
    REQSIGN_STORES_O_DB,
    REQSIGN_STORES_O_NONCE_STORE,
};
#define REQSIGN_STORES_OPTS                                                                        \
    {"key-store", 0, REQSIGN_OPT_VALUE, REQSIGN_STORES_O_KEY_STORE},                               \
        {"db", 0, REQSIGN_OPT_VALUE, REQSIGN_STORES_O_DB},                                         \
    {                                                                                              \
        "nonce-store", 0, REQSIGN_OPT_VALUE, REQSIGN_STORES_O_NONCE_STORE                          \
    }

/**
 * reqsign_stores_option() - take a command-line option if it is one of the
 * store options: @id is one of REQSIGN_STORES_OPTS (--key-store, --db,
 * --nonce-store) and @value its argument. @prog names the program in messages.
 * A URL that carries a password (redis://[USER]:PW@..., postgresql://USER:PW@...,
 * a password= keyword) is refused: the command line is readable by every
 * local user; the message names REQSIGN_KEY_STORE / REQSIGN_NONCE_STORE
 * (and PGPASSFILE / ~/.pgpass) and does not echo the password.
 * Return: 1 taken; 0 not a store option; -1 a bad or repeated value (a
 * message is on stderr; the caller exits with status 2).
 */
int reqsign_stores_option(struct reqsign_stores_opts *o, const char *prog, int id,
                          const char *value);

/**
 * reqsign_stores_from_env() - after the command line: a store whose option
 * was absent is taken from the environment, REQSIGN_KEY_STORE and (with
 * @nonces) REQSIGN_NONCE_STORE, the same values as the options. A URL with a
 * password goes there (e.g. a systemd EnvironmentFile, mode 0600), never on
 * the command line: reqsign_stores_option() refuses one.
 * Return: 0, or -1 with a message on stderr (the caller exits with status 2).
 */
int reqsign_stores_from_env(struct reqsign_stores_opts *o, const char *prog, int nonces);

/** reqsign_stores_usage() - the usage text of the options (one line). */
const char *reqsign_stores_usage(void);

/** reqsign_stores_key_store_is_pg() - 1 if @spec names a PostgreSQL key store. */
int reqsign_stores_key_store_is_pg(const char *spec);

/** reqsign_stores_key_store_path() - the SQLite path of @spec (after "sqlite:"), else NULL. */
const char *reqsign_stores_key_store_path(const char *spec);

/**
 * reqsign_stores_open_keys() - open the key store @spec with @flags
 * (REQSIGN_KEYSTORE_READONLY / _CREATE). Return: the store, or NULL with a
 * message on stderr naming the store (never a password).
 */
struct reqsign_keystore *reqsign_stores_open_keys(const char *prog, const char *spec,
                                                  unsigned flags);

/**
 * reqsign_stores_open_nonces() - the nonce store @spec (NULL or "memory":
 * the in-memory store; else Redis, checked with a PING).
 * Return: the store, or NULL with a message on stderr.
 */
struct reqsign_nonce_store *reqsign_stores_open_nonces(const char *prog, const char *spec);

/**
 * reqsign_stores_listen() - for a PostgreSQL @spec, start the LISTEN/NOTIFY
 * thread that drops revoked or changed keys from @cache as soon as the
 * change commits; for SQLite, nothing (*@out is NULL).
 * Return: 0 (*@out: the listener, stop it with reqsign_stores_unlisten()),
 * or -1 with a message on stderr.
 */
int reqsign_stores_listen(const char *prog, const char *spec, struct reqsign_keycache *cache,
                          struct reqsign_keystore_pg_listener **out);

/** reqsign_stores_unlisten() - stop @l (NULL: nothing). */
void reqsign_stores_unlisten(struct reqsign_keystore_pg_listener *l);

/** reqsign_stores_describe() - @spec for log lines (static buffer): a URL's whole
 * userinfo (user and password, as libcurl's URL API delimits it) becomes ***, a
 * URL that does not parse and holds an '@' is not shown past its scheme, and a
 * password= query value becomes ***. */
const char *reqsign_stores_describe(const char *spec);

/**
 * reqsign_stores_sqlite_problem() - why the SQLite key store at @path cannot
 * be used by this process, for the message when opening it failed: it does
 * not exist (then `reqsignd init` is the advice), its directory or the file
 * cannot be read or written by this user (the uid, owner and mode are named),
 * or it is not a SQLite database. Writes one sentence into @buf.
 * @need_write: the caller opens it for writing (reqsignd), else read-only.
 * Return: 1 missing (run init), 2 permission, 3 not a database, 0 none of
 * these (the store's own message is the cause).
 */
int reqsign_stores_sqlite_problem(const char *path, int need_write, char *buf, size_t cap);

#endif
