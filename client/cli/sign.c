/* reqsign sign: print the header fields that sign an HTTP request. */
#include "cli.h"

#include <reqsign/base.h>
#include <reqsign/credential.h>
#include <reqsign/digest.h>
#include <reqsign/error.h>
#include <reqsign/key.h>
#include <reqsign/signer.h>

#include <jansson.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char reqsign_cli_sign_usage[] =
    "usage: reqsign sign [--key FILE | --profile NAME] [options] URL\n"
    "\n"
    "Sign a request and print the header fields to add, one 'Name: value' per line:\n"
    "Content-Digest, Signature-Input, Signature.\n"
    "\n"
    "Options:\n"
    "  --key FILE                  private key (PEM, DER, JWK or raw seed) or the key\n"
    "                              service's credential JSON file; '-' reads it from\n"
    "                              stdin (inline JSON is refused: arguments are public)\n"
    "  --profile NAME              the credential of profile NAME:\n"
    "                              $XDG_CONFIG_HOME/reqsign/credentials/NAME.json\n"
    "                              (default ~/.config/reqsign/...). Without --key\n"
    "                              or --profile: $REQSIGN_CREDENTIAL, else\n"
    "                              $REQSIGN_PROFILE, else the profile \"default\"\n"
    "  --keyid ID                  keyid to put in the signature (default: the key's\n"
    "                              RFC 7638 thumbprint)\n"
    "  -X, --request METHOD        method (default GET, or POST with --data)\n"
    "  -H, --header 'Name: value'  a header field (accepted; not covered by the profile)\n"
    "  -d, --data STRING|@FILE     the body; @FILE streams a file, @- reads stdin\n"
    "  --created N                 created time, unix seconds (default: now)\n"
    "  --nonce STR                 nonce (default: 16 random bytes, base64url)\n"
    "  --label L                   signature label (default sig1)\n"
    "  --tag T                     add a tag parameter\n"
    "  --expires-in N|+DURATION    add expires = created + N seconds, or +30d, +12h,\n"
    "                              +90m, +3600s\n"
    "  --sha512                    Content-Digest with sha-512 instead of sha-256\n"
    "  --json                      print one JSON object {field name: value}\n"
    "  --show-base                 print the signature base to stderr\n"
    "  --insecure-key-permissions  accept a key file readable by group or others\n"
    "  -h, --help                  show this help\n";

/* ------------------------------------------------------------------ sign */

enum { S_CREATED = 1, S_NONCE, S_JSON, S_EXPIRES_IN, S_SHA512 };

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
        ssize_t r = reqsign_cli_read(fd, buf, sizeof(buf));
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

/* What the command line of `reqsign sign` says. */
struct sign_args {
    struct reqsign_cli_reqopts ro; /* -X, -H, -d, --label, --tag, --show-base */
    struct reqsign_cli_cred cr;    /* --key, --profile, --keyid, ... */
    const char *url, *nonce;
    int64_t created, expires_in;
    int json, sha512;
};

/* sign's own option @id (value @val) into @a: EXIT_OKAY or EXIT_USAGE (printed). */
static int sign_option(struct sign_args *a, int id, const char *val)
{
    switch (id) {
    case S_CREATED:
        if (reqsign_cli_parse_i64(val, 1, INT64_MAX / 2, &a->created) != 0) {
            reqsign_cli_usage_error("sign", reqsign_cli_sign_usage, "--created: bad number '%s'",
                                    val);
            return EXIT_USAGE;
        }
        break;
    case S_NONCE:
        a->nonce = val;
        break;
    case S_JSON:
        a->json = 1;
        break;
    case S_EXPIRES_IN:
        if (reqsign_cli_parse_duration(val, 1, INT64_MAX / 4, &a->expires_in) != 0) {
            reqsign_cli_usage_error("sign", reqsign_cli_sign_usage,
                                    "--expires-in: bad duration '%s' (seconds, or +30d, "
                                    "+12h, +90m, +3600s)",
                                    val);
            return EXIT_USAGE;
        }
        break;
    case S_SHA512:
        a->sha512 = 1;
        break;
    default:
        break;
    }
    return EXIT_OKAY;
}

