/* reqsign key show FILE (and keygen -y FILE): the public key, keyid and JWK
 * of an existing key file, credential or key record, as ssh-keygen -y prints
 * the public half of a private key. Also the loader verify --pub uses. */
#include "cli.h"

#include <reqsign/credential.h>
#include <reqsign/error.h>
#include <reqsign/key.h>

#include <jansson.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char reqsign_cli_key_usage[] =
    "usage: reqsign key show FILE\n"
    "\n"
    "Print the public key (SPKI PEM), 'keyid: <RFC 7638 thumbprint>' and\n"
    "'jwk: <public JWK>' of FILE: a key file of any format (a private key gives\n"
    "its public half), a credential JSON or a key record. 'reqsign keygen -y FILE'\n"
    "does the same.\n"
    "\n"
    "Options:\n"
    "  -h, --help   show this help\n";

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
        k = reqsign_key_load_mem(json_string_value(pem), json_string_length(pem), 0, err);
        st = k != NULL ? REQSIGN_OK : err->code;
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

/* see cli.h */
enum reqsign_status reqsign_cli_load_public(const char *cmd, const char *path,
                                            unsigned char pub[32], struct reqsign_error *err)
{
    struct reqsign_key *key = NULL;
    key = reqsign_key_load_file(path, 0, err);
    enum reqsign_status st = key != NULL ? REQSIGN_OK : err->code;
    if (st == REQSIGN_E_KEY_PERMISSIONS) {
        fprintf(stderr,
                "reqsign %s: warning: %s holds a private key readable by group or "
                "others; using its public part\n",
                cmd, path);
        reqsign_error_clear(err);
        key = reqsign_key_load_file(path, REQSIGN_KEY_ALLOW_PERMISSIVE, err);
        st = key != NULL ? REQSIGN_OK : err->code;
    }
    if (st == REQSIGN_E_KEY_FORMAT) {
        /* JSON that is no JWK: a credential or a key record */
        struct reqsign_error e2;
        reqsign_error_clear(&e2);
        enum reqsign_status st2 = load_pub_json(path, pub, &e2);
        if (st2 == REQSIGN_OK)
            return REQSIGN_OK;
        if (e2.message[0] != '\0') {
            *err = e2;
            return st2;
        }
    }
    if (st != REQSIGN_OK)
        return st;
    reqsign_key_public_raw(key, pub);
    reqsign_key_free(key);
    return REQSIGN_OK;
}

/* see cli.h */
int reqsign_cli_key_show(const char *cmd, const char *path)
{
    struct reqsign_error err;
    struct reqsign_key *k = NULL;
    unsigned char pub[32];
    char pem[1024], jwk[512], keyid[REQSIGN_THUMBPRINT_BUF];
    size_t pem_len = 0, jwk_len = 0;
    enum reqsign_status st;

    reqsign_error_clear(&err);
    st = reqsign_cli_load_public(cmd, path, pub, &err);
    if (st == REQSIGN_OK)
        st = (k = reqsign_key_from_public(pub, &err)) != NULL ? REQSIGN_OK : err.code;
    if (st == REQSIGN_OK)
        st = reqsign_key_public_pem(k, pem, sizeof(pem), &pem_len);
    if (st == REQSIGN_OK)
        st = reqsign_key_thumbprint(k, keyid);
    if (st == REQSIGN_OK)
        st = reqsign_key_public_jwk(k, jwk, sizeof(jwk), &jwk_len);
    reqsign_key_free(k);
    if (st != REQSIGN_OK) {
        reqsign_cli_error(cmd, st, &err);
        return EXIT_FAIL;
    }
    fwrite(pem, 1, pem_len, stdout);
    if (pem_len > 0 && pem[pem_len - 1] != '\n')
        fputc('\n', stdout);
    printf("keyid: %s\njwk: %.*s\n", keyid, (int)jwk_len, jwk);
    return EXIT_OKAY;
}

int reqsign_cli_key(int argc, char **argv)
{
    enum { Y_HELP = 1 };
    static const struct reqsign_opt_def defs[] = {
        {"help", 'h', REQSIGN_OPT_FLAG, Y_HELP},
        {NULL, 0, REQSIGN_OPT_FLAG, 0},
    };
    struct reqsign_opt_parser p = {.prog = REQSIGN_CLI_PROG,
                                   .cmd = "key",
                                   .usage = reqsign_cli_key_usage,
                                   .argc = argc,
                                   .argv = argv,
                                   .i = 1};
    const char *file = NULL, *val;
    int id = 0, r;

    if (argc < 1) {
        reqsign_cli_usage_error("key", reqsign_cli_key_usage, "missing subcommand (show)");
        return EXIT_USAGE;
    }
    if (strcmp(argv[0], "-h") == 0 || strcmp(argv[0], "--help") == 0) {
        fputs(reqsign_cli_key_usage, stdout);
        return EXIT_OKAY;
    }
    if (strcmp(argv[0], "show") != 0) {
        reqsign_cli_usage_error("key", reqsign_cli_key_usage, "unknown subcommand '%s'", argv[0]);
        return EXIT_USAGE;
    }
    while ((r = reqsign_opt_next(&p, defs, &id, &val)) != REQSIGN_OPT_END) {
        if (r == REQSIGN_OPT_ERROR)
            return EXIT_USAGE;
        if (r == REQSIGN_OPT_OPTION) { /* --help */
            fputs(reqsign_cli_key_usage, stdout);
            return EXIT_OKAY;
        }
        if (file != NULL) {
            reqsign_cli_usage_error("key", reqsign_cli_key_usage, "unexpected argument '%s'", val);
            return EXIT_USAGE;
        }
        file = val;
    }
    if (file == NULL) {
        reqsign_cli_usage_error("key", reqsign_cli_key_usage, "show: missing FILE");
        return EXIT_USAGE;
    }
    return reqsign_cli_key_show("key", file);
}
