/* Criterion suite `nonce`: the nonce store wrapper and the in-memory store. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <reqsign/nonce.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../server/src/siphash.h" /* header-only, private: the store's own code */
#include "testutil.h"

#define T0 INT64_C(1700000000)

/* SipHash-2-4 reference vectors, vectors_sip64 and vectors_sip128 of vectors.h
 * in the authors' reference implementation (github.com/veorq/SipHash): key
 * 00 01 .. 0f, message i bytes 00 01 .. (i-1), for i = 0..63. */
static const char *const sip64_vectors[64] = {
    "310e0edd47db6f72", "fd67dc93c539f874", "5a4fa9d909806c0d", "2d7efbd796666785",
    "b7877127e09427cf", "8da699cd64557618", "cee3fe586e46c9cb", "37d1018bf50002ab",
    "6224939a79f5f593", "b0e4a90bdf82009e", "f3b9dd94c5bb5d7a", "a7ad6b22462fb3f4",
    "fbe50e86bc8f1e75", "903d84c02756ea14", "eef27a8e90ca23f7", "e545be4961ca29a1",
    "db9bc2577fcc2a3f", "9447be2cf5e99a69", "9cd38d96f0b3c14b", "bd6179a71dc96dbb",
    "98eea21af25cd6be", "c7673b2eb0cbf2d0", "883ea3e395675393", "c8ce5ccd8c030ca8",
    "94af49f6c650adb8", "eab8858ade92e1bc", "f315bb5bb835d817", "adcf6b0763612e2f",
    "a5c91da7acaa4dde", "716595876650a2a6", "28ef495c53a387ad", "42c341d8fa92d832",
    "ce7cf2722f512771", "e37859f94623f3a7", "381205bb1ab0e012", "ae97a10fd434e015",
    "b4a31508beff4d31", "81396229f0907902", "4d0cf49ee5d4dcca", "5c73336a76d8bf9a",
    "d0a704536ba93e0e", "925958fcd6420cad", "a915c29bc8067318", "952b79f3bc0aa6d4",
    "f21df2e41d4535f9", "87577519048f53a9", "10a56cf5dfcd9adb", "eb75095ccd986cd0",
    "51a9cb9ecba312e6", "96afadfc2ce666c7", "72fe52975a4364ee", "5a1645b276d592a1",
    "b274cb8ebf87870a", "6f9bb4203de7b381", "eaecb2a30b22a87f", "9924a43cc1315724",
    "bd838d3aafbf8db7", "0b1a2a3265d51aea", "135079a3231ce660", "932b2846e4d70666",
    "e1915f5cb1eca46c", "f325965ca16d629f", "575ff28e60381be5", "724506eb4c328a95",
};
static const char *const sip128_vectors[64] = {
    "a3817f04ba25a8e66df67214c7550293", "da87c1d86b99af44347659119b22fc45",
    "8177228da4a45dc7fca38bdef60affe4", "9c70b60c5267a94e5f33b6b02985ed51",
    "f88164c12d9c8faf7d0f6e7c7bcd5579", "1368875980776f8854527a07690e9627",
    "14eeca338b208613485ea0308fd7a15e", "a1f1ebbed8dbc153c0b84aa61ff08239",
    "3b62a9ba6258f5610f83e264f31497b4", "264499060ad9baabc47f8b02bb6d71ed",
    "00110dc378146956c95447d3f3d0fbba", "0151c568386b6677a2b4dc6f81e5dc18",
    "d626b266905ef35882634df68532c125", "9869e247e9c08b10d029934fc4b952f7",
    "31fcefac66d7de9c7ec7485fe4494902", "5493e99933b0a8117e08ec0f97cfc3d9",
    "6ee2a4ca67b054bbfd3315bf85230577", "473d06e8738db89854c066c47ae47740",
    "a426e5e423bf4885294da481feaef723", "78017731cf65fab074d5208952512eb1",
    "9e25fc833f2290733e9344a5e83839eb", "568e495abe525a218a2214cd3e071d12",
    "4a29b54552d16b9a469c10528eff0aae", "c9d184ddd5a9f5e0cf8ce29a9abf691c",
    "2db479ae78bd50d8882a8a178a6132ad", "8ece5f042d5e447b5051b9eacb8d8f6f",
    "9c0b53b4b3c307e87eaee08678141f66", "abf248af69a6eae4bfd3eb2f129eeb94",
    "0664da1668574b88b935f3027358aef4", "aa4b9dc4bf337de90cd4fd3c467c6ab7",
    "ea5c7f471faf6bde2b1ad7d4686d2287", "2939b0183223fafc1723de4f52c43d35",
    "7c3956ca5eeafc3e363e9d556546eb68", "77c6077146f01c32b6b69d5f4ea9ffcf",
    "37a6986cb8847edf0925f0f1309b54de", "a705f0e69da9a8f907241a2e923c8cc8",
    "3dc47d1f29c448461e9e76ed904f6711", "0d62bf01e6fc0e1a0d3c4751c5d3692b",
    "8c03468bca7c669ee4fd5e084bbee7b5", "528a5bb93baf2c9c4473cce5d0d22bd9",
    "df6a301e95c95dad97ae0cc8c6913bd8", "801189902c857f39e73591285e70b6db",
    "e617346ac9c231bb3650ae34ccca0c5b", "27d93437efb721aa401821dcec5adf89",
    "89237d9ded9c5e78d8b1c9b166cc7342", "4a6d8091bf5e7d651189fa94a250b14c",
    "0e33f96055e7ae893ffc0e3dcf492902", "e61c432b720b19d18ec8d84bdc63151b",
    "f7e5aef549f782cf379055a608269b16", "438d030fd0b7a54fa837f2ad201a6403",
    "a590d3ee4fbf04e3247e0d27f286423f", "5fe2c1a172fe93c4b15cd37caef9f538",
    "2c97325cbd06b36eb2133dd08b3a017c", "92c814227a6bca949ff0659f002ad39e",
    "dce850110bd8328cfbd50841d6911d87", "67f14984c7da791248e32bb5922583da",
    "1938f2cf72d54ee97e94166fa91d2a36", "74481e9646ed49fe0f6224301604698e",
    "57fca5de98a9d6d8006438d0583d8a1d", "9fecde1cefdc1cbed4763674d9575359",
    "e3040c00eb28f15366ca73cbd872e740", "7697009a6a831dfecca91c5993670f7a",
    "5853542321f567a005d547a4f04759bd", "5150d1772f50834a503e069a973fbd7c",
};

