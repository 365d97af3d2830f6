/* reqsign bench: verify pipeline vs raw verify (with a per-stage breakdown),
 * sign vs raw sign, and key lookup (cache hit vs the SQLite miss path).
 *
 *   bench-crypto [--quick] [--requests N] [--rounds R] [--dump FILE]
 *
 * Inputs: N distinct pre-signed requests (20,000; 2,000 with --quick) with
 * distinct nonces, paths and queries and bodies of 0..4096 bytes, signed by
 * 16 keys held in a SQLite key store behind the real key cache (warmed).
 * In every round, pipeline and baseline alternate in chunks of CHUNK requests
 * over the same inputs (which side goes first alternates too); each figure is
 * the median over rounds.
 *
 * --dump FILE: write the pre-signed requests, one JSON object a line (see
 * dump_requests()), and exit without benchmarking; bench/compare/ feeds them
 * to other RFC 9421 verifiers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include <reqsign/base.h>
#include <reqsign/base64.h>
#include <reqsign/digest.h>
#include <reqsign/keycache.h>
#include <reqsign/keystore_sqlite.h>
#include <reqsign/nonce.h>
#include <reqsign/sf.h>
#include <reqsign/verifier.h>

#include "bench_util.h"

#define CREATED 1700000000

static int64_t clock_fn(void *ctx)
{
    return *(const int64_t *)ctx;
}

static int64_t now_v = CREATED + 1;

struct env {
    struct bench_set set;
    struct reqsign_keystore *store;
    struct reqsign_keycache *cache;
    size_t rounds;
};

static struct reqsign_nonce_store *fresh_nonces(size_t n)
{
    struct reqsign_nonce_memory_opts no = {.max_entries = 4 * n + 1024, .per_key_max = 4 * n};
    struct reqsign_nonce_store *ns = reqsign_nonce_store_memory_new(&no, NULL);
    if (ns == NULL)
        bench_die("nonce store");
    return ns;
}

static struct reqsign_verifier *verifier_new(struct env *e, struct reqsign_nonce_store *ns)
{
    struct reqsign_error err;
    struct reqsign_verifier_opts vo = {.profile = REQSIGN_PROFILE_REQSIGN,
                                       .clock = clock_fn,
                                       .clock_ctx = &now_v,
                                       .lookup = reqsign_keycache_lookup,
                                       .lookup_ctx = e->cache,
                                       .nonces = ns,
                                       .public_authority = "api.example.com"};
    reqsign_error_clear(&err);
    struct reqsign_verifier *v = reqsign_verifier_new(&vo, &err);
    if (v == NULL)
        bench_die("verifier: %s", err.message);
    return v;
}

/* Pipeline and baseline alternate in chunks of this many requests (which one
 * goes first alternates too), so drift of the machine during a round (other
 * tenants, frequency) falls on both sides alike. */
#define CHUNK 250

/* The full two-phase pipeline over requests [a, b); returns ns. */
static uint64_t run_pipeline(struct env *e, const struct reqsign_verifier *v, size_t a, size_t b)
{
    struct reqsign_verification vs;
    struct reqsign_error err;
    uint64_t t0 = bench_now_ns();
    for (size_t i = a; i < b; i++) {
        const struct bench_req *r = &e->set.reqs[i];
        reqsign_verification_init(&vs);
        enum reqsign_status st = reqsign_verifier_verify_headers(v, &r->req, &vs, &err);
        if (st == REQSIGN_OK)
            st = reqsign_verification_body(&vs, r->body, r->body_len, &err);
        if (st == REQSIGN_OK)
            st = reqsign_verification_finish(&vs, &err);
        reqsign_verification_cleanup(&vs);
        if (st != REQSIGN_OK)
            bench_die("request %zu does not verify: %s", i, err.message);
    }
    return bench_now_ns() - t0;
}

static uint64_t run_raw_verify(struct env *e, struct bench_raw *raw, size_t a, size_t b)
{
    uint64_t t0 = bench_now_ns();
    for (size_t i = a; i < b; i++) {
        const struct bench_raw_req *r = &e->set.raw[i];
        if (bench_raw_verify(raw, r->key, r->sig, r->base, r->base_len) != 0)
            bench_die("raw verify failed on request %zu (library: %s, base %zu bytes)", i,
                      reqsign_errname(reqsign_ed25519_verify(r->sig, r->base, r->base_len,
                                                             e->set.keys[r->key].pk)),
                      r->base_len);
    }
    return bench_now_ns() - t0;
}

