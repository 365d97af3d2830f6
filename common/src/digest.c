/* reqsign: RFC 9530 Content-Digest, sha-256 and sha-512.
 *
 * Computing: struct reqsign_digest holds one hash state per algorithm,
 * inline (state[0] / ctx[0] sha-256, state[1] / ctx[1] sha-512; ctx[] only on
 * the EVP path, see crypto.h). The field value is written in
 * RFC 8941 canonical form, sha-512 first.
 *
 * Checking: the field is an RFC 8941 Dictionary (parsed with the zero-copy
 * parser into stack arrays); unknown algorithm keys and all parameters are
 * ignored; sha-256 / sha-512 must be Byte Sequences of exactly 32 / 64 bytes.
 * Digests are compared in constant time.
 */
#include <reqsign/base64.h>
#include <reqsign/digest.h>
#include <reqsign/sf.h>
#include <reqsign/util.h> /* reqsign_memzero */

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "crypto.h"

_Static_assert(sizeof(((struct reqsign_digest *)0)->state[0]) >= REQSIGN__HASH_STATE_SIZE,
               "struct reqsign_digest: state[] too small for crypto.h");

#define SRC "Content-Digest"
#define ALL_ALGS (REQSIGN_DIGEST_SHA256 | REQSIGN_DIGEST_SHA512)

/* Capacities of the parse of one Content-Digest field (stack arrays). */
#define CD_MAX_MEMBERS 64
#define CD_MAX_ITEMS 64
#define CD_MAX_PARAMS 64

struct alg_info {
    enum reqsign_digest_alg alg;
    enum reqsign__hash_alg hash;
    const char *key; /* the Dictionary key */
    size_t key_len;
    size_t len; /* digest bytes */
    int slot;   /* index in ctx[] */
};

/* In output order: sha-512 first (RFC 9530 lists the stronger first). */
static const struct alg_info algs_tab[2] = {
    {REQSIGN_DIGEST_SHA512, REQSIGN__SHA512, "sha-512", 7, REQSIGN_SHA512_LEN, 1},
    {REQSIGN_DIGEST_SHA256, REQSIGN__SHA256, "sha-256", 7, REQSIGN_SHA256_LEN, 0},
};

static enum reqsign_status digest_init_impl(struct reqsign_digest *d, unsigned algs)
{
    if (d == NULL)
        return REQSIGN_E_INVALID_ARG;
    memset(d, 0, sizeof(*d));
    if (algs == 0 || (algs & ~(unsigned)ALL_ALGS) != 0)
        return REQSIGN_E_INVALID_ARG;
    for (size_t i = 0; i < 2; i++) {
        const struct alg_info *a = &algs_tab[i];
        if (!(algs & a->alg))
            continue;
        if (reqsign__hash_start(d->state[a->slot], &d->ctx[a->slot], a->hash) != 0) {
            reqsign_digest_cleanup(d);
            return REQSIGN_E_NOMEM;
        }
    }
    d->algs = algs;
    return REQSIGN_OK;
}

static enum reqsign_status digest_update_impl(struct reqsign_digest *d, const void *data,
                                              size_t len)
{
    if (d == NULL || d->algs == 0 || (data == NULL && len > 0))
        return REQSIGN_E_INVALID_ARG;
    if (len == 0)
        return REQSIGN_OK;
    for (size_t i = 0; i < 2; i++) {
        const struct alg_info *a = &algs_tab[i];
        if (!(d->algs & a->alg))
            continue;
        if (reqsign__hash_update(d->state[a->slot], d->ctx[a->slot], data, len) != 0)
            return REQSIGN_E_CRYPTO;
    }
    d->total += (uint64_t)len;
    return REQSIGN_OK;
}

/* see reqsign/digest.h */
void reqsign_digest_cleanup(struct reqsign_digest *d)
{
    if (d == NULL)
        return;
    for (size_t i = 0; i < 2; i++)
        reqsign__hash_release(&d->ctx[i]);
    /* an unfinished state holds the input's last partial block (up to 127
     * bytes of a body that may be a private key sent by mistake) */
    reqsign_memzero(d->state, sizeof(d->state));
    d->algs = 0;
}

