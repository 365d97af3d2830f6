/* reqsign: the key store: public keys and their metadata, by keyid.
 *
 * A key store holds what the key service knows about each key: the Ed25519
 * public key, a label, scopes, and the times it was created, expires and was
 * revoked. It never holds a private key. Implementations plug in through
 * struct reqsign_keystore_ops; the stores of reqsign are libraries of their
 * own: SQLite (reqsign/keystore_sqlite.h, pkg-config reqsign-keystore-sqlite)
 * and PostgreSQL (reqsign/keystore_pg.h, reqsign-keystore-pg).
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

#define REQSIGN_ACCOUNT_OPERATOR "acct_operator"
#define REQSIGN_ENROLLMENT_HASH_LEN 32 /* SHA-256 of the token */

struct reqsign_key_record {
    char keyid[REQSIGN_KEYID_IN_MAX + 1];
    uint8_t public_key[REQSIGN_ED25519_PUBLIC_LEN];
    char label[REQSIGN_KEY_LABEL_IN_MAX + 1];
    char scopes[REQSIGN_SCOPE_LIST_BUF]; /* space-separated scope tokens */
    int64_t created_at;                  /* unix seconds */
    int64_t expires_at;                  /* unix seconds; 0: never */
    int64_t revoked_at;                  /* unix seconds; 0: not revoked */
    /* Accounts and the key lifecycle (issue 13). A store without accounts
     * leaves these empty / 0; insert with an empty account means
     * REQSIGN_ACCOUNT_OPERATOR. */
    char account[REQSIGN_ACCOUNT_ID_IN_MAX + 1];
    int64_t disabled_at;         /* unix seconds; 0: not disabled (reversible) */
    int64_t account_disabled_at; /* read only: the account's disabled_at (get and list) */
    char replaces[REQSIGN_KEYID_IN_MAX + 1];    /* the key this one succeeded; "" none */
    char replaced_by[REQSIGN_KEYID_IN_MAX + 1]; /* its successor; "" none */
    char revoke_reason[REQSIGN_REVOKE_REASON_IN_MAX +
                       1]; /* "" or unspecified|superseded|compromised */
    int64_t last_used_at;  /* 0: never seen (read only, see touch) */
    char last_used_by[REQSIGN_VERIFIER_NAME_IN_MAX + 1];
    /* The public directory (issue 16): listed there if @publish or its
     * account's publish_keys (never a keys:admin key; the service decides). */
    int publish;              /* 0 or 1, set at insert */
    int account_publish_keys; /* read only: the account's publish_keys (get and list) */
};

/* An account (a customer, a tenant). Its id is "acct_" + 22 base64url
 * characters; REQSIGN_ACCOUNT_OPERATOR holds the operator's keys. */
struct reqsign_account {
    char id[REQSIGN_ACCOUNT_ID_IN_MAX + 1];
    char name[REQSIGN_ACCOUNT_NAME_IN_MAX + 1];
    char allowed_scopes[REQSIGN_SCOPE_LIST_BUF]; /* space-separated */
    int64_t key_limit;                           /* active keys at once, >= 1 */
    int64_t max_key_lifetime_s;                  /* 0: none */
    int64_t created_at;
    int64_t disabled_at; /* 0: enabled */
    int publish_keys;    /* 1: every key of the account is in the public directory */
};

/* One audit event. Never a token, a key or a signature. */
struct reqsign_audit_event {
    int64_t seq;                                 /* assigned by the store on append, increasing */
    int64_t time;                                /* unix seconds */
    char actor[REQSIGN_KEYID_IN_MAX + 1];        /* the signing keyid; "" unsigned */
    char account[REQSIGN_ACCOUNT_ID_IN_MAX + 1]; /* the actor's account; "" none */
    char action[REQSIGN_AUDIT_WORD_IN_MAX + 1];  /* "key.create", ... */
    char target[REQSIGN_KEYID_IN_MAX + 1];       /* keyid or account id; "" none */
    char target_account[REQSIGN_ACCOUNT_ID_IN_MAX + 1]; /* the target's account, when the actor
                                                         * may see it; not listed */
    char outcome[REQSIGN_AUDIT_WORD_IN_MAX + 1];        /* "ok" or the error's wire name */
    char source[REQSIGN_AUDIT_WORD_IN_MAX + 1];         /* the client address */
    char nonce[REQSIGN_NONCE_IN_MAX + 1];               /* the request's nonce; "" none */
};

