/* reqsign: the key store wrapper, dispatching to an implementation.
 *
 * Every call goes through here, so the argument checks that all backends rely
 * on live here once: keyid lengths, the list limit (clamped to
 * REQSIGN_KEYSTORE_PAGE_IN_MAX), and the validation of a record before insert
 * (keyid 1..REQSIGN_KEYID_IN_MAX printable ASCII, label NUL-terminated within
 * REQSIGN_KEY_LABEL_IN_MAX bytes, scopes NUL-terminated within REQSIGN_SCOPE_LIST_BUF
 * bytes, each scope token 1..REQSIGN_SCOPE_IN_MAX printable bytes). Outputs are
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
struct reqsign_keystore *reqsign_keystore_new(const struct reqsign_keystore_ops *ops, void *impl,
                                              struct reqsign_error *err)
{
    reqsign_error_clear(err);
    if (ops == NULL || ops->get == NULL || ops->insert == NULL || ops->list == NULL ||
        ops->revoke == NULL) {
        reqsign_error_set(err, REQSIGN_E_INVALID_ARG, "key store", REQSIGN_NO_OFFSET,
                          "ops get, insert, list and revoke are required");
        return NULL;
    }
    struct reqsign_keystore *ks = malloc(sizeof(*ks));
    if (ks == NULL) {
        reqsign_error_set(err, REQSIGN_E_NOMEM, "key store", REQSIGN_NO_OFFSET, NULL);
        return NULL;
    }
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
    if (keyid == NULL || len == 0 || len > REQSIGN_KEYID_IN_MAX)
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, ks_src, REQSIGN_NO_OFFSET,
                                 "keyid length %zu not in 1..%d", keyid == NULL ? 0 : len,
                                 REQSIGN_KEYID_IN_MAX);
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
                                 "keyid must be 1..%d characters", REQSIGN_KEYID_IN_MAX);
    for (const char *p = rec->keyid; p < end; p++)
        if (!keyid_char_ok((unsigned char)*p))
            return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, ks_src, (size_t)(p - rec->keyid),
                                     "keyid byte 0x%02x is not printable ASCII",
                                     (unsigned)(unsigned char)*p);
    if (memchr(rec->account, '\0', sizeof(rec->account)) == NULL)
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, ks_src, REQSIGN_NO_OFFSET,
                                 "account longer than %d bytes", REQSIGN_ACCOUNT_ID_IN_MAX);
    if (memchr(rec->label, '\0', sizeof(rec->label)) == NULL)
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, ks_src, REQSIGN_NO_OFFSET,
                                 "label longer than %d bytes", REQSIGN_KEY_LABEL_IN_MAX);
    const char *send = memchr(rec->scopes, '\0', sizeof(rec->scopes));
    if (send == NULL)
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, ks_src, REQSIGN_NO_OFFSET,
                                 "scopes longer than %d bytes", REQSIGN_SCOPE_LIST_BUF - 1);
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
        if (++tok > REQSIGN_SCOPE_IN_MAX)
            return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, ks_src, (size_t)(p - rec->scopes),
                                     "a scope is longer than %d bytes", REQSIGN_SCOPE_IN_MAX);
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
    reqsign_error_clear(err);
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
    reqsign_error_clear(err);
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
    reqsign_error_clear(err);
    if (n != NULL)
        *n = 0;
    if (ks == NULL || n == NULL || (out == NULL && limit != 0))
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, ks_src, REQSIGN_NO_OFFSET,
                                 "store, output and count are required");
    if (after != NULL && strnlen(after, REQSIGN_KEYID_IN_MAX + 1) > REQSIGN_KEYID_IN_MAX)
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, ks_src, REQSIGN_NO_OFFSET,
                                 "list cursor longer than %d characters", REQSIGN_KEYID_IN_MAX);
    if (limit > REQSIGN_KEYSTORE_PAGE_IN_MAX)
        limit = REQSIGN_KEYSTORE_PAGE_IN_MAX;
    if (limit == 0)
        return REQSIGN_OK;
    return ks->ops.list(ks->impl, after == NULL ? "" : after, limit, out, n, err);
}

/* see reqsign/keystore.h */
enum reqsign_status reqsign_keystore_revoke(struct reqsign_keystore *ks, const char *keyid,
                                            size_t keyid_len, int64_t now,
                                            struct reqsign_error *err)
{
    reqsign_error_clear(err);
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

/* ---- accounts and the key lifecycle ---- */

static enum reqsign_status unsupported(const char *what, struct reqsign_error *err)
{
    return reqsign_error_set(err, REQSIGN_E_STORE, ks_src, REQSIGN_NO_OFFSET,
                             "this key store does not support %s", what);
}

#define KS_NEED(ks, op, what)                                                                      \
    do {                                                                                           \
        if ((ks) == NULL)                                                                          \
            return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, ks_src, REQSIGN_NO_OFFSET,        \
                                     "no key store");                                              \
        if ((ks)->ops.op == NULL)                                                                  \
            return unsupported(what, err);                                                         \
    } while (0)

