/* reqsign: credentials (credential JSON, key files, standard input, inline JSON).
 *
 * Secrets here: the file or inline text (holds the private key PEM), the
 * "private_key" string jansson decodes, and the loaded key. The first two are
 * wiped before release on every path; the key is wiped by reqsign_key_free().
 * jansson's own scratch copies are not wiped (see reqsign/credential.h).
 */
#include <reqsign/credential.h>

#include <jansson.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

static const char SRC[] = "credential";

struct reqsign_credential {
    struct reqsign_key *key; /* secret: wiped by reqsign_key_free() */
    char keyid[REQSIGN_KEYID_IN_MAX + 1];
    char *service; /* never NULL */
    char *api;     /* "api": the provider's API base URL; never NULL once loaded */
    char *label;   /* never NULL */
    char **scopes;
    size_t n_scopes;
};

static int is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int printable(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            return 0;
    return 1;
}

static int is_b64url(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

static int looks_like_thumbprint(const char *s, size_t n)
{
    if (n != REQSIGN_THUMBPRINT_LEN)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!is_b64url(s[i]))
            return 0;
    return 1;
}

static char *dup_str(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p != NULL) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

/* Wipe the bytes of a JSON string jansson decoded (it owns them). */
static void json_string_wipe(json_t *v)
{
    if (json_is_string(v))
        reqsign_memzero((char *)(uintptr_t)json_string_value(v), json_string_length(v));
}

/* see reqsign/credential.h */
void reqsign_credential_free(struct reqsign_credential *c)
{
    if (c == NULL)
        return;
    reqsign_key_free(c->key);
    free(c->service);
    free(c->api);
    free(c->label);
    for (size_t i = 0; i < c->n_scopes; i++)
        free(c->scopes[i]);
    free(c->scopes);
    reqsign_memzero(c, sizeof(*c));
    free(c);
}

static enum reqsign_status set_keyid(struct reqsign_credential *c, const char *keyid, size_t n,
                                     enum reqsign_status code, const char *what,
                                     struct reqsign_error *err)
{
    if (n == 0 || n > REQSIGN_KEYID_IN_MAX || !printable(keyid, n))
        return reqsign_error_set(err, code, SRC, REQSIGN_NO_OFFSET,
                                 "%s must be 1..%d printable ASCII characters", what,
                                 REQSIGN_KEYID_IN_MAX);
    memcpy(c->keyid, keyid, n);
    c->keyid[n] = '\0';
    return REQSIGN_OK;
}

static enum reqsign_status thumbprint_keyid(struct reqsign_credential *c, struct reqsign_error *err)
{
    char tp[REQSIGN_THUMBPRINT_BUF];
    if (reqsign_key_thumbprint(c->key, tp) != REQSIGN_OK)
        return reqsign_error_set(err, REQSIGN_E_CRYPTO, SRC, REQSIGN_NO_OFFSET,
                                 "cannot compute the key thumbprint");
    memcpy(c->keyid, tp, sizeof(tp));
    return REQSIGN_OK;
}

/* An optional string member: absent or null gives "". */
static enum reqsign_status opt_string(json_t *root, const char *name, char **out,
                                      struct reqsign_error *err)
{
    json_t *v = json_object_get(root, name);
    if (v == NULL || json_is_null(v)) {
        *out = dup_str("", 0);
    } else if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v)) {
        return reqsign_error_set(err, REQSIGN_E_KEY_FORMAT, SRC, REQSIGN_NO_OFFSET,
                                 "credential \"%s\" must be a string or null", name);
    } else {
        *out = dup_str(json_string_value(v), json_string_length(v));
    }
    if (*out == NULL)
        return reqsign_error_set(err, REQSIGN_E_NOMEM, SRC, REQSIGN_NO_OFFSET, NULL);
    return REQSIGN_OK;
}

