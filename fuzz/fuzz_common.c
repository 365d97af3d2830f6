/* Shared helpers of the libFuzzer targets in fuzz/. */
#include "fuzz_common.h"

#include <string.h>

const char fuzz_test_key_pem[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF\n"
    "-----END PRIVATE KEY-----\n";

/* x = 26b40b8f93fff3d897112f7ebc582b232dbd72517d082fe83cfb30ddce43d1bb */
const uint8_t fuzz_test_key_public[REQSIGN_ED25519_PUBLIC_LEN] = {
    0x26, 0xb4, 0x0b, 0x8f, 0x93, 0xff, 0xf3, 0xd8, 0x97, 0x11, 0x2f, 0x7e, 0xbc, 0x58, 0x2b, 0x23,
    0x2d, 0xbd, 0x72, 0x51, 0x7d, 0x08, 0x2f, 0xe8, 0x3c, 0xfb, 0x30, 0xdd, 0xce, 0x43, 0xd1, 0xbb,
};

const struct reqsign_key *fuzz_test_key(void)
{
    static struct reqsign_key *key;
    if (key == NULL) {
        struct reqsign_error err;
        reqsign_error_clear(&err);
        enum reqsign_status st =
            ((key = reqsign_key_load_mem(fuzz_test_key_pem, strlen(fuzz_test_key_pem), 0, &err)) !=
                     NULL
                 ? REQSIGN_OK
                 : err.code);
        FUZZ_CHECK(st == REQSIGN_OK, "test key: %s", err.message);
        uint8_t pk[REQSIGN_ED25519_PUBLIC_LEN];
        reqsign_key_public_raw(key, pk);
        FUZZ_CHECK(memcmp(pk, fuzz_test_key_public, sizeof(pk)) == 0, "test key public half");
    }
    return key;
}

char *fuzz_strndup(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t n = nul != NULL ? (size_t)(nul - data) : size;
    char *s = malloc(n + 1);
    FUZZ_CHECK(s != NULL, "malloc");
    if (n > 0)
        memcpy(s, data, n);
    s[n] = '\0';
    return s;
}
