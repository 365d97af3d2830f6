/* e2e-secrets: secret hygiene of the key service and the tools.
 *   (a) a full run (init, 5 keys created over HTTP, used against api-backend,
 *       one revoked, reqsignd restarted); then no issued private key appears
 *       in any file under the service's directory: logs, the database, its
 *       -wal / -shm, anything else. Searched forms: the PEM body, each PEM
 *       line, the raw 32-byte seed, the seed in base64url (JWK "d"), base64
 *       and hex, and the PEM armour itself;
 *   (b) reqsignd and api-backend run with RLIMIT_CORE 0 (and, when the test
 *       does not run as root, non-dumpable: their /proc/PID files belong to root);
 *   (c) private key files written by the CLI are 0600 and never overwritten;
 *       the loaders refuse 0640 / 0604 private key files unless overridden;
 *   (d) a private key sent by mistake as public_key (PEM, JWK object, JWK
 *       string) is refused and leaves no trace in reqsignd's memory: every
 *       readable mapping is searched through /proc/PID/mem (as root). */
#define _GNU_SOURCE /* memmem */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <reqsign/base64.h>
#include <reqsign/credential.h>
#include <reqsign/key.h>
#include <reqsign/signer.h>

#include "e2eutil.h"
#include "testutil.h"

struct senv {
    char *dir;       /* temporary root */
    char svc[512];   /* the service's directory: db, logs */
    char creds[512]; /* where the operator keeps credentials (not searched) */
    char db[600], admin[600], dlog[600], blog[600];
    struct tu_proc d, b;
};

static int status_of(const char *out)
{
    return strncmp(out, "HTTP/1.", 7) == 0 && strlen(out) >= 12 ? atoi(out + 9) : 0;
}

/* Sign and send over a raw socket; returns the whole response. */
static char *raw_call(const struct tu_proc *p, const struct reqsign_signer *s, const char *method,
                      const char *path, const char *body)
{
    size_t len = body != NULL ? strlen(body) : 0;
    char sig[2048];
    sig_lines(s, p, method, path, body, len, sig, sizeof(sig));
    size_t cap = len + 4096;
    char *req = malloc(cap);
    int n = snprintf(req, cap,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
                     "%sContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     method, path, p->port, sig, len, body != NULL ? body : "");
    char *out = tu_raw(p, req, (size_t)n, 0, 5000);
    free(req);
    return out;
}

static const char *body_of(const char *resp)
{
    const char *b = strstr(resp, "\r\n\r\n");
    cr_assert_not_null(b, "no body in '%.100s'", resp);
    return b + 4;
}

static void setup_dirs(struct senv *e)
{
    memset(e, 0, sizeof(*e));
    e->dir = tu_tmpdir();
    snprintf(e->svc, sizeof(e->svc), "%s/svc", e->dir);
    snprintf(e->creds, sizeof(e->creds), "%s/creds", e->dir);
    cr_assert_eq(mkdir(e->svc, 0700), 0);
    cr_assert_eq(mkdir(e->creds, 0700), 0);
    snprintf(e->db, sizeof(e->db), "%s/keys.db", e->svc);
    snprintf(e->admin, sizeof(e->admin), "%s/admin.json", e->creds);
    snprintf(e->dlog, sizeof(e->dlog), "%s/reqsignd.log", e->svc);
    snprintf(e->blog, sizeof(e->blog), "%s/backend.log", e->svc);
    reqsignd_init(e->db, e->admin, e->dlog);
}

static void start_d(struct senv *e)
{
    srv_start(&e->d, &(struct srv_opts){
                         .prog = tu_prog("REQSIGND"), .db = e->db, .log = e->dlog, .ttl = "1"});
}

static void start_b(struct senv *e)
{
    srv_start(&e->b, &(struct srv_opts){
                         .prog = tu_prog("API_BACKEND"), .db = e->db, .log = e->blog, .ttl = "1"});
}

static void cleanup(struct senv *e)
{
    char cmd[700];
    int st;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->dir);
    free(tu_run(cmd, &st));
    free(e->dir);
}

