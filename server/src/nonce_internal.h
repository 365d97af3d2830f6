/* reqsign (private): what nonce.c shares with the built-in stores. */
#ifndef REQSIGN_NONCE_INTERNAL_H
#define REQSIGN_NONCE_INTERNAL_H

#include <reqsign/nonce.h>

typedef enum reqsign_status (*reqsign__nonce_check_fn)(void *impl, const char *keyid,
                                                       size_t keyid_len, const char *nonce,
                                                       size_t nonce_len, int64_t now, int64_t until,
                                                       struct reqsign_error *err);

/* The impl of @s if @s was made with @check as its check_insert, else NULL
 * (so a built-in store's extra functions can tell its stores from others). */
void *reqsign__nonce_store_impl(const struct reqsign_nonce_store *s, reqsign__nonce_check_fn check);

#endif
