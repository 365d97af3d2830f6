/* Suite e2e-story: the whole product on loopback, as a provider runs it.
 * reqsignd issues keys over signed HTTP; api-backend verifies requests with
 * those keys; 8 client threads x 500 signed requests are all accepted and
 * every replay of them is refused; no issued private key ever reaches the
 * service's directory. */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <dirent.h>
#include <jansson.h>
#include <pthread.h>
#include <reqsign/base64.h>
#include <reqsign/signer.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "e2eutil.h"
#include "testutil.h"

/* Send @method @url with @body and the given signed fields over @h. */
static void send_signed(CURL *h, const char *method, const char *url, const char *body,
                        const struct reqsign_signed *s, struct resp *r)
{
    struct curl_slist *hl = NULL;
    char line[1200];
    for (size_t i = 0; i < s->n_headers; i++) {
        snprintf(line, sizeof(line), "%.*s: %.*s", (int)s->headers[i].name.len,
                 s->headers[i].name.ptr, (int)s->headers[i].value.len, s->headers[i].value.ptr);
        hl = curl_slist_append(hl, line);
    }
    hl = curl_slist_append(hl, "Content-Type: application/json");
    hl = curl_slist_append(hl, "Expect:");
    memset(r, 0, sizeof(*r));
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    if (body != NULL) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    } else {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    struct sbuf bb = {NULL, 0};
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &bb);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 20L);
    CURLcode rc = curl_easy_perform(h);
    r->body = bb.b;
    r->len = bb.n;
    cr_assert_eq(rc, CURLE_OK, "%s %s: %s", method, url, curl_easy_strerror(rc));
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(hl);
}

static void sign_and_send(CURL *h, const struct reqsign_signer *signer, const char *method,
                          const char *url, const char *body, struct resp *r)
{
    struct reqsign_signed s;
    struct reqsign_error err;
    reqsign_error_clear(&err);
    memset(&s, 0, sizeof(s));
    struct reqsign_sign_input in = {
        .method = method, .url = url, .body = body, .body_len = body ? strlen(body) : 0};
    cr_assert_eq(reqsign_signer_sign(signer, &in, &s, &err), REQSIGN_OK, "%s", err.message);
    send_signed(h, method, url, body, &s, r);
}

/* A signer from a credential JSON text (the service's download format). */
static struct reqsign_signer *signer_from_credential(json_t *cred)
{
    const char *pem = json_string_value(json_object_get(cred, "private_key"));
    const char *keyid = json_string_value(json_object_get(cred, "keyid"));
    cr_assert(pem != NULL && keyid != NULL);
    struct reqsign_error err;
    reqsign_error_clear(&err);
    struct reqsign_signer_opts o = {.key_data = pem, .key_len = strlen(pem), .keyid = keyid};
    struct reqsign_signer *s = reqsign_signer_new(&o, &err);
    cr_assert_not_null(s, "%s", err.message);
    return s;
}

/* Every regular file under @dir (recursively) is checked for @needle. */
struct needle {
    const void *p;
    size_t n;
    char *where; /* the file it was found in */
    size_t wcap;
};

static int holds_needle(const char *path, const struct stat *st, void *ud)
{
    (void)st;
    struct needle *nd = ud;
    if (!file_holds(path, nd->p, nd->n))
        return 0;
    snprintf(nd->where, nd->wcap, "%s", path);
    return 1;
}

static int tree_contains(const char *dir, const void *needle, size_t nlen, char *where, size_t wcap)
{
    struct needle nd = {needle, nlen, where, wcap};
    return walk_files(dir, holds_needle, &nd, 1);
}

/* ---- the load: 8 threads x 500 requests ---- */
#define THREADS 8
#define PER_THREAD 500