/* ---- (a) ---- */

struct needle {
    char what[64];
    uint8_t *p;
    size_t n;
};

struct needles {
    struct needle v[512];
    size_t n;
};

static void add_needle(struct needles *ns, const char *what, const void *p, size_t n)
{
    cr_assert(ns->n < sizeof(ns->v) / sizeof(ns->v[0]));
    struct needle *x = &ns->v[ns->n++];
    snprintf(x->what, sizeof(x->what), "%s", what);
    x->p = malloc(n);
    memcpy(x->p, p, n);
    x->n = n;
}

/* Every searched form of one private key PEM. */
static void needles_of(struct needles *ns, const char *label, const char *pem)
{
    char what[64];
    /* the PEM body (base64 lines joined) and each line of it */
    const char *b = strstr(pem, "-----BEGIN PRIVATE KEY-----");
    cr_assert_not_null(b, "%s: not a PKCS#8 PEM", label);
    b = strchr(b, '\n') + 1;
    const char *e = strstr(b, "-----END");
    cr_assert_not_null(e);
    char body[256];
    size_t bl = 0;
    for (const char *l = b; l < e;) {
        const char *nl = memchr(l, '\n', (size_t)(e - l));
        size_t ll = nl ? (size_t)(nl - l) : (size_t)(e - l);
        if (ll > 0) {
            snprintf(what, sizeof(what), "%s PEM line", label);
            add_needle(ns, what, l, ll);
            cr_assert(bl + ll < sizeof(body));
            memcpy(body + bl, l, ll);
            bl += ll;
        }
        l += ll + 1;
    }
    snprintf(what, sizeof(what), "%s PEM body", label);
    add_needle(ns, what, body, bl);
    /* the DER: PKCS#8 prefix + the 32-byte seed */
    uint8_t der[128];
    size_t dl = 0;
    cr_assert_eq(reqsign_base64_decode(body, bl, der, sizeof(der), &dl, NULL), REQSIGN_OK);
    cr_assert_eq(dl, 48, "%s: unexpected PKCS#8 length %zu", label, dl);
    const uint8_t *seed = der + 16;
    snprintf(what, sizeof(what), "%s raw seed", label);
    add_needle(ns, what, seed, 32);
    char t[128];
    size_t tl;
    cr_assert_eq(reqsign_base64url_encode(seed, 32, t, sizeof(t), &tl), REQSIGN_OK);
    snprintf(what, sizeof(what), "%s seed base64url (JWK d)", label);
    add_needle(ns, what, t, tl);
    cr_assert_eq(reqsign_base64_encode(seed, 32, t, sizeof(t), &tl), REQSIGN_OK);
    snprintf(what, sizeof(what), "%s seed base64", label);
    add_needle(ns, what, t, 42); /* without the last, padding-dependent characters */
    for (size_t i = 0; i < 32; i++)
        snprintf(t + 2 * i, 3, "%02x", seed[i]);
    snprintf(what, sizeof(what), "%s seed hex", label);
    add_needle(ns, what, t, 64);
}

static int search_file(const char *path, const struct needles *ns)
{
    size_t len = 0;
    char *data = tu_slurp(path, &len);
    if (data == NULL)
        return 0;
    int found = 0;
    for (size_t i = 0; i < ns->n; i++) {
        if (len >= ns->v[i].n && memmem(data, len, ns->v[i].p, ns->v[i].n) != NULL) {
            cr_log_error("%s contains %s", path, ns->v[i].what);
            found++;
        }
    }
    free(data);
    return found;
}

struct search {
    const struct needles *ns;
    int *files;
};

static int search_one(const char *path, const struct stat *st, void *ud)
{
    struct search *s = ud;
    (*s->files)++;
    cr_log_info("searched %s (%lld bytes)", path, (long long)st->st_size);
    return search_file(path, s->ns);
}

