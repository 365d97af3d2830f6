/* reqsign: the command-line tool.
 *
 *   reqsign keygen [-o FILE]
 *   reqsign sign --key FILE [options] URL
 *   reqsign verify --pub FILE [options] URL
 *   reqsign send [options] URL            (send.c)
 *   reqsign keys create|list|get|revoke   (keys.c)
 *
 * Exit status: 0 success (verify: the signature is valid), 1 failure (the
 * library's wire name and message are printed), 2 usage error.
 */
#include "cli.h"
#include <reqsign/token.h>

#include <reqsign/base.h>
#include <reqsign/digest.h>
#include <reqsign/error.h>
#include <reqsign/key.h>
#include <reqsign/nonce.h>
#include <reqsign/request.h>
#include <reqsign/credential.h>
#include <reqsign/signer.h>
#include <reqsign/verifier.h>

#include <curl/curl.h>
#include <jansson.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#ifndef REQSIGN_CLI_VERSION
#define REQSIGN_CLI_VERSION "0.1.0"
#endif

enum { EXIT_OKAY = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

/* Most -H / --headers field lines accepted. */
#define CLI_MAX_HEADERS 256
/* Largest body read into memory (stdin or a non-regular file for verify). */
#define CLI_BODY_MEM_MAX ((size_t)1 << 30)

/* ------------------------------------------------------------------ help */

static const char USAGE_MAIN[] = "usage: reqsign <command> [options]\n"
                                 "\n"
                                 "Commands:\n"
                                 "  keygen   generate an Ed25519 key pair\n"
                                 "  sign     print the header fields that sign an HTTP request\n"
                                 "  verify   check a signed HTTP request\n"
                                 "  send     send a signed HTTP request (curl-like)\n"
                                 "  keys     manage keys on a key service (create, list,\n"
                                 "           get, revoke, rotate, disable, enable)\n"
                                 "  accounts manage accounts (create, list, get, disable,\n"
                                 "           enable, enroll-token)\n"
                                 "  enroll   enroll a key with an enrollment token\n"
                                 "  audit    show the key service's audit log\n"
                                 "  help     show help for a command\n"
                                 "\n"
                                 "Options:\n"
                                 "  -h, --help     show this help\n"
                                 "  --version      show the version\n"
                                 "\n"
                                 "Run 'reqsign <command> --help' for the options of a command.\n"
                                 "Exit status: 0 success, 1 failure, 2 usage error.\n";

static const char USAGE_KEYGEN[] =
    "usage: reqsign keygen [-o FILE]\n"
    "\n"
    "Generate an Ed25519 key. With -o, write the private key (PKCS#8 PEM) to FILE,\n"
    "created with mode 0600 (an existing FILE is never overwritten), and print the\n"
    "public key PEM and its keyid. Without -o, print the private key PEM first.\n"
    "\n"
    "Options:\n"
    "  -o, --output FILE   write the private key to FILE\n"
    "  -h, --help          show this help\n"
    "\n"
    "Output: [private PEM] public PEM, then 'keyid: <RFC 7638 thumbprint>'.\n";

static const char USAGE_SIGN[] =
    "usage: reqsign sign --key FILE [options] URL\n"
    "\n"
    "Sign a request and print the header fields to add, one 'Name: value' per line:\n"
    "Content-Digest, Signature-Input, Signature.\n"
    "\n"
    "Options:\n"
    "  --key FILE                  private key (PEM, DER, JWK or raw seed) or the key\n"
    "                              service's credential JSON file; '-' reads it from\n"
    "                              stdin (inline JSON is refused: arguments are public)\n"
    "  --keyid ID                  keyid to put in the signature (default: the key's\n"
    "                              RFC 7638 thumbprint)\n"
    "  -X, --request METHOD        method (default GET, or POST with --data)\n"
    "  -H, --header 'Name: value'  a header field (accepted; not covered by the profile)\n"
    "  -d, --data STRING|@FILE     the body; @FILE streams a file, @- reads stdin\n"
    "  --created N                 created time, unix seconds (default: now)\n"
    "  --nonce STR                 nonce (default: 16 random bytes, base64url)\n"
    "  --label L                   signature label (default sig1)\n"
    "  --tag T                     add a tag parameter\n"
    "  --expires-in N              add expires = created + N\n"
    "  --sha512                    Content-Digest with sha-512 instead of sha-256\n"
    "  --json                      print one JSON object {field name: value}\n"
    "  --show-base                 print the signature base to stderr\n"
    "  --insecure-key-permissions  accept a key file readable by group or others\n"
    "  -h, --help                  show this help\n";

static const char USAGE_VERIFY[] =
    "usage: reqsign verify --pub FILE [options] URL\n"
    "\n"
    "Verify a signed request built from URL (scheme, authority, and the path and\n"
    "query exactly as written), the header fields and the body. Prints 'ok' and\n"
    "exits 0 when the signature is valid; otherwise the last line printed is\n"
    "'error: <name>: <message>' and the exit status is 1.\n"
    "\n"
    "Options:\n"
    "  --pub FILE                  the signer's key, any format (a private key file\n"
    "                              is fine: only its public part is used), a\n"
    "                              credential JSON or a key record JSON\n"
    "  --keyid ID                  accept only this keyid (default: any keyid maps\n"
    "                              to --pub)\n"
    "  -X, --request METHOD        method (default GET, or POST with --data)\n"
    "  -H, --header 'Name: value'  a received header field (repeatable)\n"
    "  --headers FILE|-            header fields as a JSON object: name -> string,\n"
    "                              or name -> array of strings (as 'sign --json'\n"
    "                              prints)\n"
    "  -d, --data STRING|@FILE     the body received; @- reads stdin; adds\n"
    "                              Content-Length if absent\n"
    "  --now N                     the verifier's clock, unix seconds (default: now)\n"
    "  --max-age N                 oldest created accepted, seconds (default 300)\n"
    "  --skew N                    clock skew allowed, seconds (default 30)\n"
    "  --profile reqsign|rfc9421   verification profile (default reqsign)\n"
    "  --authority HOST[:PORT]     the authority the verifier accepts and puts in\n"
    "                              @authority (behind a proxy: the public one);\n"
    "                              default: the Host field, else URL's authority\n"
    "  --label L                   the signature label to check\n"
    "  --tag T                     require this tag parameter\n"
    "  --show-base                 print the signature base computed to stderr\n"
    "  -v, --verbose               print 'keyid: ...  created: ...' after 'ok'\n"
    "  -h, --help                  show this help\n";

#if defined(__GNUC__)
#define CLI_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define CLI_PRINTF(f, a)
#endif

/* One line "reqsign <cmd>: <message>", then the usage, to stderr. */

/* ------------------------------------------------------------ utilities */

/* Print "error: <wire name>: <message>" on one line to @f. */
static void print_error(FILE *f, enum reqsign_status st, const struct reqsign_error *err)
{
    const char *msg = reqsign_strerror(st);
    if (err != NULL && err->code == st && err->message[0] != '\0')
        msg = err->message;
    fprintf(f, "error: %s: ", reqsign_errname(st));
    for (const unsigned char *p = (const unsigned char *)msg; *p != '\0'; p++)
        fputc(*p < 0x20 || *p == 0x7f ? '?' : (int)*p, f);
    fputc('\n', f);
}

/* Print an error that did not come from the library. */
/* Wipe the string value of @key in object @o, if any (a private key). */
static void wipe_member(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (json_is_string(v))
        reqsign_memzero((char *)json_string_value(v), json_string_length(v));
}

/*
 * verify --pub @path that is JSON but not a JWK (issue 16 item 12, review 12
 * N6): the key service's credential (what sign --key takes) or a key record
 * (GET /v1/keys/KEYID: "public_key" PEM, "jwk"). The public key goes to
 * @pub. REQSIGN_E_KEY_FORMAT (with @err untouched) if @path is not such a
 * document, so the caller reports its first error.
 */
static enum reqsign_status load_pub_json(const char *path, unsigned char pub[32],
                                         struct reqsign_error *err)
{
    struct reqsign_credential *cred = NULL;
    struct reqsign_key *k = NULL;
    struct reqsign_error e2;
    enum reqsign_status st;
    json_error_t je;

