/* Suite verify_alloc: what a verify costs beyond CPU (reqsign/verifier.h,
 * "Allocation and stack").
 *
 * - allocations: 10,000 verifies of mixed requests (GET / POST with sha-256
 *   and sha-512 Content-Digest, a signature base over 4 KiB, four keys through
 *   a key cache, two structured fields covered with ;sf and ;key=, and failures: replay, tampered
 * signature, too old, unknown key, digest mismatch, no signature) allocate nothing. Every malloc,
 *   calloc and realloc of the process is counted while the loop runs on this
 *   thread: by interposing them (a plain build) or through the sanitizer's
 *   allocation hooks (an ASan build, whose allocator cannot be interposed).
 *   OpenSSL's own allocations are counted apart through
 *   CRYPTO_set_mem_functions(): OpenSSL 3's EVP_DigestVerify makes
 *   REQSIGN_VERIFY_OPENSSL_ALLOCS of its own per Ed25519 verify, which the
 *   OpenSSL backend cannot avoid; with libsodium there are none (a
 *   -Ddigest_api=evp build adds EVP's per Content-Digest algorithm).
 * - stack: the same verifies on a thread whose stack this test provides and
 *   paints: the verify call's high-water mark stays under
 *   REQSIGN_VERIFY_STACK_MAX (not under ASan, whose redzones and fake stacks
 *   make frames several times larger: that build checks allocations only).
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <reqsign/base.h>
#include <reqsign/base64.h>
#include <reqsign/keycache.h>
#include <reqsign/signer.h>
#include <reqsign/verifier.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

/* ---- counting ---- */

static _Thread_local volatile int counting; /* this thread's allocations are counted */
static _Atomic unsigned long n_alloc;       /* every allocation while counting */
static _Atomic unsigned long n_ossl;        /* of which OpenSSL's own (CRYPTO_malloc) */

static void count(void)
{
    if (counting)
        n_alloc++;
}

#if UNDER_ASAN
void __sanitizer_install_malloc_and_free_hooks(void (*m)(const volatile void *, size_t),
                                               void (*f)(const volatile void *));
static void asan_malloc_hook(const volatile void *p, size_t n)
{
    (void)p;
    (void)n;
    count();
}
static void asan_free_hook(const volatile void *p)
{
    (void)p;
}
#else
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
void *malloc(size_t n)
{
    count();
    return __libc_malloc(n);
}
void *calloc(size_t a, size_t b)
{
    count();
    return __libc_calloc(a, b);
}
void *realloc(void *p, size_t n)
{
    count();
    return __libc_realloc(p, n);
}
void free(void *p)
{
    __libc_free(p);
}
#endif

static void *ossl_malloc(size_t n, const char *file, int line)
{
    (void)file;
    (void)line;
    if (counting)
        n_ossl++;
    return malloc(n);
}
static void *ossl_realloc(void *p, size_t n, const char *file, int line)
{
    (void)file;
    (void)line;
    if (counting)
        n_ossl++;
    return realloc(p, n);
}
static void ossl_free(void *p, const char *file, int line)
{
    (void)file;
    (void)line;
    free(p);
}

static int ossl_hooked;

__attribute__((constructor)) static void install_counters(void)
{
    /* before OpenSSL's first allocation, or it refuses */
    ossl_hooked = CRYPTO_set_mem_functions(ossl_malloc, ossl_realloc, ossl_free);
#if UNDER_ASAN
    __sanitizer_install_malloc_and_free_hooks(asan_malloc_hook, asan_free_hook);
#endif
}

/* ---- a nonce store that allocates nothing per insert (a fixed table) ---- */

#define NS_SLOTS (1u << 16)
struct fixed_nonces {
    uint64_t h[NS_SLOTS];
};

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

static enum reqsign_status fixed_check_insert(void *impl, const char *keyid, size_t keyid_len,
                                              const char *nonce, size_t nonce_len, int64_t now,
                                              int64_t until, struct reqsign_error *err)
{
    struct fixed_nonces *s = impl;
    (void)now;
    (void)until;
    uint64_t h = fnv(fnv(0xcbf29ce484222325ull, keyid, keyid_len), "\0", 1);
    h = fnv(h, nonce, nonce_len) | 1;
    for (uint32_t i = 0; i < NS_SLOTS; i++) {
        uint64_t *slot = &s->h[(h + i) & (NS_SLOTS - 1)];
        if (*slot == h)
            return reqsign_error_set(err, REQSIGN_E_REPLAY, "nonce", REQSIGN_NO_OFFSET, "replay");
        if (*slot == 0) {
            *slot = h;
            return REQSIGN_OK;
        }
    }
    return reqsign_error_set(err, REQSIGN_E_NONCE_STORE_FULL, "nonce", REQSIGN_NO_OFFSET, "full");
}

