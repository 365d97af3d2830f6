/* reqsign-httpd: the store options (see stores.h).
 *
 * The stores are libraries of their own; this file links the ones the build
 * made: SQLite always, PostgreSQL with REQSIGN_STORES_PG (reqsign-keystore-pg)
 * and Redis with REQSIGN_STORES_REDIS (reqsign-nonce-redis). A URL naming a
 * store that is not built fails to open, with a message saying so. */
#include "stores.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#include <reqsign/key.h>
#include <reqsign/keystore_sqlite.h>
#ifdef REQSIGN_STORES_PG
#include <reqsign/keystore_pg.h>
#endif
#ifdef REQSIGN_STORES_REDIS
#include <reqsign/nonce_redis.h>
#endif

#define SQLITE_PREFIX "sqlite:"

static int has_prefix(const char *s, const char *p)
{
    return strncmp(s, p, strlen(p)) == 0;
}

/* see stores.h */
int reqsign_stores_key_store_is_pg(const char *spec)
{
    return spec != NULL && (has_prefix(spec, "postgresql://") || has_prefix(spec, "postgres://"));
}

/* see stores.h */
const char *reqsign_stores_key_store_path(const char *spec)
{
    if (spec == NULL || reqsign_stores_key_store_is_pg(spec))
        return NULL;
    if (has_prefix(spec, SQLITE_PREFIX))
        return spec + strlen(SQLITE_PREFIX);
    return spec;
}

static int nonce_is_redis(const char *spec)
{
    return spec != NULL && (has_prefix(spec, "redis://") || has_prefix(spec, "unix:"));
}

/* see stores.h */
const char *reqsign_stores_usage(void)
{
    return "[--key-store sqlite:PATH|PATH|postgresql://...] [--db PATH]\n"
           "       [--nonce-store memory|redis://HOST[:PORT][/DB]|unix:/path]";
}

/* @spec, a URL, into @buf with its whole userinfo (user and password) as
 * "***", parsed with libcurl's URL API so that it ends where a URL parser
 * says (a password with a raw '@' is not half shown). A URL that does not
 * parse and holds an '@' is not shown past its scheme. */
static void describe_url(const char *spec, char *buf, size_t cap)
{
    CURLU *u = curl_url();
    char *user = NULL, *pass = NULL, *out = NULL;
    const unsigned flags = CURLU_NON_SUPPORT_SCHEME | CURLU_PATH_AS_IS;
    if (u == NULL || curl_url_set(u, CURLUPART_URL, spec, flags) != CURLUE_OK) {
        const char *sch = strstr(spec, "://");
        if (strchr(spec, '@') == NULL)
            snprintf(buf, cap, "%s", spec);
        else
            snprintf(buf, cap, "%.*s://*** (malformed URL, not shown)",
                     (int)(sch - spec > 32 ? 32 : sch - spec), spec);
        curl_url_cleanup(u);
        return;
    }
    (void)curl_url_get(u, CURLUPART_USER, &user, 0);
    (void)curl_url_get(u, CURLUPART_PASSWORD, &pass, 0);
    if ((user == NULL && pass == NULL) ||
        (curl_url_set(u, CURLUPART_PASSWORD, NULL, 0) == CURLUE_OK &&
         curl_url_set(u, CURLUPART_USER, "***", 0) == CURLUE_OK &&
         curl_url_get(u, CURLUPART_URL, &out, flags) == CURLUE_OK))
        snprintf(buf, cap, "%s", out != NULL ? out : spec);
    else
        snprintf(buf, cap, "(URL not shown)");
    if (pass != NULL)
        reqsign_memzero(pass, strlen(pass));
    curl_free(user);
    curl_free(pass);
    curl_free(out);
    curl_url_cleanup(u);
}

/* see stores.h */
const char *reqsign_stores_describe(const char *spec)
{
    static char buf[512];
    if (spec == NULL)
        return "(none)";
    /* scheme://user:PASSWORD@host -> scheme://(three stars)@host */
    if (strstr(spec, "://") != NULL)
        describe_url(spec, buf, sizeof(buf));
    else
        snprintf(buf, sizeof(buf), "%s", spec);
    /* ...?password=SECRET&... -> password=*** */
    char *pw = strstr(buf, "password=");
    if (pw != NULL) {
        char *v = pw + strlen("password=");
        char *end = strpbrk(v, "& ");
        char rest[512];
        snprintf(rest, sizeof(rest), "%s", end != NULL ? end : "");
        snprintf(v, sizeof(buf) - (size_t)(v - buf), "***%s", rest);
    }
    return buf;
}

