/* reqsign keys: manage keys on a key service (docs/KEYSERVICE.md).
 *
 *   reqsign keys create [--label L] [--scope S]... [--expires-at T] [--publish]
 *                       [--public-key FILE] [-o FILE]
 *   reqsign keys list [--limit N] [--after KEYID] [--all] [--json]
 *   reqsign keys get KEYID
 *   reqsign keys revoke KEYID
 *   reqsign keys rotate KEYID [--grace S] (-o FILE | --to-profile NAME | --new-key FILE [-o FILE])
 *   reqsign keys disable KEYID | reqsign keys enable KEYID
 *
 * Every request is signed with the admin credential (--key, default
 * $REQSIGN_CREDENTIAL); --service defaults to the credential's "service".
 * Exit status: 0 success, 1 failure (the server's JSON error is printed to
 * stderr), 2 usage error.
 *
 * Secrets: `create` without --public-key receives a private key. The output
 * file is created (O_EXCL, 0600) before the request, so nothing is generated
 * that cannot be stored; the response buffer and the decoded "private_key"
 * string are wiped. libcurl's receive buffer and jansson's scratch copies are
 * not under our control.
 */
#include <reqsign/credential.h>
#include <reqsign/error.h>
#include <reqsign/key.h>
#include <reqsign/signer.h>

#include <curl/curl.h>
#include <jansson.h>

#include "cli.h"
#include <errno.h>

#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define KEYS_MAX_SCOPES 16

static const char USAGE_KEYS[] =
    "usage: reqsign keys <create|list|get|revoke|rotate|disable|enable> [options]\n"
    "\n"
    "Manage keys on a reqsign key service. Requests are signed with an admin\n"
    "credential (scope keys:admin) or a key of an account (keys:self).\n"
    "\n"
    "  keys create [--label L] [--scope S]... [--expires-at RFC3339|+30d]\n"
    "              [--publish] [--public-key FILE] (-o FILE | --to-profile NAME)\n"
    "      Create a key. The service generates the key pair and returns the\n"
    "      credential once: it is written to FILE (mode 0600, never overwritten)\n"
    "      and the keyid printed. With --public-key (PEM, DER, JWK or raw; only the\n"
    "      public part is sent), register that key: -o is optional and gets the\n"
    "      record (no private key). --publish lists the key in the service's\n"
    "      public directory (/.well-known/http-message-signatures-directory;\n"
    "      default: not listed, unless its account publishes its keys).\n"
    "  keys list [--limit N] [--after KEYID] [--all] [--json]\n"
    "      One line per key: keyid, status, scopes (comma-separated), label,\n"
    "      last use (or -).\n"
    "      --all follows the pages; --json prints the JSON instead.\n"
    "  keys get KEYID       print the key's record (JSON)\n"
    "  keys revoke KEYID    revoke the key; prints 'revoked KEYID'\n"
    "  keys rotate KEYID [--grace SECONDS|+12h] (-o FILE | --to-profile NAME)\n"
    "      Make the key's successor (same label, scopes, account), written to FILE\n"
    "      (mode 0600); the old key expires after the grace (default 86400).\n"
    "  keys rotate KEYID [--grace SECONDS|+12h] --new-key FILE [-o FILE] [--json]\n"
    "      Rotate to a key of your own (reqsign keygen -o FILE, or a credential):\n"
    "      only its public key is sent, and the request carries a second\n"
    "      signature, \"pop\", made by it (proof of possession). Prints the new\n"
    "      keyid (--json: the new record); -o writes the record (no private key).\n"
    "  keys disable KEYID | keys enable KEYID\n"
    "\n"
    "Common options:\n"
    "  --service URL               the key service (default: the credential's\n"
    "                              \"service\")\n"
    "  --key CREDENTIAL            admin credential JSON or key file, or '-' for\n"
    "                              stdin (default: $REQSIGN_CREDENTIAL); inline JSON\n"
    "                              is refused (arguments are readable by every user)\n"
    "  --profile NAME              the credential of profile NAME (default:\n"
    "                              $REQSIGN_PROFILE, else \"default\" if it exists):\n"
    "                              $XDG_CONFIG_HOME/reqsign/credentials/NAME.json\n"
    "  --to-profile NAME           create, rotate: write the new credential to\n"
    "                              profile NAME (mode 0600, never overwritten)\n"
    "  --insecure-key-permissions  accept a key file readable by group or others\n"
    "  -v, --verbose               print the signature base and headers to stderr\n"
    "  --cacert FILE               trust the CA certificates in FILE (https services;\n"
    "                              certificates are always verified unless -k)\n"
    "  -k, --insecure              do not verify the service's TLS certificate\n"
    "  -h, --help                  show this help\n"
    "\n"
    "Exit status: 0 success, 1 failure (the server's error is printed to stderr),\n"
    "2 usage error.\n";

