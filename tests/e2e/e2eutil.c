/* see e2eutil.h */
#include "e2eutil.h"

#include <criterion/criterion.h>

#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <reqsign/signer.h>

size_t on_data(char *p, size_t sz, size_t n, void *ud)
{
    struct sbuf *buf = ud;
    char *nb = realloc(buf->b, buf->n + sz * n + 1);
    cr_assert_not_null(nb);
    memcpy(nb + buf->n, p, sz * n);
    buf->n += sz * n;
    nb[buf->n] = '\0';
    buf->b = nb;
    return sz * n;
}

void resp_free(struct resp *r)
{
    free(r->body);
    free(r->hdrs);
    json_decref(r->json);
    memset(r, 0, sizeof(*r));
}

/* The value of response header @name (static buffer), or NULL. */
const char *resp_header(const struct resp *r, const char *name)
{
    static char v[512];
    size_t nl = strlen(name);
    for (const char *p = r->hdrs; p != NULL && *p;) {
        const char *e = strstr(p, "\r\n");
        size_t ll = e ? (size_t)(e - p) : strlen(p);
        if (ll > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *s = p + nl + 1;
            while (*s == ' ')
                s++;
            size_t vl = ll - (size_t)(s - p);
            if (vl >= sizeof(v))
                vl = sizeof(v) - 1;
            memcpy(v, s, vl);
            v[vl] = '\0';
            return v;
        }
        p = e ? e + 2 : p + ll;
    }
    return NULL;
}

const char *err_name(const struct resp *r)
{
    return json_string_value(json_object_get(r->json, "error"));
}

/* Send one request. @sig: the three signature headers (NULL: unsigned). */
const char *e2e_cainfo;

struct resp send_req(const char *method, const char *url, const char *body, size_t len,
                     const struct reqsign_signed *sig, const char *const *extra)
{
    struct resp r;
    memset(&r, 0, sizeof(r));
    struct sbuf bb = {NULL, 0}, hb = {NULL, 0};
    CURL *c = curl_easy_init();
    cr_assert_not_null(c);
    struct curl_slist *h = NULL;
    char line[2048];
    h = curl_slist_append(h, "Expect:");
    if (sig != NULL)
        for (size_t i = 0; i < sig->n_headers; i++) {
            snprintf(line, sizeof(line), "%.*s: %.*s", (int)sig->headers[i].name.len,
                     sig->headers[i].name.ptr, (int)sig->headers[i].value.len,
                     sig->headers[i].value.ptr);
            h = curl_slist_append(h, line);
        }
    for (size_t i = 0; extra != NULL && extra[i] != NULL; i++)
        h = curl_slist_append(h, extra[i]);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)len);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &bb);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &hb);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    if (e2e_cainfo != NULL)
        curl_easy_setopt(c, CURLOPT_CAINFO, e2e_cainfo);
    CURLcode cc = curl_easy_perform(c);
    cr_assert_eq(cc, CURLE_OK, "%s %s: %s", method, url, curl_easy_strerror(cc));
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_easy_cleanup(c);
    curl_slist_free_all(h);
    r.body = bb.b;
    r.len = bb.n;
    r.hdrs = hb.b;
    r.hlen = hb.n;
    if (r.body != NULL)
        r.json = json_loadb(r.body, r.len, 0, NULL);
    return r;
}

struct reqsign_signer *signer_from_pem(const char *pem)
{
    cr_assert_not_null(pem, "no private key");
    struct reqsign_signer_opts o;
    memset(&o, 0, sizeof(o));
    o.key_data = pem;
    o.key_len = strlen(pem);
    struct reqsign_error err;
    struct reqsign_signer *s = reqsign_signer_new(&o, &err);
    cr_assert_not_null(s, "signer: %s", err.message);
    return s;
}

struct reqsign_signer *signer_from_cred(const char *cred_json)
{
    json_t *j = json_loads(cred_json, 0, NULL);
    cr_assert_not_null(j, "credential is not JSON");
    const char *pem = json_string_value(json_object_get(j, "private_key"));
    cr_assert_not_null(pem, "credential without private_key");
    struct reqsign_signer *s = signer_from_pem(pem);
    json_decref(j);
    return s;
}

struct reqsign_signer *load_admin(struct env *e)
{
    char *cred = slurp(e->admin);
    e->admin_signer = signer_from_cred(cred);
    free(cred);
    return e->admin_signer;
}

char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    char *b = calloc(1, 65536);
    size_t n = fread(b, 1, 65535, f);
    b[n] = '\0';
    fclose(f);
    return b;
}

void sign(const struct reqsign_signer *s, const char *method, const char *url, const char *body,
          size_t len, struct reqsign_signed *out)
{
    struct reqsign_sign_input in;
    struct reqsign_error err;
    memset(&in, 0, sizeof(in));
    memset(out, 0, sizeof(*out));
    in.method = method;
    in.url = url;
    in.body = body;
    in.body_len = len;
    cr_assert_eq(reqsign_signer_sign(s, &in, out, &err), REQSIGN_OK, "sign: %s", err.message);
}

