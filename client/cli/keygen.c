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
    "       reqsign keygen -y FILE\n"
    "\n"
    "Generate an Ed25519 key. With -o, write the private key (PKCS#8 PEM) to FILE,\n"
    "created with mode 0600, and the public key PEM to FILE.pub (mode 0644), as\n"
    "ssh-keygen does (an existing FILE or FILE.pub is never overwritten), and print\n"
    "the public key PEM and its keyid. Without -o, print the private key PEM first.\n"
    "\n"
    "Options:\n"
    "  -o, --output FILE   write the private key to FILE, the public key to FILE.pub\n"
    "  -y, --show FILE     generate nothing: print the public key PEM, keyid and JWK\n"
    "                      of an existing key, credential or key record (as\n"
    "                      'reqsign key show FILE')\n"
    "  -h, --help          show this help\n"
    "\n"
    "Output: [private PEM] public PEM, then 'keyid: <RFC 7638 thumbprint>'.\n";

/* ---------------------------------------------------------------- keygen */

enum { K_HELP = 1, K_OUT, K_SHOW };

int reqsign_cli_keygen(int argc, char **argv)
{
    static const struct reqsign_opt_def defs[] = {
        {"output", 'o', REQSIGN_OPT_VALUE, K_OUT},
        {"show", 'y', REQSIGN_OPT_VALUE, K_SHOW},
        {"help", 'h', REQSIGN_OPT_FLAG, K_HELP},
        {NULL, 0, REQSIGN_OPT_FLAG, 0},
    };
    struct reqsign_opt_parser p = {.prog = REQSIGN_CLI_PROG,
                                   .cmd = "keygen",
                                   .usage = reqsign_cli_keygen_usage,
                                   .argc = argc,
                                   .argv = argv};
    const char *out_file = NULL, *show = NULL, *val;
    int id = 0, r;

    while ((r = reqsign_opt_next(&p, defs, &id, &val)) != REQSIGN_OPT_END) {
        if (r == REQSIGN_OPT_ERROR)
            return EXIT_USAGE;
        if (r == REQSIGN_OPT_OPERAND) {
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
        case K_SHOW:
            show = val;
            break;
        default:
            break;
        }
    }
    if (show != NULL && out_file != NULL) {
        reqsign_cli_usage_error("keygen", reqsign_cli_keygen_usage, "-y and -o conflict");
        return EXIT_USAGE;
    }
    if (show != NULL)
        return reqsign_cli_key_show("keygen", show);

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
        /* both files first, so neither is left without the other */
        char pub_file[REQSIGN_CLI_PATH_MAX];
        int n = snprintf(pub_file, sizeof(pub_file), "%s.pub", out_file);
        if (n < 0 || (size_t)n >= sizeof(pub_file)) {
            reqsign_cli_print_error_msg(stderr, REQSIGN_E_IO, "%s: name too long", out_file);
            goto out;
        }
        int fd = reqsign_cli_secret_create("keygen", out_file, 0);
        if (fd < 0)
            goto out;
        int pfd = open(pub_file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (pfd < 0) {
            int e = errno;
            reqsign_cli_secret_abort(out_file, fd);
            fprintf(stderr, "reqsign keygen: error: io: %s: %s%s\n", pub_file, strerror(e),
                    e == EEXIST ? " (refusing to overwrite)" : "");
            goto out;
        }
        if (reqsign_cli_secret_finish("keygen", out_file, fd, priv, priv_len) != 0) {
            close(pfd);
            (void)unlink(pub_file);
            goto out;
        }
        /* the public key is no secret: 0644 whatever the umask, as ssh-keygen */
        int bad =
            fchmod(pfd, 0644) != 0 || reqsign_cli_write_all(pfd, pub, pub_len) != 0 ||
            (pub_len > 0 && pub[pub_len - 1] != '\n' && reqsign_cli_write_all(pfd, "\n", 1) != 0);
        int e = errno;
        if (close(pfd) != 0 && !bad) {
            bad = 1;
            e = errno;
        }
        if (bad) {
            (void)unlink(pub_file);
            fprintf(stderr, "reqsign keygen: error: io: %s: %s\n", pub_file, strerror(e));
            goto out;
        }
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
