/* e2e-reqsignd: a real reqsignd on 127.0.0.1, driven over libcurl with
 * requests signed by the client signer (docs/KEYSERVICE.md). */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <reqsign/key.h>
#include <reqsign/signer.h>

#include "testutil.h"

/* ---- helpers (the same shape in test_backend.c) ---- */

#include "e2eutil.h"

/* ---- tests ---- */

TestSuite(reqsignd, .timeout = 120);

Test(reqsignd, init_mode_and_no_overwrite)
{
    struct env e;
    memset(&e, 0, sizeof(e));
    e.dir = tu_tmpdir();
    snprintf(e.db, sizeof(e.db), "%s/keys.db", e.dir);
    snprintf(e.admin, sizeof(e.admin), "%s/admin.json", e.dir);
    snprintf(e.log, sizeof(e.log), "%s/reqsignd.log", e.dir);
    run_init(&e);
    struct stat st;
    cr_assert_eq(stat(e.admin, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600, "admin.json mode %o", st.st_mode & 0777);
    char *before = slurp(e.admin);
    json_t *j = json_loads(before, 0, NULL);
    cr_assert_not_null(j);
    cr_assert_str_eq(json_string_value(json_object_get(j, "alg")), "ed25519");
    cr_assert_not_null(json_string_value(json_object_get(j, "private_key")));
    cr_assert_eq(json_string_length(json_object_get(j, "keyid")), 43);
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(j, "scopes"), 0)),
                     "keys:admin");
    json_decref(j);

    /* refuses to overwrite the credential, and refuses a database with keys */
    char cmd[2048];
    int status;
    snprintf(cmd, sizeof(cmd),
             "'%s' init --db '%s/other.db' -o '%s' --service http://127.0.0.1 2>/dev/null",
             tu_prog("REQSIGND"), e.dir, e.admin);
    free(tu_run(cmd, &status));
    cr_assert_neq(status, 0);
    char *after = slurp(e.admin);
    cr_assert_str_eq(before, after, "admin.json was modified");
    snprintf(cmd, sizeof(cmd),
             "'%s' init --db '%s' -o '%s/second.json' --service http://127.0.0.1 2>/dev/null",
             tu_prog("REQSIGND"), e.db, e.dir);
    free(tu_run(cmd, &status));
    cr_assert_neq(status, 0);
    snprintf(cmd, sizeof(cmd), "%s/second.json", e.dir);
    cr_assert_neq(access(cmd, F_OK), 0, "second credential written");
    free(before);
    free(after);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e.dir);
    free(tu_run(cmd, &status));
    free(e.dir);
}

Test(reqsignd, public_routes_and_http_errors)
{
    struct env e;
    setup_env(&e);
    struct resp r = send_req("GET", url_of(&e, "/healthz"), NULL, 0, NULL, NULL);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(json_string_value(json_object_get(r.json, "status")), "ok");
    resp_free(&r);

    r = send_req("GET", url_of(&e, "/.well-known/http-message-signatures-directory"), NULL, 0, NULL,
                 NULL);
    cr_assert_eq(r.status, 200);
    /* the admin key is never published (directory_publishes_only_marked_keys) */
    cr_assert_eq(json_array_size(json_object_get(r.json, "keys")), 0, "%s", r.body);
    cr_assert_str_eq(resp_header(&r, "Cache-Control"), "max-age=5");
    resp_free(&r);

    /* unsigned management request: 401 sig_missing with Accept-Signature */
    r = send_req("GET", url_of(&e, "/v1/keys"), NULL, 0, NULL, NULL);
    cr_assert_eq(r.status, 401);
    cr_assert_str_eq(err_name(&r), "sig_missing");
    cr_assert_not_null(resp_header(&r, "Accept-Signature"));
    cr_assert_not_null(strstr(resp_header(&r, "Accept-Signature"), "\"@method\""));
    cr_assert_str_eq(resp_header(&r, "Content-Type"), "application/json");
    cr_assert_str_eq(resp_header(&r, "Cache-Control"), "no-store");
    resp_free(&r);

    r = send_req("GET", url_of(&e, "/nope"), NULL, 0, NULL, NULL);
    cr_assert_eq(r.status, 404);
    cr_assert_str_eq(err_name(&r), "not_found");
    resp_free(&r);

    r = send_req("PUT", url_of(&e, "/v1/keys"), NULL, 0, NULL, NULL);
    cr_assert_eq(r.status, 405);
    cr_assert_str_eq(err_name(&r), "method_not_allowed");
    cr_assert_str_eq(resp_header(&r, "Allow"), "GET, POST");
    resp_free(&r);

    r = send_req("POST", url_of(&e, "/v1/keys/abc"), "{}", 2, NULL, NULL);
    cr_assert_eq(r.status, 405);
    cr_assert_str_eq(resp_header(&r, "Allow"), "GET, DELETE");
    resp_free(&r);
    finish(&e);
}

