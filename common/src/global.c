/* reqsign: reqsign_global_init(), the only global setup, and the memory and
 * randomness helpers of reqsign/util.h. */
#include <reqsign/util.h>

#include <pthread.h>

#include "crypto.h"

/* libcurl, when the program links it (reqsign-client and the key directory
 * do; the verifier core does not). Weak references: without libcurl in the
 * process they are NULL, and reqsign-common itself never depends on libcurl.
 * The prototypes are libcurl's (CURLcode is an int-sized enum). */
extern int curl_global_init(long flags) __attribute__((weak));
extern void curl_global_cleanup(void) __attribute__((weak));
#define REQSIGN__CURL_GLOBAL_DEFAULT 3L /* CURL_GLOBAL_SSL | CURL_GLOBAL_WIN32 */

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static enum reqsign_status global_status = REQSIGN_E_INTERNAL; /* written once, in global_once */
static int curl_inited;                                        /* likewise */

static void global_setup(void)
{
    if (reqsign__ed25519_init() != 0) {
        global_status = REQSIGN_E_CRYPTO;
        return;
    }
    if (curl_global_init != NULL) {
        if (curl_global_init(REQSIGN__CURL_GLOBAL_DEFAULT) != 0) {
            global_status = REQSIGN_E_HTTP;
            return;
        }
        curl_inited = 1;
    }
    global_status = REQSIGN_OK;
}

/* see reqsign/util.h */
enum reqsign_status reqsign_global_init(void)
{
    if (pthread_once(&global_once, global_setup) != 0)
        return REQSIGN_E_INTERNAL;
    return global_status;
}

/* see reqsign/util.h */
void reqsign_global_cleanup(void)
{
    if (curl_inited && curl_global_cleanup != NULL)
        curl_global_cleanup();
    curl_inited = 0;
}

/* see reqsign/util.h */
void reqsign_memzero(void *p, size_t len)
{
    reqsign__wipe(p, len);
}

/* see reqsign/util.h */
int reqsign_memcmp_ct(const void *a, const void *b, size_t len)
{
    return reqsign__memeq_ct(a, b, len) ? 0 : -1;
}

/* see reqsign/util.h */
enum reqsign_status reqsign_random_bytes(uint8_t *out, size_t len, struct reqsign_error *err)
{
    reqsign_error_clear(err);
    if (out == NULL && len > 0)
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, "random", REQSIGN_NO_OFFSET, NULL);
    if (reqsign__random(out, len) != 0)
        return reqsign_error_set(err, REQSIGN_E_RANDOM, "random", REQSIGN_NO_OFFSET, NULL);
    return REQSIGN_OK;
}
