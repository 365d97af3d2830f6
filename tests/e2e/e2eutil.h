/* Helpers shared by the end-to-end suites: a temporary directory with a
 * key database, reqsignd and api-backend processes, signed requests over
 * libcurl. */
#ifndef REQSIGN_E2EUTIL_H
#define REQSIGN_E2EUTIL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <reqsign/signer.h>

#include "testutil.h"

struct env {
    char *dir;
    char db[512], admin[512], log[512], blog[512];
    struct tu_proc d;                    /* reqsignd */
    struct tu_proc b;                    /* api-backend */
    struct reqsign_signer *admin_signer; /* load_admin(); freed by finish() / remove_env() */
};

struct resp {
    long status;
    char *body;
    size_t len;
    char *hdrs; /* all response header lines */
    size_t hlen;
    json_t *json;
};

struct sbuf {
    char *b;
    size_t n;
};

size_t on_data(char *p, size_t sz, size_t n, void *ud);
void resp_free(struct resp *r);
const char *resp_header(const struct resp *r, const char *name);
const char *err_name(const struct resp *r);
/* The CA file send_req() trusts for https:// URLs (NULL: the system's). */
extern const char *e2e_cainfo;
struct resp send_req(const char *method, const char *url, const char *body, size_t len,
                     const struct reqsign_signed *sig, const char *const *extra);
/* A signer for the PEM private key @pem (asserts). */
struct reqsign_signer *signer_from_pem(const char *pem);
/* A signer for the credential JSON @cred_json (its "private_key"). */
struct reqsign_signer *signer_from_cred(const char *cred_json);
/* e->admin_signer from the admin credential reqsignd init wrote; returns it. */
struct reqsign_signer *load_admin(struct env *e);
/* The whole file at @path (malloc'd, NUL-terminated; asserts it can be read). */
char *slurp(const char *path);
/* Whether the file at @path holds the @n bytes at @needle (false: no such file). */
bool file_holds(const char *path, const void *needle, size_t n);
/* Call @fn for every regular file under @dir, recursively (links are not
 * followed); returns the sum of what @fn returned, stopping once it reaches
 * @stop_at (0: never). A directory that cannot be opened holds nothing. */
struct stat;
int walk_files(const char *dir, int (*fn)(const char *path, const struct stat *st, void *ud),
               void *ud, int stop_at);
/* The 32-byte seed of a PKCS#8 Ed25519 private key PEM, and its base64 body
 * (the lines joined) in @b64 (@cap bytes). */
void pem_seed(const char *pem, uint8_t seed[32], char *b64, size_t cap);
void sign(const struct reqsign_signer *s, const char *method, const char *url, const char *body,
          size_t len, struct reqsign_signed *out);
struct resp call(const struct reqsign_signer *s, const char *method, const char *url,
                 const char *body);
/* reqsignd init: the key database @db, the admin credential @admin, stderr to @log. */
void reqsignd_init(const char *db, const char *admin, const char *log);
void run_init(struct env *e);

/* How srv_start() runs reqsignd or api-backend: the options every suite gives
 * them, then its own. The command line is
 *   PROG [--db DB] --listen 127.0.0.1:PORT --authority AUTHORITY
 *        [--cache-ttl TTL] EXTRA...
 * with PORT a free loopback port. */
struct srv_opts {
    const char *prog;             /* path: tu_prog("REQSIGND"), tu_prog("API_BACKEND"), a copy */
    const char *db;               /* --db (NULL: none; the stores come in @extra) */
    const char *log;              /* stderr, appended (NULL: /dev/null) */
    const char *ttl;              /* --cache-ttl (NULL: none, the program's default) */
    const char *authority;        /* --authority (NULL: 127.0.0.1:PORT, its own address) */
    const char *public_authority; /* given: --public-authority this instead of --authority */
    const char *const *extra;     /* more arguments, NULL-terminated (NULL: none) */
    int timeout_ms;               /* for the "listening on" line (0: 10000) */
};
/* Start it into @p; 0, or -1 (not started; see the log). */
int srv_try_start(struct tu_proc *p, const struct srv_opts *o);
/* srv_try_start(), asserting that it started. */
void srv_start(struct tu_proc *p, const struct srv_opts *o);
/* reqsignd on e->db into e->d (stderr: e->log) with --cache-ttl @ttl (NULL:
 * none) and @extra (NULL-terminated; NULL: none); asserts it started. */
void start_reqsignd(struct env *e, const char *ttl, const char *const *extra);
/* The same for api-backend into e->b (stderr: e->blog). */
void start_api_backend(struct env *e, const char *ttl, const char *const *extra);
/* start_reqsignd(e, @ttl, NULL), @ttl NULL: "5". */
void start(struct env *e, const char *ttl);
void start_backend(struct env *e, const char *pub);
/* api-backend with --cache-ttl 1 --max-body 100000. @pub: --public-authority
 * (NULL: --authority 127.0.0.1:PORT, its own); @extra: more arguments,
 * NULL-terminated (NULL: none) */
void start_backend_extra(struct env *e, const char *pub, const char *const *extra);
void stop(struct env *e);
void finish(struct env *e);
/* Free e->admin_signer, remove the temporary directory (servers already stopped). */
void remove_env(struct env *e);
/* A temporary directory with a key database (reqsignd init), nothing started. */
void init_env(struct env *e);
/* init_env() and start(e, NULL). */
void setup_env(struct env *e);
/* A TCP connection to 127.0.0.1:@p->port (asserts). */
int connect_to(const struct tu_proc *p);
/* Send all @n bytes at @buf on @fd (asserts). */
void send_all(int fd, const char *buf, size_t n);
/* Sign @method http://127.0.0.1:PORT@path (@p's port) with @body (@len bytes)
 * and write the three signature fields as header lines ("Name: value\r\n"
 * each) into @out. */
void sig_lines(const struct reqsign_signer *s, const struct tu_proc *p, const char *method,
               const char *path, const char *body, size_t len, char *out, size_t cap);
char *url_at(const struct tu_proc *p, const char *path);
char *url_of(const struct env *e, const char *path);
char *burl(const struct env *e, const char *path);
json_t *create_key(const struct env *e, const struct reqsign_signer *admin, const char *body);
struct reqsign_signer *signer_of(json_t *cred);

#endif
