/* reqsign: Ed25519 keys: load, generate, export, identify, sign, verify.
 *
 * A key is its 32-byte public key, a parsed public handle (cached so that
 * verification does not re-parse the key) and, optionally, the backend's
 * private key handle. Everything cryptographic goes through crypto.h.
 *
 * Secrets: every buffer that held private material (file contents, decoded
 * DER, seeds, JWK "d" text and bytes) is wiped with reqsign__wipe()
 * (OPENSSL_cleanse) on every path. Residual risk: jansson's lexer copies a
 * JWK's text into internal buffers that it frees without wiping; we wipe the
 * decoded "d" string jansson hands us, but not jansson's scratch copies.
 */
#include <reqsign/base64.h>
#include <reqsign/key.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "crypto.h"

#define SRC "key"

struct reqsign_key {
    uint8_t pk[REQSIGN_ED25519_PUBLIC_LEN]; /* public */
    struct reqsign__ed25519_pub *pub;       /* parsed pk, for verify */
    struct reqsign__ed25519_priv *priv;     /* NULL: public only; secret */
};

/* DER prefixes of the only two containers Ed25519 keys come in (RFC 8410). */
static const uint8_t spki_prefix[12] = {0x30, 0x2a, 0x30, 0x05, 0x06, 0x03,
                                        0x2b, 0x65, 0x70, 0x03, 0x21, 0x00};
static const uint8_t pkcs8_prefix[16] = {0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06,
                                         0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20};

/* see reqsign/key.h */
size_t reqsign_ed25519_sig_len(void)
{
    return REQSIGN_ED25519_SIG_LEN;
}

/* see reqsign/key.h */
size_t reqsign_ed25519_public_len(void)
{
    return REQSIGN_ED25519_PUBLIC_LEN;
}

/* ---- construction ---- */

/* A key from @pk and @priv (ownership of @priv passes; freed on failure). */
static enum reqsign_status key_new(const uint8_t pk[REQSIGN_ED25519_PUBLIC_LEN],
                                   struct reqsign__ed25519_priv *priv, struct reqsign_key **out,
                                   struct reqsign_error *err)
{
    struct reqsign_key *k = calloc(1, sizeof(*k));
    if (k == NULL) {
        reqsign__ed25519_priv_free(priv);
        return reqsign_error_set(err, REQSIGN_E_NOMEM, SRC, REQSIGN_NO_OFFSET, NULL);
    }
    memcpy(k->pk, pk, REQSIGN_ED25519_PUBLIC_LEN);
    k->priv = priv;
    k->pub = reqsign__ed25519_pub_new(pk);
    if (k->pub == NULL) {
        reqsign_key_free(k);
        return reqsign_error_set(err, REQSIGN_E_CRYPTO, SRC, REQSIGN_NO_OFFSET,
                                 "cannot use the Ed25519 public key");
    }
    *out = k;
    return REQSIGN_OK;
}

/* A private key from @seed (not wiped here: the caller owns it). */
static enum reqsign_status key_from_seed(const uint8_t seed[REQSIGN_ED25519_SEED_LEN],
                                         struct reqsign_key **out, struct reqsign_error *err)
{
    uint8_t pk[REQSIGN_ED25519_PUBLIC_LEN]; /* public */
    struct reqsign__ed25519_priv *priv = reqsign__ed25519_priv_new(seed, pk);
    if (priv == NULL)
        return reqsign_error_set(err, REQSIGN_E_CRYPTO, SRC, REQSIGN_NO_OFFSET,
                                 "cannot make an Ed25519 key from the seed");
    return key_new(pk, priv, out, err);
}

/* reqsign_key_from_public(), returning a status and the key in *@out. */
static enum reqsign_status key_from_public_st(const uint8_t pk[REQSIGN_ED25519_PUBLIC_LEN],
                                              struct reqsign_key **out, struct reqsign_error *err)
{
    reqsign_error_clear(err);
    if (out == NULL || pk == NULL)
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, SRC, REQSIGN_NO_OFFSET, NULL);
    *out = NULL;
    return key_new(pk, NULL, out, err);
}

