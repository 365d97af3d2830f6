/* Suite `crypto_backend`: the Ed25519 backend chosen at build time (meson option
 * crypto_backend) is the one reported by reqsign_crypto_backend(), and it
 * produces the RFC 8032 section 7.1 signatures (TEST 1..3) bit for bit.
 * Ed25519 signatures are deterministic, so the same vectors pass with either
 * backend: this is the cross-backend check. tests/meson.build passes the
 * expected name as REQSIGN_TEST_BACKEND. */
#include <criterion/criterion.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <reqsign/key.h>

#include "testutil.h"

#ifndef REQSIGN_TEST_BACKEND
#error "tests/meson.build must define REQSIGN_TEST_BACKEND (\"libsodium\" or \"openssl\")"
#endif

/* RFC 8032 section 7.1, TEST 1..3: SECRET KEY (the seed), PUBLIC KEY, MESSAGE, SIGNATURE. */
struct rfc8032_vector {
    const char *name;
    const char *seed;
    const char *pk;
    const char *msg;
    const char *sig;
};

static const struct rfc8032_vector vectors[] = {
    {"TEST 1", "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b"
     "4"
     "6bd25bf5f0595bbe24655141438e7a100b"},
    {"TEST 2", "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11"
     "d"
     "8c387b2eaeb4302aeeb00d291612bb0c00"},
    {"TEST 3", "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
     "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc"
     "6"
     "594a7c15e9716ed28dc027beceea1ec40a"},
};

#define N_VECTORS (sizeof(vectors) / sizeof(vectors[0]))

struct decoded {
    uint8_t *seed, *pk, *msg, *sig;
    size_t msg_len;
};

static struct decoded decode(const struct rfc8032_vector *v)
{
    struct decoded d;
    size_t n;

    d.seed = tu_unhex(v->seed, &n);
    cr_assert_eq(n, REQSIGN_ED25519_SEED_LEN, "%s: seed", v->name);
    d.pk = tu_unhex(v->pk, &n);
    cr_assert_eq(n, REQSIGN_ED25519_PUBLIC_LEN, "%s: pk", v->name);
    d.sig = tu_unhex(v->sig, &n);
    cr_assert_eq(n, REQSIGN_ED25519_SIG_LEN, "%s: sig", v->name);
    d.msg = tu_unhex(v->msg, &d.msg_len);
    return d;
}

static void decoded_free(struct decoded *d)
{
    free(d->seed);
    free(d->pk);
    free(d->msg);
    free(d->sig);
}

Test(crypto_backend, name_matches_build_option)
{
    const char *name = reqsign_crypto_backend();

    cr_assert_not_null(name);
    cr_assert_str_eq(name, REQSIGN_TEST_BACKEND, "library built with %s, meson option says %s",
                     name, REQSIGN_TEST_BACKEND);
    cr_assert(strcmp(name, "libsodium") == 0 || strcmp(name, "openssl") == 0);
}

/* Seed -> public key -> signature, all bit for bit; then verify both ways. */
Test(crypto_backend, rfc8032_sign_and_verify)
{
    for (size_t i = 0; i < N_VECTORS; i++) {
        const struct rfc8032_vector *v = &vectors[i];
        struct decoded d = decode(v);
        struct reqsign_key *key = NULL, *pub = NULL, *copy = NULL;
        uint8_t pk[REQSIGN_ED25519_PUBLIC_LEN], sig[REQSIGN_ED25519_SIG_LEN];

        cr_assert_not_null(key = reqsign_key_from_seed(d.seed, NULL), "%s", v->name);
        reqsign_key_public_raw(key, pk);
        cr_assert_arr_eq(pk, d.pk, sizeof(pk), "%s: public key from seed", v->name);

        cr_assert_eq(reqsign_key_sign(key, d.msg, d.msg_len, sig, NULL), REQSIGN_OK, "%s", v->name);
        cr_assert_arr_eq(sig, d.sig, sizeof(sig), "%s: signature differs from RFC 8032", v->name);

        /* A copy (goes through the seed of the backend handle) signs the same. */
        copy = reqsign_key_dup(key, NULL);
        cr_assert_not_null(copy);
        memset(sig, 0, sizeof(sig));
        cr_assert_eq(reqsign_key_sign(copy, d.msg, d.msg_len, sig, NULL), REQSIGN_OK);
        cr_assert_arr_eq(sig, d.sig, sizeof(sig), "%s: copy signs differently", v->name);

        /* Verify: raw primitive, private key object, public-only key object. */
        cr_assert_eq(reqsign_ed25519_verify(d.sig, d.msg, d.msg_len, d.pk), REQSIGN_OK, "%s",
                     v->name);
        cr_assert_eq(reqsign_key_verify(key, d.sig, d.msg, d.msg_len, NULL), REQSIGN_OK, "%s",
                     v->name);
        cr_assert_not_null(pub = reqsign_key_from_public(d.pk, NULL));
        cr_assert_eq(reqsign_key_verify(pub, d.sig, d.msg, d.msg_len, NULL), REQSIGN_OK, "%s",
                     v->name);

        /* Any flipped bit in R, in S or in the message fails. */
        memcpy(sig, d.sig, sizeof(sig));
        sig[0] ^= 0x01;
        cr_assert_eq(reqsign_ed25519_verify(sig, d.msg, d.msg_len, d.pk), REQSIGN_E_SIG_INVALID);
        sig[0] ^= 0x01;
        sig[40] ^= 0x80;
        cr_assert_eq(reqsign_key_verify(pub, sig, d.msg, d.msg_len, NULL), REQSIGN_E_SIG_INVALID);
        if (d.msg_len > 0) {
            d.msg[0] ^= 0x01;
            cr_assert_eq(reqsign_key_verify(pub, d.sig, d.msg, d.msg_len, NULL),
                         REQSIGN_E_SIG_INVALID);
        }

        reqsign_key_free(copy);
        reqsign_key_free(pub);
        reqsign_key_free(key);
        decoded_free(&d);
    }
}

