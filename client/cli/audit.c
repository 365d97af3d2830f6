/* reqsign audit: the key service's audit log (docs/KEYSERVICE.md). */
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

static const char USAGE_AUDIT[] =
    "usage: reqsign audit [--account ID] [--after CURSOR] [--limit N] [--json]\n"
    "\n"
    "The key service's audit log (keys:admin: all, or --account; keys:self: its own\n"
    "account): one line per event: time, action, outcome, actor, target, source.\n"
    "Common options: --service URL, --key CREDENTIAL, --profile NAME,\n"
    "--insecure-key-permissions, --cacert FILE, -k/--insecure, -v.\n"
    "Exit status: 0 success, 1 failure, 2 usage error.\n";

int reqsign_cli_audit(int argc, char **argv)
{
    struct reqsign_cli_svc o;
    int rc = reqsign_cli_svc_parse("audit", USAGE_AUDIT, argc, argv, 0, &o);
    if (rc != 0)
        return rc < 0 ? EXIT_OKAY : rc;
    struct reqsign_credential *cred = NULL;
    struct reqsign_signer *signer = NULL;
    const char *service = NULL;
    rc = reqsign_cli_svc_load(&o, &cred, &signer, &service);
    char *acct = o.account != NULL ? reqsign_cli_escape(o.account) : NULL;
    char *after = o.after != NULL ? reqsign_cli_escape(o.after) : NULL;
    json_t *doc = NULL;
    if (rc == EXIT_OKAY) {
        char path[600];
        snprintf(path, sizeof(path), "/v1/audit?limit=%ld%s%s%s%s", o.limit > 0 ? o.limit : 100,
                 acct ? "&account=" : "", acct ? acct : "", after ? "&after=" : "",
                 after ? after : "");
        rc = reqsign_cli_svc_api(&o, signer, service, "GET", path, NULL, &doc, NULL, NULL);
    }
    if (rc == EXIT_OKAY && o.json) {
        reqsign_cli_print_json(doc);
    } else if (rc == EXIT_OKAY) {
        json_t *ev = json_object_get(doc, "events");
        static const char *const f[] = {"time", "action", "outcome", "actor", "target", "source"};
        for (size_t i = 0; i < json_array_size(ev); i++) {
            for (size_t k = 0; k < 6; k++) {
                if (k)
                    fputc('\t', stdout);
                reqsign_cli_put_text(
                    stdout, json_string_value(json_object_get(json_array_get(ev, i), f[k])));
            }
            fputc('\n', stdout);
        }
        const char *next = json_string_value(json_object_get(doc, "next"));
        if (next != NULL) {
            fputs("reqsign audit: more events: --after ", stderr);
            reqsign_cli_put_text(stderr, next);
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