/* Every regular file under @dir, recursively. *@files counts them. */
static int search_tree(const char *dir, const struct needles *ns, int *files)
{
    cr_assert_eq(access(dir, R_OK | X_OK), 0, "%s", dir);
    struct search s = {ns, files};
    return walk_files(dir, search_one, &s, 0);
}

Test(secrets, no_private_key_in_service_files)
{
    struct senv e;
    setup_dirs(&e);
    start_d(&e);
    start_b(&e);
    size_t alen = 0;
    char *admin_json = tu_slurp(e.admin, &alen);
    cr_assert_not_null(admin_json);
    json_t *aj = json_loads(admin_json, 0, NULL);
    cr_assert_not_null(aj);
    struct needles *ns = calloc(1, sizeof(*ns));
    const char *apem = json_string_value(json_object_get(aj, "private_key"));
    needles_of(ns, "admin", apem);
    struct reqsign_signer *admin = signer_from_pem(apem);
    static const char armour[] = "-----BEGIN PRIVATE KEY-----";
    add_needle(ns, "PEM armour", armour, sizeof(armour) - 1);
    static const char dkey[] = "\"private_key\"";
    add_needle(ns, "\"private_key\" member", dkey, sizeof(dkey) - 1);

    /* five keys over HTTP, each used against api-backend */
    char keyids[5][64];
    struct reqsign_signer *users[5];
    for (int i = 0; i < 5; i++) {
        char body[128];
        snprintf(body, sizeof(body), "{\"label\":\"user %d\",\"scopes\":[\"read\"]}", i);
        char *r = raw_call(&e.d, admin, "POST", "/v1/keys", body);
        cr_assert_eq(status_of(r), 201, "create %d: %.300s", i, r);
        json_t *cj = json_loads(body_of(r), 0, NULL);
        cr_assert_not_null(cj);
        const char *pem = json_string_value(json_object_get(cj, "private_key"));
        cr_assert_not_null(pem);
        char label[32];
        snprintf(label, sizeof(label), "key %d", i);
        needles_of(ns, label, pem);
        users[i] = signer_from_pem(pem);
        snprintf(keyids[i], sizeof(keyids[i]), "%s",
                 json_string_value(json_object_get(cj, "keyid")));
        json_decref(cj);
        free(r);
        r = raw_call(&e.b, users[i], "POST", "/v1/orders", "{\"qty\":1}");
        cr_assert_eq(status_of(r), 200, "use %d: %.300s", i, r);
        free(r);
    }
    /* revoke one; it is refused afterwards */
    char path[128];
    snprintf(path, sizeof(path), "/v1/keys/%s", keyids[2]);
    char *r = raw_call(&e.d, admin, "DELETE", path, NULL);
    cr_assert_eq(status_of(r), 200, "revoke: %.300s", r);
    free(r);
    struct timespec ts = {1, 500 * 1000000L};
    nanosleep(&ts, NULL);
    r = raw_call(&e.b, users[2], "GET", "/v1/orders", NULL);
    cr_assert_eq(status_of(r), 401, "revoked key: %.300s", r);
    free(r);
    /* restart reqsignd; the keys are still there */
    cr_assert_eq(tu_proc_stop(&e.d, SIGTERM, 15000), 0, "reqsignd did not exit 0");
    start_d(&e);
    r = raw_call(&e.d, admin, "GET", "/v1/keys", NULL);
    cr_assert_eq(status_of(r), 200, "list after restart: %.300s", r);
    cr_assert_not_null(strstr(r, keyids[4]));
    free(r);
    r = raw_call(&e.b, users[4], "GET", "/v1/orders", NULL);
    cr_assert_eq(status_of(r), 200, "use after restart: %.300s", r);
    free(r);

    /* search while running (the -wal / -shm exist now), then after stopping */
    int files = 0;
    int found = search_tree(e.svc, ns, &files);
    cr_assert_eq(tu_proc_stop(&e.d, SIGTERM, 15000), 0, "reqsignd did not exit 0");
    cr_assert_eq(tu_proc_stop(&e.b, SIGTERM, 15000), 0, "api-backend did not exit 0");
    found += search_tree(e.svc, ns, &files);
    cr_log_info("searched %d files for %zu needles", files, ns->n);
    cr_assert_geq(files, 3, "expected at least the db and two logs");
    /* the logs were written: the search is not vacuous */
    size_t ll = 0;
    char *log = tu_slurp(e.dlog, &ll);
    cr_assert(log != NULL && ll > 0 && strstr(log, "method=POST path=/v1/keys status=201") != NULL,
              "reqsignd's log should have one line per request");
    free(log);
    cr_expect_eq(found, 0, "%d private key form(s) found in the service's files", found);

    for (int i = 0; i < 5; i++)
        reqsign_signer_free(users[i]);
    reqsign_signer_free(admin);
    for (size_t i = 0; i < ns->n; i++)
        free(ns->v[i].p);
    free(ns);
    json_decref(aj);
    free(admin_json);
    if (found == 0)
        cleanup(&e);
}

