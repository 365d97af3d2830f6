/* reqsign accounts, reqsign enroll, reqsign audit: the account side of a key
 * service (docs/KEYSERVICE.md, issue 13).
 *
 *   reqsign accounts create --name N [--scope S]... [--key-limit N] [--max-key-lifetime S]
 *   reqsign accounts list|get ID|disable ID|enable ID|enroll-token ID
 *   reqsign enroll --service URL --token T [--generate] [--label L] -o FILE
 *   reqsign audit [--account ID] [--after CURSOR] [--limit N]
 *
 * Common: --key CREDENTIAL (default $REQSIGN_CREDENTIAL), --service URL
 * (default: the credential's), --json (the service's JSON), -v.
 * Exit status: 0 success, 1 failure (the server's error on stderr), 2 usage.
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

enum { EXIT_OKAY = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };
#define MAX_SCOPES 16

static const char USAGE_ACCOUNTS[] =
    "usage: reqsign accounts <create|list|get|disable|enable|enroll-token> [options]\n"
    "\n"
    "  accounts create --name N [--scope S]... [--key-limit N] [--max-key-lifetime SECONDS]\n"
    "      Create an account (keys:admin); prints its id and a first enrollment token\n"
    "      (shown once).\n"
    "  accounts list                 one line per account: id, status, name\n"
    "  accounts get ID               the account (JSON)\n"
    "  accounts disable ID | enable ID\n"
    "  accounts enroll-token ID      a fresh enrollment token for the account\n"
    "\n"
    "Common options: --service URL, --key CREDENTIAL (default $REQSIGN_CREDENTIAL),\n"
    "--insecure-key-permissions, --json, -v/--verbose, -h/--help.\n"
    "Exit status: 0 success, 1 failure, 2 usage error.\n";

static const char USAGE_ENROLL[] =
    "usage: reqsign enroll --service URL --token TOKEN [--label L] [--generate] -o FILE\n"
    "\n"
    "Enroll a key in the account of an enrollment token. By default the key pair is\n"
    "generated here and only its public key is sent (the request is signed by it);\n"
    "the credential with the private key is written to FILE (mode 0600, never\n"
    "overwritten) and the keyid printed. --generate lets the service make the key\n"
    "and return it once instead.\n"
    "Exit status: 0 success, 1 failure, 2 usage error.\n";

static const char USAGE_AUDIT[] =
    "usage: reqsign audit [--account ID] [--after CURSOR] [--limit N] [--json]\n"
    "\n"
    "The key service's audit log (keys:admin: all, or --account; keys:self: its own\n"
    "account): one line per event: time, action, outcome, actor, target, source.\n"
    "Common options: --service URL, --key CREDENTIAL, --insecure-key-permissions, -v.\n"
    "Exit status: 0 success, 1 failure, 2 usage error.\n";

struct opts {
    const char *cmd, *usage, *sub, *arg;
    const char *service, *key, *name, *token, *label, *out, *account, *after;
    const char *scopes[MAX_SCOPES];
    size_t n_scopes;
    long key_limit, max_life, limit;
    int json, insecure, verbose, generate;
};

static int parse_num(const char *s, long *out)
{
    char *end = NULL;
    if (s == NULL || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < 1)
        return -1;
    *out = v;
    return 0;
}

/* 0, -1 (--help printed), or EXIT_USAGE. */
static int parse(int argc, char **argv, int first, struct opts *o)
{
    static const char *const vals[] = {"service", "key",   "name",  "scope", "key-limit",
                                       "max-key-lifetime", "token", "label", "output",
                                       "account", "after", "limit"};
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || a[1] == '\0') {
            if (o->arg != NULL) {
                reqsign_cli_usage_error(o->cmd, o->usage, "unexpected argument '%s'", a);
                return EXIT_USAGE;
            }
            o->arg = a;
            continue;
        }
        if (reqsign_cli_is_flag(a, "help", 'h')) {
            fputs(o->usage, stdout);
            return -1;
        }
        if (reqsign_cli_is_flag(a, "json", 0)) {
            o->json = 1;
            continue;
        }
        if (reqsign_cli_is_flag(a, "generate", 0)) {
            o->generate = 1;
            continue;
        }
        if (reqsign_cli_is_flag(a, "insecure-key-permissions", 0)) {
            o->insecure = 1;
            continue;
        }
        if (reqsign_cli_is_flag(a, "verbose", 'v')) {
            o->verbose = 1;
            continue;
        }
        int m = 0;
        const char *v = NULL;
        size_t k;
        for (k = 0; k < sizeof(vals) / sizeof(vals[0]); k++) {
            v = reqsign_cli_opt_value(o->cmd, o->usage, argc, argv, &i, vals[k],
                                      strcmp(vals[k], "output") == 0 ? 'o' : 0, &m);
            if (m)
                break;
        }
        if (!m) {
            reqsign_cli_usage_error(o->cmd, o->usage, "unknown option '%s'", a);
            return EXIT_USAGE;
        }
        if (v == NULL)
            return EXIT_USAGE;
        const char *name = vals[k];
        int bad = 0;
        if (!strcmp(name, "service"))
            o->service = v;
        else if (!strcmp(name, "key"))
            o->key = v;
        else if (!strcmp(name, "name"))
            o->name = v;
        else if (!strcmp(name, "scope")) {
            if (o->n_scopes >= MAX_SCOPES)
                bad = 1;
            else
                o->scopes[o->n_scopes++] = v;
        } else if (!strcmp(name, "key-limit"))
            bad = parse_num(v, &o->key_limit);
        else if (!strcmp(name, "max-key-lifetime"))
            bad = parse_num(v, &o->max_life);
        else if (!strcmp(name, "token"))
            o->token = v;
        else if (!strcmp(name, "label"))
            o->label = v;
        else if (!strcmp(name, "output"))
            o->out = v;
        else if (!strcmp(name, "account"))
            o->account = v;
        else if (!strcmp(name, "after"))
            o->after = v;
        else
            bad = parse_num(v, &o->limit) || o->limit > 1000;
        if (bad) {
            reqsign_cli_usage_error(o->cmd, o->usage, "--%s: bad value '%s'", name, v);
            return EXIT_USAGE;
        }
    }
    return 0;
}