static void fixed_free(void *impl)
{
    free(impl);
}

/* ---- a key store of four keys, behind a key cache ---- */

#define NKEYS 4
static struct reqsign_key_record records[NKEYS];

static enum reqsign_status ks_get(void *impl, const char *keyid, size_t keyid_len,
                                  struct reqsign_key_record *out, struct reqsign_error *err)
{
    (void)impl;
    for (size_t i = 0; i < NKEYS; i++)
        if (strlen(records[i].keyid) == keyid_len &&
            memcmp(records[i].keyid, keyid, keyid_len) == 0) {
            *out = records[i];
            return REQSIGN_OK;
        }
    return reqsign_error_set(err, REQSIGN_E_KEY_UNKNOWN, "key", REQSIGN_NO_OFFSET, "unknown");
}

static enum reqsign_status ks_insert(void *impl, const struct reqsign_key_record *rec,
                                     struct reqsign_error *err)
{
    (void)impl;
    (void)rec;
    return reqsign_error_set(err, REQSIGN_E_STORE, "key", REQSIGN_NO_OFFSET, "read-only");
}

static enum reqsign_status ks_list(void *impl, const char *after, size_t limit,
                                   struct reqsign_key_record *out, size_t *n,
                                   struct reqsign_error *err)
{
    (void)impl;
    (void)after;
    (void)limit;
    (void)out;
    (void)err;
    *n = 0;
    return REQSIGN_OK;
}

static enum reqsign_status ks_revoke(void *impl, const char *keyid, size_t keyid_len, int64_t now,
                                     struct reqsign_error *err)
{
    (void)impl;
    (void)keyid;
    (void)keyid_len;
    (void)now;
    return reqsign_error_set(err, REQSIGN_E_STORE, "key", REQSIGN_NO_OFFSET, "read-only");
}

static void ks_free(void *impl)
{
    (void)impl;
}

static const int64_t NOW = 1700000000;
static int64_t clock_fn(void *ctx)
{
    (void)ctx;
    return NOW;
}

/* ---- the requests ---- */

enum kind {
    K_GET,
    K_POST256,
    K_POST512,
    K_BIGBASE,
    K_REPLAY,
    K_TAMPERED,
    K_OLD,
    K_UNKNOWN_KEY,
    K_BAD_DIGEST,
    K_UNSIGNED,
    K_SF,
    K_COUNT
};

struct rq {
    enum kind kind;
    char method[8];
    char target[6000];
    const char *body;
    size_t body_len;
    struct reqsign_signed s;
    char si[REQSIGN_SIGNATURE_INPUT_OUT_BUF + 64], sig[REQSIGN_SIGNATURE_OUT_BUF];
    struct reqsign_header h[7];
    size_t n_h;
    struct reqsign_request req;
    enum reqsign_status want;
};

#define N_REQ 10000
static struct rq *reqs;
static struct reqsign_signer *signers[NKEYS + 1]; /* the last: a key the store does not know */
static struct reqsign_key *keys[NKEYS + 1];
static struct reqsign_keystore *kstore;
static struct reqsign_keycache *kcache;
static struct reqsign_nonce_store *nstore;
static struct reqsign_verifier *verifier;
static const char BODY[] = "{\"hello\":\"world\",\"n\":12345}";

static struct reqsign_span S(const char *s) {
    struct reqsign_span r = {s, strlen(s)};
    return r;
}

/* Cover two structured fields too ("cache-status";sf, "priority";key="u"): the
 * base builder's parse of a structured field is on the verify's path. */