/* ---- stages, each over every request ---- */

struct parsed {
    struct reqsign_sf_member m[REQSIGN_SIGNATURES_IN_MAX];
    struct reqsign_sf_item i[REQSIGN_SIGNATURES_IN_MAX * REQSIGN_COMPONENTS_IN_MAX];
    struct reqsign_sf_param
        p[REQSIGN_SIGNATURES_IN_MAX * (REQSIGN_COMPONENTS_IN_MAX + REQSIGN_SIG_PARAMS_IN_MAX)];
    struct reqsign_sf_parsed sf;
};

static void parsed_init(struct parsed *p)
{
    struct reqsign_sf_parsed sf = {p->m, REQSIGN_SIGNATURES_IN_MAX,      0,
                                   p->i, sizeof(p->i) / sizeof(p->i[0]), 0,
                                   p->p, sizeof(p->p) / sizeof(p->p[0]), 0};
    p->sf = sf;
}

enum stage {
    ST_PARSE,
    ST_PARSE_BASE,
    ST_LOOKUP,
    ST_SIG_LIB,
    ST_SIG_PREPARED,
    ST_NONCE,
    ST_DIGEST,
    ST_N
};
static const char *const stage_names[ST_N] = {"parse",
                                              "parse_and_base",
                                              "key_lookup",
                                              "signature_library_raw_pk",
                                              "signature_prepared_key",
                                              "nonce_insert",
                                              "digest"};

static uint64_t run_stage(struct env *e, enum stage s, struct parsed *si, struct parsed *sg,
                          struct reqsign_nonce_store *ns, struct reqsign_key **prepared)
{
    struct reqsign_error err;
    char *base = malloc(REQSIGN_BASE_BUF);
    volatile size_t sink = 0;
    if (base == NULL)
        bench_die("out of memory");
    uint64_t t0 = bench_now_ns();
    for (size_t i = 0; i < e->set.n; i++) {
        const struct bench_req *r = &e->set.reqs[i];
        const struct bench_key *k = &e->set.keys[r->key];
        enum reqsign_status st = REQSIGN_OK;
        switch (s) {
        case ST_PARSE:
        case ST_PARSE_BASE: {
            const char *a = r->si_p, *b = r->sg_p;
            st = reqsign_sf_parse_dict(a, strlen(a), &si->sf, &err);
            if (st == REQSIGN_OK)
                st = reqsign_sf_parse_dict(b, strlen(b), &sg->sf, &err);
            if (st == REQSIGN_OK && s == ST_PARSE_BASE) {
                size_t n = 0;
                st = reqsign_base_build(&r->req, &si->sf, &si->sf.members[0], base,
                                        REQSIGN_BASE_BUF, &n, &err);
                sink += n;
            }
            break;
        }
        case ST_LOOKUP: {
            struct reqsign_key_info info;
            st = reqsign_keycache_lookup(e->cache, k->keyid, strlen(k->keyid), &info, &err);
            sink += info.public_key[0];
            break;
        }
        case ST_SIG_LIB:
            st = reqsign_ed25519_verify(e->set.raw[i].sig, e->set.raw[i].base,
                                        e->set.raw[i].base_len, k->pk);
            break;
        case ST_SIG_PREPARED:
            st = reqsign_key_verify(prepared[r->key], e->set.raw[i].sig, e->set.raw[i].base,
                                    e->set.raw[i].base_len, NULL);
            break;
        case ST_NONCE:
            st = reqsign_nonce_store_check_insert(ns, k->keyid, strlen(k->keyid), r->nonce_p,
                                                  strlen(r->nonce_p), now_v, now_v + 361, &err);
            break;
        case ST_DIGEST: {
            struct reqsign_digest_expect ex;
            struct reqsign_digest d;
            st = reqsign_content_digest_parse(r->cd_p, strlen(r->cd_p), &ex, &err);
            if (st == REQSIGN_OK)
                st = reqsign_digest_init(&d, ex.algs, NULL);
            if (st == REQSIGN_OK && r->body_len)
                st = reqsign_digest_update(&d, r->body, r->body_len, NULL);
            if (st == REQSIGN_OK)
                st = reqsign_content_digest_check(&d, &ex, &err);
            break;
        }
        case ST_N:
            break;
        }
        if (st != REQSIGN_OK)
            bench_die("stage %s failed on request %zu (%s)", stage_names[s], i,
                      reqsign_errname(st));
    }
    uint64_t t = bench_now_ns() - t0;
    free(base);
    (void)sink;
    return t;
}

