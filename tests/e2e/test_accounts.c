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
#include <reqsign/signer.h>

#include "e2eutil.h"
#include "testutil.h"

TestSuite(accounts, .timeout = 180);

/* reqsignd with a 1 s key cache and @extra options. */
static void setup(struct env *e, const char *enroll_ttl)
{
    memset(e, 0, sizeof(*e));
    e->dir = tu_tmpdir();
    snprintf(e->db, sizeof(e->db), "%s/keys.db", e->dir);
    snprintf(e->admin, sizeof(e->admin), "%s/admin.json", e->dir);
    snprintf(e->log, sizeof(e->log), "%s/reqsignd.log", e->dir);
    snprintf(e->blog, sizeof(e->blog), "%s/backend.log", e->dir);
    run_init(e);
    char *argv[] = {(char *)tu_prog("REQSIGND"), "--db", e->db, "--listen", "127.0.0.1:0",
                    "--cache-ttl", "1", "--enrollment-ttl",
                    (char *)(enroll_ttl != NULL ? enroll_ttl : "86400"), NULL};
    cr_assert_eq(tu_proc_start(&e->d, argv, e->log, 10000), 0, "reqsignd did not start");
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
    cr_assert_eq(reqsign_key_generate(&k->key, &err), REQSIGN_OK);
    cr_assert_eq(reqsign_key_public_pem(k->key, k->pub_pem, sizeof(k->pub_pem), &n), REQSIGN_OK);
    cr_assert_eq(reqsign_key_private_pem(k->key, k->priv_pem, sizeof(k->priv_pem), &n),
                 REQSIGN_OK);
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
static struct resp enroll_byo(struct env *e, const struct reqsign_signer *signer,
                              const char *token, const char *pub_pem)
{
    json_t *b = json_pack("{s:s, s:s, s:s}", "token", token, "label", "laptop", "public_key",
                          pub_pem);
    char *body = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    struct resp r = call(signer, "POST", url_of(e, "/v1/enroll"), body);
    free(body);
    return r;
}

/* 1 if the file at @path holds @needle (@n bytes). */
static int file_holds(const char *path, const void *needle, size_t n)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return 0;
    static char buf[1 << 22];
    size_t len = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    for (size_t i = 0; i + n <= len; i++)
        if (memcmp(buf + i, needle, n) == 0)
            return 1;
    return 0;
}

/* The 32-byte seed inside a PKCS#8 Ed25519 PEM (the last 32 bytes of its DER). */
static void seed_of(const char *pem, uint8_t seed[32])
{
    char b64[256] = "";
    const char *p = strstr(pem, "-----\n") + 6;
    const char *end = strstr(p, "\n-----END");
    size_t o = 0;
    for (; p < end && o < sizeof(b64) - 1; p++)
        if (*p != '\n')
            b64[o++] = *p;
    b64[o] = '\0';
    uint8_t der[128];
    size_t dl = 0;
    cr_assert_eq(reqsign_base64_decode(b64, o, der, sizeof(der), &dl, NULL), REQSIGN_OK);
    cr_assert_geq(dl, 32);
    memcpy(seed, der + dl - 32, 32);
}

Test(accounts, enroll_byo_and_generated_tokens_single_use)
{
    struct env e;
    setup(&e, NULL);
    char *cred = slurp(e.admin);
    struct reqsign_signer *admin = signer_from_cred(cred);
    char *tok = NULL;
    char *acct = make_account(&e, admin,
                              "{\"name\":\"Customer A\",\"allowed_scopes\":[\"payments:write\"]}",
                              &tok);

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
    seed_of(k.priv_pem, seed);
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
    reqsign_signer_free(admin);
    free(cred);
    finish(&e);
}

Test(accounts, expired_token_refused)
{
    struct env e;
    setup(&e, "1");
    char *cred = slurp(e.admin);
    struct reqsign_signer *admin = signer_from_cred(cred);
    char *tok = NULL;
    char *acct = make_account(&e, admin, "{\"name\":\"B\"}", &tok);
    sleep(2);
    struct resp r = enroll_generated(&e, tok);
    cr_assert_eq(r.status, 401, "%ld %s", r.status, r.body);
    cr_assert_str_eq(err_name(&r), "enrollment_invalid");
    resp_free(&r);
    free(tok);
    free(acct);
    reqsign_signer_free(admin);
    free(cred);
    finish(&e);
}