static void
sf_resign(struct rq *r, const struct reqsign_key *key)
{
    const char *p = strchr(r->s.signature_input, '(');
    cr_assert_not_null(p);
    snprintf(r->si, sizeof(r->si), "%.*s(\"cache-status\";sf \"priority\";key=\"u\" %s",
             (int)(p - r->s.signature_input), r->s.signature_input, p + 1);
    struct reqsign_sf_member m[2];
    struct reqsign_sf_item it[40];
    struct reqsign_sf_param pa[60];
    struct reqsign_sf_parsed sp = {m, 2, 0, it, 40, 0, pa, 60, 0};
    cr_assert_eq(reqsign_sf_parse_dict(r->si, strlen(r->si), &sp, NULL), REQSIGN_OK);
    r->h[r->n_h] = r->s.headers[0]; /* Content-Digest (of no content) */
    struct reqsign_request req = {S(r->method), S("https"), S("api.example"),
                                  S(r->target), r->h,       r->n_h + 1};
    char base[4096];
    size_t blen;
    struct reqsign_error err;
    reqsign_error_clear(&err);
    cr_assert_eq(reqsign_base_build(&req, &sp, &m[0], base, sizeof(base), &blen, &err), REQSIGN_OK,
                 "%s", err.message);
    uint8_t sig[64];
    cr_assert_eq(reqsign_key_sign(key, (const uint8_t *)base, blen, sig, NULL), REQSIGN_OK);
    char b64[100];
    size_t l;
    cr_assert_eq(reqsign_base64_encode(sig, 64, b64, sizeof(b64), &l), REQSIGN_OK);
    snprintf(r->sig, sizeof(r->sig), "sig1=:%s:", b64);
    r->s.headers[1] = (struct reqsign_header){S("Signature-Input"), S(r->si)};
    r->s.headers[2] = (struct reqsign_header){S("Signature"), S(r->sig)};
}

static void make_request(struct rq *r, size_t i)
{
    static char big[2600];
    if (big[0] == '\0') {
        memset(big, 'p', sizeof(big) - 1);
        big[0] = 'x';
    }
    memset(r, 0, sizeof(*r));
    r->kind = (enum kind)(i % K_COUNT);
    const struct reqsign_signer *sg = signers[i % NKEYS];
    int64_t created = NOW - 5;
    snprintf(r->method, sizeof(r->method), "GET");
    snprintf(r->target, sizeof(r->target), "/items/%zu?page=%zu", i, i % 7);
    r->want = REQSIGN_OK;
    switch (r->kind) {
    case K_POST256:
    case K_POST512:
    case K_BAD_DIGEST:
        snprintf(r->method, sizeof(r->method), "POST");
        r->body = BODY;
        r->body_len = strlen(BODY);
        if (r->kind == K_POST512)
            sg = signers[i % 2 == 0 ? 0 : 1]; /* both are made with sha-512 too */
        if (r->kind == K_BAD_DIGEST)
            r->want = REQSIGN_E_DIGEST_MISMATCH;
        break;
    case K_BIGBASE:
        snprintf(r->target, sizeof(r->target), "/%s/%zu?q=%s", big, i, big);
        break;
    case K_REPLAY:
        sg = signers[(i - 1) % NKEYS]; /* the keyid and nonce of request i - 1 */
        r->want = REQSIGN_E_REPLAY;
        break;
    case K_TAMPERED:
        r->want = REQSIGN_E_SIG_INVALID;
        break;
    case K_OLD:
        created = NOW - 3600;
        r->want = REQSIGN_E_SIG_TOO_OLD;
        break;
    case K_UNKNOWN_KEY:
        sg = signers[NKEYS];
        r->want = REQSIGN_E_KEY_UNKNOWN;
        break;
    case K_UNSIGNED:
        r->want = REQSIGN_E_SIG_MISSING;
        break;
    default:
        break;
    }
    char url[6100], nonce[64];
    snprintf(url, sizeof(url), "https://api.example%s", r->target);
    snprintf(nonce, sizeof(nonce), "nonce-%010zu-abcdef", r->kind == K_REPLAY ? i - 1 : i);
    struct reqsign_sign_input in = {.method = r->method,
                                    .url = url,
                                    .body = r->body,
                                    .body_len = r->body_len,
                                    .created = created,
                                    .nonce = nonce};
    struct reqsign_error err;
    reqsign_error_clear(&err);
    cr_assert_eq(reqsign_signer_sign(sg, &in, &r->s, &err), REQSIGN_OK, "%zu: %s", i, err.message);
    if (r->kind == K_TAMPERED)
        snprintf(r->target, sizeof(r->target), "/items/%zu?page=%zu", i + 1, i % 7);
    if (r->kind == K_BAD_DIGEST)
        r->body = "{\"hello\":\"World\",\"n\":12345}";
    r->h[r->n_h++] = (struct reqsign_header){S("Host"), S("api.example")};
    r->h[r->n_h++] = (struct reqsign_header){S("Content-Length"), S(r->body ? "27" : "0")};
    if (r->kind == K_SF) {
        r->h[r->n_h++] =
            (struct reqsign_header){S("Cache-Status"), S("ExampleCache; hit,  CDN;fwd=uri-miss")};
        r->h[r->n_h++] = (struct reqsign_header){S("Priority"), S("u=1,  i")};
        sf_resign(r, keys[i % NKEYS]);
    }
    if (r->kind != K_UNSIGNED) {
        for (size_t k = 0; k < r->s.n_headers; k++)
            if (r->s.headers[k].value.len > 0)
                r->h[r->n_h++] = r->s.headers[k];
    }
    r->req = (struct reqsign_request){S(r->method), S("https"), S("api.example"),
                                      S(r->target), r->h,       r->n_h};
}