Test(reqsignd, create_get_list_revoke)
{
    struct env e;
    setup_env(&e);
    struct reqsign_signer *admin = load_admin(&e);

    struct resp r = call(admin, "POST", url_of(&e, "/v1/keys"),
                         "{\"label\":\"billing\",\"scopes\":[\"payments:write\",\"keys:admin\"]}");
    cr_assert_eq(r.status, 201, "%ld %s", r.status, r.body);
    cr_assert_str_eq(resp_header(&r, "Cache-Control"), "no-store");
    const char *keyid = json_string_value(json_object_get(r.json, "keyid"));
    char disp[256];
    snprintf(disp, sizeof(disp), "attachment; filename=\"reqsign-%s.json\"", keyid);
    cr_assert_str_eq(resp_header(&r, "Content-Disposition"), disp);
    cr_assert_not_null(
        strstr(json_string_value(json_object_get(r.json, "private_key")), "BEGIN PRIVATE KEY"));
    cr_assert_str_eq(json_string_value(json_object_get(r.json, "label")), "billing");
    cr_assert(json_is_null(json_object_get(r.json, "expires_at")));
    json_t *newcred = json_incref(r.json);
    char kid[64];
    snprintf(kid, sizeof(kid), "%s", keyid);
    resp_free(&r);

    char path[256];
    snprintf(path, sizeof(path), "/v1/keys/%s", kid);
    r = call(admin, "GET", url_of(&e, path), NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(json_string_value(json_object_get(r.json, "status")), "active");
    cr_assert_str_eq(json_string_value(json_object_get(r.json, "keyid")), kid);
    cr_assert_null(json_object_get(r.json, "private_key"));
    cr_assert_not_null(json_object_get(r.json, "jwk"));
    cr_assert(json_is_null(json_object_get(r.json, "revoked_at")));
    resp_free(&r);

    /* the new key works for management, and a replay of it does not */
    struct reqsign_signer *nk = signer_of(newcred);
    struct reqsign_signed sig;
    sign(nk, "GET", url_of(&e, "/v1/keys?limit=5"), NULL, 0, &sig);
    r = send_req("GET", url_of(&e, "/v1/keys?limit=5"), NULL, 0, &sig, NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_eq(json_array_size(json_object_get(r.json, "keys")), 2);
    cr_assert(json_is_null(json_object_get(r.json, "next")));
    resp_free(&r);
    r = send_req("GET", url_of(&e, "/v1/keys?limit=5"), NULL, 0, &sig, NULL);
    cr_assert_eq(r.status, 401);
    cr_assert_str_eq(err_name(&r), "replay");
    resp_free(&r);

    /* unknown key: 404 */
    r = call(admin, "GET", url_of(&e, "/v1/keys/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
             NULL);
    cr_assert_eq(r.status, 404);
    cr_assert_str_eq(err_name(&r), "not_found");
    resp_free(&r);
    r = call(admin, "DELETE", url_of(&e, "/v1/keys/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
             NULL);
    cr_assert_eq(r.status, 404);
    resp_free(&r);

    /* revoke: the record says so, and the key stops working at once */
    r = call(admin, "DELETE", url_of(&e, path), NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(json_string_value(json_object_get(r.json, "status")), "revoked");
    cr_assert(json_is_string(json_object_get(r.json, "revoked_at")));
    resp_free(&r);
    r = call(nk, "GET", url_of(&e, "/v1/keys"), NULL);
    cr_assert_eq(r.status, 401);
    cr_assert_str_eq(err_name(&r), "key_revoked");
    resp_free(&r);

    /* the directory does not list it */
    r = send_req("GET", url_of(&e, "/.well-known/http-message-signatures-directory"), NULL, 0, NULL,
                 NULL);
    cr_assert_eq(json_array_size(json_object_get(r.json, "keys")), 0);
    resp_free(&r);

    reqsign_signer_free(nk);
    json_decref(newcred);
    finish(&e);
}

Test(reqsignd, scope_and_input_errors)
{
    struct env e;
    setup_env(&e);
    struct reqsign_signer *admin = load_admin(&e);

    json_t *c = create_key(&e, admin, "{\"label\":\"pay\",\"scopes\":[\"payments:write\"]}");
    struct reqsign_signer *pay = signer_of(c);
    struct resp r = call(pay, "GET", url_of(&e, "/v1/keys"), NULL);
    cr_assert_eq(r.status, 403);
    cr_assert_str_eq(err_name(&r), "scope");
    resp_free(&r);

    r = call(admin, "POST", url_of(&e, "/v1/keys"), "{\"label\": \"x\",, }");
    cr_assert_eq(r.status, 400, "%s", r.body);
    cr_assert_str_eq(err_name(&r), "json");
    cr_assert(json_is_integer(json_object_get(r.json, "position")), "%s", r.body);
    resp_free(&r);

    static const char *const bad[] = {
        "[1]",
        "{\"scopes\":[\"UPPER\"]}",
        "{\"scopes\":\"keys:admin\"}",
        "{\"expires_at\":\"2001-01-01T00:00:00Z\"}",
        "{\"expires_at\":\"tomorrow\"}",
        "{\"label\":7}",
        "{\"public_key\":\"not a key\"}",
        "{\"unknown\":1}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        r = call(admin, "POST", url_of(&e, "/v1/keys"), bad[i]);
        cr_assert_eq(r.status, 400, "%s: %ld %s", bad[i], r.status, r.body);
        cr_assert_str_eq(err_name(&r), "invalid_request", "%s: %s", bad[i], r.body);
        resp_free(&r);
    }
    char label[300];
    memset(label, 'a', sizeof(label));
    char body[512];
    snprintf(body, sizeof(body), "{\"label\":\"%.129s\"}", label);
    r = call(admin, "POST", url_of(&e, "/v1/keys"), body);
    cr_assert_eq(r.status, 400);
    resp_free(&r);

    /* wrong media type */
    struct reqsign_signed sig;
    sign(admin, "POST", url_of(&e, "/v1/keys"), "{}", 2, &sig);
    static const char *const text_ct[] = {"Content-Type: text/plain", NULL};
    r = send_req("POST", url_of(&e, "/v1/keys"), "{}", 2, &sig, text_ct);
    cr_assert_eq(r.status, 415);
    cr_assert_str_eq(err_name(&r), "unsupported_media_type");
    resp_free(&r);

    /* oversized body: 413 before the body is read */
    size_t big = 70 * 1024;
    char *huge = malloc(big + 1);
    memset(huge, ' ', big);
    huge[0] = '{';
    huge[big - 1] = '}';
    huge[big] = '\0';
    r = call(admin, "POST", url_of(&e, "/v1/keys"), huge);
    cr_assert_eq(r.status, 413);
    cr_assert_str_eq(err_name(&r), "body_too_large");
    resp_free(&r);
    free(huge);

    /* tampered body: digest_mismatch, nothing created */
    sign(admin, "POST", url_of(&e, "/v1/keys"), "{\"label\":\"a\"}", 13, &sig);
    static const char *const json_ct[] = {"Content-Type: application/json", NULL};
    r = send_req("POST", url_of(&e, "/v1/keys"), "{\"label\":\"b\"}", 13, &sig, json_ct);
    cr_assert_eq(r.status, 401);
    cr_assert_str_eq(err_name(&r), "digest_mismatch");
    resp_free(&r);

    reqsign_signer_free(pay);
    json_decref(c);
    finish(&e);
}

Test(reqsignd, bring_your_own_key)
{
    struct env e;
    setup_env(&e);
    struct reqsign_signer *admin = load_admin(&e);

    struct reqsign_key *k1 = NULL, *k2 = NULL;
    cr_assert_not_null(k1 = reqsign_key_generate(NULL));
    cr_assert_not_null(k2 = reqsign_key_generate(NULL));
    char pem[512], jwk[512], kid1[REQSIGN_THUMBPRINT_BUF], kid2[REQSIGN_THUMBPRINT_BUF];
    size_t n;
    cr_assert_eq(reqsign_key_public_pem(k1, pem, sizeof(pem), &n), REQSIGN_OK);
    cr_assert_eq(reqsign_key_public_jwk(k2, jwk, sizeof(jwk), &n), REQSIGN_OK);
    cr_assert_eq(reqsign_key_thumbprint(k1, kid1), REQSIGN_OK);
    cr_assert_eq(reqsign_key_thumbprint(k2, kid2), REQSIGN_OK);

    json_t *b1 = json_pack("{s:s, s:[s], s:s}", "label", "pem", "scopes", "a:b", "public_key", pem);
    char *s1 = json_dumps(b1, 0);
    struct resp r = call(admin, "POST", url_of(&e, "/v1/keys"), s1);
    cr_assert_eq(r.status, 201, "%s", r.body);
    cr_assert_str_eq(json_string_value(json_object_get(r.json, "keyid")), kid1);
    cr_assert_null(json_object_get(r.json, "private_key"));
    resp_free(&r);

    char body[1024];
    snprintf(body, sizeof(body), "{\"label\":\"jwk\",\"public_key\":%s}", jwk);
    r = call(admin, "POST", url_of(&e, "/v1/keys"), body);
    cr_assert_eq(r.status, 201, "%s", r.body);
    cr_assert_str_eq(json_string_value(json_object_get(r.json, "keyid")), kid2);
    cr_assert_null(json_object_get(r.json, "private_key"));
    resp_free(&r);

    /* the same public key again: 409, as PEM or as JWK */
    r = call(admin, "POST", url_of(&e, "/v1/keys"), s1);
    cr_assert_eq(r.status, 409);
    cr_assert_str_eq(err_name(&r), "conflict");
    resp_free(&r);
    r = call(admin, "POST", url_of(&e, "/v1/keys"), body);
    cr_assert_eq(r.status, 409);
    resp_free(&r);

    /* a private key is refused as public_key */
    char priv[512];
    cr_assert_eq(reqsign_key_private_pem(k1, priv, sizeof(priv), &n), REQSIGN_OK);
    json_t *b3 = json_pack("{s:s}", "public_key", priv);
    char *s3 = json_dumps(b3, 0);
    r = call(admin, "POST", url_of(&e, "/v1/keys"), s3);
    cr_assert_eq(r.status, 400, "%s", r.body);
    cr_assert_null(strstr(r.body, "PRIVATE"));
    resp_free(&r);

    /* the BYO key signs for itself (scope a:b: authenticated, then 403) */
    struct reqsign_signer_opts o;
    memset(&o, 0, sizeof(o));
    o.key = k1;
    struct reqsign_signer *s = reqsign_signer_new(&o, NULL);
    cr_assert_not_null(s);
    r = call(s, "GET", url_of(&e, "/v1/keys"), NULL);
    cr_assert_eq(r.status, 403);
    resp_free(&r);
    reqsign_signer_free(s);

    free(s1);
    free(s3);
    json_decref(b1);
    json_decref(b3);
    reqsign_key_free(k1);
    reqsign_key_free(k2);
    finish(&e);
}

Test(reqsignd, pagination_120_keys)
{
    struct env e;
    setup_env(&e);
    struct reqsign_signer *admin = load_admin(&e);
    for (int i = 0; i < 120; i++) {
        char b[64];
        snprintf(b, sizeof(b), "{\"label\":\"k%d\",\"scopes\":[\"x\"]}", i);
        json_decref(create_key(&e, admin, b));
    }
    char after[128] = "", prev[128] = "";
    size_t total = 0;
    int pages = 0;
    for (;;) {
        char path[256];
        if (after[0])
            snprintf(path, sizeof(path), "/v1/keys?limit=50&after=%s", after);
        else
            snprintf(path, sizeof(path), "/v1/keys?limit=50");
        struct resp r = call(admin, "GET", url_of(&e, path), NULL);
        cr_assert_eq(r.status, 200, "%s", r.body);
        json_t *keys = json_object_get(r.json, "keys");
        size_t i;
        json_t *k;
        json_array_foreach(keys, i, k)
        {
            const char *id = json_string_value(json_object_get(k, "keyid"));
            cr_assert(strcmp(prev, id) < 0, "not ordered: %s then %s", prev, id);
            snprintf(prev, sizeof(prev), "%s", id);
        }
        total += json_array_size(keys);
        pages++;
        json_t *next = json_object_get(r.json, "next");
        if (json_is_null(next)) {
            resp_free(&r);
            break;
        }
        cr_assert_str_eq(json_string_value(next), prev);
        snprintf(after, sizeof(after), "%s", json_string_value(next));
        resp_free(&r);
        cr_assert(pages < 10);
    }
    cr_assert_eq(total, 121);
    cr_assert_eq(pages, 3);

    struct resp r = call(admin, "GET", url_of(&e, "/v1/keys?limit=0"), NULL);
    cr_assert_eq(r.status, 400);
    resp_free(&r);
    r = call(admin, "GET", url_of(&e, "/v1/keys?limit=1001"), NULL);
    cr_assert_eq(r.status, 400);
    resp_free(&r);
    r = call(admin, "GET", url_of(&e, "/v1/keys?limit=1000"), NULL);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(json_array_size(json_object_get(r.json, "keys")), 121);
    cr_assert(json_is_null(json_object_get(r.json, "next")));
    resp_free(&r);
    finish(&e);
}

Test(reqsignd, expired_key)
{
    struct env e;
    setup_env(&e);
    struct reqsign_signer *admin = load_admin(&e);
    time_t exp = time(NULL) + 3;
    struct tm tm;
    gmtime_r(&exp, &tm);
    char ts[32], body[256];
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
    snprintf(body, sizeof(body), "{\"scopes\":[\"keys:admin\"],\"expires_at\":\"%s\"}", ts);
    json_t *c = create_key(&e, admin, body);
    cr_assert_str_eq(json_string_value(json_object_get(c, "expires_at")), ts);
    struct reqsign_signer *s = signer_of(c);
    struct resp r = call(s, "GET", url_of(&e, "/v1/keys"), NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    resp_free(&r);
    while (time(NULL) <= exp)
        usleep(100 * 1000);
    r = call(s, "GET", url_of(&e, "/v1/keys"), NULL);
    cr_assert_eq(r.status, 401);
    cr_assert_str_eq(err_name(&r), "key_expired");
    resp_free(&r);
    char path[128];
    snprintf(path, sizeof(path), "/v1/keys/%s", json_string_value(json_object_get(c, "keyid")));
    r = call(admin, "GET", url_of(&e, path), NULL);
    cr_assert_str_eq(json_string_value(json_object_get(r.json, "status")), "expired");
    resp_free(&r);
    reqsign_signer_free(s);
    json_decref(c);
    finish(&e);
}

Test(reqsignd, keys_survive_restart)
{
    struct env e;
    setup_env(&e);
    struct reqsign_signer *admin = load_admin(&e);
    json_t *c = create_key(&e, admin, "{\"label\":\"persist\"}");
    stop(&e);
    start(&e, NULL);
    char path[128];
    snprintf(path, sizeof(path), "/v1/keys/%s", json_string_value(json_object_get(c, "keyid")));
    struct resp r = call(admin, "GET", url_of(&e, path), NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(json_string_value(json_object_get(r.json, "label")), "persist");
    resp_free(&r);
    /* the log names requests, never a key (lines reach it within the
     * server's flush interval, 200 ms) */
    char *log = slurp(e.log);
    for (int i = 0; i < 50 && strstr(log, "method=GET path=/v1/keys/") == NULL; i++) {
        free(log);
        usleep(50 * 1000);
        log = slurp(e.log);
    }
    cr_assert_not_null(strstr(log, "method=GET path=/v1/keys/"));
    cr_assert_null(strstr(log, "PRIVATE"));
    free(log);
    json_decref(c);
    finish(&e);
}

/* Read until the server closes or 5 s pass (NUL-terminated, malloc'd). */
static char *recv_answer(int fd)
{
    char *out = calloc(1, 65536);
    size_t n = 0;
    cr_assert_not_null(out);
    for (;;) {
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, 5000) <= 0)
            break;
        ssize_t r = recv(fd, out + n, 65535 - n, 0);
        if (r <= 0 || (n += (size_t)r) >= 65535)
            break;
    }
    return out;
}

/* Issue 12 item 3: admin key A sends the headers of POST /v1/keys and holds
 * the body; admin key B revokes A; then A's body arrives. Its headers passed
 * while A was active, but nothing may be created: 401 key_revoked. */
Test(reqsignd, revoked_while_body_held)
{
    struct env e;
    setup_env(&e);
    char *cred = slurp(e.admin);
    struct reqsign_signer *a = signer_from_cred(cred);
    json_t *bc = create_key(&e, a, "{\"label\":\"admin-b\",\"scopes\":[\"keys:admin\"]}");
    struct reqsign_signer *b = signer_of(bc);

    static const char body[] = "{\"label\":\"held\",\"scopes\":[\"keys:admin\"]}";
    struct reqsign_signed sig;
    sign(a, "POST", url_of(&e, "/v1/keys"), body, sizeof(body) - 1, &sig);
    char head[4096];
    int hn = snprintf(head, sizeof(head),
                      "POST /v1/keys HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                      "Content-Type: application/json\r\nContent-Length: %zu\r\n"
                      "Content-Digest: %s\r\nSignature-Input: %s\r\nSignature: %s\r\n"
                      "Connection: close\r\n\r\n",
                      e.d.port, sizeof(body) - 1, sig.content_digest, sig.signature_input,
                      sig.signature);
    cr_assert(hn > 0 && (size_t)hn < sizeof(head));
    int fd = connect_to(&e.d);
    send_all(fd, head, (size_t)hn);
    usleep(300 * 1000); /* the headers are verified and the body awaited */

    json_t *ac = json_loads(cred, 0, NULL);
    char path[128];
    snprintf(path, sizeof(path), "/v1/keys/%s", json_string_value(json_object_get(ac, "keyid")));
    struct resp r = call(b, "DELETE", url_of(&e, path), NULL);
    cr_assert_eq(r.status, 200, "B revokes A: %ld %s", r.status, r.body);
    resp_free(&r);

    send_all(fd, body, sizeof(body) - 1);
    char *out = recv_answer(fd);
    close(fd);
    cr_assert(strncmp(out, "HTTP/1.1 401", 12) == 0, "held body after revocation: %.400s", out);
    cr_assert_not_null(strstr(out, "\"key_revoked\""), "%.400s", out);
    cr_assert_null(strstr(out, "private_key"), "a credential was issued: %.400s", out);

    /* nothing was created: A and B only */
    r = call(b, "GET", url_of(&e, "/v1/keys"), NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_eq(json_array_size(json_object_get(r.json, "keys")), 2, "%s", r.body);
    cr_assert_null(strstr(r.body, "\"held\""), "%s", r.body);
    resp_free(&r);

    free(out);
    json_decref(ac);
    reqsign_signer_free(b);
    json_decref(bc);
    reqsign_signer_free(a);
    free(cred);
    finish(&e);
}

/* Issue 12 item 12: labels with control characters are refused (400
 * invalid_request, a message that says why); other Unicode is kept. */
Test(reqsignd, label_control_characters_refused)
{
    struct env e;
    setup_env(&e);
    struct reqsign_signer *admin = load_admin(&e);
    static const char *const bad[] = {
        "{\"label\":\"\\u001b[2J\\u001b[31mred\"}", /* ESC: a terminal escape */
        "{\"label\":\"bell\\u0007\"}",              /* C0 */
        "{\"label\":\"tab\\there\"}",               /* C0, the column separator */
        "{\"label\":\"line\\nbreak\"}",             /* C0 */
        "{\"label\":\"del\\u007f\"}",               /* DEL */
        "{\"label\":\"csi\\u009b1m\"}",             /* C1 (CSI), as JSON escape */
        "{\"label\":\"nel\xc2\x85\"}",              /* C1 (NEL), raw UTF-8 */
        /* review 12: bidi controls and line/paragraph separators */
        "{\"label\":\"admin\\u202egpj.exe\"}", /* RLO, JSON escape */
        "{\"label\":\"rlo\xe2\x80\xae\"}",     /* RLO, raw UTF-8 */
        "{\"label\":\"ls\\u2028x\"}",          /* LINE SEPARATOR */
        "{\"label\":\"ps\\u2029x\"}",          /* PARAGRAPH SEPARATOR */
        "{\"label\":\"lrm\\u200e\"}",
        "{\"label\":\"rlm\\u200f\"}",
        "{\"label\":\"lre\\u202a\"}",
        "{\"label\":\"pdf\\u202c\"}",
        "{\"label\":\"lri\\u2066\"}",
        "{\"label\":\"pdi\\u2069\"}",
        "{\"label\":\"alm\\u061c\"}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct resp r = call(admin, "POST", url_of(&e, "/v1/keys"), bad[i]);
        cr_assert_eq(r.status, 400, "%s: %ld %s", bad[i], r.status, r.body);
        cr_assert_str_eq(err_name(&r), "invalid_request", "%s", r.body);
        cr_assert_not_null(
            strstr(json_string_value(json_object_get(r.json, "message")), "control characters"),
            "%s", r.body);
        resp_free(&r);
    }
    /* nothing was stored; a label in other scripts and symbols is fine */
    struct resp r = call(admin, "GET", url_of(&e, "/v1/keys"), NULL);
    cr_assert_eq(json_array_size(json_object_get(r.json, "keys")), 1, "%s", r.body);
    resp_free(&r);
    json_t *c = create_key(&e, admin, "{\"label\":\"caf\\u00e9 \\u2713 \\u6771\\u4eac \\u00a0x\"}");
    cr_assert_str_eq(json_string_value(json_object_get(c, "label")),
                     "caf\xc3\xa9 \xe2\x9c\x93 \xe6\x9d\xb1\xe4\xba\xac \xc2\xa0x");
    json_decref(c);
    finish(&e);
}

/* The same with expiry: admin key C expires while its body is held. */
Test(reqsignd, expired_while_body_held)
{
    struct env e;
    setup_env(&e);
    char *cred = slurp(e.admin);
    struct reqsign_signer *a = signer_from_cred(cred);
    time_t exp = time(NULL) + 2;
    struct tm tm;
    gmtime_r(&exp, &tm);
    char ts[32], cbody[256];
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
    snprintf(cbody, sizeof(cbody), "{\"scopes\":[\"keys:admin\"],\"expires_at\":\"%s\"}", ts);
    json_t *cc = create_key(&e, a, cbody);
    struct reqsign_signer *c = signer_of(cc);

    static const char body[] = "{\"label\":\"held-exp\",\"scopes\":[\"keys:admin\"]}";
    struct reqsign_signed sig;
    sign(c, "POST", url_of(&e, "/v1/keys"), body, sizeof(body) - 1, &sig);
    char head[4096];
    int hn = snprintf(head, sizeof(head),
                      "POST /v1/keys HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                      "Content-Type: application/json\r\nContent-Length: %zu\r\n"
                      "Content-Digest: %s\r\nSignature-Input: %s\r\nSignature: %s\r\n"
                      "Connection: close\r\n\r\n",
                      e.d.port, sizeof(body) - 1, sig.content_digest, sig.signature_input,
                      sig.signature);
    cr_assert(hn > 0 && (size_t)hn < sizeof(head));
    int fd = connect_to(&e.d);
    send_all(fd, head, (size_t)hn);
    while (time(NULL) <= exp) /* the headers pass while C is active; then it expires */
        usleep(100 * 1000);
    send_all(fd, body, sizeof(body) - 1);
    char *out = recv_answer(fd);
    close(fd);
    cr_assert(strncmp(out, "HTTP/1.1 401", 12) == 0, "held body after expiry: %.400s", out);
    cr_assert_not_null(strstr(out, "\"key_expired\""), "%.400s", out);

    struct resp r = call(a, "GET", url_of(&e, "/v1/keys"), NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_null(strstr(r.body, "\"held-exp\""), "%s", r.body);
    resp_free(&r);

    free(out);
    reqsign_signer_free(c);
    json_decref(cc);
    reqsign_signer_free(a);
    free(cred);
    finish(&e);
}

/* The revoke path: A's DELETE of key K (with a body, held) after A was revoked. */
Test(reqsignd, revoked_while_delete_body_held)
{
    struct env e;
    setup_env(&e);
    char *cred = slurp(e.admin);
    struct reqsign_signer *a = signer_from_cred(cred);
    json_t *bc = create_key(&e, a, "{\"label\":\"admin-b\",\"scopes\":[\"keys:admin\"]}");
    struct reqsign_signer *b = signer_of(bc);
    json_t *kc = create_key(&e, a, "{\"label\":\"victim\"}");
    char kpath[128];
    snprintf(kpath, sizeof(kpath), "/v1/keys/%s", json_string_value(json_object_get(kc, "keyid")));

    static const char body[] = "{}";
    struct reqsign_signed sig;
    sign(a, "DELETE", url_of(&e, kpath), body, sizeof(body) - 1, &sig);
    char head[4096];
    int hn = snprintf(head, sizeof(head),
                      "DELETE %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Length: %zu\r\n"
                      "Content-Digest: %s\r\nSignature-Input: %s\r\nSignature: %s\r\n"
                      "Connection: close\r\n\r\n",
                      kpath, e.d.port, sizeof(body) - 1, sig.content_digest, sig.signature_input,
                      sig.signature);
    cr_assert(hn > 0 && (size_t)hn < sizeof(head));
    int fd = connect_to(&e.d);
    send_all(fd, head, (size_t)hn);
    usleep(300 * 1000);

    json_t *ac = json_loads(cred, 0, NULL);
    char apath[128];
    snprintf(apath, sizeof(apath), "/v1/keys/%s", json_string_value(json_object_get(ac, "keyid")));
    struct resp r = call(b, "DELETE", url_of(&e, apath), NULL);
    cr_assert_eq(r.status, 200, "B revokes A: %ld %s", r.status, r.body);
    resp_free(&r);

    send_all(fd, body, sizeof(body) - 1);
    char *out = recv_answer(fd);
    close(fd);
    cr_assert(strncmp(out, "HTTP/1.1 401", 12) == 0, "held DELETE after revocation: %.400s", out);
    cr_assert_not_null(strstr(out, "\"key_revoked\""), "%.400s", out);
    r = call(b, "GET", url_of(&e, kpath), NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(json_string_value(json_object_get(r.json, "status")), "active", "%s", r.body);
    resp_free(&r);

    free(out);
    json_decref(ac);
    json_decref(kc);
    reqsign_signer_free(b);
    json_decref(bc);
    reqsign_signer_free(a);
    free(cred);
    finish(&e);
}

/* GET the directory with @accept (NULL: no Accept header). */
static struct resp get_directory(const struct env *e, const char *accept)
{
    char line[200];
    const char *extra[2] = {NULL, NULL};
    if (accept != NULL) {
        snprintf(line, sizeof(line), "Accept: %s", accept);
        extra[0] = line;
    }
    struct resp r = send_req("GET", url_of(e, "/.well-known/http-message-signatures-directory"),
                             NULL, 0, NULL, extra);
    cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
    return r;
}

/* 1 if the directory @r lists @kid. */
static int lists(const struct resp *r, const char *kid)
{
    json_t *keys = json_object_get(r->json, "keys");
    for (size_t i = 0; i < json_array_size(keys); i++)
        if (strcmp(json_string_value(json_object_get(json_array_get(keys, i), "kid")), kid) == 0)
            return 1;
    return 0;
}

/* The public directory (issue 16): only keys marked "publish" or of an
 * account with "publish_keys", never a keys:admin key, never a disabled or
 * revoked one; RFC 8037 JWKs; the IETF media type by default, a plain JWKS
 * when asked; max-age capped at the key cache TTL. */
Test(reqsignd, directory_publishes_only_marked_keys)
{
    struct env e;
    memset(&e, 0, sizeof(e));
    e.dir = tu_tmpdir();
    snprintf(e.db, sizeof(e.db), "%s/keys.db", e.dir);
    snprintf(e.admin, sizeof(e.admin), "%s/admin.json", e.dir);
    snprintf(e.log, sizeof(e.log), "%s/reqsignd.log", e.dir);
    run_init(&e);
    start(&e, "2");
    char *cred = slurp(e.admin);
    struct reqsign_signer *admin = signer_from_cred(cred);
    json_t *aj = json_loads(cred, 0, NULL);
    const char *admin_kid = json_string_value(json_object_get(aj, "keyid"));

    json_t *plain = create_key(&e, admin, "{\"label\":\"p\",\"scopes\":[\"a:b\"]}");
    json_t *pub = create_key(&e, admin, "{\"label\":\"q\",\"scopes\":[\"a:b\"],\"publish\":true}");
    cr_assert(json_is_true(json_object_get(pub, "publish")));
    cr_assert(json_is_false(json_object_get(plain, "publish")));
    json_t *adm2 = create_key(&e, admin, "{\"scopes\":[\"keys:admin\"],\"publish\":true}");
    const char *plain_kid = json_string_value(json_object_get(plain, "keyid"));
    const char *pub_kid = json_string_value(json_object_get(pub, "keyid"));
    const char *adm2_kid = json_string_value(json_object_get(adm2, "keyid"));
    /* an account whose every key is published */
    struct resp r = call(admin, "POST", url_of(&e, "/v1/accounts"),
                         "{\"name\":\"pubco\",\"allowed_scopes\":[\"a:b\"],\"publish_keys\":true}");
    cr_assert_eq(r.status, 201, "%ld %s", r.status, r.body);
    cr_assert(json_is_true(json_object_get(json_object_get(r.json, "account"), "publish_keys")));
    char body[200];
    snprintf(body, sizeof(body), "{\"account\":\"%s\",\"scopes\":[\"a:b\"]}",
             json_string_value(json_object_get(json_object_get(r.json, "account"), "id")));
    resp_free(&r);
    json_t *acct_key = create_key(&e, admin, body);
    const char *acct_kid = json_string_value(json_object_get(acct_key, "keyid"));
    r = call(admin, "POST", url_of(&e, "/v1/keys"), "{\"publish\":\"yes\"}");
    cr_assert_eq(r.status, 400, "%ld %s", r.status, r.body);
    resp_free(&r);

    r = get_directory(&e, NULL);
    cr_assert_str_eq(resp_header(&r, "Content-Type"),
                     "application/http-message-signatures-directory+json");
    cr_assert_str_eq(resp_header(&r, "Cache-Control"), "max-age=2", "the key cache TTL");
    cr_assert_not_null(resp_header(&r, "Vary"));
    cr_assert(lists(&r, pub_kid) && lists(&r, acct_kid), "%s", r.body);
    cr_assert(!lists(&r, plain_kid), "a key not marked is listed: %s", r.body);
    cr_assert(!lists(&r, admin_kid) && !lists(&r, adm2_kid), "an admin key is listed: %s", r.body);
    cr_assert_eq(json_array_size(json_object_get(r.json, "keys")), 2, "%s", r.body);
    json_t *k = json_array_get(json_object_get(r.json, "keys"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(k, "kty")), "OKP");
    cr_assert_str_eq(json_string_value(json_object_get(k, "crv")), "Ed25519");
    cr_assert_str_eq(json_string_value(json_object_get(k, "alg")), "EdDSA");
    cr_assert_str_eq(json_string_value(json_object_get(k, "use")), "sig");
    cr_assert_not_null(json_string_value(json_object_get(k, "x")));
    resp_free(&r);

    /* content negotiation: a plain JWKS when the client asks for one */
    static const char *const ask[][2] = {
        {"application/json", "application/json"},
        {"application/jwk-set+json", "application/jwk-set+json"},
        {"application/json;q=0.5, application/http-message-signatures-directory+json",
         "application/http-message-signatures-directory+json"},
        {"*/*", "application/http-message-signatures-directory+json"},
        {"application/*;q=0.9, application/json", "application/json"},
        {"text/html", "application/http-message-signatures-directory+json"},
    };
    for (size_t i = 0; i < sizeof(ask) / sizeof(ask[0]); i++) {
        r = get_directory(&e, ask[i][0]);
        cr_assert_str_eq(resp_header(&r, "Content-Type"), ask[i][1], "Accept: %s", ask[i][0]);
        cr_assert_eq(json_array_size(json_object_get(r.json, "keys")), 2, "%s", r.body);
        resp_free(&r);
    }

    /* disabled, then revoked: gone from the directory */
    char path[200];
    snprintf(path, sizeof(path), "/v1/keys/%s/disable", pub_kid);
    r = call(admin, "POST", url_of(&e, path), "{}");
    cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
    resp_free(&r);
    r = get_directory(&e, NULL);
    cr_assert(!lists(&r, pub_kid) && lists(&r, acct_kid), "%s", r.body);
    resp_free(&r);
    snprintf(path, sizeof(path), "/v1/keys/%s", acct_kid);
    r = call(admin, "DELETE", url_of(&e, path), NULL);
    cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
    resp_free(&r);
    r = get_directory(&e, "application/json");
    cr_assert_eq(json_array_size(json_object_get(r.json, "keys")), 0, "%s", r.body);
    resp_free(&r);

    json_decref(acct_key);
    json_decref(adm2);
    json_decref(pub);
    json_decref(plain);
    json_decref(aj);
    reqsign_signer_free(admin);
    free(cred);
    finish(&e);
}