/* Finish every algorithm of @d into @raw256 / @raw512 and release @d. */
static enum reqsign_status finish(struct reqsign_digest *d, uint8_t raw256[REQSIGN_SHA256_LEN],
                                  uint8_t raw512[REQSIGN_SHA512_LEN])
{
    enum reqsign_status st = REQSIGN_OK;

    if ((d->algs & REQSIGN_DIGEST_SHA256) &&
        reqsign__hash_final(d->state[0], d->ctx[0], raw256) != 0)
        st = REQSIGN_E_CRYPTO;
    if ((d->algs & REQSIGN_DIGEST_SHA512) &&
        reqsign__hash_final(d->state[1], d->ctx[1], raw512) != 0)
        st = REQSIGN_E_CRYPTO;
    reqsign_digest_cleanup(d);
    return st;
}

/* Length of the field value for @algs (without NUL). */
static size_t value_len(unsigned algs)
{
    size_t n = 0;
    for (size_t i = 0; i < 2; i++) {
        const struct alg_info *a = &algs_tab[i];
        if (!(algs & a->alg))
            continue;
        if (n > 0)
            n += 2;                                           /* ", " */
        n += a->key_len + 2 + REQSIGN_BASE64_LEN(a->len) + 1; /* key=:b64: */
    }
    return n;
}

static enum reqsign_status digest_final_impl(struct reqsign_digest *d, char *out, size_t cap,
                                             size_t *out_len, uint8_t sha256[REQSIGN_SHA256_LEN],
                                             uint8_t sha512[REQSIGN_SHA512_LEN])
{
    uint8_t raw256[REQSIGN_SHA256_LEN], raw512[REQSIGN_SHA512_LEN];
    unsigned algs;
    size_t need, pos = 0;
    enum reqsign_status st;

    if (d == NULL)
        return REQSIGN_E_INVALID_ARG;
    algs = d->algs;
    if (algs == 0 || (out == NULL && cap > 0)) {
        reqsign_digest_cleanup(d);
        return REQSIGN_E_INVALID_ARG;
    }
    st = finish(d, raw256, raw512);
    if (st != REQSIGN_OK)
        return st;
    if (sha256 != NULL && (algs & REQSIGN_DIGEST_SHA256))
        memcpy(sha256, raw256, sizeof(raw256));
    if (sha512 != NULL && (algs & REQSIGN_DIGEST_SHA512))
        memcpy(sha512, raw512, sizeof(raw512));
    /* Raw digests are delivered and @d is released even if @out is too small. */
    need = value_len(algs);
    if (out_len != NULL)
        *out_len = need;
    if (out == NULL && cap == 0)
        return REQSIGN_OK; /* raw digests only */
    if (cap < need + 1)
        return REQSIGN_E_BUFFER_TOO_SMALL;
    for (size_t i = 0; i < 2; i++) {
        const struct alg_info *a = &algs_tab[i];
        size_t n = 0;
        if (!(algs & a->alg))
            continue;
        if (pos > 0) {
            memcpy(out + pos, ", ", 2);
            pos += 2;
        }
        memcpy(out + pos, a->key, a->key_len);
        pos += a->key_len;
        memcpy(out + pos, "=:", 2);
        pos += 2;
        st =
            reqsign_base64_encode(a->slot == 0 ? raw256 : raw512, a->len, out + pos, cap - pos, &n);
        if (st != REQSIGN_OK)
            return REQSIGN_E_INTERNAL;
        pos += n;
        out[pos++] = ':';
    }
    out[pos] = '\0';
    return REQSIGN_OK;
}

static enum reqsign_status content_digest_impl(unsigned algs, const void *body, size_t len,
                                               char *out, size_t cap, size_t *out_len)
{
    struct reqsign_digest d;
    enum reqsign_status st;

    st = reqsign_digest_init(&d, algs, NULL);
    if (st != REQSIGN_OK)
        return st;
    st = reqsign_digest_update(&d, body, len, NULL);
    if (st != REQSIGN_OK) {
        reqsign_digest_cleanup(&d);
        return st;
    }
    return reqsign_digest_final(&d, out, cap, out_len, NULL, NULL, NULL);
}

/* see reqsign/digest.h */
enum reqsign_status reqsign_content_digest_parse(const char *value, size_t len,
                                                 struct reqsign_digest_expect *out,
                                                 struct reqsign_error *err)
{
    reqsign_error_clear(err);
    struct reqsign_sf_member members[CD_MAX_MEMBERS];
    struct reqsign_sf_item items[CD_MAX_ITEMS];
    struct reqsign_sf_param params[CD_MAX_PARAMS];
    struct reqsign_sf_parsed p;
    struct reqsign_error perr;
    enum reqsign_status st;