/* TEST 1 has an empty message: a NULL pointer with length 0 is that message too. */
Test(crypto_backend, empty_message_null_pointer)
{
    struct decoded d = decode(&vectors[0]);
    struct reqsign_key *key = NULL;
    uint8_t sig[REQSIGN_ED25519_SIG_LEN];

    cr_assert_eq(d.msg_len, 0);
    cr_assert_not_null(key = reqsign_key_from_seed(d.seed, NULL));
    cr_assert_eq(reqsign_key_sign(key, NULL, 0, sig, NULL), REQSIGN_OK);
    cr_assert_arr_eq(sig, d.sig, sizeof(sig));
    cr_assert_eq(reqsign_ed25519_verify(d.sig, NULL, 0, d.pk), REQSIGN_OK);
    cr_assert_eq(reqsign_key_verify(key, d.sig, NULL, 0, NULL), REQSIGN_OK);
    reqsign_key_free(key);
    decoded_free(&d);
}

/* A generated key signs and verifies (keygen of the backend). */
Test(crypto_backend, generated_key_roundtrip)
{
    struct reqsign_key *key = NULL;
    uint8_t sig[REQSIGN_ED25519_SIG_LEN];
    static const uint8_t msg[] = "reqsign backend";

    cr_assert_not_null(key = reqsign_key_generate(NULL));
    cr_assert_eq(reqsign_key_sign(key, msg, sizeof(msg), sig, NULL), REQSIGN_OK);
    cr_assert_eq(reqsign_key_verify(key, sig, msg, sizeof(msg), NULL), REQSIGN_OK);
    cr_assert_eq(reqsign_key_verify(key, sig, msg, sizeof(msg) - 1, NULL), REQSIGN_E_SIG_INVALID);
    reqsign_key_free(key);
}

/* ed25519-speccheck (novifinancial/ed25519-speccheck, cases.json at commit
 * d2b2ba588feb81f64c30f7094c05803b5e7d0066; "Taming the many EdDSAs", Chalkias,
 * Garillot, Nikolaenko, 2020): the edge cases where Ed25519 libraries disagree.
 * Both backends must give the verdicts below: libsodium 1.0.18's, which the
 * OpenSSL backend reproduces with explicit checks (crypto_ed25519_openssl.c,
 * tests/vectors/wycheproof/README.md). Before those checks OpenSSL 3 accepted
 * cases 1, 3, 5 and 14. Columns: accepted, A, message, signature. */
struct edge_case {
    int accepted;
    const char *pk;
    const char *msg;
    const char *sig;
};