/* ---- (b) ---- */

static void check_no_core(const struct tu_proc *p, const char *name)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/limits", (int)p->pid);
    size_t len = 0;
    char *l = tu_slurp(path, &len);
    cr_assert_not_null(l, "%s", path);
    const char *line = strstr(l, "Max core file size");
    cr_assert_not_null(line, "%s: no core limit line", path);
    char soft[32] = "", hard[32] = "";
    cr_assert_eq(sscanf(line + strlen("Max core file size"), "%31s %31s", soft, hard), 2);
    cr_expect_str_eq(soft, "0", "%s: core file size soft limit %s", name, soft);
    cr_expect_str_eq(hard, "0", "%s: core file size hard limit %s", name, hard);
    free(l);
    /* PR_SET_DUMPABLE 0 makes /proc/PID/ files owned by root; observable
     * only when we are not root ourselves */
    snprintf(path, sizeof(path), "/proc/%d/environ", (int)p->pid);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    if (geteuid() != 0)
        cr_expect_eq(st.st_uid, 0, "%s: /proc/PID/environ is owned by uid %d: still dumpable", name,
                     (int)st.st_uid);
    else
        cr_log_info("%s: running as root, the non-dumpable flag is not observable", name);
}

Test(secrets, servers_do_not_dump_core)
{
    struct senv e;
    setup_dirs(&e);
    start_d(&e);
    start_b(&e);
    check_no_core(&e.d, "reqsignd");
    /* api-backend holds public keys only (it reads the database read-only and
     * never sees a private key): not required; reported for information */
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/limits", (int)e.b.pid);
    size_t len = 0;
    char *l = tu_slurp(path, &len);
    const char *line = l != NULL ? strstr(l, "Max core file size") : NULL;
    if (line != NULL)
        cr_log_info("api-backend: %.*s", (int)strcspn(line, "\n"), line);
    free(l);
    cr_assert_eq(tu_proc_stop(&e.d, SIGTERM, 15000), 0);
    cr_assert_eq(tu_proc_stop(&e.b, SIGTERM, 15000), 0);
    cleanup(&e);
}

/* ---- (c) ---- */

static mode_t mode_of(const char *path)
{
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "%s", path);
    return st.st_mode & 07777;
}

static int run_status(const char *cmd)
{
    int st;
    free(tu_run(cmd, &st));
    return st;
}

/* The loaders refuse @path at 0640 and 0604 (as a key file and through
 * `reqsign sign`), and accept it with the override. @is_cred: a credential JSON. */
