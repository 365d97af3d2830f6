/* The verifier's bad-input table, shared by the badinput suite and e2e-nginx
 * (tests/unit/badinput_table.c). */
#ifndef REQSIGN_TEST_BADINPUT_TABLE_H
#define REQSIGN_TEST_BADINPUT_TABLE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include <reqsign/key.h>
#include <reqsign/verifier.h>

#define BI_MAX_HEADERS 128

/* growable byte string (may hold NUL bytes) */
struct bi_bstr {
    char *p;
    size_t n, cap;
};

/* A request being built: spans point into owned strings. */
struct bi_built {
    struct bi_bstr method, scheme, authority, target;
    struct bi_bstr names[BI_MAX_HEADERS], values[BI_MAX_HEADERS];
    size_t n;
    struct reqsign_header hv[BI_MAX_HEADERS];
    struct reqsign_request req;
};

/* The verifier configuration a case asks for (clock, profile, label, ...). */
struct bi_vconf {
    struct reqsign_verifier_opts o;
    struct reqsign_static_key sk;
    int64_t now;
};

/* The table (tests/vectors/badinput/verifier.json) and the key it is signed
 * with (spec/vectors/keys/test-key-ed25519.pem, keyid test-key-ed25519). */
json_t *bi_load_table(void);
struct reqsign_key *bi_load_key(uint8_t pk[32]);

/* Case @c of template @t: the request as received in *@out (signed with @key
 * over the base of the request as the client signed it), its body in *@body
 * (free body->p), the verifier configuration in *@vc (pointing into @c and @t;
 * point vc->o.clock_ctx and lookup_ctx at a copy's own fields). Returns 1 if
 * the signing pass produced a signature (else *@serr says why). */
int bi_prepare(const json_t *c, const json_t *t, const struct reqsign_key *key,
               const uint8_t pk[32], struct bi_built *out, struct bi_bstr *body,
               struct bi_vconf *vc, struct reqsign_error *serr);
void bi_built_view(struct bi_built *b);
void bi_built_free(struct bi_built *b);

#endif
