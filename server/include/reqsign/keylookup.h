/* reqsign: the key-lookup contract between the verifier and whatever knows
 * the keys.
 *
 * A key lookup maps a keyid to its Ed25519 public key, its state and its
 * scopes. The verifier (reqsign/verifier.h) calls the one given in struct
 * reqsign_verifier_opts; the key cache (reqsign/keycache.h, over a key store)
 * and the key-directory client (reqsign/keydir.h) are lookups, and
 * reqsign_static_key_lookup() (reqsign/verifier.h) serves one fixed key.
 */
#ifndef REQSIGN_KEYLOOKUP_H
#define REQSIGN_KEYLOOKUP_H

#include <stddef.h>
#include <stdint.h>

#include <reqsign/defs.h>
#include <reqsign/error.h>
#include <reqsign/key.h>
#include <reqsign/limits.h>

#ifdef __cplusplus
extern "C" {
#endif

enum reqsign_key_state {
    REQSIGN_KEY_ACTIVE = 0,
    REQSIGN_KEY_REVOKED = 1,
    REQSIGN_KEY_EXPIRED = 2,
    REQSIGN_KEY_DISABLED = 3,         /* reversible: refused with key_disabled */
    REQSIGN_KEY_ACCOUNT_DISABLED = 4, /* the key's account is disabled: account_disabled */
};

/* What a key lookup returns. */
struct reqsign_key_info {
    uint8_t public_key[REQSIGN_ED25519_PUBLIC_LEN];
    enum reqsign_key_state state;
    char scopes[REQSIGN_SCOPE_LIST_BUF]; /* space-separated, NUL-terminated; may be empty */
    /* The key's account id (issue 13), NUL-terminated; "" when the lookup
     * knows no accounts (a key directory, a static key). */
    char account[REQSIGN_ACCOUNT_ID_IN_MAX + 1];
};

/* Find the key named @keyid. Return REQSIGN_OK with @out filled,
 * REQSIGN_E_KEY_UNKNOWN, or REQSIGN_E_KEYSTORE_UNAVAILABLE. Must be thread-safe. */
typedef enum reqsign_status (*reqsign_key_lookup_fn)(void *ctx, const char *keyid, size_t keyid_len,
                                                     struct reqsign_key_info *out,
                                                     struct reqsign_error *err);

typedef int64_t (*reqsign_verifier_clock_fn)(void *ctx); /* unix seconds */

#ifdef __cplusplus
}
#endif
#endif