static void check_loader_modes(const char *path, int is_cred)
{
    static const mode_t modes[] = {0640, 0604, 0660, 0644};
    char cmd[2048];
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        cr_assert_eq(chmod(path, modes[i]), 0);
        struct reqsign_error err;
        reqsign_error_clear(&err);
        if (is_cred) {
            struct reqsign_credential *c = NULL;
            cr_expect_eq(((c = reqsign_credential_load(path, NULL, 0, &err)) != NULL ? REQSIGN_OK
                                                                                     : err.code),
                         REQSIGN_E_KEY_PERMISSIONS, "%s at %04o: %s", path, (unsigned)modes[i],
                         err.message);
            reqsign_credential_free(c);
            c = NULL;
            reqsign_error_clear(&err);
            cr_expect_not_null(
                c = reqsign_credential_load(path, NULL, REQSIGN_KEY_ALLOW_PERMISSIVE, &err),
                "%s at %04o with the override: %s", path, (unsigned)modes[i], err.message);
            reqsign_credential_free(c);
        } else {
            struct reqsign_key *k = NULL;
            cr_expect_eq(
                ((k = reqsign_key_load_file(path, 0, &err)) != NULL ? REQSIGN_OK : err.code),
                REQSIGN_E_KEY_PERMISSIONS, "%s at %04o: %s", path, (unsigned)modes[i], err.message);
            reqsign_key_free(k);
            k = NULL;
            reqsign_error_clear(&err);
            cr_expect_not_null(k = reqsign_key_load_file(path, REQSIGN_KEY_ALLOW_PERMISSIVE, &err),
                               "%s at %04o with the override: %s", path, (unsigned)modes[i],
                               err.message);
            reqsign_key_free(k);
        }
        snprintf(cmd, sizeof(cmd), "'%s' sign --key '%s' http://example.com/ 2>&1", tu_cli(), path);
        cr_expect_neq(run_status(cmd), 0, "reqsign sign accepted %s at %04o", path,
                      (unsigned)modes[i]);
        snprintf(cmd, sizeof(cmd),
                 "'%s' sign --insecure-key-permissions --key '%s' http://example.com/ 2>&1",
                 tu_cli(), path);
        cr_expect_eq(run_status(cmd), 0, "reqsign sign --insecure-key-permissions refused %s",
                     path);
    }
    cr_assert_eq(chmod(path, 0600), 0);
    struct reqsign_error err;
    reqsign_error_clear(&err);
    if (!is_cred) {
        struct reqsign_key *k = NULL;
        cr_expect_not_null(k = reqsign_key_load_file(path, 0, &err), "%s", err.message);
        reqsign_key_free(k);
    }
}

