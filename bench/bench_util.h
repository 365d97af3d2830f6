/* reqsign bench: shared helpers (timing, medians, JSON lines, test requests).
 *
 * Every bench program prints one JSON object per line on stdout (a
 * measurement) and progress on stderr; bench-report turns the lines of one
 * run into bench/results.json and BENCHMARKS.md.
 */
#ifndef REQSIGN_BENCH_UTIL_H
#define REQSIGN_BENCH_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include <reqsign/key.h>
#include <reqsign/keystore_sqlite.h>
#include <reqsign/request.h>
#include <reqsign/signer.h>

/* monotonic nanoseconds */
uint64_t bench_now_ns(void);
/* median of @n values (sorts a copy) */
double bench_median(const double *v, size_t n);
/* smallest of @n values */
double bench_min(const double *v, size_t n);
/* percentile @p (0..100) of @n values (sorts @v in place) */
double bench_percentile(double *v, size_t n, double p);
/* print @o as one line on stdout and release it */
void bench_emit(json_t *o);
/* abort with a message */
void bench_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* resident set size in bytes, from /proc/self/statm */
size_t bench_rss_bytes(void);
/* a fresh temporary directory (static buffer); removed by bench_rmdir() */
const char *bench_tmpdir(void);
void bench_rmdir(const char *dir);
/* 1 if argv holds "--quick" */
int bench_quick(int argc, char **argv);
/* value of "--name VALUE" or NULL */
const char *bench_arg(int argc, char **argv, const char *name);

/* ---- keys and pre-signed requests ---- */

#define BENCH_NKEYS 16
#define BENCH_BODY_MAX 4096

struct bench_key {
    uint8_t seed[REQSIGN_ED25519_SEED_LEN]; /* not a real secret: deterministic test key */
    uint8_t pk[REQSIGN_ED25519_PUBLIC_LEN];
    char keyid[REQSIGN_THUMBPRINT_BUF];
    struct reqsign_key *key;
    struct reqsign_signer *signer;
};

struct bench_req {
    const char *method;
    char target[192]; /* origin-form */
    char url[320];
    const uint8_t *body;
    size_t body_len;
    int key;
    char clen[24];
    struct reqsign_signed sd;
    struct reqsign_header hdr[8];
    size_t n_hdr;
    struct reqsign_request req; /* the request as a server receives it */
    char *base;                 /* the signature base the signer signed */
    size_t base_len;
    uint8_t sig[REQSIGN_ED25519_SIG_LEN];
    const char *url_p;   /* in the request's block: url, nonce and */
    const char *nonce_p; /* the three signature fields' values */
    const char *cd_p, *si_p, *sg_p;
};

/* What the raw baseline reads for one request, apart from the requests. */
struct bench_raw_req {
    const uint8_t *base;
    size_t base_len;
    const uint8_t *sig;
    int key;
};

struct bench_set {
    struct bench_key keys[BENCH_NKEYS];
    uint8_t *bodies; /* random bytes the bodies point into */
    struct bench_req *reqs;
    struct bench_raw_req *raw; /* [n] */
    char *req_arena, *raw_arena;
    size_t n;
    int64_t created;
    char authority[64];
};

/* Make BENCH_NKEYS deterministic keys and their signers (clock: @created). */
void bench_keys_init(struct bench_set *s, int64_t created);
/* Pre-sign @n distinct requests for http://@authority (distinct nonces, paths,
 * queries; bodies of 0..4096 bytes), recording each signature base and signature.
 * Each request's bytes (target, header values, URL, nonce) are then laid out
 * in one contiguous block, as a server holds a request it has just read, and
 * the bases and signatures that the raw baseline reads in a separate arena
 * (s->raw), so that neither side's reads warm the other's data. */
void bench_reqs_make(struct bench_set *s, size_t n, const char *authority);
enum bench_reqs_kind {
    BENCH_REQS_API,        /* GET/POST/PUT to /v1/<thing>/..., bodies 0..4096 bytes */
    BENCH_REQS_KEYSERVICE, /* GET /v1/keys/<the signing key's keyid> (reqsignd) */
};
void bench_reqs_make_kind(struct bench_set *s, size_t n, const char *authority,
                          enum bench_reqs_kind kind);
/* Write the keys into a new SQLite key store at @path (scopes
 * "orders:read orders:write", or @scopes). */
void bench_keystore_fill(struct bench_set *s, const char *path);
void bench_keystore_fill_scopes(struct bench_set *s, const char *path, const char *scopes);
void bench_set_free(struct bench_set *s);

/* The backend's best raw calls, outside the library (EVP_PKEY / secret key
 * made once per key). */
struct bench_raw;
struct bench_raw *bench_raw_new(const struct bench_set *s, int sodium);
int bench_raw_verify(struct bench_raw *r, int key, const uint8_t sig[64], const uint8_t *msg,
                     size_t len);
int bench_raw_sign(struct bench_raw *r, int key, const uint8_t *msg, size_t len, uint8_t sig[64]);
void bench_raw_free(struct bench_raw *r);
/* 1 if this build can run the libsodium raw calls */
int bench_have_sodium(void);
/* "openssl" or "libsodium": the library's Ed25519 backend */
const char *bench_backend(void);

/* ---- requests on the wire ---- */

/* One request's bytes as a client sends them (malloc'd). */
struct bench_wire {
    char *buf;
    size_t len;
};
/* @r as HTTP/1.1 bytes for Host @authority: signed, or (@sign 0) to
 * /unsigned<target> without the signature fields and Content-Digest. */
struct bench_wire bench_wire_of(const struct bench_req *r, const char *authority, int sign);
/* GET @path for Host @authority, no other field. */
struct bench_wire bench_wire_get(const char *path, const char *authority);
/* A TCP connection to 127.0.0.1:@port with TCP_NODELAY; aborts on failure. */
int bench_connect(int port);

#endif