struct keys_opts {
    const char *sub;
    const char *service, *label, *expires_at, *public_key, *out, *after, *arg, *to_profile;
    const char *new_key; /* rotate: the successor's private key (a file, or '-') */
    struct reqsign_cli_cred cred;
    char expires_buf[32]; /* --expires-at +30d, as RFC 3339 */
    const char *scopes[KEYS_MAX_SCOPES];
    size_t n_scopes;
    long limit, grace;
    int all, json, verbose, has_grace, out_is_profile, publish;
};

static int takes_keyid(const char *sub)
{
    return strcmp(sub, "get") == 0 || strcmp(sub, "revoke") == 0 || strcmp(sub, "rotate") == 0 ||
           strcmp(sub, "disable") == 0 || strcmp(sub, "enable") == 0;
}

static int parse_opts(int argc, char **argv, struct keys_opts *o)
{
    enum {
        K_HELP = 1,
        K_VERBOSE,
        K_ALL,
        K_JSON,
        K_SERVICE,
        K_LABEL,
        K_SCOPE,
        K_EXPIRES_AT,
        K_PUBLIC_KEY,
        K_OUTPUT,
        K_LIMIT,
        K_AFTER,
        K_GRACE,
        K_TO_PROFILE,
        K_PUBLISH,
        K_NEW_KEY,
        K_N
    };
    static const struct reqsign_opt_def defs[] = {
        {"help", 'h', REQSIGN_OPT_FLAG, K_HELP},
        {"verbose", 'v', REQSIGN_OPT_FLAG, K_VERBOSE},
        {"all", 0, REQSIGN_OPT_FLAG, K_ALL},
        {"json", 0, REQSIGN_OPT_FLAG, K_JSON},
        {"service", 0, REQSIGN_OPT_VALUE, K_SERVICE},
        {"label", 0, REQSIGN_OPT_VALUE, K_LABEL},
        {"scope", 0, REQSIGN_OPT_VALUE, K_SCOPE},
        {"expires-at", 0, REQSIGN_OPT_VALUE, K_EXPIRES_AT},
        {"public-key", 0, REQSIGN_OPT_VALUE, K_PUBLIC_KEY},
        {"output", 'o', REQSIGN_OPT_VALUE, K_OUTPUT},
        {"limit", 0, REQSIGN_OPT_VALUE, K_LIMIT},
        {"after", 0, REQSIGN_OPT_VALUE, K_AFTER},
        {"grace", 0, REQSIGN_OPT_VALUE, K_GRACE},
        {"to-profile", 0, REQSIGN_OPT_VALUE, K_TO_PROFILE},
        {"publish", 0, REQSIGN_OPT_FLAG, K_PUBLISH},
        {"new-key", 0, REQSIGN_OPT_VALUE, K_NEW_KEY},
        CLI_OPTS_TLS,
        CLI_OPTS_CREDENTIAL,
        {NULL, 0, REQSIGN_OPT_FLAG, 0},
    };
    /* the subcommands an option is for; the others take every subcommand */
    static const char *const only[K_N] = {
        [K_ALL] = " list ",
        [K_JSON] = " list rotate ",
        [K_LABEL] = " create ",
        [K_SCOPE] = " create ",
        [K_EXPIRES_AT] = " create ",
        [K_PUBLIC_KEY] = " create ",
        [K_PUBLISH] = " create ",
        [K_OUTPUT] = " create rotate ",
        [K_TO_PROFILE] = " create rotate ",
        [K_LIMIT] = " list ",
        [K_AFTER] = " list ",
        [K_GRACE] = " rotate ",
        [K_NEW_KEY] = " rotate ",
    };
    /* A keyid may begin with '-' (1 in 64 thumbprints): its shape, not its
     * first character, makes it the operand. */
    struct reqsign_opt_parser p = {.prog = REQSIGN_CLI_PROG,
                                   .cmd = "keys",
                                   .usage = USAGE_KEYS,
                                   .argc = argc,
                                   .argv = argv,
                                   .i = 1,
                                   .operand =
                                       takes_keyid(o->sub) ? reqsign_cli_is_thumbprint : NULL};
    const char *v;
    int id = 0, r, at = p.i;
    char sub[32];

    snprintf(sub, sizeof(sub), " %s ", o->sub);
    for (; (r = reqsign_opt_next(&p, defs, &id, &v)) != REQSIGN_OPT_END; at = p.i) {
        if (r == REQSIGN_OPT_ERROR)
            return EXIT_USAGE;
        if (r == REQSIGN_OPT_OPERAND) {
            if (o->arg != NULL || !takes_keyid(o->sub)) {
                reqsign_cli_usage_error("keys", USAGE_KEYS, "%s: unexpected argument '%s'", o->sub,
                                        v);
                return EXIT_USAGE;
            }
            o->arg = v;
            continue;
        }
        if (id < K_N && only[id] != NULL && strstr(only[id], sub) == NULL) {
            reqsign_cli_usage_error("keys", USAGE_KEYS, "%s: unknown option '%s'", o->sub,
                                    argv[at]);
            return EXIT_USAGE;
        }
        int c = reqsign_cli_common_opt(&p, id, v, &o->cred);
        if (c < 0)
            return EXIT_USAGE;
        if (c > 0)
            continue;
        switch (id) {
        case K_HELP:
            fputs(USAGE_KEYS, stdout);
            return -1;
        case K_VERBOSE:
            o->verbose = 1;
            break;
        case K_ALL:
            o->all = 1;
            break;
        case K_PUBLISH:
            o->publish = 1;
            break;
        case K_JSON:
            o->json = 1;
            break;
        case K_SERVICE:
            o->service = v;
            break;
        case K_LABEL:
            o->label = v;
            break;
        case K_SCOPE:
            if (o->n_scopes >= KEYS_MAX_SCOPES) {
                reqsign_cli_usage_error("keys", USAGE_KEYS, "at most %d --scope options",
                                        KEYS_MAX_SCOPES);
                return EXIT_USAGE;
            }
            o->scopes[o->n_scopes++] = v;
            break;
        case K_EXPIRES_AT:
            if (v[0] == '+') {
                /* relative, as "+30d": an RFC 3339 time from now */
                int64_t secs;
                time_t t;
                struct tm tm;
                if (reqsign_cli_parse_duration(v, 1, (int64_t)100 * 366 * 86400, &secs) != 0) {
                    reqsign_cli_usage_error("keys", USAGE_KEYS,
                                            "--expires-at '%s': expected an RFC 3339 time or "
                                            "+N with a unit s, m, h or d (+30d, +12h)",
                                            v);
                    return EXIT_USAGE;
                }
                t = time(NULL) + (time_t)secs;
                if (gmtime_r(&t, &tm) == NULL || strftime(o->expires_buf, sizeof(o->expires_buf),
                                                          "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
                    reqsign_cli_usage_error("keys", USAGE_KEYS, "--expires-at '%s': out of range",
                                            v);
                    return EXIT_USAGE;
                }
                v = o->expires_buf;
            }
            o->expires_at = v;
            break;
        case K_PUBLIC_KEY:
            o->public_key = v;
            break;
        case K_NEW_KEY:
            /* a path or '-', never the key itself (ps shows arguments) */
            if (reqsign_cli_key_arg_ok("keys", USAGE_KEYS, v) != 0)
                return EXIT_USAGE;
            o->new_key = v;
            break;
        case K_OUTPUT:
            if (*v == '\0') {
                reqsign_cli_usage_error("keys", USAGE_KEYS, "-o needs a file name");
                return EXIT_USAGE;
            }
            o->out = v;
            break;
        case K_TO_PROFILE:
            if (reqsign_cli_profile_name_ok(v) != 0) {
                reqsign_cli_usage_error("keys", USAGE_KEYS, "--to-profile: bad profile name '%s'",
                                        v);
                return EXIT_USAGE;
            }
            o->to_profile = v;
            break;
        case K_LIMIT:
            if (reqsign_cli_parse_count(v, 1, 1000, &o->limit) != 0) {
                reqsign_cli_usage_error("keys", USAGE_KEYS,
                                        "--limit: '%s' is not a number in 1..1000", v);
                return EXIT_USAGE;
            }
            break;
        case K_AFTER:
            o->after = v;
            break;
        case K_GRACE: {
            int64_t g;
            if (reqsign_cli_parse_duration(v, 0, 2592000, &g) != 0) {
                reqsign_cli_usage_error("keys", USAGE_KEYS,
                                        "--grace: '%s' is not 0..2592000 seconds (or +30d, +12h)",
                                        v);
                return EXIT_USAGE;
            }
            o->grace = (long)g;
            o->has_grace = 1;
            break;
        }
        default:
            break;
        }
    }
    return EXIT_OKAY;
}

static void wipe_free(char *p, size_t len)
{
    if (p != NULL) {
        reqsign_memzero(p, len);
        free(p);
    }
}

/* The public key of @path as SPKI PEM (any format; a private key file gives
 * its public half, which is all that is sent). */
static int public_pem(const char *path, char *out, size_t cap)
{
    struct reqsign_error err;
    struct reqsign_key *k = NULL;
    size_t len;
    enum reqsign_status st;

    reqsign_error_clear(&err);
    st = ((k = reqsign_key_load_file(path, REQSIGN_KEY_ALLOW_PERMISSIVE, &err)) != NULL ? REQSIGN_OK
                                                                                        : err.code);
    if (st != REQSIGN_OK) {
        reqsign_cli_error("keys", st, &err);
        return -1;
    }
    st = reqsign_key_public_pem(k, out, cap, &len);
    reqsign_key_free(k);
    if (st != REQSIGN_OK) {
        reqsign_cli_error("keys", st, NULL);
        return -1;
    }
    return 0;
}

static void put_json(const char *p, size_t len);

/* rotate --new-key: the successor's key (a key file or a credential) as a
 * signer of the proof-of-possession signature "pop" (keyid: its thumbprint),
 * and its public key PEM. 0, or -1 with the error printed. */
static int load_new_key(const struct keys_opts *o, struct reqsign_signer **pop, char *pem,
                        size_t cap)
{
    struct reqsign_error err;
    struct reqsign_credential *nc;
    struct reqsign_signer_opts so;
    size_t len;

    reqsign_error_clear(&err);
    *pop = NULL;
    nc = reqsign_credential_load(o->new_key, NULL,
                                 o->cred.insecure ? REQSIGN_KEY_ALLOW_PERMISSIVE : 0, &err);
    if (nc == NULL) {
        reqsign_cli_error("keys", err.code != REQSIGN_OK ? err.code : REQSIGN_E_INTERNAL, &err);
        return -1;
    }
    memset(&so, 0, sizeof(so));
    so.key = reqsign_credential_key(nc);
    so.label = "pop";
    *pop = reqsign_signer_new(&so, &err);
    enum reqsign_status st = *pop != NULL ? reqsign_key_public_pem(so.key, pem, cap, &len)
                                          : (err.code != REQSIGN_OK ? err.code : REQSIGN_E_NOMEM);
    reqsign_credential_free(nc);
    if (st != REQSIGN_OK) {
        reqsign_cli_error("keys", st, &err);
        reqsign_signer_free(*pop);
        *pop = NULL;
        return -1;
    }
    return 0;
}

static int cmd_create(const struct keys_opts *o, const struct reqsign_signer *s,
                      const char *service)
{
    json_t *req = NULL, *resp = NULL, *scopes;
    char *body = NULL, *url = NULL, *out = NULL;
    size_t out_len = 0;
    long status = 0;
    int fd = -1, rc = EXIT_FAIL;
    char pem[1024];
    struct reqsign_signer *pop = NULL;

    if (o->out == NULL && o->public_key == NULL && o->new_key == NULL) {
        reqsign_cli_usage_error(
            "keys", USAGE_KEYS,
            "create: -o FILE is required (the credential is returned only once)");
        return EXIT_USAGE;
    }
    req = json_object();
    scopes = json_array();
    if (req == NULL || scopes == NULL || json_object_set_new(req, "scopes", scopes) != 0) {
        reqsign_cli_error("keys", REQSIGN_E_NOMEM, NULL);
        goto out;
    }
    for (size_t i = 0; i < o->n_scopes; i++)
        if (json_array_append_new(scopes, json_string(o->scopes[i])) != 0) {
            reqsign_cli_error("keys", REQSIGN_E_NOMEM, NULL);
            goto out;
        }
    if (json_object_set_new(req, "label", o->label ? json_string(o->label) : json_string("")) ||
        json_object_set_new(req, "expires_at",
                            o->expires_at ? json_string(o->expires_at) : json_null()) ||
        (o->publish && json_object_set_new(req, "publish", json_true()) != 0)) {
        reqsign_cli_error("keys", REQSIGN_E_NOMEM, NULL);
        goto out;
    }
    if (o->public_key != NULL) {
        if (public_pem(o->public_key, pem, sizeof(pem)) != 0)
            goto out;
        if (json_object_set_new(req, "public_key", json_string(pem)) != 0) {
            reqsign_cli_error("keys", REQSIGN_E_NOMEM, NULL);
            goto out;
        }
    }
    if (strcmp(o->sub, "rotate") == 0) { /* POST /v1/keys/{keyid}/rotate {"grace_s"} */
        json_decref(req);
        req = o->has_grace ? json_pack("{s:I}", "grace_s", (json_int_t)o->grace) : json_object();
        if (o->new_key != NULL) {
            if (load_new_key(o, &pop, pem, sizeof(pem)) != 0)
                goto out;
            if (req == NULL || json_object_set_new(req, "public_key", json_string(pem)) != 0) {
                reqsign_cli_error("keys", REQSIGN_E_NOMEM, NULL);
                goto out;
            }
        }
        CURL *esc = curl_easy_init();
        char *e = esc != NULL ? curl_easy_escape(esc, o->arg, 0) : NULL;
        char rpath[600];
        snprintf(rpath, sizeof(rpath), "/v1/keys/%s/rotate", e != NULL ? e : "");
        curl_free(e);
        curl_easy_cleanup(esc);
        body = req != NULL ? json_dumps(req, JSON_COMPACT) : NULL;
        url = reqsign_cli_service_url(service, rpath);
    } else {
        body = json_dumps(req, JSON_COMPACT);
        url = reqsign_cli_service_url(service, "/v1/keys");
    }
    if (body == NULL || url == NULL) {
        reqsign_cli_error("keys", REQSIGN_E_NOMEM, NULL);
        goto out;
    }
    /* the file first: never create a key we cannot store */
    if (o->out != NULL) {
        fd = reqsign_cli_secret_create("keys", o->out, o->out_is_profile);
        if (fd < 0)
            goto out;
    }
    if (reqsign_cli_http_pop("keys", s, pop, "POST", url, body, strlen(body), o->verbose, &status,
                             &out, &out_len) != 0)
        goto out;
    if (status < 200 || status >= 300) {
        reqsign_cli_print_server_error("keys", status, out, out_len);
        goto out;
    }
    json_error_t je;
    resp = json_loadb(out, out_len, 0, &je);
    json_t *kid = resp != NULL ? json_object_get(resp, "keyid") : NULL;
    if (!json_is_string(kid)) {
        fprintf(stderr, "reqsign keys: error: json: the service's answer has no \"keyid\"\n");
        goto out;
    }
    if (fd >= 0) {
        int wr = reqsign_cli_secret_finish("keys", o->out, fd, out, out_len);
        fd = -1;
        if (wr != 0)
            goto out;
    }
    if (o->json) { /* rotate --new-key: the record (no private key in it) */
        put_json(out, out_len);
    } else {
        reqsign_cli_put_text(stdout, json_string_value(kid));
        fputc('\n', stdout);
    }
    rc = EXIT_OKAY;
out:
    reqsign_signer_free(pop);
    reqsign_cli_secret_abort(o->out, fd);
    if (resp != NULL) {
        json_t *pk = json_object_get(resp, "private_key");
        if (json_is_string(pk))
            reqsign_memzero((char *)(uintptr_t)json_string_value(pk), json_string_length(pk));
        json_decref(resp);
    }
    wipe_free(out, out_len);
    free(body);
    free(url);
    json_decref(req);
    return rc;
}

static const char *str_or(const char *s, const char *dflt)
{
    return s != NULL ? s : dflt;
}

/*
 * Write JSON text from the service to stdout with the same characters
 * escaped, the JSON way (\u00HH): inside strings that is the same text; raw
 * control bytes elsewhere are not JSON anyway. Line breaks and tabs
 * (JSON whitespace) stay.
 */
static void put_json(const char *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)p[i];
        if ((ch < 0x20 && ch != '\n' && ch != '\t' && ch != '\r') || ch == 0x7f) {
            printf("\\u%04x", ch);
        } else if (ch == 0xc2 && i + 1 < len && (unsigned char)p[i + 1] >= 0x80 &&
                   (unsigned char)p[i + 1] <= 0x9f) {
            printf("\\u%04x", (unsigned char)p[i + 1]);
            i++;
        } else if (i + 2 < len && reqsign_cli_bidi_len((const unsigned char *)p + i) != 0) {
            size_t bn = reqsign_cli_bidi_len((const unsigned char *)p + i);
            printf("\\u%04x", reqsign_cli_utf8_cp((const unsigned char *)p + i, bn));
            i += bn - 1;
        } else {
            fputc(ch, stdout);
        }
    }
    if (len == 0 || p[len - 1] != '\n')
        fputc('\n', stdout);
}

