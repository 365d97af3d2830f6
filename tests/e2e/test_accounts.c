/* e2e-accounts: accounts and self-service key lifecycle (issue 13) against a
 * real reqsignd (and api-backend) over loopback: enrollment with a key of the
 * client's own and with a generated one, tokens used twice / expired /
 * unknown / of a disabled account, scope rules, key_limit, max lifetime,
 * disable / enable, rotation with grace, revoke by possession, the tenant
 * isolation matrix, and the audit log. */
#include <criterion/criterion.h>

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <reqsign/base64.h>
#include <reqsign/key.h>
#include <reqsign/keystore.h>
#include <reqsign/keystore_sqlite.h>
#include <reqsign/signer.h>

#include "e2eutil.h"
#include "testutil.h"

TestSuite(accounts, .timeout = 180);

/* reqsignd with a 1 s key cache and --enrollment-ttl @enroll_ttl (NULL: 86400). */
static void setup(struct env *e, const char *enroll_ttl)
{
    init_env(e);
    start_reqsignd(
        e, "1",
        (const char *const[]){"--enrollment-ttl", enroll_ttl != NULL ? enroll_ttl : "86400", NULL});
}

static const char *jstr(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* POST /v1/accounts as @admin; *@token gets the enrollment token (malloc'd). */
static char *make_account(struct env *e, struct reqsign_signer *admin, const char *body,
                          char **token)
{
    struct resp r = call(admin, "POST", url_of(e, "/v1/accounts"), body);
    cr_assert_eq(r.status, 201, "%ld %s", r.status, r.body);
    json_t *acct = json_object_get(r.json, "account");
    const char *id = jstr(acct, "id");
    cr_assert_not_null(id);
    cr_assert_eq(strlen(id), 27, "acct_ + 22: %s", id);
    cr_assert_eq(strncmp(id, "acct_", 5), 0);
    json_t *en = json_object_get(r.json, "enrollment");
    cr_assert_eq(strlen(jstr(en, "token")), 43, "32 bytes in base64url");
    cr_assert_not_null(jstr(en, "expires_at"));
    char *out = strdup(id);
    *token = strdup(jstr(en, "token"));
    resp_free(&r);
    return out;
}

static char *new_token(struct env *e, struct reqsign_signer *s, const char *acct)
{
    char path[128];
    snprintf(path, sizeof(path), "/v1/accounts/%s/enrollments", acct);
    struct resp r = call(s, "POST", url_of(e, path), "{}");
    cr_assert_eq(r.status, 201, "%ld %s", r.status, r.body);
    char *t = strdup(jstr(r.json, "token"));
    resp_free(&r);
    return t;
}

/* Unsigned enrollment: the service generates the key. */
static struct resp enroll_generated(struct env *e, const char *token)
{
    char body[256];
    snprintf(body, sizeof(body), "{\"token\":\"%s\",\"label\":\"gen\"}", token);
    static const char *const ct[] = {"Content-Type: application/json", NULL};
    return send_req("POST", url_of(e, "/v1/enroll"), body, strlen(body), NULL, ct);
}

/* A key made here, and its signer. */
struct own_key {
    struct reqsign_key *key;
    struct reqsign_signer *signer;
    char pub_pem[512];
    char priv_pem[512];
};

static void own_key_new(struct own_key *k)
{
    struct reqsign_error err;
    size_t n;
    memset(k, 0, sizeof(*k));
    cr_assert_not_null(k->key = reqsign_key_generate(&err));
    cr_assert_eq(reqsign_key_public_pem(k->key, k->pub_pem, sizeof(k->pub_pem), &n), REQSIGN_OK);
    cr_assert_eq(reqsign_key_private_pem(k->key, k->priv_pem, sizeof(k->priv_pem), &n), REQSIGN_OK);
    struct reqsign_signer_opts o;
    memset(&o, 0, sizeof(o));
    o.key_data = k->priv_pem;
    o.key_len = strlen(k->priv_pem);
    k->signer = reqsign_signer_new(&o, &err);
    cr_assert_not_null(k->signer, "%s", err.message);
}

static void own_key_free(struct own_key *k)
{
    reqsign_signer_free(k->signer);
    reqsign_key_free(k->key);
    reqsign_memzero(k->priv_pem, sizeof(k->priv_pem));
}

/* BYO enrollment signed by @signer, registering @pub_pem. */
static struct resp enroll_byo(struct env *e, const struct reqsign_signer *signer, const char *token,
                              const char *pub_pem)
{
    json_t *b =
        json_pack("{s:s, s:s, s:s}", "token", token, "label", "laptop", "public_key", pub_pem);
    char *body = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    struct resp r = call(signer, "POST", url_of(e, "/v1/enroll"), body);
    free(body);
    return r;
}

Test(accounts, enroll_byo_and_generated_tokens_single_use)
{
    struct env e;
    setup(&e, NULL);
    struct reqsign_signer *admin = load_admin(&e);
    char *tok = NULL;
    char *acct = make_account(
        &e, admin, "{\"name\":\"Customer A\",\"allowed_scopes\":[\"payments:write\"]}", &tok);

    /* BYO: the request is signed by the key it registers; nothing private is sent */
    struct own_key k;
    own_key_new(&k);
    struct resp r = enroll_byo(&e, k.signer, tok, k.pub_pem);
    cr_assert_eq(r.status, 201, "%ld %s", r.status, r.body);
    cr_assert_null(json_object_get(r.json, "private_key"));
    cr_assert_str_eq(jstr(r.json, "account"), acct);
    cr_assert_str_eq(jstr(r.json, "status"), "active");
    cr_assert_str_eq(jstr(r.json, "label"), "laptop");
    json_t *sc = json_object_get(r.json, "scopes");
    cr_assert_eq(json_array_size(sc), 2);
    cr_assert_str_eq(json_string_value(json_array_get(sc, 0)), "keys:self");
    cr_assert_str_eq(json_string_value(json_array_get(sc, 1)), "payments:write");
    char kid[64];
    cr_assert_eq(reqsign_key_thumbprint(k.key, kid), REQSIGN_OK);
    cr_assert_str_eq(jstr(r.json, "keyid"), kid);
    for (const char *f = "keyid account status scopes label created_at expires_at revoked_at "
                         "disabled_at replaces replaced_by last_used_at last_used_by";
         *f;) {
        char name[32];
        size_t l = strcspn(f, " ");
        snprintf(name, sizeof(name), "%.*s", (int)l, f);
        cr_assert_not_null(json_object_get(r.json, name), "record member %s", name);
        f += l + (f[l] == ' ');
    }
    resp_free(&r);

    /* the enrolled key works, and sees its own account only */
    r = call(k.signer, "GET", url_of(&e, "/v1/keys"), NULL);
    cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
    cr_assert_eq(json_array_size(json_object_get(r.json, "keys")), 1);
    resp_free(&r);

    /* the same token again: 401 enrollment_invalid */
    struct own_key k2;
    own_key_new(&k2);
    r = enroll_byo(&e, k2.signer, tok, k2.pub_pem);
    cr_assert_eq(r.status, 401, "%ld %s", r.status, r.body);
    cr_assert_str_eq(err_name(&r), "enrollment_invalid");
    resp_free(&r);
    /* unknown token: the same answer */
    r = enroll_generated(&e, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    cr_assert_eq(r.status, 401);
    cr_assert_str_eq(err_name(&r), "enrollment_invalid");
    resp_free(&r);

    /* proof of possession: signed by another key than the one registered */
    char *tok2 = new_token(&e, admin, acct);
    r = enroll_byo(&e, k2.signer, tok2, k.pub_pem);
    cr_assert_eq(r.status, 401, "%ld %s", r.status, r.body);
    resp_free(&r);
    /* unsigned with a public_key: refused too */
    {
        json_t *b = json_pack("{s:s, s:s}", "token", tok2, "public_key", k2.pub_pem);
        char *body = json_dumps(b, JSON_COMPACT);
        static const char *const ct[] = {"Content-Type: application/json", NULL};
        r = send_req("POST", url_of(&e, "/v1/enroll"), body, strlen(body), NULL, ct);
        cr_assert_eq(r.status, 401, "%ld %s", r.status, r.body);
        resp_free(&r);
        free(body);
        json_decref(b);
    }
    /* the failed attempts did not use the token up: k2 enrolls with it */
    r = enroll_byo(&e, k2.signer, tok2, k2.pub_pem);
    cr_assert_eq(r.status, 201, "%ld %s", r.status, r.body);
    resp_free(&r);

    /* generated: unsigned, the credential comes back once; a keys:self key
     * may ask for a token of its own account */
    char *tok3 = new_token(&e, k.signer, acct);
    r = enroll_generated(&e, tok3);
    cr_assert_eq(r.status, 201, "%ld %s", r.status, r.body);
    cr_assert_not_null(strstr(jstr(r.json, "private_key"), "BEGIN PRIVATE KEY"));
    cr_assert_str_eq(jstr(r.json, "account"), acct);
    struct reqsign_signer *gen = signer_of(r.json);
    resp_free(&r);
    r = call(gen, "GET", url_of(&e, "/v1/keys"), NULL);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(json_array_size(json_object_get(r.json, "keys")), 3);
    resp_free(&r);

    /* a disabled account's token is refused */
    char *tok4 = new_token(&e, admin, acct);
    char path[128];
    snprintf(path, sizeof(path), "/v1/accounts/%s/disable", acct);
    r = call(admin, "POST", url_of(&e, path), "{}");
    cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
    cr_assert_str_eq(jstr(r.json, "status"), "disabled");
    resp_free(&r);
    r = enroll_generated(&e, tok4);
    cr_assert_eq(r.status, 401);
    cr_assert_str_eq(err_name(&r), "enrollment_invalid");
    resp_free(&r);
    /* and its keys get account_disabled (reqsignd invalidated its own cache) */
    r = call(k.signer, "GET", url_of(&e, "/v1/keys"), NULL);
    cr_assert_eq(r.status, 401, "%ld %s", r.status, r.body);
    cr_assert_str_eq(err_name(&r), "account_disabled");
    resp_free(&r);
    snprintf(path, sizeof(path), "/v1/accounts/%s/enable", acct);
    r = call(admin, "POST", url_of(&e, path), "{}");
    cr_assert_eq(r.status, 200);
    resp_free(&r);
    r = call(k.signer, "GET", url_of(&e, "/v1/keys"), NULL);
    cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
    resp_free(&r);

    /* nothing private and no token in the database */
    uint8_t seed[32];
    char b64[256];
    pem_seed(k.priv_pem, seed, b64, sizeof(b64));
    char wal[600];
    snprintf(wal, sizeof(wal), "%s-wal", e.db);
    cr_assert(!file_holds(e.db, seed, 32) && !file_holds(wal, seed, 32),
              "the database holds the BYO private key");
    cr_assert(!file_holds(e.db, tok, strlen(tok)) && !file_holds(wal, tok, strlen(tok)),
              "the database holds a token");

    reqsign_signer_free(gen);
    own_key_free(&k);
    own_key_free(&k2);
    free(tok);
    free(tok2);
    free(tok3);
    free(tok4);
    free(acct);
    finish(&e);
}

Test(accounts, expired_token_refused)
{
    struct env e;
    setup(&e, "1");
    struct reqsign_signer *admin = load_admin(&e);
    char *tok = NULL;
    char *acct = make_account(&e, admin, "{\"name\":\"B\"}", &tok);
    sleep(2);
    struct resp r = enroll_generated(&e, tok);
    cr_assert_eq(r.status, 401, "%ld %s", r.status, r.body);
    cr_assert_str_eq(err_name(&r), "enrollment_invalid");
    resp_free(&r);
    free(tok);
    free(acct);
    finish(&e);
}

/* An account with @body and a generated keys:self key of it (via enrollment). */
static struct reqsign_signer *account_key(struct env *e, struct reqsign_signer *admin,
                                          const char *body, char **acct, char **keyid)
{
    char *tok = NULL;
    *acct = make_account(e, admin, body, &tok);
    struct resp r = enroll_generated(e, tok);
    cr_assert_eq(r.status, 201, "%ld %s", r.status, r.body);
    struct reqsign_signer *s = signer_of(r.json);
    *keyid = strdup(jstr(r.json, "keyid"));
    resp_free(&r);
    free(tok);
    return s;
}

/* Wait until @s gets @status (with error @name if not NULL) from @url, at most @secs. */
static int wait_status(struct reqsign_signer *s, const char *url, long status, const char *name,
                       int secs)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        struct resp r = call(s, "GET", url, NULL);
        int ok = r.status == status && (name == NULL || strcmp(err_name(&r), name) == 0);
        resp_free(&r);
        if (ok)
            return 1;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if (t1.tv_sec - t0.tv_sec > secs)
            return 0;
        usleep(100 * 1000);
    }
}

Test(accounts, self_service_scopes_limit_lifetime)
{
    struct env e;
    setup(&e, NULL);
    struct reqsign_signer *admin = load_admin(&e);
    char *a = NULL, *akid = NULL;
    struct reqsign_signer *sa =
        account_key(&e, admin,
                    "{\"name\":\"A\",\"allowed_scopes\":[\"payments:write\",\"orders:read\"],"
                    "\"key_limit\":3,\"max_key_lifetime_s\":3600}",
                    &a, &akid);

    /* within scope: its account, expiry capped by the account's lifetime */
    struct resp r = call(sa, "POST", url_of(&e, "/v1/keys"),
                         "{\"label\":\"w\",\"scopes\":[\"payments:write\"]}");
    cr_assert_eq(r.status, 201, "%ld %s", r.status, r.body);
    cr_assert_str_eq(jstr(r.json, "account"), a);
    cr_assert_not_null(jstr(r.json, "expires_at"), "max_key_lifetime_s gives an expiry");
    resp_free(&r);
    /* orders:read is allowed in the account but not held by the signing key?
     * The enrolled key holds keys:self + all allowed scopes: it may give it. */
    r = call(sa, "POST", url_of(&e, "/v1/keys"), "{\"scopes\":[\"refunds:write\"]}");
    cr_assert_eq(r.status, 403, "not allowed in the account: %ld %s", r.status, r.body);
    cr_assert_str_eq(err_name(&r), "scope");
    resp_free(&r);
    r = call(sa, "POST", url_of(&e, "/v1/keys"), "{\"scopes\":[\"keys:admin\"]}");
    cr_assert_eq(r.status, 403, "no escalation to keys:admin: %ld %s", r.status, r.body);
    resp_free(&r);
    /* longer than the account's max lifetime */
    char body[160];
    time_t far = time(NULL) + 7200;
    struct tm tm;
    gmtime_r(&far, &tm);
    char ts[32];
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
    snprintf(body, sizeof(body), "{\"scopes\":[],\"expires_at\":\"%s\"}", ts);
    r = call(sa, "POST", url_of(&e, "/v1/keys"), body);
    cr_assert_eq(r.status, 400, "%ld %s", r.status, r.body);
    cr_assert_str_eq(err_name(&r), "invalid_request");
    resp_free(&r);

    /* a key without keys:self (payments:write only) cannot create keys */
    r = call(sa, "POST", url_of(&e, "/v1/keys"), "{\"scopes\":[\"orders:read\"]}");
    cr_assert_eq(r.status, 201, "%ld %s", r.status, r.body);
    struct reqsign_signer *plain = signer_of(r.json);
    resp_free(&r);
    r = call(plain, "POST", url_of(&e, "/v1/keys"), "{\"scopes\":[\"orders:read\"]}");
    cr_assert_eq(r.status, 403, "%ld %s", r.status, r.body);
    resp_free(&r);

    /* key_limit 3: the enrolled key + 2 made above; the next is refused */
    r = call(sa, "POST", url_of(&e, "/v1/keys"), "{\"scopes\":[]}");
    cr_assert_eq(r.status, 409, "%ld %s", r.status, r.body);
    cr_assert_str_eq(err_name(&r), "key_limit");
    resp_free(&r);
    char *tok = new_token(&e, admin, a);
    r = enroll_generated(&e, tok);
    cr_assert_eq(r.status, 409, "enrollment past the limit: %ld %s", r.status, r.body);
    cr_assert_str_eq(err_name(&r), "key_limit");
    resp_free(&r);

    /* the admin may name the account; a keys:self key may not name another */
    char *b = NULL, *bkid = NULL;
    struct reqsign_signer *sb = account_key(&e, admin, "{\"name\":\"B\"}", &b, &bkid);
    snprintf(body, sizeof(body), "{\"scopes\":[],\"account\":\"%s\"}", b);
    r = call(admin, "POST", url_of(&e, "/v1/keys"), body);
    cr_assert_eq(r.status, 201, "%ld %s", r.status, r.body);
    cr_assert_str_eq(jstr(r.json, "account"), b);
    resp_free(&r);
    snprintf(body, sizeof(body), "{\"scopes\":[],\"account\":\"%s\"}", a);
    r = call(sb, "POST", url_of(&e, "/v1/keys"), body);
    cr_assert_eq(r.status, 404, "%ld %s", r.status, r.body);
    cr_assert_str_eq(err_name(&r), "not_found");
    resp_free(&r);

    reqsign_signer_free(plain);
    reqsign_signer_free(sa);
    reqsign_signer_free(sb);
    free(tok);
    free(a);
    free(akid);
    free(b);
    free(bkid);
    finish(&e);
}

/* Every route x method with account A's key against account B's objects:
 * 404 not_found, and nothing changes. */
Test(accounts, isolation_matrix)
{
    struct env e;
    setup(&e, NULL);
    char *cred = slurp(e.admin);
    struct reqsign_signer *admin = signer_from_cred(cred);
    char *a = NULL, *akid = NULL, *b = NULL, *bkid = NULL;
    struct reqsign_signer *sa = account_key(&e, admin, "{\"name\":\"A\"}", &a, &akid);
    struct reqsign_signer *sb = account_key(&e, admin, "{\"name\":\"B\"}", &b, &bkid);
    char adminkid[64];
    {
        json_t *j = json_loads(cred, 0, NULL);
        snprintf(adminkid, sizeof(adminkid), "%s", jstr(j, "keyid"));
        json_decref(j);
    }
    struct {
        const char *method, *fmt, *body;
    } routes[] = {
        {"GET", "/v1/keys/%s", NULL},
        {"DELETE", "/v1/keys/%s", "{\"reason\":\"compromised\"}"},
        {"DELETE", "/v1/keys/%s", NULL},
        {"POST", "/v1/keys/%s/disable", "{}"},
        {"POST", "/v1/keys/%s/enable", "{}"},
        {"POST", "/v1/keys/%s/rotate", "{}"},
        {"GET", "/v1/accounts/%s", NULL},
        {"POST", "/v1/accounts/%s/disable", "{}"},
        {"POST", "/v1/accounts/%s/enable", "{}"},
        {"POST", "/v1/accounts/%s/enrollments", "{}"},
    };
    const char *targets[][2] = {{bkid, b}, {adminkid, "acct_operator"}};
    for (size_t t = 0; t < 2; t++)
        for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
            char path[256];
            int acct_route = strstr(routes[i].fmt, "accounts") != NULL;
            snprintf(path, sizeof(path), routes[i].fmt, acct_route ? targets[t][1] : targets[t][0]);
            struct resp r = call(sa, routes[i].method, url_of(&e, path), routes[i].body);
            cr_assert_eq(r.status, 404, "%s %s: %ld %s", routes[i].method, path, r.status, r.body);
            cr_assert_str_eq(err_name(&r), "not_found");
            resp_free(&r);
        }
    /* an id that does not exist at all gets the very same answer */
    struct resp r = call(sa, "GET", url_of(&e, "/v1/keys/nonexistent"), NULL);
    cr_assert_eq(r.status, 404);
    resp_free(&r);
    /* lists show A's own objects only */
    r = call(sa, "GET", url_of(&e, "/v1/keys?limit=1000"), NULL);
    cr_assert_eq(r.status, 200);
    json_t *keys = json_object_get(r.json, "keys");
    cr_assert_eq(json_array_size(keys), 1);
    cr_assert_str_eq(jstr(json_array_get(keys, 0), "keyid"), akid);
    resp_free(&r);
    char q[160];
    snprintf(q, sizeof(q), "/v1/keys?account=%s", b);
    r = call(sa, "GET", url_of(&e, q), NULL);
    cr_assert_eq(json_array_size(json_object_get(r.json, "keys")), 1, "?account= is ignored");
    cr_assert_str_eq(jstr(json_array_get(json_object_get(r.json, "keys"), 0), "keyid"), akid);
    resp_free(&r);
    r = call(sa, "GET", url_of(&e, "/v1/accounts"), NULL);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(json_array_size(json_object_get(r.json, "accounts")), 1);
    resp_free(&r);
    r = call(sa, "POST", url_of(&e, "/v1/accounts"), "{\"name\":\"C\"}");
    cr_assert_eq(r.status, 403);
    resp_free(&r);

    /* nothing changed: B's key and account, the admin key */
    snprintf(q, sizeof(q), "/v1/keys/%s", bkid);
    r = call(admin, "GET", url_of(&e, q), NULL);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(jstr(r.json, "status"), "active");
    cr_assert(json_is_null(json_object_get(r.json, "replaced_by")));
    resp_free(&r);
    r = call(sb, "GET", url_of(&e, "/v1/keys"), NULL);
    cr_assert_eq(r.status, 200, "B's key still works: %ld %s", r.status, r.body);
    cr_assert_eq(json_array_size(json_object_get(r.json, "keys")), 1, "no key was added to B");
    resp_free(&r);
    snprintf(q, sizeof(q), "/v1/accounts/%s", b);
    r = call(admin, "GET", url_of(&e, q), NULL);
    cr_assert_str_eq(jstr(r.json, "status"), "active");
    resp_free(&r);
    r = call(admin, "GET", url_of(&e, "/v1/keys"), NULL);
    cr_assert_eq(r.status, 200);
    resp_free(&r);
    /* A's audit view: its own events, not B's */
    r = call(sa, "GET", url_of(&e, "/v1/audit?limit=1000"), NULL);
    cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
    /* (A's own refused attempts name the ids A itself sent: no oracle, all not_found) */
    json_t *evs = json_object_get(r.json, "events");
    cr_assert_gt(json_array_size(evs), 0);
    for (size_t i = 0; i < json_array_size(evs); i++) {
        json_t *x = json_array_get(evs, i);
        cr_assert(jstr(x, "actor") == NULL || strcmp(jstr(x, "actor"), bkid) != 0,
                  "A's audit log shows B's event: %s", r.body);
        cr_assert(jstr(x, "account") == NULL || strcmp(jstr(x, "account"), b) != 0);
        if (jstr(x, "target") != NULL && strcmp(jstr(x, "target"), bkid) == 0)
            cr_assert_str_eq(jstr(x, "outcome"), "not_found");
    }
    cr_assert_not_null(strstr(r.body, "not_found"));
    resp_free(&r);

    reqsign_signer_free(sa);
    reqsign_signer_free(sb);
    free(a);
    free(akid);
    free(b);
    free(bkid);
    reqsign_signer_free(admin);
    free(cred);
    finish(&e);
}