static char *url_of(const char *service, const char *path)
{
    size_t n = strlen(service);
    while (n > 0 && service[n - 1] == '/')
        n--;
    size_t len = n + strlen(path) + 1;
    char *u = malloc(len);
    if (u != NULL)
        snprintf(u, len, "%.*s%s", (int)n, service, path);
    return u;
}

/* Text from the service, control characters escaped. */
static void put_text(FILE *f, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)(s != NULL ? s : "-"); *p; p++) {
        if (*p < 0x20 || *p == 0x7f)
            fprintf(f, "\\x%02x", *p);
        else
            fputc(*p, f);
    }
}

/* One request; *@doc the parsed answer (2xx only). EXIT_OKAY or EXIT_FAIL. */
static int api(const struct opts *o, const struct reqsign_signer *s, const char *service,
               const char *method, const char *path, const char *body, json_t **doc, char **raw,
               size_t *raw_len)
{
    char *url = url_of(service, path), *out = NULL;
    size_t len = 0;
    long status = 0;
    *doc = NULL;
    if (url == NULL) {
        reqsign_cli_error(o->cmd, REQSIGN_E_NOMEM, NULL);
        return EXIT_FAIL;
    }
    int r = reqsign_cli_http(o->cmd, s, method, url, body, body != NULL ? strlen(body) : 0,
                             o->verbose, &status, &out, &len);
    free(url);
    if (r != 0)
        return EXIT_FAIL;
    if (status < 200 || status >= 300) {
        reqsign_cli_print_server_error(o->cmd, status, out, len);
        reqsign_memzero(out, len);
        free(out);
        return EXIT_FAIL;
    }
    *doc = json_loadb(out, len, 0, NULL);
    if (*doc == NULL) {
        fprintf(stderr, "reqsign %s: error: json: unexpected answer from the service\n", o->cmd);
        reqsign_memzero(out, len);
        free(out);
        return EXIT_FAIL;
    }
    if (raw != NULL) {
        *raw = out;
        *raw_len = len;
    } else {
        reqsign_memzero(out, len);
        free(out);
    }
    return EXIT_OKAY;
}

static void print_json(const json_t *doc)
{
    char *t = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (t != NULL)
        puts(t);
    free(t);
}

static void print_account(const json_t *a)
{
    put_text(stdout, json_string_value(json_object_get(a, "id")));
    fputc('\t', stdout);
    put_text(stdout, json_string_value(json_object_get(a, "status")));
    fputc('\t', stdout);
    put_text(stdout, json_string_value(json_object_get(a, "name")));
    fputc('\n', stdout);
}

static int load(const struct opts *o, struct reqsign_credential **cred,
                struct reqsign_signer **signer, const char **service)
{
    if (o->key != NULL && reqsign_cli_key_arg_ok(o->cmd, o->usage, o->key) != 0)
        return EXIT_USAGE;
    int rc = reqsign_cli_load_signer(o->cmd, o->key, NULL, o->insecure, cred, signer);
    if (rc != EXIT_OKAY)
        return rc;
    *service = o->service != NULL ? o->service : reqsign_credential_service(*cred);
    if ((*service)[0] == '\0') {
        reqsign_cli_usage_error(o->cmd, o->usage,
                                "no --service given and the credential has no \"service\"");
        return EXIT_USAGE;
    }
    return EXIT_OKAY;
}