    /* a credential with its private key: the loader wipes what it read */
    reqsign_error_clear(&e2);
    if ((cred = reqsign_credential_load(path, NULL, REQSIGN_KEY_ALLOW_PERMISSIVE, &e2)) != NULL) {
        reqsign_key_public_raw(reqsign_credential_key(cred), pub);
        reqsign_credential_free(cred);
        return REQSIGN_OK;
    }
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(root) || json_object_get(root, "kty") != NULL) {
        if (root != NULL) {
            wipe_member(root, "d");
            json_decref(root);
        }
        return REQSIGN_E_KEY_FORMAT;
    }
    json_t *pem = json_object_get(root, "public_key"), *jwk = json_object_get(root, "jwk");
    if (json_is_string(pem)) {
        st = ((k = reqsign_key_load_mem(json_string_value(pem), json_string_length(pem), 0, err)) !=
                      NULL
                  ? REQSIGN_OK
                  : err->code);
    } else if (json_is_object(jwk)) {
        char *txt = json_dumps(jwk, JSON_COMPACT);
        st = txt == NULL
                 ? reqsign_error_set(err, REQSIGN_E_NOMEM, "verify", REQSIGN_NO_OFFSET, NULL)
                 : ((k = reqsign_key_load_mem(txt, strlen(txt), 0, err)) != NULL ? REQSIGN_OK
                                                                                 : err->code);
        free(txt);
    } else if (json_object_get(root, "private_key") != NULL) {
        /* a credential that did not load: say why */
        *err = e2;
        st = e2.code != REQSIGN_OK ? e2.code : REQSIGN_E_KEY_FORMAT;
    } else {
        st = REQSIGN_E_KEY_FORMAT;
    }
    wipe_member(root, "private_key");
    wipe_member(root, "d");
    json_decref(root);
    if (st == REQSIGN_OK) {
        reqsign_key_public_raw(k, pub);
        reqsign_key_free(k);
    }
    return st;
}

static void print_error_msg(FILE *f, enum reqsign_status st, const char *fmt, ...) CLI_PRINTF(3, 4);
static void print_error_msg(FILE *f, enum reqsign_status st, const char *fmt, ...)
{
    struct reqsign_error e;
    va_list ap;
    reqsign_error_clear(&e);
    e.code = st;
    va_start(ap, fmt);
    vsnprintf(e.message, sizeof(e.message), fmt, ap);
    va_end(ap);
    print_error(f, st, &e);
}

/* Strict integer: decimal, whole string, within [min, max]. 0 on success. */
static int parse_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
    char *end = NULL;
    long long v;

    if (s == NULL || *s == '\0' || (*s != '-' && (*s < '0' || *s > '9')))
        return -1;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0')
        return -1;
    if ((int64_t)v < min || (int64_t)v > max)
        return -1;
    *out = (int64_t)v;
    return 0;
}


static ssize_t read_some(int fd, void *buf, size_t cap)
{
    for (;;) {
        ssize_t r = read(fd, buf, cap);
        if (r < 0 && errno == EINTR)
            continue;
        return r;
    }
}

