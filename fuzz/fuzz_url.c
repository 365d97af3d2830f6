/* fuzz_url: reqsign_authority_normalize(), reqsign_target_split() and the
 * signer's URL path (reqsign_signer_sign() with a fixed key and the input as
 * URL, as given and behind "https://"): it must return OK, E_URL, E_LIMIT or
 * E_INVALID_ARG and never crash; on OK the Signature-Input it wrote must
 * parse as a dictionary. Differential: whenever the signer's fast URL parser
 * (client/src/url.c) takes a URL, libcurl's parser must give the same scheme,
 * authority, path and query, with and without path_as_is. */
#include "fuzz_common.h"

#include <string.h>

#include <reqsign/request.h>
#include <reqsign/sf.h>
#include <reqsign/signer.h>

#include "url.h"

static struct reqsign_signer *signer;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct reqsign_signer_opts o;
    struct reqsign_error err;
    memset(&o, 0, sizeof(o));
    o.key = fuzz_test_key();
    o.keyid = FUZZ_KEYID;
    reqsign_error_clear(&err);
    signer = reqsign_signer_new(&o, &err);
    FUZZ_CHECK(signer != NULL, "signer: %s", err.message);
    return 0;
}

static struct reqsign_span span(const char *p, size_t n)
{
    struct reqsign_span s = {p, n};
    return s;
}

static void fast_vs_curl(const char *url)
{
    static struct reqsign__url_parts f, c;
    size_t n = strlen(url);
    int bad_byte = 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)url[i] <= 0x20 || (unsigned char)url[i] >= 0x7f)
            bad_byte = 1;
    if (!reqsign__url_fast(url, n, &f))
        return;
    FUZZ_CHECK(!bad_byte, "fast parser took [%s], which has a space, control or non-ASCII byte",
               url);
    for (int as_is = 0; as_is < 2; as_is++) {
        enum reqsign_status st = reqsign__url_curl(url, as_is, &c, NULL);
        FUZZ_CHECK(st == REQSIGN_OK, "fast parser took [%s], libcurl refuses it", url);
        FUZZ_CHECK(strcmp(f.scheme, c.scheme) == 0 && strcmp(f.authority, c.authority) == 0 &&
                       strcmp(f.target, c.target) == 0 && f.path_len == c.path_len &&
                       f.authority_len == c.authority_len && f.target_len == c.target_len,
                   "[%s]: fast parser %s %s %s, libcurl %s %s %s (path_as_is %d)", url, f.scheme,
                   f.authority, f.target, c.scheme, c.authority, c.target, as_is);
    }
}

static void sign_url(const char *url)
{
    fast_vs_curl(url);
    struct reqsign_sign_input in;
    static struct reqsign_signed out;
    struct reqsign_error err;
    memset(&in, 0, sizeof(in));
    in.method = "GET";
    in.url = url;
    in.created = FUZZ_CREATED;
    in.nonce = "fuzz-nonce-0001";
    memset(&out, 0, sizeof(out));
    reqsign_error_clear(&err);
    enum reqsign_status st = reqsign_signer_sign(signer, &in, &out, &err);
    FUZZ_CHECK(st == REQSIGN_OK || st == REQSIGN_E_URL || st == REQSIGN_E_LIMIT ||
                   st == REQSIGN_E_INVALID_ARG,
               "sign: %s (%s)", reqsign_errname(st), err.message);
    if (st == REQSIGN_E_URL)
        FUZZ_CHECK(err.offset == REQSIGN_NO_OFFSET || err.offset <= strlen(url),
                   "E_URL offset %zu past the URL", err.offset);
    if (st != REQSIGN_OK)
        return;
    struct reqsign_sf_member m[8];
    struct reqsign_sf_item it[40];
    struct reqsign_sf_param pa[40];
    struct reqsign_sf_parsed p = {m, 8, 0, it, 40, 0, pa, 40, 0};
    st = reqsign_sf_parse_dict(out.signature_input, strlen(out.signature_input), &p, &err);
    FUZZ_CHECK(st == REQSIGN_OK, "own Signature-Input does not parse: %s", out.signature_input);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 2 * REQSIGN_TARGET_IN_MAX)
        return 0;
    char *in = malloc(size ? size : 1); /* exact size: ASan sees over-reads */
    FUZZ_CHECK(in != NULL, "malloc");
    if (size)
        memcpy(in, data, size);

    static const char *const schemes[] = {"https", "http", ""};
    for (size_t i = 0; i < 3; i++) {
        char out[REQSIGN_AUTHORITY_IN_MAX + 1];
        size_t n = 0;
        struct reqsign_error err;
        reqsign_error_clear(&err);
        enum reqsign_status st = reqsign_authority_normalize(
            span(schemes[i], strlen(schemes[i])), span(in, size), out, sizeof(out), &n, &err);
        FUZZ_CHECK(st == REQSIGN_OK || st == REQSIGN_E_URL || st == REQSIGN_E_LIMIT ||
                       st == REQSIGN_E_BUFFER_TOO_SMALL,
                   "authority: %s", reqsign_errname(st));
        if (st == REQSIGN_OK) {
            FUZZ_CHECK(n < sizeof(out) && out[n] == '\0' && strlen(out) == n, "authority NUL");
            /* normalisation is idempotent */
            char out2[REQSIGN_AUTHORITY_IN_MAX + 1];
            size_t n2 = 0;
            st = reqsign_authority_normalize(span(schemes[i], strlen(schemes[i])), span(out, n),
                                             out2, sizeof(out2), &n2, NULL);
            FUZZ_CHECK(st == REQSIGN_OK && n2 == n && memcmp(out, out2, n) == 0,
                       "authority normalisation not idempotent: [%s] -> [%.*s]", out, (int)n2,
                       out2);
        } else if (st == REQSIGN_E_URL) {
            FUZZ_CHECK(err.offset == REQSIGN_NO_OFFSET || err.offset <= size, "offset");
        }
    }

    struct reqsign_span path, query;
    bool has_query = false;
    enum reqsign_status st = reqsign_target_split(span(in, size), &path, &query, &has_query, NULL);
    FUZZ_CHECK(st == REQSIGN_OK || st == REQSIGN_E_URL || st == REQSIGN_E_LIMIT, "split: %s",
               reqsign_errname(st));
    if (st == REQSIGN_OK) {
        FUZZ_CHECK(has_query == 0 || has_query == 1, "has_query");
        FUZZ_CHECK(path.len >= 1 && path.ptr[0] == '/', "path must start with /");
        FUZZ_CHECK(query.len >= 1 && query.ptr[0] == '?', "query must start with ?");
        FUZZ_CHECK(path.ptr >= in && path.ptr + path.len <= in + size, "path span out of input");
        if (has_query)
            FUZZ_CHECK(query.ptr >= in && query.ptr + query.len <= in + size,
                       "query span out of input");
    }
    free(in);

    char *url = fuzz_strndup(data, size);
    sign_url(url);
    size_t n = strlen(url);
    char *pref = malloc(n + 9);
    FUZZ_CHECK(pref != NULL, "malloc");
    memcpy(pref, "https://", 8);
    memcpy(pref + 8, url, n + 1);
    sign_url(pref);
    free(pref);
    free(url);
    return 0;
}