/* Which keys reqsign_keystore_list_filter() returns. */
struct reqsign_key_filter {
    const char *account;   /* NULL or "": every account */
    int64_t unused_before; /* 0: no filter; else keys last used before it (or never used and
                            * created before it) */
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
     * page), at most @limit (<= REQSIGN_KEYSTORE_PAGE_IN_MAX) into @out; *@n set. */
    enum reqsign_status (*list)(void *impl, const char *after, size_t limit,
                                struct reqsign_key_record *out, size_t *n,
                                struct reqsign_error *err);
    /* Set revoked_at = @now if not yet revoked. REQSIGN_E_KEY_UNKNOWN if absent.
     * Revoking a revoked key succeeds and keeps the first time. */
    enum reqsign_status (*revoke)(void *impl, const char *keyid, size_t keyid_len, int64_t now,
                                  struct reqsign_error *err);
    void (*free)(void *impl);

    /* ---- accounts and the key lifecycle: optional (NULL: the store refuses
     * with REQSIGN_E_STORE "not supported") ---- */
    /* Write the mutable fields of the key @rec->keyid: expires_at,
     * disabled_at, replaces, replaced_by; revoked_at and revoke_reason only
     * if not yet revoked (a revocation is final). REQSIGN_E_KEY_UNKNOWN. */
    enum reqsign_status (*update)(void *impl, const struct reqsign_key_record *rec,
                                  struct reqsign_error *err);
    /* As list, keeping only the keys @f selects. */
    enum reqsign_status (*list_filter)(void *impl, const struct reqsign_key_filter *f,
                                       const char *after, size_t limit,
                                       struct reqsign_key_record *out, size_t *n,
                                       struct reqsign_error *err);
    /* Keys of @account neither revoked nor expired at @now (disabled ones count). */
    enum reqsign_status (*count_active)(void *impl, const char *account, int64_t now, int64_t *n,
                                        struct reqsign_error *err);
    /* last_used_at = max(last_used_at, @at), last_used_by = @by. Unknown keys: OK. */
    enum reqsign_status (*touch)(void *impl, const char *keyid, int64_t at, const char *by,
                                 struct reqsign_error *err);
    /* REQSIGN_E_CONFLICT if the id exists. */
    enum reqsign_status (*account_insert)(void *impl, const struct reqsign_account *a,
                                          struct reqsign_error *err);
    /* REQSIGN_E_NOT_FOUND if absent. */
    enum reqsign_status (*account_get)(void *impl, const char *id, struct reqsign_account *out,
                                       struct reqsign_error *err);
    enum reqsign_status (*account_list)(void *impl, const char *after, size_t limit,
                                        struct reqsign_account *out, size_t *n,
                                        struct reqsign_error *err);
    /* disabled_at = @at (0: enable). REQSIGN_E_NOT_FOUND if absent. */
    enum reqsign_status (*account_set_disabled)(void *impl, const char *id, int64_t at,
                                                struct reqsign_error *err);
    /* A token, by its SHA-256 only. */
    enum reqsign_status (*enrollment_insert)(void *impl,
                                             const uint8_t hash[REQSIGN_ENROLLMENT_HASH_LEN],
                                             const char *account, int64_t created_at,
                                             int64_t expires_at, struct reqsign_error *err);
    /* Mark the token used, atomically, if it exists, is unused, now <
     * expires_at and its account is not disabled; @account_out gets its
     * account. REQSIGN_E_ENROLLMENT_INVALID otherwise (no hint which), and
     * the token stays as it was: a token refused while its account is
     * disabled works again once the account is enabled. */
    enum reqsign_status (*enrollment_consume)(void *impl,
                                              const uint8_t hash[REQSIGN_ENROLLMENT_HASH_LEN],
                                              int64_t now,
                                              char account_out[REQSIGN_ACCOUNT_ID_IN_MAX + 1],
                                              struct reqsign_error *err);
    /* Append (@ev->seq ignored). */
    enum reqsign_status (*audit_append)(void *impl, const struct reqsign_audit_event *ev,
                                        struct reqsign_error *err);
    /* Events with seq > @after, oldest first, whose account or target_account
     * is @account ("": all). */
    enum reqsign_status (*audit_list)(void *impl, const char *account, int64_t after, size_t limit,
                                      struct reqsign_audit_event *out, size_t *n,
                                      struct reqsign_error *err);
    /* As insert, atomically with a check that @rec's account has fewer than
     * @max_active keys neither revoked nor expired at @now (disabled ones
     * count): REQSIGN_E_KEY_LIMIT otherwise, and nothing is inserted. Two
     * concurrent calls never both pass the check for the last free place.
     * REQSIGN_E_NOT_FOUND if the account does not exist. */
    enum reqsign_status (*insert_limited)(void *impl, const struct reqsign_key_record *rec,
                                          int64_t now, int64_t max_active,
                                          struct reqsign_error *err);
};

struct reqsign_keystore;