/* SHA-256 of 4 KiB blocks, MB/s (shows whether OpenSSL uses SHA-NI). */
static double sha256_mbps(struct env *e)
{
    const size_t n = 4096, reps = 4000;
    uint8_t out[32];
    uint64_t t0 = bench_now_ns();
    for (size_t i = 0; i < reps; i++) {
        struct reqsign_digest d;
        if (reqsign_digest_init(&d, REQSIGN_DIGEST_SHA256, NULL) != REQSIGN_OK ||
            reqsign_digest_update(&d, e->set.bodies + (i % 64), n, NULL) != REQSIGN_OK ||
            reqsign_digest_final(&d, NULL, 0, NULL, out, NULL, NULL) != REQSIGN_OK)
            bench_die("sha256");
    }
    return (double)(n * reps) / ((double)(bench_now_ns() - t0) / 1e9) / 1e6;
}

static void bench_verify(struct env *e)
{
    const char *backend = bench_backend();
    int sodium = strcmp(backend, "libsodium") == 0;
    struct bench_raw *raw = bench_raw_new(&e->set, sodium);
    struct bench_raw *ossl = sodium ? bench_raw_new(&e->set, 0) : NULL;
    double pipe[64], base[64], ossl_rate[64];
    size_t R = e->rounds;

    /* warm up: one pass each (page faults, caches, lazy init) */
    {
        struct reqsign_nonce_store *ns = fresh_nonces(e->set.n);
        struct reqsign_verifier *v = verifier_new(e, ns);
        (void)run_pipeline(e, v, 0, e->set.n);
        reqsign_verifier_free(v);
        reqsign_nonce_store_free(ns);
        (void)run_raw_verify(e, raw, 0, e->set.n);
    }
    for (size_t r = 0; r < R; r++) {
        /* a fresh nonce store and verifier per round (outside the timing):
         * the requests are the same, their nonces must be new to the store */
        struct reqsign_nonce_store *ns = fresh_nonces(e->set.n);
        struct reqsign_verifier *v = verifier_new(e, ns);
        uint64_t tp = 0, tb = 0, to = 0;
        for (size_t a = 0, c = 0; a < e->set.n; a += CHUNK, c++) {
            size_t b = a + CHUNK < e->set.n ? a + CHUNK : e->set.n;
            if ((c + r) % 2 == 0) {
                tp += run_pipeline(e, v, a, b);
                tb += run_raw_verify(e, raw, a, b);
            } else {
                tb += run_raw_verify(e, raw, a, b);
                tp += run_pipeline(e, v, a, b);
            }
            if (ossl != NULL)
                to += run_raw_verify(e, ossl, a, b);
        }
        pipe[r] = (double)e->set.n / ((double)tp / 1e9);
        base[r] = (double)e->set.n / ((double)tb / 1e9);
        if (ossl != NULL)
            ossl_rate[r] = (double)e->set.n / ((double)to / 1e9);
        reqsign_verifier_free(v);
        reqsign_nonce_store_free(ns);
        fprintf(stderr, "  verify round %zu/%zu: pipeline %.0f/s raw %.0f/s\n", r + 1, R, pipe[r],
                base[r]);
    }

    /* stages */
    struct parsed *si = malloc(sizeof(*si)), *sg = malloc(sizeof(*sg));
    struct reqsign_key *prepared[BENCH_NKEYS];
    if (si == NULL || sg == NULL)
        bench_die("out of memory");
    parsed_init(si);
    parsed_init(sg);
    for (int i = 0; i < BENCH_NKEYS; i++)
        if ((prepared[i] = reqsign_key_from_public(e->set.keys[i].pk, NULL)) == NULL)
            bench_die("key_from_public");
    size_t SR = e->set.n < 5000 ? 1 : 5; /* --quick: one round */
    double st[ST_N][64];
    for (size_t r = 0; r < SR; r++) {
        for (int s = 0; s < ST_N; s++) {
            struct reqsign_nonce_store *ns = fresh_nonces(e->set.n);
            uint64_t t = run_stage(e, (enum stage)s, si, sg, ns, prepared);
            st[s][r] = (double)t / (double)e->set.n;
            reqsign_nonce_store_free(ns);
        }
    }
    for (int i = 0; i < BENCH_NKEYS; i++)
        reqsign_key_free(prepared[i]);
    free(si);
    free(sg);

    double p = bench_median(pipe, R), b = bench_median(base, R);
    /* the ratio is the median of per-round ratios: each round times the
     * pipeline and its baseline back to back, so machine noise that spans a
     * round cancels out */
    double rr[64];
    for (size_t r = 0; r < R; r++)
        rr[r] = pipe[r] / base[r];
    double ratio = bench_median(rr, R);
    json_t *stages = json_object();
    double sum = 0;
    double med[ST_N];
    for (int s = 0; s < ST_N; s++)
        med[s] = bench_min(st[s], SR);
    json_object_set_new(stages, "parse", json_real(med[ST_PARSE]));
    json_object_set_new(stages, "base", json_real(med[ST_PARSE_BASE] - med[ST_PARSE]));
    json_object_set_new(stages, "key_lookup", json_real(med[ST_LOOKUP]));
    json_object_set_new(stages, "signature", json_real(med[ST_SIG_LIB]));
    json_object_set_new(stages, "signature_prepared_key", json_real(med[ST_SIG_PREPARED]));
    json_object_set_new(stages, "nonce_insert", json_real(med[ST_NONCE]));
    json_object_set_new(stages, "digest", json_real(med[ST_DIGEST]));
    /* The breakdown is a diagnosis, not a target: every figure in it is the
     * best (lowest) of its rounds, the one least disturbed by other tenants,
     * so the stages, the raw verify and the pipeline total are comparable. */
    double best_p = 0, best_b = 0;
    for (size_t r = 0; r < R; r++) {
        best_p = pipe[r] > best_p ? pipe[r] : best_p;
        best_b = base[r] > best_b ? base[r] : best_b;
    }
    json_object_set_new(stages, "raw_verify", json_real(1e9 / best_b));
    sum = med[ST_PARSE_BASE] + med[ST_LOOKUP] + med[ST_NONCE] + med[ST_DIGEST] + 1e9 / best_b;
    json_object_set_new(stages, "pipeline_total", json_real(1e9 / best_p));
    json_object_set_new(stages, "other", json_real(1e9 / best_p - sum));

    json_t *o =
        json_pack("{s:s, s:s, s:f, s:s, s:f, s:f, s:I, s:I, s:o, s:f}", "name", "verify_pipeline",
                  "backend", backend, "per_sec", p, "baseline", "raw_verify", "baseline_per_sec", b,
                  "ratio", ratio, "requests", (json_int_t)e->set.n, "rounds", (json_int_t)R,
                  "stages_ns", stages, "sha256_4k_MBps", sha256_mbps(e));
    if (ossl != NULL) {
        double ob = bench_median(ossl_rate, R);
        json_object_set_new(o, "openssl_raw_verify_per_sec", json_real(ob));
        json_object_set_new(o, "ratio_vs_openssl_raw", json_real(p / ob));
    }
    bench_emit(o);
    bench_raw_free(raw);
    bench_raw_free(ossl);
}

