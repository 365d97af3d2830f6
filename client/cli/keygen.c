/* reqsign keygen: generate an Ed25519 key pair. */
#include "cli.h"

#include <reqsign/error.h>
#include <reqsign/key.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char reqsign_cli_keygen_usage[] =
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

/* ---------------------------------------------------------------- keygen */

enum { K_HELP = 1, K_OUT };

int reqsign_cli_keygen(int argc, char **argv)
{
    static const struct reqsign_cli_optdef defs[] = {
        {"output", 'o', CLI_VALUE, K_OUT},
        {"help", 'h', CLI_FLAG, K_HELP},
        {NULL, 0, CLI_FLAG, 0},
    };
    struct reqsign_cli_optp p = {argc, argv, 0,   0, "keygen", reqsign_cli_keygen_usage,
                                 0,    NULL, NULL};
    const char *out_file = NULL, *val;
    int id = 0, r;

    while ((r = reqsign_cli_next_opt(&p, defs, &id, &val)) != CLI_END) {
        if (r == CLI_ERR)
            return EXIT_USAGE;
        if (r == CLI_POS) {
            reqsign_cli_usage_error("keygen", reqsign_cli_keygen_usage, "unexpected argument '%s'",
                                    val);
            return EXIT_USAGE;
        }
        switch (id) {
        case K_HELP:
            fputs(reqsign_cli_keygen_usage, stdout);
            return EXIT_OKAY;
        case K_OUT:
            if (out_file != NULL) {
                reqsign_cli_usage_error("keygen", reqsign_cli_keygen_usage, "-o given twice");
                return EXIT_USAGE;
            }
            if (*val == '\0') {
                reqsign_cli_usage_error("keygen", reqsign_cli_keygen_usage, "-o needs a file name");
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
    char keyid[REQSIGN_KEYID_BUF];
    size_t priv_len = 0, pub_len = 0;
    int rc = EXIT_FAIL;

    reqsign_error_clear(&err);
    st = reqsign_key_generate(&key, &err);
    if (st != REQSIGN_OK) {
        reqsign_cli_print_error(stderr, st, &err);
        return EXIT_FAIL;
    }
    st = reqsign_key_private_pem(key, priv, sizeof(priv), &priv_len);
    if (st == REQSIGN_OK)
        st = reqsign_key_public_pem(key, pub, sizeof(pub), &pub_len);
    if (st == REQSIGN_OK)
        st = reqsign_key_thumbprint(key, keyid);
    reqsign_key_free(key);
    if (st != REQSIGN_OK) {
        reqsign_cli_print_error(stderr, st, NULL);
        goto out;
    }

    if (out_file != NULL) {
        int fd = reqsign_cli_secret_create("keygen", out_file, 0);
        if (fd < 0 || reqsign_cli_secret_finish("keygen", out_file, fd, priv, priv_len) != 0)
            goto out;
    } else {
        /* straight to the fd, so no copy of the secret stays in stdio buffers */
        if (fflush(stdout) != 0 || reqsign_cli_write_all(STDOUT_FILENO, priv, priv_len) != 0 ||
            (priv_len > 0 && priv[priv_len - 1] != '\n' &&
             reqsign_cli_write_all(STDOUT_FILENO, "\n", 1) != 0)) {
            reqsign_cli_print_error_msg(stderr, REQSIGN_E_IO, "stdout: %s", strerror(errno));
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
