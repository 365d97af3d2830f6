/* reqsign: the SQLite key store (library reqsign-keystore-sqlite).
 *
 * A struct reqsign_keystore (reqsign/keystore.h) over a SQLite database file.
 */
#ifndef REQSIGN_KEYSTORE_SQLITE_H
#define REQSIGN_KEYSTORE_SQLITE_H

#include <reqsign/defs.h>
#include <reqsign/error.h>
#include <reqsign/keystore.h>

#ifdef __cplusplus
extern "C" {
#endif

/* WAL mode, busy timeout (REQSIGN_SQLITE_BUSY_MS), a schema_version table and
 * ordered migrations applied at open. A pool of connections (one taken per
 * call, opened on demand, each with its prepared statements), so readers never
 * block each other and short-lived threads leak nothing. The file is created
 * with mode 0600 by reqsign, never by SQLite. */
#define REQSIGN_SQLITE_BUSY_MS 5000

/* The connection pool (the same pool as every store's): at most
 * REQSIGN_SQLITE_POOL_MAX connections open per store, at most
 * REQSIGN_SQLITE_POOL_IDLE_MAX of them kept idle; a call that finds all of
 * them in use waits up to REQSIGN_SQLITE_POOL_WAIT_MS (monotonic clock) for
 * one, then fails with REQSIGN_E_KEYSTORE_UNAVAILABLE ("all 64 connections
 * busy"). Fixed at build time. */
#define REQSIGN_SQLITE_POOL_MAX 64
#define REQSIGN_SQLITE_POOL_IDLE_MAX 32
#define REQSIGN_SQLITE_POOL_WAIT_MS 2000

/**
 * reqsign_keystore_sqlite_open() - open (and migrate, unless read-only) the
 * database at @path.
 * Return: the store, or NULL with @err set (REQSIGN_E_STORE, REQSIGN_E_IO,
 * REQSIGN_E_NOMEM; a read-only open of a missing or unmigrated file fails).
 * Thread safety: thread-safe.
 */
REQSIGN_API struct reqsign_keystore *reqsign_keystore_sqlite_open(const char *path, unsigned flags,
                                                                  struct reqsign_error *err);

/** The schema version this build migrates to. */
#define REQSIGN_SQLITE_SCHEMA_VERSION 3

#ifdef __cplusplus
}
#endif
#endif
