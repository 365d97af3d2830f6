/* Helpers shared by the end-to-end suites: a temporary directory with a
 * key database, reqsignd and api-backend processes, signed requests over
 * libcurl. */
#ifndef REQSIGN_E2EUTIL_H
#define REQSIGN_E2EUTIL_H

#include <jansson.h>
#include <stddef.h>

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
char *slurp(const char *path);
void sign(const struct reqsign_signer *s, const char *method, const char *url, const char *body,
          size_t len, struct reqsign_signed *out);
struct resp call(const struct reqsign_signer *s, const char *method, const char *url,
                 const char *body);
/* reqsignd init: the key database @db, the admin credential @admin, stderr to @log. */
void reqsignd_init(const char *db, const char *admin, const char *log);
void run_init(struct env *e);
void start(struct env *e, const char *ttl);
void start_backend(struct env *e, const char *pub);
/* @pub: --public-authority (NULL: --authority 127.0.0.1:PORT, its own);
 * @extra: more arguments, NULL-terminated (NULL: none) */
void start_backend_extra(struct env *e, const char *pub, const char *const *extra);
void stop(struct env *e);
void finish(struct env *e);
/* Free e->admin_signer, remove the temporary directory (servers already stopped). */
void remove_env(struct env *e);
/* A temporary directory with a key database (reqsignd init), nothing started. */
void init_env(struct env *e);
/* init_env() and start(e, NULL). */
void setup_env(struct env *e);
char *url_at(const struct tu_proc *p, const char *path);
char *url_of(const struct env *e, const char *path);
char *burl(const struct env *e, const char *path);
json_t *create_key(const struct env *e, const struct reqsign_signer *admin, const char *body);
struct reqsign_signer *signer_of(json_t *cred);

#endif