/* keyid, status, scopes, label: one line, control characters escaped. */
static void print_record(const json_t *k)
{
    const json_t *sc = json_object_get(k, "scopes");
    const char *label = json_string_value(json_object_get(k, "label"));
    reqsign_cli_put_text(stdout, str_or(json_string_value(json_object_get(k, "keyid")), "?"));
    fputc('\t', stdout);
    reqsign_cli_put_text(stdout, str_or(json_string_value(json_object_get(k, "status")), "?"));
    fputc('\t', stdout);
    if (json_array_size(sc) == 0)
        fputs("-", stdout);
    for (size_t i = 0; i < json_array_size(sc); i++) {
        if (i)
            fputc(',', stdout);
        reqsign_cli_put_text(stdout, str_or(json_string_value(json_array_get(sc, i)), "?"));
    }
    fputc('\t', stdout);
    reqsign_cli_put_text(stdout, label != NULL && label[0] != '\0' ? label : "-");
    fputc('\t', stdout); /* last use: "-" never (or not recorded) */
    reqsign_cli_put_text(stdout,
                         str_or(json_string_value(json_object_get(k, "last_used_at")), "-"));
    fputc('\n', stdout);
}

static int cmd_list(const struct keys_opts *o, const struct reqsign_signer *s, const char *service)
{
    json_t *all = json_array();
    char *after = o->after != NULL ? strdup(o->after) : NULL;
    int rc = EXIT_FAIL;
    CURL *esc = curl_easy_init();

    if (all == NULL || esc == NULL || (o->after != NULL && after == NULL)) {
        reqsign_cli_error("keys", REQSIGN_E_NOMEM, NULL);
        goto out;
    }
    for (;;) {
        char path[512];
        char *e = after != NULL ? curl_easy_escape(esc, after, 0) : NULL;
        snprintf(path, sizeof(path), "/v1/keys?limit=%ld%s%s", o->limit > 0 ? o->limit : 100,
                 e != NULL ? "&after=" : "", e != NULL ? e : "");
        curl_free(e);
        char *url = reqsign_cli_service_url(service, path), *body = NULL;
        size_t len = 0;
        long status = 0;
        if (url == NULL) {
            reqsign_cli_error("keys", REQSIGN_E_NOMEM, NULL);
            goto out;
        }
        int r = reqsign_cli_http("keys", s, "GET", url, NULL, 0, o->verbose, &status, &body, &len);
        free(url);
        if (r != 0)
            goto out;
        if (status != 200) {
            reqsign_cli_print_server_error("keys", status, body, len);
            free(body);
            goto out;
        }
        if (o->json && !o->all) {
            put_json(body, len);
            free(body);
            break;
        }
        json_error_t je;
        json_t *page = json_loadb(body, len, 0, &je);
        free(body);
        json_t *keys = json_object_get(page, "keys");
        if (!json_is_array(keys)) {
            fprintf(stderr, "reqsign keys: error: json: unexpected answer from the service\n");
            json_decref(page);
            goto out;
        }
        json_array_extend(all, keys);
        json_t *next = json_object_get(page, "next");
        free(after);
        after = json_is_string(next) ? strdup(json_string_value(next)) : NULL;
        json_decref(page);
        if (!o->all || after == NULL)
            break;
    }
    if (o->json && o->all) {
        json_t *doc = json_pack("{s:O,s:n}", "keys", all, "next");
        char *txt = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;
        if (txt != NULL)
            put_json(txt, strlen(txt));
        free(txt);
        json_decref(doc);
    } else if (!o->json) {
        for (size_t i = 0; i < json_array_size(all); i++)
            print_record(json_array_get(all, i));
        if (!o->all && after != NULL) {
            fputs("reqsign keys: more keys: --after ", stderr);
            reqsign_cli_put_text(stderr, after);
            fputs(" (or --all)\n", stderr);
        }
    }
    rc = EXIT_OKAY;
out:
    free(after);
    json_decref(all);
    curl_easy_cleanup(esc);
    return rc;
}