/* Whether @spec, a store URL, carries a password: a URL password
 * (scheme://:PW@ or scheme://USER:PW@, as libcurl's URL parser delimits it,
 * or, for a URL it cannot parse, a ':' before the last '@' of what follows
 * "://"), or a libpq "password=" keyword (in a URL's query or a conninfo
 * string). Nothing of the password is kept or shown. */
static int has_password(const char *spec)
{
    for (const char *p = spec; (p = strstr(p, "password=")) != NULL; p++)
        if (p == spec || p[-1] == '?' || p[-1] == '&' || p[-1] == ' ' || p[-1] == '\t')
            return 1;
    const char *sch = strstr(spec, "://");
    if (sch == NULL)
        return 0;
    int found = 0;
    CURLU *u = curl_url();
    const unsigned flags = CURLU_NON_SUPPORT_SCHEME | CURLU_PATH_AS_IS;
    if (u != NULL && curl_url_set(u, CURLUPART_URL, spec, flags) == CURLUE_OK) {
        char *pass = NULL;
        if (curl_url_get(u, CURLUPART_PASSWORD, &pass, 0) == CURLUE_OK && pass != NULL) {
            found = 1;
            reqsign_memzero(pass, strlen(pass));
        }
        curl_free(pass);
    } else {
        const char *at = strrchr(sch + 3, '@');
        found = at != NULL && memchr(sch + 3, ':', (size_t)(at - (sch + 3))) != NULL;
    }
    curl_url_cleanup(u);
    return found;
}

/* the environment variable that names a store when its option is absent */
#define ENV_KEY_STORE "REQSIGN_KEY_STORE"
#define ENV_NONCE_STORE "REQSIGN_NONCE_STORE"

/* A store URL with a password on the command line: every local user reads
 * it (ps, /proc/PID/cmdline) for the daemon's life. Refused; the message
 * names where the password goes instead and never echoes it. */
static int refuse_password(const char *prog, const char *name, const char *value)
{
    if (!has_password(value))
        return 0;
    int nonce = strcmp(name, "--nonce-store") == 0;
    int pg = !nonce && reqsign_stores_key_store_is_pg(value);
    fprintf(stderr,
            "%s: %s: a password on the command line is readable by every local user (ps): "
            "put the URL in the environment variable %s instead (e.g. in the systemd unit's "
            "EnvironmentFile, mode 0600)%s\n",
            prog, name, nonce ? ENV_NONCE_STORE : ENV_KEY_STORE,
            pg ? ", or the password in a PGPASSFILE or ~/.pgpass file, which libpq reads itself"
               : "");
    return -1;
}

/* Set the key store (@db: from --db) or the nonce store from @value, which
 * @name gave (an option or an environment variable). 1 taken, -1 bad. */
static int set_key_store(struct reqsign_stores_opts *o, const char *prog, const char *name,
                         const char *value, int db)
{
    if (o->key_store != NULL) {
        fprintf(stderr, "%s: the key store is given twice (--db PATH is --key-store sqlite:PATH)\n",
                prog);
        return -1;
    }
    const char *path = db ? value : reqsign_stores_key_store_path(value);
    if (path != NULL && (path[0] == '\0' || strstr(path, "://") != NULL)) {
        fprintf(stderr, "%s: %s: want sqlite:PATH, a path or postgresql://..., got '%s'\n", prog,
                name, reqsign_stores_describe(value));
        return -1;
    }
    o->key_store = value;
    o->key_store_from_db = db;
    return 1;
}

static int set_nonce_store(struct reqsign_stores_opts *o, const char *prog, const char *name,
                           const char *value)
{
    if (o->nonce_store != NULL) {
        fprintf(stderr, "%s: --nonce-store is given twice\n", prog);
        return -1;
    }
    if (strcmp(value, "memory") != 0 && !nonce_is_redis(value)) {
        fprintf(stderr, "%s: %s: want memory, redis://HOST[:PORT][/DB] or unix:/path, got '%s'\n",
                prog, name, reqsign_stores_describe(value));
        return -1;
    }
    o->nonce_store = value;
    return 1;
}