struct worker {
    const struct reqsign_signer *signer;
    const char *base_url;
    int id;
    struct reqsign_signed *sent; /* PER_THREAD */
    char (*bodies)[64];
    char (*urls)[160];
    int ok, replay_refused, other;
    long first_bad_status;
    char first_bad_body[256];
    int replay_pass;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    CURL *h = curl_easy_init();
    for (int i = 0; i < PER_THREAD; i++) {
        struct resp r;
        if (!w->replay_pass) {
            snprintf(w->bodies[i], 64, "{\"thread\":%d,\"n\":%d}", w->id, i);
            snprintf(w->urls[i], 160, "%s/v1/orders/%d?n=%d", w->base_url, w->id, i);
            struct reqsign_sign_input in = {.method = "POST",
                                            .url = w->urls[i],
                                            .body = w->bodies[i],
                                            .body_len = strlen(w->bodies[i])};
            memset(&w->sent[i], 0, sizeof(w->sent[i]));
            if (reqsign_signer_sign(w->signer, &in, &w->sent[i], NULL) != REQSIGN_OK) {
                w->other++;
                continue;
            }
        }
        send_signed(h, "POST", w->urls[i], w->bodies[i], &w->sent[i], &r);
        if (!w->replay_pass && r.status == 200)
            w->ok++;
        else if (w->replay_pass && r.status == 401 && r.body && strstr(r.body, "\"replay\""))
            w->replay_refused++;
        else {
            if (w->other++ == 0) {
                w->first_bad_status = r.status;
                snprintf(w->first_bad_body, sizeof(w->first_bad_body), "%s", r.body ? r.body : "");
            }
        }
        free(r.body);
    }
    curl_easy_cleanup(h);
    return NULL;
}

