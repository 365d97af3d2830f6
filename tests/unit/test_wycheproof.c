/* Suite `wycheproof`: every Ed25519 verification vector of Project Wycheproof
 * (tests/vectors/wycheproof/ed25519_test.json, see SOURCE there) through both
 * verification paths: the raw primitive reqsign_ed25519_verify() and a key
 * object's cached public key, reqsign_key_verify(). */
#include <criterion/criterion.h>
#include <criterion/logging.h>

#include <stdlib.h>
#include <string.h>

#include <reqsign/key.h>

#include "testutil.h"

#define VECTORS "tests/vectors/wycheproof/ed25519_test.json"

/* Outcome of one vector: 1 accepted, 0 rejected. A signature that is not 64
 * bytes cannot be passed to the API (the size is part of the prototype), so
 * it is rejected by construction. */
static int verify_one(const struct reqsign_key *key, const uint8_t pk[32], const uint8_t *sig,
                      size_t sig_len, const uint8_t *msg, size_t msg_len, long tc)
{
    int raw, obj;

    if (sig_len != REQSIGN_ED25519_SIG_LEN)
        return 0;
    raw = reqsign_ed25519_verify(sig, msg, msg_len, pk) == REQSIGN_OK;
    obj = key != NULL && reqsign_key_verify(key, sig, msg, msg_len, NULL) == REQSIGN_OK;
    cr_expect_eq(raw, obj, "tcId %ld: raw and key-object verification disagree", tc);
    return raw;
}

Test(wycheproof, ed25519_verify_all)
{
    json_t *root = tu_json(VECTORS);
    json_t *groups = json_object_get(root, "testGroups");
    size_t gi, ti;
    json_t *g, *t;
    long expected = (long)json_integer_value(json_object_get(root, "numberOfTests"));
    long run = 0, n_valid = 0, n_invalid = 0, n_acceptable = 0, n_acceptable_accepted = 0;

    cr_assert_str_eq(json_string_value(json_object_get(root, "algorithm")), "EDDSA");
    cr_assert(json_is_array(groups));
    json_array_foreach(groups, gi, g)
    {
        json_t *pkj = json_object_get(g, "publicKey");
        size_t pk_len = 0;
        uint8_t *pk;
        struct reqsign_key *key = NULL;

        cr_assert_str_eq(json_string_value(json_object_get(g, "type")), "EddsaVerify");
        cr_assert_str_eq(json_string_value(json_object_get(pkj, "curve")), "edwards25519");
        pk = tu_unhex(json_string_value(json_object_get(pkj, "pk")), &pk_len);
        cr_assert_eq(pk_len, 32, "group %zu: public key is %zu bytes", gi, pk_len);
        cr_assert_not_null(key = reqsign_key_from_public(pk, NULL));

        json_array_foreach(json_object_get(g, "tests"), ti, t)
        {
            long tc = (long)json_integer_value(json_object_get(t, "tcId"));
            const char *result = json_string_value(json_object_get(t, "result"));
            const char *comment = json_string_value(json_object_get(t, "comment"));
            size_t msg_len = 0, sig_len = 0;
            uint8_t *msg = tu_unhex(json_string_value(json_object_get(t, "msg")), &msg_len);
            uint8_t *sig = tu_unhex(json_string_value(json_object_get(t, "sig")), &sig_len);
            int ok = verify_one(key, pk, sig, sig_len, msg, msg_len, tc);

            run++;
            if (strcmp(result, "valid") == 0) {
                n_valid++;
                cr_expect(ok, "tcId %ld (%s): valid signature rejected", tc, comment);
            } else if (strcmp(result, "invalid") == 0) {
                n_invalid++;
                cr_expect(!ok, "tcId %ld (%s): invalid signature accepted", tc, comment);
            } else {
                /* Policy (tests/vectors/wycheproof/README.md): record, do not fail. */
                cr_expect_str_eq(result, "acceptable", "tcId %ld: unknown result", tc);
                n_acceptable++;
                n_acceptable_accepted += ok;
                cr_log_info("wycheproof tcId %ld acceptable (%s): %s", tc, comment,
                            ok ? "accepted" : "rejected");
            }
            free(msg);
            free(sig);
        }
        reqsign_key_free(key);
        free(pk);
    }
    cr_log_info("wycheproof ed25519: %ld run: %ld valid, %ld invalid, %ld acceptable "
                "(%ld of them accepted)",
                run, n_valid, n_invalid, n_acceptable, n_acceptable_accepted);
    cr_assert_eq(run, expected, "ran %ld vectors, file says numberOfTests = %ld", run, expected);
    /* The pinned file (SOURCE) has 88 valid, 63 invalid, 0 acceptable. */
    cr_expect_eq(n_valid, 88);
    cr_expect_eq(n_invalid, 63);
    cr_expect_eq(n_acceptable, 0);
    json_decref(root);
}

/* A wrong public key, a flipped message bit and a flipped signature bit
 * all fail, on a vector that is valid as given (tcId 1, empty message). */
Test(wycheproof, ed25519_mutations_fail)
{
    json_t *root = tu_json(VECTORS);
    json_t *g = json_array_get(json_object_get(root, "testGroups"), 0);
    json_t *t = json_array_get(json_object_get(g, "tests"), 0);
    size_t pk_len, sig_len, msg_len;
    uint8_t *pk = tu_unhex(
        json_string_value(json_object_get(json_object_get(g, "publicKey"), "pk")), &pk_len);
    uint8_t *sig = tu_unhex(json_string_value(json_object_get(t, "sig")), &sig_len);
    uint8_t *msg = tu_unhex(json_string_value(json_object_get(t, "msg")), &msg_len);
    uint8_t one = 0;

    cr_assert_str_eq(json_string_value(json_object_get(t, "result")), "valid");
    cr_assert_eq(sig_len, 64);
    cr_assert_eq(reqsign_ed25519_verify(sig, msg, msg_len, pk), REQSIGN_OK);
    cr_assert_eq(reqsign_ed25519_verify(sig, &one, 1, pk), REQSIGN_E_SIG_INVALID);
    sig[10] ^= 0x01;
    cr_assert_eq(reqsign_ed25519_verify(sig, msg, msg_len, pk), REQSIGN_E_SIG_INVALID);
    sig[10] ^= 0x01;
    pk[0] ^= 0x01;
    cr_assert_eq(reqsign_ed25519_verify(sig, msg, msg_len, pk), REQSIGN_E_SIG_INVALID);
    free(pk);
    free(sig);
    free(msg);
    json_decref(root);
}