/* see stores.h */
int reqsign_stores_option(struct reqsign_stores_opts *o, const char *prog, int id,
                          const char *value)
{
    switch (id) {
    case REQSIGN_STORES_O_DB:
        return set_key_store(o, prog, "--db", value, 1);
    case REQSIGN_STORES_O_KEY_STORE:
        if (refuse_password(prog, "--key-store", value) != 0)
            return -1;
        return set_key_store(o, prog, "--key-store", value, 0);
    case REQSIGN_STORES_O_NONCE_STORE:
        if (refuse_password(prog, "--nonce-store", value) != 0)
            return -1;
        return set_nonce_store(o, prog, "--nonce-store", value);
    default:
        return 0;
    }
}

/* see stores.h */
int reqsign_stores_from_env(struct reqsign_stores_opts *o, const char *prog, int nonces)
{
    const char *ks = getenv(ENV_KEY_STORE);
    if (o->key_store == NULL && ks != NULL && ks[0] != '\0' &&
        set_key_store(o, prog, ENV_KEY_STORE, ks, 0) < 0)
        return -1;
    const char *ns = nonces ? getenv(ENV_NONCE_STORE) : NULL;
    if (o->nonce_store == NULL && ns != NULL && ns[0] != '\0' &&
        set_nonce_store(o, prog, ENV_NONCE_STORE, ns) < 0)
        return -1;
    return 0;
}

/* see stores.h */
struct reqsign_keystore *reqsign_stores_open_keys(const char *prog, const char *spec,
                                                  unsigned flags)
{
    struct reqsign_error err;
    reqsign_error_clear(&err);
    struct reqsign_keystore *ks = NULL;
    if (reqsign_stores_key_store_is_pg(spec)) {
#ifdef REQSIGN_STORES_PG
        ks = reqsign_keystore_pg_open(spec, flags, &err);
#else
        (void)reqsign_error_set(&err, REQSIGN_E_INVALID_ARG, "key store", REQSIGN_NO_OFFSET,
                                "built without PostgreSQL support");
#endif
    } else {
        ks = reqsign_keystore_sqlite_open(reqsign_stores_key_store_path(spec), flags, &err);
    }
    if (ks == NULL)
        fprintf(stderr, "%s: key store %s: %s%s\n", prog, reqsign_stores_describe(spec),
                err.message[0] ? err.message : "cannot open",
                err.code == REQSIGN_E_KEYSTORE_UNAVAILABLE ? " (unreachable at start-up: exiting)"
                                                           : "");
    return ks;
}

/* see stores.h */
struct reqsign_nonce_store *reqsign_stores_open_nonces(const char *prog, const char *spec)
{
    if (spec == NULL || strcmp(spec, "memory") == 0) {
        struct reqsign_nonce_store *s = reqsign_nonce_store_memory_new(NULL, NULL);
        if (s == NULL)
            fprintf(stderr, "%s: nonce store: out of memory\n", prog);
        return s;
    }
#ifndef REQSIGN_STORES_REDIS
    fprintf(stderr, "%s: nonce store %s: built without Redis support\n", prog,
            reqsign_stores_describe(spec));
    return NULL;
#else
    struct reqsign_error err;
    reqsign_error_clear(&err);
    struct reqsign_nonce_redis_opts ro;
    memset(&ro, 0, sizeof(ro));
    ro.url = spec;
    struct reqsign_nonce_store *s = reqsign_nonce_store_redis_new(&ro, &err);
    if (s == NULL) {
        fprintf(stderr, "%s: nonce store %s: %s\n", prog, reqsign_stores_describe(spec),
                err.message[0] ? err.message : "cannot create");
        return NULL;
    }
    if (reqsign_nonce_store_redis_ping(s, &err) != REQSIGN_OK) {
        fprintf(stderr, "%s: nonce store %s: %s (refused or unreachable at start-up: exiting)\n",
                prog, reqsign_stores_describe(spec), err.message[0] ? err.message : "unavailable");
        reqsign_nonce_store_free(s);
        return NULL;
    }
    return s;
#endif
}