Test(accounts, disable_enable_rotate_revoke_and_audit)
{
    struct env e;
    setup(&e, NULL);
    start_backend(&e, NULL); /* --cache-ttl 1 */
    struct reqsign_signer *admin = load_admin(&e);
    char *a = NULL, *akid = NULL;
    char *tok = NULL;
    a = make_account(&e, admin, "{\"name\":\"A\",\"allowed_scopes\":[\"payments:write\"]}", &tok);
    struct resp r = enroll_generated(&e, tok);
    cr_assert_eq(r.status, 201);
    struct reqsign_signer *sa = signer_of(r.json);
    akid = strdup(jstr(r.json, "keyid"));
    char *priv = strdup(jstr(r.json, "private_key"));
    resp_free(&r);

    /* a second key of A, used against the api-backend */
    r = call(sa, "POST", url_of(&e, "/v1/keys"),
             "{\"label\":\"srv\",\"scopes\":[\"payments:write\"]}");
    cr_assert_eq(r.status, 201);
    struct reqsign_signer *srv = signer_of(r.json);
    char *srvkid = strdup(jstr(r.json, "keyid"));
    resp_free(&r);
    cr_assert(wait_status(srv, burl(&e, "/r"), 200, NULL, 3));

    /* disable -> 401 key_disabled at the backend within the bound -> enable -> 200 */
    char path[256];
    snprintf(path, sizeof(path), "/v1/keys/%s/disable", srvkid);
    r = call(sa, "POST", url_of(&e, path), "{}");
    cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
    cr_assert_str_eq(jstr(r.json, "status"), "disabled");
    cr_assert_not_null(jstr(r.json, "disabled_at"));
    resp_free(&r);
    cr_assert(wait_status(srv, burl(&e, "/r"), 401, "key_disabled", 1 + 2),
              "disabled key still accepted after the cache TTL + 2 s");
    snprintf(path, sizeof(path), "/v1/keys/%s/enable", srvkid);
    r = call(sa, "POST", url_of(&e, path), "{}");
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(jstr(r.json, "status"), "active");
    resp_free(&r);
    cr_assert(wait_status(srv, burl(&e, "/r"), 200, NULL, 1 + 2));

    /* rotation with a 2 s grace: the successor, both records linked */
    snprintf(path, sizeof(path), "/v1/keys/%s/rotate", srvkid);
    r = call(sa, "POST", url_of(&e, path), "{\"grace_s\":2}");
    cr_assert_eq(r.status, 201, "%ld %s", r.status, r.body);
    cr_assert_str_eq(jstr(r.json, "replaces"), srvkid);
    cr_assert_str_eq(jstr(r.json, "label"), "srv");
    cr_assert_str_eq(jstr(r.json, "account"), a);
    cr_assert_not_null(jstr(r.json, "private_key"));
    struct reqsign_signer *srv2 = signer_of(r.json);
    char *srv2kid = strdup(jstr(r.json, "keyid"));
    resp_free(&r);
    snprintf(path, sizeof(path), "/v1/keys/%s", srvkid);
    r = call(sa, "GET", url_of(&e, path), NULL);
    cr_assert_str_eq(jstr(r.json, "replaced_by"), srv2kid);
    cr_assert_not_null(jstr(r.json, "expires_at"));
    resp_free(&r);
    r = call(srv, "GET", burl(&e, "/r"), NULL);
    cr_assert_eq(r.status, 200, "the old key works during the grace period");
    resp_free(&r);
    cr_assert(wait_status(srv2, burl(&e, "/r"), 200, NULL, 3));
    cr_assert(wait_status(srv, burl(&e, "/r"), 401, "key_expired", 2 + 2),
              "the old key is refused after the grace");

    /* revoke by possession: a key with no scope at all revokes itself */
    r = call(admin, "POST", url_of(&e, "/v1/keys"), "{\"scopes\":[]}");
    cr_assert_eq(r.status, 201);
    struct reqsign_signer *leaked = signer_of(r.json);
    char *leakedkid = strdup(jstr(r.json, "keyid"));
    resp_free(&r);
    snprintf(path, sizeof(path), "/v1/keys/%s", srv2kid);
    r = call(leaked, "DELETE", url_of(&e, path), NULL);
    cr_assert_eq(r.status, 403, "not someone else's key: %ld %s", r.status, r.body);
    resp_free(&r);
    snprintf(path, sizeof(path), "/v1/keys/%s", leakedkid);
    r = call(leaked, "DELETE", url_of(&e, path), "{\"reason\":\"compromised\"}");
    cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
    cr_assert_str_eq(jstr(r.json, "status"), "revoked");
    cr_assert_str_eq(jstr(r.json, "revocation_reason"), "compromised");
    resp_free(&r);
    r = call(leaked, "GET", url_of(&e, path), NULL);
    cr_assert_eq(r.status, 401);
    cr_assert_str_eq(err_name(&r), "key_revoked");
    resp_free(&r);

    /* revoke by A's self key with a reason */
    snprintf(path, sizeof(path), "/v1/keys/%s", srv2kid);
    r = call(sa, "DELETE", url_of(&e, path), "{\"reason\":\"superseded\"}");
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(jstr(r.json, "revocation_reason"), "superseded");
    resp_free(&r);
    r = call(sa, "DELETE", url_of(&e, path), "{\"reason\":\"bogus\"}");
    cr_assert_eq(r.status, 400);
    resp_free(&r);

    /* a refused enrollment and a refused scope, for the log */
    r = enroll_generated(&e, "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB");
    cr_assert_eq(r.status, 401);
    resp_free(&r);
    r = call(sa, "POST", url_of(&e, "/v1/keys"), "{\"scopes\":[\"keys:admin\"]}");
    cr_assert_eq(r.status, 403);
    resp_free(&r);

    /* the audit log: every action and refusal, no token, no key bytes */
    r = call(admin, "GET", url_of(&e, "/v1/audit?limit=1000"), NULL);
    cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
    json_t *ev = json_object_get(r.json, "events");
    static const char *const want[][2] = {
        {"account.create", "ok"}, {"key.enroll", "ok"},    {"key.create", "ok"},
        {"key.disable", "ok"},    {"key.enable", "ok"},    {"key.rotate", "ok"},
        {"key.revoke", "ok"},     {"key.revoke", "scope"}, {"key.enroll", "enrollment_invalid"},
        {"key.create", "scope"},
    };
    for (size_t w = 0; w < sizeof(want) / sizeof(want[0]); w++) {
        int found = 0;
        for (size_t i = 0; i < json_array_size(ev); i++) {
            json_t *x = json_array_get(ev, i);
            if (strcmp(jstr(x, "action"), want[w][0]) == 0 &&
                strcmp(jstr(x, "outcome"), want[w][1]) == 0)
                found = 1;
        }
        cr_assert(found, "no audit event %s / %s in %s", want[w][0], want[w][1], r.body);
    }
    json_t *x = json_array_get(ev, json_array_size(ev) - 1);
    for (const char *f = "time actor account action target outcome source nonce"; *f;) {
        char name[16];
        size_t l = strcspn(f, " ");
        snprintf(name, sizeof(name), "%.*s", (int)l, f);
        cr_assert(json_object_get(x, name) != NULL, "event member %s", name);
        f += l + (f[l] == ' ');
    }
    cr_assert_str_eq(jstr(x, "source"), "127.0.0.1");
    cr_assert_not_null(jstr(x, "nonce"));
    cr_assert_null(strstr(r.body, tok), "the audit log holds a token");
    cr_assert_null(strstr(r.body, "PRIVATE"), "the audit log holds a key");
    resp_free(&r);
    /* the self key sees its account's events only, paginated */
    r = call(sa, "GET", url_of(&e, "/v1/audit?limit=2"), NULL);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(json_array_size(json_object_get(r.json, "events")), 2);
    cr_assert_not_null(jstr(r.json, "next"));
    resp_free(&r);

    reqsign_signer_free(leaked);
    reqsign_signer_free(srv);
    reqsign_signer_free(srv2);
    reqsign_signer_free(sa);
    free(leakedkid);
    free(srvkid);
    free(srv2kid);
    free(priv);
    free(tok);
    free(a);
    free(akid);
    finish(&e);
}