Test(nonce, siphash_reference_vectors)
{
    uint8_t key[16], msg[64];
    for (int i = 0; i < 16; i++)
        key[i] = (uint8_t)i;
    for (int i = 0; i < 64; i++)
        msg[i] = (uint8_t)i;
    for (size_t len = 0; len < 64; len++) {
        uint64_t out[2];
        uint8_t got[16];
        size_t n64, n128;
        uint8_t *want64 = tu_unhex(sip64_vectors[len], &n64);
        uint8_t *want128 = tu_unhex(sip128_vectors[len], &n128);
        cr_assert_eq(n64, 8);
        cr_assert_eq(n128, 16);

        reqsign__siphash24(key, msg, len, 0, out);
        for (int b = 0; b < 8; b++)
            got[b] = (uint8_t)(out[0] >> (8 * b));
        cr_expect_arr_eq(got, want64, 8, "SipHash-2-4-64, length %zu", len);

        reqsign__siphash24(key, msg, len, 1, out);
        for (int b = 0; b < 16; b++)
            got[b] = (uint8_t)(out[b / 8] >> (8 * (b % 8)));
        cr_expect_arr_eq(got, want128, 16, "SipHash-2-4-128, length %zu", len);
        free(want64);
        free(want128);
    }
}

static struct reqsign_nonce_store *mk(size_t max_entries, size_t per_key_max)
{
    struct reqsign_nonce_memory_opts o = {.max_entries = max_entries, .per_key_max = per_key_max};
    struct reqsign_nonce_store *s = reqsign_nonce_store_memory_new(&o, NULL);
    cr_assert_not_null(s);
    return s;
}

static enum reqsign_status ci_err(struct reqsign_nonce_store *s, const char *keyid,
                                  const char *nonce, int64_t now, int64_t until,
                                  struct reqsign_error *err)
{
    reqsign_error_clear(err);
    return reqsign_nonce_store_check_insert(s, keyid, strlen(keyid), nonce, strlen(nonce), now,
                                            until, err);
}