/* see stores.h */
int reqsign_stores_listen(const char *prog, const char *spec, struct reqsign_keycache *cache,
                          struct reqsign_keystore_pg_listener **out)
{
    *out = NULL;
    if (!reqsign_stores_key_store_is_pg(spec))
        return 0;
#ifndef REQSIGN_STORES_PG
    (void)cache;
    fprintf(stderr, "%s: key store %s: built without PostgreSQL support\n", prog,
            reqsign_stores_describe(spec));
    return -1;
#else
    struct reqsign_error err;
    reqsign_error_clear(&err);
    *out = reqsign_keystore_pg_listen(spec, cache, &err);
    if (*out == NULL) {
        fprintf(stderr, "%s: key store %s: cannot listen for changes: %s\n", prog,
                reqsign_stores_describe(spec), err.message[0] ? err.message : "failed");
        return -1;
    }
    return 0;
#endif
}

/* see stores.h */
void reqsign_stores_unlisten(struct reqsign_keystore_pg_listener *l)
{
#ifdef REQSIGN_STORES_PG
    reqsign_keystore_pg_listener_stop(l);
#else
    (void)l; /* never made: reqsign_stores_listen() makes none without PostgreSQL */
#endif
}

/* see stores.h */
int reqsign_stores_sqlite_problem(const char *path, int need_write, char *buf, size_t cap)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno == ENOENT) {
            snprintf(buf, cap, "%s does not exist: run 'reqsignd init --db %s ...' first", path,
                     path);
            return 1;
        }
        snprintf(buf, cap, "cannot reach %s: %s (user %u: check the directories' permissions)",
                 path, strerror(errno), (unsigned)geteuid());
        return 2;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(buf, cap, "%s is not a regular file", path);
        return 3;
    }
    int fd = open(path, (need_write ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (fd < 0) {
        snprintf(buf, cap,
                 "cannot open %s for %s: %s (running as user %u; the file is owned by user %u, "
                 "mode %04o)",
                 path, need_write ? "reading and writing" : "reading", strerror(errno),
                 (unsigned)geteuid(), (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777));
        return 2;
    }
    static const char magic[16] = "SQLite format 3"; /* with its NUL */
    char head[16];
    ssize_t n = read(fd, head, sizeof(head));
    close(fd);
    if (n != (ssize_t)sizeof(head) || memcmp(head, magic, sizeof(head)) != 0) {
        if (n == 0)
            snprintf(buf, cap,
                     "%s is empty, not a key database: run 'reqsignd init' on a new "
                     "path, or restore it from a backup",
                     path);
        else
            snprintf(buf, cap,
                     "%s is not a SQLite database (not made by 'reqsignd init'): check "
                     "the path",
                     path);
        return 3;
    }
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == NULL)
        snprintf(dir, sizeof(dir), ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    if (!need_write && access(dir, W_OK | X_OK) != 0) {
        /* a reader that cannot create the -wal and -shm files needs both to
         * exist and be readable (reqsignd keeps them) */
        static const char *const ext[2] = {"-wal", "-shm"};
        for (int i = 0; i < 2; i++) {
            char side[4200];
            snprintf(side, sizeof(side), "%s%s", path, ext[i]);
            if (access(side, R_OK) != 0) {
                snprintf(buf, cap,
                         "cannot open the WAL database %s read-only: %s %s and user %u cannot "
                         "create it in %s (start reqsignd on the database once: it keeps its "
                         "-wal and -shm files; then give them the database file's group and "
                         "mode)",
                         path, side, errno == ENOENT ? "does not exist" : "is not readable",
                         (unsigned)geteuid(), dir);
                return 2;
            }
        }
    }
    if (need_write) { /* SQLite writes a -wal / journal beside the file */
        if (access(dir, W_OK | X_OK) != 0) {
            snprintf(buf, cap,
                     "cannot write in %s (user %u): SQLite keeps its -wal and -shm "
                     "files beside the database",
                     dir, (unsigned)geteuid());
            return 2;
        }
    }
    return 0;
}