/* Failed enrollments are rate-limited per source address: past the limit
 * even a good token is refused (with the same answer), and not used up. */
Test(accounts, failed_enrollments_rate_limited)
{
    struct env e;
    setup(&e, NULL);
    struct reqsign_signer *admin = load_admin(&e);
    char *tok = NULL;
    char *a = make_account(&e, admin, "{\"name\":\"A\"}", &tok);
    for (int i = 0; i < 10; i++) {
        struct resp r = enroll_generated(&e, "CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC");
        cr_assert_eq(r.status, 401);
        resp_free(&r);
    }
    struct resp r = enroll_generated(&e, tok);
    cr_assert_eq(r.status, 401, "rate-limited: %ld %s", r.status, r.body);
    cr_assert_str_eq(err_name(&r), "enrollment_invalid");
    resp_free(&r);
    free(tok);
    free(a);
    finish(&e);
}

static int64_t rfc3339(const char *s)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    cr_assert_not_null(s);
    cr_assert_eq(sscanf(s, "%d-%d-%dT%d:%d:%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                        &tm.tm_min, &tm.tm_sec),
                 6, "%s", s);
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm);
}

/* Last use: a key used at the api-backend gets last_used_at (and last_used_by)
 * within the interval + 2 s; ?unused_for= lists the keys not used since. */
