/* reqsign enroll: enroll a key with an enrollment token (docs/KEYSERVICE.md).
 *
 * enroll generates the key here by default, registers only its public key
 * (the request is signed by that key: proof of possession) and writes the
 * credential (mode 0600, never overwriting) with the private key added; with
 * --generate the service makes the key and returns it once (unsigned request).
 */
#include <reqsign/credential.h>
#include <reqsign/error.h>
#include <reqsign/key.h>
#include <reqsign/signer.h>

#include <curl/curl.h>
#include <jansson.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static const char USAGE_ENROLL[] =
    "usage: reqsign enroll --service URL [--token FILE|-] [--label L] [--generate]\n"
    "                      (-o FILE | --profile NAME) [--cacert FILE] [-k]\n"
    "\n"
    "Enroll a key in the account of an enrollment token. By default the key pair is\n"
    "generated here and only its public key is sent (the request is signed by it);\n"
    "the credential with the private key is written to FILE (mode 0600, never\n"
    "overwritten) and the keyid printed. --generate lets the service make the key\n"
    "and return it once instead. --profile NAME (or --to-profile NAME) writes it to\n"
    "the profile instead: $XDG_CONFIG_HOME/reqsign/credentials/NAME.json (default\n"
    "~/.config/reqsign/...; directories created with mode 0700).\n"
    "The enrollment token is read from FILE, from stdin with '--token -', or from\n"
    "$REQSIGN_ENROLL_TOKEN; never from the command line, where every local user\n"
    "can read it (a token given there is refused).\n"
    "  --cacert FILE   trust the CA certificates in FILE (an https service)\n"
    "  -k, --insecure  do not verify the service's TLS certificate\n"
    "Exit status: 0 success, 1 failure, 2 usage error.\n";

#define ENROLL_TOKEN_ENV "REQSIGN_ENROLL_TOKEN"
#define ENROLL_TOKEN_MAX 256

/* 1 if @s has the look of a token itself (base64url characters only, at least
 * 16 of them) rather than of a path. */
static int looks_like_token(const char *s)
{
    return reqsign_cli_base64url_len(s) >= 16;
}

/* The enrollment token from @spec (a file, "-" for stdin) or, with @spec NULL,
 * from $REQSIGN_ENROLL_TOKEN, into @tok (surrounding blanks trimmed). Returns
 * EXIT_OKAY, or EXIT_USAGE / EXIT_FAIL with a message printed (never the token). */
static int read_token(const char *cmd, const char *usage, const char *spec,
                      char tok[ENROLL_TOKEN_MAX + 1])
{
    char *buf = NULL;
    size_t len = 0;
    tok[0] = '\0';
    if (spec == NULL) {
        const char *env = getenv(ENROLL_TOKEN_ENV);
        if (env == NULL || env[0] == '\0') {
            reqsign_cli_usage_error(cmd, usage,
                                    "no enrollment token: give --token FILE, --token - (stdin) "
                                    "or set " ENROLL_TOKEN_ENV);
            return EXIT_USAGE;
        }
        len = strlen(env);
        buf = malloc(len + 1);
        if (buf == NULL)
            return EXIT_FAIL;
        memcpy(buf, env, len + 1);
    } else {
        int fd = strcmp(spec, "-") == 0 ? STDIN_FILENO : open(spec, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            if (errno == ENOENT && looks_like_token(spec)) {
                /* never echoed: it is a secret */
                reqsign_cli_usage_error(cmd, usage,
                                        "--token takes a file or '-', not the token itself: a "
                                        "command line is readable by every local user (ps); "
                                        "pipe it in (--token -) or set " ENROLL_TOKEN_ENV);
                return EXIT_USAGE;
            }
            fprintf(stderr, "reqsign %s: error: io: --token '%s': %s\n", cmd, spec,
                    strerror(errno));
            return EXIT_FAIL;
        }
        int r = reqsign_cli_slurp_fd(fd, &buf, &len);
        int e = errno;
        if (fd != STDIN_FILENO)
            close(fd);
        if (r != 0) {
            fprintf(stderr, "reqsign %s: error: io: --token %s: %s\n", cmd,
                    strcmp(spec, "-") == 0 ? "(stdin)" : spec, strerror(e));
            return EXIT_FAIL;
        }
    }
    size_t a = 0, b = len;
    while (a < b && (buf[a] == ' ' || buf[a] == '\t' || buf[a] == '\n' || buf[a] == '\r'))
        a++;
    while (b > a &&
           (buf[b - 1] == ' ' || buf[b - 1] == '\t' || buf[b - 1] == '\n' || buf[b - 1] == '\r'))
        b--;
    int rc = EXIT_OKAY;
    if (b == a || b - a > ENROLL_TOKEN_MAX || memchr(buf + a, '\n', b - a) != NULL) {
        fprintf(stderr, "reqsign %s: error: enrollment_invalid: the token read is %s\n", cmd,
                b == a ? "empty" : "not one line of at most 256 characters");
        rc = EXIT_FAIL;
    } else {
        memcpy(tok, buf + a, b - a);
        tok[b - a] = '\0';
    }
    reqsign_memzero(buf, len);
    free(buf);
    return rc;
}