static enum reqsign_status ci(struct reqsign_nonce_store *s, const char *keyid, const char *nonce,
                              int64_t now, int64_t until)
{
    struct reqsign_error err;
    return ci_err(s, keyid, nonce, now, until, &err);
}

/* A distinct nonce per (tag, i). */
static const char *nonce_of(char buf[32], unsigned tag, unsigned i)
{
    snprintf(buf, 32, "n-%u-%u", tag, i);
    return buf;
}

Test(nonce, same_pair_twice_is_replay)
{
    struct reqsign_nonce_store *s = mk(0, 0);
    struct reqsign_error err;
    cr_assert_eq(ci_err(s, "k1", "abc", T0, T0 + 300, &err), REQSIGN_OK);
    cr_assert_eq(err.code, REQSIGN_OK); /* untouched on success */
    cr_assert_eq(ci_err(s, "k1", "abc", T0, T0 + 300, &err), REQSIGN_E_REPLAY);
    cr_assert_eq(err.code, REQSIGN_E_REPLAY);
    cr_assert_str_eq(err.source, "nonce store");
    cr_assert_eq(err.offset, REQSIGN_NO_OFFSET);
    cr_assert_eq(reqsign_http_status(err.code), 401);
    cr_assert_eq(reqsign_nonce_store_memory_count(s, T0), 1);
    reqsign_nonce_store_free(s);
}

Test(nonce, same_nonce_under_two_keyids)
{
    struct reqsign_nonce_store *s = mk(0, 0);
    cr_assert_eq(ci(s, "k1", "abc", T0, T0 + 300), REQSIGN_OK);
    cr_assert_eq(ci(s, "k2", "abc", T0, T0 + 300), REQSIGN_OK);
    /* the keyid is length-prefixed: ("ab", "c") is not ("a", "bc") */
    cr_assert_eq(ci(s, "ab", "c", T0, T0 + 300), REQSIGN_OK);
    cr_assert_eq(ci(s, "a", "bc", T0, T0 + 300), REQSIGN_OK);
    cr_assert_eq(ci(s, "k2", "abc", T0, T0 + 300), REQSIGN_E_REPLAY);
    cr_assert_eq(ci(s, "a", "bc", T0, T0 + 300), REQSIGN_E_REPLAY);
    cr_assert_eq(reqsign_nonce_store_memory_count(s, T0), 4);
    reqsign_nonce_store_free(s);
}

Test(nonce, accepted_again_after_expiry)
{
    struct reqsign_nonce_store *s = mk(0, 0);
    /* live while now <= until: through second T0 + 9, dead at T0 + 10 */
    cr_assert_eq(ci(s, "k", "n", T0, T0 + 9), REQSIGN_OK);
    cr_assert_eq(ci(s, "k", "n", T0 + 9, T0 + 19), REQSIGN_E_REPLAY);
    cr_assert_eq(reqsign_nonce_store_memory_count(s, T0 + 9), 1);
    cr_assert_eq(reqsign_nonce_store_memory_count(s, T0 + 10), 0);
    /* until < now: dead, so accepted and remembered again (through T0 + 19) */
    cr_assert_eq(ci(s, "k", "n", T0 + 10, T0 + 19), REQSIGN_OK);
    cr_assert_eq(ci(s, "k", "n", T0 + 19, T0 + 29), REQSIGN_E_REPLAY);
    /* long after, once reclaimed */
    cr_assert_eq(ci(s, "k", "n", T0 + 1000, T0 + 1010), REQSIGN_OK);
    cr_assert_eq(ci(s, "k", "n", T0 + 1000, T0 + 1010), REQSIGN_E_REPLAY);
    cr_assert_eq(reqsign_nonce_store_memory_count(s, T0 + 1000), 1);
    reqsign_nonce_store_free(s);
}