static char *escaped(const char *s)
{
    CURL *c = curl_easy_init();
    char *e = c != NULL ? curl_easy_escape(c, s, 0) : NULL;
    char *out = e != NULL ? strdup(e) : NULL;
    curl_free(e);
    curl_easy_cleanup(c);
    return out;
}

int reqsign_cli_accounts(int argc, char **argv)
{
    struct opts o;
    memset(&o, 0, sizeof(o));
    o.cmd = "accounts";
    o.usage = USAGE_ACCOUNTS;
    if (argc < 1) {
        reqsign_cli_usage_error(o.cmd, o.usage, "missing subcommand");
        return EXIT_USAGE;
    }
    o.sub = argv[0];
    if (!strcmp(o.sub, "-h") || !strcmp(o.sub, "--help")) {
        fputs(o.usage, stdout);
        return EXIT_OKAY;
    }
    static const char *const subs[] = {"create", "list", "get", "disable", "enable",
                                       "enroll-token"};
    size_t si;
    for (si = 0; si < 6 && strcmp(o.sub, subs[si]) != 0; si++)
        ;
    if (si == 6) {
        reqsign_cli_usage_error(o.cmd, o.usage, "unknown subcommand '%s'", o.sub);
        return EXIT_USAGE;
    }
    int rc = parse(argc, argv, 1, &o);
    if (rc == -1)
        return EXIT_OKAY;
    if (rc != 0)
        return rc;
    if (si >= 2 && o.arg == NULL) {
        reqsign_cli_usage_error(o.cmd, o.usage, "%s: missing account ID", o.sub);
        return EXIT_USAGE;
    }
    if (si == 0 && o.name == NULL) {
        reqsign_cli_usage_error(o.cmd, o.usage, "create: --name is required");
        return EXIT_USAGE;
    }
    struct reqsign_credential *cred = NULL;
    struct reqsign_signer *signer = NULL;
    const char *service = NULL;
    rc = load(&o, &cred, &signer, &service);
    json_t *doc = NULL;
    char path[512];
    char *id = o.arg != NULL ? escaped(o.arg) : NULL;
    if (rc == EXIT_OKAY && si == 0) {
        json_t *req = json_pack("{s:s, s:[]}", "name", o.name, "allowed_scopes");
        for (size_t i = 0; req != NULL && i < o.n_scopes; i++)
            json_array_append_new(json_object_get(req, "allowed_scopes"), json_string(o.scopes[i]));
        if (req != NULL && o.key_limit > 0)
            json_object_set_new(req, "key_limit", json_integer(o.key_limit));
        if (req != NULL && o.max_life > 0)
            json_object_set_new(req, "max_key_lifetime_s", json_integer(o.max_life));
        char *body = req != NULL ? json_dumps(req, JSON_COMPACT) : NULL;
        json_decref(req);
        rc = body == NULL ? EXIT_FAIL
                          : api(&o, signer, service, "POST", "/v1/accounts", body, &doc, NULL, NULL);
        free(body);
        if (rc == EXIT_OKAY && o.json) {
            print_json(doc);
        } else if (rc == EXIT_OKAY) {
            json_t *en = json_object_get(doc, "enrollment");
            printf("account ");
            put_text(stdout, json_string_value(json_object_get(json_object_get(doc, "account"), "id")));
            printf("\ntoken ");
            put_text(stdout, json_string_value(json_object_get(en, "token")));
            printf("\nexpires ");
            put_text(stdout, json_string_value(json_object_get(en, "expires_at")));
            fputc('\n', stdout);
        }
    } else if (rc == EXIT_OKAY && si == 1) {
        rc = api(&o, signer, service, "GET", "/v1/accounts?limit=1000", NULL, &doc, NULL, NULL);
        if (rc == EXIT_OKAY && o.json)
            print_json(doc);
        else if (rc == EXIT_OKAY)
            for (size_t i = 0; i < json_array_size(json_object_get(doc, "accounts")); i++)
                print_account(json_array_get(json_object_get(doc, "accounts"), i));
    } else if (rc == EXIT_OKAY && id == NULL) {
        reqsign_cli_error(o.cmd, REQSIGN_E_NOMEM, NULL);
        rc = EXIT_FAIL;
    } else if (rc == EXIT_OKAY) {
        snprintf(path, sizeof(path), "/v1/accounts/%s%s%s", id, si == 2 ? "" : "/",
                 si == 2 ? "" : si == 5 ? "enrollments" : o.sub);
        rc = api(&o, signer, service, si == 2 ? "GET" : "POST", path, si == 2 ? NULL : "{}",
                 &doc, NULL, NULL);
        if (rc == EXIT_OKAY && (o.json || si == 2))
            print_json(doc);
        else if (rc == EXIT_OKAY && si == 5) {
            printf("token ");
            put_text(stdout, json_string_value(json_object_get(doc, "token")));
            printf("\nexpires ");
            put_text(stdout, json_string_value(json_object_get(doc, "expires_at")));
            fputc('\n', stdout);
        } else if (rc == EXIT_OKAY)
            print_account(doc);
    }
    free(id);
    json_decref(doc);
    reqsign_signer_free(signer);
    reqsign_credential_free(cred);
    return rc;
}