Test(accounts, last_used_and_unused_for)
{
    struct env e;
    setup(&e, NULL);
    start_api_backend(&e, "1", (const char *const[]){"--last-used-interval", "1", NULL});
    struct reqsign_signer *admin = load_admin(&e);
    json_t *used = create_key(&e, admin, "{\"label\":\"used\",\"scopes\":[\"x\"]}");
    json_t *idle = create_key(&e, admin, "{\"label\":\"idle\",\"scopes\":[\"x\"]}");
    struct reqsign_signer *su = signer_of(used);
    const char *ukid = jstr(used, "keyid"), *ikid = jstr(idle, "keyid");
    sleep(4); /* both exist for 4 s, then only one is used */
    cr_assert(wait_status(su, burl(&e, "/r"), 200, NULL, 3));
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    char path[128];
    snprintf(path, sizeof(path), "/v1/keys/%s", ukid);
    int seen = 0;
    int64_t used_at = 0;
    while (!seen) {
        struct resp r = call(admin, "GET", url_of(&e, path), NULL);
        cr_assert_eq(r.status, 200);
        if (jstr(r.json, "last_used_at") != NULL) {
            seen = 1;
            used_at = rfc3339(jstr(r.json, "last_used_at"));
            cr_assert_str_eq(jstr(r.json, "last_used_by"), "api-backend");
        }
        resp_free(&r);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if (!seen && t1.tv_sec - t0.tv_sec > 1 + 2)
            break;
        usleep(200 * 1000);
    }
    cr_assert(seen, "last_used_at did not appear within the interval + 2 s");

    /* a cutoff half-way between the idle key's creation and the use: robust to
     * slow machines (sanitizers), 2 s on either side */
    int64_t cutoff = (rfc3339(jstr(idle, "created_at")) + used_at) / 2;
    char q[128];
    snprintf(q, sizeof(q), "/v1/keys?unused_for=%lld&limit=1000",
             (long long)((int64_t)time(NULL) - cutoff));
    struct resp r = call(admin, "GET", url_of(&e, q), NULL);
    cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
    cr_assert_not_null(strstr(r.body, ikid), "the idle key is unused");
    cr_assert_null(strstr(r.body, ukid), "the used key is not");
    resp_free(&r);
    r = call(admin, "GET", url_of(&e, "/v1/keys?unused_for=x"), NULL);
    cr_assert_eq(r.status, 400);
    resp_free(&r);

    reqsign_signer_free(su);
    json_decref(used);
    json_decref(idle);
    finish(&e);
}

/* The CLI: accounts create, enroll (key made locally; --generate), keys list
 * with status and last use, keys rotate / disable / enable, audit. */
static char *cli(const char *args, int *status)
{
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "'%s' %s 2>&1", tu_prog("REQSIGN_CLI"), args);
    return tu_run(cmd, status);
}

Test(accounts, cli_accounts_enroll_rotate_audit)
{
    struct env e;
    setup(&e, NULL);
    char args[3000], *out;
    int st;
    const char *svc = e.d.url;
    snprintf(args, sizeof(args),
             "accounts create --name Shop --scope payments:write --key-limit 5 --key '%s' "
             "--service %s",
             e.admin, svc);
    out = cli(args, &st);
    cr_assert_eq(st, 0, "%s", out);
    char acct[64] = "", tok[64] = "";
    cr_assert_eq(sscanf(out, "account %63s\ntoken %63s", acct, tok), 2, "%s", out);
    free(out);

    /* the token is never taken from the command line (ps shows it): refused,
     * exit 2, and not echoed */
    snprintf(args, sizeof(args), "enroll --service %s --token %s --label laptop -o '%s/cust.json'",
             svc, tok, e.dir);
    out = cli(args, &st);
    cr_assert_eq(st, 2, "%s", out);
    cr_assert_null(strstr(out, tok), "the token is echoed: %s", out);
    cr_assert_not_null(strstr(out, "--token -"), "%s", out);
    free(out);
    snprintf(args, sizeof(args), "%s/cust.json", e.dir);
    cr_assert_neq(access(args, F_OK), 0, "no file left behind");
    char tokfile[600];
    snprintf(tokfile, sizeof(tokfile), "%s/token.txt", e.dir);
    FILE *tf = fopen(tokfile, "w");
    cr_assert_not_null(tf);
    fprintf(tf, "%s\n", tok);
    fclose(tf);

    /* enroll: the key is made here; only the public key travels; the token
     * comes on stdin */
    snprintf(args, sizeof(args),
             "enroll --service %s --token - --label laptop -o '%s/cust.json' < '%s'", svc, e.dir,
             tokfile);
    out = cli(args, &st);
    cr_assert_eq(st, 0, "%s", out);
    char kid[64] = "";
    cr_assert_eq(sscanf(out, "%63s", kid), 1);
    free(out);
    char path[600];
    snprintf(path, sizeof(path), "%s/cust.json", e.dir);
    struct stat sb;
    cr_assert_eq(stat(path, &sb), 0);
    cr_assert_eq(sb.st_mode & 0777, 0600);
    char *cred = slurp(path);
    json_t *cj = json_loads(cred, 0, NULL);
    cr_assert_not_null(cj, "%s", cred);
    cr_assert_str_eq(jstr(cj, "keyid"), kid);
    cr_assert_str_eq(jstr(cj, "account"), acct);
    cr_assert_not_null(strstr(jstr(cj, "private_key"), "BEGIN PRIVATE KEY"));
    json_decref(cj);
    free(cred);
    /* the same token again (from the file) fails, exit 1 */
    snprintf(args, sizeof(args), "enroll --service %s --token '%s' -o '%s/again.json'", svc,
             tokfile, e.dir);
    out = cli(args, &st);
    cr_assert_eq(st, 1, "%s", out);
    cr_assert_not_null(strstr(out, "enrollment_invalid"), "%s", out);
    free(out);
    snprintf(args, sizeof(args), "%s/again.json", e.dir);
    cr_assert_neq(access(args, F_OK), 0, "no file left behind");

    /* keys list with the customer's own credential: status and last use */
    snprintf(args, sizeof(args), "keys list --key '%s' --service %s", path, svc);
    out = cli(args, &st);
    cr_assert_eq(st, 0, "%s", out);
    cr_assert_not_null(strstr(out, kid), "%s", out);
    cr_assert_not_null(strstr(out, "\tactive\t"), "%s", out);
    free(out);

    /* rotate, disable, enable */
    snprintf(args, sizeof(args),
             "keys rotate %s --grace 60 -o '%s/new.json' --key '%s' --service %s", kid, e.dir, path,
             svc);
    out = cli(args, &st);
    cr_assert_eq(st, 0, "%s", out);
    char nkid[64] = "";
    cr_assert_eq(sscanf(out, "%63s", nkid), 1);
    cr_assert_str_neq(nkid, kid);
    free(out);
    snprintf(args, sizeof(args), "keys disable %s --key '%s' --service %s", nkid, path, svc);
    out = cli(args, &st);
    cr_assert_eq(st, 0, "%s", out);
    cr_assert_not_null(strstr(out, "disabled"), "%s", out);
    free(out);
    snprintf(args, sizeof(args), "keys list --key '%s' --service %s", path, svc);
    out = cli(args, &st);
    cr_assert_not_null(strstr(out, "\tdisabled\t"), "%s", out);
    free(out);
    snprintf(args, sizeof(args), "keys enable %s --key '%s' --service %s", nkid, path, svc);
    out = cli(args, &st);
    cr_assert_eq(st, 0, "%s", out);
    free(out);

    /* a second token, the service generates the key */
    snprintf(args, sizeof(args), "accounts enroll-token %s --key '%s' --service %s", acct, e.admin,
             svc);
    out = cli(args, &st);
    cr_assert_eq(st, 0, "%s", out);
    cr_assert_eq(sscanf(out, "token %63s", tok), 1, "%s", out);
    free(out);
    /* ... from the environment */
    char envcmd[4096];
    snprintf(envcmd, sizeof(envcmd),
             "REQSIGN_ENROLL_TOKEN='%s' '%s' enroll --generate --service %s -o '%s/gen.json' 2>&1",
             tok, tu_prog("REQSIGN_CLI"), svc, e.dir);
    out = tu_run(envcmd, &st);
    cr_assert_eq(st, 0, "%s", out);
    free(out);

    /* accounts list / get, audit */
    snprintf(args, sizeof(args), "accounts list --key '%s' --service %s", e.admin, svc);
    out = cli(args, &st);
    cr_assert_eq(st, 0, "%s", out);
    cr_assert_not_null(strstr(out, acct), "%s", out);
    cr_assert_not_null(strstr(out, "acct_operator"), "%s", out);
    free(out);
    snprintf(args, sizeof(args), "accounts get %s --key '%s' --service %s", acct, path, svc);
    out = cli(args, &st);
    cr_assert_eq(st, 0, "%s", out);
    cr_assert_not_null(strstr(out, "\"Shop\""), "%s", out);
    free(out);
    snprintf(args, sizeof(args), "audit --limit 1000 --key '%s' --service %s", e.admin, svc);
    out = cli(args, &st);
    cr_assert_eq(st, 0, "%s", out);
    cr_assert_not_null(strstr(out, "key.enroll\tok"), "%s", out);
    cr_assert_not_null(strstr(out, "key.rotate\tok"), "%s", out);
    cr_assert_not_null(strstr(out, "key.enroll\tenrollment_invalid"), "%s", out);
    cr_assert_null(strstr(out, tok), "%s", out);
    free(out);
    out = cli("accounts bogus", &st);
    cr_assert_eq(st, 2);
    free(out);
    finish(&e);
}

