/* reqsignd: the reqsign key service (docs/KEYSERVICE.md, reqsignd(8)).
 *
 *   reqsignd init (--db PATH | --key-store STORE) -o admin.json --service URL
 *   reqsignd admin add (--db PATH | --key-store STORE) -o FILE [--service URL]
 *   reqsignd (--db PATH | --key-store STORE) --listen HOST:PORT [--nonce-store STORE]
 *            (--authority H[:P] ... | --any-authority) [--max-age N] [--skew N]
 *            [--cache-ttl N] [--threads N] [--api-url URL]
 *            [--tls-cert FILE --tls-key FILE | --insecure-http] [--public-scheme S]
 *            [--log-format text|json]
 *   reqsignd --help | --version
 *
 *   --authority HOST[:PORT]: the authority clients sign for the service
 *       (repeatable; alias --public-authority). Required unless
 *       --any-authority, which takes @authority from each request's Host and
 *       logs a warning (spec/PROTOCOL.md section 5.2.3).
 *   --service URL (init): the URL the service will be reached at, written
 *       into admin.json so that `reqsign keys` finds it.
 *   admin add: offline recovery (the last admin key revoked, expired or
 *       lost): a new keys:admin key written straight into the store, which
 *       needs write access to it; recorded in the audit log as "admin.add"
 *       from source "offline".
 *   --api-url URL: the base URL of the provider's API, written as "api" into
 *       the credentials issued, so that `reqsign send /v1/...` can take a path.
 *
 *   --key-store sqlite:PATH | PATH | postgresql://...  (--db PATH: sqlite:PATH)
 *   --nonce-store memory | redis://HOST[:PORT][/DB] | unix:/path  (server/httpd/stores.h)
 *   TLS, --insecure-http, --public-scheme, --log-format: server/httpd/httpd.h
 *
 * Exit status: 0 stopped by a signal after serving, 1 a failure (the store,
 * the port, ...), 2 a usage error (one line names the option).
 *
 * This file holds the command line, `init`, and the libmicrohttpd wiring
 * (signals and shutdown are reqsign_httpd_run()'s); the request handling is
 * in service.c, which also runs in-process (service.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <reqsign/key.h>
#include <reqsign/keycache.h>
#include <reqsign/keystore.h>
#include <reqsign/verifier.h>

#include "httpd.h"
#include "service.h"
#include "stores.h"

#define PROG "reqsignd"
#ifndef REQSIGN_VERSION
#define REQSIGN_VERSION "0.1.0"
#endif

/* ---- init ---- */

static void help(FILE *f)
{
    fprintf(
        f,
        "usage: " PROG " init (--db PATH | --key-store STORE) -o CREDENTIAL.json --service URL\n"
        "       " PROG " admin add (--db PATH | --key-store STORE) -o CREDENTIAL.json\n"
        "                [--service URL]\n"
        "       " PROG " (--db PATH | --key-store STORE) --listen HOST:PORT\n"
        "                (--authority HOST[:PORT] ... | --any-authority)\n"
        "                [--nonce-store STORE] [--max-age N] [--skew N] [--cache-ttl N]\n"
        "                [--threads N] [--api-url URL] [--tls-cert FILE --tls-key FILE]\n"
        "                [--insecure-http] [--public-scheme http|https] [--log-format text|json]\n"
        "                [--enrollment-ttl SECONDS] [--last-used-interval SECONDS]\n"
        "       " PROG " --help | --version\n"
        "  --service URL: (init) the URL this service is reached at, kept in the credential\n"
        "  admin add: offline recovery: a new keys:admin key written into the store\n"
        "  (needs write access to it; recorded in the audit log)\n"
        "  --authority: the host[:port] clients sign for this service (repeatable;\n"
        "  alias --public-authority)\n"
        "  --api-url URL: the API's base URL, put as \"api\" in the credentials "
        "issued\n" REQSIGN_HTTPD_OPTIONS_USAGE "  %s\n"
        "exit status: 0 ok, 1 failure, 2 usage error\n",
        reqsign_stores_usage());
}

/* A usage error: one line naming what is wrong, a pointer to --help, exit 2. */
static int usage_error(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    reqsign_opt_usage_verror(PROG, NULL, fmt, ap);
    va_end(ap);
    return 2;
}

