/* reqsign: the nonce store wrapper, dispatching to an implementation. */
#include <reqsign/nonce.h>

#include <stdlib.h>

struct reqsign_nonce_store {
    struct reqsign_nonce_store_ops ops;
    void *impl;
};

/* see reqsign/nonce.h */
struct reqsign_nonce_store *reqsign_nonce_store_new(const struct reqsign_nonce_store_ops *ops,
                                                    void *impl, struct reqsign_error *err)
{
    reqsign_error_clear(err);
    if (ops == NULL || ops->check_insert == NULL) {
        reqsign_error_set(err, REQSIGN_E_INVALID_ARG, "nonce store", REQSIGN_NO_OFFSET,
                          "ops and ops->check_insert are required");
        return NULL;
    }
    struct reqsign_nonce_store *s = malloc(sizeof(*s));
    if (s == NULL) {
        reqsign_error_set(err, REQSIGN_E_NOMEM, "nonce store", REQSIGN_NO_OFFSET, NULL);
        return NULL;
    }
    s->ops = *ops;
    s->impl = impl;
    return s;
}

/* see reqsign/nonce.h */
void reqsign_nonce_store_free(struct reqsign_nonce_store *s)
{
    if (s == NULL)
        return;
    if (s->ops.free != NULL)
        s->ops.free(s->impl);
    free(s);
}

/* see reqsign/nonce.h */
enum reqsign_status reqsign_nonce_store_check_insert(struct reqsign_nonce_store *s,
                                                     const char *keyid, size_t keyid_len,
                                                     const char *nonce, size_t nonce_len,
                                                     int64_t now, int64_t until,
                                                     struct reqsign_error *err)
{
    reqsign_error_clear(err);
    static const char src[] = "nonce store";

    if (s == NULL)
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, src, REQSIGN_NO_OFFSET,
                                 "no nonce store");
    /* Implementations rely on these bounds (the in-memory store hashes into a
     * fixed buffer): every call goes through here. */
    if (keyid == NULL || keyid_len == 0 || keyid_len > REQSIGN_KEYID_IN_MAX)
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, src, REQSIGN_NO_OFFSET,
                                 "keyid length %zu not in 1..%d", keyid == NULL ? 0 : keyid_len,
                                 REQSIGN_KEYID_IN_MAX);
    if (nonce == NULL || nonce_len == 0 || nonce_len > REQSIGN_NONCE_IN_MAX)
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, src, REQSIGN_NO_OFFSET,
                                 "nonce length %zu not in 1..%d", nonce == NULL ? 0 : nonce_len,
                                 REQSIGN_NONCE_IN_MAX);
    return s->ops.check_insert(s->impl, keyid, keyid_len, nonce, nonce_len, now, until, err);
}

/* see reqsign/nonce.h */
void *reqsign_nonce_store_impl(const struct reqsign_nonce_store *s,
                               reqsign_nonce_check_insert_fn check_insert)
{
    if (s == NULL || s->ops.check_insert != check_insert)
        return NULL;
    return s->impl;
}