static const struct edge_case speccheck[] = {
    /*  0: small-order A, small-order R, S = 0 (cofactored equation only) */
    {0, "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
     "2a66241a42a9ee12994d8068dcf1bb7dfc6637b45450acd43711f637fa5080fc",
     "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"
     "0000000000000000000000000000000000000000000000000000000000000000"},
    /*  1: small-order A, small-order R, S = 0 (OpenSSL 3 alone accepted it) */
    {0, "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
     "8c93255d71dcab10e8f379c26200f3c7bd5f09d9bc3068d3ef4edeb4853022b6",
     "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"
     "0000000000000000000000000000000000000000000000000000000000000000"},
    /*  2: small-order A, mixed-order R (cofactored equation only) */
    {0, "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
     "9bedc267423725d473888631ebf45988bad3db83851ee85c85e241a07d148b41",
     "f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43"
     "a5bb704786be79fc476f91d3f3f89b03984d8068dcf1bb7dfc6637b45450ac04"},
    /*  3: small-order A, mixed-order R (OpenSSL 3 alone accepted it) */
    {0, "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
     "9bd9f44f4dcc75bd531b56b2cd280b0bb38fc1cd6d1230e14861d861de092e79",
     "f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43"
     "a5bb704786be79fc476f91d3f3f89b03984d8068dcf1bb7dfc6637b45450ac04"},
    /*  4: mixed-order A, small-order R (cofactored equation only) */
    {0, "f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43",
     "9bedc267423725d473888631ebf45988bad3db83851ee85c85e241a07d148b41",
     "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa"
     "182ef1a5b928da07fec769cc8a12db6bcf70dab3f3227fa315e9d5e3e01a3405"},
    /*  5: mixed-order A, small-order R (OpenSSL 3 alone accepted it) */
    {0, "f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43",
     "aebf3f2601a0c8c5d39cc7d8911642f740b78168218da8471772b35f9d35b9ab",
     "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa"
     "8c4bd45aecaca5b24fb97bc10ac27ac8751a7dfe1baff8b953ec9f5833ca260e"},
    /*  6: mixed-order A and R, cofactorless equation holds: valid */
    {1, "cdb267ce40c5cd45306fa5d2f29731459387dbf9eb933b7bd5aed9a765b88d4d",
     "9bd9f44f4dcc75bd531b56b2cd280b0bb38fc1cd6d1230e14861d861de092e79",
     "9046a64750444938de19f227bb80485e92b83fdb4b6506c160484c016cc1852f"
     "87909e14428a7a1d62e9f22f3d3ad7802db02eb2e688b6c52fcd6648a98bd009"},
    /*  7: mixed-order A and R, cofactored equation only */
    {0, "cdb267ce40c5cd45306fa5d2f29731459387dbf9eb933b7bd5aed9a765b88d4d",
     "e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec4011eaccd55b53f56c",
     "160a1cb0dc9c0258cd0a7d23e94d8fa878bcb1925f2c64246b2dee1796bed512"
     "5ec6bc982a269b723e0668e540911a9a6a58921d6925e434ab10aa7940551a09"},
    /*  8: mixed-order A and R, cofactored equation only (other R) */
    {0, "cdb267ce40c5cd45306fa5d2f29731459387dbf9eb933b7bd5aed9a765b88d4d",
     "e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec4011eaccd55b53f56c",
     "21122a84e0b5fca4052f5b1235c80a537878b38f3142356b2c2384ebad4668b7"
     "e40bc836dac0f71076f9abe3a53f9c03c1ceeeddb658d0030494ace586687405"},
    /*  9: S >= L (non-canonical S) */
    {0, "442aad9f089ad9e14647b1ef9099a1ff4798d78589e66f28eca69c11f582a623",
     "85e241a07d148b41e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec40",
     "e96f66be976d82e60150baecff9906684aebb1ef181f67a7189ac78ea23b6c0e"
     "547f7690a0e2ddcd04d87dbc3490dc19b3b3052f7ff0538cb68afb369ba3a514"},
    /* 10: S >= L (non-canonical S), other S */
    {0, "442aad9f089ad9e14647b1ef9099a1ff4798d78589e66f28eca69c11f582a623",
     "85e241a07d148b41e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec40",
     "8ce5b96c8f26d0ab6c47958c9e68b937104cd36e13c33566acd2fe8d38aa1942"
     "7e71f98a473474f2f13f06f97c20d58cc3f54b8bd0d272f42b695dd7e89a8c22"},
    /* 11: non-canonical R: y = p - 1 with the sign bit of x = 0 */
    {0, "f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43",
     "9bedc267423725d473888631ebf45988bad3db83851ee85c85e241a07d148b41",
     "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
     "03be9678ac102edcd92b0210bb34d7428d12ffc5df5f37e359941266a4e35f0f"},
    /* 12: non-canonical R, other S */
    {0, "f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43",
     "9bedc267423725d473888631ebf45988bad3db83851ee85c85e241a07d148b41",
     "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
     "ca8c5b64cd208982aa38d4936621a4775aa233aa0505711d8fdcfdaa943d4908"},
    /* 13: non-canonical A: (0, -1) with the sign bit set (RFC 8032 5.1.3: decoding fails) */
    {0, "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
     "e96b7021eb39c1a163b6da4e3093dcd3f21387da4cc4572be588fafae23c155b",
     "a9d55260f765261eb9b84e106f665e00b867287a761990d7135963ee0a7d59dc"
     "a5bb704786be79fc476f91d3f3f89b03984d8068dcf1bb7dfc6637b45450ac04"},
    /* 14: non-canonical A: (0, -1) with the sign bit set (OpenSSL 3 alone accepted it) */
    {0, "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
     "39a591f5321bbe07fd5a23dc2f39d025d74526615746727ceefd6e82ae65c06f",
     "a9d55260f765261eb9b84e106f665e00b867287a761990d7135963ee0a7d59dc"
     "a5bb704786be79fc476f91d3f3f89b03984d8068dcf1bb7dfc6637b45450ac04"},
};