static int str_fits(const char *s, size_t cap)
{
    return s != NULL && memchr(s, '\0', cap) != NULL;
}

/* see reqsign/keystore.h */
enum reqsign_status reqsign_keystore_update(struct reqsign_keystore *ks,
                                            const struct reqsign_key_record *rec,
                                            struct reqsign_error *err)
{
    reqsign_error_clear(err);
    KS_NEED(ks, update, "updating keys");
    enum reqsign_status st = check_record(rec, err);
    if (st != REQSIGN_OK)
        return st;
    if (!str_fits(rec->replaces, sizeof(rec->replaces)) ||
        !str_fits(rec->replaced_by, sizeof(rec->replaced_by)) ||
        !str_fits(rec->revoke_reason, sizeof(rec->revoke_reason)) || rec->disabled_at < 0)
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, ks_src, REQSIGN_NO_OFFSET,
                                 "malformed key record");
    return ks->ops.update(ks->impl, rec, err);
}

/* see reqsign/keystore.h */
enum reqsign_status reqsign_keystore_list_filter(struct reqsign_keystore *ks,
                                                 const struct reqsign_key_filter *f,
                                                 const char *after, size_t limit,
                                                 struct reqsign_key_record *out, size_t *n,
                                                 struct reqsign_error *err)
{
    reqsign_error_clear(err);
    if (n != NULL)
        *n = 0;
    KS_NEED(ks, list_filter, "filtered key lists");
    if (n == NULL || f == NULL || (out == NULL && limit != 0))
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, ks_src, REQSIGN_NO_OFFSET,
                                 "filter, output and count are required");
    if (after != NULL && strnlen(after, REQSIGN_KEYID_IN_MAX + 1) > REQSIGN_KEYID_IN_MAX)
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, ks_src, REQSIGN_NO_OFFSET,
                                 "list cursor longer than %d characters", REQSIGN_KEYID_IN_MAX);
    if (limit > REQSIGN_KEYSTORE_PAGE_IN_MAX)
        limit = REQSIGN_KEYSTORE_PAGE_IN_MAX;
    if (limit == 0)
        return REQSIGN_OK;
    return ks->ops.list_filter(ks->impl, f, after == NULL ? "" : after, limit, out, n, err);
}

/* see reqsign/keystore.h */
enum reqsign_status reqsign_keystore_insert_limited(struct reqsign_keystore *ks,
                                                    const struct reqsign_key_record *rec,
                                                    int64_t now, int64_t max_active,
                                                    struct reqsign_error *err)
{
    reqsign_error_clear(err);
    KS_NEED(ks, insert_limited, "a limited insert");
    if (max_active < 1)
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, ks_src, REQSIGN_NO_OFFSET,
                                 "max_active must be at least 1");
    enum reqsign_status st = check_record(rec, err);
    if (st != REQSIGN_OK)
        return st;
    return ks->ops.insert_limited(ks->impl, rec, now, max_active, err);
}

