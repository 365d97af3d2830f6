/* reqsign: the PostgreSQL key store, and cache invalidation by LISTEN/NOTIFY.
 *
 * The same keys and schema_version tables as the SQLite store, in a
 * PostgreSQL database shared by a fleet of verifiers and key services.
 * Built only when libpq was found (meson option `fleet`); otherwise
 * reqsign_keystore_pg_open() and reqsign_keystore_pg_listen() fail with
 * REQSIGN_E_INVALID_ARG ("built without PostgreSQL support").
 *
 * Every insert and revoke also sends `NOTIFY reqsign_keys, '<keyid>'` in the
 * same transaction, so a reqsign_keystore_pg_listen() thread can drop the key
 * from a struct reqsign_keycache as soon as the change commits. The cache TTL
 * stays the bound when notifications are lost (listener disconnected).
 *
 * Thread safety: as for every key store (see keystore.h). The listener
 * functions are safe on distinct listeners.
 */
#ifndef REQSIGN_KEYSTORE_PG_H
#define REQSIGN_KEYSTORE_PG_H

#include <reqsign/defs.h>
#include <reqsign/error.h>
#include <reqsign/keycache.h>
#include <reqsign/keystore.h>

#ifdef __cplusplus
extern "C" {
#endif

/** The schema version this build migrates to: 1 keys, 2 keys.publish, 3 accounts,
 * the key lifecycle, enrollments and the audit log (SQLite reaches the same
 * schema in its own steps). */
#define REQSIGN_PG_SCHEMA_VERSION 3
/** Seconds; used when @conninfo sets no connect_timeout. */
#define REQSIGN_PG_CONNECT_TIMEOUT 2
/** Milliseconds; statement_timeout set on every connection. */
#define REQSIGN_PG_STATEMENT_TIMEOUT_MS 2000
/** The NOTIFY channel; the payload is the keyid. */
#define REQSIGN_PG_CHANNEL "reqsign_keys"
/* The connection pool (the same pool as every store's): at most
 * REQSIGN_PG_POOL_MAX connections open per store (count them against the
 * server's max_connections for every process of a fleet), at most
 * REQSIGN_PG_POOL_IDLE_MAX kept idle; a call that finds all of them in use
 * waits up to REQSIGN_PG_POOL_WAIT_MS (monotonic clock) for one, then fails
 * with REQSIGN_E_KEYSTORE_UNAVAILABLE ("all 16 connections busy"). An idle
 * connection the server closed is replaced when taken. Fixed at build time;
 * the LISTEN thread's connection is not counted. */
#define REQSIGN_PG_POOL_MAX 16
#define REQSIGN_PG_POOL_IDLE_MAX 8
#define REQSIGN_PG_POOL_WAIT_MS 2000

/**
 * reqsign_keystore_pg_open() - connect to a PostgreSQL key store.
 * @conninfo: a libpq connection string or URI, e.g.
 *            "postgresql://reqsign@db.internal:5432/keys" or
 *            "postgresql:///keys?host=/run/postgresql". connect_timeout
 *            defaults to REQSIGN_PG_CONNECT_TIMEOUT seconds.
 * @flags:    REQSIGN_KEYSTORE_CREATE: apply missing migrations (in one
 *            transaction under a transaction-level advisory lock, so processes
 *            migrating at once serialise and later ones find nothing to do).
 *            REQSIGN_KEYSTORE_READONLY: never write (connections are
 *            read-only; insert and revoke fail with REQSIGN_E_STORE
 *            "... read-only"). Neither: read-write on an already migrated
 *            schema. Without CREATE, a schema at another version is refused.
 * @err:      on failure, code and message; may be NULL.
 *
 * One connection is made and checked at open; further ones are made on
 * demand (a small pool; each connection has statement_timeout
 * REQSIGN_PG_STATEMENT_TIMEOUT_MS and its statements prepared once). Errors:
 * a duplicate keyid or public key on insert is REQSIGN_E_CONFLICT; a lost
 * connection, a refused connect, a timeout or a server shutting down is
 * REQSIGN_E_KEYSTORE_UNAVAILABLE (that connection is dropped; the next call
 * connects again); anything else is REQSIGN_E_STORE with the server's
 * message. The store keeps working across a server restart.
 *
 * Return: the store (free with reqsign_keystore_free()), or NULL with @err
 * set: REQSIGN_E_INVALID_ARG (bad @conninfo or @flags, or no PostgreSQL
 * support), REQSIGN_E_KEYSTORE_UNAVAILABLE (cannot connect), REQSIGN_E_STORE
 * (schema missing, newer or older than this build), REQSIGN_E_NOMEM.
 * Thread safety: thread-safe.
 */
REQSIGN_API struct reqsign_keystore *reqsign_keystore_pg_open(const char *conninfo, unsigned flags,
                                                              struct reqsign_error *err);

struct reqsign_keystore_pg_listener;

/**
 * reqsign_keystore_pg_listen() - keep @cache in step with the store's NOTIFYs.
 * @conninfo: as for reqsign_keystore_pg_open() (the same database).
 * @cache:    borrowed; must outlive the listener.
 * @err:      on failure, code and message; may be NULL.
 *
 * Starts a thread with its own connection that LISTENs on REQSIGN_PG_CHANNEL
 * and calls reqsign_keycache_invalidate(@cache, keyid) for every
 * notification. When the connection is lost it reconnects with backoff
 * (100 ms doubling to 2 s) and, once listening again, invalidates the whole
 * cache, since notifications sent meanwhile are lost. The first connection is
 * made in the background too: the call does not wait for the server.
 *
 * Return: the listener, or NULL with @err set (REQSIGN_E_INVALID_ARG,
 * REQSIGN_E_NOMEM, REQSIGN_E_INTERNAL if the thread cannot start).
 * Thread safety: thread-safe.
 */
REQSIGN_API struct reqsign_keystore_pg_listener *
reqsign_keystore_pg_listen(const char *conninfo, struct reqsign_keycache *cache,
                           struct reqsign_error *err);

/** Counters for tests and metrics (read without a lock; approximate). */
struct reqsign_keystore_pg_listener_stats {
    uint64_t connects;      /* successful LISTENs (the first included) */
    uint64_t notifications; /* keyids invalidated */
};

/** reqsign_keystore_pg_listener_stats() - copy the counters; NULL @l gives zeros. */
REQSIGN_API void reqsign_keystore_pg_listener_stats(struct reqsign_keystore_pg_listener *l,
                                                    struct reqsign_keystore_pg_listener_stats *out);

/**
 * reqsign_keystore_pg_listener_stop() - stop the thread, join it, close its
 * connection and free @l. NULL is a no-op. Returns within about
 * connect_timeout even while the thread is connecting.
 * Thread safety: not thread-safe on one @l (call once).
 */
REQSIGN_API void reqsign_keystore_pg_listener_stop(struct reqsign_keystore_pg_listener *l);

#ifdef __cplusplus
}
#endif
#endif