/* Read all of @fd into a malloc'd buffer (NUL-terminated). 0 on success. */
static int slurp_fd(int fd, char **out, size_t *out_len)
{
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap);
    if (buf == NULL)
        return -1;
    for (;;) {
        if (cap - n < 2) {
            if (cap >= CLI_BODY_MEM_MAX) {
                free(buf);
                errno = EFBIG;
                return -1;
            }
            char *nb = realloc(buf, cap * 2);
            if (nb == NULL) {
                free(buf);
                return -1;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t r = read_some(fd, buf + n, cap - n - 1);
        if (r < 0) {
            int e = errno;
            free(buf);
            errno = e;
            return -1;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    *out = buf;
    *out_len = n;
    return 0;
}

/* A field value: no CR, LF, NUL or other controls but HTAB. */
static int is_field_value(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return 0;
    }
    return 1;
}

static int span_ieq(struct reqsign_span s, const char *lit)
{
    size_t n = strlen(lit);
    if (s.len != n)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char a = (unsigned char)s.ptr[i], b = (unsigned char)lit[i];
        if (a >= 'A' && a <= 'Z')
            a = (unsigned char)(a - 'A' + 'a');
        if (b >= 'A' && b <= 'Z')
            b = (unsigned char)(b - 'A' + 'a');
        if (a != b)
            return 0;
    }
    return 1;
}

static struct reqsign_span span_trim(struct reqsign_span s)
{
    while (s.len > 0 && (s.ptr[0] == ' ' || s.ptr[0] == '\t')) {
        s.ptr++;
        s.len--;
    }
    while (s.len > 0 && (s.ptr[s.len - 1] == ' ' || s.ptr[s.len - 1] == '\t'))
        s.len--;
    return s;
}

/* ------------------------------------------------------- option parsing */

enum opt_arg { OPT_FLAG = 0, OPT_VALUE = 1 };

struct optdef {
    const char *lng; /* without "--" */
    char shrt;       /* 0: none */
    enum opt_arg arg;
    int id;
};

struct optp {
    int argc;
    char **argv;
    int i;
    int only_positional;
    const char *cmd;
    const char *usage;
};

enum { P_END = 0, P_OPT = 1, P_POS = 2, P_ERR = -1 };

/* The next option (P_OPT, *id and *val set), positional argument (P_POS,
 * *val set), end (P_END) or a usage error already printed (P_ERR). */
static int next_opt(struct optp *p, const struct optdef *defs, int *id, const char **val)
{
    if (p->i >= p->argc)
        return P_END;
    char *a = p->argv[p->i++];
    *val = NULL;
    if (p->only_positional || a[0] != '-' || a[1] == '\0') {
        *val = a;
        return P_POS;
    }
    if (strcmp(a, "--") == 0) {
        p->only_positional = 1;
        return next_opt(p, defs, id, val);
    }
    const struct optdef *d = NULL;
    const char *attached = NULL;
    if (a[1] == '-') {
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t nlen = eq != NULL ? (size_t)(eq - name) : strlen(name);
        for (const struct optdef *o = defs; o->lng != NULL || o->shrt != 0; o++) {
            if (o->lng != NULL && strlen(o->lng) == nlen && strncmp(o->lng, name, nlen) == 0) {
                d = o;
                break;
            }
        }
        if (d == NULL) {
            reqsign_cli_usage_error(p->cmd, p->usage, "unknown option '%s'", a);
            return P_ERR;
        }
        if (eq != NULL) {
            if (d->arg == OPT_FLAG) {
                reqsign_cli_usage_error(p->cmd, p->usage, "option '%s' takes no argument", a);
                return P_ERR;
            }
            attached = eq + 1;
        }
    } else {
        for (const struct optdef *o = defs; o->lng != NULL || o->shrt != 0; o++) {
            if (o->shrt != 0 && o->shrt == a[1]) {
                d = o;
                break;
            }
        }
        if (d == NULL) {
            reqsign_cli_usage_error(p->cmd, p->usage, "unknown option '%s'", a);
            return P_ERR;
        }
        if (a[2] != '\0') {
            if (d->arg == OPT_FLAG) {
                reqsign_cli_usage_error(p->cmd, p->usage, "unknown option '%s'", a);
                return P_ERR;
            }
            attached = a + 2;
        }
    }
    *id = d->id;
    if (d->arg == OPT_VALUE) {
        if (attached != NULL) {
            *val = attached;
        } else if (p->i < p->argc) {
            *val = p->argv[p->i++];
        } else {
            reqsign_cli_usage_error(p->cmd, p->usage, "option '%s' needs an argument", a);
            return P_ERR;
        }
    }
    return P_OPT;
}

/* ------------------------------------------------------ header fields */

struct header_list {
    struct reqsign_header h[CLI_MAX_HEADERS];
    size_t n;
};

static int header_add(struct header_list *l, struct reqsign_span name, struct reqsign_span value)
{
    if (l->n >= CLI_MAX_HEADERS)
        return -1;
    l->h[l->n].name = name;
    l->h[l->n].value = value;
    l->n++;
    return 0;
}

/* Parse a -H 'Name: value' argument (spans point into @arg). 0 on success. */
static int parse_header_arg(const char *arg, struct reqsign_span *name, struct reqsign_span *value)
{
    const char *colon = strchr(arg, ':');
    if (colon == NULL || !reqsign_is_token(arg, (size_t)(colon - arg)))
        return -1;
    name->ptr = arg;
    name->len = (size_t)(colon - arg);
    value->ptr = colon + 1;
    value->len = strlen(colon + 1);
    *value = span_trim(*value);
    if (!is_field_value(value->ptr, value->len))
        return -1;
    return 0;
}

static const struct reqsign_header *header_find_last(const struct header_list *l, const char *name)
{
    for (size_t i = l->n; i > 0; i--)
        if (span_ieq(l->h[i - 1].name, name))
            return &l->h[i - 1];
    return NULL;
}

/* The --headers JSON object: adds its fields to @l. On failure prints the
 * error to stdout and returns -1. */
static int headers_from_json(const json_t *obj, struct header_list *l, const char *src)
{
    const char *key;
    json_t *v;

    if (!json_is_object(obj)) {
        print_error_msg(stdout, REQSIGN_E_INVALID_ARG,
                        "--headers %s: expected a JSON object of field name -> value", src);
        return -1;
    }
    json_object_foreach((json_t *)obj, key, v)
    {
        struct reqsign_span name = {key, strlen(key)};
        if (!reqsign_is_token(name.ptr, name.len)) {
            print_error_msg(stdout, REQSIGN_E_INVALID_ARG, "--headers: bad field name '%s'", key);
            return -1;
        }
        size_t n = json_is_array(v) ? json_array_size(v) : 1;
        if (!json_is_array(v) && !json_is_string(v)) {
            print_error_msg(stdout, REQSIGN_E_INVALID_ARG,
                            "--headers: the value of '%s' must be a string or an array of "
                            "strings",
                            key);
            return -1;
        }
        for (size_t i = 0; i < n; i++) {
            const json_t *s = json_is_array(v) ? json_array_get(v, i) : v;
            if (!json_is_string(s)) {
                print_error_msg(stdout, REQSIGN_E_INVALID_ARG,
                                "--headers: the value of '%s' must be a string or an array "
                                "of strings",
                                key);
                return -1;
            }
            struct reqsign_span value = {json_string_value(s), json_string_length(s)};
            if (!is_field_value(value.ptr, value.len)) {
                print_error_msg(stdout, REQSIGN_E_INVALID_ARG,
                                "--headers: the value of '%s' holds control characters", key);
                return -1;
            }
            if (header_add(l, name, value) != 0) {
                print_error_msg(stdout, REQSIGN_E_LIMIT, "more than %d header fields",
                                CLI_MAX_HEADERS);
                return -1;
            }
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- keygen */

enum { K_HELP = 1, K_OUT };

static int cmd_keygen(int argc, char **argv)
{
    static const struct optdef defs[] = {
        {"output", 'o', OPT_VALUE, K_OUT},
        {"help", 'h', OPT_FLAG, K_HELP},
        {NULL, 0, OPT_FLAG, 0},
    };
    struct optp p = {argc, argv, 0, 0, "keygen", USAGE_KEYGEN};
    const char *out_file = NULL, *val;
    int id = 0, r;

    while ((r = next_opt(&p, defs, &id, &val)) != P_END) {
        if (r == P_ERR)
            return EXIT_USAGE;
        if (r == P_POS) {
            reqsign_cli_usage_error("keygen", USAGE_KEYGEN, "unexpected argument '%s'", val);
            return EXIT_USAGE;
        }
        switch (id) {
        case K_HELP:
            fputs(USAGE_KEYGEN, stdout);
            return EXIT_OKAY;
        case K_OUT:
            if (out_file != NULL) {
                reqsign_cli_usage_error("keygen", USAGE_KEYGEN, "-o given twice");
                return EXIT_USAGE;
            }
            if (*val == '\0') {
                reqsign_cli_usage_error("keygen", USAGE_KEYGEN, "-o needs a file name");
                return EXIT_USAGE;
            }
            out_file = val;
            break;
        default:
            break;
        }
    }

    struct reqsign_error err;
    struct reqsign_key *key = NULL;
    enum reqsign_status st;
    char priv[2048]; /* secret: wiped before return */
    char pub[1024];  /* public */
    char keyid[REQSIGN_THUMBPRINT_BUF];
    size_t priv_len = 0, pub_len = 0;
    int rc = EXIT_FAIL;

    reqsign_error_clear(&err);
    st = ((key = reqsign_key_generate(&err)) != NULL ? REQSIGN_OK : err.code);
    if (st != REQSIGN_OK) {
        print_error(stderr, st, &err);
        return EXIT_FAIL;
    }
    st = reqsign_key_private_pem(key, priv, sizeof(priv), &priv_len);
    if (st == REQSIGN_OK)
        st = reqsign_key_public_pem(key, pub, sizeof(pub), &pub_len);
    if (st == REQSIGN_OK)
        st = reqsign_key_thumbprint(key, keyid);
    reqsign_key_free(key);
    if (st != REQSIGN_OK) {
        print_error(stderr, st, NULL);
        goto out;
    }

    if (out_file != NULL) {
        int fd = open(out_file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0) {
            int e = errno;
            print_error_msg(stderr, REQSIGN_E_IO,
                            e == EEXIST ? "%s: %s (refusing to overwrite)" : "%s: %s", out_file,
                            strerror(e));
            goto out;
        }
        int bad = reqsign_cli_write_all(fd, priv, priv_len) != 0 ||
                  (priv_len > 0 && priv[priv_len - 1] != '\n' && reqsign_cli_write_all(fd, "\n", 1) != 0);
        if (!bad && fsync(fd) != 0 && errno != EINVAL && errno != EROFS)
            bad = 1;
        int e = errno;
        if (close(fd) != 0 && !bad) {
            bad = 1;
            e = errno;
        }
        if (bad) {
            (void)unlink(out_file);
            print_error_msg(stderr, REQSIGN_E_IO, "%s: %s", out_file, strerror(e));
            goto out;
        }
    } else {
        /* straight to the fd, so no copy of the secret stays in stdio buffers */
        if (fflush(stdout) != 0 || reqsign_cli_write_all(STDOUT_FILENO, priv, priv_len) != 0 ||
            (priv_len > 0 && priv[priv_len - 1] != '\n' &&
             reqsign_cli_write_all(STDOUT_FILENO, "\n", 1) != 0)) {
            print_error_msg(stderr, REQSIGN_E_IO, "stdout: %s", strerror(errno));
            goto out;
        }
    }
    fwrite(pub, 1, pub_len, stdout);
    if (pub_len > 0 && pub[pub_len - 1] != '\n')
        fputc('\n', stdout);
    printf("keyid: %s\n", keyid);
    rc = EXIT_OKAY;
out:
    reqsign_memzero(priv, sizeof(priv));
    return rc;
}

/* ------------------------------------------------------------------ sign */

enum {
    S_HELP = 1,
    S_KEY,
    S_KEYID,
    S_METHOD,
    S_HEADER,
    S_DATA,
    S_CREATED,
    S_NONCE,
    S_JSON,
    S_LABEL,
    S_TAG,
    S_EXPIRES_IN,
    S_SHA512,
    S_INSECURE,
    S_SHOW_BASE,
};

/* Content-Digest of stdin, streamed. */
static enum reqsign_status digest_fd(int fd, unsigned algs, char *out, size_t cap,
                                     struct reqsign_error *err)
{
    struct reqsign_digest d;
    char buf[65536];
    size_t len;
    enum reqsign_status st = reqsign_digest_init(&d, algs, NULL);
    if (st != REQSIGN_OK)
        return reqsign_error_set(err, st, "body", REQSIGN_NO_OFFSET, NULL);
    for (;;) {
        ssize_t r = read_some(fd, buf, sizeof(buf));
        if (r < 0) {
            reqsign_digest_cleanup(&d);
            return reqsign_error_set(err, REQSIGN_E_IO, "body", REQSIGN_NO_OFFSET, "stdin: %s",
                                     strerror(errno));
        }
        if (r == 0)
            break;
        st = reqsign_digest_update(&d, buf, (size_t)r, NULL);
        if (st != REQSIGN_OK) {
            reqsign_digest_cleanup(&d);
            return reqsign_error_set(err, st, "body", REQSIGN_NO_OFFSET, NULL);
        }
    }
    return reqsign_digest_final(&d, out, cap, &len, NULL, NULL, NULL);
}

static int cmd_sign(int argc, char **argv)
{
    static const struct optdef defs[] = {
        {"key", 0, OPT_VALUE, S_KEY},
        {"keyid", 0, OPT_VALUE, S_KEYID},
        {"request", 'X', OPT_VALUE, S_METHOD},
        {"header", 'H', OPT_VALUE, S_HEADER},
        {"data", 'd', OPT_VALUE, S_DATA},
        {"created", 0, OPT_VALUE, S_CREATED},
        {"nonce", 0, OPT_VALUE, S_NONCE},
        {"json", 0, OPT_FLAG, S_JSON},
        {"label", 0, OPT_VALUE, S_LABEL},
        {"tag", 0, OPT_VALUE, S_TAG},
        {"expires-in", 0, OPT_VALUE, S_EXPIRES_IN},
        {"sha512", 0, OPT_FLAG, S_SHA512},
        {"insecure-key-permissions", 0, OPT_FLAG, S_INSECURE},
        {"show-base", 0, OPT_FLAG, S_SHOW_BASE},
        {"help", 'h', OPT_FLAG, S_HELP},
        {NULL, 0, OPT_FLAG, 0},
    };
    struct optp p = {argc, argv, 0, 0, "sign", USAGE_SIGN};
    const char *key_file = NULL, *keyid = NULL, *method = NULL, *data = NULL, *nonce = NULL;
    const char *label = NULL, *tag = NULL, *url = NULL, *val;
    int64_t created = 0, expires_in = 0;
    int json = 0, sha512 = 0, insecure = 0, show_base = 0;
    int id = 0, r;

    while ((r = next_opt(&p, defs, &id, &val)) != P_END) {
        if (r == P_ERR)
            return EXIT_USAGE;
        if (r == P_POS) {
            if (url != NULL) {
                reqsign_cli_usage_error("sign", USAGE_SIGN, "unexpected argument '%s' (one URL only)", val);
                return EXIT_USAGE;
            }
            url = val;
            continue;
        }
        switch (id) {
        case S_HELP:
            fputs(USAGE_SIGN, stdout);
            return EXIT_OKAY;
        case S_KEY:
            key_file = val;
            break;
        case S_KEYID:
            keyid = val;
            break;
        case S_METHOD:
            if (!reqsign_is_token(val, strlen(val))) {
                reqsign_cli_usage_error("sign", USAGE_SIGN, "bad method '%s'", val);
                return EXIT_USAGE;
            }
            method = val;
            break;
        case S_HEADER: {
            struct reqsign_span n, v;
            if (parse_header_arg(val, &n, &v) != 0) {
                reqsign_cli_usage_error("sign", USAGE_SIGN, "bad header '%s' (expected 'Name: value')", val);
                return EXIT_USAGE;
            }
            break; /* accepted; the reqsign profile does not cover other fields */
        }
        case S_DATA:
            if (data != NULL) {
                reqsign_cli_usage_error("sign", USAGE_SIGN, "--data given twice");
                return EXIT_USAGE;
            }
            data = val;
            break;
        case S_CREATED:
            if (parse_i64(val, 1, INT64_MAX / 2, &created) != 0) {
                reqsign_cli_usage_error("sign", USAGE_SIGN, "--created: bad number '%s'", val);
                return EXIT_USAGE;
            }
            break;
        case S_NONCE:
            nonce = val;
            break;
        case S_JSON:
            json = 1;
            break;
        case S_LABEL:
            label = val;
            break;
        case S_TAG:
            tag = val;
            break;
        case S_EXPIRES_IN:
            if (parse_i64(val, 1, INT64_MAX / 4, &expires_in) != 0) {
                reqsign_cli_usage_error("sign", USAGE_SIGN, "--expires-in: bad number '%s'", val);
                return EXIT_USAGE;
            }
            break;
        case S_SHA512:
            sha512 = 1;
            break;
        case S_INSECURE:
            insecure = 1;
            break;
        case S_SHOW_BASE:
            show_base = 1;
            break;
        default:
            break;
        }
    }
    if (key_file == NULL) {
        reqsign_cli_usage_error("sign", USAGE_SIGN, "--key is required");
        return EXIT_USAGE;
    }
    if (reqsign_cli_key_arg_ok("sign", USAGE_SIGN, key_file) != 0)
        return EXIT_USAGE;
    if (strcmp(key_file, "-") == 0 && data != NULL && strcmp(data, "@-") == 0) {
        reqsign_cli_usage_error("sign", USAGE_SIGN, "--key - and --data @- both read stdin");
        return EXIT_USAGE;
    }
    if (url == NULL) {
        reqsign_cli_usage_error("sign", USAGE_SIGN, "missing URL");
        return EXIT_USAGE;
    }
    if (method == NULL)
        method = data != NULL ? "POST" : "GET";

    unsigned algs = sha512 ? REQSIGN_DIGEST_SHA512 : REQSIGN_DIGEST_SHA256;
    struct reqsign_error err;
    struct reqsign_signer_opts so;
    struct reqsign_sign_input in;
    struct reqsign_signed out;
    struct reqsign_signer *signer = NULL;
    char digest[REQSIGN_CONTENT_DIGEST_OUT_BUF];
    char *base = NULL;
    enum reqsign_status st;
    int rc = EXIT_FAIL;

    reqsign_error_clear(&err);
    memset(&so, 0, sizeof(so));
    so.label = label;
    so.tag = tag;
    so.expires_in = expires_in;
    so.digest_algs = algs;
    /* --key: a key file (any format) or the key service's credential JSON */
    struct reqsign_credential *cred = NULL;
    st = ((cred = reqsign_credential_load(
               key_file, keyid, insecure ? REQSIGN_KEY_ALLOW_PERMISSIVE : 0u, &err)) != NULL
              ? REQSIGN_OK
              : err.code);
    if (st == REQSIGN_OK)
        signer = reqsign_credential_signer(cred, &so, &err);
    reqsign_credential_free(cred);
    if (signer == NULL) {
        print_error(stderr, err.code != REQSIGN_OK ? err.code : REQSIGN_E_INTERNAL, &err);
        return EXIT_FAIL;
    }

    memset(&in, 0, sizeof(in));
    memset(&out, 0, sizeof(out));
    in.method = method;
    in.url = url;
    in.created = created;
    in.nonce = nonce;
    if (data != NULL && data[0] == '@') {
        size_t dlen = 0;
        if (strcmp(data, "@-") == 0)
            st = digest_fd(STDIN_FILENO, algs, digest, sizeof(digest), &err);
        else
            st = reqsign_content_digest_file(data + 1, algs, digest, sizeof(digest), &dlen, &err);
        if (st != REQSIGN_OK) {
            print_error(stderr, st, &err);
            goto out;
        }
        in.content_digest = digest;
    } else if (data != NULL) {
        in.body = data;
        in.body_len = strlen(data);
    }
    if (show_base) {
        base = malloc(REQSIGN_BASE_BUF);
        if (base == NULL) {
            print_error(stderr, REQSIGN_E_NOMEM, NULL);
            goto out;
        }
        out.base_buf = base;
        out.base_cap = REQSIGN_BASE_BUF;
    }
    st = reqsign_signer_sign(signer, &in, &out, &err);
    if (show_base && out.base_len > 0) {
        fwrite(base, 1, out.base_len, stderr);
        fputc('\n', stderr);
    }
    if (st != REQSIGN_OK) {
        print_error(stderr, st, &err);
        goto out;
    }

    if (json) {
        json_t *o = json_object();
        char *s = NULL;
        if (o != NULL) {
            for (size_t i = 0; i < out.n_headers; i++) {
                char name[64];
                const struct reqsign_header *h = &out.headers[i];
                int nn = snprintf(name, sizeof(name), "%.*s", (int)h->name.len, h->name.ptr);
                if (nn < 0 || (size_t)nn >= sizeof(name) ||
                    json_object_set_new(o, name, json_stringn(h->value.ptr, h->value.len)) != 0) {
                    json_decref(o);
                    o = NULL;
                    break;
                }
            }
        }
        if (o != NULL)
            s = json_dumps(o, JSON_PRESERVE_ORDER);
        json_decref(o);
        if (s == NULL) {
            print_error(stderr, REQSIGN_E_NOMEM, NULL);
            goto out;
        }
        printf("%s\n", s);
        free(s);
    } else {
        for (size_t i = 0; i < out.n_headers; i++) {
            const struct reqsign_header *h = &out.headers[i];
            printf("%.*s: %.*s\n", (int)h->name.len, h->name.ptr, (int)h->value.len, h->value.ptr);
        }
    }
    rc = EXIT_OKAY;
out:
    free(base);
    reqsign_signer_free(signer);
    return rc;
}

/* ---------------------------------------------------------------- verify */

enum {
    V_HELP = 1,
    V_PUB,
    V_KEYID,
    V_METHOD,
    V_HEADER,
    V_HEADERS,
    V_DATA,
    V_NOW,
    V_MAX_AGE,
    V_SKEW,
    V_PROFILE,
    V_AUTHORITY,
    V_LABEL,
    V_TAG,
    V_SHOW_BASE,
    V_VERBOSE,
};

/* The received request, from a URL written by hand: scheme "://" authority,
 * then everything up to '#' is the origin-form target, unnormalised. */
struct url_view {
    struct reqsign_span scheme;
    struct reqsign_span authority;
    char *target; /* malloc'd */
    size_t target_len;
};

static int split_url(const char *url, struct url_view *u, const char **why)
{
    const char *sep = strstr(url, "://");
    memset(u, 0, sizeof(*u));
    if (sep == NULL || sep == url) {
        *why = "expected scheme://authority[/path][?query]";
        return -1;
    }
    for (const char *c = url; c < sep; c++) {
        int alpha = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z');
        if (!alpha &&
            (c == url || !((*c >= '0' && *c <= '9') || *c == '+' || *c == '-' || *c == '.'))) {
            *why = "bad scheme";
            return -1;
        }
    }
    u->scheme.ptr = url;
    u->scheme.len = (size_t)(sep - url);
    const char *auth = sep + 3;
    size_t alen = strcspn(auth, "/?#");
    /* userinfo is not sent in Host */
    for (size_t i = alen; i > 0; i--) {
        if (auth[i - 1] == '@') {
            alen -= i;
            auth += i;
            break;
        }
    }
    if (alen == 0 || auth[0] == ':') {
        *why = "URL has no host";
        return -1;
    }
    u->authority.ptr = auth;
    u->authority.len = alen;
    const char *rest = auth + alen;
    size_t rlen = strcspn(rest, "#");
    int slash = rlen == 0 || rest[0] != '/';
    u->target = malloc(rlen + 2);
    if (u->target == NULL) {
        *why = "out of memory";
        return -1;
    }
    if (slash)
        u->target[0] = '/';
    memcpy(u->target + slash, rest, rlen);
    u->target_len = rlen + (size_t)slash;
    u->target[u->target_len] = '\0';
    return 0;
}

static int64_t fixed_clock(void *ctx)
{
    return *(const int64_t *)ctx;
}

static int cmd_verify(int argc, char **argv)
{
    static const struct optdef defs[] = {
        {"pub", 0, OPT_VALUE, V_PUB},
        {"keyid", 0, OPT_VALUE, V_KEYID},
        {"request", 'X', OPT_VALUE, V_METHOD},
        {"header", 'H', OPT_VALUE, V_HEADER},
        {"headers", 0, OPT_VALUE, V_HEADERS},
        {"data", 'd', OPT_VALUE, V_DATA},
        {"now", 0, OPT_VALUE, V_NOW},
        {"max-age", 0, OPT_VALUE, V_MAX_AGE},
        {"skew", 0, OPT_VALUE, V_SKEW},
        {"profile", 0, OPT_VALUE, V_PROFILE},
        {"authority", 0, OPT_VALUE, V_AUTHORITY},
        {"label", 0, OPT_VALUE, V_LABEL},
        {"tag", 0, OPT_VALUE, V_TAG},
        {"show-base", 0, OPT_FLAG, V_SHOW_BASE},
        {"verbose", 'v', OPT_FLAG, V_VERBOSE},
        {"help", 'h', OPT_FLAG, V_HELP},
        {NULL, 0, OPT_FLAG, 0},
    };
    struct optp p = {argc, argv, 0, 0, "verify", USAGE_VERIFY};
    const char *pub_file = NULL, *keyid = NULL, *method = NULL, *headers_file = NULL;
    const char *data = NULL, *authority = NULL, *label = NULL, *tag = NULL, *url = NULL, *val;
    int64_t now = 0, max_age = 0, skew = 0;
    int have_now = 0, have_skew = 0, show_base = 0, verbose = 0;
    enum reqsign_profile profile = REQSIGN_PROFILE_REQSIGN;
    static struct header_list cli_headers; /* -H, in order */
    static struct header_list all;         /* --headers, then -H */
    int id = 0, r;

    while ((r = next_opt(&p, defs, &id, &val)) != P_END) {
        if (r == P_ERR)
            return EXIT_USAGE;
        if (r == P_POS) {
            if (url != NULL) {
                reqsign_cli_usage_error("verify", USAGE_VERIFY, "unexpected argument '%s' (one URL only)", val);
                return EXIT_USAGE;
            }
            url = val;
            continue;
        }
        switch (id) {
        case V_HELP:
            fputs(USAGE_VERIFY, stdout);
            return EXIT_OKAY;
        case V_PUB:
            pub_file = val;
            break;
        case V_KEYID:
            keyid = val;
            break;
        case V_METHOD:
            if (!reqsign_is_token(val, strlen(val))) {
                reqsign_cli_usage_error("verify", USAGE_VERIFY, "bad method '%s'", val);
                return EXIT_USAGE;
            }
            method = val;
            break;
        case V_HEADER: {
            struct reqsign_span n, v;
            if (parse_header_arg(val, &n, &v) != 0) {
                reqsign_cli_usage_error("verify", USAGE_VERIFY, "bad header '%s' (expected 'Name: value')",
                            val);
                return EXIT_USAGE;
            }
            if (header_add(&cli_headers, n, v) != 0) {
                reqsign_cli_usage_error("verify", USAGE_VERIFY, "too many -H options");
                return EXIT_USAGE;
            }
            break;
        }
        case V_HEADERS:
            if (headers_file != NULL) {
                reqsign_cli_usage_error("verify", USAGE_VERIFY, "--headers given twice");
                return EXIT_USAGE;
            }
            headers_file = val;
            break;
        case V_DATA:
            if (data != NULL) {
                reqsign_cli_usage_error("verify", USAGE_VERIFY, "--data given twice");
                return EXIT_USAGE;
            }
            data = val;
            break;
        case V_NOW:
            if (parse_i64(val, 0, INT64_MAX / 4, &now) != 0) {
                reqsign_cli_usage_error("verify", USAGE_VERIFY, "--now: bad number '%s'", val);
                return EXIT_USAGE;
            }
            have_now = 1;
            break;
        case V_MAX_AGE:
            if (parse_i64(val, 1, INT64_MAX / 8, &max_age) != 0) {
                reqsign_cli_usage_error("verify", USAGE_VERIFY, "--max-age: bad number '%s'", val);
                return EXIT_USAGE;
            }
            break;
        case V_SKEW:
            if (parse_i64(val, 0, INT64_MAX / 8, &skew) != 0) {
                reqsign_cli_usage_error("verify", USAGE_VERIFY, "--skew: bad number '%s'", val);
                return EXIT_USAGE;
            }
            have_skew = 1;
            break;
        case V_PROFILE:
            if (strcmp(val, "reqsign") == 0) {
                profile = REQSIGN_PROFILE_REQSIGN;
            } else if (strcmp(val, "rfc9421") == 0) {
                profile = REQSIGN_PROFILE_RFC9421;
            } else {
                reqsign_cli_usage_error("verify", USAGE_VERIFY,
                            "--profile: '%s' is not one of reqsign, rfc9421", val);
                return EXIT_USAGE;
            }
            break;
        case V_AUTHORITY:
            authority = val;
            break;
        case V_LABEL:
            label = val;
            break;
        case V_TAG:
            tag = val;
            break;
        case V_SHOW_BASE:
            show_base = 1;
            break;
        case V_VERBOSE:
            verbose = 1;
            break;
        default:
            break;
        }
    }
    if (pub_file == NULL) {
        reqsign_cli_usage_error("verify", USAGE_VERIFY, "--pub is required");
        return EXIT_USAGE;
    }
    if (url == NULL) {
        reqsign_cli_usage_error("verify", USAGE_VERIFY, "missing URL");
        return EXIT_USAGE;
    }
    if (headers_file != NULL && strcmp(headers_file, "-") == 0 && data != NULL &&
        strcmp(data, "@-") == 0) {
        reqsign_cli_usage_error("verify", USAGE_VERIFY, "--headers - and --data @- both read stdin");
        return EXIT_USAGE;
    }
    if (method == NULL)
        method = data != NULL ? "POST" : "GET";

    struct reqsign_error err;
    struct reqsign_static_key sk;
    struct reqsign_key *key = NULL;
    struct reqsign_nonce_store *store = NULL;
    struct reqsign_verifier *verifier = NULL;
    struct reqsign_verification vs;
    struct reqsign_verifier_opts vo;
    struct reqsign_request req;
    struct url_view u;
    json_t *hjson = NULL;
    char *base = NULL, *body_mem = NULL;
    const char *body = NULL;
    size_t body_len = 0;
    int body_fd = -1, stream = 0;
    char clen[32];
    enum reqsign_status st;
    int rc = EXIT_FAIL;
    const char *why = NULL;

    reqsign_error_clear(&err);
    reqsign_verification_init(&vs);
    memset(&u, 0, sizeof(u));

    /* the key: only its public part */
    st = ((key = reqsign_key_load_file(pub_file, 0, &err)) != NULL ? REQSIGN_OK : err.code);
    if (st == REQSIGN_E_KEY_PERMISSIONS) {
        fprintf(stderr,
                "reqsign verify: warning: %s holds a private key readable by group or "
                "others; using its public part\n",
                pub_file);
        reqsign_error_clear(&err);
        st = ((key = reqsign_key_load_file(pub_file, REQSIGN_KEY_ALLOW_PERMISSIVE, &err)) != NULL
                  ? REQSIGN_OK
                  : err.code);
    }
    memset(&sk, 0, sizeof(sk));
    sk.keyid = keyid;
    if (st == REQSIGN_E_KEY_FORMAT) {
        /* JSON that is no JWK: a credential or a key record */
        struct reqsign_error e2;
        reqsign_error_clear(&e2);
        enum reqsign_status st2 = load_pub_json(pub_file, sk.public_key, &e2);
        if (st2 == REQSIGN_OK) {
            st = REQSIGN_OK;
            goto have_pub;
        }
        if (e2.message[0] != '\0') {
            st = st2;
            err = e2;
        }
    }
    if (st != REQSIGN_OK) {
        print_error(stdout, st, &err);
        goto out;
    }
    reqsign_key_public_raw(key, sk.public_key);
    reqsign_key_free(key);
    key = NULL;
have_pub:

    /* the request */
    if (split_url(url, &u, &why) != 0) {
        print_error_msg(stdout, REQSIGN_E_URL, "%s: %s", url, why);
        goto out;
    }
    if (headers_file != NULL) {
        json_error_t je;
        if (strcmp(headers_file, "-") == 0)
            hjson = json_loadf(stdin, JSON_REJECT_DUPLICATES, &je);
        else
            hjson = json_load_file(headers_file, JSON_REJECT_DUPLICATES, &je);
        if (hjson == NULL) {
            char where[64];
            snprintf(where, sizeof(where), "line %d column %d", je.line, je.column);
            struct reqsign_error e2;
            reqsign_error_clear(&e2);
            (void)reqsign_error_set(&e2, REQSIGN_E_INVALID_ARG, NULL, REQSIGN_NO_OFFSET,
                                    "--headers %s: %s (%s)", headers_file, je.text, where);
            print_error(stdout, REQSIGN_E_INVALID_ARG, &e2);
            goto out;
        }
        if (headers_from_json(hjson, &all, headers_file) != 0)
            goto out;
    }
    for (size_t i = 0; i < cli_headers.n; i++) {
        if (header_add(&all, cli_headers.h[i].name, cli_headers.h[i].value) != 0) {
            print_error_msg(stdout, REQSIGN_E_LIMIT, "more than %d header fields", CLI_MAX_HEADERS);
            goto out;
        }
    }

    memset(&req, 0, sizeof(req));
    req.method.ptr = method;
    req.method.len = strlen(method);
    req.scheme = u.scheme;
    req.target.ptr = u.target;
    req.target.len = u.target_len;
    const struct reqsign_header *host = header_find_last(&all, "host");
    if (host != NULL) {
        req.authority = span_trim(host->value);
    } else {
        req.authority = u.authority;
        if (header_add(&all, (struct reqsign_span){"Host", 4}, u.authority) != 0) {
            print_error_msg(stdout, REQSIGN_E_LIMIT, "more than %d header fields", CLI_MAX_HEADERS);
            goto out;
        }
    }

    /* the body */
    if (data != NULL && data[0] == '@') {
        struct stat sb;
        if (strcmp(data, "@-") == 0) {
            body_fd = STDIN_FILENO;
        } else {
            body_fd = open(data + 1, O_RDONLY | O_CLOEXEC);
            if (body_fd < 0) {
                print_error_msg(stdout, REQSIGN_E_IO, "%s: %s", data + 1, strerror(errno));
                goto out;
            }
        }
        if (fstat(body_fd, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size >= 0) {
            off_t pos = lseek(body_fd, 0, SEEK_CUR);
            body_len = (size_t)(sb.st_size - (pos > 0 ? pos : 0));
            stream = 1;
        } else if (slurp_fd(body_fd, &body_mem, &body_len) != 0) {
            print_error_msg(stdout, REQSIGN_E_IO, "%s: %s", data + 1, strerror(errno));
            goto out;
        } else {
            body = body_mem;
        }
    } else if (data != NULL) {
        body = data;
        body_len = strlen(data);
    }
    if (body_len > 0 && header_find_last(&all, "content-length") == NULL &&
        header_find_last(&all, "transfer-encoding") == NULL) {
        int n = snprintf(clen, sizeof(clen), "%zu", body_len);
        if (n < 0 || header_add(&all, (struct reqsign_span){"Content-Length", 14},
                                (struct reqsign_span){clen, (size_t)n}) != 0) {
            print_error_msg(stdout, REQSIGN_E_LIMIT, "more than %d header fields", CLI_MAX_HEADERS);
            goto out;
        }
    }
    req.headers = all.h;
    req.n_headers = all.n;

    /* the verifier */
    store = reqsign_nonce_store_memory_new(NULL, NULL);
    if (store == NULL) {
        print_error(stdout, REQSIGN_E_NOMEM, NULL);
        goto out;
    }
    if (!have_now)
        now = (int64_t)time(NULL);
    memset(&vo, 0, sizeof(vo));
    vo.profile = profile;
    vo.max_age = max_age;
    vo.skew = have_skew ? (skew == 0 ? -1 : skew) : 0;
    vo.label = label;
    vo.public_authority = authority;
    /* without --authority, the request's Host (or the URL's authority): this
     * checks a request as received, it is not a service */
    vo.any_authority = authority == NULL;
    vo.required_tag = tag;
    vo.clock = fixed_clock;
    vo.clock_ctx = &now;
    vo.lookup = reqsign_static_key_lookup;
    vo.lookup_ctx = &sk;
    vo.nonces = store;
    verifier = reqsign_verifier_new(&vo, &err);
    if (verifier == NULL) {
        print_error(stdout, err.code != REQSIGN_OK ? err.code : REQSIGN_E_INTERNAL, &err);
        goto out;
    }

    if (show_base) {
        base = malloc(REQSIGN_BASE_BUF);
        if (base == NULL) {
            print_error(stdout, REQSIGN_E_NOMEM, NULL);
            goto out;
        }
        vs.base_buf = base;
        vs.base_cap = REQSIGN_BASE_BUF;
    }
    st = reqsign_verifier_verify_headers(verifier, &req, &vs, &err);
    if (show_base && vs.base_len > 0) {
        fwrite(base, 1, vs.base_len, stderr);
        fputc('\n', stderr);
    }
    if (st == REQSIGN_OK && stream) {
        char buf[65536];
        for (;;) {
            ssize_t n = read_some(body_fd, buf, sizeof(buf));
            if (n < 0) {
                print_error_msg(stdout, REQSIGN_E_IO, "%s: %s", data + 1, strerror(errno));
                goto out;
            }
            if (n == 0)
                break;
            st = reqsign_verification_body(&vs, buf, (size_t)n, &err);
            if (st != REQSIGN_OK)
                break;
        }
    } else if (st == REQSIGN_OK) {
        st = reqsign_verification_body(&vs, body, body_len, &err);
    }
    if (st == REQSIGN_OK)
        st = reqsign_verification_finish(&vs, &err);
    if (st != REQSIGN_OK) {
        print_error(stdout, st, &err);
        goto out;
    }
    printf("ok\n");
    if (verbose)
        printf("keyid: %s  created: %lld\n", vs.keyid, (long long)vs.created);
    rc = EXIT_OKAY;
out:
    reqsign_verification_cleanup(&vs);
    reqsign_verifier_free(verifier);
    reqsign_nonce_store_free(store);
    reqsign_key_free(key);
    if (body_fd > STDIN_FILENO)
        close(body_fd);
    free(body_mem);
    free(base);
    free(u.target);
    json_decref(hjson);
    reqsign_memzero(&sk, sizeof(sk));
    return rc;
}

/* ------------------------------------------------------------------ main */

/* send.c, keys.c */

static int cmd_curl(int (*fn)(int, char **), int argc, char **argv)
{
    if (reqsign_global_init() != REQSIGN_OK) { /* libcurl and the crypto backend */
        fprintf(stderr, "reqsign: cannot initialise libcurl\n");
        return EXIT_FAIL;
    }
    int rc = fn(argc, argv);
    reqsign_global_cleanup();
    return rc;
}

static int finish(int rc)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "reqsign: error writing to stdout: %s\n", strerror(errno));
        return rc == EXIT_OKAY ? EXIT_FAIL : rc;
    }
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(USAGE_MAIN, stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        fputs(USAGE_MAIN, stdout);
        return finish(EXIT_OKAY);
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        printf("reqsign %s\n", REQSIGN_CLI_VERSION);
        return finish(EXIT_OKAY);
    }
    if (strcmp(cmd, "help") == 0) {
        const char *topic = argc > 2 ? argv[2] : NULL;
        if (argc > 3) {
            reqsign_cli_usage_error(NULL, USAGE_MAIN, "help: unexpected argument '%s'", argv[3]);
            return EXIT_USAGE;
        }
        if (topic == NULL)
            fputs(USAGE_MAIN, stdout);
        else if (strcmp(topic, "keygen") == 0)
            fputs(USAGE_KEYGEN, stdout);
        else if (strcmp(topic, "sign") == 0)
            fputs(USAGE_SIGN, stdout);
        else if (strcmp(topic, "verify") == 0)
            fputs(USAGE_VERIFY, stdout);
        else if (strcmp(topic, "send") == 0 || strcmp(topic, "keys") == 0)
            return finish(cmd_curl(topic[0] == 's' ? reqsign_cli_send : reqsign_cli_keys, 1,
                                   (char *[]){"--help", NULL}));
        else {
            reqsign_cli_usage_error(NULL, USAGE_MAIN, "help: unknown command '%s'", topic);
            return EXIT_USAGE;
        }
        return finish(EXIT_OKAY);
    }
    if (strcmp(cmd, "keygen") == 0)
        return finish(cmd_keygen(argc - 2, argv + 2));
    if (strcmp(cmd, "sign") == 0)
        return finish(cmd_sign(argc - 2, argv + 2));
    if (strcmp(cmd, "verify") == 0)
        return finish(cmd_verify(argc - 2, argv + 2));
    if (strcmp(cmd, "send") == 0)
        return finish(cmd_curl(reqsign_cli_send, argc - 2, argv + 2));
    if (strcmp(cmd, "keys") == 0)
        return finish(cmd_curl(reqsign_cli_keys, argc - 2, argv + 2));
    if (strcmp(cmd, "accounts") == 0)
        return finish(cmd_curl(reqsign_cli_accounts, argc - 2, argv + 2));
    if (strcmp(cmd, "enroll") == 0)
        return finish(cmd_curl(reqsign_cli_enroll, argc - 2, argv + 2));
    if (strcmp(cmd, "audit") == 0)
        return finish(cmd_curl(reqsign_cli_audit, argc - 2, argv + 2));
    if (cmd[0] == '-')
        reqsign_cli_usage_error(NULL, USAGE_MAIN, "unknown option '%s'", cmd);
    else
        reqsign_cli_usage_error(NULL, USAGE_MAIN, "unknown command '%s'", cmd);
    return EXIT_USAGE;
}