Test(nonce, until_not_after_now_is_kept_a_second)
{
    struct reqsign_nonce_store *s = mk(0, 0);
    /* until <= now is taken as now + 1: live through the next second */
    cr_assert_eq(ci(s, "k", "n", T0, T0), REQSIGN_OK);
    cr_assert_eq(ci(s, "k", "n", T0, T0), REQSIGN_E_REPLAY);
    cr_assert_eq(ci(s, "k", "n", T0 + 1, T0 + 1), REQSIGN_E_REPLAY);
    cr_assert_eq(ci(s, "k", "n", T0 + 2, T0 + 2), REQSIGN_OK);
    cr_assert_eq(ci(s, "k", "m", T0, T0 - 5), REQSIGN_OK);
    cr_assert_eq(ci(s, "k", "m", T0, T0 + 100), REQSIGN_E_REPLAY);
    /* beyond 2106: kept until UINT32_MAX */
    cr_assert_eq(ci(s, "k", "far", T0, INT64_MAX), REQSIGN_OK);
    cr_assert_eq(ci(s, "k", "far", (int64_t)UINT32_MAX - 1, INT64_MAX), REQSIGN_E_REPLAY);
    reqsign_nonce_store_free(s);
}

Test(nonce, full_store_refuses_and_never_forgets)
{
    struct reqsign_nonce_store *s = mk(10, 0);
    struct reqsign_error err;
    char b[32];
    for (unsigned i = 0; i < 10; i++) /* 0..4 live through T0 + 9, 5..9 through T0 + 99 */
        cr_assert_eq(ci(s, "k", nonce_of(b, 0, i), T0, i < 5 ? T0 + 9 : T0 + 99), REQSIGN_OK);
    cr_assert_eq(ci_err(s, "k", "one more", T0, T0 + 10, &err), REQSIGN_E_NONCE_STORE_FULL);
    cr_assert_eq(reqsign_http_status(err.code), 503);
    cr_assert_str_eq(err.source, "nonce store");
    cr_assert_eq(ci(s, "other key", "one more", T0, T0 + 10), REQSIGN_E_NONCE_STORE_FULL);
    /* still full: a replay is a replay, nothing was evicted */
    for (unsigned i = 0; i < 10; i++)
        cr_assert_eq(ci(s, "k", nonce_of(b, 0, i), T0 + 5, T0 + 200), REQSIGN_E_REPLAY);
    cr_assert_eq(reqsign_nonce_store_memory_count(s, T0 + 5), 10);

    /* T0 + 10: 0..4 are dead (a check of one of them accepts it again) but
     * reclaimed only a second later, so new pairs are still refused */
    cr_assert_eq(ci(s, "k", "one more", T0 + 10, T0 + 20), REQSIGN_E_NONCE_STORE_FULL);
    cr_assert_eq(ci(s, "k", nonce_of(b, 0, 0), T0 + 10, T0 + 300), REQSIGN_OK);

    /* T0 + 11: 1..4 reclaimed: exactly four new pairs fit */
    for (unsigned i = 0; i < 4; i++)
        cr_assert_eq(ci(s, "k", nonce_of(b, 1, i), T0 + 11, T0 + 300), REQSIGN_OK, "new %u", i);
    cr_assert_eq(ci(s, "k", "one more", T0 + 11, T0 + 300), REQSIGN_E_NONCE_STORE_FULL);
    for (unsigned i = 0; i < 10; i++)
        cr_assert_eq(ci(s, "k", nonce_of(b, 0, i), T0 + 11, T0 + 300),
                     i >= 1 && i < 5 ? REQSIGN_E_NONCE_STORE_FULL : REQSIGN_E_REPLAY, "old %u", i);
    cr_assert_eq(reqsign_nonce_store_memory_count(s, T0 + 11), 10);

    /* all gone later */
    for (unsigned i = 0; i < 10; i++)
        cr_assert_eq(ci(s, "k", nonce_of(b, 2, i), T0 + 1000, T0 + 1100), REQSIGN_OK);
    cr_assert_eq(ci(s, "k", "one more", T0 + 1000, T0 + 1100), REQSIGN_E_NONCE_STORE_FULL);
    reqsign_nonce_store_free(s);
}