/* sign's arguments into @a: EXIT_OKAY, EXIT_USAGE (printed), or -1 (--help
 * printed). */
static int sign_parse(int argc, char **argv, struct sign_args *a)
{
    static const struct reqsign_opt_def defs[] = {
        CLI_OPTS_REQUEST,
        CLI_OPTS_CREDENTIAL,
        {"keyid", 0, REQSIGN_OPT_VALUE, CLI_O_KEYID},
        {"created", 0, REQSIGN_OPT_VALUE, S_CREATED},
        {"nonce", 0, REQSIGN_OPT_VALUE, S_NONCE},
        {"json", 0, REQSIGN_OPT_FLAG, S_JSON},
        {"expires-in", 0, REQSIGN_OPT_VALUE, S_EXPIRES_IN},
        {"sha512", 0, REQSIGN_OPT_FLAG, S_SHA512},
        {NULL, 0, REQSIGN_OPT_FLAG, 0},
    };
    struct reqsign_opt_parser p = {.prog = REQSIGN_CLI_PROG,
                                   .cmd = "sign",
                                   .usage = reqsign_cli_sign_usage,
                                   .argc = argc,
                                   .argv = argv};
    const char *val;
    int id = 0, r;

    memset(a, 0, sizeof(*a));
    while ((r = reqsign_opt_next(&p, defs, &id, &val)) != REQSIGN_OPT_END) {
        if (r == REQSIGN_OPT_ERROR)
            return EXIT_USAGE;
        if (r == REQSIGN_OPT_OPERAND) {
            if (a->url != NULL) {
                reqsign_cli_usage_error("sign", reqsign_cli_sign_usage,
                                        "unexpected argument '%s' (one URL only)", val);
                return EXIT_USAGE;
            }
            a->url = val;
            continue;
        }
        int c = reqsign_cli_request_opt(&p, id, val, &a->ro, NULL, NULL);
        if (c == 0)
            c = reqsign_cli_common_opt(&p, id, val, &a->cr);
        if (c < 0)
            return EXIT_USAGE;
        if (c == 2)
            return -1; /* --help */
        if (c > 0)
            continue; /* -H is accepted; the reqsign profile does not cover other fields */
        if (sign_option(a, id, val) != EXIT_OKAY)
            return EXIT_USAGE;
    }
    const char *data = a->ro.data, *key_file = a->cr.key;
    if (key_file != NULL && strcmp(key_file, "-") == 0 && data != NULL && strcmp(data, "@-") == 0) {
        reqsign_cli_usage_error("sign", reqsign_cli_sign_usage,
                                "--key - and --data @- both read stdin");
        return EXIT_USAGE;
    }
    if (a->url == NULL) {
        reqsign_cli_usage_error("sign", reqsign_cli_sign_usage, "missing URL");
        return EXIT_USAGE;
    }
    if (a->ro.method == NULL)
        a->ro.method = data != NULL ? "POST" : "GET";
    return EXIT_OKAY;
}

/* The signer of the credential (--key, $REQSIGN_CREDENTIAL or a profile: a
 * key file of any format or the key service's credential JSON), with the
 * signature's options: EXIT_OKAY, or EXIT_FAIL / EXIT_USAGE (printed). */
static int sign_load(const struct sign_args *a, unsigned algs, struct reqsign_signer **signer)
{
    struct reqsign_signer_opts so;
    memset(&so, 0, sizeof(so));
    so.label = a->ro.label;
    so.tag = a->ro.tag;
    so.expires_in = a->expires_in;
    so.digest_algs = algs;
    struct reqsign_credential *cred = NULL;
    int rc = reqsign_cli_load_signer("sign", &a->cr, &so, &cred, signer);
    reqsign_credential_free(cred);
    return rc;
}

/* The request to sign into @in; --data @FILE and @- are digested here
 * (streamed) into @digest. 0, or -1 (printed). */