/* `reqsignd admin add --db DB -o OUT`: exit status, output in *@out. */
static int admin_add(const struct env *e, const char *out, char **msg)
{
    char cmd[2048];
    int st;
    snprintf(cmd, sizeof(cmd), "'%s' admin add --db '%s' -o '%s' --service http://127.0.0.1 2>&1",
             tu_prog("REQSIGND"), e->db, out);
    *msg = tu_run(cmd, &st);
    return st;
}

/* The credential at @path works as an admin: GET /v1/keys answers 200. */
static void works_as_admin(struct env *e, const char *path)
{
    struct stat sb;
    cr_assert_eq(stat(path, &sb), 0);
    cr_assert_eq(sb.st_mode & 0777, 0600, "credential mode %o", (unsigned)(sb.st_mode & 0777));
    char *json = slurp(path);
    json_t *j = json_loads(json, 0, NULL);
    cr_assert_not_null(j);
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(j, "scopes"), 0)),
                     "keys:admin");
    cr_assert_str_eq(jstr(j, "account"), "acct_operator");
    json_decref(j);
    struct reqsign_signer *s = signer_from_cred(json);
    struct resp r;
    for (int i = 0; i < 60; i++) { /* a negative cache entry lives 1 s */
        r = call(s, "GET", url_of(e, "/v1/keys"), NULL);
        if (r.status == 200)
            break;
        resp_free(&r);
        usleep(100 * 1000);
    }
    cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
    resp_free(&r);
    reqsign_signer_free(s);
    free(json);
}

/* The last active keys:admin key is neither revoked (not even by
 * possession) nor disabled: 409 last_admin. A second admin key lifts it. */
Test(accounts, last_admin_key_is_kept)
{
    struct env e;
    setup(&e, NULL);
    char *admin_json = slurp(e.admin);
    struct reqsign_signer *admin = signer_from_cred(admin_json);
    json_t *aj = json_loads(admin_json, 0, NULL);
    char path[200];
    snprintf(path, sizeof(path), "/v1/keys/%s", jstr(aj, "keyid"));
    char dpath[220];
    snprintf(dpath, sizeof(dpath), "%s/disable", path);

    struct resp r = call(admin, "DELETE", url_of(&e, path), NULL);
    cr_assert_eq(r.status, 409, "revoke of the last admin key: %ld %s", r.status, r.body);
    cr_assert_str_eq(err_name(&r), "last_admin");
    cr_assert_not_null(strstr(jstr(r.json, "message"), "admin add"), "%s", r.body);
    resp_free(&r);
    r = call(admin, "POST", url_of(&e, dpath), "{}");
    cr_assert_eq(r.status, 409, "disable of the last admin key: %ld %s", r.status, r.body);
    cr_assert_str_eq(err_name(&r), "last_admin");
    resp_free(&r);
    r = call(admin, "GET", url_of(&e, path), NULL);
    cr_assert_eq(r.status, 200, "the admin key still works: %ld %s", r.status, r.body);
    cr_assert_str_eq(jstr(r.json, "status"), "active");
    resp_free(&r);
    /* rotation keeps an admin key (the successor) */
    json_t *cred = create_key(&e, admin, "{\"label\":\"admin2\",\"scopes\":[\"keys:admin\"]}");
    struct reqsign_signer *admin2 = signer_of(cred);
    char path2[200];
    snprintf(path2, sizeof(path2), "/v1/keys/%s", jstr(cred, "keyid"));
    /* with a second one, the first goes (here by possession) */
    r = call(admin, "DELETE", url_of(&e, path), NULL);
    cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
    cr_assert_str_eq(jstr(r.json, "status"), "revoked");
    resp_free(&r);
    /* and the second is now the last one, whoever asks */
    r = call(admin2, "DELETE", url_of(&e, path2), NULL);
    cr_assert_eq(r.status, 409, "%ld %s", r.status, r.body);
    cr_assert_str_eq(err_name(&r), "last_admin");
    resp_free(&r);
    r = call(admin2, "GET", url_of(&e, "/v1/audit?limit=1000"), NULL);
    cr_assert_eq(r.status, 200);
    cr_assert_not_null(strstr(r.body, "\"last_admin\""), "the refusal is audited: %s", r.body);
    resp_free(&r);
    /* rotating the last admin key leaves its successor: allowed */
    snprintf(dpath, sizeof(dpath), "%s/rotate", path2);
    r = call(admin2, "POST", url_of(&e, dpath), "{\"grace_s\":0}");
    cr_assert_eq(r.status, 201, "%ld %s", r.status, r.body);
    struct reqsign_signer *admin3 = signer_of(r.json);
    resp_free(&r);
    r = call(admin3, "GET", url_of(&e, "/v1/keys"), NULL);
    cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
    resp_free(&r);
    reqsign_signer_free(admin3);
    reqsign_signer_free(admin2);
    json_decref(cred);
    json_decref(aj);
    reqsign_signer_free(admin);
    free(admin_json);
    finish(&e);
}

/* Offline recovery: `reqsignd admin add` after the last admin key expired,
 * and after it was revoked in the database directly. */
Test(accounts, admin_add_recovers_the_service)
{
    struct env e;
    setup(&e, NULL);
    char *admin_json = slurp(e.admin);
    struct reqsign_signer *admin = signer_from_cred(admin_json);
    json_t *aj = json_loads(admin_json, 0, NULL);
    char path[200], out[600], *msg;

    /* 1. the only admin key expires: a second one expiring in 2 s replaces it */
    char body[200];
    time_t soon = time(NULL) + 3;
    struct tm tm;
    gmtime_r(&soon, &tm);
    strftime(body, sizeof(body),
             "{\"label\":\"short\",\"scopes\":[\"keys:admin\"],\"expires_at\":"
             "\"%Y-%m-%dT%H:%M:%SZ\"}",
             &tm);
    json_t *cred = create_key(&e, admin, body);
    struct reqsign_signer *shortlived = signer_of(cred);
    snprintf(path, sizeof(path), "/v1/keys/%s", jstr(aj, "keyid"));
    struct resp r = call(shortlived, "DELETE", url_of(&e, path), NULL);
    cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
    resp_free(&r);
    sleep(4);
    r = call(shortlived, "GET", url_of(&e, "/v1/keys"), NULL);
    cr_assert_eq(r.status, 401, "%ld %s", r.status, r.body);
    cr_assert_str_eq(err_name(&r), "key_expired");
    resp_free(&r);
    /* no admin key works now; the operator adds one offline */
    snprintf(out, sizeof(out), "%s/recovered.json", e.dir);
    int st = admin_add(&e, out, &msg);
    cr_assert_eq(st, 0, "admin add: %s", msg);
    cr_assert_not_null(strstr(msg, "created admin key"), "%s", msg);
    free(msg);
    works_as_admin(&e, out);
    /* never over an existing file */
    st = admin_add(&e, out, &msg);
    cr_assert_eq(st, 1, "%s", msg);
    cr_assert_not_null(strstr(msg, "refusing to overwrite"), "%s", msg);
    free(msg);

    /* 2. that key revoked in the database itself (reqsignd keeps running) */
    char *rj = slurp(out);
    json_t *rec = json_loads(rj, 0, NULL);
    struct reqsign_error err;
    struct reqsign_keystore *ks = reqsign_keystore_sqlite_open(e.db, 0, &err);
    cr_assert_not_null(ks, "%s", err.message);
    const char *rk = jstr(rec, "keyid");
    cr_assert_eq(reqsign_keystore_revoke(ks, rk, strlen(rk), (int64_t)time(NULL), &err), REQSIGN_OK,
                 "%s", err.message);
    reqsign_keystore_free(ks);
    struct reqsign_signer *rs = signer_from_cred(rj);
    for (int i = 0; i < 40; i++) { /* the key cache: 1 s */
        r = call(rs, "GET", url_of(&e, "/v1/keys"), NULL);
        if (r.status == 401)
            break;
        resp_free(&r);
        usleep(100 * 1000);
    }
    cr_assert_eq(r.status, 401, "%ld %s", r.status, r.body);
    resp_free(&r);
    snprintf(out, sizeof(out), "%s/recovered2.json", e.dir);
    st = admin_add(&e, out, &msg);
    cr_assert_eq(st, 0, "admin add: %s", msg);
    free(msg);
    works_as_admin(&e, out);

    /* recorded in the audit log as offline actions */
    char *j2 = slurp(out);
    struct reqsign_signer *a2 = signer_from_cred(j2);
    r = call(a2, "GET", url_of(&e, "/v1/audit?limit=1000"), NULL);
    cr_assert_eq(r.status, 200);
    json_t *ev = json_object_get(r.json, "events");
    int offline = 0;
    for (size_t i = 0; i < json_array_size(ev); i++) {
        json_t *x = json_array_get(ev, i);
        if (strcmp(jstr(x, "action"), "admin.add") == 0) {
            cr_assert_str_eq(jstr(x, "outcome"), "ok");
            cr_assert_not_null(strstr(jstr(x, "source"), "offline"), "%s", r.body);
            cr_assert(json_is_null(json_object_get(x, "actor")), "%s", r.body);
            offline++;
        }
    }
    cr_assert_eq(offline, 2, "two admin.add events: %s", r.body);
    resp_free(&r);

    /* a database that does not exist, or without write access */
    char none[600];
    snprintf(none, sizeof(none), "%s/none.db", e.dir);
    char cmd[2048];
    snprintf(cmd, sizeof(cmd), "'%s' admin add --db '%s' -o '%s/x.json' 2>&1", tu_prog("REQSIGND"),
             none, e.dir);
    msg = tu_run(cmd, &st);
    cr_assert_eq(st, 1, "%s", msg);
    cr_assert_not_null(strstr(msg, "does not exist"), "%s", msg);
    free(msg);
    snprintf(cmd, sizeof(cmd), "'%s' admin frob 2>&1", tu_prog("REQSIGND"));
    msg = tu_run(cmd, &st);
    cr_assert_eq(st, 2, "%s", msg);
    free(msg);

    reqsign_signer_free(a2);
    free(j2);
    reqsign_signer_free(rs);
    json_decref(rec);
    free(rj);
    reqsign_signer_free(shortlived);
    json_decref(cred);
    json_decref(aj);
    reqsign_signer_free(admin);
    free(admin_json);
    finish(&e);
}