Test(nonce, per_key_cap)
{
    struct reqsign_nonce_store *s = mk(0, 3);
    struct reqsign_error err;
    char b[32];
    for (unsigned i = 0; i < 3; i++)
        cr_assert_eq(ci(s, "busy", nonce_of(b, 0, i), T0, T0 + 9), REQSIGN_OK);
    cr_assert_eq(ci_err(s, "busy", "fourth", T0, T0 + 10, &err), REQSIGN_E_NONCE_KEY_LIMIT);
    cr_assert_eq(reqsign_http_status(err.code), 429);
    cr_assert_str_eq(err.source, "nonce store");
    /* a replay at the cap is still a replay */
    cr_assert_eq(ci(s, "busy", nonce_of(b, 0, 1), T0, T0 + 9), REQSIGN_E_REPLAY);
    /* the other key is not locked out */
    for (unsigned i = 0; i < 3; i++)
        cr_assert_eq(ci(s, "quiet", nonce_of(b, 0, i), T0, T0 + 9), REQSIGN_OK);
    cr_assert_eq(ci(s, "quiet", "fourth", T0, T0 + 9), REQSIGN_E_NONCE_KEY_LIMIT);
    cr_assert_eq(ci(s, "third", "x", T0, T0 + 9), REQSIGN_OK);
    /* once the busy key's entries are reclaimed it has room again */
    for (unsigned i = 0; i < 3; i++)
        cr_assert_eq(ci(s, "busy", nonce_of(b, 1, i), T0 + 11, T0 + 30), REQSIGN_OK);
    cr_assert_eq(ci(s, "busy", "fourth", T0 + 11, T0 + 30), REQSIGN_E_NONCE_KEY_LIMIT);
    reqsign_nonce_store_free(s);
}

Test(nonce, revived_entry_counts_once)
{
    struct reqsign_nonce_store *s = mk(0, 1);
    cr_assert_eq(ci(s, "k", "n1", T0, T0 + 9), REQSIGN_OK);
    cr_assert_eq(ci(s, "k", "n1", T0 + 10, T0 + 19), REQSIGN_OK); /* dead: revived in place */
    cr_assert_eq(ci(s, "k", "n2", T0 + 10, T0 + 19), REQSIGN_E_NONCE_KEY_LIMIT);
    cr_assert_eq(ci(s, "k", "n2", T0 + 12, T0 + 20), REQSIGN_E_NONCE_KEY_LIMIT);
    cr_assert_eq(ci(s, "k", "n2", T0 + 21, T0 + 30), REQSIGN_OK);
    struct reqsign_nonce_memory_stats st;
    reqsign_nonce_store_memory_stats(s, T0 + 21, &st);
    cr_assert_eq(st.live, 1);
    cr_assert_eq(st.present, 1);
    cr_assert_eq(st.keys, 1);
    reqsign_nonce_store_free(s);
}

/* ---- threads ---- */

#define RACE_THREADS 8
#define RACE_NONCES 2000

struct race {
    struct reqsign_nonce_store *s;
    pthread_barrier_t barrier;
    atomic_int ok[RACE_NONCES], replay[RACE_NONCES], other;
};

static void *race_thread(void *arg)
{
    struct race *r = arg;
    char b[32];
    for (unsigned i = 0; i < RACE_NONCES; i++) {
        pthread_barrier_wait(&r->barrier);
        enum reqsign_status st = ci(r->s, "racer", nonce_of(b, 7, i), T0, T0 + 300);
        if (st == REQSIGN_OK)
            atomic_fetch_add(&r->ok[i], 1);
        else if (st == REQSIGN_E_REPLAY)
            atomic_fetch_add(&r->replay[i], 1);
        else
            atomic_fetch_add(&r->other, 1);
    }
    return NULL;
}

Test(nonce, threads_race_one_nonce_exactly_one_wins)
{
    static struct race r; /* large: not on the stack */
    pthread_t t[RACE_THREADS];
    memset(&r, 0, sizeof(r));
    r.s = mk(0, 0);
    cr_assert_eq(pthread_barrier_init(&r.barrier, NULL, RACE_THREADS), 0);
    for (int i = 0; i < RACE_THREADS; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, race_thread, &r), 0);
    for (int i = 0; i < RACE_THREADS; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&r.barrier);
    cr_assert_eq(atomic_load(&r.other), 0);
    for (unsigned i = 0; i < RACE_NONCES; i++) {
        cr_assert_eq(atomic_load(&r.ok[i]), 1, "nonce %u accepted %d times", i,
                     atomic_load(&r.ok[i]));
        cr_assert_eq(atomic_load(&r.replay[i]), RACE_THREADS - 1);
    }
    cr_assert_eq(reqsign_nonce_store_memory_count(r.s, T0), RACE_NONCES);
    reqsign_nonce_store_free(r.s);
}