static int sign_input(const struct sign_args *a, unsigned algs, struct reqsign_sign_input *in,
                      char *digest, size_t digest_cap)
{
    const char *data = a->ro.data;
    struct reqsign_error err;
    enum reqsign_status st;

    reqsign_error_clear(&err);
    memset(in, 0, sizeof(*in));
    in->method = a->ro.method;
    in->url = a->url;
    in->created = a->created;
    in->nonce = a->nonce;
    if (data != NULL && data[0] == '@') {
        size_t dlen = 0;
        if (strcmp(data, "@-") == 0)
            st = digest_fd(STDIN_FILENO, algs, digest, digest_cap, &err);
        else
            st = reqsign_content_digest_file(data + 1, algs, digest, digest_cap, &dlen, &err);
        if (st != REQSIGN_OK) {
            reqsign_cli_print_error(stderr, st, &err);
            return -1;
        }
        in->content_digest = digest;
    } else if (data != NULL) {
        in->body = data;
        in->body_len = strlen(data);
    }
    return 0;
}

/* The header fields of @out on stdout: "Name: value" lines, or with --json
 * one JSON object. 0, or -1 (printed). */
static int sign_print(const struct reqsign_signed *out, int json)
{
    if (!json) {
        for (size_t i = 0; i < out->n_headers; i++) {
            const struct reqsign_header *h = &out->headers[i];
            printf("%.*s: %.*s\n", (int)h->name.len, h->name.ptr, (int)h->value.len, h->value.ptr);
        }
        return 0;
    }
    json_t *o = json_object();
    char *s = NULL;
    for (size_t i = 0; o != NULL && i < out->n_headers; i++) {
        char name[64];
        const struct reqsign_header *h = &out->headers[i];
        int nn = snprintf(name, sizeof(name), "%.*s", (int)h->name.len, h->name.ptr);
        if (nn < 0 || (size_t)nn >= sizeof(name) ||
            json_object_set_new(o, name, json_stringn(h->value.ptr, h->value.len)) != 0) {
            json_decref(o);
            o = NULL;
        }
    }
    if (o != NULL)
        s = json_dumps(o, JSON_PRESERVE_ORDER);
    json_decref(o);
    if (s == NULL) {
        reqsign_cli_print_error(stderr, REQSIGN_E_NOMEM, NULL);
        return -1;
    }
    printf("%s\n", s);
    free(s);
    return 0;
}

int reqsign_cli_sign(int argc, char **argv)
{
    struct sign_args a;
    int rc = sign_parse(argc, argv, &a);
    if (rc != EXIT_OKAY)
        return rc < 0 ? EXIT_OKAY : rc;
    unsigned algs = a.sha512 ? REQSIGN_DIGEST_SHA512 : REQSIGN_DIGEST_SHA256;
    struct reqsign_signer *signer = NULL;
    rc = sign_load(&a, algs, &signer);
    if (rc != EXIT_OKAY)
        return rc;

    struct reqsign_sign_input in;
    struct reqsign_signed out;
    struct reqsign_error err;
    char digest[REQSIGN_CONTENT_DIGEST_OUT_BUF];
    char *base = NULL;
    rc = EXIT_FAIL;
    reqsign_error_clear(&err);
    memset(&out, 0, sizeof(out));
    if (sign_input(&a, algs, &in, digest, sizeof(digest)) != 0)
        goto out;
    if (a.ro.show_base) {
        base = malloc(REQSIGN_BASE_BUF);
        if (base == NULL) {
            reqsign_cli_print_error(stderr, REQSIGN_E_NOMEM, NULL);
            goto out;
        }
        out.base_buf = base;
        out.base_cap = REQSIGN_BASE_BUF;
    }
    enum reqsign_status st = reqsign_signer_sign(signer, &in, &out, &err);
    if (a.ro.show_base && out.base_len > 0) {
        fwrite(base, 1, out.base_len, stderr);
        fputc('\n', stderr);
    }
    if (st != REQSIGN_OK)
        reqsign_cli_print_error(stderr, st, &err);
    else if (sign_print(&out, a.json) == 0)
        rc = EXIT_OKAY;
out:
    free(base);
    reqsign_signer_free(signer);
    return rc;
}