static enum reqsign_status load_scopes(struct reqsign_credential *c, json_t *root,
                                       struct reqsign_error *err)
{
    json_t *v = json_object_get(root, "scopes");
    if (v == NULL || json_is_null(v))
        return REQSIGN_OK;
    if (!json_is_array(v))
        return reqsign_error_set(err, REQSIGN_E_KEY_FORMAT, SRC, REQSIGN_NO_OFFSET,
                                 "credential \"scopes\" must be an array of strings");
    size_t n = json_array_size(v);
    if (n == 0)
        return REQSIGN_OK;
    c->scopes = calloc(n, sizeof(*c->scopes));
    if (c->scopes == NULL)
        return reqsign_error_set(err, REQSIGN_E_NOMEM, SRC, REQSIGN_NO_OFFSET, NULL);
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_array_get(v, i);
        if (!json_is_string(s) || strlen(json_string_value(s)) != json_string_length(s))
            return reqsign_error_set(err, REQSIGN_E_KEY_FORMAT, SRC, REQSIGN_NO_OFFSET,
                                     "credential \"scopes\" must be an array of strings");
        c->scopes[i] = dup_str(json_string_value(s), json_string_length(s));
        if (c->scopes[i] == NULL)
            return reqsign_error_set(err, REQSIGN_E_NOMEM, SRC, REQSIGN_NO_OFFSET, NULL);
        c->n_scopes = i + 1;
    }
    return REQSIGN_OK;
}

/* The credential object @root (text in @text for a JWK). @path is NULL for
 * inline text; @mode is the file's mode. */
static enum reqsign_status from_json(struct reqsign_credential *c, json_t *root, const char *text,
                                     size_t text_len, const char *path, mode_t mode,
                                     const char *keyid_override, unsigned flags,
                                     struct reqsign_error *err)
{
    unsigned kflags =
        (flags & ~(unsigned)REQSIGN_KEY_ALLOW_PERMISSIVE) | REQSIGN_KEY_REQUIRE_PRIVATE;
    enum reqsign_status st;

    if (!json_is_object(root))
        return reqsign_error_set(err, REQSIGN_E_KEY_FORMAT, SRC, REQSIGN_NO_OFFSET,
                                 "a credential must be a JSON object");

    if (json_object_get(root, "kty") != NULL) {
        /* a JWK, not a credential */
        if (path != NULL)
            st = ((c->key = reqsign_key_load_file(path, flags | REQSIGN_KEY_REQUIRE_PRIVATE,
                                                  err)) != NULL
                      ? REQSIGN_OK
                      : err->code);
        else
            st = ((c->key = reqsign_key_load_mem(text, text_len, kflags, err)) != NULL ? REQSIGN_OK
                                                                                       : err->code);
        if (st != REQSIGN_OK)
            return st;
        if (keyid_override != NULL)
            return set_keyid(c, keyid_override, strlen(keyid_override), REQSIGN_E_INVALID_ARG,
                             "keyid_override", err);
        return thumbprint_keyid(c, err);
    }

    json_t *alg = json_object_get(root, "alg");
    if (alg != NULL && !json_is_null(alg) &&
        !(json_is_string(alg) && strcmp(json_string_value(alg), "ed25519") == 0))
        return reqsign_error_set(err, REQSIGN_E_KEY_TYPE, SRC, REQSIGN_NO_OFFSET,
                                 "credential \"alg\" must be \"ed25519\"");

    json_t *priv = json_object_get(root, "private_key");
    if (priv == NULL || json_is_null(priv))
        return reqsign_error_set(err, REQSIGN_E_KEY_NOT_PRIVATE, SRC, REQSIGN_NO_OFFSET,
                                 "credential has no \"private_key\" (a key record cannot sign)");
    if (!json_is_string(priv))
        return reqsign_error_set(err, REQSIGN_E_KEY_FORMAT, SRC, REQSIGN_NO_OFFSET,
                                 "credential \"private_key\" must be a PEM string");
    if (path != NULL && (mode & 077) != 0 && !(flags & REQSIGN_KEY_ALLOW_PERMISSIVE))
        return reqsign_error_set(err, REQSIGN_E_KEY_PERMISSIONS, SRC, REQSIGN_NO_OFFSET,
                                 "permissions %04o for private key file %s are too open: it must "
                                 "not be accessible by group or others; fix with `chmod 600 %s`",
                                 (unsigned)(mode & 07777), path, path);
    st = ((c->key = reqsign_key_load_mem(json_string_value(priv), json_string_length(priv), kflags,
                                         err)) != NULL
              ? REQSIGN_OK
              : err->code);
    if (st != REQSIGN_OK)
        return st;