#define BULK_PER_THREAD 200000

struct bulk {
    struct reqsign_nonce_store *s;
    unsigned tag;
    int64_t now, until;
    unsigned failures;
};

static void *bulk_thread(void *arg)
{
    struct bulk *b = arg;
    char n[32], k[16];
    for (unsigned i = 0; i < BULK_PER_THREAD; i++) {
        snprintf(k, sizeof(k), "key%u", i % 4);
        if (ci(b->s, k, nonce_of(n, b->tag, i), b->now, b->until) != REQSIGN_OK)
            b->failures++;
    }
    return NULL;
}

static void bulk_insert(struct reqsign_nonce_store *s, int nthreads, unsigned tag0, int64_t now,
                        int64_t until)
{
    pthread_t t[8];
    struct bulk b[8];
    for (int i = 0; i < nthreads; i++) {
        b[i] = (struct bulk){.s = s, .tag = tag0 + (unsigned)i, .now = now, .until = until};
        cr_assert_eq(pthread_create(&t[i], NULL, bulk_thread, &b[i]), 0);
    }
    for (int i = 0; i < nthreads; i++) {
        pthread_join(t[i], NULL);
        cr_assert_eq(b[i].failures, 0);
    }
}

Test(nonce, two_threads_distinct_inserts_count_exact)
{
    struct reqsign_nonce_store *s = mk(0, 0);
    struct reqsign_nonce_memory_stats st;
    bulk_insert(s, 2, 100, T0, T0 + 300);
    cr_assert_eq(reqsign_nonce_store_memory_count(s, T0), 2 * BULK_PER_THREAD);
    reqsign_nonce_store_memory_stats(s, T0, &st);
    cr_assert_eq(st.live, 2 * BULK_PER_THREAD);
    cr_assert_eq(st.present, 2 * BULK_PER_THREAD);
    cr_assert_eq(st.keys, 4);
    /* a table sized for load 0.6 to 0.8: 30 to 40 bytes a slot's worth per entry */
    cr_assert_leq(st.bytes, (size_t)2 * BULK_PER_THREAD * 48, "%zu bytes", st.bytes);
    char n[32];
    cr_assert_eq(ci(s, "key1", nonce_of(n, 101, 12345), T0, T0 + 300), REQSIGN_E_REPLAY);
    reqsign_nonce_store_free(s);
}

Test(nonce, memory_returned_after_expiry)
{
    struct reqsign_nonce_store *s = mk(0, 0);
    struct reqsign_nonce_memory_stats full, after;
    char n[32];
    bulk_insert(s, 1, 200, T0, T0 + 10);
    reqsign_nonce_store_memory_stats(s, T0, &full);
    cr_assert_eq(full.live, BULK_PER_THREAD);
    cr_assert_geq(full.bytes, (size_t)BULK_PER_THREAD * 24);

    /* all expired; a few thousand new checks, from one thread, and nothing else */
    for (unsigned i = 0; i < 5000; i++)
        cr_assert_eq(ci(s, "fresh", nonce_of(n, 201, i), T0 + 100, T0 + 200), REQSIGN_OK);
    reqsign_nonce_store_memory_stats(s, T0 + 100, &after);
    cr_assert_eq(after.live, 5000);
    cr_assert_eq(after.present, 5000, "dead entries left: %zu", after.present - 5000);
    cr_assert_eq(after.keys, 1);
    cr_assert_lt(after.bytes, full.bytes / 10, "%zu -> %zu bytes", full.bytes, after.bytes);
    reqsign_nonce_store_free(s);
}