    if (out == NULL || (value == NULL && len > 0))
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, SRC, REQSIGN_NO_OFFSET, NULL);
    memset(out, 0, sizeof(*out));
    if (len > REQSIGN_CONTENT_DIGEST_IN_MAX)
        return reqsign_error_set(err, REQSIGN_E_LIMIT, SRC, REQSIGN_NO_OFFSET,
                                 "Content-Digest is %zu bytes, more than the %d-byte limit", len,
                                 REQSIGN_CONTENT_DIGEST_IN_MAX);
    memset(&p, 0, sizeof(p));
    p.members = members;
    p.members_cap = CD_MAX_MEMBERS;
    p.items = items;
    p.items_cap = CD_MAX_ITEMS;
    p.params = params;
    p.params_cap = CD_MAX_PARAMS;
    reqsign_error_clear(&perr);
    st = reqsign_sf_parse_dict(value, len, &p, &perr);
    if (st == REQSIGN_E_LIMIT)
        return reqsign_error_set(err, REQSIGN_E_LIMIT, SRC, REQSIGN_NO_OFFSET,
                                 "Content-Digest has too many members or parameters (max %d)",
                                 CD_MAX_MEMBERS);
    if (st != REQSIGN_OK)
        return reqsign_error_set(err, REQSIGN_E_DIGEST_MALFORMED, SRC, perr.offset,
                                 "malformed Content-Digest at offset %zu: %s", perr.offset,
                                 perr.message[0] != '\0' ? perr.message : "structured field error");

    for (size_t i = 0; i < 2; i++) {
        const struct alg_info *a = &algs_tab[i];
        const struct reqsign_sf_member *m;
        uint8_t *dst = a->slot == 0 ? out->sha256 : out->sha512;
        uint8_t buf[REQSIGN_SHA512_LEN + 3];
        size_t n = 0, off;
        size_t idx;

        if (!reqsign_sf_dict_find(&p, a->key, a->key_len, &idx))
            continue;
        m = &p.members[idx];
        off = (size_t)(m->key.ptr - value);
        if (m->is_inner_list || m->value.type != REQSIGN_SF_BINARY) {
            memset(out, 0, sizeof(*out));
            return reqsign_error_set(err, REQSIGN_E_DIGEST_MALFORMED, SRC, off,
                                     "Content-Digest %s is not a byte sequence (offset %zu)",
                                     a->key, off);
        }
        if (m->value.wire && m->value.str.ptr != NULL && m->value.str.ptr > value)
            off = (size_t)(m->value.str.ptr - value) - 1; /* the opening ':' */
        /* strict profile: canonical base64 only, like the Signature value */
        st = reqsign_base64_decode(m->value.str.ptr, m->value.str.len, buf, sizeof(buf), &n, NULL);
        if (st != REQSIGN_OK && st != REQSIGN_E_BUFFER_TOO_SMALL) {
            memset(out, 0, sizeof(*out));
            return reqsign_error_set(err, REQSIGN_E_DIGEST_MALFORMED, SRC, off,
                                     "Content-Digest %s is not canonical base64 (offset %zu)",
                                     a->key, off);
        }
        if (st == REQSIGN_E_BUFFER_TOO_SMALL || n != a->len) {
            memset(out, 0, sizeof(*out));
            return reqsign_error_set(err, REQSIGN_E_DIGEST_MALFORMED, SRC, off,
                                     "Content-Digest %s is %zu bytes, want %zu (offset %zu)",
                                     a->key, n, a->len, off);
        }
        memcpy(dst, buf, a->len);
        out->algs |= a->alg;
    }
    if (out->algs == 0)
        return reqsign_error_set(err, REQSIGN_E_DIGEST_NO_KNOWN_ALG, SRC, REQSIGN_NO_OFFSET,
                                 "Content-Digest has neither sha-256 nor sha-512");
    return REQSIGN_OK;
}

/* see reqsign/digest.h */
enum reqsign_status reqsign_content_digest_check(struct reqsign_digest *d,
                                                 const struct reqsign_digest_expect *exp,
                                                 struct reqsign_error *err)
{
    reqsign_error_clear(err);
    uint8_t raw256[REQSIGN_SHA256_LEN], raw512[REQSIGN_SHA512_LEN];
    enum reqsign_status st;
    int ok256 = 1, ok512 = 1;

