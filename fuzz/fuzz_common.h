/* Shared helpers of the libFuzzer targets in fuzz/. Not part of any library. */
#ifndef REQSIGN_FUZZ_COMMON_H
#define REQSIGN_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <reqsign/key.h>

/* libFuzzer entry points (declared here for -Wmissing-prototypes). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* A failed oracle: print and abort, so libFuzzer saves the input as a crash. */
#define FUZZ_CHECK(cond, ...)                                                                      \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "FUZZ_CHECK failed at %s:%d: %s: ", __FILE__, __LINE__, #cond);        \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* RFC 9421 Appendix B.1.4 test key (spec/vectors/keys/test-key-ed25519.pem):
 * its private half is printed in the RFC, it is public knowledge. */
extern const char fuzz_test_key_pem[];
extern const uint8_t fuzz_test_key_public[REQSIGN_ED25519_PUBLIC_LEN];
#define FUZZ_KEYID "test-key-ed25519"
#define FUZZ_CREATED 1700000000
#define FUZZ_NOW 1700000005

/* The test key, loaded once (private). */
const struct reqsign_key *fuzz_test_key(void);

/* A malloc'd NUL-terminated copy of @data (cut at the first NUL). */
char *fuzz_strndup(const uint8_t *data, size_t size);

#endif
