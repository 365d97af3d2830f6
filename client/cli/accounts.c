/* reqsign accounts, reqsign enroll, reqsign audit: the account side of a key
 * service (docs/KEYSERVICE.md, issue 13).
 *
 *   reqsign accounts create --name N [--scope S]... [--key-limit N] [--max-key-lifetime S]
 *                           [--publish-keys]
 *   reqsign accounts list|get ID|disable ID|enable ID|enroll-token ID
 *   reqsign enroll --service URL --token FILE|- [--generate] [--label L] -o FILE
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

static const char USAGE_ACCOUNTS[] =
    "usage: reqsign accounts <create|list|get|disable|enable|enroll-token> [options]\n"
    "\n"
    "  accounts create --name N [--scope S]... [--key-limit N] [--max-key-lifetime SECONDS|+90d]\n"
    "                  [--publish-keys]\n"
    "      Create an account (keys:admin); prints its id and a first enrollment token\n"
    "      (shown once). --publish-keys lists every key of the account in the\n"
    "      service's public directory (default: only keys created with --publish).\n"
    "  accounts list                 one line per account: id, status, name\n"
    "  accounts get ID               the account (JSON)\n"
    "  accounts disable ID | enable ID\n"
    "  accounts enroll-token ID      a fresh enrollment token for the account\n"
    "\n"
    "Common options: --service URL, --key CREDENTIAL (default $REQSIGN_CREDENTIAL),\n"
    "--profile NAME (default $REQSIGN_PROFILE, else \"default\" if it exists),\n"
    "--insecure-key-permissions, --cacert FILE, -k/--insecure, --json,\n"
    "-v/--verbose, -h/--help.\n"
    "Exit status: 0 success, 1 failure, 2 usage error.\n";

static void print_account(const json_t *a)
{
    reqsign_cli_put_text(stdout, json_string_value(json_object_get(a, "id")));
    fputc('\t', stdout);
    reqsign_cli_put_text(stdout, json_string_value(json_object_get(a, "status")));
    fputc('\t', stdout);
    reqsign_cli_put_text(stdout, json_string_value(json_object_get(a, "name")));
    fputc('\n', stdout);
}

int reqsign_cli_accounts(int argc, char **argv)
{
    struct reqsign_cli_svc o;
    if (argc < 1) {
        reqsign_cli_usage_error("accounts", USAGE_ACCOUNTS, "missing subcommand");
        return EXIT_USAGE;
    }
    if (!strcmp(argv[0], "-h") || !strcmp(argv[0], "--help")) {
        fputs(USAGE_ACCOUNTS, stdout);
        return EXIT_OKAY;
    }
    static const char *const subs[] = {"create",  "list",   "get",
                                       "disable", "enable", "enroll-token"};
    size_t si;
    for (si = 0; si < 6 && strcmp(argv[0], subs[si]) != 0; si++)
        ;
    if (si == 6) {
        reqsign_cli_usage_error("accounts", USAGE_ACCOUNTS, "unknown subcommand '%s'", argv[0]);
        return EXIT_USAGE;
    }
    int rc = reqsign_cli_svc_parse("accounts", USAGE_ACCOUNTS, argc, argv, 1, &o);
    if (rc != 0)
        return rc < 0 ? EXIT_OKAY : rc;
    if (si >= 2 && o.arg == NULL) {
        reqsign_cli_usage_error(o.cmd, o.usage, "%s: missing account ID", o.sub);
        return EXIT_USAGE;
    }
    if (si != 0 && o.publish_keys) {
        reqsign_cli_usage_error(o.cmd, o.usage, "%s: unknown option '--publish-keys'", o.sub);
        return EXIT_USAGE;
    }
    if (si == 0 && o.name == NULL) {
        reqsign_cli_usage_error(o.cmd, o.usage, "create: --name is required");
        return EXIT_USAGE;
    }
    struct reqsign_credential *cred = NULL;
    struct reqsign_signer *signer = NULL;
    const char *service = NULL;
    rc = reqsign_cli_svc_load(&o, &cred, &signer, &service);
    json_t *doc = NULL;
    char path[512];
    char *id = o.arg != NULL ? reqsign_cli_escape(o.arg) : NULL;
    if (rc == EXIT_OKAY && si == 0) {
        json_t *req = json_pack("{s:s, s:[]}", "name", o.name, "allowed_scopes");
        for (size_t i = 0; req != NULL && i < o.n_scopes; i++)
            json_array_append_new(json_object_get(req, "allowed_scopes"), json_string(o.scopes[i]));
        if (req != NULL && o.key_limit > 0)
            json_object_set_new(req, "key_limit", json_integer(o.key_limit));
        if (req != NULL && o.max_life > 0)
            json_object_set_new(req, "max_key_lifetime_s", json_integer(o.max_life));
        if (req != NULL && o.publish_keys)
            json_object_set_new(req, "publish_keys", json_true());
        char *body = req != NULL ? json_dumps(req, JSON_COMPACT) : NULL;
        json_decref(req);
        rc = body == NULL ? EXIT_FAIL
                          : reqsign_cli_svc_api(&o, signer, service, "POST", "/v1/accounts", body,
                                                &doc, NULL, NULL);
        free(body);
        if (rc == EXIT_OKAY && o.json) {
            reqsign_cli_print_json(doc);
        } else if (rc == EXIT_OKAY) {
            json_t *en = json_object_get(doc, "enrollment");
            printf("account ");
            reqsign_cli_put_text(
                stdout, json_string_value(json_object_get(json_object_get(doc, "account"), "id")));
            printf("\ntoken ");
            reqsign_cli_put_text(stdout, json_string_value(json_object_get(en, "token")));
            printf("\nexpires ");
            reqsign_cli_put_text(stdout, json_string_value(json_object_get(en, "expires_at")));
            fputc('\n', stdout);
        }
    } else if (rc == EXIT_OKAY && si == 1) {
        rc = reqsign_cli_svc_api(&o, signer, service, "GET", "/v1/accounts?limit=1000", NULL, &doc,
                                 NULL, NULL);
        if (rc == EXIT_OKAY && o.json)
            reqsign_cli_print_json(doc);
        else if (rc == EXIT_OKAY)
            for (size_t i = 0; i < json_array_size(json_object_get(doc, "accounts")); i++)
                print_account(json_array_get(json_object_get(doc, "accounts"), i));
    } else if (rc == EXIT_OKAY && id == NULL) {
        reqsign_cli_error(o.cmd, REQSIGN_E_NOMEM, NULL);
        rc = EXIT_FAIL;
    } else if (rc == EXIT_OKAY) {
        snprintf(path, sizeof(path), "/v1/accounts/%s%s%s", id, si == 2 ? "" : "/",
                 si == 2   ? ""
                 : si == 5 ? "enrollments"
                           : o.sub);
        rc = reqsign_cli_svc_api(&o, signer, service, si == 2 ? "GET" : "POST", path,
                                 si == 2 ? NULL : "{}", &doc, NULL, NULL);
        if (rc == EXIT_OKAY && (o.json || si == 2))
            reqsign_cli_print_json(doc);
        else if (rc == EXIT_OKAY && si == 5) {
            printf("token ");
            reqsign_cli_put_text(stdout, json_string_value(json_object_get(doc, "token")));
            printf("\nexpires ");
            reqsign_cli_put_text(stdout, json_string_value(json_object_get(doc, "expires_at")));
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