static void bench_sign(struct env *e)
{
    const char *backend = bench_backend();
    struct bench_raw *raw = bench_raw_new(&e->set, strcmp(backend, "libsodium") == 0);
    double pipe[64], base[64], fresh[64], fbase[64];
    struct reqsign_signed *out = malloc(sizeof(*out));
    struct reqsign_error err;
    uint8_t sig[64];
    if (out == NULL)
        bench_die("out of memory");
    /* Two comparisons, each with the raw sign of the pre-signed bases,
     * interleaved in chunks (which side goes first alternating):
     * fresh = 0: the signer on the pre-signed request's inputs, nonce
     *    included, so it signs exactly the bases the raw side signs;
     * fresh = 1: the signer as an application calls it, with a fresh random
     *    nonce (bases of the same length, different nonce characters).
     * They run as separate passes, so neither warms the other's inputs. */
    char last_same[REQSIGN_SIGNATURE_OUT_BUF];
    last_same[0] = '\0';
    for (size_t r = 0; r <= e->rounds; r++) { /* round 0: warm-up */
        double rate[2][2];                    /* [fresh][0: signer, 1: raw] */
        for (int fr = 0; fr < 2; fr++) {
            uint64_t t[2] = {0, 0};
            for (size_t a = 0, c = 0; a < e->set.n; a += CHUNK, c++) {
                size_t b = a + CHUNK < e->set.n ? a + CHUNK : e->set.n;
                for (int pass = 0; pass < 2; pass++) {
                    int side = (int)((pass + c + r) % 2); /* 0: signer, 1: raw */
                    uint64_t t0 = bench_now_ns();
                    for (size_t i = a; i < b; i++) {
                        const struct bench_req *q = &e->set.reqs[i];
                        if (side == 0) {
                            struct reqsign_sign_input in = {.method = q->method,
                                                            .url = q->url_p,
                                                            .body = q->body,
                                                            .body_len = q->body_len,
                                                            .created = e->set.created,
                                                            .nonce = fr ? NULL : q->nonce_p};
                            out->base_buf = NULL; /* no debug copy of the base */
                            if (reqsign_signer_sign(e->set.keys[q->key].signer, &in, out, &err) !=
                                REQSIGN_OK)
                                bench_die("sign: %s", err.message);
                        } else if (bench_raw_sign(raw, e->set.raw[i].key, e->set.raw[i].base,
                                                  e->set.raw[i].base_len, sig) != 0) {
                            bench_die("raw sign");
                        }
                    }
                    t[side] += bench_now_ns() - t0;
                    if (side == 0 && !fr && b == e->set.n)
                        snprintf(last_same, sizeof(last_same), "%s", out->signature);
                }
            }
            rate[fr][0] = (double)e->set.n / ((double)t[0] / 1e9);
            rate[fr][1] = (double)e->set.n / ((double)t[1] / 1e9);
        }
        if (r == 0)
            continue;
        pipe[r - 1] = rate[0][0];
        base[r - 1] = rate[0][1];
        fresh[r - 1] = rate[1][0];
        fbase[r - 1] = rate[1][1];
        fprintf(stderr,
                "  sign round %zu/%zu: pipeline %.0f/s raw %.0f/s; fresh nonces %.0f/s "
                "raw %.0f/s\n",
                r, e->rounds, pipe[r - 1], base[r - 1], fresh[r - 1], fbase[r - 1]);
    }
    /* the last signature must equal the pre-signed one: same inputs */
    if (strcmp(last_same, e->set.reqs[e->set.n - 1].sd.signature) != 0)
        bench_die("sign: not the same signature for the same input");
    free(out);
    double p = bench_median(pipe, e->rounds), b = bench_median(base, e->rounds);
    double rr[64], rf[64];
    for (size_t r = 0; r < e->rounds; r++) {
        rr[r] = pipe[r] / base[r];
        rf[r] = fresh[r] / fbase[r];
    }
    /* where the signer's extra time goes: the Content-Digest of the body (the
     * raw signature over the base does not hash the body), timed alone */
    double dg[8];
    for (size_t r = 0; r < 3; r++) {
        char cd[REQSIGN_CONTENT_DIGEST_OUT_BUF];
        size_t len = 0;
        uint64_t t0 = bench_now_ns();
        for (size_t i = 0; i < e->set.n; i++) {
            const struct bench_req *q = &e->set.reqs[i];
            if (reqsign_content_digest(REQSIGN_DIGEST_SHA256, q->body, q->body_len, cd, sizeof(cd),
                                       &len, NULL) != REQSIGN_OK)
                bench_die("content digest");
        }
        dg[r] = (double)(bench_now_ns() - t0) / (double)e->set.n;
    }
    double ratio = bench_median(rr, e->rounds);
    double raw_ns = 1e9 / b, extra_ns = raw_ns / ratio - raw_ns, digest_ns = bench_median(dg, 3);
    bench_emit(json_pack("{s:s, s:s, s:f, s:s, s:f, s:f, s:I, s:I, s:{s:f, s:f, s:f, s:f}, "
                         "s:f, s:f, s:f}",
                         "name", "sign", "backend", backend, "per_sec", p, "baseline", "raw_sign",
                         "baseline_per_sec", b, "ratio", ratio, "requests", (json_int_t)e->set.n,
                         "rounds", (json_int_t)e->rounds, "stages_ns", "raw_sign", raw_ns, "extra",
                         extra_ns, "body_digest", digest_ns, "other", extra_ns - digest_ns,
                         "fresh_nonce_per_sec", bench_median(fresh, e->rounds),
                         "fresh_nonce_baseline_per_sec", bench_median(fbase, e->rounds),
                         "ratio_fresh_nonce", bench_median(rf, e->rounds)));
    bench_raw_free(raw);
}