/**
 * reqsign_keystore_new() - wrap an implementation. @ops is copied; @impl is
 * owned by the store from success on (released with ops->free by
 * reqsign_keystore_free()). On failure @impl stays the caller's.
 * Return: the store, or NULL with @err set (E_INVALID_ARG: a required op is
 * missing; E_NOMEM).
 * Thread safety: thread-safe.
 */
REQSIGN_API REQSIGN_NODISCARD struct reqsign_keystore *
reqsign_keystore_new(const struct reqsign_keystore_ops *ops, void *impl, struct reqsign_error *err);
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

/* The lifecycle operations (see struct reqsign_keystore_ops). Every one
 * fails with REQSIGN_E_STORE when the store does not implement it. */
REQSIGN_API REQSIGN_NODISCARD enum reqsign_status
reqsign_keystore_update(struct reqsign_keystore *ks, const struct reqsign_key_record *rec,
                        struct reqsign_error *err);
REQSIGN_API REQSIGN_NODISCARD enum reqsign_status
reqsign_keystore_list_filter(struct reqsign_keystore *ks, const struct reqsign_key_filter *f,
                             const char *after, size_t limit, struct reqsign_key_record *out,
                             size_t *n, struct reqsign_error *err);
REQSIGN_API REQSIGN_NODISCARD enum reqsign_status
reqsign_keystore_count_active(struct reqsign_keystore *ks, const char *account, int64_t now,
                              int64_t *n, struct reqsign_error *err);
REQSIGN_API REQSIGN_NODISCARD enum reqsign_status
reqsign_keystore_touch(struct reqsign_keystore *ks, const char *keyid, int64_t at, const char *by,
                       struct reqsign_error *err);
REQSIGN_API REQSIGN_NODISCARD enum reqsign_status
reqsign_keystore_account_insert(struct reqsign_keystore *ks, const struct reqsign_account *a,
                                struct reqsign_error *err);
REQSIGN_API REQSIGN_NODISCARD enum reqsign_status
reqsign_keystore_account_get(struct reqsign_keystore *ks, const char *id,
                             struct reqsign_account *out, struct reqsign_error *err);
REQSIGN_API REQSIGN_NODISCARD enum reqsign_status
reqsign_keystore_account_list(struct reqsign_keystore *ks, const char *after, size_t limit,
                              struct reqsign_account *out, size_t *n, struct reqsign_error *err);
REQSIGN_API REQSIGN_NODISCARD enum reqsign_status
reqsign_keystore_account_set_disabled(struct reqsign_keystore *ks, const char *id, int64_t at,
                                      struct reqsign_error *err);
REQSIGN_API REQSIGN_NODISCARD enum reqsign_status reqsign_keystore_enrollment_insert(
    struct reqsign_keystore *ks, const uint8_t hash[REQSIGN_ENROLLMENT_HASH_LEN],
    const char *account, int64_t created_at, int64_t expires_at, struct reqsign_error *err);
REQSIGN_API REQSIGN_NODISCARD enum reqsign_status reqsign_keystore_enrollment_consume(
    struct reqsign_keystore *ks, const uint8_t hash[REQSIGN_ENROLLMENT_HASH_LEN], int64_t now,
    char account_out[REQSIGN_ACCOUNT_ID_IN_MAX + 1], struct reqsign_error *err);
REQSIGN_API REQSIGN_NODISCARD enum reqsign_status
reqsign_keystore_audit_append(struct reqsign_keystore *ks, const struct reqsign_audit_event *ev,
                              struct reqsign_error *err);
REQSIGN_API REQSIGN_NODISCARD enum reqsign_status
reqsign_keystore_audit_list(struct reqsign_keystore *ks, const char *account, int64_t after,
                            size_t limit, struct reqsign_audit_event *out, size_t *n,
                            struct reqsign_error *err);
/* Insert @rec only while its account has fewer than @max_active (>= 1) keys
 * neither revoked nor expired at @now, in one atomic step with the insert
 * (see insert_limited above): the way to enforce an account's key_limit
 * when several requests or several key services create keys at once. */
REQSIGN_API REQSIGN_NODISCARD enum reqsign_status
reqsign_keystore_insert_limited(struct reqsign_keystore *ks, const struct reqsign_key_record *rec,
                                int64_t now, int64_t max_active, struct reqsign_error *err);

/* Flags of a store's open function (reqsign_keystore_sqlite_open(),
 * reqsign_keystore_pg_open()). */
#define REQSIGN_KEYSTORE_READONLY 0x1u /* open read-only (a verifying backend) */
#define REQSIGN_KEYSTORE_CREATE 0x2u   /* create the file and schema if missing */

#ifdef __cplusplus
}
#endif
#endif