Test(story, provider_and_customers_end_to_end)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    char *dir = tu_tmpdir();
    char svc[512], cli[512], db[600], admin[600], log1[600], log2[600], cmd[2048];
    snprintf(svc, sizeof(svc), "%s/service", dir);
    snprintf(cli, sizeof(cli), "%s/client", dir);
    mkdir(svc, 0700);
    mkdir(cli, 0700);
    snprintf(db, sizeof(db), "%s/keys.db", svc);
    snprintf(admin, sizeof(admin), "%s/admin.json", cli);
    snprintf(log1, sizeof(log1), "%s/reqsignd.log", svc);
    snprintf(log2, sizeof(log2), "%s/api-backend.log", svc);

    /* bootstrap: the first admin key, written once to the operator's file */
    snprintf(cmd, sizeof(cmd), "%s init --db %s -o %s --service http://127.0.0.1 2>&1",
             tu_prog("REQSIGND"), db, admin);
    int st;
    char *out = tu_run(cmd, &st);
    cr_assert_eq(st, 0, "reqsignd init: %s", out);
    free(out);
    struct stat sb;
    cr_assert_eq(stat(admin, &sb), 0);
    cr_assert_eq(sb.st_mode & 0777, 0600);

    struct tu_proc ks, be;
    srv_start(&ks, &(struct srv_opts){.prog = tu_prog("REQSIGND"), .db = db, .log = log1});
    srv_start(&be, &(struct srv_opts){.prog = tu_prog("API_BACKEND"), .db = db, .log = log2});

    json_error_t je;
    json_t *admin_cred = json_load_file(admin, 0, &je);
    cr_assert_not_null(admin_cred, "%s", je.text);
    struct reqsign_signer *admin_signer = signer_from_credential(admin_cred);
    CURL *h = curl_easy_init();

    /* issue three keys over signed HTTP; keep what was downloaded */
    json_t *creds[3];
    char url[300];
    snprintf(url, sizeof(url), "%s/v1/keys", ks.url);
    for (int i = 0; i < 3; i++) {
        struct resp r;
        char body[128];
        snprintf(body, sizeof(body), "{\"label\":\"customer %d\",\"scopes\":[\"orders:write\"]}",
                 i);
        sign_and_send(h, admin_signer, "POST", url, body, &r);
        cr_assert_eq(r.status, 201, "create key: %ld %s", r.status, r.body);
        creds[i] = json_loads(r.body, 0, &je);
        cr_assert_not_null(creds[i]);
        free(r.body);
    }

    /* 8 threads x 500 signed requests to the backend: all accepted */
    struct reqsign_signer *customer = signer_from_credential(creds[0]);
    static struct reqsign_signed sent[THREADS][PER_THREAD];
    static char bodies[THREADS][PER_THREAD][64];
    static char urls[THREADS][PER_THREAD][160];
    struct worker w[THREADS];
    pthread_t t[THREADS];
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < THREADS; i++) {
            if (pass == 0)
                w[i] = (struct worker){customer, be.url, i, sent[i], bodies[i], urls[i],
                                       0,        0,      0, 0,       "",        0};
            else {
                w[i].replay_pass = 1;
                w[i].other = 0;
            }
            pthread_create(&t[i], NULL, worker_main, &w[i]);
        }
        int ok = 0, refused = 0;
        for (int i = 0; i < THREADS; i++) {
            pthread_join(t[i], NULL);
            ok += w[i].ok;
            refused += w[i].replay_refused;
            cr_assert_eq(w[i].other, 0, "pass %d thread %d: %d unexpected answers, first %ld %s",
                         pass, i, w[i].other, w[i].first_bad_status, w[i].first_bad_body);
        }
        if (pass == 0)
            cr_assert_eq(ok, THREADS * PER_THREAD, "accepted %d", ok);
        else
            cr_assert_eq(refused, THREADS * PER_THREAD, "replays refused %d", refused);
    }

    /* the echo names the key and what was verified */
    struct resp r;
    char burl[300];
    snprintf(burl, sizeof(burl), "%s/v1/echo/check?x=1", be.url);
    sign_and_send(h, customer, "POST", burl, "{\"hello\":\"world\"}", &r);
    cr_assert_eq(r.status, 200, "%s", r.body);
    json_t *echo = json_loads(r.body, 0, &je);
    cr_assert_str_eq(json_string_value(json_object_get(echo, "keyid")),
                     json_string_value(json_object_get(creds[0], "keyid")));
    cr_assert_str_eq(json_string_value(json_object_get(echo, "path")), "/v1/echo/check");
    json_decref(echo);
    free(r.body);

    /* stop both servers cleanly */
    cr_assert_eq(tu_proc_stop(&be, SIGTERM, 15000), 0);
    cr_assert_eq(tu_proc_stop(&ks, SIGTERM, 15000), 0);

    /* no issued private key anywhere under the service's directory: neither the
     * PEM body, nor any line of it, nor the raw seed */
    for (int i = 0; i < 3; i++) {
        const char *pem = json_string_value(json_object_get(creds[i], "private_key"));
        uint8_t seed[32];
        char b64[256], where[1024] = "";
        pem_seed(pem, seed, b64, sizeof(b64));
        cr_assert(!tree_contains(svc, seed, sizeof(seed), where, sizeof(where)),
                  "seed of key %d found in %s", i, where);
        cr_assert(!tree_contains(svc, b64, strlen(b64), where, sizeof(where)),
                  "PEM body of key %d found in %s", i, where);
        cr_assert(!tree_contains(svc, b64, 40, where, sizeof(where)),
                  "PEM line of key %d found in %s", i, where);
        /* the public key is there, so the search does look inside the database */
        const char *kid = json_string_value(json_object_get(creds[i], "keyid"));
        cr_assert(tree_contains(svc, kid, strlen(kid), where, sizeof(where)),
                  "keyid %d not found in the service directory: the search is blind", i);
        json_decref(creds[i]);
    }

    curl_easy_cleanup(h);
    reqsign_signer_free(customer);
    reqsign_signer_free(admin_signer);
    json_decref(admin_cred);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    free(tu_run(cmd, NULL));
    free(dir);
    curl_global_cleanup();
}