/* reqsign_key_from_seed(), returning a status and the key in *@out. */
static enum reqsign_status key_from_seed_st(const uint8_t seed[REQSIGN_ED25519_SEED_LEN],
                                            struct reqsign_key **out, struct reqsign_error *err)
{
    reqsign_error_clear(err);
    if (out == NULL || seed == NULL)
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, SRC, REQSIGN_NO_OFFSET, NULL);
    *out = NULL;
    return key_from_seed(seed, out, err);
}

/* reqsign_key_generate(), returning a status and the key in *@out. */
static enum reqsign_status key_generate_st(struct reqsign_key **out, struct reqsign_error *err)
{
    reqsign_error_clear(err);
    uint8_t pk[REQSIGN_ED25519_PUBLIC_LEN]; /* public */
    struct reqsign__ed25519_priv *priv;

    if (out == NULL)
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, SRC, REQSIGN_NO_OFFSET, NULL);
    *out = NULL;
    priv = reqsign__ed25519_keygen(pk);
    if (priv == NULL)
        return reqsign_error_set(err, REQSIGN_E_RANDOM, SRC, REQSIGN_NO_OFFSET,
                                 "cannot generate an Ed25519 key");
    return key_new(pk, priv, out, err);
}

/* see reqsign/key.h */
void reqsign_key_free(struct reqsign_key *key)
{
    if (key == NULL)
        return;
    reqsign__ed25519_priv_free(key->priv);
    reqsign__ed25519_pub_free(key->pub);
    reqsign__wipe(key, sizeof(*key));
    free(key);
}

/* see reqsign/key.h */
struct reqsign_key *reqsign_key_dup(const struct reqsign_key *key, struct reqsign_error *err)
{
    reqsign_error_clear(err);
    struct reqsign_key *copy = NULL;
    uint8_t seed[REQSIGN_ED25519_SEED_LEN]; /* secret */

    if (key == NULL) {
        reqsign_error_set(err, REQSIGN_E_INVALID_ARG, SRC, REQSIGN_NO_OFFSET, "no key");
        return NULL;
    }
    if (key->priv == NULL) {
        if (key_new(key->pk, NULL, &copy, err) != REQSIGN_OK)
            return NULL;
        return copy;
    }
    if (reqsign__ed25519_priv_seed(key->priv, seed) != 0) {
        reqsign_error_set(err, REQSIGN_E_CRYPTO, SRC, REQSIGN_NO_OFFSET, "cannot copy the key");
        return NULL;
    }
    if (key_from_seed(seed, &copy, err) != REQSIGN_OK)
        copy = NULL;
    reqsign__wipe(seed, sizeof(seed));
    return copy;
}

/* see reqsign/key.h */
bool reqsign_key_has_private(const struct reqsign_key *key)
{
    return key != NULL && key->priv != NULL;
}

/* see reqsign/key.h */
void reqsign_key_public_raw(const struct reqsign_key *key, uint8_t pk[REQSIGN_ED25519_PUBLIC_LEN])
{
    if (pk == NULL)
        return;
    if (key == NULL) {
        memset(pk, 0, REQSIGN_ED25519_PUBLIC_LEN);
        return;
    }
    memcpy(pk, key->pk, REQSIGN_ED25519_PUBLIC_LEN);
}

/* ---- loading ---- */

/* Decode exactly 32 bytes of strict base64url from a JWK member. */
static enum reqsign_status jwk_b64_32(json_t *v, const char *member, uint8_t out[32],
                                      struct reqsign_error *err)
{
    size_t n = 0;
    enum reqsign_status st;