/* enroll --profile NAME (issue 16 item 12): the credential goes to
 * $XDG_CONFIG_HOME/reqsign/credentials/NAME.json, mode 0600, never
 * overwritten; audit and keys then sign with it through REQSIGN_PROFILE. */
Test(accounts, cli_enroll_into_profile)
{
    struct env e;
    setup(&e, NULL);
    char args[3000], *out;
    int st;
    const char *svc = e.d.url;
    snprintf(args, sizeof(args),
             "accounts create --name P --scope payments:write --key '%s' "
             "--max-key-lifetime +30d --service %s",
             e.admin, svc);
    out = cli(args, &st);
    cr_assert_eq(st, 0, "%s", out);
    char acct[64] = "", tok[64] = "";
    cr_assert_eq(sscanf(out, "account %63s\ntoken %63s", acct, tok), 2, "%s", out);
    free(out);
    char xdg[700];
    snprintf(xdg, sizeof(xdg),
             "env -u REQSIGN_CREDENTIAL -u REQSIGN_PROFILE XDG_CONFIG_HOME='%s/x'", e.dir);
    char cmd[4096];
    snprintf(cmd, sizeof(cmd),
             "%s REQSIGN_ENROLL_TOKEN=%s '%s' enroll --service %s --profile shop 2>&1", xdg, tok,
             tu_prog("REQSIGN_CLI"), svc);
    out = tu_run(cmd, &st);
    cr_assert_eq(st, 0, "%s", out);
    char kid[64] = "";
    cr_assert_eq(sscanf(out, "%63s", kid), 1);
    free(out);
    char path[800];
    snprintf(path, sizeof(path), "%s/x/reqsign/credentials/shop.json", e.dir);
    struct stat sb;
    cr_assert_eq(stat(path, &sb), 0);
    cr_assert_eq(sb.st_mode & 0777, 0600);
    /* -o and --profile together, or neither: usage */
    snprintf(cmd, sizeof(cmd), "%s '%s' enroll --service %s --token - --profile shop -o y 2>&1",
             xdg, tu_prog("REQSIGN_CLI"), svc);
    out = tu_run(cmd, &st);
    cr_assert_eq(st, 2, "%s", out);
    free(out);
    /* --max-key-lifetime +30d is a relative duration (issue 16 item 14) */
    snprintf(args, sizeof(args), "accounts get %s --key '%s' --service %s", acct, e.admin, svc);
    out = cli(args, &st);
    cr_assert_eq(st, 0, "%s", out);
    cr_assert_not_null(strstr(out, "2592000"), "%s", out);
    free(out);
    /* the profile signs keys list */
    snprintf(cmd, sizeof(cmd), "%s REQSIGN_PROFILE=shop '%s' keys list --service %s 2>&1", xdg,
             tu_prog("REQSIGN_CLI"), svc);
    out = tu_run(cmd, &st);
    cr_assert_eq(st, 0, "%s", out);
    cr_assert_not_null(strstr(out, kid), "%s", out);
    free(out);
    finish(&e);
}

/* 1 if the public directory lists @kid. */
static int directory_lists(struct env *e, const char *kid)
{
    struct resp r = send_req("GET", url_of(e, "/.well-known/http-message-signatures-directory"),
                             NULL, 0, NULL, NULL);
    cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
    json_t *keys = json_object_get(r.json, "keys");
    int found = 0;
    for (size_t i = 0; i < json_array_size(keys); i++) {
        const char *k = json_string_value(json_object_get(json_array_get(keys, i), "kid"));
        found |= k != NULL && strcmp(k, kid) == 0;
    }
    resp_free(&r);
    return found;
}

/* The CLI sets the public-directory flags (issue 16, item 6): `keys create
 * --publish` ("publish": true) and `accounts create --publish-keys`
 * ("publish_keys": true); without them a key is not listed. */
Test(accounts, cli_publish_flags)
{
    struct env e;
    setup(&e, NULL);
    char args[3000], *out;
    int st;
    const char *svc = e.d.url;
    char kid[2][64] = {"", ""};
    for (int i = 0; i < 2; i++) {
        snprintf(args, sizeof(args), "keys create %s-o '%s/k%d.json' --key '%s' --service %s",
                 i ? "--publish " : "", e.dir, i, e.admin, svc);
        out = cli(args, &st);
        cr_assert_eq(st, 0, "%s", out);
        cr_assert_eq(sscanf(out, "%63s", kid[i]), 1, "%s", out);
        free(out);
    }
    cr_assert_not(directory_lists(&e, kid[0]), "a key created without --publish is listed");
    cr_assert(directory_lists(&e, kid[1]), "a key created with --publish is not listed");

    /* an account with --publish-keys: its enrolled key is listed; without: not */
    for (int i = 0; i < 2; i++) {
        snprintf(args, sizeof(args), "accounts create --name Acct%d %s--key '%s' --service %s", i,
                 i ? "--publish-keys " : "", e.admin, svc);
        out = cli(args, &st);
        cr_assert_eq(st, 0, "%s", out);
        char acct[64] = "", tok[64] = "";
        cr_assert_eq(sscanf(out, "account %63s\ntoken %63s", acct, tok), 2, "%s", out);
        free(out);
        struct resp r = enroll_generated(&e, tok);
        cr_assert_eq(r.status, 201, "%ld %s", r.status, r.body);
        char ekid[64];
        snprintf(ekid, sizeof(ekid), "%s", jstr(r.json, "keyid"));
        resp_free(&r);
        cr_assert_eq(directory_lists(&e, ekid), i, "account %s --publish-keys: key %s listed: %d",
                     i ? "with" : "without", ekid, !i);
    }
    /* the flags belong to create only */
    snprintf(args, sizeof(args), "keys list --publish --key '%s' --service %s", e.admin, svc);
    out = cli(args, &st);
    cr_assert_eq(st, 2, "%s", out);
    free(out);
    snprintf(args, sizeof(args), "accounts list --publish-keys --key '%s' --service %s", e.admin,
             svc);
    out = cli(args, &st);
    cr_assert_eq(st, 2, "%s", out);
    free(out);
    finish(&e);
}

/* ---- rotation to a key of the client's own (BYO) with a proof of possession ---- */

/* A signer of @k's key labelled @label, with @keyid (NULL: the thumbprint). */
static struct reqsign_signer *label_signer(const struct own_key *k, const char *label,
                                           const char *keyid)
{
    struct reqsign_signer_opts o;
    struct reqsign_error err;
    memset(&o, 0, sizeof(o));
    o.key = k->key;
    o.label = label;
    o.keyid = keyid;
    struct reqsign_signer *s = reqsign_signer_new(&o, &err);
    cr_assert_not_null(s, "%s", err.message);
    return s;
}

/* @body signed by @auth (sig1), plus a second signature by @pop (NULL: none)
 * over @pop_body (NULL: @body): its own Signature-Input and Signature lines. */
static struct resp call_pop(const struct reqsign_signer *auth, const struct reqsign_signer *pop,
                            const char *method, const char *url, const char *body,
                            const char *pop_body)
{
    struct reqsign_signed sig, ps;
    static char si[2048], sg[512];
    const char *extra[4] = {"Content-Type: application/json", NULL, NULL, NULL};
    sign(auth, method, url, body, strlen(body), &sig);
    if (pop != NULL) {
        const char *pb = pop_body != NULL ? pop_body : body;
        sign(pop, method, url, pb, strlen(pb), &ps);
        snprintf(si, sizeof(si), "Signature-Input: %s", ps.signature_input);
        snprintf(sg, sizeof(sg), "Signature: %s", ps.signature);
        extra[1] = si;
        extra[2] = sg;
    }
    return send_req(method, url, body, strlen(body), &sig, extra);
}

/* The rotate body {"grace_s", "public_key"} (malloc'd). */
static char *rotate_body(int grace, const char *pub_pem)
{
    json_t *b = json_pack("{s:i, s:s}", "grace_s", grace, "public_key", pub_pem);
    char *s = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    return s;
}