    char tp[REQSIGN_THUMBPRINT_BUF];
    if (reqsign_key_thumbprint(c->key, tp) != REQSIGN_OK)
        return reqsign_error_set(err, REQSIGN_E_CRYPTO, SRC, REQSIGN_NO_OFFSET,
                                 "cannot compute the key thumbprint");

    json_t *kid = json_object_get(root, "keyid");
    if (kid == NULL || json_is_null(kid)) {
        if (keyid_override == NULL)
            return reqsign_error_set(err, REQSIGN_E_KEY_FORMAT, SRC, REQSIGN_NO_OFFSET,
                                     "credential has no \"keyid\"");
    } else if (!json_is_string(kid)) {
        return reqsign_error_set(err, REQSIGN_E_KEY_FORMAT, SRC, REQSIGN_NO_OFFSET,
                                 "credential \"keyid\" must be a string");
    } else {
        const char *k = json_string_value(kid);
        size_t kn = json_string_length(kid);
        st = set_keyid(c, k, kn, REQSIGN_E_KEY_FORMAT, "credential \"keyid\"", err);
        if (st != REQSIGN_OK)
            return st;
        if (looks_like_thumbprint(k, kn) && strcmp(k, tp) != 0)
            return reqsign_error_set(err, REQSIGN_E_KEY_FORMAT, SRC, REQSIGN_NO_OFFSET,
                                     "credential \"keyid\" %s is not the thumbprint of its "
                                     "private key (%s)",
                                     c->keyid, tp);
    }
    if (keyid_override != NULL) {
        st = set_keyid(c, keyid_override, strlen(keyid_override), REQSIGN_E_INVALID_ARG,
                       "keyid_override", err);
        if (st != REQSIGN_OK)
            return st;
    }

    json_t *pub = json_object_get(root, "public_key");
    if (pub != NULL && !json_is_null(pub)) {
        struct reqsign_key *pk = NULL;
        uint8_t a[REQSIGN_ED25519_PUBLIC_LEN], b[REQSIGN_ED25519_PUBLIC_LEN];
        if (!json_is_string(pub))
            return reqsign_error_set(err, REQSIGN_E_KEY_FORMAT, SRC, REQSIGN_NO_OFFSET,
                                     "credential \"public_key\" must be a PEM string");
        st = ((pk = reqsign_key_load_mem(json_string_value(pub), json_string_length(pub), 0,
                                         err)) != NULL
                  ? REQSIGN_OK
                  : err->code);
        if (st != REQSIGN_OK)
            return st;
        reqsign_key_public_raw(pk, a);
        reqsign_key_public_raw(c->key, b);
        reqsign_key_free(pk);
        if (memcmp(a, b, sizeof(a)) != 0)
            return reqsign_error_set(err, REQSIGN_E_KEY_FORMAT, SRC, REQSIGN_NO_OFFSET,
                                     "credential \"public_key\" is not the public half of its "
                                     "\"private_key\"");
    }

    st = load_scopes(c, root, err);
    if (st == REQSIGN_OK)
        st = opt_string(root, "label", &c->label, err);
    if (st == REQSIGN_OK)
        st = opt_string(root, "service", &c->service, err);
    if (st == REQSIGN_OK)
        st = opt_string(root, "api", &c->api, err);
    return st;
}