    if (!json_is_string(v))
        return reqsign_error_set(err, REQSIGN_E_KEY_FORMAT, SRC, REQSIGN_NO_OFFSET,
                                 "JWK \"%s\" is not a string", member);
    st = reqsign_base64url_decode(json_string_value(v), json_string_length(v), out, 32, &n, NULL);
    if (st == REQSIGN_E_BUFFER_TOO_SMALL || (st == REQSIGN_OK && n != 32)) {
        reqsign__wipe(out, 32);
        return reqsign_error_set(err, REQSIGN_E_KEY_FORMAT, SRC, REQSIGN_NO_OFFSET,
                                 "JWK \"%s\" does not decode to 32 bytes", member);
    }
    if (st != REQSIGN_OK) {
        reqsign__wipe(out, 32);
        return reqsign_error_set(err, REQSIGN_E_KEY_FORMAT, SRC, REQSIGN_NO_OFFSET,
                                 "JWK \"%s\" is not strict unpadded base64url", member);
    }
    return REQSIGN_OK;
}

/* Wipe the text of a JSON string in place (jansson owns it; it is not const to us). */
static void json_string_wipe(json_t *v)
{
    if (json_is_string(v))
        reqsign__wipe((char *)(uintptr_t)json_string_value(v), json_string_length(v));
}

static int json_str_is(json_t *v, const char *s)
{
    size_t n = strlen(s);
    return json_string_length(v) == n && memcmp(json_string_value(v), s, n) == 0;
}

/* RFC 8037 OKP / Ed25519 JWK. */
static enum reqsign_status decode_jwk(const uint8_t *data, size_t len,
                                      struct reqsign__decoded_key *out, struct reqsign_error *err)
{
    json_error_t jerr;
    json_t *root, *kty, *crv, *x, *d;
    uint8_t derived[REQSIGN_ED25519_PUBLIC_LEN]; /* public */
    enum reqsign_status st = REQSIGN_OK;

    memset(out, 0, sizeof(*out));
    root = json_loadb((const char *)data, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) /* jerr.text may quote the input: not copied */
        return reqsign_error_set(err, REQSIGN_E_KEY_FORMAT, SRC,
                                 jerr.position >= 0 ? (size_t)jerr.position : REQSIGN_NO_OFFSET,
                                 "JWK is not valid JSON (line %d, column %d)", jerr.line,
                                 jerr.column);
    d = json_object_get(root, "d");
    if (!json_is_object(root)) {
        st = reqsign_error_set(err, REQSIGN_E_KEY_FORMAT, SRC, REQSIGN_NO_OFFSET,
                               "JWK is not a JSON object");
        goto done;
    }
    kty = json_object_get(root, "kty");
    crv = json_object_get(root, "crv");
    x = json_object_get(root, "x");
    if (!json_is_string(kty)) {
        st = reqsign_error_set(err, REQSIGN_E_KEY_FORMAT, SRC, REQSIGN_NO_OFFSET,
                               json_object_get(root, "keys") != NULL
                                   ? "JWK Sets are not supported: give a single JWK"
                                   : "JWK has no \"kty\" string");
        goto done;
    }
    if (!json_str_is(kty, "OKP")) {
        st = reqsign_error_set(err, REQSIGN_E_KEY_TYPE, SRC, REQSIGN_NO_OFFSET,
                               "JWK kty \"%.16s\" is not an Ed25519 key (want \"OKP\")",
                               json_string_value(kty));
        goto done;
    }
    if (!json_is_string(crv)) {
        st = reqsign_error_set(err, REQSIGN_E_KEY_FORMAT, SRC, REQSIGN_NO_OFFSET,
                               "OKP JWK has no \"crv\" string");
        goto done;
    }
    if (!json_str_is(crv, "Ed25519")) {
        st = reqsign_error_set(err, REQSIGN_E_KEY_TYPE, SRC, REQSIGN_NO_OFFSET,
                               "JWK crv \"%.16s\" is not Ed25519", json_string_value(crv));
        goto done;
    }
    if (x == NULL) {
        st = reqsign_error_set(err, REQSIGN_E_KEY_FORMAT, SRC, REQSIGN_NO_OFFSET,
                               "Ed25519 JWK has no \"x\" (RFC 8037 requires it)");
        goto done;
    }
    st = jwk_b64_32(x, "x", out->pk, err);
    if (st != REQSIGN_OK)
        goto done;
    if (d != NULL) {
        st = jwk_b64_32(d, "d", out->seed, err);
        if (st != REQSIGN_OK)
            goto done;
        out->has_private = 1;
        if (reqsign__ed25519_public_from_seed(out->seed, derived) != 0) {
            st = reqsign_error_set(err, REQSIGN_E_CRYPTO, SRC, REQSIGN_NO_OFFSET,
                                   "cannot derive the public key of JWK \"d\"");
            goto done;
        }
        if (!reqsign__memeq_ct(derived, out->pk, sizeof(derived))) {
            st = reqsign_error_set(err, REQSIGN_E_KEY_FORMAT, SRC, REQSIGN_NO_OFFSET,
                                   "JWK \"x\" is not the public key of \"d\"");
            goto done;
        }
    }
done:
    json_string_wipe(d);
    json_decref(root);
    if (st != REQSIGN_OK)
        reqsign__wipe(out, sizeof(*out));
    return st;
}