/* get and revoke: one key. */
static int cmd_one(const struct keys_opts *o, const struct reqsign_signer *s, const char *service,
                   int revoke)
{
    char *e = NULL, *url = NULL, *body = NULL, *path = NULL;
    size_t len = 0, plen;
    long status = 0;
    int rc = EXIT_FAIL;
    CURL *esc;

    if (o->arg == NULL) {
        reqsign_cli_usage_error("keys", USAGE_KEYS, "%s: missing KEYID", o->sub);
        return EXIT_USAGE;
    }
    esc = curl_easy_init();
    if (esc != NULL)
        e = curl_easy_escape(esc, o->arg, 0);
    plen = e != NULL ? strlen(e) + 16 : 0;
    path = e != NULL ? malloc(plen) : NULL;
    if (path != NULL) {
        snprintf(path, plen, "/v1/keys/%s", e);
        url = reqsign_cli_service_url(service, path);
    }
    if (url == NULL) {
        reqsign_cli_error("keys", REQSIGN_E_NOMEM, NULL);
        goto out;
    }
    int action = strcmp(o->sub, "disable") == 0 || strcmp(o->sub, "enable") == 0;
    if (action) { /* POST /v1/keys/{keyid}/disable|enable */
        free(url);
        url = NULL;
        char *p2 = malloc(plen + 16);
        if (p2 != NULL) {
            snprintf(p2, plen + 16, "%s/%s", path, o->sub);
            url = reqsign_cli_service_url(service, p2);
            free(p2);
        }
        if (url == NULL) {
            reqsign_cli_error("keys", REQSIGN_E_NOMEM, NULL);
            goto out;
        }
    }
    if (reqsign_cli_http("keys", s,
                         action   ? "POST"
                         : revoke ? "DELETE"
                                  : "GET",
                         url, action ? "{}" : NULL, action ? 2 : 0, o->verbose, &status, &body,
                         &len) != 0)
        goto out;
    if (status != 200) {
        reqsign_cli_print_server_error("keys", status, body, len);
        goto out;
    }
    if (revoke) {
        printf("revoked %s\n", o->arg);
    } else if (action) {
        printf("%sd %s\n", o->sub, o->arg);
    } else {
        put_json(body, len);
    }
    rc = EXIT_OKAY;
out:
    curl_free(e);
    curl_easy_cleanup(esc);
    free(path);
    free(url);
    free(body);
    return rc;
}