int reqsign_cli_enroll(int argc, char **argv)
{
    struct reqsign_cli_svc o;
    int rc = reqsign_cli_svc_parse("enroll", USAGE_ENROLL, argc, argv, 0, &o);
    if (rc != 0)
        return rc < 0 ? EXIT_OKAY : rc;
    /* enroll signs with no existing credential: --profile NAME names where
     * the new one goes (as --to-profile does) */
    const char *profile = o.to_profile != NULL ? o.to_profile : o.cred.profile;
    char ppath[REQSIGN_CLI_PATH_MAX];
    if (o.service == NULL || (o.out == NULL) == (profile == NULL) || o.arg != NULL) {
        reqsign_cli_usage_error(o.cmd, o.usage,
                                "--service and one of -o FILE, --profile NAME are required");
        return EXIT_USAGE;
    }
    char token[ENROLL_TOKEN_MAX + 1];
    rc = read_token(o.cmd, o.usage, o.token, token);
    if (rc != EXIT_OKAY)
        return rc;
    if (o.out == NULL) {
        if (reqsign_cli_profile_path(profile, ppath, sizeof(ppath)) != 0) {
            fprintf(stderr, "reqsign enroll: --profile: neither XDG_CONFIG_HOME nor HOME is an "
                            "absolute path\n");
            return EXIT_USAGE;
        }
        o.out = ppath;
    }
    struct reqsign_key *key = NULL;
    struct reqsign_signer *signer = NULL;
    struct reqsign_error err;
    reqsign_error_clear(&err);
    char pub[512], priv[512];
    size_t n = 0;
    json_t *req = NULL, *doc = NULL;
    char *body = NULL, *raw = NULL, *cred = NULL;
    size_t raw_len = 0;
    rc = EXIT_FAIL;
    /* the file first: never enroll a key we cannot store */
    int fd = reqsign_cli_secret_create(o.cmd, o.out, o.out == ppath);
    if (fd < 0) {
        reqsign_memzero(token, sizeof(token));
        return EXIT_FAIL;
    }
    priv[0] = '\0';
    req = json_pack("{s:s, s:s}", "token", token, "label", o.label != NULL ? o.label : "");
    if (req == NULL)
        goto out;
    if (!o.generate) {
        struct reqsign_signer_opts so;
        memset(&so, 0, sizeof(so));
        if ((key = reqsign_key_generate(&err)) == NULL ||
            reqsign_key_public_pem(key, pub, sizeof(pub), &n) != REQSIGN_OK ||
            reqsign_key_private_pem(key, priv, sizeof(priv), &n) != REQSIGN_OK) {
            reqsign_cli_error(o.cmd, err.code != REQSIGN_OK ? err.code : REQSIGN_E_CRYPTO, &err);
            goto out;
        }
        so.key_data = priv;
        so.key_len = strlen(priv);
        signer = reqsign_signer_new(&so, &err);
        if (signer == NULL) {
            reqsign_cli_error(o.cmd, err.code, &err);
            goto out;
        }
        json_object_set_new(req, "public_key", json_string(pub));
    }
    body = json_dumps(req, JSON_COMPACT);
    if (body == NULL || reqsign_cli_svc_api(&o, signer, o.service, "POST", "/v1/enroll", body, &doc,
                                            &raw, &raw_len) != EXIT_OKAY)
        goto out;
    const char *kid = json_string_value(json_object_get(doc, "keyid"));
    if (kid == NULL) {
        fprintf(stderr, "reqsign enroll: error: json: the service's answer has no \"keyid\"\n");
        goto out;
    }
    const char *w = raw;
    size_t wl = raw_len;
    if (!o.generate) {
        /* the service's record plus our private key, spliced in as text so the
         * private PEM is never in a jansson string (wiped below) */
        const char *brace = raw_len > 0 ? memchr(raw, '{', raw_len) : NULL;
        size_t cap = raw_len + 2 * sizeof(priv) + 64, m = 0;
        cred = brace != NULL ? malloc(cap) : NULL;
        if (cred == NULL)
            goto out;
        m = (size_t)snprintf(cred, cap, "{\n  \"private_key\": \"");
        for (const char *p = priv; *p && m + 4 < cap; p++) {
            if (*p == '\n') {
                cred[m++] = '\\';
                cred[m++] = 'n';
            } else {
                cred[m++] = *p;
            }
        }
        size_t rest = raw_len - (size_t)(brace + 1 - raw);
        if (m + 3 + rest >= cap)
            goto out;
        cred[m++] = '"';
        cred[m++] = ',';
        memcpy(cred + m, brace + 1, rest);
        m += rest;
        w = cred;
        wl = m;
    }
    int wr = reqsign_cli_secret_finish(o.cmd, o.out, fd, w, wl);
    fd = -1;
    if (wr != 0)
        goto out;
    reqsign_cli_put_text(stdout, kid);
    fputc('\n', stdout);
    rc = EXIT_OKAY;
out:
    reqsign_cli_secret_abort(o.out, fd);
    if (cred != NULL) {
        reqsign_memzero(cred, raw_len + 2 * sizeof(priv) + 64);
        free(cred);
    }
    if (raw != NULL) {
        reqsign_memzero(raw, raw_len);
        free(raw);
    }
    if (doc != NULL) {
        json_t *pk = json_object_get(doc, "private_key");
        if (json_is_string(pk))
            reqsign_memzero((char *)(uintptr_t)json_string_value(pk), json_string_length(pk));
        json_decref(doc);
    }
    reqsign_memzero(priv, sizeof(priv));
    reqsign_memzero(token, sizeof(token));
    if (body != NULL)
        reqsign_memzero(body, strlen(body));
    free(body);
    if (req != NULL) {
        json_t *t = json_object_get(req, "token");
        if (json_is_string(t))
            reqsign_memzero((char *)(uintptr_t)json_string_value(t), json_string_length(t));
    }
    json_decref(req);
    reqsign_signer_free(signer);
    reqsign_key_free(key);
    return rc;
}
