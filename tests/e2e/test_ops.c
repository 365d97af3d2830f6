/* e2e-ops: the key service and api-backend as operators run them (issue 16):
 *   - TLS: HTTPS with a certificate the test makes (openssl CLI), a signed
 *     management call over it, TLS 1.1 refused, SIGHUP picks up a new
 *     certificate (its serial is seen by a new connection), plain HTTP on a
 *     non-loopback address refused (exit 2) unless --insecure-http;
 *   - the request log: text and JSON lines parse, every field is there, no
 *     key, token or signature;
 *   - api-backend --require-scope: 403 "scope" without it;
 *   - honest errors: the real cause when the key database cannot be opened,
 *     --help on stdout with exit 0, --version, an unknown option named, exit 2;
 *   - init records the service URL (--service required); --api-url is
 *     stamped as "api" into issued credentials. */
#include <criterion/criterion.h>

#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <reqsign/signer.h>

#include "e2eutil.h"
#include "testutil.h"

static char *sh(int *st, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static char *sh(int *st, const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    return tu_run(cmd, st);
}

/* Stop what runs (asserting exit 0; pid 0: not started or already stopped)
 * and remove the directory. */
static void stop_all(struct env *e)
{
    if (e->b.pid > 0)
        cr_assert_eq(tu_proc_stop(&e->b, SIGTERM, 15000), 0, "api-backend did not exit 0");
    if (e->d.pid > 0)
        cr_assert_eq(tu_proc_stop(&e->d, SIGTERM, 15000), 0, "reqsignd did not exit 0");
    e->b.pid = e->d.pid = 0;
}

static void done(struct env *e)
{
    stop_all(e);
    remove_env(e);
}

/* A self-signed P-256 certificate for 127.0.0.1 in DIR/NAME.crt / NAME.key. */
static void make_cert(const char *dir, const char *name)
{
    int st;
    free(sh(&st,
            "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
            "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout '%s/%s.key' "
            "-out '%s/%s.crt' 2>/dev/null",
            dir, name, dir, name));
    cr_assert_eq(st, 0, "openssl req failed");
}

static void start_tls(struct env *e, const char *const *extra)
{
    char cert[600], key[600];
    snprintf(cert, sizeof(cert), "%s/tls.crt", e->dir);
    snprintf(key, sizeof(key), "%s/tls.key", e->dir);
    const char *args[32] = {"--tls-cert", cert, "--tls-key", key};
    size_t n = 4;
    for (size_t i = 0; extra != NULL && extra[i] != NULL && n < 31; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    start_reqsignd(e, NULL, args);
}

/* The serial number of the certificate the server at @port presents. */
static char *served_serial(int port, const char *cafile)
{
    int st;
    char *s = sh(&st,
                 "echo | openssl s_client -connect 127.0.0.1:%d -CAfile '%s' 2>/dev/null | "
                 "openssl x509 -noout -serial",
                 port, cafile);
    return s;
}

Test(ops, tls_serves_https_and_names_https)
{
    struct env e;
    init_env(&e);
    make_cert(e.dir, "tls");
    start_tls(&e, NULL);
    cr_assert(strncmp(e.d.url, "https://", 8) == 0, "listening line: %s", e.d.url);
    char ca[600];
    snprintf(ca, sizeof(ca), "%s/tls.crt", e.dir);

    int st;
    char *out = sh(&st, "curl -sS --cacert '%s' '%s/healthz'", ca, url_of(&e, ""));
    cr_assert_eq(st, 0, "curl over TLS failed: %s", out);
    cr_assert(strstr(out, "\"ok\"") != NULL, "%s", out);
    free(out);
    /* without the CA the certificate is not trusted */
    out = sh(&st, "curl -sS '%s/healthz' 2>&1", url_of(&e, ""));
    cr_assert_neq(st, 0, "an untrusted certificate was accepted: %s", out);
    free(out);

    /* a signed management call over TLS; the credential names https */
    e2e_cainfo = ca;
    char *admin_json = slurp(e.admin);
    struct reqsign_signer *admin = signer_from_cred(admin_json);
    json_t *cred = create_key(&e, admin, "{\"label\":\"t\",\"scopes\":[\"orders:write\"]}");
    const char *svc = json_string_value(json_object_get(cred, "service"));
    char want[200];
    snprintf(want, sizeof(want), "https://127.0.0.1:%d", e.d.port);
    cr_assert(svc != NULL && strcmp(svc, want) == 0, "service %s, want %s", svc, want);
    cr_assert_null(json_object_get(cred, "api"), "no --api-url: no \"api\"");
    json_decref(cred);
    e2e_cainfo = NULL;
    reqsign_signer_free(admin);
    free(admin_json);
    done(&e);
}

/* A failed TLS handshake (plain HTTP to the TLS port): libmicrohttpd's and
 * GnuTLS's message goes through the program's log, "reqsignd: http: ..." in
 * text and a JSON object under --log-format json; never a bare line such as
 * "Error: received handshake message out of context." */
Test(ops, tls_handshake_error_in_the_log_format)
{
    for (int json = 0; json < 2; json++) {
        struct env e;
        init_env(&e);
        make_cert(e.dir, "tls");
        const char *extra[] = {"--log-format", json ? "json" : "text", NULL};
        start_tls(&e, extra);
        int st;
        free(sh(&st, "curl -s -m 5 'http://127.0.0.1:%d/healthz'", e.d.port));
        usleep(300 * 1000);
        stop_all(&e);
        char *log = slurp(e.log);
        int seen = 0;
        char *save = NULL;
        for (char *line = strtok_r(log, "\n", &save); line != NULL;
             line = strtok_r(NULL, "\n", &save)) {
            if (json && line[0] == '{') {
                json_t *o = json_loads(line, 0, NULL);
                cr_assert_not_null(o, "not JSON: %s", line);
                const char *err = json_string_value(json_object_get(o, "error"));
                if (err != NULL) {
                    seen = 1;
                    cr_assert_str_eq(json_string_value(json_object_get(o, "program")), "reqsignd");
                    cr_assert_not_null(json_object_get(o, "ts"), "%s", line);
                }
                json_decref(o);
                continue;
            }
            cr_assert(strncmp(line, "reqsignd: ", 10) == 0 ||
                          (!json && strncmp(line, "ts=", 3) == 0),
                      "a line not in the log's format: %s", line);
            if (!json && strncmp(line, "reqsignd: http: ", 16) == 0)
                seen = 1;
        }
        cr_assert(seen, "the handshake failure is not logged (%s)", json ? "json" : "text");
        free(log);
        done(&e);
    }
}

Test(ops, tls_1_1_refused_1_2_accepted)
{
    struct env e;
    init_env(&e);
    make_cert(e.dir, "tls");
    start_tls(&e, NULL);
    int st;
    /* SECLEVEL=0 so that OpenSSL's own client offers TLS 1.1 at all: the
     * refusal must come from the server */
    char *out = sh(&st,
                   "echo | openssl s_client -connect 127.0.0.1:%d -tls1_1 "
                   "-cipher 'DEFAULT:@SECLEVEL=0' 2>&1",
                   e.d.port);
    cr_assert(strstr(out, "Cipher is (NONE)") != NULL, "TLS 1.1 was accepted: %s", out);
    free(out);
    out = sh(&st, "echo | openssl s_client -connect 127.0.0.1:%d -tls1_2 2>&1", e.d.port);
    cr_assert(strstr(out, "Protocol  : TLSv1.2") != NULL && strstr(out, "(NONE)") == NULL,
              "TLS 1.2 refused: %s", out);
    free(out);
    done(&e);
}

Test(ops, tls_sighup_reloads_the_certificate)
{
    struct env e;
    init_env(&e);
    make_cert(e.dir, "tls");
    make_cert(e.dir, "new");
    start_tls(&e, NULL);
    char ca[600], newca[600];
    snprintf(ca, sizeof(ca), "%s/tls.crt", e.dir);
    snprintf(newca, sizeof(newca), "%s/new.crt", e.dir);
    char *before = served_serial(e.d.port, ca);
    int st;
    char *want = sh(&st, "openssl x509 -noout -serial -in '%s'", newca);
    cr_assert(strncmp(want, "serial=", 7) == 0, "%s", want);
    cr_assert_str_neq(before, want);

    /* a broken key file: the reload fails and the old certificate stays */
    free(sh(&st, "echo junk > '%s/tls.key'", e.dir));
    cr_assert_eq(kill(e.d.pid, SIGHUP), 0);
    usleep(300 * 1000);
    char *still = served_serial(e.d.port, ca);
    cr_assert_str_eq(still, before, "a failed reload changed the certificate");

    free(sh(&st, "cp '%s/new.crt' '%s/tls.crt' && cp '%s/new.key' '%s/tls.key'", e.dir, e.dir,
            e.dir, e.dir));
    cr_assert_eq(kill(e.d.pid, SIGHUP), 0);
    char *after = NULL;
    for (int i = 0; i < 50; i++) { /* the signal is taken asynchronously */
        free(after);
        after = served_serial(e.d.port, newca);
        if (strcmp(after, want) == 0)
            break;
        usleep(100 * 1000);
    }
    cr_assert_str_eq(after, want, "after SIGHUP the server presents %s, want %s", after, want);
    char *out = sh(&st, "curl -sS --cacert '%s' '%s/healthz'", newca, url_of(&e, ""));
    cr_assert_eq(st, 0, "%s", out);
    free(out);
    stop_all(&e);
    char *log = slurp(e.log);
    cr_assert(strstr(log, "TLS reload failed") != NULL, "%s", log);
    cr_assert(strstr(log, "TLS certificate reloaded") != NULL, "%s", log);
    free(log);
    free(before);
    free(still);
    free(after);
    free(want);
    done(&e);
}

Test(ops, plain_http_off_loopback_refused)
{
    struct env e;
    init_env(&e);
    int st;
    const char *progs[2] = {tu_prog("REQSIGND"), tu_prog("API_BACKEND")};
    for (int i = 0; i < 2; i++) {
        char *out =
            sh(&st, "'%s' --db '%s' --listen 0.0.0.0:0 --authority a.example 2>&1", progs[i], e.db);
        cr_assert_eq(st, 2, "%s: exit %d: %s", progs[i], st, out);
        cr_assert(strstr(out, "refusing plain HTTP") != NULL && strstr(out, "--insecure-http"),
                  "%s", out);
        free(out);
    }
    /* --insecure-http (a TLS proxy in front): it serves */
    char *argv[] = {(char *)tu_prog("REQSIGND"),
                    "--db",
                    e.db,
                    "--listen",
                    "0.0.0.0:@PORT@",
                    "--authority",
                    "keys.example",
                    "--insecure-http",
                    "--public-scheme",
                    "https",
                    NULL};
    cr_assert_eq(tu_proc_start_port(&e.d, argv, e.log, 10000), 0, "--insecure-http did not start");
    char *bargv[] = {(char *)tu_prog("API_BACKEND"),
                     "--db",
                     e.db,
                     "--listen",
                     "0.0.0.0:@PORT@",
                     "--authority",
                     "api.example",
                     "--insecure-http",
                     NULL};
    cr_assert_eq(tu_proc_start_port(&e.b, bargv, e.blog, 10000), 0,
                 "api-backend --insecure-http did not start");
    /* the half of a TLS pair is a usage error too */
    char *out = sh(&st, "'%s' --db '%s' --listen 127.0.0.1:0 --authority a --tls-cert '%s' 2>&1",
                   progs[0], e.db, e.db);
    cr_assert_eq(st, 2, "%s", out);
    cr_assert(strstr(out, "--tls-key") != NULL, "%s", out);
    free(out);
    done(&e);
}

/* The secret strings of @cred_path's credential: its private key lines. */
static void assert_no_secrets(const char *log, const char *admin_json)
{
    json_t *j = json_loads(admin_json, 0, NULL);
    const char *pem = json_string_value(json_object_get(j, "private_key"));
    cr_assert_not_null(pem);
    char line[128];
    for (const char *p = pem; *p;) {
        const char *e = strchr(p, '\n');
        size_t n = e != NULL ? (size_t)(e - p) : strlen(p);
        if (n >= 16 && n < sizeof(line) && strncmp(p, "-----", 5) != 0) {
            memcpy(line, p, n);
            line[n] = '\0';
            cr_assert(strstr(log, line) == NULL, "the log holds a private key line");
        }
        p += n + (e != NULL);
    }
    json_decref(j);
    cr_assert(strstr(log, "PRIVATE") == NULL);
    cr_assert(strstr(log, "sig1=") == NULL, "a signature in the log");
    cr_assert(strstr(log, "Signature") == NULL);
    cr_assert(strstr(log, "nonce") == NULL);
}

/* Run a healthz, a create and a GET of the new key; return the new keyid. */
static char *exercise(struct env *e, struct reqsign_signer *admin, char *path_keyid_out, size_t cap)
{
    struct resp r = send_req("GET", url_of(e, "/healthz?token=s3cr3t"), NULL, 0, NULL, NULL);
    cr_assert_eq(r.status, 200);
    resp_free(&r);
    json_t *cred = create_key(e, admin, "{\"label\":\"log\",\"scopes\":[\"orders:read\"]}");
    snprintf(path_keyid_out, cap, "%s", json_string_value(json_object_get(cred, "keyid")));
    char p[256];
    snprintf(p, sizeof(p), "/v1/keys/%s", path_keyid_out);
    r = call(admin, "GET", url_of(e, p), NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    resp_free(&r);
    char *s = json_dumps(cred, 0);
    json_decref(cred);
    return s;
}

static void check_log(int json)
{
    struct env e;
    init_env(&e);
    start_reqsignd(&e, NULL, (const char *const[]){"--log-format", json ? "json" : "text", NULL});
    char *admin_json = slurp(e.admin);
    struct reqsign_signer *admin = signer_from_cred(admin_json);
    json_t *aj = json_loads(admin_json, 0, NULL);
    const char *admin_keyid = json_string_value(json_object_get(aj, "keyid"));
    char target[128];
    char *issued = exercise(&e, admin, target, sizeof(target));
    /* an enrollment with a service-generated key: unsigned (no keyid), the
     * new key is its target */
    struct resp r = call(admin, "POST", url_of(&e, "/v1/accounts"), "{\"name\":\"logged\"}");
    cr_assert_eq(r.status, 201, "%ld %s", r.status, r.body);
    char body[256], enrolled[128];
    snprintf(body, sizeof(body), "{\"token\":\"%s\"}",
             json_string_value(json_object_get(json_object_get(r.json, "enrollment"), "token")));
    resp_free(&r);
    static const char *const ct[] = {"Content-Type: application/json", NULL};
    r = send_req("POST", url_of(&e, "/v1/enroll"), body, strlen(body), NULL, ct);
    cr_assert_eq(r.status, 201, "%ld %s", r.status, r.body);
    snprintf(enrolled, sizeof(enrolled), "%s", json_string_value(json_object_get(r.json, "keyid")));
    char *enrolled_cred = strdup(r.body);
    resp_free(&r);
    stop_all(&e);
    char *log = slurp(e.log);
    assert_no_secrets(log, admin_json);
    assert_no_secrets(log, issued); /* the issued credential's private key either */
    assert_no_secrets(log, enrolled_cred);
    free(enrolled_cred);
    cr_assert(strstr(log, "s3cr3t") == NULL, "the query is logged");

    int seen_health = 0, seen_get = 0, seen_create = 0, seen_enroll = 0;
    char *lines_save = NULL;
    for (char *line = strtok_r(log, "\n", &lines_save); line != NULL;
         line = strtok_r(NULL, "\n", &lines_save)) {
        const char *ts = NULL, *client = NULL, *method = NULL, *path = NULL, *keyid = NULL,
                   *tk = NULL;
        long status = -1;
        double ms = -1;
        json_t *o = NULL;
        char *kv[16] = {0};
        if (json) {
            if (line[0] != '{')
                continue; /* start-up messages */
            o = json_loads(line, 0, NULL);
            cr_assert_not_null(o, "not JSON: %s", line);
            ts = json_string_value(json_object_get(o, "ts"));
            client = json_string_value(json_object_get(o, "client"));
            method = json_string_value(json_object_get(o, "method"));
            path = json_string_value(json_object_get(o, "path"));
            keyid = json_string_value(json_object_get(o, "keyid"));
            tk = json_string_value(json_object_get(o, "target_keyid"));
            status = (long)json_integer_value(json_object_get(o, "status"));
            cr_assert(json_is_number(json_object_get(o, "ms")), "%s", line);
            ms = json_number_value(json_object_get(o, "ms"));
            cr_assert(json_object_get(o, "keyid") != NULL && json_object_get(o, "target_keyid"),
                      "%s", line);
        } else {
            if (strncmp(line, "ts=", 3) != 0)
                continue;
            char *save = NULL;
            int n = 0;
            for (char *f = strtok_r(line, " ", &save); f != NULL && n < 16;
                 f = strtok_r(NULL, " ", &save))
                kv[n++] = f;
            cr_assert_eq(n, 8, "fields: %d", n);
            const char *names[8] = {
                "ts=", "client=", "method=", "path=", "status=", "ms=", "keyid=", "target_keyid="};
            for (int i = 0; i < 8; i++)
                cr_assert(strncmp(kv[i], names[i], strlen(names[i])) == 0, "field %d: %s", i,
                          kv[i]);
            ts = kv[0] + 3;
            client = kv[1] + 7;
            method = kv[2] + 7;
            path = kv[3] + 5;
            status = strtol(kv[4] + 7, NULL, 10);
            ms = strtod(kv[5] + 3, NULL);
            keyid = strcmp(kv[6] + 6, "-") == 0 ? NULL : kv[6] + 6;
            tk = strcmp(kv[7] + 13, "-") == 0 ? NULL : kv[7] + 13;
        }
        /* 2026-12-02T13:04:05.123Z */
        cr_assert(ts != NULL && strlen(ts) == 24 && ts[4] == '-' && ts[10] == 'T' &&
                      ts[19] == '.' && ts[23] == 'Z',
                  "timestamp %s", ts);
        cr_assert(client != NULL && strncmp(client, "127.0.0.1:", 10) == 0, "client %s", client);
        cr_assert(ms >= 0);
        if (strcmp(path, "/healthz") == 0) {
            seen_health = 1;
            cr_assert_eq(status, 200);
            cr_assert_null(keyid);
        } else if (strcmp(path, "/v1/keys") == 0 && strcmp(method, "POST") == 0) {
            seen_create = 1;
            cr_assert_eq(status, 201);
            cr_assert(keyid != NULL && strcmp(keyid, admin_keyid) == 0);
            cr_assert(tk != NULL && strcmp(tk, target) == 0, "create target %s", tk);
        } else if (strcmp(path, "/v1/enroll") == 0) {
            seen_enroll = 1;
            cr_assert_eq(status, 201);
            cr_assert_null(keyid, "a generated key's enrollment is not signed: %s", keyid);
            cr_assert(tk != NULL && strcmp(tk, enrolled) == 0, "enroll target %s, want %s", tk,
                      enrolled);
        } else if (strncmp(path, "/v1/keys/", 9) == 0) {
            seen_get = 1;
            cr_assert_eq(status, 200);
            cr_assert(keyid != NULL && strcmp(keyid, admin_keyid) == 0);
            cr_assert(tk != NULL && strcmp(tk, target) == 0, "target %s", tk);
        }
        json_decref(o);
    }
    cr_assert(seen_health && seen_create && seen_get && seen_enroll, "lines missing");
    free(log);
    free(issued);
    json_decref(aj);
    reqsign_signer_free(admin);
    free(admin_json);
    done(&e);
}

Test(ops, log_text_fields)
{
    check_log(0);
}
Test(ops, log_json_fields)
{
    check_log(1);
}

Test(ops, require_scope_per_prefix)
{
    struct env e;
    init_env(&e);
    start(&e, NULL);
    const char *extra[] = {"--require-scope", "/v1/orders=orders:write", NULL};
    start_backend_extra(&e, NULL, extra);
    char *admin_json = slurp(e.admin);
    struct reqsign_signer *admin = signer_from_cred(admin_json);
    json_t *w = create_key(&e, admin, "{\"label\":\"w\",\"scopes\":[\"orders:write\"]}");
    json_t *ro = create_key(&e, admin, "{\"label\":\"r\",\"scopes\":[\"orders:read\"]}");
    struct reqsign_signer *sw = signer_of(w), *sr = signer_of(ro);

    struct resp r = call(sw, "POST", burl(&e, "/v1/orders"), "{}");
    cr_assert_eq(r.status, 200, "%s", r.body);
    resp_free(&r);
    r = call(sw, "GET", burl(&e, "/v1/orders/7"), NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    resp_free(&r);
    r = call(sr, "POST", burl(&e, "/v1/orders"), "{}");
    cr_assert_eq(r.status, 403, "%s", r.body);
    cr_assert_str_eq(err_name(&r), "scope");
    resp_free(&r);
    r = call(sr, "GET", burl(&e, "/v1/orders/7?x=1"), NULL);
    cr_assert_eq(r.status, 403, "%s", r.body);
    resp_free(&r);
    /* outside the prefix (and a name that only starts like it): no rule */
    r = call(sr, "GET", burl(&e, "/v1/ordersX"), NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    resp_free(&r);
    r = call(sr, "GET", burl(&e, "/v1/other"), NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    resp_free(&r);

    /* a bare SCOPE covers every path */
    stop_all(&e);
    start(&e, NULL);
    const char *all[] = {"--require-scope", "orders:write", NULL};
    start_backend_extra(&e, NULL, all);
    r = call(sr, "GET", burl(&e, "/v1/other"), NULL);
    cr_assert_eq(r.status, 403, "%s", r.body);
    resp_free(&r);
    r = call(sw, "GET", burl(&e, "/v1/other"), NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    resp_free(&r);

    int st;
    char *out = sh(&st,
                   "'%s' --db '%s' --listen 127.0.0.1:0 --authority a --require-scope "
                   "/v1/orders 2>&1",
                   tu_prog("API_BACKEND"), e.db);
    cr_assert_eq(st, 2, "%s", out);
    free(out);
    reqsign_signer_free(sw);
    reqsign_signer_free(sr);
    json_decref(w);
    json_decref(ro);
    reqsign_signer_free(admin);
    free(admin_json);
    done(&e);
}

/* reqsignd and api-backend say why the database cannot be opened. */
Test(ops, store_problem_is_named)
{
    struct env e;
    init_env(&e);
    int st;
    const char *progs[2] = {tu_prog("REQSIGND"), tu_prog("API_BACKEND")};
    for (int i = 0; i < 2; i++) {
        /* missing: then init is the advice */
        char *out = sh(&st, "'%s' --db '%s/none.db' --listen 127.0.0.1:0 --authority a 2>&1",
                       progs[i], e.dir);
        cr_assert_eq(st, 1, "%s", out);
        cr_assert(strstr(out, "does not exist") && strstr(out, "init"), "%s", out);
        free(out);
        /* not a database: no advice to init */
        out = sh(&st,
                 "printf 'hello, not sqlite at all........' > '%s/junk.db'; '%s' --db "
                 "'%s/junk.db' --listen 127.0.0.1:0 --authority a 2>&1",
                 e.dir, progs[i], e.dir);
        cr_assert_eq(st, 1, "%s", out);
        cr_assert(strstr(out, "not a SQLite database") != NULL, "%s", out);
        cr_assert(strstr(out, "run 'reqsignd init' first") == NULL, "%s", out);
        free(out);
    }
    /* unreadable: as an unprivileged user on a 0600 root-owned database */
    if (geteuid() != 0) {
        done(&e);
        cr_skip("not root: cannot run the program as another user");
    }
    char *out = sh(&st, "command -v setpriv");
    free(out);
    if (st != 0) {
        done(&e);
        cr_skip("no setpriv");
    }
    free(sh(&st, "chmod 0755 '%s' && chmod 0600 '%s'", e.dir, e.db));
    for (int i = 0; i < 2; i++) {
        out = sh(&st,
                 "setpriv --reuid=65534 --regid=65534 --clear-groups '%s' --db '%s' --listen "
                 "127.0.0.1:0 --authority a 2>&1",
                 progs[i], e.db);
        if (strstr(out, "Permission denied") != NULL && strstr(out, "cannot open") == NULL &&
            strstr(out, "reqsign") == NULL) { /* the program itself is out of reach */
            free(out);
            done(&e);
            cr_skip("the build directory is not reachable by user 65534");
        }
        cr_assert_eq(st, 1, "%s", out);
        cr_assert(strstr(out, "Permission denied") && strstr(out, "user 65534") &&
                      strstr(out, "mode 0600"),
                  "%s", out);
        cr_assert(strstr(out, "run 'reqsignd init' first") == NULL, "%s", out);
        free(out);
    }
    done(&e);
}

/* --help on stdout with exit 0, --version, one line naming an unknown option, exit 2. */
Test(ops, help_version_and_usage_errors)
{
    int st;
    const char *progs[2] = {tu_prog("REQSIGND"), tu_prog("API_BACKEND")};
    for (int i = 0; i < 2; i++) {
        char *out = sh(&st, "'%s' --help 2>/dev/null", progs[i]);
        cr_assert_eq(st, 0, "%s --help: exit %d", progs[i], st);
        cr_assert(strstr(out, "usage:") != NULL && strstr(out, "--tls-cert") != NULL, "%s", out);
        free(out);
        out = sh(&st, "'%s' --help 2>&1 >/dev/null", progs[i]);
        cr_assert_str_eq(out, "", "--help wrote to stderr: %s", out);
        free(out);
        out = sh(&st, "'%s' --version 2>/dev/null", progs[i]);
        cr_assert_eq(st, 0);
        cr_assert(strstr(out, "0.") != NULL, "%s", out);
        free(out);
        out = sh(&st, "'%s' --db x --listen 127.0.0.1:0 --authority a --frobnicate 2>&1", progs[i]);
        cr_assert_eq(st, 2, "%s", out);
        cr_assert(strstr(out, "--frobnicate") != NULL, "%s", out);
        cr_assert(strstr(out, "usage:") == NULL, "the whole help for one bad option: %s", out);
        free(out);
        out = sh(&st, "'%s' --db x --listen 2>&1", progs[i]);
        cr_assert_eq(st, 2, "%s", out);
        cr_assert(strstr(out, "--listen") != NULL, "%s", out);
        free(out);
        out = sh(&st, "'%s' --db x --listen 127.0.0.1:0 --authority a --log-format xml 2>&1",
                 progs[i]);
        cr_assert_eq(st, 2, "%s", out);
        free(out);
        out = sh(&st, "'%s' 2>/dev/null", progs[i]);
        cr_assert_eq(st, 2);
        free(out);
    }
    char *out = sh(&st, "'%s' init --help 2>/dev/null", progs[0]);
    cr_assert_eq(st, 0);
    cr_assert(strstr(out, "usage:") != NULL);
    free(out);
    /* the CLI and each of its commands hold to the same convention */
    const char *cmds[] = {"",     "keygen",    "sign",        "verify",   "send",
                          "keys", "keys list", "keys create", "keys get", "keys revoke"};
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        out = sh(&st, "'%s' %s --help 2>/dev/null", tu_prog("REQSIGN_CLI"), cmds[i]);
        cr_assert_eq(st, 0, "reqsign %s --help: exit %d", cmds[i], st);
        cr_assert(strstr(out, "usage:") != NULL, "reqsign %s --help: %s", cmds[i], out);
        free(out);
        out = sh(&st, "'%s' %s --frobnicate 2>&1 >/dev/null", tu_prog("REQSIGN_CLI"), cmds[i]);
        cr_assert_eq(st, 2, "reqsign %s --frobnicate: exit %d", cmds[i], st);
        cr_assert(strstr(out, "--frobnicate") != NULL, "reqsign %s: %s", cmds[i], out);
        free(out);
    }
    out = sh(&st, "'%s' --version", tu_prog("REQSIGN_CLI"));
    cr_assert_eq(st, 0);
    cr_assert(strncmp(out, "reqsign ", 8) == 0, "%s", out);
    free(out);
}

Test(ops, init_records_the_service_and_api_url_is_stamped)
{
    char *dir = tu_tmpdir();
    int st;
    char *out =
        sh(&st, "'%s' init --db '%s/k.db' -o '%s/a.json' 2>&1", tu_prog("REQSIGND"), dir, dir);
    cr_assert_eq(st, 2, "%s", out);
    cr_assert(strstr(out, "--service") != NULL, "%s", out);
    free(out);
    char path[600];
    snprintf(path, sizeof(path), "%s/a.json", dir);
    cr_assert_neq(access(path, F_OK), 0);
    free(sh(&st, "rm -rf '%s'", dir));
    free(dir);

    struct env e;
    init_env(&e);
    char *admin_json = slurp(e.admin);
    json_t *aj = json_loads(admin_json, 0, NULL);
    cr_assert_str_eq(json_string_value(json_object_get(aj, "service")), "http://127.0.0.1");
    json_decref(aj);
    start_backend(&e, NULL);
    char api[200];
    snprintf(api, sizeof(api), "%s/", e.b.url); /* a trailing slash is fine */
    start_reqsignd(&e, NULL, (const char *const[]){"--api-url", api, NULL});
    struct reqsign_signer *admin = signer_from_cred(admin_json);
    json_t *cred = create_key(&e, admin, "{\"label\":\"c\",\"scopes\":[\"orders:write\"]}");
    cr_assert_str_eq(json_string_value(json_object_get(cred, "api")), api);
    /* the customer's `reqsign send PATH` resolves against "api" */
    char cpath[600];
    snprintf(cpath, sizeof(cpath), "%s/customer.json", e.dir);
    cr_assert_eq(json_dump_file(cred, cpath, 0), 0);
    chmod(cpath, 0600);
    out = sh(&st, "'%s' send --key '%s' -X POST --data '{}' /v1/orders 2>&1",
             tu_prog("REQSIGN_CLI"), cpath);
    cr_assert_eq(st, 0, "send PATH: %s", out);
    cr_assert(strstr(out, "\"path\":\"/v1/orders\"") != NULL, "%s", out);
    free(out);
    out = sh(&st, "'%s' send --key '%s' /v1/orders 2>&1", tu_prog("REQSIGN_CLI"), e.admin);
    cr_assert_eq(st, 2, "a path without \"api\": %s", out);
    cr_assert(strstr(out, "\"api\"") != NULL, "%s", out);
    free(out);
    json_decref(cred);
    json_t *gen = create_key(&e, admin, "{\"label\":\"d\",\"scopes\":[]}");
    cr_assert_not_null(json_object_get(gen, "api"));
    json_decref(gen);
    out = sh(&st, "'%s' --db x --listen 127.0.0.1:0 --authority a --api-url ftp://x 2>&1",
             tu_prog("REQSIGND"));
    cr_assert_eq(st, 2, "%s", out);
    free(out);
    reqsign_signer_free(admin);
    free(admin_json);
    done(&e);
}
