/* see e2eutil.h */
#define _GNU_SOURCE /* memmem */
#include "e2eutil.h"

#include <criterion/criterion.h>

#include <curl/curl.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <reqsign/base64.h>
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
    char *b = tu_slurp(path, NULL);
    cr_assert_not_null(b, "cannot read %s", path);
    return b;
}

bool file_holds(const char *path, const void *needle, size_t n)
{
    size_t len = 0;
    char *b = tu_slurp(path, &len);
    bool found = b != NULL && memmem(b, len, needle, n) != NULL;
    free(b);
    return found;
}

int walk_files(const char *dir, int (*fn)(const char *path, const struct stat *st, void *ud),
               void *ud, int stop_at)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return 0;
    struct dirent *de;
    int sum = 0;
    while ((stop_at == 0 || sum < stop_at) && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char p[1024];
        snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
        struct stat st;
        if (lstat(p, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode))
            sum += walk_files(p, fn, ud, stop_at == 0 ? 0 : stop_at - sum);
        else if (S_ISREG(st.st_mode))
            sum += fn(p, &st, ud);
    }
    closedir(d);
    return sum;
}

void pem_seed(const char *pem, uint8_t seed[32], char *b64, size_t cap)
{
    const char *b = strstr(pem, "-----\n");
    const char *e = strstr(pem, "\n-----END");
    cr_assert(b != NULL && e != NULL && e > b, "not a PEM: %s", pem);
    size_t n = 0;
    for (const char *p = b + 6; p < e && n + 1 < cap; p++)
        if (*p != '\n')
            b64[n++] = *p;
    b64[n] = '\0';
    uint8_t der[128];
    size_t dl = 0;
    cr_assert_eq(reqsign_base64_decode(b64, n, der, sizeof(der), &dl, NULL), REQSIGN_OK);
    cr_assert_eq(dl, 48, "not a PKCS#8 Ed25519 key: %zu bytes of DER", dl);
    memcpy(seed, der + 16, 32);
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

/* The last '/'-separated part of @path. */
static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s != NULL ? s + 1 : path;
}

int srv_try_start(struct tu_proc *p, const struct srv_opts *o)
{
    enum { MAX_ARGS = 48 };
    char *argv[MAX_ARGS];
    size_t n = 0;
    argv[n++] = (char *)o->prog;
    if (o->db != NULL) {
        argv[n++] = "--db";
        argv[n++] = (char *)o->db;
    }
    argv[n++] = "--listen";
    argv[n++] = "127.0.0.1:@PORT@";
    argv[n++] = o->public_authority != NULL ? "--public-authority" : "--authority";
    argv[n++] = (char *)(o->public_authority != NULL ? o->public_authority
                         : o->authority != NULL      ? o->authority
                                                     : "127.0.0.1:@PORT@");
    if (o->ttl != NULL) {
        argv[n++] = "--cache-ttl";
        argv[n++] = (char *)o->ttl;
    }
    for (size_t i = 0; o->extra != NULL && o->extra[i] != NULL; i++) {
        cr_assert(n + 1 < MAX_ARGS, "%s: too many arguments", o->prog);
        argv[n++] = (char *)o->extra[i];
    }
    argv[n] = NULL;
    return tu_proc_start_port(p, argv, o->log, o->timeout_ms > 0 ? o->timeout_ms : 10000);
}

void srv_start(struct tu_proc *p, const struct srv_opts *o)
{
    cr_assert_eq(srv_try_start(p, o), 0, "%s did not start (log: %s)", base_name(o->prog),
                 o->log != NULL ? o->log : "none");
}

void start_reqsignd(struct env *e, const char *ttl, const char *const *extra)
{
    srv_start(
        &e->d,
        &(struct srv_opts){
            .prog = tu_prog("REQSIGND"), .db = e->db, .log = e->log, .ttl = ttl, .extra = extra});
}

void start_api_backend(struct env *e, const char *ttl, const char *const *extra)
{
    srv_start(&e->b, &(struct srv_opts){.prog = tu_prog("API_BACKEND"),
                                        .db = e->db,
                                        .log = e->blog,
                                        .ttl = ttl,
                                        .extra = extra});
}

void start(struct env *e, const char *ttl)
{
    start_reqsignd(e, ttl != NULL ? ttl : "5", NULL);
}

void start_backend(struct env *e, const char *pub)
{
    start_backend_extra(e, pub, NULL);
}

void start_backend_extra(struct env *e, const char *pub, const char *const *extra)
{
    const char *args[32] = {"--max-body", "100000"};
    size_t n = 2;
    for (size_t i = 0; extra != NULL && extra[i] != NULL; i++) {
        cr_assert(n + 1 < sizeof(args) / sizeof(args[0]), "too many extra arguments");
        args[n++] = extra[i];
    }
    args[n] = NULL;
    /* the public authority behind a proxy, else its own address */
    srv_start(&e->b, &(struct srv_opts){.prog = tu_prog("API_BACKEND"),
                                        .db = e->db,
                                        .log = e->blog,
                                        .ttl = "1",
                                        .public_authority = pub,
                                        .extra = args});
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

int connect_to(const struct tu_proc *p)
{
    int fd = tu_connect_port(p->port);
    cr_assert(fd >= 0, "cannot connect to 127.0.0.1:%d", p->port);
    return fd;
}

void send_all(int fd, const char *buf, size_t n)
{
    cr_assert_eq(tu_send(fd, buf, n), n, "send failed");
}

void sig_lines(const struct reqsign_signer *s, const struct tu_proc *p, const char *method,
               const char *path, const char *body, size_t len, char *out, size_t cap)
{
    char url[512];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", p->port, path);
    struct reqsign_signed sg;
    sign(s, method, url, body, len, &sg);
    int n = snprintf(out, cap, "Content-Digest: %s\r\nSignature-Input: %s\r\nSignature: %s\r\n",
                     sg.content_digest, sg.signature_input, sg.signature);
    cr_assert(n > 0 && (size_t)n < cap, "signature lines longer than %zu bytes", cap);
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