Test(accounts, rotate_to_own_key_with_proof_of_possession)
{
    struct env e;
    setup(&e, NULL);
    start_backend(&e, NULL); /* --cache-ttl 1 */
    char *cred = slurp(e.admin);
    struct reqsign_signer *admin = signer_from_cred(cred);
    char *a = NULL, *akid = NULL;
    struct reqsign_signer *sa = account_key(
        &e, admin, "{\"name\":\"A\",\"allowed_scopes\":[\"payments:write\"],\"key_limit\":2}", &a,
        &akid);
    struct resp r = call(sa, "POST", url_of(&e, "/v1/keys"),
                         "{\"label\":\"srv\",\"scopes\":[\"payments:write\"]}");
    cr_assert_eq(r.status, 201, "%ld %s", r.status, r.body);
    char *srvkid = strdup(jstr(r.json, "keyid"));
    resp_free(&r);

    struct own_key k, other;
    own_key_new(&k);
    own_key_new(&other);
    char kid[64], okid[64];
    cr_assert_eq(reqsign_key_thumbprint(k.key, kid), REQSIGN_OK);
    cr_assert_eq(reqsign_key_thumbprint(other.key, okid), REQSIGN_OK);
    struct reqsign_signer *pop = label_signer(&k, "pop", NULL);
    struct reqsign_signer *pop_other = label_signer(&other, "pop", NULL);
    struct reqsign_signer *pop_forged = label_signer(&other, "pop", kid); /* k's keyid */
    char path[256];
    snprintf(path, sizeof(path), "/v1/keys/%s/rotate", srvkid);
    char *url = strdup(url_of(&e, path)); /* url_of's buffers are reused */
    char *body = rotate_body(30, k.pub_pem);
    char *body2 = rotate_body(31, k.pub_pem);

    /* no proof of possession: 401 sig_missing, nothing rotated */
    r = call_pop(sa, NULL, "POST", url, body, NULL);
    cr_assert_eq(r.status, 401, "%ld %s", r.status, r.body);
    cr_assert_str_eq(err_name(&r), "sig_missing");
    cr_assert_not_null(strstr(jstr(r.json, "message"), "pop"), "%s", r.body);
    resp_free(&r);
    /* pop made by another key: its keyid is not the new key's (key_unknown),
     * or it claims the new key's keyid (sig_invalid) */
    r = call_pop(sa, pop_other, "POST", url, body, NULL);
    cr_assert_eq(r.status, 401, "%ld %s", r.status, r.body);
    cr_assert_str_eq(err_name(&r), "key_unknown");
    resp_free(&r);
    r = call_pop(sa, pop_forged, "POST", url, body, NULL);
    cr_assert_eq(r.status, 401, "%ld %s", r.status, r.body);
    cr_assert_str_eq(err_name(&r), "sig_invalid");
    resp_free(&r);
    /* pop by the new key, but over another body (grace 31): it does not bind this one */
    r = call_pop(sa, pop, "POST", url, body, body2);
    cr_assert_eq(r.status, 401, "%ld %s", r.status, r.body);
    cr_assert_str_eq(err_name(&r), "sig_invalid");
    resp_free(&r);
    /* a proof of possession does not authorise: the new key alone (as sig1) is unknown */
    r = call_pop(k.signer, NULL, "POST", url, body, NULL);
    cr_assert_eq(r.status, 401, "%ld %s", r.status, r.body);
    cr_assert_str_eq(err_name(&r), "key_unknown");
    resp_free(&r);
    snprintf(path, sizeof(path), "/v1/keys/%s", srvkid);
    r = call(admin, "GET", url_of(&e, path), NULL);
    cr_assert(json_is_null(json_object_get(r.json, "replaced_by")), "%s", r.body);
    cr_assert(json_is_null(json_object_get(r.json, "expires_at")), "%s", r.body);
    resp_free(&r);

    /* both signatures: 201, the successor is the client's key (keyid = its
     * thumbprint), nothing private in the answer; past key_limit 2 by one */
    int64_t t0 = (int64_t)time(NULL);
    r = call_pop(sa, pop, "POST", url, body, NULL);
    int64_t t1 = (int64_t)time(NULL);
    cr_assert_eq(r.status, 201, "%ld %s", r.status, r.body);
    cr_assert_str_eq(jstr(r.json, "keyid"), kid);
    cr_assert_null(json_object_get(r.json, "private_key"), "%s", r.body);
    cr_assert_null(strstr(r.body, "PRIVATE"), "%s", r.body);
    cr_assert_str_eq(jstr(r.json, "replaces"), srvkid);
    cr_assert_str_eq(jstr(r.json, "label"), "srv");
    cr_assert_str_eq(jstr(r.json, "account"), a);
    cr_assert_str_eq(jstr(r.json, "status"), "active");
    cr_assert_eq(json_array_size(json_object_get(r.json, "scopes")), 1);
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(r.json, "scopes"), 0)),
                     "payments:write");
    resp_free(&r);
    r = call(admin, "GET", url_of(&e, path), NULL);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(jstr(r.json, "replaced_by"), kid);
    int64_t exp = rfc3339(jstr(r.json, "expires_at"));
    cr_assert(exp >= t0 + 30 && exp <= t1 + 30, "old key expires at now + grace: %s", r.body);
    resp_free(&r);
    /* the new key works against the api-backend */
    cr_assert(wait_status(k.signer, burl(&e, "/r"), 200, NULL, 3),
              "the rotated-to key is refused by the api-backend");
    /* key_limit applies as for a generated rotation: 3 active keys of 2 (+1) */
    struct own_key k3;
    own_key_new(&k3);
    struct reqsign_signer *pop3 = label_signer(&k3, "pop", NULL);
    char *body3 = rotate_body(30, k3.pub_pem);
    snprintf(path, sizeof(path), "/v1/keys/%s/rotate", akid);
    r = call_pop(sa, pop3, "POST", url_of(&e, path), body3, NULL);
    cr_assert_eq(r.status, 409, "%ld %s", r.status, r.body);
    cr_assert_str_eq(err_name(&r), "key_limit");
    resp_free(&r);
    /* the refusals and the rotation are audited */
    r = call(admin, "GET", url_of(&e, "/v1/audit?limit=1000"), NULL);
    cr_assert_not_null(strstr(r.body, "\"sig_missing\""), "%s", r.body);
    cr_assert_null(strstr(r.body, "PRIVATE"), "%s", r.body);
    resp_free(&r);

    free(url);
    free(body3);
    reqsign_signer_free(pop3);
    own_key_free(&k3);
    free(body);
    free(body2);
    reqsign_signer_free(pop);
    reqsign_signer_free(pop_other);
    reqsign_signer_free(pop_forged);
    own_key_free(&k);
    own_key_free(&other);
    free(srvkid);
    free(a);
    free(akid);
    reqsign_signer_free(sa);
    reqsign_signer_free(admin);
    free(cred);
    finish(&e);
}

/* ---- revoke by possession: a disabled key, and a key of a disabled account ---- */

Test(accounts, disabled_key_revokes_itself_and_nothing_else)
{
    struct env e;
    setup(&e, NULL);
    char *cred = slurp(e.admin);
    struct reqsign_signer *admin = signer_from_cred(cred);
    char *a = NULL, *akid = NULL;
    struct reqsign_signer *sa = account_key(&e, admin, "{\"name\":\"A\"}", &a, &akid);
    struct resp r = call(sa, "POST", url_of(&e, "/v1/keys"), "{\"label\":\"o\",\"scopes\":[]}");
    cr_assert_eq(r.status, 201, "%ld %s", r.status, r.body);
    char *okid = strdup(jstr(r.json, "keyid"));
    resp_free(&r);
    char own[200], other[200], dis[240];
    snprintf(own, sizeof(own), "/v1/keys/%s", akid);
    snprintf(other, sizeof(other), "/v1/keys/%s", okid);
    snprintf(dis, sizeof(dis), "%s/disable", own);
    r = call(admin, "POST", url_of(&e, dis), "{}");
    cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
    cr_assert_str_eq(jstr(r.json, "status"), "disabled");
    resp_free(&r);

    /* the disabled key (keys:self) may do nothing but revoke itself */
    char en[240];
    snprintf(en, sizeof(en), "%s/enable", own);
    struct {
        const char *method, *path, *body;
    } refused[] = {
        {"GET", own, NULL}, {"DELETE", other, NULL}, {"POST", "/v1/keys", "{\"scopes\":[]}"},
        {"POST", en, "{}"}, {"POST", dis, "{}"},     {"GET", "/v1/keys", NULL},
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        r = call(sa, refused[i].method, url_of(&e, refused[i].path), refused[i].body);
        cr_assert_eq(r.status, 401, "%s %s: %ld %s", refused[i].method, refused[i].path, r.status,
                     r.body);
        cr_assert_str_eq(err_name(&r), "key_disabled", "%s %s: %s", refused[i].method,
                         refused[i].path, r.body);
        resp_free(&r);
    }
    /* its keyid with another key's signature, or a body that is not the one
     * signed: still refused (the whole request is verified) */
    struct own_key x;
    own_key_new(&x);
    struct reqsign_signer *forged = label_signer(&x, "sig1", akid);
    r = call(forged, "DELETE", url_of(&e, own), NULL);
    cr_assert_eq(r.status, 401, "%ld %s", r.status, r.body);
    cr_assert_str_eq(err_name(&r), "sig_invalid");
    resp_free(&r);
    {
        struct reqsign_signed sig;
        const char *signed_body = "{\"reason\":\"superseded\"}";
        const char *sent = "{\"reason\":\"compromised\"}";
        static const char *const ct[] = {"Content-Type: application/json", NULL};
        sign(sa, "DELETE", url_of(&e, own), signed_body, strlen(signed_body), &sig);
        r = send_req("DELETE", url_of(&e, own), sent, strlen(sent), &sig, ct);
        cr_assert_eq(r.status, 401, "%ld %s", r.status, r.body);
        cr_assert_str_eq(err_name(&r), "digest_mismatch");
        resp_free(&r);
    }
    r = call(admin, "GET", url_of(&e, own), NULL);
    cr_assert_str_eq(jstr(r.json, "status"), "disabled", "%s", r.body);
    resp_free(&r);

    /* DELETE of its own keyid: 200, revoked for good */
    {
        struct reqsign_signed sig;
        const char *b = "{\"reason\":\"compromised\"}";
        static const char *const ct[] = {"Content-Type: application/json", NULL};
        sign(sa, "DELETE", url_of(&e, own), b, strlen(b), &sig);
        r = send_req("DELETE", url_of(&e, own), b, strlen(b), &sig, ct);
        cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
        cr_assert_str_eq(jstr(r.json, "status"), "revoked");
        cr_assert_str_eq(jstr(r.json, "revocation_reason"), "compromised");
        resp_free(&r);
        /* the very same request again: the key is revoked now */
        r = send_req("DELETE", url_of(&e, own), b, strlen(b), &sig, ct);
        cr_assert_eq(r.status, 401, "%ld %s", r.status, r.body);
        cr_assert_str_eq(err_name(&r), "key_revoked");
        resp_free(&r);
    }
    r = call(admin, "GET", url_of(&e, own), NULL);
    cr_assert_str_eq(jstr(r.json, "status"), "revoked", "%s", r.body);
    resp_free(&r);
    r = call(admin, "GET", url_of(&e, other), NULL);
    cr_assert_str_eq(jstr(r.json, "status"), "active", "the other key is untouched: %s", r.body);
    resp_free(&r);
    r = call(sa, "DELETE", url_of(&e, own), NULL);
    cr_assert_eq(r.status, 401, "%ld %s", r.status, r.body);
    cr_assert_str_eq(err_name(&r), "key_revoked");
    resp_free(&r);

    /* a disabled key that has expired stays refused, also for its own DELETE */
    {
        char body[160], ts[32], epath[200], edis[240];
        time_t soon = time(NULL) + 3;
        struct tm tm;
        gmtime_r(&soon, &tm);
        strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
        snprintf(body, sizeof(body), "{\"scopes\":[],\"expires_at\":\"%s\"}", ts);
        json_t *ek = create_key(&e, admin, body);
        struct reqsign_signer *es = signer_of(ek);
        snprintf(epath, sizeof(epath), "/v1/keys/%s", jstr(ek, "keyid"));
        snprintf(edis, sizeof(edis), "%s/disable", epath);
        r = call(admin, "POST", url_of(&e, edis), "{}");
        cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
        resp_free(&r);
        sleep(4);
        r = call(es, "DELETE", url_of(&e, epath), NULL);
        cr_assert_eq(r.status, 401, "%ld %s", r.status, r.body);
        cr_assert_str_eq(err_name(&r), "key_expired");
        resp_free(&r);
        reqsign_signer_free(es);
        json_decref(ek);
    }

    /* a key of a disabled account revokes itself too; its other requests stay 401 */
    char *b = NULL, *bkid = NULL;
    struct reqsign_signer *sb = account_key(&e, admin, "{\"name\":\"B\"}", &b, &bkid);
    char acct_dis[200], bown[200];
    snprintf(acct_dis, sizeof(acct_dis), "/v1/accounts/%s/disable", b);
    snprintf(bown, sizeof(bown), "/v1/keys/%s", bkid);
    r = call(admin, "POST", url_of(&e, acct_dis), "{}");
    cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
    resp_free(&r);
    r = call(sb, "GET", url_of(&e, bown), NULL);
    cr_assert_eq(r.status, 401, "%ld %s", r.status, r.body);
    cr_assert_str_eq(err_name(&r), "account_disabled");
    resp_free(&r);
    r = call(sb, "DELETE", url_of(&e, bown), NULL);
    cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
    cr_assert_str_eq(jstr(r.json, "status"), "revoked");
    resp_free(&r);

    /* audited as key.revoke, the key itself the actor */
    r = call(admin, "GET", url_of(&e, "/v1/audit?limit=1000"), NULL);
    cr_assert_eq(r.status, 200);
    json_t *ev = json_object_get(r.json, "events");
    int seen_a = 0, seen_b = 0;
    for (size_t i = 0; i < json_array_size(ev); i++) {
        json_t *x2 = json_array_get(ev, i);
        if (strcmp(jstr(x2, "action"), "key.revoke") != 0 || strcmp(jstr(x2, "outcome"), "ok"))
            continue;
        const char *actor = jstr(x2, "actor"), *target = jstr(x2, "target");
        if (actor != NULL && target != NULL && strcmp(actor, akid) == 0 &&
            strcmp(target, akid) == 0)
            seen_a = 1;
        if (actor != NULL && target != NULL && strcmp(actor, bkid) == 0 &&
            strcmp(target, bkid) == 0)
            seen_b = 1;
    }
    cr_assert(seen_a && seen_b, "no key.revoke event by the keys themselves: %s", r.body);
    resp_free(&r);

    reqsign_signer_free(forged);
    own_key_free(&x);
    reqsign_signer_free(sb);
    free(b);
    free(bkid);
    free(okid);
    reqsign_signer_free(sa);
    free(a);
    free(akid);
    reqsign_signer_free(admin);
    free(cred);
    finish(&e);
}