/* see reqsign/keystore.h */
enum reqsign_status reqsign_keystore_count_active(struct reqsign_keystore *ks, const char *account,
                                                  int64_t now, int64_t *n,
                                                  struct reqsign_error *err)
{
    reqsign_error_clear(err);
    KS_NEED(ks, count_active, "counting keys");
    if (account == NULL || n == NULL)
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, ks_src, REQSIGN_NO_OFFSET,
                                 "account and count are required");
    *n = 0;
    return ks->ops.count_active(ks->impl, account, now, n, err);
}

/* see reqsign/keystore.h */
enum reqsign_status reqsign_keystore_touch(struct reqsign_keystore *ks, const char *keyid,
                                           int64_t at, const char *by, struct reqsign_error *err)
{
    reqsign_error_clear(err);
    KS_NEED(ks, touch, "recording key use");
    enum reqsign_status st = check_keyid(keyid, keyid != NULL ? strlen(keyid) : 0, err);
    if (st != REQSIGN_OK)
        return st;
    if (by == NULL || strlen(by) > REQSIGN_VERIFIER_NAME_IN_MAX || at <= 0)
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, ks_src, REQSIGN_NO_OFFSET,
                                 "a positive time and a verifier name of at most %d bytes",
                                 REQSIGN_VERIFIER_NAME_IN_MAX);
    return ks->ops.touch(ks->impl, keyid, at, by, err);
}

/* see reqsign/keystore.h */
enum reqsign_status reqsign_keystore_account_insert(struct reqsign_keystore *ks,
                                                    const struct reqsign_account *a,
                                                    struct reqsign_error *err)
{
    reqsign_error_clear(err);
    KS_NEED(ks, account_insert, "accounts");
    if (a == NULL || !str_fits(a->id, sizeof(a->id)) || a->id[0] == '\0' ||
        !str_fits(a->name, sizeof(a->name)) ||
        !str_fits(a->allowed_scopes, sizeof(a->allowed_scopes)) || a->key_limit < 1 ||
        a->max_key_lifetime_s < 0 || a->created_at < 0 || a->disabled_at < 0)
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, ks_src, REQSIGN_NO_OFFSET,
                                 "malformed account");
    return ks->ops.account_insert(ks->impl, a, err);
}

/* see reqsign/keystore.h */
enum reqsign_status reqsign_keystore_account_get(struct reqsign_keystore *ks, const char *id,
                                                 struct reqsign_account *out,
                                                 struct reqsign_error *err)
{
    reqsign_error_clear(err);
    if (out != NULL)
        memset(out, 0, sizeof(*out));
    KS_NEED(ks, account_get, "accounts");
    if (id == NULL || out == NULL)
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, ks_src, REQSIGN_NO_OFFSET,
                                 "id and output are required");
    if (id[0] == '\0' || strlen(id) > REQSIGN_ACCOUNT_ID_IN_MAX)
        return reqsign_error_set(err, REQSIGN_E_NOT_FOUND, ks_src, REQSIGN_NO_OFFSET,
                                 "no such account");
    return ks->ops.account_get(ks->impl, id, out, err);
}

/* see reqsign/keystore.h */
enum reqsign_status reqsign_keystore_account_list(struct reqsign_keystore *ks, const char *after,
                                                  size_t limit, struct reqsign_account *out,
                                                  size_t *n, struct reqsign_error *err)
{
    reqsign_error_clear(err);
    if (n != NULL)
        *n = 0;
    KS_NEED(ks, account_list, "accounts");
    if (n == NULL || (out == NULL && limit != 0))
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, ks_src, REQSIGN_NO_OFFSET,
                                 "output and count are required");
    if (limit > REQSIGN_KEYSTORE_PAGE_IN_MAX)
        limit = REQSIGN_KEYSTORE_PAGE_IN_MAX;
    if (limit == 0)
        return REQSIGN_OK;
    return ks->ops.account_list(ks->impl, after == NULL ? "" : after, limit, out, n, err);
}