/* A URL option: http:// or https:// followed by something. */
static int check_url(const char *opt, const char *v)
{
    if ((strncmp(v, "http://", 7) != 0 || v[7] == '\0') &&
        (strncmp(v, "https://", 8) != 0 || v[8] == '\0'))
        return usage_error("%s wants an http:// or https:// URL, got '%s'", opt, v);
    return 0;
}

/* Why a SQLite key store could not be opened, said as its real cause. */
static void explain_sqlite(const char *spec, int need_write)
{
    char why[1024];
    if (reqsign_stores_sqlite_problem(reqsign_stores_key_store_path(spec), need_write, why,
                                      sizeof(why)) != 0)
        fprintf(stderr, PROG ": %s\n", why);
}

/* Write @cred (@len bytes) to the new file @fd (@out); 0 or -1 (said). */
static int write_all(int fd, const char *out, const char *cred, size_t len)
{
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, cred + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    if (off != len || fsync(fd) != 0) {
        fprintf(stderr, PROG ": %s: write failed\n", out);
        return -1;
    }
    return 0;
}

/* The offline "admin.add" event of `reqsignd admin add` (stores with an
 * audit log). */
static void audit_offline(struct reqsign_keystore *ks, const char *keyid)
{
    struct reqsign_audit_event ev;
    struct reqsign_error err;
    reqsign_error_clear(&err);
    memset(&ev, 0, sizeof(ev));
    ev.time = (int64_t)time(NULL);
    snprintf(ev.action, sizeof(ev.action), "admin.add");
    snprintf(ev.target, sizeof(ev.target), "%s", keyid);
    snprintf(ev.target_account, sizeof(ev.target_account), "%s", REQSIGN_ACCOUNT_OPERATOR);
    snprintf(ev.outcome, sizeof(ev.outcome), "ok");
    snprintf(ev.source, sizeof(ev.source), "offline (uid %u)", (unsigned)geteuid());
    if (reqsign_keystore_audit_append(ks, &ev, &err) != REQSIGN_OK)
        fprintf(stderr, PROG ": warning: not recorded in the audit log: %s\n", err.message);
}

/* `init` (@recovery 0) and `admin add` (@recovery 1): a new keys:admin key
 * in the store, its credential written to -o (0600, O_EXCL). */
/* The options of `init` and `admin add`. */
enum { O_HELP = 1, O_OUT, O_SERVICE };
static const struct reqsign_opt_def admin_opts[] = {
    {"help", 'h', REQSIGN_OPT_FLAG, O_HELP},
    {"out", 'o', REQSIGN_OPT_VALUE, O_OUT},
    {"service", 0, REQSIGN_OPT_VALUE, O_SERVICE},
    REQSIGN_STORES_OPTS,
    {0},
};

/* `init` and `admin add` (@cmd): the command line from argv[@first..] into
 * @sto, *@out and *@service. 0, 1 (--help printed), or 2 (a usage error,
 * printed). */
static int admin_parse(int argc, char **argv, int first, const char *cmd,
                       struct reqsign_stores_opts *sto, const char **out, const char **service)
{
    struct reqsign_opt_parser p = {.prog = PROG, .argc = argc, .argv = argv, .i = first};
    const char *v;
    int id = 0, r;
    while ((r = reqsign_opt_next(&p, admin_opts, &id, &v)) != REQSIGN_OPT_END) {
        if (r == REQSIGN_OPT_ERROR)
            return 2;
        if (r == REQSIGN_OPT_OPERAND)
            return usage_error("unexpected argument '%s'", v);
        if (id == REQSIGN_STORES_O_NONCE_STORE)
            return usage_error("%s takes no --nonce-store", cmd);
        int st = reqsign_stores_option(sto, PROG, id, v);
        if (st < 0)
            return 2;
        if (st > 0)
            continue;
        switch (id) {
        case O_HELP:
            help(stdout);
            return 1;
        case O_OUT:
            *out = v;
            break;
        case O_SERVICE:
            if (check_url("--service", v) != 0)
                return 2;
            *service = v;
            break;
        }
    }
    return 0;
}