    if (d == NULL || exp == NULL)
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, SRC, REQSIGN_NO_OFFSET, NULL);
    if (exp->algs == 0 || (exp->algs & ~d->algs) != 0) {
        reqsign_digest_cleanup(d);
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, SRC, REQSIGN_NO_OFFSET,
                                 "digest context lacks an algorithm of the expected digests");
    }
    st = finish(d, raw256, raw512);
    if (st != REQSIGN_OK)
        return reqsign_error_set(err, st, SRC, REQSIGN_NO_OFFSET, "cannot finish the digest");
    /* Compare every algorithm present, no early exit. */
    if (exp->algs & REQSIGN_DIGEST_SHA512)
        ok512 = reqsign__memeq_ct(raw512, exp->sha512, sizeof(raw512));
    if (exp->algs & REQSIGN_DIGEST_SHA256)
        ok256 = reqsign__memeq_ct(raw256, exp->sha256, sizeof(raw256));
    if (!(ok256 & ok512))
        return reqsign_error_set(err, REQSIGN_E_DIGEST_MISMATCH, SRC, REQSIGN_NO_OFFSET,
                                 "content does not match Content-Digest %s",
                                 !ok512 && !ok256 ? "sha-512 and sha-256"
                                 : !ok512         ? "sha-512"
                                                  : "sha-256");
    return REQSIGN_OK;
}

/* see reqsign/digest.h */
enum reqsign_status reqsign_content_digest_file(const char *path, unsigned algs, char *out,
                                                size_t cap, size_t *out_len,
                                                struct reqsign_error *err)
{
    reqsign_error_clear(err);
    struct reqsign_digest d;
    enum reqsign_status st;
    char buf[65536];
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return reqsign_error_set(err, REQSIGN_E_IO, "body", REQSIGN_NO_OFFSET, "%s: %s", path,
                                 strerror(errno));
    st = reqsign_digest_init(&d, algs != 0 ? algs : REQSIGN_DIGEST_SHA256, NULL);
    if (st != REQSIGN_OK) {
        close(fd);
        return reqsign_error_set(err, st, "body", REQSIGN_NO_OFFSET, NULL);
    }
    for (;;) {
        ssize_t r = read(fd, buf, sizeof(buf));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            st = reqsign_error_set(err, REQSIGN_E_IO, "body", REQSIGN_NO_OFFSET, "%s: %s", path,
                                   strerror(errno));
            break;
        }
        if (r == 0)
            break;
        st = reqsign_digest_update(&d, buf, (size_t)r, NULL);
        if (st != REQSIGN_OK)
            break;
    }
    close(fd);
    if (st != REQSIGN_OK) {
        reqsign_digest_cleanup(&d);
        return st;
    }
    return reqsign_digest_final(&d, out, cap, out_len, NULL, NULL, err);
}

/* see reqsign/digest.h */
enum reqsign_status reqsign_digest_init(struct reqsign_digest *d, unsigned algs,
                                        struct reqsign_error *err)
{
    reqsign_error_clear(err);
    enum reqsign_status st = digest_init_impl(d, algs);
    if (st != REQSIGN_OK)
        return reqsign_error_set(err, st, "digest", REQSIGN_NO_OFFSET, NULL);
    return st;
}

/* see reqsign/digest.h */
enum reqsign_status reqsign_digest_update(struct reqsign_digest *d, const void *data, size_t len,
                                          struct reqsign_error *err)
{
    reqsign_error_clear(err);
    enum reqsign_status st = digest_update_impl(d, data, len);
    if (st != REQSIGN_OK)
        return reqsign_error_set(err, st, "digest", REQSIGN_NO_OFFSET, NULL);
    return st;
}

/* see reqsign/digest.h */
enum reqsign_status reqsign_digest_final(struct reqsign_digest *d, char *out, size_t cap,
                                         size_t *out_len, uint8_t sha256[REQSIGN_SHA256_LEN],
                                         uint8_t sha512[REQSIGN_SHA512_LEN],
                                         struct reqsign_error *err)
{
    reqsign_error_clear(err);
    enum reqsign_status st = digest_final_impl(d, out, cap, out_len, sha256, sha512);
    if (st != REQSIGN_OK)
        return reqsign_error_set(err, st, "digest", REQSIGN_NO_OFFSET, NULL);
    return st;
}

/* see reqsign/digest.h */
enum reqsign_status reqsign_content_digest(unsigned algs, const void *body, size_t len, char *out,
                                           size_t cap, size_t *out_len, struct reqsign_error *err)
{
    reqsign_error_clear(err);
    enum reqsign_status st = content_digest_impl(algs, body, len, out, cap, out_len);
    if (st != REQSIGN_OK)
        return reqsign_error_set(err, st, "digest", REQSIGN_NO_OFFSET, NULL);
    return st;
}