/* Parse @text (@len bytes) as JSON and load it. */
static enum reqsign_status load_text(struct reqsign_credential *c, const char *text, size_t len,
                                     const char *path, mode_t mode, const char *keyid_override,
                                     unsigned flags, struct reqsign_error *err)
{
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    enum reqsign_status st;

    if (root == NULL) {
        size_t pos = je.position >= 0 ? (size_t)je.position : REQSIGN_NO_OFFSET;
        /* jansson's "... near 'TEXT'" quotes the input: it may be the private key */
        char *near = strstr(je.text, " near ");
        if (near != NULL)
            *near = '\0';
        st = reqsign_error_set(
            err, REQSIGN_E_JSON, SRC, pos, "%s: malformed JSON: %s at line %d column %d (byte %d)",
            path != NULL ? path : "inline credential", je.text, je.line, je.column, je.position);
        reqsign_memzero(&je, sizeof(je));
        return st;
    }
    st = from_json(c, root, text, len, path, mode, keyid_override, flags, err);
    json_string_wipe(json_object_get(root, "private_key"));
    json_string_wipe(json_object_get(root, "d"));
    json_decref(root);
    return st;
}

/* Read all of @fd (at most REQSIGN_CREDENTIAL_IN_MAX bytes) into a malloc'd
 * buffer of REQSIGN_CREDENTIAL_IN_MAX + 1 bytes (a secret: the caller wipes
 * and frees it). @name is for messages. */
static enum reqsign_status read_all(int fd, const char *name, char **out, size_t *out_len,
                                    struct reqsign_error *err)
{
    const size_t cap = (size_t)REQSIGN_CREDENTIAL_IN_MAX + 1;
    size_t n = 0;
    char *buf = malloc(cap);
    if (buf == NULL)
        return reqsign_error_set(err, REQSIGN_E_NOMEM, SRC, REQSIGN_NO_OFFSET, NULL);
    while (n < cap) {
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            reqsign_memzero(buf, cap);
            free(buf);
            return reqsign_error_set(err, REQSIGN_E_IO, SRC, REQSIGN_NO_OFFSET,
                                     "cannot read %s: %s", name, strerror(e));
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    if (n > REQSIGN_CREDENTIAL_IN_MAX) {
        reqsign_memzero(buf, cap);
        free(buf);
        return reqsign_error_set(err, REQSIGN_E_LIMIT, SRC, REQSIGN_NO_OFFSET,
                                 "%s is more than %d bytes", name, REQSIGN_CREDENTIAL_IN_MAX);
    }
    *out = buf;
    *out_len = n;
    return REQSIGN_OK;
}

/* The keyid of a credential loaded from a bare key. */
static enum reqsign_status bare_key_keyid(struct reqsign_credential *c, const char *keyid_override,
                                          struct reqsign_error *err)
{
    return keyid_override != NULL ? set_keyid(c, keyid_override, strlen(keyid_override),
                                              REQSIGN_E_INVALID_ARG, "keyid_override", err)
                                  : thumbprint_keyid(c, err);
}

/* @path as error messages may show it: itself when it looks like a path,
 * otherwise (control characters, PEM armour, JSON, very long) a fixed phrase,
 * so that key material given where a path belongs is never echoed. */
static const char *path_shown(const char *path)
{
    const char *p = path;
    size_t n = 0;
    if (strstr(path, "-----BEGIN") != NULL)
        return "the credential argument";
    while (is_blank(*p))
        p++;
    if (*p == '{' || *p == '[')
        return "the credential argument";
    for (p = path; *p != '\0'; p++, n++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f || n > 1024)
            return "the credential argument";
    return path;
}

static enum reqsign_status load_path(struct reqsign_credential *c, const char *path,
                                     const char *keyid_override, unsigned flags,
                                     struct reqsign_error *err)
{
    const char *shown = path_shown(path);
    struct stat sb;
    char *buf = NULL; /* secret: the file */
    size_t n = 0, i = 0;
    enum reqsign_status st = REQSIGN_OK;
    int fd;