static void setup(void)
{
    cr_assert_eq(ossl_hooked, 1, "CRYPTO_set_mem_functions() refused: OpenSSL allocated before");
    for (size_t i = 0; i <= NKEYS; i++) {
        struct reqsign_key *k = NULL;
        char keyid[16];
        snprintf(keyid, sizeof(keyid), "k%zu", i);
        cr_assert_not_null(k = reqsign_key_generate(NULL));
        struct reqsign_signer_opts so = {.key = k,
                                         .keyid = keyid,
                                         .clock = clock_fn,
                                         .digest_algs =
                                             i < 2 ? REQSIGN_DIGEST_SHA256 | REQSIGN_DIGEST_SHA512
                                                   : REQSIGN_DIGEST_SHA256};
        signers[i] = reqsign_signer_new(&so, NULL);
        cr_assert_not_null(signers[i]);
        if (i < NKEYS) {
            snprintf(records[i].keyid, sizeof(records[i].keyid), "%s", keyid);
            reqsign_key_public_raw(k, records[i].public_key);
            snprintf(records[i].scopes, sizeof(records[i].scopes), "read write");
        }
        keys[i] = k;
    }
    static const struct reqsign_keystore_ops kops = {
        .get = ks_get, .insert = ks_insert, .list = ks_list, .revoke = ks_revoke, .free = ks_free};
    kstore = reqsign_keystore_new(&kops, NULL, NULL);
    cr_assert_not_null(kstore);
    struct reqsign_keycache_opts ko = {.store = kstore, .clock = clock_fn};
    kcache = reqsign_keycache_new(&ko, NULL);
    cr_assert_not_null(kcache);
    static const struct reqsign_nonce_store_ops nops = {.check_insert = fixed_check_insert,
                                                        .free = fixed_free};
    nstore = reqsign_nonce_store_new(&nops, calloc(1, sizeof(struct fixed_nonces)), NULL);
    cr_assert_not_null(nstore);
    struct reqsign_verifier_opts vo = {.lookup = reqsign_keycache_lookup,
                                       .lookup_ctx = kcache,
                                       .nonces = nstore,
                                       .clock = clock_fn,
                                       .public_authority = "api.example"};
    struct reqsign_error err;
    reqsign_error_clear(&err);
    verifier = reqsign_verifier_new(&vo, &err);
    cr_assert_not_null(verifier, "%s", err.message);
    reqs = calloc(N_REQ, sizeof(*reqs));
    cr_assert_not_null(reqs);
    for (size_t i = 0; i < N_REQ; i++)
        make_request(&reqs[i], i);
}

static void teardown(void)
{
    reqsign_verifier_free(verifier);
    reqsign_nonce_store_free(nstore);
    reqsign_keycache_free(kcache);
    reqsign_keystore_free(kstore);
    for (size_t i = 0; i <= NKEYS; i++) {
        reqsign_signer_free(signers[i]);
        reqsign_key_free(keys[i]);
    }
    free(reqs);
}