Test(nonce, sweep_reclaims_everything_reclaimable)
{
    struct reqsign_nonce_store *s = mk(0, 0);
    struct reqsign_nonce_memory_stats st, empty;
    char n[32], k[16];
    reqsign_nonce_store_memory_stats(s, T0, &empty);
    for (unsigned i = 0; i < 3000; i++) {
        snprintf(k, sizeof(k), "key%u", i); /* one key each: counters are freed too */
        cr_assert_eq(ci(s, k, nonce_of(n, 0, i), T0, i < 1000 ? T0 + 9 : T0 + 19), REQSIGN_OK);
    }
    cr_assert_eq(reqsign_nonce_store_memory_sweep(s, T0 + 5), 0);
    cr_assert_eq(reqsign_nonce_store_memory_sweep(s, T0 + 10), 0); /* dead, not yet reclaimable */
    cr_assert_eq(reqsign_nonce_store_memory_sweep(s, T0 + 11), 1000);
    reqsign_nonce_store_memory_stats(s, T0 + 11, &st);
    cr_assert_eq(st.live, 2000);
    cr_assert_eq(st.present, 2000);
    cr_assert_eq(st.keys, 2000);
    cr_assert_eq(reqsign_nonce_store_memory_sweep(s, T0 + 21), 2000);
    reqsign_nonce_store_memory_stats(s, T0 + 21, &st);
    cr_assert_eq(st.present, 0);
    cr_assert_eq(st.keys, 0);
    cr_assert_eq(st.slots, empty.slots);
    for (unsigned i = 0; i < 3000; i++) { /* and it is all usable again */
        snprintf(k, sizeof(k), "key%u", i);
        cr_assert_eq(ci(s, k, nonce_of(n, 0, i), T0 + 21, T0 + 30), REQSIGN_OK);
    }
    cr_assert_eq(reqsign_nonce_store_memory_count(s, T0 + 21), 3000);
    reqsign_nonce_store_free(s);
}

/* Random checks against a plain model, across growth, reclaiming and shrinking. */
Test(nonce, random_checks_match_a_model)
{
    enum { PAIRS = 4000, KEYS = 7, STEPS = 300000 };
    static int64_t model[PAIRS]; /* until (live while now <= until), 0: never seen */
    struct reqsign_nonce_store *s = mk(0, 0);
    uint64_t x = 0x9E3779B97F4A7C15u;
    int64_t now = T0;
    char n[32], k[16];
    memset(model, 0, sizeof(model));
    for (unsigned step = 0; step < STEPS; step++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        if (x % 1000 == 0)
            now += (int64_t)(x >> 40) % 40; /* sometimes jump past everything */
        else if (x % 50 == 0)
            now++;
        unsigned p = (unsigned)((x >> 20) % PAIRS);
        int64_t until = now + 1 + (int64_t)((x >> 8) % 30);
        snprintf(k, sizeof(k), "k%u", p % KEYS);
        enum reqsign_status want = model[p] >= now ? REQSIGN_E_REPLAY : REQSIGN_OK;
        cr_assert_eq(ci(s, k, nonce_of(n, 9, p), now, until), want, "step %u", step);
        if (want == REQSIGN_OK)
            model[p] = until;
        if (step % 25000 == 0) {
            size_t live = 0;
            for (unsigned i = 0; i < PAIRS; i++)
                live += model[i] >= now;
            cr_assert_eq(reqsign_nonce_store_memory_count(s, now), live, "step %u", step);
        }
    }
    reqsign_nonce_store_free(s);
}

/* ---- arguments and the wrapper ---- */