    do {
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return reqsign_error_set(err, REQSIGN_E_IO, SRC, REQSIGN_NO_OFFSET, "cannot open %s: %s",
                                 shown, strerror(errno));
    if (fstat(fd, &sb) != 0) {
        st = reqsign_error_set(err, REQSIGN_E_IO, SRC, REQSIGN_NO_OFFSET, "cannot stat %s: %s",
                               shown, strerror(errno));
        goto out;
    }
    if (!S_ISREG(sb.st_mode)) {
        st = reqsign_error_set(err, REQSIGN_E_IO, SRC, REQSIGN_NO_OFFSET,
                               "%s is not a regular file", shown);
        goto out;
    }
    st = read_all(fd, shown, &buf, &n, err);
    if (st != REQSIGN_OK)
        goto out;
    while (i < n && is_blank(buf[i]))
        i++;
    if (i < n && buf[i] == '{') {
        st = load_text(c, buf, n, path, sb.st_mode, keyid_override, flags, err);
    } else {
        /* a key file: the key loader applies the permission check */
        st =
            ((c->key = reqsign_key_load_file(
                  path, flags | REQSIGN_KEY_REQUIRE_PRIVATE | REQSIGN_KEY_RAW_PRIVATE, err)) != NULL
                 ? REQSIGN_OK
                 : err->code);
        if (st == REQSIGN_OK)
            st = bare_key_keyid(c, keyid_override, err);
    }
out:
    if (buf != NULL) {
        reqsign_memzero(buf, (size_t)REQSIGN_CREDENTIAL_IN_MAX + 1);
        free(buf);
    }
    close(fd);
    return st;
}

/* "-": the credential JSON or key (PEM, DER, JWK, raw seed) on standard
 * input, so that it is never an argument (readable through /proc). No file
 * mode to check: the caller chose what to pipe in. */
static enum reqsign_status load_stdin(struct reqsign_credential *c, const char *keyid_override,
                                      unsigned flags, struct reqsign_error *err)
{
    char *buf = NULL; /* secret */
    size_t n = 0, i = 0;
    enum reqsign_status st = read_all(STDIN_FILENO, "standard input", &buf, &n, err);
    if (st != REQSIGN_OK)
        return st;
    while (i < n && is_blank(buf[i]))
        i++;
    if (i == n)
        st = reqsign_error_set(err, REQSIGN_E_KEY_FORMAT, SRC, REQSIGN_NO_OFFSET,
                               "standard input is empty: no credential");
    else if (buf[i] == '{')
        st = load_text(c, buf, n, NULL, 0, keyid_override, flags, err);
    else if ((st = ((c->key = reqsign_key_load_mem(
                         buf, n,
                         (flags & ~(unsigned)REQSIGN_KEY_ALLOW_PERMISSIVE) |
                             REQSIGN_KEY_REQUIRE_PRIVATE | REQSIGN_KEY_RAW_PRIVATE,
                         err)) != NULL
                        ? REQSIGN_OK
                        : err->code)) == REQSIGN_OK)
        st = bare_key_keyid(c, keyid_override, err);
    reqsign_memzero(buf, (size_t)REQSIGN_CREDENTIAL_IN_MAX + 1);
    free(buf);
    return st;
}

/* reqsign_credential_load(), returning a status and the credential in *@out. */
static enum reqsign_status credential_load_st(const char *spec, const char *keyid_override,
                                              unsigned flags, struct reqsign_credential **out,
                                              struct reqsign_error *err)
{
    reqsign_error_clear(err);
    struct reqsign_credential *c;
    enum reqsign_status st;
    const char *p;