/* Verify requests [from, to); every result as expected. */
static void run(size_t from, size_t to)
{
    for (size_t i = from; i < to; i++) {
        struct rq *r = &reqs[i];
        struct reqsign_verification vs;
        struct reqsign_error err;
        reqsign_error_clear(&err);
        reqsign_verification_init(&vs);
        enum reqsign_status st =
            reqsign_verifier_verify(verifier, &r->req, r->body, r->body_len, &vs, &err);
        reqsign_verification_cleanup(&vs);
        if (st != r->want)
            cr_assert_fail("request %zu (kind %d): %s, want %s: %s", i, (int)r->kind,
                           reqsign_errname(st), reqsign_errname(r->want), err.message);
    }
}

/* The first request of each kind on this thread: the thread's scratch block,
 * the key cache's entries (positive and negative), the backend's per-thread
 * verify contexts. */
#define WARM (2 * K_COUNT)

TestSuite(verify_alloc, .init = setup, .fini = teardown, .timeout = 240);

Test(verify_alloc, ten_thousand_mixed_verifies_allocate_nothing)
{
    run(0, WARM);
    /* the counter itself works (interposed or hooked) */
    n_alloc = 0;
    counting = 1;
    void *(*volatile alloc)(size_t) = malloc; /* not the builtin: a real call */
    void *volatile probe = alloc(24);
    counting = 0;
    free(probe);
    cr_assert_eq(n_alloc, 1, "the allocation counter does not count (%lu)", (unsigned long)n_alloc);
    n_alloc = n_ossl = 0;
    counting = 1;
    run(WARM, N_REQ);
    counting = 0;
    unsigned long verifies = N_REQ - WARM, own = n_alloc - n_ossl;
    unsigned long ossl_max =
        strcmp(reqsign_crypto_backend(), "openssl") == 0 ? REQSIGN_VERIFY_OPENSSL_ALLOCS : 0;
#ifdef REQSIGN_TEST_DIGEST_EVP
    ossl_max += 4; /* -Ddigest_api=evp: an EVP_MD_CTX and its provider context per algorithm */
#endif
    cr_log_info("%lu verifies (%s backend): %lu allocations by reqsign, %lu inside OpenSSL",
                verifies, reqsign_crypto_backend(), own, (unsigned long)n_ossl);
    cr_assert_eq(own, 0, "%lu allocations in %lu verifies outside OpenSSL", own, verifies);
    cr_assert_leq(n_ossl, ossl_max * verifies, "%lu allocations inside OpenSSL in %lu verifies",
                  (unsigned long)n_ossl, verifies);
}

/* ---- stack ---- */

#define TSTACK (1024 * 1024)
#define PAINT 0xA5

struct stack_run {
    unsigned char *mem;
    int verify;
};

static void *thread_main(void *p)
{
    struct stack_run *sr = p;
    if (sr->verify)
        run(0, 20 * K_COUNT);
    return NULL;
}

/* Bytes of the thread stack touched by a thread that verifies every request
 * (@verify) or returns at once. */
static size_t high_water(int verify)
{
    struct stack_run sr = {aligned_alloc(4096, TSTACK), verify};
    cr_assert_not_null(sr.mem);
    memset(sr.mem, PAINT, TSTACK);
    pthread_attr_t a;
    pthread_t t;
    cr_assert_eq(pthread_attr_init(&a), 0);
    cr_assert_eq(pthread_attr_setstack(&a, sr.mem, TSTACK), 0);
    cr_assert_eq(pthread_create(&t, &a, thread_main, &sr), 0);
    cr_assert_eq(pthread_join(t, NULL), 0);
    pthread_attr_destroy(&a);
    size_t lo = 0;
    while (lo < TSTACK && sr.mem[lo] == PAINT)
        lo++;
    free(sr.mem);
    return TSTACK - lo;
}

Test(verify_alloc, verify_stack_under_the_documented_bound)
{
    if (UNDER_ASAN)
        cr_skip_test("ASan redzones and fake stacks inflate frames; checked in the plain builds");
    size_t base = high_water(0);
    size_t used = high_water(1);
    size_t verify = used > base ? used - base : 0;
    cr_log_info("stack: %zu bytes by verify (thread baseline %zu)", verify, base);
    cr_assert_gt(verify, 1024, "the measure is broken: %zu bytes", verify);
    cr_assert_leq(verify, REQSIGN_VERIFY_STACK_MAX, "verify used %zu bytes of stack, bound %d",
                  verify, REQSIGN_VERIFY_STACK_MAX);
}
