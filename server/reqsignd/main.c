/* reqsignd: the reqsign key service (docs/KEYSERVICE.md).
 *
 *   reqsignd init (--db PATH | --key-store STORE) -o admin.json [--service URL]
 *   reqsignd (--db PATH | --key-store STORE) --listen HOST:PORT [--nonce-store STORE]
 *            [--public-authority H[:P]] [--max-age N] [--skew N] [--cache-ttl N]
 *
 *   --key-store sqlite:PATH | PATH | postgresql://...  (--db PATH: sqlite:PATH)
 *   --nonce-store memory | redis://HOST[:PORT][/DB] | unix:/path  (server/httpd/stores.h)
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
#include "stores.h"

#define PROG "reqsignd"

/* ---- init ---- */

static int usage(void)
{
    fprintf(stderr,
            "usage: " PROG " init (--db PATH | --key-store STORE) -o CREDENTIAL.json"
            " [--service URL]\n"
            "       " PROG " (--db PATH | --key-store STORE) --listen HOST:PORT\n"
            "                [--nonce-store STORE] [--public-authority HOST[:PORT]]\n"
            "                [--max-age N] [--skew N] [--cache-ttl N] [--threads N]\n"
            "                [--enrollment-ttl SECONDS] [--last-used-interval SECONDS]\n"
            "  %s\n",
            reqsign_stores_usage());
    return 2;
}

static int cmd_init(int argc, char **argv)
{
    const char *out = NULL, *service = NULL;
    struct reqsign_stores_opts sto = {0};
    for (int i = 2; i < argc; i++) {
        int st = i + 1 < argc ? reqsign_stores_option(&sto, PROG, argv[i], argv[i + 1]) : 0;
        if (st < 0 || (st > 0 && sto.nonce_store != NULL))
            return usage();
        if (st > 0)
            i++;
        else if (i + 1 < argc && (strcmp(argv[i], "-o") == 0 || strcmp(argv[i], "--out") == 0))
            out = argv[++i];
        else if (i + 1 < argc && strcmp(argv[i], "--service") == 0)
            service = argv[++i];
        else
            return usage();
    }
    if (sto.key_store == NULL || out == NULL)
        return usage();
    const char *db = reqsign_stores_describe(sto.key_store); /* for messages */

    struct reqsign_error err;
    reqsign_error_clear(&err);
    struct reqsign_keystore *ks =
        reqsign_stores_open_keys(PROG, sto.key_store, REQSIGN_KEYSTORE_CREATE);
    if (ks == NULL)
        return 1;
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
    const char *listen = NULL, *pub = NULL;
    struct reqsign_stores_opts sto = {0};
    int64_t max_age = REQSIGN_DEFAULT_MAX_AGE, skew = REQSIGN_DEFAULT_SKEW;
    int64_t ttl = REQSIGN_KEYCACHE_DEFAULT_TTL, threads = 0;
    int64_t enroll_ttl = REQSIGND_ENROLLMENT_TTL;
    int64_t last_used = REQSIGN_LAST_USED_DEFAULT_INTERVAL;
    for (int i = 1; i < argc; i += 2) { /* every option takes a value */
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL)
            return usage();
        int st = reqsign_stores_option(&sto, PROG, a, v);
        if (st < 0)
            return 2;
        if (st > 0)
            continue;
        if (strcmp(a, "--listen") == 0)
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
        } else if (strcmp(a, "--last-used-interval") == 0) {
            if (opt_seconds(a, v, 0, &last_used) != 0)
                return 2;
        } else if (strcmp(a, "--enrollment-ttl") == 0) {
            if (opt_seconds(a, v, 1, &enroll_ttl) != 0)
                return 2;
        } else if (strcmp(a, "--threads") == 0) {
            if (opt_seconds(a, v, 1, &threads) != 0 || threads > 256)
                return 2;
        } else
            return usage();
    }
    if (sto.key_store == NULL || listen == NULL)
        return usage();

    struct reqsign_error err;
    reqsign_error_clear(&err);
    /* reqsignd writes: PostgreSQL is migrated if needed (under an advisory
     * lock); a SQLite file must come from `init`. */
    int pg = reqsign_stores_key_store_is_pg(sto.key_store);
    struct reqsign_keystore *store =
        reqsign_stores_open_keys(PROG, sto.key_store, pg ? REQSIGN_KEYSTORE_CREATE : 0);
    if (store == NULL) {
        if (!pg)
            fprintf(stderr, PROG ": run '" PROG " init' first\n");
        return 1;
    }
    struct reqsign_nonce_store *nonces = reqsign_stores_open_nonces(PROG, sto.nonce_store);
    if (nonces == NULL) {
        reqsign_keystore_free(store);
        return 1;
    }
    struct reqsignd_service_opts so;
    memset(&so, 0, sizeof(so));
    so.public_authority = pub;
    so.max_age = max_age;
    so.skew = skew;
    so.cache_ttl = ttl;
    so.max_body = REQSIGN_HTTPD_DEFAULT_MAX_BODY;
    so.nonces = nonces;
    so.enrollment_ttl = enroll_ttl;
    so.last_used_interval = last_used;
    char vname[REQSIGN_VERIFIER_NAME_MAX + 1] = PROG "@", host[48] = "";
    if (gethostname(host, sizeof(host) - 1) == 0)
        strncat(vname, host, sizeof(vname) - strlen(vname) - 1);
    so.verifier_name = vname;
    struct reqsignd_service *s = reqsignd_service_new(store, &so, &err);
    struct reqsign_keystore_pg_listener *listener = NULL;
    int rc = 1;
    if (s == NULL) {
        fprintf(stderr, PROG ": %s\n", err.message[0] ? err.message : "cannot start");
    } else if (reqsign_stores_listen(PROG, sto.key_store, reqsignd_service_keycache(s),
                                     &listener) == 0) {
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
    reqsign_stores_unlisten(listener);
    reqsignd_service_free(s);
    reqsign_nonce_store_free(nonces);
    reqsign_keystore_free(store);
    return rc;
}

int main(int argc, char **argv)
{
    reqsign_httpd_wipe_json(); /* JSON that held a key is wiped when freed (SECURITY.md) */
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
