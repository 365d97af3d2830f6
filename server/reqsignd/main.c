/* reqsignd: the reqsign key service (docs/KEYSERVICE.md).
 *
 *   reqsignd init --db PATH -o admin.json [--service URL]
 *   reqsignd --db PATH --listen HOST:PORT [--public-authority H[:P]] [--max-age N]
 *            [--skew N] [--cache-ttl N]
 *
 * This file holds the command line, `init`, and the libmicrohttpd wiring
 * (signals and shutdown are reqsign_httpd_run()'s); the request handling is
 * in service.c, which also runs in-process (service.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <reqsign/key.h>
#include <reqsign/keycache.h>
#include <reqsign/keystore.h>
#include <reqsign/verifier.h>

#include "httpd.h"
#include "service.h"

#define PROG "reqsignd"

/* ---- init ---- */

static int usage(void)
{
    fprintf(stderr,
            "usage: " PROG " init --db PATH -o CREDENTIAL.json [--service URL]\n"
            "       " PROG " --db PATH --listen HOST:PORT [--public-authority HOST[:PORT]]\n"
            "                [--max-age N] [--skew N] [--cache-ttl N] [--threads N]\n");
    return 2;
}

static int cmd_init(int argc, char **argv)
{
    const char *db = NULL, *out = NULL, *service = NULL;
    for (int i = 2; i < argc; i++) {
        if (i + 1 < argc && strcmp(argv[i], "--db") == 0)
            db = argv[++i];
        else if (i + 1 < argc && (strcmp(argv[i], "-o") == 0 || strcmp(argv[i], "--out") == 0))
            out = argv[++i];
        else if (i + 1 < argc && strcmp(argv[i], "--service") == 0)
            service = argv[++i];
        else
            return usage();
    }
    if (db == NULL || out == NULL)
        return usage();

    struct reqsign_error err;
    reqsign_error_clear(&err);
    struct reqsign_keystore *ks = reqsign_keystore_sqlite_open(db, REQSIGN_KEYSTORE_CREATE, &err);
    if (ks == NULL) {
        fprintf(stderr, PROG ": %s: %s\n", db, err.message[0] ? err.message : "cannot open");
        return 1;
    }
    struct reqsign_key_record one;
    size_t n = 0;
    if (reqsign_keystore_list(ks, NULL, 1, &one, &n, &err) != REQSIGN_OK) {
        fprintf(stderr, PROG ": %s: %s\n", db, err.message);
        reqsign_keystore_free(ks);
        return 1;
    }
    if (n > 0) {
        fprintf(stderr, PROG ": %s already holds keys; refusing to initialise it again\n", db);
        reqsign_keystore_free(ks);
        return 1;
    }
    int fd = open(out, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        fprintf(stderr, PROG ": %s: %s%s\n", out, strerror(errno),
                errno == EEXIST ? " (refusing to overwrite)" : "");
        reqsign_keystore_free(ks);
        return 1;
    }
    int rc = 1;
    char *cred = NULL;
    size_t cred_len = 0;
    char keyid[REQSIGN_KEYID_MAX_LEN + 1] = "";
    int st = fchmod(fd, 0600) != 0 ? 1 : reqsignd_init_admin(ks, service, &cred, &cred_len, keyid,
                                                             NULL, &err);
    if (st == 1) {
        fprintf(stderr, PROG ": cannot create the key\n");
        goto done;
    }
    if (st == 2) {
        fprintf(stderr, PROG ": %s: %s\n", db, err.message);
        goto done;
    }
    if (st != 0) {
        fprintf(stderr, PROG ": cannot build the credential\n");
        goto done;
    }
    size_t off = 0;
    while (off < cred_len) {
        ssize_t w = write(fd, cred + off, cred_len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    if (off != cred_len || fsync(fd) != 0) {
        fprintf(stderr, PROG ": %s: write failed\n", out);
        goto done;
    }
    fprintf(stderr, PROG ": created admin key %s; credential written to %s\n", keyid, out);
    rc = 0;
done:
    if (cred != NULL) {
        reqsign_memzero(cred, cred_len);
        free(cred);
    }
    close(fd);
    if (rc != 0)
        unlink(out);
    reqsign_keystore_free(ks);
    return rc;
}

/* ---- serve ---- */

static int opt_seconds(const char *name, const char *v, int64_t min, int64_t *out)
{
    if (reqsign_httpd_parse_seconds(v, out) != 0 || *out < min) {
        fprintf(stderr, PROG ": %s wants an integer >= %lld, got '%s'\n", name, (long long)min, v);
        return -1;
    }
    return 0;
}

static int cmd_serve(int argc, char **argv)
{
    const char *db = NULL, *listen = NULL, *pub = NULL;
    int64_t max_age = REQSIGN_DEFAULT_MAX_AGE, skew = REQSIGN_DEFAULT_SKEW;
    int64_t ttl = REQSIGN_KEYCACHE_DEFAULT_TTL, threads = 0;
    for (int i = 1; i < argc; i += 2) { /* every option takes a value */
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL)
            return usage();
        if (strcmp(a, "--db") == 0)
            db = v;
        else if (strcmp(a, "--listen") == 0)
            listen = v;
        else if (strcmp(a, "--public-authority") == 0)
            pub = v;
        else if (strcmp(a, "--max-age") == 0) {
            if (opt_seconds(a, v, 1, &max_age) != 0)
                return 2;
        } else if (strcmp(a, "--skew") == 0) {
            if (opt_seconds(a, v, 0, &skew) != 0)
                return 2;
        } else if (strcmp(a, "--cache-ttl") == 0) {
            if (opt_seconds(a, v, 1, &ttl) != 0)
                return 2;
        } else if (strcmp(a, "--threads") == 0) {
            if (opt_seconds(a, v, 1, &threads) != 0 || threads > 256)
                return 2;
        } else
            return usage();
    }
    if (db == NULL || listen == NULL)
        return usage();

    struct reqsign_error err;
    reqsign_error_clear(&err);
    struct reqsign_keystore *store = reqsign_keystore_sqlite_open(db, 0, &err);
    if (store == NULL) {
        fprintf(stderr, PROG ": %s: %s (run '" PROG " init' first)\n", db,
                err.message[0] ? err.message : "cannot open");
        return 1;
    }
    struct reqsignd_service_opts so;
    memset(&so, 0, sizeof(so));
    so.public_authority = pub;
    so.max_age = max_age;
    so.skew = skew;
    so.cache_ttl = ttl;
    so.max_body = REQSIGN_HTTPD_DEFAULT_MAX_BODY;
    struct reqsignd_service *s = reqsignd_service_new(store, &so, &err);
    int rc = 1;
    if (s == NULL) {
        fprintf(stderr, PROG ": %s\n", err.message[0] ? err.message : "cannot start");
    } else {
        struct reqsign_httpd_opts ho;
        memset(&ho, 0, sizeof(ho));
        ho.listen = listen;
        ho.max_body = so.max_body;
        ho.threads = (unsigned)threads;
        ho.name = PROG;
        ho.handlers = reqsignd_service_handlers();
        ho.ctx = s;
        struct reqsign_httpd *h = reqsign_httpd_start(&ho);
        if (h != NULL)
            rc = reqsign_httpd_run(h);
    }
    reqsignd_service_free(s);
    reqsign_keystore_free(store);
    return rc;
}

int main(int argc, char **argv)
{
    /* a generated private key lives in this process's memory for one response */
    if (reqsign_httpd_no_core_dumps() != 0)
        fprintf(stderr, PROG ": warning: cannot disable core dumps\n");
    if (argc >= 2 && strcmp(argv[1], "init") == 0)
        return cmd_init(argc, argv);
    if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        usage();
        return 0;
    }
    return cmd_serve(argc, argv);
}