static int cmd_admin_key(int argc, char **argv, int first, int recovery)
{
    const char *out = NULL, *service = NULL;
    const char *cmd = recovery ? "admin add" : "init";
    struct reqsign_stores_opts sto = {0};
    int pr = admin_parse(argc, argv, first, cmd, &sto, &out, &service);
    if (pr != 0)
        return pr == 1 ? 0 : 2;
    if (reqsign_stores_from_env(&sto, PROG, 0) != 0)
        return 2;
    if (sto.key_store == NULL)
        return usage_error("%s needs --db PATH, --key-store STORE or REQSIGN_KEY_STORE", cmd);
    if (out == NULL)
        return usage_error("%s needs -o CREDENTIAL.json", cmd);
    if (service == NULL && !recovery)
        return usage_error("init needs --service URL: the URL this service will be reached at "
                           "(e.g. https://keys.example.com), written into the admin credential");
    const char *db = reqsign_stores_describe(sto.key_store); /* for messages */
    int pg = reqsign_stores_key_store_is_pg(sto.key_store);

    struct reqsign_error err;
    reqsign_error_clear(&err);
    if (recovery && !pg) { /* an existing database, which this user must be able to write */
        char why[1024];
        if (reqsign_stores_sqlite_problem(reqsign_stores_key_store_path(sto.key_store), 1, why,
                                          sizeof(why)) != 0) {
            fprintf(stderr, PROG ": %s\n", why);
            return 1;
        }
    }
    struct reqsign_keystore *ks = reqsign_stores_open_keys(
        PROG, sto.key_store, recovery && !pg ? 0 : REQSIGN_KEYSTORE_CREATE);
    if (ks == NULL) {
        if (!pg && access(reqsign_stores_key_store_path(sto.key_store), F_OK) == 0)
            explain_sqlite(sto.key_store, 1);
        return 1;
    }
    struct reqsign_key_record one;
    size_t n = 0;
    if (reqsign_keystore_list(ks, NULL, 1, &one, &n, &err) != REQSIGN_OK) {
        fprintf(stderr, PROG ": %s: %s\n", db, err.message);
        reqsign_keystore_free(ks);
        return 1;
    }
    if (n > 0 && !recovery) {
        fprintf(stderr,
                PROG ": %s already holds keys; refusing to initialise it again (a new admin key "
                     "for it: '" PROG " admin add')\n",
                db);
        reqsign_keystore_free(ks);
        return 1;
    }
    if (n == 0 && recovery) {
        fprintf(stderr, PROG ": %s holds no keys: run '" PROG " init' first\n", db);
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
    char keyid[REQSIGN_KEYID_IN_MAX + 1] = "";
    int st = fchmod(fd, 0600) != 0
                 ? 1
                 : reqsignd_init_admin(ks, service, &cred, &cred_len, keyid, NULL, &err);
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
    if (write_all(fd, out, cred, cred_len) != 0) {
        /* the key is in the store but its credential is lost: revoke it */
        reqsign_error_clear(&err);
        if (reqsign_keystore_revoke(ks, keyid, strlen(keyid), (int64_t)time(NULL), &err) !=
            REQSIGN_OK)
            fprintf(stderr, PROG ": and cannot revoke the key %s: %s\n", keyid, err.message);
        goto done;
    }
    if (recovery)
        audit_offline(ks, keyid);
    fprintf(stderr, PROG ": created admin key %s; credential written to %s\n", keyid, out);
    if (recovery && service == NULL)
        fprintf(stderr, PROG ": the credential names no service: give 'reqsign keys' --service "
                             "URL, or run again with --service URL\n");
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

/* What the serving command line says. */
struct serve_opts {
    const char *listen, *api_url;
    const char *authorities[REQSIGN_VERIFIER_AUTHORITIES_IN_MAX];
    size_t n_authorities;
    int any_authority;
    struct reqsign_stores_opts sto;
    struct reqsign_httpd_opts ho;
    int64_t max_age, skew, ttl, threads, enroll_ttl, last_used;
};

/* The options of the serving command line. */
enum {
    O_LISTEN = 1,
    O_AUTHORITY,
    O_ANY_AUTHORITY,
    O_API_URL,
    O_MAX_AGE,
    O_SKEW,
    O_CACHE_TTL,
    O_LAST_USED,
    O_ENROLL_TTL,
    O_THREADS,
};
static const struct reqsign_opt_def serve_opts[] = {
    {"listen", 0, REQSIGN_OPT_VALUE, O_LISTEN},
    {"authority", 0, REQSIGN_OPT_VALUE, O_AUTHORITY},
    {"public-authority", 0, REQSIGN_OPT_VALUE, O_AUTHORITY},
    {"any-authority", 0, REQSIGN_OPT_FLAG, O_ANY_AUTHORITY},
    {"api-url", 0, REQSIGN_OPT_VALUE, O_API_URL},
    {"max-age", 0, REQSIGN_OPT_VALUE, O_MAX_AGE},
    {"skew", 0, REQSIGN_OPT_VALUE, O_SKEW},
    {"cache-ttl", 0, REQSIGN_OPT_VALUE, O_CACHE_TTL},
    {"last-used-interval", 0, REQSIGN_OPT_VALUE, O_LAST_USED},
    {"enrollment-ttl", 0, REQSIGN_OPT_VALUE, O_ENROLL_TTL},
    {"threads", 0, REQSIGN_OPT_VALUE, O_THREADS},
    REQSIGN_HTTPD_OPTS,
    REQSIGN_STORES_OPTS,
    {0},
};

/* One of serve_opts' own options, @id with value @v, into @o: 0 or 2 (a
 * usage error, printed). */
static int serve_option(struct serve_opts *o, int id, const char *v)
{
    switch (id) {
    case O_LISTEN:
        o->listen = v;
        return 0;
    case O_AUTHORITY:
        if (o->n_authorities == REQSIGN_VERIFIER_AUTHORITIES_IN_MAX)
            return usage_error("more than %d --authority options",
                               REQSIGN_VERIFIER_AUTHORITIES_IN_MAX);
        o->authorities[o->n_authorities++] = v;
        return 0;
    case O_ANY_AUTHORITY:
        o->any_authority = 1;
        return 0;
    case O_API_URL:
        o->api_url = v;
        return check_url("--api-url", v) != 0 ? 2 : 0;
    case O_MAX_AGE:
        return opt_seconds("--max-age", v, 1, &o->max_age) != 0 ? 2 : 0;
    case O_SKEW:
        return opt_seconds("--skew", v, 0, &o->skew) != 0 ? 2 : 0;
    case O_CACHE_TTL:
        return opt_seconds("--cache-ttl", v, 1, &o->ttl) != 0 ? 2 : 0;
    case O_LAST_USED:
        return opt_seconds("--last-used-interval", v, 0, &o->last_used) != 0 ? 2 : 0;
    case O_ENROLL_TTL:
        return opt_seconds("--enrollment-ttl", v, 1, &o->enroll_ttl) != 0 ? 2 : 0;
    case O_THREADS:
        if (opt_seconds("--threads", v, 1, &o->threads) != 0 || o->threads > 256)
            return usage_error("--threads wants 1..256, got '%s'", v);
        return 0;
    default:
        return 0;
    }
}

/* The serving command line into @o, then the environment and the checks
 * made before anything is opened: 0, or 2 (a usage error, printed). */
static int serve_parse(int argc, char **argv, struct serve_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->max_age = REQSIGN_DEFAULT_MAX_AGE;
    o->skew = REQSIGN_DEFAULT_SKEW;
    o->ttl = REQSIGN_KEYCACHE_DEFAULT_TTL;
    o->enroll_ttl = REQSIGND_ENROLLMENT_TTL;
    o->last_used = REQSIGN_LAST_USED_DEFAULT_INTERVAL;
    struct reqsign_opt_parser p = {.prog = PROG, .argc = argc, .argv = argv, .i = 1};
    const char *v;
    int id = 0, r;
    while ((r = reqsign_opt_next(&p, serve_opts, &id, &v)) != REQSIGN_OPT_END) {
        if (r == REQSIGN_OPT_ERROR)
            return 2;
        if (r == REQSIGN_OPT_OPERAND)
            return usage_error("unexpected argument '%s'", v);
        int st = reqsign_httpd_option(&o->ho, PROG, id, v); /* TLS, log format, ... */
        if (st == 0)
            st = reqsign_stores_option(&o->sto, PROG, id, v);
        if (st < 0)
            return 2;
        if (st == 0 && serve_option(o, id, v) != 0)
            return 2;
    }
    if (reqsign_stores_from_env(&o->sto, PROG, 1) != 0)
        return 2;
    if (o->sto.key_store == NULL)
        return usage_error("--db PATH, --key-store STORE or REQSIGN_KEY_STORE is required");
    if (o->listen == NULL)
        return usage_error("--listen HOST:PORT is required");
    if (reqsign_httpd_check_authority(PROG, o->n_authorities, o->any_authority) != 0)
        return 2;
    o->ho.listen = o->listen;
    o->ho.name = PROG;
    if (reqsign_httpd_check_opts(&o->ho) != 0) /* TLS files, plain HTTP off loopback */
        return 2;
    return 0;
}

static int cmd_serve(int argc, char **argv)
{
    struct serve_opts o;
    if (serve_parse(argc, argv, &o) != 0)
        return 2;

    struct reqsign_error err;
    reqsign_error_clear(&err);
    /* reqsignd writes: PostgreSQL is migrated if needed (under an advisory
     * lock); a SQLite file must come from `init`. */
    int pg = reqsign_stores_key_store_is_pg(o.sto.key_store);
    struct reqsign_keystore *store =
        reqsign_stores_open_keys(PROG, o.sto.key_store, pg ? REQSIGN_KEYSTORE_CREATE : 0);
    if (store == NULL) {
        if (!pg) /* the real cause: missing, permissions, or not a database */
            explain_sqlite(o.sto.key_store, 1);
        return 1;
    }
    struct reqsign_nonce_store *nonces = reqsign_stores_open_nonces(PROG, o.sto.nonce_store);
    if (nonces == NULL) {
        reqsign_keystore_free(store);
        return 1;
    }
    struct reqsignd_service_opts so;
    memset(&so, 0, sizeof(so));
    so.authorities = o.authorities;
    so.n_authorities = o.n_authorities;
    so.any_authority = o.any_authority;
    so.max_age = o.max_age;
    so.skew = o.skew;
    so.cache_ttl = o.ttl;
    so.max_body = REQSIGN_HTTPD_DEFAULT_MAX_BODY;
    so.nonces = nonces;
    /* what credentials name: https when serving TLS or told so (--public-scheme) */
    so.public_scheme = o.ho.scheme != NULL ? o.ho.scheme : o.ho.tls_cert != NULL ? "https" : "http";
    so.verify_scheme = o.ho.scheme; /* behind a proxy: the scheme clients used */
    so.api_url = o.api_url;
    so.enrollment_ttl = o.enroll_ttl;
    so.last_used_interval = o.last_used;
    char vname[REQSIGN_VERIFIER_NAME_IN_MAX + 1] = PROG "@", host[48] = "";
    if (gethostname(host, sizeof(host) - 1) == 0) {
        size_t vl = strlen(vname), hl = strnlen(host, sizeof(host) - 1);
        if (hl > sizeof(vname) - 1 - vl)
            hl = sizeof(vname) - 1 - vl;
        memcpy(vname + vl, host, hl);
        vname[vl + hl] = '\0';
    }
    so.verifier_name = vname;
    struct reqsignd_service *s = reqsignd_service_new(store, &so, &err);
    struct reqsign_keystore_pg_listener *listener = NULL;
    int rc = 1;
    if (s == NULL) {
        fprintf(stderr, PROG ": %s\n", err.message[0] ? err.message : "cannot start");
    } else if (reqsign_stores_listen(PROG, o.sto.key_store, reqsignd_service_keycache(s),
                                     &listener) == 0) {
        o.ho.max_body = so.max_body;
        o.ho.threads = (unsigned)o.threads;
        o.ho.name = PROG;
        o.ho.handlers = reqsignd_service_handlers();
        o.ho.ctx = s;
        struct reqsign_httpd *h = reqsign_httpd_start(&o.ho);
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
        return cmd_admin_key(argc, argv, 2, 0);
    if (argc >= 2 && strcmp(argv[1], "admin") == 0) {
        if (argc >= 3 && (strcmp(argv[2], "-h") == 0 || strcmp(argv[2], "--help") == 0)) {
            help(stdout);
            return 0;
        }
        if (argc < 3 || strcmp(argv[2], "add") != 0)
            return usage_error("'admin' wants a subcommand: admin add");
        return cmd_admin_key(argc, argv, 3, 1);
    }
    switch (reqsign_opt_help_or_version(argc, argv, 1)) { /* anywhere on the line */
    case REQSIGN_OPT_HELP:
        help(stdout);
        return 0;
    case REQSIGN_OPT_VERSION:
        printf(PROG " " REQSIGN_VERSION "\n");
        return 0;
    }
    if (argc < 2) {
        help(stderr);
        return 2;
    }
    return cmd_serve(argc, argv);
}