Test(crypto_backend, speccheck_edge_cases_agree)
{
    for (size_t i = 0; i < sizeof(speccheck) / sizeof(speccheck[0]); i++) {
        const struct edge_case *c = &speccheck[i];
        size_t pk_len, msg_len, sig_len;
        uint8_t *pk = tu_unhex(c->pk, &pk_len);
        uint8_t *msg = tu_unhex(c->msg, &msg_len);
        uint8_t *sig = tu_unhex(c->sig, &sig_len);
        struct reqsign_key *key = NULL;
        int raw, obj;

        cr_assert_eq(pk_len, 32);
        cr_assert_eq(sig_len, 64);
        raw = reqsign_ed25519_verify(sig, msg, msg_len, pk) == REQSIGN_OK;
        cr_assert_not_null(key = reqsign_key_from_public(pk, NULL), "case %zu", i);
        obj = reqsign_key_verify(key, sig, msg, msg_len, NULL) == REQSIGN_OK;
        cr_expect_eq(raw, c->accepted, "speccheck case %zu: %s", i,
                     raw ? "accepted, must be rejected" : "rejected, must be accepted");
        cr_expect_eq(obj, raw, "speccheck case %zu: raw and key-object verification disagree", i);
        reqsign_key_free(key);
        free(pk);
        free(msg);
        free(sig);
    }
}

/* y coordinates (sign bit clear) of the 8 small-order points and of the
 * non-canonical encodings p, p + 1 of y = 0, 1. */
static const char *const small_order_y[] = {
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0100000000000000000000000000000000000000000000000000000000000000",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
};
#define N_SMALL (sizeof(small_order_y) / sizeof(small_order_y[0]))

static void small_point(size_t i, int sign, uint8_t out[32])
{
    size_t n;
    uint8_t *y = tu_unhex(small_order_y[i], &n);

    memcpy(out, y, 32);
    out[31] |= (uint8_t)(sign << 7);
    free(y);
}

/* Every small-order A with every small-order R, S = 0 or 1, both sign bits,
 * 8 messages: all rejected by both backends. Under OpenSSL 3's own rules
 * some of these verify for some messages (R = -[k]A happens by chance). */
Test(crypto_backend, small_order_points_rejected)
{
    uint8_t pk[32], sig[64], msg[1];
    long accepted = 0;

    for (size_t a = 0; a < 2 * N_SMALL; a++) {
        small_point(a / 2, (int)(a % 2), pk);
        for (size_t r = 0; r < 2 * N_SMALL; r++) {
            small_point(r / 2, (int)(r % 2), sig);
            for (int s = 0; s < 2; s++) {
                memset(sig + 32, 0, 32);
                sig[32] = (uint8_t)s;
                for (int m = 0; m < 8; m++) {
                    msg[0] = (uint8_t)m;
                    accepted += reqsign_ed25519_verify(sig, msg, 1, pk) == REQSIGN_OK;
                }
            }
        }
    }
    cr_expect_eq(accepted, 0, "%ld small-order signatures accepted", accepted);
}

/* The first Ed25519 calls of the process come from several threads at once
 * (the libsodium backend initialises itself lazily): all must agree. */
#define N_THREADS 8

static void *sign_thread(void *arg)
{
    const struct rfc8032_vector *v = &vectors[2];
    struct decoded d = decode(v);
    struct reqsign_key *key = NULL;
    uint8_t sig[REQSIGN_ED25519_SIG_LEN];
    int ok = (key = reqsign_key_from_seed(d.seed, NULL)) != NULL &&
             reqsign_key_sign(key, d.msg, d.msg_len, sig, NULL) == REQSIGN_OK &&
             memcmp(sig, d.sig, sizeof(sig)) == 0 &&
             reqsign_ed25519_verify(d.sig, d.msg, d.msg_len, d.pk) == REQSIGN_OK;

    reqsign_key_free(key);
    decoded_free(&d);
    *(int *)arg = ok;
    return NULL;
}

Test(crypto_backend, concurrent_first_use)
{
    pthread_t th[N_THREADS];
    int ok[N_THREADS];

    for (size_t i = 0; i < N_THREADS; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, sign_thread, &ok[i]), 0);
    for (size_t i = 0; i < N_THREADS; i++) {
        cr_assert_eq(pthread_join(th[i], NULL), 0);
        cr_expect(ok[i], "thread %zu: wrong signature or verification failure", i);
    }
}