Test(secrets, cli_key_files_0600_no_overwrite)
{
    struct senv e;
    setup_dirs(&e);
    umask(022); /* a permissive umask must not widen the files */
    char cmd[2048], kf[700], cf[700];

    /* reqsign keygen -o */
    snprintf(kf, sizeof(kf), "%s/k.pem", e.creds);
    snprintf(cmd, sizeof(cmd), "'%s' keygen -o '%s' >/dev/null 2>&1", tu_cli(), kf);
    cr_assert_eq(run_status(cmd), 0, "keygen -o failed");
    cr_expect_eq(mode_of(kf), 0600, "keygen -o wrote mode %04o", (unsigned)mode_of(kf));
    size_t l1 = 0, l2 = 0;
    char *before = tu_slurp(kf, &l1);
    cr_expect_neq(run_status(cmd), 0, "keygen -o overwrote an existing file");
    char *after = tu_slurp(kf, &l2);
    cr_expect(l1 == l2 && memcmp(before, after, l1) == 0, "keygen -o changed an existing file");
    free(before);
    free(after);
    /* an existing file that is not ours: also refused, untouched */
    char other[700];
    snprintf(other, sizeof(other), "%s/other.txt", e.creds);
    FILE *f = fopen(other, "w");
    fputs("precious\n", f);
    fclose(f);
    snprintf(cmd, sizeof(cmd), "'%s' keygen -o '%s' >/dev/null 2>&1", tu_cli(), other);
    cr_expect_neq(run_status(cmd), 0, "keygen -o overwrote another file");
    before = tu_slurp(other, &l1);
    cr_expect_str_eq(before, "precious\n");
    free(before);
    check_loader_modes(kf, 0);

    /* reqsign keys create -o, against a running reqsignd */
    start_d(&e);
    snprintf(cf, sizeof(cf), "%s/user.json", e.creds);
    snprintf(cmd, sizeof(cmd),
             "'%s' keys create --label u --scope read -o '%s' --key '%s' --service '%s' "
             ">/dev/null 2>&1",
             tu_cli(), cf, e.admin, e.d.url);
    cr_assert_eq(run_status(cmd), 0, "keys create -o failed");
    cr_expect_eq(mode_of(cf), 0600, "keys create -o wrote mode %04o", (unsigned)mode_of(cf));
    before = tu_slurp(cf, &l1);
    cr_expect_neq(run_status(cmd), 0, "keys create -o overwrote an existing file");
    after = tu_slurp(cf, &l2);
    cr_expect(l1 == l2 && memcmp(before, after, l1) == 0,
              "keys create -o changed an existing file");
    free(before);
    free(after);
    check_loader_modes(cf, 1);
    /* the admin credential written by `reqsignd init -o` */
    cr_expect_eq(mode_of(e.admin), 0600, "reqsignd init -o wrote mode %04o",
                 (unsigned)mode_of(e.admin));
    cr_assert_eq(tu_proc_stop(&e.d, SIGTERM, 15000), 0);
    cleanup(&e);
}

/* ---- (d) a private key sent by mistake does not stay in reqsignd's memory ---- */

/* Search every readable mapping of process @pid (/proc/PID/maps, /proc/PID/mem;
 * needs root or ptrace rights) for @ns. Returns the number of needles found;
 * *@bytes is how much memory was searched. */
static int search_process(pid_t pid, const struct needles *ns, size_t *bytes, int report)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
    FILE *maps = fopen(path, "r");
    cr_assert_not_null(maps, "%s", path);
    snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
    FILE *mem = fopen(path, "rb");
    cr_assert_not_null(mem, "%s: cannot open (run the suite as root)", path);
    int found = 0;
    *bytes = 0;
    char line[512];
    while (fgets(line, sizeof(line), maps) != NULL) {
        unsigned long lo, hi;
        char perms[8] = "";
        if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) != 3 || perms[0] != 'r' ||
            strstr(line, "[vvar]") != NULL || strstr(line, "[vsyscall]") != NULL)
            continue;
        size_t n = hi - lo;
        if (n > ((size_t)1 << 30))
            continue; /* ASan's shadow and other reservations */
        char *buf = malloc(n);
        cr_assert_not_null(buf);
        size_t got = 0;
        if (fseeko(mem, (off_t)lo, SEEK_SET) == 0)
            got = fread(buf, 1, n, mem);
        clearerr(mem);
        *bytes += got;
        for (size_t i = 0; i < ns->n; i++) {
            const char *at = got >= ns->v[i].n ? memmem(buf, got, ns->v[i].p, ns->v[i].n) : NULL;
            if (at != NULL)
                found++;
            if (at != NULL && report) {
                cr_log_error("reqsignd memory holds %s at %#lx (%.*s)", ns->v[i].what,
                             lo + (unsigned long)(at - buf), (int)strcspn(line, "\n"), line);
            }
        }
        free(buf);
    }
    fclose(mem);
    fclose(maps);
    return found;
}

