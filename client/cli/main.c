/* reqsign: the command-line tool. This file only dispatches; each
 * subcommand lives in its own file:
 *
 *   reqsign keygen [-o FILE]                       keygen.c
 *   reqsign sign --key FILE [options] URL          sign.c
 *   reqsign verify --pub FILE [options] URL        verify.c
 *   reqsign key show FILE                          key.c
 *   reqsign send [options] URL                     send.c
 *   reqsign keys create|list|get|revoke|...        keys.c
 *   reqsign accounts create|list|get|...           accounts.c
 *   reqsign enroll --service URL --token FILE -o F enroll.c
 *   reqsign audit [--account ID]                   audit.c
 *
 * Shared: util.c (options, errors, I/O), service.c (credentials, signed
 * HTTP to a key service).
 *
 * Exit status: 0 success (verify: the signature is valid), 1 failure (the
 * library's wire name and message are printed), 2 usage error.
 */
#include "cli.h"

#include <curl/curl.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#ifndef REQSIGN_CLI_VERSION
#define REQSIGN_CLI_VERSION "0.1.0"
#endif

/* ------------------------------------------------------------------ help */

static const char USAGE_MAIN[] = "usage: reqsign <command> [options]\n"
                                 "\n"
                                 "Commands:\n"
                                 "  keygen   generate an Ed25519 key pair (FILE and FILE.pub)\n"
                                 "  key      show the public key, keyid and JWK of a key\n"
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

/* ------------------------------------------------------------------ main */

/* send.c, keys.c */

static int cmd_curl(int (*fn)(int, char **), int argc, char **argv)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "reqsign: cannot initialise libcurl\n");
        return EXIT_FAIL;
    }
    int rc = fn(argc, argv);
    curl_global_cleanup();
    return rc;
}

/* The subcommands that talk HTTP (libcurl initialised around them). */
static int (*curl_cmd(const char *name))(int, char **)
{
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } cmds[] = {{"send", reqsign_cli_send},
                {"keys", reqsign_cli_keys},
                {"accounts", reqsign_cli_accounts},
                {"enroll", reqsign_cli_enroll},
                {"audit", reqsign_cli_audit}};
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
        if (strcmp(name, cmds[i].name) == 0)
            return cmds[i].fn;
    return NULL;
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
        reqsign_cli_usage_error(NULL, USAGE_MAIN, "missing command");
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
            fputs(reqsign_cli_keygen_usage, stdout);
        else if (strcmp(topic, "sign") == 0)
            fputs(reqsign_cli_sign_usage, stdout);
        else if (strcmp(topic, "verify") == 0)
            fputs(reqsign_cli_verify_usage, stdout);
        else if (strcmp(topic, "key") == 0)
            fputs(reqsign_cli_key_usage, stdout);
        else if (curl_cmd(topic) != NULL)
            return finish(cmd_curl(curl_cmd(topic), 1, (char *[]){"--help", NULL}));
        else {
            reqsign_cli_usage_error(NULL, USAGE_MAIN, "help: unknown command '%s'", topic);
            return EXIT_USAGE;
        }
        return finish(EXIT_OKAY);
    }
    if (strcmp(cmd, "keygen") == 0)
        return finish(reqsign_cli_keygen(argc - 2, argv + 2));
    if (strcmp(cmd, "sign") == 0)
        return finish(reqsign_cli_sign(argc - 2, argv + 2));
    if (strcmp(cmd, "verify") == 0)
        return finish(reqsign_cli_verify(argc - 2, argv + 2));
    if (strcmp(cmd, "key") == 0)
        return finish(reqsign_cli_key(argc - 2, argv + 2));
    if (curl_cmd(cmd) != NULL)
        return finish(cmd_curl(curl_cmd(cmd), argc - 2, argv + 2));
    if (cmd[0] == '-')
        reqsign_cli_usage_error(NULL, USAGE_MAIN, "unknown option '%s'", cmd);
    else
        reqsign_cli_usage_error(NULL, USAGE_MAIN, "unknown command '%s'", cmd);
    return EXIT_USAGE;
}