/* Sign and send. */
struct resp call(const struct reqsign_signer *s, const char *method, const char *url,
                 const char *body)
{
    struct reqsign_signed sig;
    size_t len = body != NULL ? strlen(body) : 0;
    sign(s, method, url, body, len, &sig);
    static const char *const json_ct[] = {"Content-Type: application/json", NULL};
    return send_req(method, url, body, len, &sig, body != NULL ? json_ct : NULL);
}

void reqsignd_init(const char *db, const char *admin, const char *log)
{
    char cmd[2048];
    int st;
    snprintf(cmd, sizeof(cmd), "'%s' init --db '%s' -o '%s' --service http://127.0.0.1 2>>'%s'",
             tu_prog("REQSIGND"), db, admin, log);
    free(tu_run(cmd, &st));
    cr_assert_eq(st, 0, "reqsignd init failed");
}

void run_init(struct env *e)
{
    reqsignd_init(e->db, e->admin, e->log);
}

void start(struct env *e, const char *ttl)
{
    char *argv[] = {(char *)tu_prog("REQSIGND"),
                    "--db",
                    e->db,
                    "--listen",
                    "127.0.0.1:@PORT@",
                    "--authority",
                    "127.0.0.1:@PORT@",
                    "--cache-ttl",
                    (char *)(ttl != NULL ? ttl : "5"),
                    NULL};
    cr_assert_eq(tu_proc_start_port(&e->d, argv, e->log, 10000), 0, "reqsignd did not start");
}

void start_backend(struct env *e, const char *pub)
{
    start_backend_extra(e, pub, NULL);
}

void start_backend_extra(struct env *e, const char *pub, const char *const *extra)
{
    char *argv[32] = {(char *)tu_prog("API_BACKEND"), "--db", e->db, "--listen", "127.0.0.1:@PORT@",
                      "--cache-ttl", "1", "--max-body", "100000",
                      /* the public authority behind a proxy, else its own address */
                      pub != NULL ? "--public-authority" : "--authority",
                      pub != NULL ? (char *)pub : "127.0.0.1:@PORT@", NULL};
    size_t n = 11;
    for (size_t i = 0; extra != NULL && extra[i] != NULL; i++) {
        cr_assert(n + 1 < sizeof(argv) / sizeof(argv[0]), "too many extra arguments");
        argv[n++] = (char *)extra[i];
    }
    argv[n] = NULL;
    cr_assert_eq(tu_proc_start_port(&e->b, argv, e->blog, 10000), 0, "api-backend did not start");
}

void stop(struct env *e)
{
    if (e->b.pid > 0) /* api-backend, if started */
        cr_assert_eq(tu_proc_stop(&e->b, SIGTERM, 15000), 0,
                     "api-backend did not exit 0 on SIGTERM");
    cr_assert_eq(tu_proc_stop(&e->d, SIGTERM, 15000), 0, "reqsignd did not exit 0 on SIGTERM");
}

/* Stop the servers (asserting exit 0), remove the temporary directory. */
void finish(struct env *e)
{
    stop(e);
    remove_env(e);
}

void remove_env(struct env *e)
{
    char cmd[600];
    int st;
    reqsign_signer_free(e->admin_signer);
    e->admin_signer = NULL;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->dir);
    free(tu_run(cmd, &st));
    free(e->dir);
    e->dir = NULL;
}

void init_env(struct env *e)
{
    memset(e, 0, sizeof(*e));
    e->dir = tu_tmpdir();
    snprintf(e->db, sizeof(e->db), "%s/keys.db", e->dir);
    snprintf(e->admin, sizeof(e->admin), "%s/admin.json", e->dir);
    snprintf(e->log, sizeof(e->log), "%s/reqsignd.log", e->dir);
    snprintf(e->blog, sizeof(e->blog), "%s/backend.log", e->dir);
    run_init(e);
}

void setup_env(struct env *e)
{
    init_env(e);
    start(e, NULL);
}

char *url_at(const struct tu_proc *p, const char *path)
{
    static char u[8][1024];
    static int i;
    i = (i + 1) % 8;
    snprintf(u[i], sizeof(u[i]), "%s%s", p->url, path);
    return u[i];
}

char *url_of(const struct env *e, const char *path)
{
    return url_at(&e->d, path);
}

char *burl(const struct env *e, const char *path)
{
    return url_at(&e->b, path);
}

/* POST /v1/keys with @body; returns the credential object (new reference). */
json_t *create_key(const struct env *e, const struct reqsign_signer *admin, const char *body)
{
    struct resp r = call(admin, "POST", url_of(e, "/v1/keys"), body);
    cr_assert_eq(r.status, 201, "POST /v1/keys: %ld %s", r.status, r.body);
    json_t *j = json_incref(r.json);
    resp_free(&r);
    return j;
}

struct reqsign_signer *signer_of(json_t *cred)
{
    char *s = json_dumps(cred, 0);
    struct reqsign_signer *sg = signer_from_cred(s);
    free(s);
    return sg;
}