/* see reqsign/keystore.h */
enum reqsign_status reqsign_keystore_account_set_disabled(struct reqsign_keystore *ks,
                                                          const char *id, int64_t at,
                                                          struct reqsign_error *err)
{
    reqsign_error_clear(err);
    KS_NEED(ks, account_set_disabled, "accounts");
    if (id == NULL || at < 0)
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, ks_src, REQSIGN_NO_OFFSET,
                                 "id and a time >= 0 are required");
    return ks->ops.account_set_disabled(ks->impl, id, at, err);
}

/* see reqsign/keystore.h */
enum reqsign_status reqsign_keystore_enrollment_insert(
    struct reqsign_keystore *ks, const uint8_t hash[REQSIGN_ENROLLMENT_HASH_LEN],
    const char *account, int64_t created_at, int64_t expires_at, struct reqsign_error *err)
{
    reqsign_error_clear(err);
    KS_NEED(ks, enrollment_insert, "enrollment tokens");
    if (hash == NULL || account == NULL || expires_at <= created_at)
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, ks_src, REQSIGN_NO_OFFSET,
                                 "hash, account and a validity period are required");
    return ks->ops.enrollment_insert(ks->impl, hash, account, created_at, expires_at, err);
}

/* see reqsign/keystore.h */
enum reqsign_status reqsign_keystore_enrollment_consume(
    struct reqsign_keystore *ks, const uint8_t hash[REQSIGN_ENROLLMENT_HASH_LEN], int64_t now,
    char account_out[REQSIGN_ACCOUNT_ID_IN_MAX + 1], struct reqsign_error *err)
{
    reqsign_error_clear(err);
    if (account_out != NULL)
        account_out[0] = '\0';
    KS_NEED(ks, enrollment_consume, "enrollment tokens");
    if (hash == NULL || account_out == NULL)
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, ks_src, REQSIGN_NO_OFFSET,
                                 "hash and output are required");
    return ks->ops.enrollment_consume(ks->impl, hash, now, account_out, err);
}

/* see reqsign/keystore.h */
enum reqsign_status reqsign_keystore_audit_append(struct reqsign_keystore *ks,
                                                  const struct reqsign_audit_event *ev,
                                                  struct reqsign_error *err)
{
    reqsign_error_clear(err);
    KS_NEED(ks, audit_append, "the audit log");
    if (ev == NULL || !str_fits(ev->actor, sizeof(ev->actor)) ||
        !str_fits(ev->account, sizeof(ev->account)) || !str_fits(ev->action, sizeof(ev->action)) ||
        !str_fits(ev->target, sizeof(ev->target)) || !str_fits(ev->outcome, sizeof(ev->outcome)) ||
        !str_fits(ev->source, sizeof(ev->source)) || !str_fits(ev->nonce, sizeof(ev->nonce)) ||
        !str_fits(ev->target_account, sizeof(ev->target_account)))
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, ks_src, REQSIGN_NO_OFFSET,
                                 "malformed audit event");
    return ks->ops.audit_append(ks->impl, ev, err);
}

/* see reqsign/keystore.h */
enum reqsign_status reqsign_keystore_audit_list(struct reqsign_keystore *ks, const char *account,
                                                int64_t after, size_t limit,
                                                struct reqsign_audit_event *out, size_t *n,
                                                struct reqsign_error *err)
{
    reqsign_error_clear(err);
    if (n != NULL)
        *n = 0;
    KS_NEED(ks, audit_list, "the audit log");
    if (n == NULL || (out == NULL && limit != 0))
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, ks_src, REQSIGN_NO_OFFSET,
                                 "output and count are required");
    if (limit > REQSIGN_KEYSTORE_PAGE_IN_MAX)
        limit = REQSIGN_KEYSTORE_PAGE_IN_MAX;
    if (limit == 0)
        return REQSIGN_OK;
    return ks->ops.audit_list(ks->impl, account == NULL ? "" : account, after, limit, out, n, err);
}