Test(secrets, private_key_sent_by_mistake_is_wiped)
{
    /* glibc's MALLOC_PERTURB_ (set by meson) would scribble over some freed
     * memory: the servers must wipe it themselves */
    unsetenv("MALLOC_PERTURB_");
    struct senv e;
    setup_dirs(&e);
    start_d(&e);
    size_t alen = 0;
    char *acred = tu_slurp(e.admin, &alen);
    json_t *aj = json_loads(acred, 0, NULL);
    cr_assert_not_null(aj);
    struct reqsign_signer *admin =
        signer_from_pem(json_string_value(json_object_get(aj, "private_key")));

    /* two keys the user means to keep: one sent as a PEM, one as a JWK */
    struct needles ns;
    memset(&ns, 0, sizeof(ns));
    char pem[2][512], jwk[1024];
    for (int k = 0; k < 2; k++) {
        struct reqsign_key *key = NULL;
        cr_assert_not_null(key = reqsign_key_generate(NULL));
        size_t n;
        cr_assert_eq(reqsign_key_private_pem(key, pem[k], sizeof(pem[k]), &n), REQSIGN_OK);
        if (k == 1) {
            char pub[256];
            cr_assert_eq(reqsign_key_public_jwk(key, pub, sizeof(pub), &n), REQSIGN_OK);
            json_t *j = json_loads(pub, 0, NULL);
            cr_assert_not_null(j);
            struct needles tmp;
            memset(&tmp, 0, sizeof(tmp));
            needles_of(&tmp, "x", pem[k]);
            /* tmp.v: the seed's base64url is the JWK "d" */
            const char *d = NULL;
            for (size_t i = 0; i < tmp.n; i++)
                if (strstr(tmp.v[i].what, "base64url") != NULL)
                    d = strndup((const char *)tmp.v[i].p, tmp.v[i].n);
            cr_assert_not_null(d);
            json_object_set_new(j, "d", json_string(d));
            char *s = json_dumps(j, JSON_COMPACT);
            snprintf(jwk, sizeof(jwk), "%s", s);
            free(s);
            free((void *)d);
            json_decref(j);
            for (size_t i = 0; i < tmp.n; i++)
                free(tmp.v[i].p);
        }
        needles_of(&ns, k == 0 ? "PEM-sent key" : "JWK-sent key", pem[k]);
        reqsign_key_free(key);
    }

    /* each sent by mistake, in each form reqsignd takes */
    char body[2048];
    json_t *b = json_pack("{s:s, s:s}", "label", "oops", "public_key", pem[0]);
    char *bs = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    char *out = raw_call(&e.d, admin, "POST", "/v1/keys", bs);
    cr_assert_eq(status_of(out), 400, "private PEM: %.300s", out);
    cr_assert_not_null(strstr(out, "private key"), "%.300s", out);
    free(out);
    free(bs);
    snprintf(body, sizeof(body), "{\"label\":\"oops\",\"public_key\":%s}", jwk);
    out = raw_call(&e.d, admin, "POST", "/v1/keys", body);
    cr_assert_eq(status_of(out), 400, "private JWK object: %.300s", out);
    free(out);
    b = json_pack("{s:s, s:s}", "label", "oops", "public_key", jwk);
    bs = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    out = raw_call(&e.d, admin, "POST", "/v1/keys", bs);
    cr_assert_eq(status_of(out), 400, "private JWK string: %.300s", out);
    free(out);
    free(bs);
    /* review item 7: signed, then the body tampered with (the PEM kept):
     * 401 digest_mismatch, and the body is wiped on that path too */
    {
        json_t *tb = json_pack("{s:s, s:s}", "label", "oops", "public_key", pem[0]);
        char *tbs = json_dumps(tb, JSON_COMPACT);
        json_decref(tb);
        char turl[256];
        snprintf(turl, sizeof(turl), "http://127.0.0.1:%d/v1/keys", e.d.port);
        struct reqsign_sign_input tin;
        struct reqsign_signed tsg;
        memset(&tin, 0, sizeof(tin));
        tin.method = "POST";
        tin.url = turl;
        tin.body = tbs;
        tin.body_len = strlen(tbs);
        cr_assert_eq(reqsign_signer_sign(admin, &tin, &tsg, NULL), REQSIGN_OK);
        char *lab = strstr(tbs, "oops");
        cr_assert_not_null(lab);
        lab[3] = 'z'; /* "oopz": same length, another digest */
        size_t tcap = strlen(tbs) + 4096;
        char *treq = malloc(tcap);
        int tn = snprintf(treq, tcap,
                          "POST /v1/keys HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                          "Content-Type: application/json\r\nContent-Digest: %s\r\n"
                          "Signature-Input: %s\r\nSignature: %s\r\nContent-Length: %zu\r\n"
                          "Connection: close\r\n\r\n%s",
                          e.d.port, tsg.content_digest, tsg.signature_input, tsg.signature,
                          strlen(tbs), tbs);
        out = tu_raw(&e.d, treq, (size_t)tn, 0, 5000);
        cr_assert_eq(status_of(out), 401, "tampered body: %.300s", out);
        cr_assert_not_null(strstr(out, "digest_mismatch"), "%.300s", out);
        free(out);
        free(treq);
        free(tbs);
    }
    /* once more on a connection kept alive (libmicrohttpd keeps its read
     * buffer while the connection lives): scanned before it closes */
    b = json_pack("{s:s, s:s}", "label", "oops", "public_key", pem[0]);
    bs = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    char url[256];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/keys", e.d.port);
    struct reqsign_sign_input in;
    struct reqsign_signed sg;
    memset(&in, 0, sizeof(in));
    in.method = "POST";
    in.url = url;
    in.body = bs;
    in.body_len = strlen(bs);
    cr_assert_eq(reqsign_signer_sign(admin, &in, &sg, NULL), REQSIGN_OK);
    size_t req_cap = strlen(bs) + 4096;
    char *req = malloc(req_cap);
    int rn =
        snprintf(req, req_cap,
                 "POST /v1/keys HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                 "Content-Type: application/json\r\nContent-Digest: %s\r\n"
                 "Signature-Input: %s\r\nSignature: %s\r\nContent-Length: %zu\r\n\r\n%s",
                 e.d.port, sg.content_digest, sg.signature_input, sg.signature, strlen(bs), bs);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)e.d.port);
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    cr_assert_eq(send(fd, req, (size_t)rn, MSG_NOSIGNAL), rn);
    char ans[4096] = "";
    struct pollfd pfd = {fd, POLLIN, 0};
    cr_assert_gt(poll(&pfd, 1, 5000), 0);
    cr_assert_gt(recv(fd, ans, sizeof(ans) - 1, 0), 0);
    cr_assert_eq(status_of(ans), 400, "kept alive: %.300s", ans);
    free(req);
    free(bs);
    struct timespec ts = {0, 300 * 1000000L};
    nanosleep(&ts, NULL);

    size_t bytes = 0;
    int found = search_process(e.d.pid, &ns, &bytes, 1);
    cr_log_info("searched %zu bytes of reqsignd's memory for %zu forms", bytes, ns.n);
    cr_assert_gt(bytes, 0);
    /* the scan works: the admin key reqsignd never saw is absent, but its
     * public keyid, which reqsignd has used, is there */
    struct needles pub;
    memset(&pub, 0, sizeof(pub));
    const char *kid = json_string_value(json_object_get(aj, "keyid"));
    add_needle(&pub, "the admin keyid", kid, strlen(kid));
    size_t pbytes = 0;
    cr_assert_gt(search_process(e.d.pid, &pub, &pbytes, 0), 0, "the scan does not see memory");
    close(fd);

    cr_assert_eq(tu_proc_stop(&e.d, SIGTERM, 15000), 0);
    for (size_t i = 0; i < ns.n; i++)
        free(ns.v[i].p);
    free(pub.v[0].p);
    reqsign_signer_free(admin);
    json_decref(aj);
    free(acred);
    cr_expect_eq(found, 0, "%d private key form(s) left in reqsignd's memory", found);
    cleanup(&e);
}