Test(nonce, invalid_arguments)
{
    struct reqsign_nonce_store *s = mk(0, 0);
    struct reqsign_error err;
    char big[300];
    memset(big, 'a', sizeof(big));
#define CI(store, k, kl, nn, nl, now)                                                              \
    (reqsign_error_clear(&err),                                                                    \
     reqsign_nonce_store_check_insert(store, k, kl, nn, nl, now, (now) + 10, &err))
    cr_assert_eq(CI(NULL, "k", 1, "n", 1, T0), REQSIGN_E_INVALID_ARG);
    cr_assert_eq(CI(s, "k", 0, "n", 1, T0), REQSIGN_E_INVALID_ARG);
    cr_assert_eq(CI(s, big, REQSIGN_KEYID_IN_MAX + 1, "n", 1, T0), REQSIGN_E_INVALID_ARG);
    cr_assert_str_eq(err.source, "nonce store");
    cr_assert_not_null(strstr(err.message, "keyid"), "%s", err.message);
    cr_assert_eq(CI(s, NULL, 1, "n", 1, T0), REQSIGN_E_INVALID_ARG);
    cr_assert_eq(CI(s, "k", 1, "n", 0, T0), REQSIGN_E_INVALID_ARG);
    cr_assert_eq(CI(s, "k", 1, big, REQSIGN_NONCE_IN_MAX + 1, T0), REQSIGN_E_INVALID_ARG);
    cr_assert_not_null(strstr(err.message, "nonce"), "%s", err.message);
    cr_assert_eq(CI(s, "k", 1, NULL, 1, T0), REQSIGN_E_INVALID_ARG);
    cr_assert_eq(CI(s, "k", 1, "n", 1, -1), REQSIGN_E_INVALID_ARG);
    cr_assert_eq(CI(s, "k", 1, "n", 1, (int64_t)UINT32_MAX), REQSIGN_E_INVALID_ARG);
    cr_assert_eq(reqsign_nonce_store_memory_count(s, T0), 0);
    /* the largest allowed */
    cr_assert_eq(CI(s, big, REQSIGN_KEYID_IN_MAX, big, REQSIGN_NONCE_IN_MAX, T0), REQSIGN_OK);
    cr_assert_eq(CI(s, big, REQSIGN_KEYID_IN_MAX, big, REQSIGN_NONCE_IN_MAX, T0), REQSIGN_E_REPLAY);
    cr_assert_eq(CI(s, "k", 1, "n", 1, 0), REQSIGN_OK);
#undef CI
    /* a NULL err is fine */
    cr_assert_eq(reqsign_nonce_store_check_insert(s, "k", 1, "n", 1, T0, T0 + 10, NULL),
                 REQSIGN_OK);
    cr_assert_eq(reqsign_nonce_store_check_insert(s, "k", 1, "n", 1, T0, T0 + 10, NULL),
                 REQSIGN_E_REPLAY);
    reqsign_nonce_store_free(s);
    reqsign_nonce_store_free(NULL);
}

struct fake {
    int calls, freed;
};

static enum reqsign_status fake_check(void *impl, const char *keyid, size_t keyid_len,
                                      const char *nonce, size_t nonce_len, int64_t now,
                                      int64_t until, struct reqsign_error *err)
{
    struct fake *f = impl;
    f->calls++;
    return keyid_len == 3 ? reqsign_error_set(err, REQSIGN_E_NONCE_STORE_UNAVAILABLE, "fake",
                                              REQSIGN_NO_OFFSET, NULL)
                          : REQSIGN_OK;
}

static void fake_free(void *impl)
{
    ((struct fake *)impl)->freed++;
}

Test(nonce, custom_store_dispatch)
{
    struct fake f = {0, 0};
    struct reqsign_nonce_store_ops ops = {.check_insert = fake_check, .free = fake_free};
    struct reqsign_nonce_memory_stats st;
    struct reqsign_error err;
    cr_assert_null(reqsign_nonce_store_new(NULL, &f, NULL));
    cr_assert_null(reqsign_nonce_store_new(&(struct reqsign_nonce_store_ops){0}, &f, NULL));
    struct reqsign_nonce_store *s = reqsign_nonce_store_new(&ops, &f, NULL);
    cr_assert_not_null(s);
    ops.check_insert = NULL; /* copied */
    cr_assert_eq(ci(s, "k", "n", T0, T0 + 1), REQSIGN_OK);
    cr_assert_eq(ci_err(s, "abc", "n", T0, T0 + 1, &err), REQSIGN_E_NONCE_STORE_UNAVAILABLE);
    cr_assert_str_eq(err.source, "fake");
    cr_assert_eq(ci(s, "", "n", T0, T0 + 1), REQSIGN_E_INVALID_ARG); /* checked before */
    cr_assert_eq(f.calls, 2);
    cr_assert_eq(reqsign_nonce_store_memory_count(s, T0), 0);
    cr_assert_eq(reqsign_nonce_store_memory_sweep(s, T0), 0);
    reqsign_nonce_store_memory_stats(s, T0, &st);
    cr_assert_eq(st.bytes, 0);
    reqsign_nonce_store_free(s);
    cr_assert_eq(f.freed, 1);
    /* no free op: impl stays the caller's */
    s = reqsign_nonce_store_new(&(struct reqsign_nonce_store_ops){.check_insert = fake_check}, &f,
                                NULL);
    reqsign_nonce_store_free(s);
    cr_assert_eq(f.freed, 1);
}