    if (out == NULL)
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, SRC, REQSIGN_NO_OFFSET,
                                 "out is required");
    *out = NULL;
    if (spec == NULL) {
        spec = getenv(REQSIGN_CREDENTIAL_ENV);
        if (spec == NULL || spec[0] == '\0')
            return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, SRC, REQSIGN_NO_OFFSET,
                                     "no credential given and %s is not set",
                                     REQSIGN_CREDENTIAL_ENV);
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return reqsign_error_set(err, REQSIGN_E_NOMEM, SRC, REQSIGN_NO_OFFSET, NULL);
    for (p = spec; is_blank(*p); p++)
        ;
    if (strcmp(spec, "-") == 0) {
        st = load_stdin(c, keyid_override, flags, err);
    } else if (*p == '{') {
        size_t n = strlen(spec);
        if (n > REQSIGN_CREDENTIAL_IN_MAX)
            st = reqsign_error_set(err, REQSIGN_E_LIMIT, SRC, REQSIGN_NO_OFFSET,
                                   "inline credential is more than %d bytes",
                                   REQSIGN_CREDENTIAL_IN_MAX);
        else
            st = load_text(c, spec, n, NULL, 0, keyid_override, flags, err);
    } else {
        st = load_path(c, spec, keyid_override, flags, err);
    }
    if (st == REQSIGN_OK && c->service == NULL)
        c->service = dup_str("", 0);
    if (st == REQSIGN_OK && c->label == NULL)
        c->label = dup_str("", 0);
    if (st == REQSIGN_OK && c->api == NULL)
        c->api = dup_str("", 0);
    if (st == REQSIGN_OK && (c->service == NULL || c->label == NULL || c->api == NULL))
        st = reqsign_error_set(err, REQSIGN_E_NOMEM, SRC, REQSIGN_NO_OFFSET, NULL);
    if (st != REQSIGN_OK) {
        reqsign_credential_free(c);
        return st;
    }
    *out = c;
    return REQSIGN_OK;
}

/* see reqsign/credential.h */
const char *reqsign_credential_keyid(const struct reqsign_credential *c)
{
    return c->keyid;
}

/* see reqsign/credential.h */
const char *reqsign_credential_service(const struct reqsign_credential *c)
{
    return c->service;
}

/* see reqsign/credential.h */
const char *reqsign_credential_api(const struct reqsign_credential *c)
{
    return c->api;
}

/* see reqsign/credential.h */
const char *reqsign_credential_label(const struct reqsign_credential *c)
{
    return c->label;
}

/* see reqsign/credential.h */
size_t reqsign_credential_scope_count(const struct reqsign_credential *c)
{
    return c->n_scopes;
}

/* see reqsign/credential.h */
const char *reqsign_credential_scope(const struct reqsign_credential *c, size_t i)
{
    return i < c->n_scopes ? c->scopes[i] : NULL;
}

/* see reqsign/credential.h */
const struct reqsign_key *reqsign_credential_key(const struct reqsign_credential *c)
{
    return c->key;
}

/* see reqsign/credential.h */
struct reqsign_signer *reqsign_credential_signer(const struct reqsign_credential *c,
                                                 const struct reqsign_signer_opts *overrides,
                                                 struct reqsign_error *err)
{
    reqsign_error_clear(err);
    struct reqsign_signer_opts o;

    if (c == NULL) {
        reqsign_error_set(err, REQSIGN_E_INVALID_ARG, SRC, REQSIGN_NO_OFFSET, "no credential");
        return NULL;
    }
    if (overrides != NULL) {
        if (overrides->key_file != NULL || overrides->key_data != NULL || overrides->key != NULL ||
            overrides->keyid != NULL) {
            reqsign_error_set(err, REQSIGN_E_INVALID_ARG, SRC, REQSIGN_NO_OFFSET,
                              "the credential gives the key and keyid: leave key_file, "
                              "key_data, key and keyid unset");
            return NULL;
        }
        o = *overrides;
    } else {
        memset(&o, 0, sizeof(o));
    }
    o.key = c->key;
    o.keyid = c->keyid;
    return reqsign_signer_new(&o, err);
}

/* see reqsign/credential.h */
struct reqsign_credential *reqsign_credential_load(const char *spec, const char *keyid_override,
                                                   unsigned flags, struct reqsign_error *err)
{
    struct reqsign_credential *c = NULL;
    struct reqsign_error local; /* the loaders' codes are read from err->code */
    if (err == NULL)
        err = &local;
    if (credential_load_st(spec, keyid_override, flags, &c, err) != REQSIGN_OK)
        return NULL;
    return c;
}