int reqsign_cli_keys(int argc, char **argv)
{
    struct keys_opts o;
    struct reqsign_credential *cred = NULL;
    struct reqsign_signer *signer = NULL;
    int rc;

    memset(&o, 0, sizeof(o));
    if (argc < 1) {
        reqsign_cli_usage_error("keys", USAGE_KEYS, "missing subcommand");
        return EXIT_USAGE;
    }
    o.sub = argv[0];
    if (strcmp(o.sub, "-h") == 0 || strcmp(o.sub, "--help") == 0) {
        fputs(USAGE_KEYS, stdout);
        return EXIT_OKAY;
    }
    if (strcmp(o.sub, "create") != 0 && strcmp(o.sub, "list") != 0 && !takes_keyid(o.sub)) {
        reqsign_cli_usage_error("keys", USAGE_KEYS, "unknown subcommand '%s'", o.sub);
        return EXIT_USAGE;
    }
    rc = parse_opts(argc, argv, &o);
    if (rc == -1)
        return EXIT_OKAY;
    if (rc != EXIT_OKAY)
        return rc;
    char ppath[REQSIGN_CLI_PATH_MAX];
    if (o.to_profile != NULL && o.out != NULL) {
        reqsign_cli_usage_error("keys", USAGE_KEYS, "%s: -o and --to-profile both given", o.sub);
        return EXIT_USAGE;
    }
    if (o.to_profile != NULL && o.public_key != NULL) {
        /* the answer is the record, with no private key: no credential to sign with */
        reqsign_cli_usage_error("keys", USAGE_KEYS,
                                "create: --to-profile needs a key the service generates; with "
                                "--public-key use -o FILE for the record");
        return EXIT_USAGE;
    }
    if (o.to_profile != NULL) {
        if (reqsign_cli_profile_path(o.to_profile, ppath, sizeof(ppath)) != 0) {
            fprintf(stderr, "reqsign keys: --to-profile: neither XDG_CONFIG_HOME nor HOME is an "
                            "absolute path\n");
            return EXIT_USAGE;
        }
        o.out = ppath;
        o.out_is_profile = 1;
    }
    if (o.new_key != NULL && o.to_profile != NULL) {
        /* the answer is the record, with no private key: no credential to sign with */
        reqsign_cli_usage_error("keys", USAGE_KEYS,
                                "rotate: --to-profile needs a key the service generates; with "
                                "--new-key the key is yours already (-o FILE gets the record)");
        return EXIT_USAGE;
    }
    if (o.new_key != NULL && strcmp(o.new_key, "-") == 0 && o.cred.key != NULL &&
        strcmp(o.cred.key, "-") == 0) {
        reqsign_cli_usage_error("keys", USAGE_KEYS, "rotate: --key and --new-key both read '-'");
        return EXIT_USAGE;
    }
    if (strcmp(o.sub, "rotate") == 0 && o.json && o.new_key == NULL) {
        reqsign_cli_usage_error("keys", USAGE_KEYS,
                                "rotate: --json is for --new-key (a generated key's answer holds "
                                "its private key: -o FILE)");
        return EXIT_USAGE;
    }
    if (strcmp(o.sub, "rotate") == 0 && o.out == NULL && o.new_key == NULL) {
        reqsign_cli_usage_error(
            "keys", USAGE_KEYS,
            "rotate: -o FILE is required (the new credential is returned only once)");
        return EXIT_USAGE;
    }
    if (takes_keyid(o.sub) && o.arg == NULL) {
        reqsign_cli_usage_error("keys", USAGE_KEYS, "%s: missing KEYID", o.sub);
        return EXIT_USAGE;
    }
    if (strcmp(o.sub, "create") == 0 && o.out == NULL && o.public_key == NULL) {
        reqsign_cli_usage_error(
            "keys", USAGE_KEYS,
            "create: -o FILE is required (the credential is returned only once)");
        return EXIT_USAGE;
    }
    rc = reqsign_cli_load_signer("keys", &o.cred, NULL, &cred, &signer);
    if (rc != EXIT_OKAY)
        return rc;
    const char *service = o.service != NULL ? o.service : reqsign_credential_service(cred);
    if (service[0] == '\0') {
        reqsign_cli_usage_error("keys", USAGE_KEYS,
                                "no --service given and the credential has no \"service\"");
        rc = EXIT_USAGE;
    } else if (strcmp(o.sub, "create") == 0) {
        rc = cmd_create(&o, signer, service);
    } else if (strcmp(o.sub, "list") == 0) {
        rc = cmd_list(&o, signer, service);
    } else if (strcmp(o.sub, "rotate") == 0) {
        rc = cmd_create(&o, signer, service);
    } else {
        rc = cmd_one(&o, signer, service, strcmp(o.sub, "revoke") == 0);
    }
    reqsign_signer_free(signer);
    reqsign_credential_free(cred);
    return rc;
}
