/* fuzz_content_digest: RFC 9530 Content-Digest parsing
 * (reqsign_content_digest_parse), then a check of the parsed expectation
 * against the digest of the input itself (it must never match by accident,
 * unless the input carries its own digest, which random data cannot). */
#include "fuzz_common.h"

#include <string.h>

#include <reqsign/digest.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 2 * REQSIGN_CONTENT_DIGEST_IN_MAX)
        return 0;
    char *in = malloc(size ? size : 1); /* exact size: ASan sees over-reads */
    FUZZ_CHECK(in != NULL, "malloc");
    if (size)
        memcpy(in, data, size);

    struct reqsign_digest_expect exp;
    struct reqsign_error err;
    reqsign_error_clear(&err);
    enum reqsign_status st = reqsign_content_digest_parse(in, size, &exp, &err);
    FUZZ_CHECK(st == REQSIGN_OK || st == REQSIGN_E_DIGEST_MALFORMED ||
                   st == REQSIGN_E_DIGEST_NO_KNOWN_ALG || st == REQSIGN_E_LIMIT,
               "status %s", reqsign_errname(st));
    if (st != REQSIGN_OK) {
        FUZZ_CHECK(err.code == st, "err.code");
        FUZZ_CHECK(st != REQSIGN_E_DIGEST_MALFORMED || err.offset <= size ||
                       err.offset == REQSIGN_NO_OFFSET,
                   "offset %zu > %zu", err.offset, size);
        free(in);
        return 0;
    }
    FUZZ_CHECK(exp.algs != 0 &&
                   (exp.algs & ~(unsigned)(REQSIGN_DIGEST_SHA256 | REQSIGN_DIGEST_SHA512)) == 0,
               "algs %u", exp.algs);

    struct reqsign_digest d;
    memset(&d, 0, sizeof(d));
    st = reqsign_digest_init(&d, exp.algs, NULL);
    FUZZ_CHECK(st == REQSIGN_OK, "digest_init");
    st = reqsign_digest_update(&d, in, size, NULL);
    FUZZ_CHECK(st == REQSIGN_OK, "digest_update");
    reqsign_error_clear(&err);
    st = reqsign_content_digest_check(&d, &exp, &err);
    FUZZ_CHECK(st == REQSIGN_OK || st == REQSIGN_E_DIGEST_MISMATCH, "check %s",
               reqsign_errname(st));

    /* our own serialisation of the same content must parse back to its digests */
    char own[REQSIGN_CONTENT_DIGEST_OUT_BUF];
    size_t own_len = 0;
    st = reqsign_content_digest(exp.algs, in, size, own, sizeof(own), &own_len, NULL);
    FUZZ_CHECK(st == REQSIGN_OK, "content_digest");
    struct reqsign_digest_expect back;
    st = reqsign_content_digest_parse(own, own_len, &back, NULL);
    FUZZ_CHECK(st == REQSIGN_OK && back.algs == exp.algs, "own digest does not parse back");
    free(in);
    return 0;
}