static void bench_lookup(struct env *e)
{
    struct reqsign_error err;
    struct reqsign_key_info info;
    struct reqsign_key_record rec;
    size_t n = e->set.n * 5, nm = e->set.n / 4;
    double hit[64], miss[64], get[64];
    for (size_t r = 0; r < e->rounds; r++) {
        uint64_t t0 = bench_now_ns();
        for (size_t i = 0; i < n; i++) {
            const char *id = e->set.keys[i % BENCH_NKEYS].keyid;
            if (reqsign_keycache_lookup(e->cache, id, strlen(id), &info, &err) != REQSIGN_OK)
                bench_die("lookup: %s", err.message);
        }
        hit[r] = (double)(bench_now_ns() - t0) / (double)n;
        t0 = bench_now_ns();
        for (size_t i = 0; i < nm; i++) {
            const char *id = e->set.keys[i % BENCH_NKEYS].keyid;
            reqsign_keycache_invalidate(e->cache, id, strlen(id)); /* next lookup asks SQLite */
            if (reqsign_keycache_lookup(e->cache, id, strlen(id), &info, &err) != REQSIGN_OK)
                bench_die("lookup: %s", err.message);
        }
        miss[r] = (double)(bench_now_ns() - t0) / (double)nm;
        t0 = bench_now_ns();
        for (size_t i = 0; i < nm; i++) {
            const char *id = e->set.keys[i % BENCH_NKEYS].keyid;
            if (reqsign_keystore_get(e->store, id, strlen(id), &rec, &err) != REQSIGN_OK)
                bench_die("get: %s", err.message);
        }
        get[r] = (double)(bench_now_ns() - t0) / (double)nm;
    }
    double h = bench_median(hit, e->rounds), m = bench_median(miss, e->rounds);
    bench_emit(json_pack("{s:s, s:s, s:f, s:s, s:f, s:f, s:f, s:f, s:f, s:I}", "name", "key_lookup",
                         "backend", bench_backend(), "per_sec", 1e9 / h, "baseline", "sqlite_miss",
                         "baseline_per_sec", 1e9 / m, "ratio", m / h, "hit_ns", h, "miss_ns", m,
                         "store_get_ns", bench_median(get, e->rounds), "keys",
                         (json_int_t)BENCH_NKEYS));
}