/* reqsign keys rotate KEYID --new-key FILE: the key made by `reqsign keygen`,
 * only its public key sent, the request signed twice (sig1 and pop). */
Test(accounts, cli_rotate_to_new_key)
{
    struct env e;
    setup(&e, NULL);
    start_backend(&e, NULL);
    char *cred = slurp(e.admin);
    struct reqsign_signer *admin = signer_from_cred(cred);
    json_t *old = create_key(&e, admin, "{\"label\":\"svc\",\"scopes\":[\"x\"]}");
    const char *oldkid = jstr(old, "keyid");
    char args[3000], *out;
    int st;
    const char *svc = e.d.url;

    snprintf(args, sizeof(args), "keygen -o '%s/new.pem'", e.dir);
    out = cli(args, &st);
    cr_assert_eq(st, 0, "%s", out);
    char nkid[64] = "";
    const char *kl = strstr(out, "keyid: ");
    cr_assert_not_null(kl, "%s", out);
    cr_assert_eq(sscanf(kl, "keyid: %63s", nkid), 1);
    free(out);

    /* usage errors: exit 2 */
    snprintf(args, sizeof(args),
             "keys rotate %s --new-key '%s/new.pem' --to-profile p --key '%s' --service %s", oldkid,
             e.dir, e.admin, svc);
    out = cli(args, &st);
    cr_assert_eq(st, 2, "%s", out);
    free(out);
    snprintf(args, sizeof(args), "keys create --new-key '%s/new.pem' --key '%s' --service %s",
             e.dir, e.admin, svc);
    out = cli(args, &st);
    cr_assert_eq(st, 2, "%s", out);
    free(out);
    snprintf(args, sizeof(args), "keys rotate %s --json -o '%s/x.json' --key '%s' --service %s",
             oldkid, e.dir, e.admin, svc);
    out = cli(args, &st);
    cr_assert_eq(st, 2, "--json without --new-key: %s", out);
    free(out);
    /* the public half cannot sign the proof: exit 1, nothing rotated */
    snprintf(args, sizeof(args),
             "keys rotate %s --new-key '%s/new.pem.pub' --key '%s' --service %s", oldkid, e.dir,
             e.admin, svc);
    out = cli(args, &st);
    cr_assert_eq(st, 1, "%s", out);
    free(out);

    snprintf(args, sizeof(args),
             "keys rotate %s --grace 60 --new-key '%s/new.pem' -o '%s/rec.json' --key '%s' "
             "--service %s",
             oldkid, e.dir, e.dir, e.admin, svc);
    out = cli(args, &st);
    cr_assert_eq(st, 0, "%s", out);
    char got[64] = "";
    cr_assert_eq(sscanf(out, "%63s", got), 1, "%s", out);
    cr_assert_str_eq(got, nkid, "the successor is the key made here: %s", out);
    free(out);
    snprintf(args, sizeof(args), "%s/rec.json", e.dir);
    char *rec = slurp(args);
    cr_assert_null(strstr(rec, "private_key"), "%s", rec);
    json_t *rj = json_loads(rec, 0, NULL);
    cr_assert_str_eq(jstr(rj, "replaces"), oldkid);
    json_decref(rj);
    free(rec);
    char path[200];
    snprintf(path, sizeof(path), "/v1/keys/%s", oldkid);
    struct resp r = call(admin, "GET", url_of(&e, path), NULL);
    cr_assert_str_eq(jstr(r.json, "replaced_by"), nkid, "%s", r.body);
    resp_free(&r);
    /* the new key signs for the api-backend: reqsign send with the key file */
    snprintf(args, sizeof(args), "send --key '%s/new.pem' %s", e.dir, burl(&e, "/r"));
    out = cli(args, &st);
    cr_assert_eq(st, 0, "%s", out);
    free(out);

    /* --json: the record on stdout; a second rotation of the same key is a conflict */
    snprintf(args, sizeof(args), "keygen -o '%s/new2.pem'", e.dir);
    free(cli(args, &st));
    cr_assert_eq(st, 0);
    snprintf(args, sizeof(args),
             "keys rotate %s --new-key '%s/new2.pem' --json --key '%s' --service %s", nkid, e.dir,
             e.admin, svc);
    out = cli(args, &st);
    cr_assert_eq(st, 0, "%s", out);
    json_t *j = json_loads(out, 0, NULL);
    cr_assert_not_null(j, "%s", out);
    cr_assert_str_eq(jstr(j, "replaces"), nkid);
    cr_assert_null(json_object_get(j, "private_key"));
    json_decref(j);
    free(out);
    out = cli(args, &st);
    cr_assert_eq(st, 1, "%s", out);
    cr_assert_not_null(strstr(out, "conflict"), "%s", out);
    free(out);

    json_decref(old);
    reqsign_signer_free(admin);
    free(cred);
    finish(&e);
}

/* A POST with no body needs no Content-Type (it reads as {}); a token tried
 * while its account is disabled is refused without being used up, so it
 * works once the account is enabled (found by an independent client). */
Test(accounts, bodyless_post_and_token_kept_while_account_disabled)
{
    struct env e;
    setup(&e, NULL);
    struct reqsign_signer *admin = load_admin(&e);
    char *tok = NULL;
    char *a = make_account(&e, admin, "{\"name\":\"C\",\"allowed_scopes\":[]}", &tok);
    char path[256];
    snprintf(path, sizeof(path), "/v1/accounts/%s/disable", a);
    struct resp r = call(admin, "POST", url_of(&e, path), NULL); /* no body, no Content-Type */
    cr_assert_eq(r.status, 200, "bodyless POST: %ld %s", r.status, r.body);
    resp_free(&r);
    r = enroll_generated(&e, tok);
    cr_assert_eq(r.status, 401, "%ld %s", r.status, r.body);
    cr_assert_str_eq(err_name(&r), "enrollment_invalid");
    resp_free(&r);
    snprintf(path, sizeof(path), "/v1/accounts/%s/enable", a);
    r = call(admin, "POST", url_of(&e, path), NULL);
    cr_assert_eq(r.status, 200, "bodyless POST: %ld %s", r.status, r.body);
    resp_free(&r);
    r = enroll_generated(&e, tok);
    cr_assert_eq(r.status, 201, "the token after the account's enable: %ld %s", r.status, r.body);
    cr_assert_str_eq(jstr(r.json, "account"), a);
    resp_free(&r);
    /* a body of another type is still refused */
    static const char *const ct[] = {"Content-Type: text/plain", NULL};
    struct reqsign_signed sig;
    sign(admin, "POST", url_of(&e, path), "x", 1, &sig);
    r = send_req("POST", url_of(&e, path), "x", 1, &sig, ct);
    cr_assert_eq(r.status, 415, "%ld %s", r.status, r.body);
    resp_free(&r);
    free(tok);
    free(a);
    finish(&e);
}
