/* reqsign: the key store wrapper, dispatching to an implementation.
 *
 * Every call goes through here, so the argument checks that all backends rely
 * on live here once: keyid lengths, the list limit (clamped to
 * REQSIGN_KEYSTORE_PAGE_MAX), and the validation of a record before insert
 * (keyid 1..REQSIGN_KEYID_MAX_LEN printable ASCII, label NUL-terminated within
 * REQSIGN_LABEL_MAX bytes, scopes NUL-terminated within REQSIGN_SCOPES_MAX
 * bytes, each scope token 1..REQSIGN_SCOPE_MAX printable bytes). Outputs are
 * reset on entry.
 */
#include <reqsign/keystore.h>

#include <stdlib.h>
#include <string.h>

struct reqsign_keystore {
    struct reqsign_keystore_ops ops;
    void *impl;
};

static const char ks_src[] = "key store";

/* see reqsign/keystore.h */
struct reqsign_keystore *reqsign_keystore_new(const struct reqsign_keystore_ops *ops, void *impl)
{
    if (ops == NULL || ops->get == NULL || ops->insert == NULL || ops->list == NULL ||
        ops->revoke == NULL)
        return NULL;
    struct reqsign_keystore *ks = malloc(sizeof(*ks));
    if (ks == NULL)
        return NULL;
    ks->ops = *ops;
    ks->impl = impl;
    return ks;
}

/* see reqsign/keystore.h */
void reqsign_keystore_free(struct reqsign_keystore *ks)
{
    if (ks == NULL)
        return;
    if (ks->ops.free != NULL)
        ks->ops.free(ks->impl);
    free(ks);
}

static int keyid_char_ok(unsigned char c)
{
    return c >= 0x20 && c <= 0x7e;
}

static enum reqsign_status check_keyid(const char *keyid, size_t len, struct reqsign_error *err)
{
    if (keyid == NULL || len == 0 || len > REQSIGN_KEYID_MAX_LEN)
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, ks_src, REQSIGN_NO_OFFSET,
                                 "keyid length %zu not in 1..%d", keyid == NULL ? 0 : len,
                                 REQSIGN_KEYID_MAX_LEN);
    return REQSIGN_OK;
}

static enum reqsign_status check_record(const struct reqsign_key_record *rec,
                                        struct reqsign_error *err)
{
    if (rec == NULL)
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, ks_src, REQSIGN_NO_OFFSET,
                                 "no record");
    const char *end = memchr(rec->keyid, '\0', sizeof(rec->keyid));
    if (end == NULL || end == rec->keyid)
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, ks_src, REQSIGN_NO_OFFSET,
                                 "keyid must be 1..%d characters", REQSIGN_KEYID_MAX_LEN);
    for (const char *p = rec->keyid; p < end; p++)
        if (!keyid_char_ok((unsigned char)*p))
            return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, ks_src, (size_t)(p - rec->keyid),
                                     "keyid byte 0x%02x is not printable ASCII",
                                     (unsigned)(unsigned char)*p);
    if (memchr(rec->label, '\0', sizeof(rec->label)) == NULL)
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, ks_src, REQSIGN_NO_OFFSET,
                                 "label longer than %d bytes", REQSIGN_LABEL_MAX);
    const char *send = memchr(rec->scopes, '\0', sizeof(rec->scopes));
    if (send == NULL)
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, ks_src, REQSIGN_NO_OFFSET,
                                 "scopes longer than %d bytes", REQSIGN_SCOPES_MAX - 1);
    size_t tok = 0;
    for (const char *p = rec->scopes; p < send; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == ' ') {
            tok = 0;
            continue;
        }
        if (c < 0x21 || c > 0x7e)
            return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, ks_src, (size_t)(p - rec->scopes),
                                     "scope byte 0x%02x is not printable ASCII", (unsigned)c);
        if (++tok > REQSIGN_SCOPE_MAX)
            return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, ks_src, (size_t)(p - rec->scopes),
                                     "a scope is longer than %d bytes", REQSIGN_SCOPE_MAX);
    }
    if (rec->created_at < 0 || rec->expires_at < 0 || rec->revoked_at < 0)
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, ks_src, REQSIGN_NO_OFFSET,
                                 "negative time in key record");
    return REQSIGN_OK;
}

/* see reqsign/keystore.h */
enum reqsign_status reqsign_keystore_get(struct reqsign_keystore *ks, const char *keyid,
                                         size_t keyid_len, struct reqsign_key_record *out,
                                         struct reqsign_error *err)
{
    if (out != NULL)
        memset(out, 0, sizeof(*out));
    if (ks == NULL || out == NULL)
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, ks_src, REQSIGN_NO_OFFSET,
                                 "store and output are required");
    enum reqsign_status st = check_keyid(keyid, keyid_len, err);
    if (st != REQSIGN_OK)
        return st;
    return ks->ops.get(ks->impl, keyid, keyid_len, out, err);
}

/* see reqsign/keystore.h */
enum reqsign_status reqsign_keystore_insert(struct reqsign_keystore *ks,
                                            const struct reqsign_key_record *rec,
                                            struct reqsign_error *err)
{
    if (ks == NULL)
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, ks_src, REQSIGN_NO_OFFSET,
                                 "no key store");
    enum reqsign_status st = check_record(rec, err);
    if (st != REQSIGN_OK)
        return st;
    return ks->ops.insert(ks->impl, rec, err);
}

/* see reqsign/keystore.h */
enum reqsign_status reqsign_keystore_list(struct reqsign_keystore *ks, const char *after,
                                          size_t limit, struct reqsign_key_record *out, size_t *n,
                                          struct reqsign_error *err)
{
    if (n != NULL)
        *n = 0;
    if (ks == NULL || n == NULL || (out == NULL && limit != 0))
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, ks_src, REQSIGN_NO_OFFSET,
                                 "store, output and count are required");
    if (after != NULL && strnlen(after, REQSIGN_KEYID_MAX_LEN + 1) > REQSIGN_KEYID_MAX_LEN)
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, ks_src, REQSIGN_NO_OFFSET,
                                 "list cursor longer than %d characters", REQSIGN_KEYID_MAX_LEN);
    if (limit > REQSIGN_KEYSTORE_PAGE_MAX)
        limit = REQSIGN_KEYSTORE_PAGE_MAX;
    if (limit == 0)
        return REQSIGN_OK;
    return ks->ops.list(ks->impl, after == NULL ? "" : after, limit, out, n, err);
}

/* see reqsign/keystore.h */
enum reqsign_status reqsign_keystore_revoke(struct reqsign_keystore *ks, const char *keyid,
                                            size_t keyid_len, int64_t now,
                                            struct reqsign_error *err)
{
    if (ks == NULL)
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, ks_src, REQSIGN_NO_OFFSET,
                                 "no key store");
    enum reqsign_status st = check_keyid(keyid, keyid_len, err);
    if (st != REQSIGN_OK)
        return st;
    if (now <= 0) /* 0 means "not revoked" in a record */
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, ks_src, REQSIGN_NO_OFFSET,
                                 "revocation time must be positive");
    return ks->ops.revoke(ks->impl, keyid, keyid_len, now, err);
}