/* base64 of @len bytes as a JSON string */
static json_t *json_b64(const uint8_t *p, size_t len)
{
    char buf[REQSIGN_BASE64_LEN(BENCH_BODY_MAX) + 1];
    size_t n = 0;
    if (reqsign_base64_encode(p, len, buf, sizeof(buf), &n) != REQSIGN_OK)
        bench_die("base64");
    return json_stringn(buf, n);
}

static json_t *json_span(struct reqsign_span s)
{
    return json_stringn(s.ptr, s.len);
}

/* One JSON object a line per pre-signed request: the request as a server
 * receives it (method, scheme, authority, target, header lines, body), the
 * signature base the signer signed, the signature and the signer's raw
 * Ed25519 public key. */
static void dump_requests(const struct bench_set *s, const char *path)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        bench_die("cannot write %s", path);
    for (size_t i = 0; i < s->n; i++) {
        const struct bench_req *r = &s->reqs[i];
        const struct bench_key *k = &s->keys[r->key];
        json_t *hdr = json_array();
        for (size_t j = 0; j < r->n_hdr; j++)
            if (json_array_append_new(hdr, json_pack("[o, o]", json_span(r->hdr[j].name),
                                                     json_span(r->hdr[j].value))) != 0)
                bench_die("cannot encode request %zu", i);
        json_t *o = json_pack(
            "{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:s, s:I}", "method",
            json_span(r->req.method), "scheme", json_span(r->req.scheme), "authority",
            json_span(r->req.authority), "target", json_span(r->req.target), "headers", hdr,
            "body_b64", json_b64(r->body, r->body_len), "base", json_stringn(r->base, r->base_len),
            "sig_b64", json_b64(r->sig, sizeof(r->sig)), "pk_b64", json_b64(k->pk, sizeof(k->pk)),
            "keyid", k->keyid, "created", (json_int_t)s->created);
        if (o == NULL || json_dumpf(o, f, JSON_COMPACT) != 0 || fputc('\n', f) == EOF)
            bench_die("cannot write request %zu to %s", i, path);
        json_decref(o);
    }
    if (fclose(f) != 0)
        bench_die("cannot write %s", path);
    fprintf(stderr, "bench-crypto: wrote %zu requests to %s\n", s->n, path);
}