static int is_space(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* 1 if a line of @data starts with "-----BEGIN ". */
static int find_pem_begin(const uint8_t *data, size_t len)
{
    static const char tag[] = "-----BEGIN ";
    const size_t tl = sizeof(tag) - 1;

    for (size_t i = 0; i + tl <= len; i++) {
        if ((i == 0 || data[i - 1] == '\n' || is_space(data[i - 1])) &&
            memcmp(data + i, tag, tl) == 0)
            return 1;
    }
    return 0;
}

/* Auto-detect and decode. Formats by shape: exactly 32 bytes is raw (no
 * other format can be that short); then JSON object, PEM, DER. */
static enum reqsign_status decode_any(const uint8_t *data, size_t len, unsigned flags,
                                      struct reqsign__decoded_key *out, struct reqsign_error *err)
{
    size_t i = 0;

    memset(out, 0, sizeof(*out));
    if (len == 0)
        return reqsign_error_set(err, REQSIGN_E_KEY_FORMAT, SRC, REQSIGN_NO_OFFSET, "empty key");
    if (len > REQSIGN_KEY_FILE_IN_MAX)
        return reqsign_error_set(err, REQSIGN_E_LIMIT, SRC, REQSIGN_NO_OFFSET,
                                 "key is %zu bytes, more than the %d-byte limit", len,
                                 REQSIGN_KEY_FILE_IN_MAX);
    if (len == REQSIGN_ED25519_PUBLIC_LEN) {
        if (flags & REQSIGN_KEY_RAW_PRIVATE) {
            memcpy(out->seed, data, REQSIGN_ED25519_SEED_LEN);
            out->has_private = 1;
            if (reqsign__ed25519_public_from_seed(out->seed, out->pk) != 0) {
                reqsign__wipe(out, sizeof(*out));
                return reqsign_error_set(err, REQSIGN_E_CRYPTO, SRC, REQSIGN_NO_OFFSET,
                                         "cannot derive the public key of the raw seed");
            }
        } else {
            memcpy(out->pk, data, REQSIGN_ED25519_PUBLIC_LEN);
        }
        return REQSIGN_OK;
    }
    while (i < len && is_space(data[i]))
        i++;
    if (i < len && data[i] == '{')
        return decode_jwk(data, len, out, err);
    /* PEM, possibly after explanatory text (as `openssl pkcs12` writes). */
    if (find_pem_begin(data, len))
        return reqsign__key_decode_pem(data, len, out, err);
    return reqsign__key_decode_der(data, len, out, err);
}

/* Make the key from a decoded container; applies REQUIRE_PRIVATE. */
static enum reqsign_status key_from_decoded(const struct reqsign__decoded_key *dk, unsigned flags,
                                            struct reqsign_key **out, struct reqsign_error *err)
{
    if (!dk->has_private) {
        if (flags & REQSIGN_KEY_REQUIRE_PRIVATE)
            return reqsign_error_set(err, REQSIGN_E_KEY_NOT_PRIVATE, SRC, REQSIGN_NO_OFFSET,
                                     "a private key is required but this is a public key");
        return key_new(dk->pk, NULL, out, err);
    }
    return key_from_seed(dk->seed, out, err);
}

/* reqsign_key_load_mem(), returning a status and the key in *@out. */
static enum reqsign_status key_load_mem_st(const void *data, size_t len, unsigned flags,
                                           struct reqsign_key **out, struct reqsign_error *err)
{
    reqsign_error_clear(err);
    struct reqsign__decoded_key dk; /* secret */
    enum reqsign_status st;

    if (out == NULL || (data == NULL && len > 0))
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, SRC, REQSIGN_NO_OFFSET, NULL);
    *out = NULL;
    st = decode_any(data, len, flags, &dk, err);
    if (st == REQSIGN_OK)
        st = key_from_decoded(&dk, flags, out, err);
    reqsign__wipe(&dk, sizeof(dk));
    return st;
}

