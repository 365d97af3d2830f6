/* reqsign: the key store: public keys and their metadata, by keyid.
 *
 * A key store holds what the key service knows about each key: the Ed25519
 * public key, a label, scopes, and the times it was created, expires and was
 * revoked. It never holds a private key. Implementations plug in through
 * struct reqsign_keystore_ops; SQLite is built in (keystore_sqlite.c).
 *
 * Thread safety: every function taking a struct reqsign_keystore * is safe
 * to call concurrently on one shared store (implementations serialise
 * internally as needed). _free must not race with other calls.
 */
#ifndef REQSIGN_KEYSTORE_H
#define REQSIGN_KEYSTORE_H

#include <reqsign/defs.h>
#include <reqsign/error.h>
#include <reqsign/key.h>
#include <reqsign/limits.h>

#ifdef __cplusplus
extern "C" {
#endif

#define REQSIGN_LABEL_MAX 128         /* bytes of a key label (UTF-8) */
#define REQSIGN_SCOPE_MAX 64          /* bytes of one scope */
#define REQSIGN_KEYSTORE_PAGE_MAX 1000 /* records in one list page */

struct reqsign_key_record {
    char keyid[REQSIGN_KEYID_MAX_LEN + 1];
    uint8_t public_key[REQSIGN_ED25519_PUBLIC_LEN];
    char label[REQSIGN_LABEL_MAX + 1];
    char scopes[REQSIGN_SCOPES_MAX]; /* space-separated scope tokens */
    int64_t created_at;              /* unix seconds */
    int64_t expires_at;              /* unix seconds; 0: never */
    int64_t revoked_at;              /* unix seconds; 0: not revoked */
};

struct reqsign_keystore_ops {
    /* REQSIGN_OK, REQSIGN_E_KEY_UNKNOWN, REQSIGN_E_STORE, REQSIGN_E_KEYSTORE_UNAVAILABLE */
    enum reqsign_status (*get)(void *impl, const char *keyid, size_t keyid_len,
                               struct reqsign_key_record *out, struct reqsign_error *err);
    /* Insert a new key. REQSIGN_E_CONFLICT if the keyid or the public key
     * already exists (revoked keys included). */
    enum reqsign_status (*insert)(void *impl, const struct reqsign_key_record *rec,
                                  struct reqsign_error *err);
    /* Keys ordered by keyid, strictly after @after (NULL or "" for the first
     * page), at most @limit (<= REQSIGN_KEYSTORE_PAGE_MAX) into @out; *@n set. */
    enum reqsign_status (*list)(void *impl, const char *after, size_t limit,
                                struct reqsign_key_record *out, size_t *n,
                                struct reqsign_error *err);
    /* Set revoked_at = @now if not yet revoked. REQSIGN_E_KEY_UNKNOWN if absent.
     * Revoking a revoked key succeeds and keeps the first time. */
    enum reqsign_status (*revoke)(void *impl, const char *keyid, size_t keyid_len, int64_t now,
                                  struct reqsign_error *err);
    void (*free)(void *impl);
};

struct reqsign_keystore;

/** reqsign_keystore_new() - wrap an implementation (@ops copied, @impl owned). */
REQSIGN_API struct reqsign_keystore *reqsign_keystore_new(const struct reqsign_keystore_ops *ops,
                                                          void *impl);
/** reqsign_keystore_free() - release; NULL is a no-op. */
REQSIGN_API void reqsign_keystore_free(struct reqsign_keystore *ks);

REQSIGN_API REQSIGN_NODISCARD enum reqsign_status
reqsign_keystore_get(struct reqsign_keystore *ks, const char *keyid, size_t keyid_len,
                     struct reqsign_key_record *out, struct reqsign_error *err);
REQSIGN_API REQSIGN_NODISCARD enum reqsign_status
reqsign_keystore_insert(struct reqsign_keystore *ks, const struct reqsign_key_record *rec,
                        struct reqsign_error *err);
REQSIGN_API REQSIGN_NODISCARD enum reqsign_status
reqsign_keystore_list(struct reqsign_keystore *ks, const char *after, size_t limit,
                      struct reqsign_key_record *out, size_t *n, struct reqsign_error *err);
REQSIGN_API REQSIGN_NODISCARD enum reqsign_status
reqsign_keystore_revoke(struct reqsign_keystore *ks, const char *keyid, size_t keyid_len,
                        int64_t now, struct reqsign_error *err);

/* ---- SQLite ----
 * WAL mode, busy timeout (REQSIGN_SQLITE_BUSY_MS), a schema_version table and
 * ordered migrations applied at open. A pool of connections (one taken per
 * call, opened on demand, each with its prepared statements), so readers never
 * block each other and short-lived threads leak nothing. The file is created
 * with mode 0600 by reqsign, never by SQLite. */
#define REQSIGN_SQLITE_BUSY_MS 5000
#define REQSIGN_KEYSTORE_READONLY 0x1u /* open read-only (a verifying backend) */
#define REQSIGN_KEYSTORE_CREATE 0x2u   /* create the file and schema if missing */

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
#define REQSIGN_SQLITE_SCHEMA_VERSION 1

#ifdef __cplusplus
}
#endif
#endif