int reqsign_cli_audit(int argc, char **argv)
{
    struct opts o;
    memset(&o, 0, sizeof(o));
    o.cmd = "audit";
    o.usage = USAGE_AUDIT;
    int rc = parse(argc, argv, 0, &o);
    if (rc == -1)
        return EXIT_OKAY;
    if (rc != 0)
        return rc;
    struct reqsign_credential *cred = NULL;
    struct reqsign_signer *signer = NULL;
    const char *service = NULL;
    rc = load(&o, &cred, &signer, &service);
    char *acct = o.account != NULL ? escaped(o.account) : NULL;
    char *after = o.after != NULL ? escaped(o.after) : NULL;
    json_t *doc = NULL;
    if (rc == EXIT_OKAY) {
        char path[600];
        snprintf(path, sizeof(path), "/v1/audit?limit=%ld%s%s%s%s", o.limit > 0 ? o.limit : 100,
                 acct ? "&account=" : "", acct ? acct : "", after ? "&after=" : "",
                 after ? after : "");
        rc = api(&o, signer, service, "GET", path, NULL, &doc, NULL, NULL);
    }
    if (rc == EXIT_OKAY && o.json) {
        print_json(doc);
    } else if (rc == EXIT_OKAY) {
        json_t *ev = json_object_get(doc, "events");
        static const char *const f[] = {"time", "action", "outcome", "actor", "target", "source"};
        for (size_t i = 0; i < json_array_size(ev); i++) {
            for (size_t k = 0; k < 6; k++) {
                if (k)
                    fputc('\t', stdout);
                put_text(stdout, json_string_value(json_object_get(json_array_get(ev, i), f[k])));
            }
            fputc('\n', stdout);
        }
        const char *next = json_string_value(json_object_get(doc, "next"));
        if (next != NULL) {
            fputs("reqsign audit: more events: --after ", stderr);
            put_text(stderr, next);
            fputc('\n', stderr);
        }
    }
    free(acct);
    free(after);
    json_decref(doc);
    reqsign_signer_free(signer);
    reqsign_credential_free(cred);
    return rc;
}

int reqsign_cli_enroll(int argc, char **argv)
{
    struct opts o;
    memset(&o, 0, sizeof(o));
    o.cmd = "enroll";
    o.usage = USAGE_ENROLL;
    int rc = parse(argc, argv, 0, &o);
    if (rc == -1)
        return EXIT_OKAY;
    if (rc != 0)
        return rc;
    if (o.service == NULL || o.token == NULL || o.out == NULL || o.arg != NULL) {
        reqsign_cli_usage_error(o.cmd, o.usage, "--service, --token and -o FILE are required");
        return EXIT_USAGE;
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
    int fd = open(o.out, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        int e = errno;
        fprintf(stderr, "reqsign enroll: error: io: %s: %s%s\n", o.out, strerror(e),
                e == EEXIST ? " (refusing to overwrite)" : "");
        return EXIT_FAIL;
    }
    priv[0] = '\0';
    req = json_pack("{s:s, s:s}", "token", o.token, "label", o.label != NULL ? o.label : "");
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
    if (body == NULL ||
        api(&o, signer, o.service, "POST", "/v1/enroll", body, &doc, &raw, &raw_len) != EXIT_OKAY)
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
    if (reqsign_cli_write_all(fd, w, wl) != 0 ||
        (wl > 0 && w[wl - 1] != '\n' && reqsign_cli_write_all(fd, "\n", 1) != 0) || fsync(fd) != 0) {
        fprintf(stderr, "reqsign enroll: error: io: %s: %s\n", o.out, strerror(errno));
        goto out;
    }
    put_text(stdout, kid);
    fputc('\n', stdout);
    rc = EXIT_OKAY;
out:
    close(fd);
    if (rc != EXIT_OKAY)
        unlink(o.out);
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
    free(body);
    json_decref(req);
    reqsign_signer_free(signer);
    reqsign_key_free(key);
    return rc;
}