static const char *errno_text(int e)
{
    switch (e) {
    case ENOENT:
        return "no such file or directory";
    case EACCES:
        return "permission denied";
    case ELOOP:
        return "too many symbolic links";
    case EISDIR:
        return "is a directory";
    case ENOTDIR:
        return "a path component is not a directory";
    case ENAMETOOLONG:
        return "file name too long";
    case EMFILE:
    case ENFILE:
        return "too many open files";
    case ENOMEM:
        return "out of memory";
    case EIO:
        return "input/output error";
    default:
        return "system error";
    }
}

/* Read the whole regular file @fd into a fresh buffer of REQSIGN_KEY_FILE_IN_MAX + 1
 * bytes (the caller wipes and frees it). */
static enum reqsign_status read_fd(int fd, const char *path, uint8_t **buf_out, size_t *len_out,
                                   mode_t *mode_out, struct reqsign_error *err)
{
    struct stat st;
    uint8_t *buf;
    size_t n = 0;
    const size_t cap = (size_t)REQSIGN_KEY_FILE_IN_MAX + 1;

    if (fstat(fd, &st) != 0)
        return reqsign_error_set(err, REQSIGN_E_IO, SRC, REQSIGN_NO_OFFSET, "cannot stat %s: %s",
                                 path, errno_text(errno));
    if (!S_ISREG(st.st_mode))
        return reqsign_error_set(err, REQSIGN_E_IO, SRC, REQSIGN_NO_OFFSET,
                                 "%s is not a regular file", path);
    if (st.st_size > (off_t)REQSIGN_KEY_FILE_IN_MAX)
        return reqsign_error_set(err, REQSIGN_E_LIMIT, SRC, REQSIGN_NO_OFFSET,
                                 "key file %s is %lld bytes, more than the %d-byte limit", path,
                                 (long long)st.st_size, REQSIGN_KEY_FILE_IN_MAX);
    buf = malloc(cap);
    if (buf == NULL)
        return reqsign_error_set(err, REQSIGN_E_NOMEM, SRC, REQSIGN_NO_OFFSET, NULL);
    while (n < cap) {
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0) {
            int e = errno;
            if (e == EINTR)
                continue;
            reqsign__wipe(buf, cap);
            free(buf);
            return reqsign_error_set(err, REQSIGN_E_IO, SRC, REQSIGN_NO_OFFSET,
                                     "cannot read %s: %s", path, errno_text(e));
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    if (n > REQSIGN_KEY_FILE_IN_MAX) { /* grew after fstat */
        reqsign__wipe(buf, cap);
        free(buf);
        return reqsign_error_set(err, REQSIGN_E_LIMIT, SRC, REQSIGN_NO_OFFSET,
                                 "key file %s is more than the %d-byte limit", path,
                                 REQSIGN_KEY_FILE_IN_MAX);
    }
    *buf_out = buf;
    *len_out = n;
    *mode_out = st.st_mode;
    return REQSIGN_OK;
}

/* reqsign_key_load_file(), returning a status and the key in *@out. */
static enum reqsign_status key_load_file_st(const char *path, unsigned flags,
                                            struct reqsign_key **out, struct reqsign_error *err)
{
    reqsign_error_clear(err);
    struct reqsign__decoded_key dk; /* secret */
    uint8_t *buf = NULL;            /* secret: the file */
    size_t len = 0;
    mode_t mode = 0;
    enum reqsign_status st;
    int fd;

    if (out == NULL || path == NULL)
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, SRC, REQSIGN_NO_OFFSET, NULL);
    *out = NULL;
    memset(&dk, 0, sizeof(dk));
    /* Symbolic links are followed; the checks below apply to the file opened. */
    do {
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return reqsign_error_set(err, REQSIGN_E_IO, SRC, REQSIGN_NO_OFFSET, "cannot open %s: %s",
                                 path, errno_text(errno));
    st = read_fd(fd, path, &buf, &len, &mode, err);
    close(fd);
    if (st != REQSIGN_OK)
        return st;
    st = decode_any(buf, len, flags, &dk, err);
    if (st == REQSIGN_OK && dk.has_private && (mode & 077) != 0 &&
        !(flags & REQSIGN_KEY_ALLOW_PERMISSIVE))
        st = reqsign_error_set(err, REQSIGN_E_KEY_PERMISSIONS, SRC, REQSIGN_NO_OFFSET,
                               "permissions %04o for private key file %s are too open: it must "
                               "not be accessible by group or others; fix with `chmod 600 %s`",
                               (unsigned)(mode & 07777), path, path);
    if (st == REQSIGN_OK)
        st = key_from_decoded(&dk, flags, out, err);
    reqsign__wipe(&dk, sizeof(dk));
    reqsign__wipe(buf, (size_t)REQSIGN_KEY_FILE_IN_MAX + 1);
    free(buf);
    return st;
}

/* ---- identify and export ---- */

/* see reqsign/key.h */
enum reqsign_status reqsign_thumbprint_raw(const uint8_t pk[REQSIGN_ED25519_PUBLIC_LEN],
                                           char out[REQSIGN_THUMBPRINT_BUF])
{
    /* RFC 7638 3.2: required members only, lexicographic order, no whitespace. */
    static const char head[] = "{\"crv\":\"Ed25519\",\"kty\":\"OKP\",\"x\":\"";
    char json[sizeof(head) - 1 + REQSIGN_BASE64URL_LEN(REQSIGN_ED25519_PUBLIC_LEN) + 3];
    uint8_t hash[REQSIGN__SHA256_LEN];
    size_t pos = sizeof(head) - 1, n = 0;
    enum reqsign_status st;

    if (pk == NULL || out == NULL)
        return REQSIGN_E_INVALID_ARG;
    memcpy(json, head, pos);
    st = reqsign_base64url_encode(pk, REQSIGN_ED25519_PUBLIC_LEN, json + pos, sizeof(json) - pos,
                                  &n);
    if (st != REQSIGN_OK)
        return REQSIGN_E_INTERNAL;
    pos += n;
    json[pos++] = '"';
    json[pos++] = '}';
    if (reqsign__sha256(json, pos, hash) != 0)
        return REQSIGN_E_CRYPTO;
    st = reqsign_base64url_encode(hash, sizeof(hash), out, REQSIGN_THUMBPRINT_BUF, &n);
    if (st != REQSIGN_OK || n != REQSIGN_THUMBPRINT_LEN)
        return REQSIGN_E_INTERNAL;
    return REQSIGN_OK;
}

/* see reqsign/key.h */
enum reqsign_status reqsign_key_thumbprint(const struct reqsign_key *key,
                                           char out[REQSIGN_THUMBPRINT_BUF])
{
    if (key == NULL)
        return REQSIGN_E_INVALID_ARG;
    return reqsign_thumbprint_raw(key->pk, out);
}

/* Write @head, base64(@der) [url: base64url, no padding], @tail into @out. */
static enum reqsign_status export_text(const char *head, const uint8_t *der, size_t der_len,
                                       int url, const char *tail, char *out, size_t cap,
                                       size_t *out_len)
{
    size_t hl = strlen(head), tl = strlen(tail), n = 0;
    size_t bl = url ? REQSIGN_BASE64URL_LEN(der_len) : REQSIGN_BASE64_LEN(der_len);
    size_t need = hl + bl + tl;
    enum reqsign_status st;

    if (out_len == NULL || (out == NULL && cap > 0))
        return REQSIGN_E_INVALID_ARG;
    *out_len = need;
    if (cap < need + 1)
        return REQSIGN_E_BUFFER_TOO_SMALL;
    memcpy(out, head, hl);
    st = url ? reqsign_base64url_encode(der, der_len, out + hl, cap - hl, &n)
             : reqsign_base64_encode(der, der_len, out + hl, cap - hl, &n);
    if (st != REQSIGN_OK || n != bl) {
        reqsign__wipe(out, cap);
        return REQSIGN_E_INTERNAL;
    }
    memcpy(out + hl + bl, tail, tl + 1);
    return REQSIGN_OK;
}

/* see reqsign/key.h */
enum reqsign_status reqsign_key_public_pem(const struct reqsign_key *key, char *out, size_t cap,
                                           size_t *out_len)
{
    uint8_t der[sizeof(spki_prefix) + REQSIGN_ED25519_PUBLIC_LEN];

    if (key == NULL)
        return REQSIGN_E_INVALID_ARG;
    memcpy(der, spki_prefix, sizeof(spki_prefix));
    memcpy(der + sizeof(spki_prefix), key->pk, REQSIGN_ED25519_PUBLIC_LEN);
    /* 44 DER bytes are 60 base64 characters: one PEM line. */
    return export_text("-----BEGIN PUBLIC KEY-----\n", der, sizeof(der), 0,
                       "\n-----END PUBLIC KEY-----\n", out, cap, out_len);
}

/* see reqsign/key.h */
enum reqsign_status reqsign_key_private_pem(const struct reqsign_key *key, char *out, size_t cap,
                                            size_t *out_len)
{
    uint8_t der[sizeof(pkcs8_prefix) + REQSIGN_ED25519_SEED_LEN]; /* secret */
    enum reqsign_status st;

    if (key == NULL || out_len == NULL)
        return REQSIGN_E_INVALID_ARG;
    if (key->priv == NULL)
        return REQSIGN_E_KEY_NOT_PRIVATE;
    memcpy(der, pkcs8_prefix, sizeof(pkcs8_prefix));
    if (reqsign__ed25519_priv_seed(key->priv, der + sizeof(pkcs8_prefix)) != 0) {
        reqsign__wipe(der, sizeof(der));
        return REQSIGN_E_CRYPTO;
    }
    /* 48 DER bytes are 64 base64 characters: one PEM line. */
    st = export_text("-----BEGIN PRIVATE KEY-----\n", der, sizeof(der), 0,
                     "\n-----END PRIVATE KEY-----\n", out, cap, out_len);
    reqsign__wipe(der, sizeof(der));
    return st;
}

/* see reqsign/key.h */
enum reqsign_status reqsign_key_public_jwk(const struct reqsign_key *key, char *out, size_t cap,
                                           size_t *out_len)
{
    if (key == NULL)
        return REQSIGN_E_INVALID_ARG;
    return export_text("{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"", key->pk,
                       REQSIGN_ED25519_PUBLIC_LEN, 1, "\"}", out, cap, out_len);
}

/* ---- sign and verify ---- */

static enum reqsign_status key_sign_impl(const struct reqsign_key *key, const uint8_t *msg,
                                         size_t len, uint8_t sig[REQSIGN_ED25519_SIG_LEN])
{
    if (key == NULL || sig == NULL || (msg == NULL && len > 0))
        return REQSIGN_E_INVALID_ARG;
    if (key->priv == NULL)
        return REQSIGN_E_KEY_NOT_PRIVATE;
    if (reqsign__ed25519_sign(key->priv, msg, len, sig) != 0)
        return REQSIGN_E_CRYPTO;
    return REQSIGN_OK;
}

static enum reqsign_status key_verify_impl(const struct reqsign_key *key,
                                           const uint8_t sig[REQSIGN_ED25519_SIG_LEN],
                                           const uint8_t *msg, size_t len)
{
    if (key == NULL || sig == NULL || (msg == NULL && len > 0))
        return REQSIGN_E_INVALID_ARG;
    return reqsign__ed25519_verify_pub(key->pub, sig, msg, len) == 0 ? REQSIGN_OK
                                                                     : REQSIGN_E_SIG_INVALID;
}

/* see reqsign/key.h */
enum reqsign_status reqsign_ed25519_verify(const uint8_t sig[REQSIGN_ED25519_SIG_LEN],
                                           const uint8_t *msg, size_t len,
                                           const uint8_t pk[REQSIGN_ED25519_PUBLIC_LEN])
{
    if (pk == NULL || sig == NULL || (msg == NULL && len > 0))
        return REQSIGN_E_INVALID_ARG;
    return reqsign__ed25519_verify(pk, sig, msg, len) == 0 ? REQSIGN_OK : REQSIGN_E_SIG_INVALID;
}

/* see reqsign/key.h */
enum reqsign_status reqsign_key_sign(const struct reqsign_key *key, const uint8_t *msg, size_t len,
                                     uint8_t sig[REQSIGN_ED25519_SIG_LEN],
                                     struct reqsign_error *err)
{
    reqsign_error_clear(err);
    enum reqsign_status st = key_sign_impl(key, msg, len, sig);
    if (st != REQSIGN_OK)
        return reqsign_error_set(err, st, SRC, REQSIGN_NO_OFFSET, NULL);
    return st;
}

/* see reqsign/key.h */
enum reqsign_status reqsign_key_verify(const struct reqsign_key *key,
                                       const uint8_t sig[REQSIGN_ED25519_SIG_LEN],
                                       const uint8_t *msg, size_t len, struct reqsign_error *err)
{
    reqsign_error_clear(err);
    enum reqsign_status st = key_verify_impl(key, sig, msg, len);
    if (st != REQSIGN_OK)
        return reqsign_error_set(err, st, SRC, REQSIGN_NO_OFFSET, NULL);
    return st;
}

/* see reqsign/key.h */
struct reqsign_key *reqsign_key_from_public(const uint8_t pk[REQSIGN_ED25519_PUBLIC_LEN],
                                            struct reqsign_error *err)
{
    struct reqsign_key *k = NULL;
    if (key_from_public_st(pk, &k, err) != REQSIGN_OK)
        return NULL;
    return k;
}

/* see reqsign/key.h */
struct reqsign_key *reqsign_key_from_seed(const uint8_t seed[REQSIGN_ED25519_SEED_LEN],
                                          struct reqsign_error *err)
{
    struct reqsign_key *k = NULL;
    if (key_from_seed_st(seed, &k, err) != REQSIGN_OK)
        return NULL;
    return k;
}

/* see reqsign/key.h */
struct reqsign_key *reqsign_key_generate(struct reqsign_error *err)
{
    struct reqsign_key *k = NULL;
    if (key_generate_st(&k, err) != REQSIGN_OK)
        return NULL;
    return k;
}

/* see reqsign/key.h */
struct reqsign_key *reqsign_key_load_mem(const void *data, size_t len, unsigned flags,
                                         struct reqsign_error *err)
{
    struct reqsign_key *k = NULL;
    if (key_load_mem_st(data, len, flags, &k, err) != REQSIGN_OK)
        return NULL;
    return k;
}

/* see reqsign/key.h */
struct reqsign_key *reqsign_key_load_file(const char *path, unsigned flags,
                                          struct reqsign_error *err)
{
    struct reqsign_key *k = NULL;
    if (key_load_file_st(path, flags, &k, err) != REQSIGN_OK)
        return NULL;
    return k;
}