int main(int argc, char **argv)
{
    int quick = bench_quick(argc, argv);
    struct env e;
    struct reqsign_error err;
    size_t n = quick ? 1000 : 20000;
    memset(&e, 0, sizeof(e));
    e.rounds = quick ? 3 : 10;
    if (bench_arg(argc, argv, "--requests") != NULL)
        n = strtoul(bench_arg(argc, argv, "--requests"), NULL, 10);
    if (bench_arg(argc, argv, "--rounds") != NULL)
        e.rounds = strtoul(bench_arg(argc, argv, "--rounds"), NULL, 10);
    if (e.rounds < 1 || e.rounds > 60 || n < 100)
        bench_die("bad --rounds or --requests");

    fprintf(stderr, "bench-crypto (%s backend): pre-signing %zu requests\n", bench_backend(), n);
    bench_keys_init(&e.set, CREATED);
    bench_reqs_make(&e.set, n, "api.example.com");
    if (bench_arg(argc, argv, "--dump") != NULL) {
        dump_requests(&e.set, bench_arg(argc, argv, "--dump"));
        bench_set_free(&e.set);
        return 0;
    }
    const char *dir = bench_tmpdir();
    char db[512];
    snprintf(db, sizeof(db), "%s/keys.db", dir);
    bench_keystore_fill(&e.set, db);
    reqsign_error_clear(&err);
    e.store = reqsign_keystore_sqlite_open(db, REQSIGN_KEYSTORE_READONLY, &err);
    if (e.store == NULL)
        bench_die("keystore: %s", err.message);
    struct reqsign_keycache_opts co = {.store = e.store,
                                       .positive_ttl = 1000000,
                                       .negative_ttl = 1000000,
                                       .clock = clock_fn,
                                       .clock_ctx = &now_v};
    e.cache = reqsign_keycache_new(&co, &err);
    if (e.cache == NULL)
        bench_die("keycache: %s", err.message);
    for (int i = 0; i < BENCH_NKEYS; i++) { /* warm the cache */
        struct reqsign_key_info info;
        const char *id = e.set.keys[i].keyid;
        if (reqsign_keycache_lookup(e.cache, id, strlen(id), &info, &err) != REQSIGN_OK)
            bench_die("lookup: %s", err.message);
    }

    bench_verify(&e);
    bench_sign(&e);
    bench_lookup(&e);

    reqsign_keycache_free(e.cache);
    reqsign_keystore_free(e.store);
    bench_rmdir(dir);
    bench_set_free(&e.set);
    return 0;
}
