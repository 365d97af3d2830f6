/* Suite cli: the reqsign command-line tool, run as a program (tu_cli()).
 * Every command's output and exit status is part of its interface. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

#define B26_URL "'https://example.com/foo?param=Value&Pet=dog'"
#define B26_BODY "'{\"hello\": \"world\"}'"
#define CREATED 1700000000LL

/* Run a shell command (printf-style); "$R" is the CLI. Returns its stdout. */
static char *run(int *status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *run(int *status, const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    int n = snprintf(cmd, sizeof(cmd), "R='%s'; ", tu_cli());
    cr_assert(n > 0 && (size_t)n < sizeof(cmd));
    va_start(ap, fmt);
    int m = vsnprintf(cmd + n, sizeof(cmd) - (size_t)n, fmt, ap);
    va_end(ap);
    cr_assert(m > 0 && (size_t)m < sizeof(cmd) - (size_t)n, "command too long");
    return tu_run(cmd, status);
}

/* The last non-empty line of @s (static buffer). */
static const char *last_line(const char *s)
{
    static char line[1024];
    size_t n = strlen(s);
    while (n > 0 && s[n - 1] == '\n')
        n--;
    size_t start = n;
    while (start > 0 && s[start - 1] != '\n')
        start--;
    snprintf(line, sizeof(line), "%.*s", (int)(n - start), s + start);
    return line;
}

static void rm_rf(char *dir)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
    free(dir);
}

/* keygen -o DIR/NAME; returns the keyid printed. */
static void keygen(const char *dir, const char *name, char keyid[64])
{
    int st;
    char *out = run(&st, "\"$R\" keygen -o '%s/%s'", dir, name);
    cr_assert_eq(st, 0, "keygen: %s", out);
    const char *k = strstr(out, "keyid: ");
    cr_assert_not_null(k, "%s", out);
    cr_assert_eq(sscanf(k, "keyid: %63s", keyid), 1);
    free(out);
}

/* Write @len bytes to DIR/NAME. */
static void write_file(const char *dir, const char *name, const void *data, size_t len)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "%s", path);
    cr_assert_eq(fwrite(data, 1, len, f), len);
    cr_assert_eq(fclose(f), 0);
}

/* The RFC 9421 B.2.6 headers as a JSON file DIR/NAME, with Date replaced if @date. */
static void b26_headers(const char *dir, const char *name, const char *date)
{
    char path[512];
    json_t *v = tu_json("spec/vectors/rfc9421-b26.json");
    json_t *h = json_object_get(v, "headers");
    cr_assert(json_is_object(h));
    if (date != NULL)
        cr_assert_eq(json_object_set_new(h, "Date", json_string(date)), 0);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    cr_assert_eq(json_dump_file(h, path, 0), 0);
    json_decref(v);
}

/* Exit 1 and the last line "error: @name: ...", for the case @what. */
static void expect_error_in(const char *what, const char *out, int st, const char *name)
{
    char prefix[64];
    snprintf(prefix, sizeof(prefix), "error: %s: ", name);
    cr_assert_eq(st, 1, "%s: expected %s, exit %d: %s", what, name, st, out);
    cr_assert_eq(strncmp(last_line(out), prefix, strlen(prefix)), 0, "%s: expected %s: %s", what,
                 name, out);
    cr_assert_eq(out[strlen(out) - 1], '\n', "%s: no newline at the end: %s", what, out);
}

static void expect_error(const char *out, int st, const char *name)
{
    expect_error_in("", out, st, name);
}

/* ------------------------------------------------------------- tables */

/* One run of the CLI and what it must give: a row of a table run_rows() runs;
 * every message names the row. */
struct cli_row {
    const char *what;   /* the case, for failure messages */
    const char *cmd;    /* a shell command: "$R" is the CLI, placeholders as run_rows() is given */
    int exit;           /* the exit status (ANY_EXIT: not checked) */
    const char *out;    /* the whole stdout (NULL: not checked) */
    const char *error;  /* the last line is "error: NAME: ..." and the exit 1 (NULL: not checked) */
    const char *starts; /* stdout begins with this (NULL: not checked) */
    const char *has[4]; /* stdout holds each (placeholders too; NULL ends) */
    const char *lacks[4]; /* stdout holds none of these */
    const char *last;     /* the last line of stdout holds this (NULL: not checked) */
};
#define ANY_EXIT (-1)

/* @tmpl with each placeholder of @subs (name, value pairs, NULL-terminated) replaced. */
static void expand(char *dst, size_t cap, const char *tmpl, const char *const *subs)
{
    size_t n = 0;
    for (const char *p = tmpl; *p != '\0';) {
        const char *src = p;
        size_t len = 1, skip = 1;
        for (size_t i = 0; subs[i] != NULL; i += 2)
            if (strncmp(p, subs[i], strlen(subs[i])) == 0) {
                src = subs[i + 1];
                len = strlen(src);
                skip = strlen(subs[i]);
                break;
            }
        cr_assert(n + len < cap, "too long: %s", tmpl);
        memcpy(dst + n, src, len);
        n += len;
        p += skip;
    }
    dst[n] = '\0';
}

static void run_rows(const struct cli_row *rows, size_t n, const char *const *subs)
{
    for (size_t i = 0; i < n; i++) {
        const struct cli_row *r = &rows[i];
        char cmd[8192], frag[1024];
        expand(cmd, sizeof(cmd), r->cmd, subs);
        int st;
        char *out = run(&st, "%s", cmd);
        if (r->error != NULL)
            expect_error_in(r->what, out, st, r->error);
        else if (r->exit != ANY_EXIT)
            cr_assert_eq(st, r->exit, "%s: exit %d, expected %d: %s", r->what, st, r->exit, out);
        if (r->out != NULL)
            cr_assert_str_eq(out, r->out, "%s: stdout", r->what);
        if (r->starts != NULL)
            cr_assert_eq(strncmp(out, r->starts, strlen(r->starts)), 0,
                         "%s: does not begin '%s': %s", r->what, r->starts, out);
        for (size_t k = 0; k < 4 && r->has[k] != NULL; k++) {
            expand(frag, sizeof(frag), r->has[k], subs);
            cr_assert_not_null(strstr(out, frag), "%s: no '%s' in: %s", r->what, frag, out);
        }
        for (size_t k = 0; k < 4 && r->lacks[k] != NULL; k++) {
            expand(frag, sizeof(frag), r->lacks[k], subs);
            cr_assert_null(strstr(out, frag), "%s: '%s' in: %s", r->what, frag, out);
        }
        if (r->last != NULL)
            cr_assert_not_null(strstr(last_line(out), r->last), "%s: no '%s' on the last line: %s",
                               r->what, r->last, out);
        free(out);
    }
}

/* run_rows() over the array @rows; the rest: placeholder, value, ... */
#define RUN_ROWS(rows, ...)                                                                        \
    run_rows(rows, sizeof(rows) / sizeof(rows[0]), (const char *const[]){__VA_ARGS__, NULL})

/* ---------------------------------------------------------------- help */

Test(cli, help_and_version)
{
    static const char *const cmds[] = {
        "--help",      "-h",          "help",          "help sign",     "help verify",
        "help keygen", "sign --help", "verify --help", "keygen --help", "verify -h",
        "help key",    "key --help",  "help accounts", "help enroll",   "help audit",
        "enroll -h",   "audit --help"};
    int st;
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        char *out = run(&st, "\"$R\" %s 2>/dev/null", cmds[i]);
        cr_assert_eq(st, 0, "reqsign %s: exit %d", cmds[i], st);
        cr_assert_not_null(strstr(out, "usage: reqsign"), "reqsign %s: %s", cmds[i], out);
        free(out);
    }
    char *out = run(&st, "\"$R\" --version");
    cr_assert_eq(st, 0);
    cr_assert_str_eq(out, "reqsign 0.1.0\n");
    free(out);
    out = run(&st, "\"$R\" sign --help");
    cr_assert_not_null(strstr(out, "--insecure-key-permissions"));
    free(out);
}

/* --------------------------------------------------------- usage errors */

Test(cli, usage_errors_exit_2)
{
    static const char *const cmds[] = {
        "",
        "frobnicate",
        "--frobnicate",
        "help frobnicate",
        "keygen extra",
        "keygen -o",
        "keygen --bogus",
        "sign https://example.com/",                 /* no --key */
        "sign --key k.pem",                          /* no URL */
        "sign --key k.pem https://a/ https://b/",    /* two URLs */
        "sign --key k.pem --bogus https://a/",       /* unknown option */
        "sign --key k.pem -X",                       /* missing argument */
        "sign --key k.pem --created abc https://a/", /* bad number */
        "sign --key k.pem --created 12x https://a/",
        "sign --key k.pem --created '' https://a/",
        "sign --key k.pem --created 99999999999999999999999 https://a/",
        "sign --key k.pem --expires-in -5 https://a/",
        "sign --key k.pem -H 'no colon' https://a/",
        "sign --key k.pem --json=1 https://a/",
        "verify https://example.com/", /* no --pub */
        "verify --pub k.pem",          /* no URL */
        "verify --pub k.pem --now soon https://a/",
        "verify --pub k.pem --now -1 https://a/",
        "verify --pub k.pem --max-age 0 https://a/",
        "verify --pub k.pem --max-age 1.5 https://a/",
        "verify --pub k.pem --skew x https://a/",
        "verify --pub k.pem --profile rfc9999 https://a/",
        "verify --pub k.pem -H ': empty name' https://a/",
        "verify --pub k.pem --headers - --data @- https://a/",
        "verify --pub",
    };
    int st;
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        char *out = run(
            &st, "cd /tmp && HOME=/nonexistent XDG_CONFIG_HOME= \"$R\" %s 2>/dev/null </dev/null",
            cmds[i]);
        cr_assert_eq(st, 2, "reqsign %s: exit %d", cmds[i], st);
        cr_assert_str_eq(out, "", "reqsign %s: stdout not empty: %s", cmds[i], out);
        free(out);
        /* one line for the message and a pointer to the help go to stderr,
         * not the whole help (issue 16 item 15) */
        out = run(
            &st,
            "cd /tmp && HOME=/nonexistent XDG_CONFIG_HOME= \"$R\" %s 2>&1 >/dev/null </dev/null",
            cmds[i]);
        cr_assert_not_null(strstr(out, "see 'reqsign"), "reqsign %s: %s", cmds[i], out);
        cr_assert_null(strstr(out, "usage: reqsign"), "reqsign %s: the whole help: %s", cmds[i],
                       out);
        cr_assert_null(strstr(out, "Options:"), "reqsign %s: the whole help: %s", cmds[i], out);
        const char *nl = strchr(out, '\n');
        cr_assert(nl != NULL && strncmp(nl + 1, "see 'reqsign", 12) == 0,
                  "reqsign %s: not one line then the hint: %s", cmds[i], out);
        free(out);
    }
}

/* A keyid is a thumbprint: 43 base64url characters, one in 64 beginning with
 * '-'. Such a keyid is the KEYID operand, not an option (this failed CI once as
 * "rotate: unknown option '-bZJ...'"), also when it begins like -o or -v; a
 * shorter dash word is still an unknown option. The service is a closed port,
 * so a parsed command fails with 1 (could not connect), a usage error with 2. */
Test(cli, keys_keyid_beginning_with_dash)
{
    static const char *const subs[] = {"get", "revoke", "disable", "enable", "rotate"};
    static const char *const kids[] = {"-bZJaOQs2LXJ9W-23LggRmN4nNYULc1LH1SxxxsBlcM",
                                       "-oZJaOQs2LXJ9W-23LggRmN4nNYULc1LH1SxxxsBlcM",
                                       "-vZJaOQs2LXJ9W-23LggRmN4nNYULc1LH1SxxxsBlcM"};
    int st;
    char *dir = tu_tmpdir(), kid[64];
    keygen(dir, "k.json", kid);
    char *out;
    for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
        for (size_t j = 0; j < sizeof(kids) / sizeof(kids[0]); j++) {
            const char *extra = strcmp(subs[i], "rotate") == 0 ? "-o" : "";
            const char *file = strcmp(subs[i], "rotate") == 0 ? "/new.json" : "";
            out =
                run(&st,
                    "\"$R\" keys %s %s %s %s%s --key '%s/k.json' --service http://127.0.0.1:1 2>&1",
                    subs[i], kids[j], extra, *file ? dir : "", file, dir);
            cr_assert_eq(st, 1, "keys %s %s: exit %d: %s", subs[i], kids[j], st, out);
            cr_assert_null(strstr(out, "unknown option"), "%s", out);
            free(out);
        }
    }
    out = run(&st, "\"$R\" keys get -bZJ --key '%s/k.json' --service http://127.0.0.1:1 2>&1", dir);
    cr_assert_eq(st, 2, "%s", out);
    cr_assert_not_null(strstr(out, "unknown option '-bZJ'"), "%s", out);
    free(out);
    free(dir);
}

/* --------------------------------------------------------------- keygen */

Test(cli, keygen_file_is_0600_and_never_overwritten)
{
    char *dir = tu_tmpdir();
    char path[512], keyid[64];
    struct stat sb;
    int st;

    char *out = run(&st, "\"$R\" keygen -o '%s/k.pem'", dir);
    cr_assert_eq(st, 0, "%s", out);
    cr_assert_null(strstr(out, "PRIVATE"), "the private key must not be printed with -o");
    cr_assert_not_null(strstr(out, "-----BEGIN PUBLIC KEY-----\n"), "%s", out);
    cr_assert_not_null(strstr(out, "-----END PUBLIC KEY-----\n"), "%s", out);
    cr_assert_eq(sscanf(last_line(out), "keyid: %63s", keyid), 1, "%s", out);
    cr_assert_eq(strlen(keyid), 43, "keyid %s", keyid);
    cr_assert_eq(strspn(keyid, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
                 43);
    free(out);

    snprintf(path, sizeof(path), "%s/k.pem", dir);
    cr_assert_eq(stat(path, &sb), 0);
    cr_assert_eq(sb.st_mode & 0777, 0600, "mode %o", (unsigned)(sb.st_mode & 0777));
    char *before = run(&st, "cat '%s'", path);
    cr_assert_not_null(strstr(before, "-----BEGIN PRIVATE KEY-----\n"), "%s", before);

    /* refuses to overwrite: exit 1, file untouched */
    out = run(&st, "\"$R\" keygen -o '%s' 2>&1", path);
    cr_assert_eq(st, 1, "%s", out);
    cr_assert_not_null(strstr(out, "error: io:"), "%s", out);
    cr_assert_null(strstr(out, "PRIVATE"), "%s", out);
    free(out);
    char *after = run(&st, "cat '%s'", path);
    cr_assert_str_eq(before, after);
    free(before);
    free(after);

    /* a symlink to a missing file is refused too (O_EXCL) */
    out = run(&st,
              "ln -s '%s/nothing' '%s/link' && \"$R\" keygen -o '%s/link' >/dev/null 2>&1; "
              "echo $?; test -e '%s/nothing' && echo created",
              dir, dir, dir, dir);
    cr_assert_str_eq(out, "1\n");
    free(out);
    rm_rf(dir);
}

Test(cli, keygen_keyid_is_what_sign_uses)
{
    char *dir = tu_tmpdir();
    char keyid[64], expect[128];
    int st;

    /* without -o: private PEM first, then public PEM, then keyid */
    char *out = run(&st, "umask 077; \"$R\" keygen > '%s/all.txt' && cat '%s/all.txt'", dir, dir);
    cr_assert_eq(st, 0);
    cr_assert_eq(strncmp(out, "-----BEGIN PRIVATE KEY-----\n", 28), 0, "%s", out);
    const char *pub = strstr(out, "-----BEGIN PUBLIC KEY-----\n");
    cr_assert_not_null(pub);
    cr_assert(pub > strstr(out, "-----END PRIVATE KEY-----\n"));
    cr_assert_eq(sscanf(last_line(out), "keyid: %63s", keyid), 1, "%s", out);
    cr_assert_eq(strlen(keyid), 43);
    free(out);

    /* the whole output is a loadable key file (the library reads the private PEM) */
    snprintf(expect, sizeof(expect), "keyid=\"%s\"", keyid);
    out = run(&st, "\"$R\" sign --key '%s/all.txt' https://example.com/", dir);
    cr_assert_eq(st, 0, "%s", out);
    cr_assert_not_null(strstr(out, expect), "%s does not name %s", out, keyid);
    free(out);

    /* and with -o */
    keygen(dir, "k.pem", keyid);
    snprintf(expect, sizeof(expect), "keyid=\"%s\"", keyid);
    out = run(&st, "\"$R\" sign --key '%s/k.pem' https://example.com/", dir);
    cr_assert_eq(st, 0, "%s", out);
    cr_assert_not_null(strstr(out, expect), "%s", out);
    free(out);

    /* two keys differ */
    char keyid2[64];
    keygen(dir, "k2.pem", keyid2);
    cr_assert_str_neq(keyid, keyid2);
    rm_rf(dir);
}

/* ----------------------------------------------------------------- sign */

Test(cli, sign_output_format)
{
    char *dir = tu_tmpdir();
    char keyid[64];
    int st;
    keygen(dir, "k.pem", keyid);

    char *out =
        run(&st, "\"$R\" sign --key '%s/k.pem' --data hello https://example.com/a?b=c", dir);
    cr_assert_eq(st, 0, "%s", out);
    char cd[256], si[1024], sig[256];
    cr_assert_eq(sscanf(out,
                        "Content-Digest: %255[^\n]\nSignature-Input: %1023[^\n]\n"
                        "Signature: %255[^\n]\n",
                        cd, si, sig),
                 3, "%s", out);
    cr_assert_str_eq(cd, "sha-256=:LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=:");
    cr_assert_eq(strncmp(si,
                         "sig1=(\"@method\" \"@authority\" \"@path\" \"@query\" "
                         "\"content-digest\");created=",
                         72),
                 0, "%s", si);
    cr_assert_eq(strncmp(sig, "sig1=:", 6), 0);
    free(out);

    /* --json: one flat object with the three fields */
    out = run(&st,
              "\"$R\" sign --key '%s/k.pem' --json --label mysig --tag app --sha512 "
              "--expires-in 60 --created 1700000000 https://example.com/",
              dir);
    cr_assert_eq(st, 0, "%s", out);
    json_error_t je;
    json_t *j = json_loads(out, 0, &je);
    cr_assert_not_null(j, "%s: %s", out, je.text);
    cr_assert_eq(json_object_size(j), 3);
    const char *v = json_string_value(json_object_get(j, "Content-Digest"));
    cr_assert_not_null(v);
    cr_assert_eq(strncmp(v, "sha-512=:", 9), 0, "%s", v);
    v = json_string_value(json_object_get(j, "Signature-Input"));
    cr_assert_not_null(v);
    cr_assert_eq(strncmp(v, "mysig=(", 7), 0, "%s", v);
    cr_assert_not_null(strstr(v, ";created=1700000000;"), "%s", v);
    cr_assert_not_null(strstr(v, ";expires=1700000060"), "%s", v);
    cr_assert_not_null(strstr(v, ";tag=\"app\""), "%s", v);
    v = json_string_value(json_object_get(j, "Signature"));
    cr_assert_not_null(v);
    cr_assert_eq(strncmp(v, "mysig=:", 7), 0, "%s", v);
    json_decref(j);
    free(out);

    /* --show-base goes to stderr only */
    out =
        run(&st, "\"$R\" sign --key '%s/k.pem' --show-base https://example.com/x 2>/dev/null", dir);
    cr_assert_eq(st, 0);
    cr_assert_null(strstr(out, "@signature-params"));
    free(out);
    out = run(&st, "\"$R\" sign --key '%s/k.pem' --show-base https://example.com/x 2>&1 >/dev/null",
              dir);
    cr_assert_not_null(strstr(out, "\"@method\": GET\n\"@authority\": example.com\n"
                                   "\"@path\": /x\n\"@query\": ?\n"),
                       "%s", out);
    cr_assert_not_null(strstr(out, "\"@signature-params\": "), "%s", out);
    free(out);
    rm_rf(dir);
}

Test(cli, sign_is_deterministic_with_created_and_nonce)
{
    char *dir = tu_tmpdir();
    int st;
    /* the RFC 9421 B.1.4 key, whose signatures we can predict */
    char *pem = tu_read("tests/vectors/keys/rfc9421-ed25519.pem", NULL);
    write_file(dir, "rfc.pem", pem, strlen(pem));
    free(pem);
    char *a = run(&st,
                  "chmod 600 '%s/rfc.pem' && \"$R\" sign --key '%s/rfc.pem' --keyid "
                  "test-key-ed25519 --created 1618884473 --nonce abcdefghijklmnop --data " B26_BODY
                  " " B26_URL,
                  dir, dir);
    cr_assert_eq(st, 0, "%s", a);
    char *b = run(&st,
                  "\"$R\" sign --key '%s/rfc.pem' --keyid test-key-ed25519 --created "
                  "1618884473 --nonce abcdefghijklmnop -X POST --data " B26_BODY " " B26_URL,
                  dir);
    cr_assert_eq(st, 0, "%s", b);
    cr_assert_str_eq(a, b);
    /* the same fields the library test expects (tests/unit/test_signer.c) */
    static const char expect[] =
        "Content-Digest: sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:\n"
        "Signature-Input: sig1=(\"@method\" \"@authority\" \"@path\" \"@query\" "
        "\"content-digest\");created=1618884473;nonce=\"abcdefghijklmnop\";"
        "keyid=\"test-key-ed25519\";alg=\"ed25519\"\nSignature: sig1=:";
    cr_assert_eq(strncmp(a, expect, strlen(expect)), 0, "%s", a);
    free(b);
    /* --json is deterministic too */
    b = run(&st,
            "for i in 1 2; do \"$R\" sign --json --key '%s/rfc.pem' --created 1618884473 "
            "--nonce abcdefghijklmnop https://example.com/; done | sort -u | wc -l",
            dir);
    cr_assert_str_eq(b, "1\n");
    free(a);
    free(b);
    rm_rf(dir);
}

Test(cli, sign_refuses_private_key_readable_by_others)
{
    char *dir = tu_tmpdir();
    char keyid[64];
    keygen(dir, "k.pem", keyid);
    static const struct cli_row rows[] = {
        {.what = "mode 0644",
         .cmd = "chmod 644 '@D@/k.pem' && \"$R\" sign --key '@D@/k.pem' https://example.com/ 2>&1",
         .exit = 1,
         .has = {"key_permissions", "permissions"},
         .lacks = {"Signature"}},
        /* nothing on stdout */
        {.what = "mode 0644, stdout",
         .cmd = "\"$R\" sign --key '@D@/k.pem' https://example.com/ 2>/dev/null",
         .exit = 1,
         .out = ""},
        {.what = "--insecure-key-permissions",
         .cmd = "\"$R\" sign --insecure-key-permissions --key '@D@/k.pem' https://example.com/",
         .has = {"Signature: sig1=:"}},
        /* a public key cannot sign; a missing file is an I/O error */
        {.what = "a public key",
         .cmd = "\"$R\" keygen -o '@D@/k2.pem' > '@D@/pub.pem' && \"$R\" sign --key '@D@/pub.pem' "
                "https://example.com/ 2>&1",
         .exit = 1,
         .has = {"error: "}},
        {.what = "a missing file",
         .cmd = "\"$R\" sign --key '@D@/missing.pem' https://example.com/ 2>&1",
         .exit = 1,
         .has = {"error: io:"}},
    };
    RUN_ROWS(rows, "@D@", dir);
    rm_rf(dir);
}

/* Issue 12 item 9: a credential in an argument is readable by every local
 * user (/proc/PID/cmdline, ps). --key refuses inline JSON with a reason (exit
 * 2, nothing signed or sent); '-' reads the credential from stdin instead. */
Test(cli, key_refuses_inline_credential_and_reads_stdin)
{
    char *dir = tu_tmpdir();
    int st;
    char *jwk = tu_read("spec/vectors/keys/test-key-ed25519.jwk", NULL);
    write_file(dir, "k.jwk", jwk, strlen(jwk));
    free(jwk);
    static const char *const inline_forms[] = {"\"$(cat '%s/k.jwk')\"", "\" $(cat '%s/k.jwk')\""};
    for (size_t i = 0; i < 2; i++) {
        char arg[600];
        snprintf(arg, sizeof(arg), inline_forms[i], dir);
        /* sign, send and keys all refuse it before doing anything */
        static const char *const cmds[] = {
            "\"$R\" sign --key %s --created 1618884473 --nonce abcdefghijklmnop "
            "https://example.com/",
            "\"$R\" send --key %s http://127.0.0.1:9/",
            "\"$R\" keys list --service http://127.0.0.1:9 --key %s"};
        for (size_t k = 0; k < 3; k++) {
            char cmd[1400], full[1500];
            snprintf(cmd, sizeof(cmd), cmds[k], arg);
            snprintf(full, sizeof(full), "%s 2>'%s/err'", cmd, dir);
            int cst;
            char *out = run(&cst, "%s", full);
            char *err = run(&st, "cat '%s/err'", dir);
            cr_assert_eq(cst, 2, "%s: exit %d, stdout %s, stderr %s", cmd, cst, out, err);
            cr_assert_str_eq(out, "", "%s: %s", cmd, out);
            cr_assert_not_null(strstr(err, "inline credential JSON refused"), "%s", err);
            cr_assert_not_null(strstr(err, "/proc"), "%s", err);
            cr_assert_not_null(strstr(err, "'-'"), "%s", err);
            cr_assert_not_null(strstr(err, "REQSIGN_CREDENTIAL"), "%s", err);
            cr_assert_null(strstr(err, "n4Ni-HpISpVObnQMW0wOhCKROaIKqKtW"), "echoes the key: %s",
                           err);
            free(out);
            free(err);
        }
    }
    /* the same credential from a file, and from stdin: the same signature */
    char *a = run(&st,
                  "chmod 600 '%s/k.jwk' && \"$R\" sign --key '%s/k.jwk' --created 1618884473 "
                  "--nonce abcdefghijklmnop https://example.com/",
                  dir, dir);
    cr_assert_eq(st, 0, "%s", a);
    char *b = run(&st,
                  "\"$R\" sign --key - --created 1618884473 --nonce abcdefghijklmnop "
                  "https://example.com/ < '%s/k.jwk'",
                  dir);
    cr_assert_eq(st, 0, "%s", b);
    cr_assert_str_eq(a, b);
    cr_assert_not_null(strstr(a, "Signature: sig1=:"), "%s", a);
    free(a);
    free(b);
    /* a PEM key on stdin too */
    char keyid[64];
    keygen(dir, "k.pem", keyid);
    a = run(&st,
            "\"$R\" sign --key '%s/k.pem' --created 1618884473 --nonce abcdefghijklmnop "
            "https://example.com/",
            dir);
    cr_assert_eq(st, 0, "%s", a);
    b = run(&st,
            "\"$R\" sign --key - --created 1618884473 --nonce abcdefghijklmnop "
            "https://example.com/ < '%s/k.pem'",
            dir);
    cr_assert_eq(st, 0, "%s", b);
    cr_assert_str_eq(a, b);
    free(a);
    free(b);
    /* stdin cannot be both the key and the body; empty stdin is no key */
    a = run(&st, "echo x | \"$R\" sign --key - --data @- https://example.com/ 2>&1");
    cr_assert_eq(st, 2, "%s", a);
    cr_assert_not_null(strstr(a, "stdin"), "%s", a);
    free(a);
    a = run(&st, "\"$R\" sign --key - https://example.com/ < /dev/null 2>&1");
    cr_assert_eq(st, 1, "%s", a);
    cr_assert_not_null(strstr(a, "error: "), "%s", a);
    free(a);
    rm_rf(dir);
}

/* Review 12 item 9: key material in --key other than credential JSON (an
 * inline PEM, a JSON array, anything with a line break, a raw hex seed) is
 * refused too (exit 2), and no error ever echoes the argument: before, it was
 * taken as a path and "cannot open -----BEGIN PRIVATE KEY-----..." printed. */
Test(cli, key_refuses_inline_key_material_without_echo)
{
    char *dir = tu_tmpdir();
    char keyid[64];
    int st;
    keygen(dir, "k.pem", keyid);
    char *pem = run(&st, "cat '%s/k.pem'", dir);
    cr_assert_eq(st, 0);
    /* the base64 body of the PEM: the secret that must never be printed */
    char *b = strstr(pem, "-----\n");
    cr_assert_not_null(b);
    char secret[17];
    snprintf(secret, sizeof(secret), "%.16s", b + 6);
    static const char *const forms[] = {
        "\"$(cat '%s/k.pem')\"",
        "\"$(tr -d '\\n' < '%s/k.pem')\"",
        "\"[$(cat '%s/k.pem' | sed -n 2p)]\"",
        "\"$(cat '%s/k.pem' | sed -n 2p)\n\"",
        "\"x$(printf '\\nMC4CAQAw')%.0s\"",
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60%.0s"};
    static const char *const cmds[] = {
        "\"$R\" sign --key %s --created 1618884473 --nonce abcdefghijklmnop "
        "https://example.com/",
        "\"$R\" send --key %s http://127.0.0.1:9/",
        "\"$R\" keys list --service http://127.0.0.1:9 --key %s"};
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        char arg[600];
        snprintf(arg, sizeof(arg), forms[i], dir);
        for (size_t k = 0; k < 3; k++) {
            char cmd[1400];
            snprintf(cmd, sizeof(cmd), cmds[k], arg);
            int cst;
            char *out = run(&cst, "%s 2>&1", cmd);
            cr_assert_eq(cst, 2, "%s: exit %d, output %s", cmd, cst, out);
            cr_assert_not_null(strstr(out, "refused"), "%s: %s", cmd, out);
            cr_assert_not_null(strstr(out, "/proc"), "%s: %s", cmd, out);
            cr_assert_null(strstr(out, secret), "%s echoes the key: %s", cmd, out);
            cr_assert_null(strstr(out, "MC4CAQAw"), "%s echoes the key: %s", cmd, out);
            cr_assert_null(strstr(out, "9d61b19deffd5a60"), "%s echoes the key: %s", cmd, out);
            free(out);
        }
    }
    /* a key in REQSIGN_CREDENTIAL that is not JSON is not echoed either */
    char *out = run(
        &st, "REQSIGN_CREDENTIAL=\"$(cat '%s/k.pem')\" \"$R\" send http://127.0.0.1:9/ 2>&1", dir);
    cr_assert_neq(st, 0, "%s", out);
    cr_assert_null(strstr(out, secret), "echoes the key: %s", out);
    cr_assert_null(strstr(out, "BEGIN"), "echoes the key: %s", out);
    free(out);
    /* nor any of a malformed credential: jansson's "invalid token near 'MC'"
     * quotes the input, here the start of the private key */
    out = run(&st,
              "REQSIGN_CREDENTIAL=\"{\\\"private_key\\\": $(sed -n 2p '%s/k.pem')}\" "
              "\"$R\" send http://127.0.0.1:9/ 2>&1",
              dir);
    cr_assert_neq(st, 0, "%s", out);
    cr_assert_not_null(strstr(out, "json"), "%s", out);
    cr_assert_null(strstr(out, "near"), "quotes the input: %s", out);
    cr_assert_null(strstr(out, "MC"), "echoes the key: %s", out);
    free(out);
    /* a plain missing path is still named in the error */
    out = run(&st, "\"$R\" sign --key '%s/missing.pem' https://example.com/ 2>&1", dir);
    cr_assert_eq(st, 1, "%s", out);
    cr_assert_not_null(strstr(out, "missing.pem"), "%s", out);
    free(out);
    free(pem);
    rm_rf(dir);
}

/* --------------------------------------------------------------- verify */

#define ITEMS_URL "'https://api.example.com:8443/v1/items?b=2&a=1'"
#define ITEMS_VERIFY(opts, url)                                                                    \
    "\"$R\" verify " opts " --headers '@D@/h.json' --data 'hello world' " url

Test(cli, roundtrip_json_headers_file)
{
    char *dir = tu_tmpdir();
    char keyid[64];
    int st;
    keygen(dir, "k.pem", keyid);
    char *out = run(
        &st, "\"$R\" sign --key '%s/k.pem' --json --data 'hello world' " ITEMS_URL " > '%s/h.json'",
        dir, dir);
    cr_assert_eq(st, 0, "%s", out);
    free(out);
    static const struct cli_row rows[] = {
        {.what = "--headers FILE",
         .cmd = ITEMS_VERIFY("--pub '@D@/k.pem'", ITEMS_URL),
         .out = "ok\n"},
        /* -v adds keyid and created; --headers - reads stdin */
        {.what = "-v, --headers -",
         .cmd = "\"$R\" verify -v --pub '@D@/k.pem' --headers - --data 'hello world' " ITEMS_URL
                " < '@D@/h.json'",
         .starts = "ok\nkeyid: ",
         .has = {"@K@"}},
        /* --keyid: only that keyid maps to --pub */
        {.what = "--keyid KEYID", .cmd = ITEMS_VERIFY("--keyid @K@ --pub '@D@/k.pem'", ITEMS_URL)},
        {.what = "--keyid other",
         .cmd = ITEMS_VERIFY("--keyid other-key --pub '@D@/k.pem'", ITEMS_URL),
         .error = "key_unknown"},
        /* Host from -H overrides the URL's authority */
        {.what = "-H Host",
         .cmd =
             ITEMS_VERIFY("--pub '@D@/k.pem'",
                          "-H 'Host: api.example.com:8443' 'https://10.0.0.1/v1/items?b=2&a=1'")},
        /* --authority: the public authority behind a proxy */
        {.what = "--authority",
         .cmd = ITEMS_VERIFY("--pub '@D@/k.pem'", "--authority api.example.com:8443 "
                                                  "'http://backend:8080/v1/items?b=2&a=1'")},
    };
    RUN_ROWS(rows, "@D@", dir, "@K@", keyid);
    rm_rf(dir);
}

/* The three lines "sign" wrote to @D@/FILE, as -H options. */
#define H_LINES(file)                                                                              \
    "-H \"$(sed -n 1p '@D@/" file "')\" -H \"$(sed -n 2p '@D@/" file "')\" "                       \
    "-H \"$(sed -n 3p '@D@/" file "')\""

Test(cli, roundtrip_header_lines)
{
    char *dir = tu_tmpdir();
    char keyid[64];
    keygen(dir, "k.pem", keyid);
    static const struct cli_row rows[] = {
        {.what = "GET with a header",
         .cmd = "\"$R\" sign --key '@D@/k.pem' -H 'Accept: text/plain' https://example.com/hello > "
                "'@D@/h.txt' && \"$R\" verify --pub '@D@/k.pem' " H_LINES(
                    "h.txt") " -H 'Accept: text/plain' https://example.com/hello",
         .out = "ok\n"},
        /* POST with --data, -X given explicitly on one side only */
        {.what = "POST, -X on one side",
         .cmd =
             "\"$R\" sign --key '@D@/k.pem' -X POST --data '{\"a\":1}' https://example.com/items > "
             "'@D@/p.txt' && \"$R\" verify --pub '@D@/k.pem' " H_LINES(
                 "p.txt") " --data '{\"a\":1}' https://example.com/items",
         .out = "ok\n"},
        {.what = "unsigned",
         .cmd = "\"$R\" verify --pub '@D@/k.pem' https://example.com/hello",
         .error = "sig_missing"},
    };
    RUN_ROWS(rows, "@D@", dir);
    rm_rf(dir);
}

/* Review 12 N6 / issue 16 item 12: verify --pub takes what sign --key takes
 * (the key service's credential JSON) and the key service's key record
 * ("public_key" PEM, "jwk"); before, "key_format: JWK has no \"kty\"". */
Test(cli, verify_pub_accepts_credential_and_key_record)
{
    char *dir = tu_tmpdir();
    char keyid[64];
    int st;
    char *out = run(&st, "\"$R\" keygen -o '%s/k.pem'", dir);
    cr_assert_eq(st, 0, "%s", out);
    cr_assert_eq(sscanf(last_line(out), "keyid: %63s", keyid), 1, "%s", out);
    char *pb = strstr(out, "-----BEGIN PUBLIC KEY-----");
    char *pe = strstr(out, "-----END PUBLIC KEY-----\n");
    cr_assert(pb != NULL && pe != NULL, "%s", out);
    pe[strlen("-----END PUBLIC KEY-----\n")] = '\0';
    char *priv = run(&st, "cat '%s/k.pem'", dir);
    cr_assert_eq(st, 0);
    char path[512];
    /* the credential the service returns at creation */
    json_t *cred =
        json_pack("{s:s, s:s, s:s, s:s, s:[s], s:s}", "keyid", keyid, "alg", "ed25519",
                  "private_key", priv, "public_key", pb, "scopes", "orders:read", "label", "x");
    cr_assert_not_null(cred);
    snprintf(path, sizeof(path), "%s/cred.json", dir);
    cr_assert_eq(json_dump_file(cred, path, 0), 0);
    cr_assert_eq(chmod(path, 0600), 0);
    json_decref(cred);
    /* a key record (GET /v1/keys/KEYID), with the PEM or only the JWK */
    json_t *rec = json_pack("{s:s, s:s, s:s, s:[s], s:s}", "keyid", keyid, "alg", "ed25519",
                            "public_key", pb, "scopes", "orders:read", "status", "active");
    snprintf(path, sizeof(path), "%s/rec.json", dir);
    cr_assert_eq(json_dump_file(rec, path, 0), 0);
    json_decref(rec);
    free(priv);
    free(out); /* pb pointed into it */
    /* sign with the credential, verify with each form */
    out = run(&st, "\"$R\" sign --key '%s/cred.json' https://example.com/hello > '%s/h.txt'", dir,
              dir);
    cr_assert_eq(st, 0, "%s", out);
    free(out);
    static const char *const pubs[] = {"k.pem", "cred.json", "rec.json"};
    for (size_t i = 0; i < 3; i++) {
        out = run(&st,
                  "\"$R\" verify --pub '%s/%s' -H \"$(sed -n 1p '%s/h.txt')\" "
                  "-H \"$(sed -n 2p '%s/h.txt')\" -H \"$(sed -n 3p '%s/h.txt')\" "
                  "https://example.com/hello 2>&1",
                  dir, pubs[i], dir, dir, dir);
        cr_assert_eq(st, 0, "--pub %s: %s", pubs[i], out);
        cr_assert_str_eq(out, "ok\n", "--pub %s", pubs[i]);
        free(out);
    }
    /* a record with only "jwk" (the public JWK of the test vector key) */
    json_t *jwk = tu_json("spec/vectors/keys/test-key-ed25519.jwk");
    cr_assert_not_null(jwk);
    json_object_del(jwk, "d");
    rec = json_pack("{s:s, s:O}", "keyid", "test-key-ed25519", "jwk", jwk);
    snprintf(path, sizeof(path), "%s/rec2.json", dir);
    cr_assert_eq(json_dump_file(rec, path, 0), 0);
    json_decref(rec);
    json_decref(jwk);
    char *jwkfile = tu_read("spec/vectors/keys/test-key-ed25519.jwk", NULL);
    write_file(dir, "t.jwk", jwkfile, strlen(jwkfile));
    free(jwkfile);
    out = run(&st,
              "chmod 600 '%s/t.jwk' && \"$R\" sign --key '%s/t.jwk' https://example.com/hello > "
              "'%s/h2.txt' && \"$R\" verify --pub '%s/rec2.json' -H \"$(sed -n 1p '%s/h2.txt')\" "
              "-H \"$(sed -n 2p '%s/h2.txt')\" -H \"$(sed -n 3p '%s/h2.txt')\" "
              "https://example.com/hello 2>&1",
              dir, dir, dir, dir, dir, dir, dir);
    cr_assert_eq(st, 0, "--pub rec2.json: %s", out);
    cr_assert_str_eq(out, "ok\n");
    free(out);
    /* JSON that is neither: still a key_format error */
    write_file(dir, "other.json", "{\"a\":1}", 7);
    out = run(&st, "\"$R\" verify --pub '%s/other.json' https://example.com/hello", dir);
    cr_assert_eq(st, 1, "%s", out);
    cr_assert_not_null(strstr(out, "key_format"), "%s", out);
    free(out);
    rm_rf(dir);
}

/* Sign once (created CREATED, --json) into DIR/h.json. */
static void sign_fixed(const char *dir, const char *extra, const char *body, const char *url)
{
    int st;
    char *out = run(&st,
                    "\"$R\" sign --key '%s/k.pem' --json --created %lld %s --data '%s' '%s' "
                    "> '%s/h.json'",
                    dir, CREATED, extra, body, url, dir);
    cr_assert_eq(st, 0, "%s", out);
    free(out);
}

/* A command verifying against @D@/h.json (see sign_fixed()) with --pub @D@/PUB. */
#define VERIFY_FIXED(pub, extra, body, url)                                                        \
    "\"$R\" verify --pub '@D@/" pub "' --headers '@D@/h.json' " extra " --data '" body "' '" url   \
    "' 2>/dev/null"

#define TRANSFER "https://bank.example/transfer?to=alice"

Test(cli, verify_failures)
{
    char *dir = tu_tmpdir();
    char keyid[64], other[64];
    keygen(dir, "k.pem", keyid);
    keygen(dir, "other.pem", other);
    sign_fixed(dir, "", "amount=10", TRANSFER);
    static const struct cli_row rows[] = {
        {.what = "as signed",
         .cmd = VERIFY_FIXED("k.pem", "--now 1700000010", "amount=10", TRANSFER),
         .out = "ok\n"},
        {.what = "tampered body",
         .cmd = VERIFY_FIXED("k.pem", "--now 1700000010", "amount=99", TRANSFER),
         .error = "digest_mismatch"},
        /* tampered path, query, host, method */
        {.what = "tampered path",
         .cmd = VERIFY_FIXED("k.pem", "--now 1700000010", "amount=10",
                             "https://bank.example/transfeR?to=alice"),
         .error = "sig_invalid"},
        {.what = "tampered query",
         .cmd = VERIFY_FIXED("k.pem", "--now 1700000010", "amount=10",
                             "https://bank.example/transfer?to=mallory"),
         .error = "sig_invalid"},
        {.what = "tampered host",
         .cmd = VERIFY_FIXED("k.pem", "--now 1700000010", "amount=10",
                             "https://evil.example/transfer?to=alice"),
         .error = "sig_invalid"},
        {.what = "tampered method",
         .cmd = VERIFY_FIXED("k.pem", "--now 1700000010 -X PUT", "amount=10", TRANSFER),
         .error = "sig_invalid"},
        /* the target is not normalised: a dot segment is a different path */
        {.what = "dot segment",
         .cmd = VERIFY_FIXED("k.pem", "--now 1700000010", "amount=10",
                             "https://bank.example/x/../transfer?to=alice"),
         .error = "sig_invalid"},
        /* ... but a fragment is not part of the target, and the default port is */
        {.what = "fragment and default port",
         .cmd = VERIFY_FIXED("k.pem", "--now 1700000010", "amount=10",
                             "https://bank.example:443/transfer?to=alice#frag")},
        {.what = "wrong key",
         .cmd = VERIFY_FIXED("other.pem", "--now 1700000010", "amount=10", TRANSFER),
         .error = "sig_invalid"},
        /* time window */
        {.what = "too old",
         .cmd = VERIFY_FIXED("k.pem", "--now 1800000000", "amount=10", TRANSFER),
         .error = "sig_too_old"},
        {.what = "future",
         .cmd = VERIFY_FIXED("k.pem", "--now 1699990000", "amount=10", TRANSFER),
         .error = "sig_future"},
        /* --max-age: 100 s old is fine by default, too old with --max-age 60 (+30 s skew) */
        {.what = "100 s old",
         .cmd = VERIFY_FIXED("k.pem", "--now 1700000100", "amount=10", TRANSFER)},
        {.what = "--max-age 60",
         .cmd = VERIFY_FIXED("k.pem", "--now 1700000100 --max-age 60", "amount=10", TRANSFER),
         .error = "sig_too_old"},
        {.what = "--max-age 60 --skew 50",
         .cmd = VERIFY_FIXED("k.pem", "--now 1700000100 --max-age 60 --skew 50", "amount=10",
                             TRANSFER)},
        {.what = "--max-age 600",
         .cmd = VERIFY_FIXED("k.pem", "--now 1700000400 --max-age 600", "amount=10", TRANSFER)},
        /* --show-base prints the base on failure too, on stderr */
        {.what = "--show-base on failure",
         .cmd = "\"$R\" verify --pub '@D@/other.pem' --headers '@D@/h.json' --now 1700000010 "
                "--data amount=10 --show-base '" TRANSFER "' 2>&1 >/dev/null",
         .exit = ANY_EXIT,
         .has = {"\"@path\": /transfer\n\"@query\": ?to=alice\n"},
         .lacks = {"error:"}},
    };
    RUN_ROWS(rows, "@D@", dir);
    rm_rf(dir);
}

Test(cli, verify_expires_and_bad_input)
{
    char *dir = tu_tmpdir();
    char keyid[64];
    keygen(dir, "k.pem", keyid);
    sign_fixed(dir, "--expires-in 10", "x", "https://example.com/");
    static const struct {
        const char *name, *text;
    } files[] = {{"bad.json", "[1, 2]"},
                 {"bad2.json", "{\"A\": 1}"},
                 {"bad3.json", "{not json"},
                 /* a header given as an array of strings is several field lines */
                 {"arr.json", "{\"Signature\": [\"a=:AA==:\", \"b=:AA==:\"]}"}};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
        write_file(dir, files[i].name, files[i].text, strlen(files[i].text));
    static const struct cli_row rows[] = {
        {.what = "before expires",
         .cmd = VERIFY_FIXED("k.pem", "--now 1700000005", "x", "https://example.com/")},
        {.what = "after expires",
         .cmd = VERIFY_FIXED("k.pem", "--now 1700000060", "x", "https://example.com/"),
         .error = "sig_expired"},
        /* malformed --headers file, missing --pub file, URL without scheme: exit 1 */
        {.what = "--headers not an object",
         .cmd = "\"$R\" verify --pub '@D@/k.pem' --headers '@D@/bad.json' https://example.com/",
         .error = "invalid_arg"},
        {.what = "--headers with a number",
         .cmd = "\"$R\" verify --pub '@D@/k.pem' --headers '@D@/bad2.json' https://example.com/",
         .error = "invalid_arg"},
        {.what = "--headers not JSON",
         .cmd = "\"$R\" verify --pub '@D@/k.pem' --headers '@D@/bad3.json' https://example.com/",
         .error = "invalid_arg"},
        {.what = "missing --pub",
         .cmd = "\"$R\" verify --pub '@D@/nope.pem' https://example.com/",
         .error = "io"},
        {.what = "URL without scheme",
         .cmd = "\"$R\" verify --pub '@D@/k.pem' example.com/path",
         .error = "url"},
        {.what = "--headers with an array",
         .cmd = "\"$R\" verify --pub '@D@/k.pem' --headers '@D@/arr.json' https://example.com/",
         .exit = 1,
         .last = "error: "},
    };
    RUN_ROWS(rows, "@D@", dir);
    rm_rf(dir);
}

/* ------------------------------------------------------- RFC 9421 B.2.6 */

Test(cli, rfc9421_b26)
{
    char *dir = tu_tmpdir();
    char *pub = tu_path("tests/vectors/keys/rfc9421-ed25519.pub.pem");
    char *priv = tu_path("tests/vectors/keys/rfc9421-ed25519.pem");
    int st;
    b26_headers(dir, "b26.json", NULL);
    b26_headers(dir, "b26-date.json", "Tue, 20 Apr 2021 02:07:56 GMT");
#define B26_VERIFY(pub, headers, rest)                                                             \
    "\"$R\" verify --profile rfc9421 --now 1618884473 --pub '" pub "' --headers '@D@/" headers     \
    "' --data " B26_BODY " " rest
    static const struct cli_row rows[] = {
        {.what = "B.2.6", .cmd = B26_VERIFY("@P@", "b26.json", B26_URL), .out = "ok\n"},
        /* the private key file works as --pub too (only its public part is used) */
        {.what = "private key as --pub",
         .cmd = B26_VERIFY("@V@", "b26.json", B26_URL " 2>/dev/null")},
        {.what = "a tampered Date",
         .cmd = B26_VERIFY("@P@", "b26-date.json", B26_URL),
         .error = "sig_invalid"},
        /* the default reqsign profile refuses it: not replay-safe */
        {.what = "the reqsign profile",
         .cmd =
             "\"$R\" verify --now 1618884473 --pub '@P@' --headers '@D@/b26.json' --data " B26_BODY
             " " B26_URL,
         .error = "component_required"},
    };
    RUN_ROWS(rows, "@D@", dir, "@P@", pub, "@V@", priv);

    /* the base the verifier computed is the RFC's */
    char cmd[2048];
    expand(cmd, sizeof(cmd),
           B26_VERIFY("@P@", "b26.json", "--show-base " B26_URL " 2>&1 >/dev/null"),
           (const char *const[]){"@D@", dir, "@P@", pub, NULL});
#undef B26_VERIFY
    char *out = run(&st, "%s", cmd);
    json_t *v = tu_json("spec/vectors/rfc9421-b26.json");
    char expect[2048];
    snprintf(expect, sizeof(expect), "%s\n", json_string_value(json_object_get(v, "base")));
    cr_assert_str_eq(out, expect);
    json_decref(v);
    free(out);
    free(priv);
    free(pub);
    rm_rf(dir);
}

/* ------------------------------------------------------------------ body */

Test(cli, data_from_file_and_stdin)
{
    char *dir = tu_tmpdir();
    char keyid[64];
    int st;
    char *out;
    keygen(dir, "k.pem", keyid);

    size_t len = (size_t)3 << 20; /* 3 MiB */
    unsigned char *buf = malloc(len);
    cr_assert_not_null(buf);
    uint32_t x = 12345;
    for (size_t i = 0; i < len; i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (unsigned char)(x >> 24);
    }
    write_file(dir, "big.bin", buf, len);
    buf[len / 2] ^= 1;
    write_file(dir, "big2.bin", buf, len);
    free(buf);

    out = run(&st,
              "\"$R\" sign --key '%s/k.pem' --json --data @'%s/big.bin' "
              "https://upload.example/blob > '%s/h.json'",
              dir, dir, dir);
    cr_assert_eq(st, 0, "%s", out);
    free(out);
#define BLOB_VERIFY(opts, data)                                                                    \
    "\"$R\" verify --pub '@D@/k.pem' --headers '@D@/h.json' " opts "--data " data                  \
    " https://upload.example/blob"
    static const struct cli_row rows[] = {
        /* POST is the default method with --data, on both sides */
        {.what = "-X GET", .cmd = BLOB_VERIFY("-X GET ", "@'@D@/big.bin'"), .error = "sig_invalid"},
        {.what = "from the file", .cmd = BLOB_VERIFY("", "@'@D@/big.bin'"), .out = "ok\n"},
        /* from stdin, and through a pipe */
        {.what = "from stdin", .cmd = BLOB_VERIFY("", "@-") " < '@D@/big.bin'"},
        {.what = "through a pipe", .cmd = "cat '@D@/big.bin' | " BLOB_VERIFY("", "@-")},
        {.what = "one bit changed",
         .cmd = BLOB_VERIFY("", "@'@D@/big2.bin'"),
         .error = "digest_mismatch"},
        /* signing from stdin gives the same Content-Digest as from the file */
        {.what = "sign from stdin",
         .cmd = "a=$(\"$R\" sign --key '@D@/k.pem' --data @- https://upload.example/blob < "
                "'@D@/big.bin' | head -1); b=$(\"$R\" sign --key '@D@/k.pem' --data @'@D@/big.bin' "
                "https://upload.example/blob | head -1); test \"$a\" = \"$b\" && echo same",
         .exit = ANY_EXIT,
         .out = "same\n"},
        /* a missing body file */
        {.what = "missing body file",
         .cmd = "\"$R\" sign --key '@D@/k.pem' --data @'@D@/none' https://upload.example/ 2>&1",
         .exit = 1,
         .has = {"error: io:"}},
    };
#undef BLOB_VERIFY
    RUN_ROWS(rows, "@D@", dir);
    rm_rf(dir);
}

/* Issue 12 item 13: a URL with an empty or missing authority is refused with
 * `url` by sign, send (the libcurl glue: nothing is resolved or sent) and
 * verify alike; libcurl alone would take the first path segment as the host. */
Test(cli, url_without_authority_refused)
{
    char *dir = tu_tmpdir();
    char keyid[64];
    keygen(dir, "k.pem", keyid);
    static const char *const bad[] = {"https:///adcp/x", "https:/host/p", "http://",
                                      "http:host/p",     "HTTPS:///x",    "http://user@/x",
                                      "http://:8080/x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int st;
        char *out = run(&st, "\"$R\" sign --key '%s/k.pem' '%s' 2>&1", dir, bad[i]);
        expect_error(out, st, "url");
        cr_assert_null(strstr(out, "@authority"), "%s: %s", bad[i], out);
        free(out);
        out = run(&st, "\"$R\" send --key '%s/k.pem' '%s' 2>&1", dir, bad[i]);
        cr_assert_eq(st, 1, "send %s: exit %d: %s", bad[i], st, out);
        cr_assert_not_null(strstr(out, "error: url: "), "send %s: %s", bad[i], out);
        cr_assert_null(strstr(out, "resolve"), "send %s tried to resolve: %s", bad[i], out);
        free(out);
        out = run(&st, "\"$R\" verify --pub '%s/k.pem' '%s'", dir, bad[i]);
        expect_error(out, st, "url");
        free(out);
    }
    rm_rf(dir);
}

/* ------------------------------------------------------------ profiles */

/* The keyid "sign" puts in Signature-Input with environment/options @pre
 * and @args; NULL if it failed (*@st its exit status, *@err its stderr). */
static char *signed_keyid(const char *dir, const char *pre, const char *args, int *st, char **err)
{
    char *out = run(st,
                    "cd '%s' && env -u REQSIGN_CREDENTIAL -u REQSIGN_PROFILE %s \"$R\" sign %s "
                    "https://example.com/ 2>'%s/stderr'",
                    dir, pre, args, dir);
    char path[600];
    snprintf(path, sizeof(path), "%s/stderr", dir);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    static char ebuf[4096];
    size_t n = fread(ebuf, 1, sizeof(ebuf) - 1, f);
    ebuf[n] = '\0';
    fclose(f);
    *err = ebuf;
    const char *k = strstr(out, ";keyid=\"");
    char *kid = NULL;
    if (k != NULL) {
        kid = strndup(k + 8, 43);
    }
    free(out);
    return kid;
}

/* Credentials as the AWS CLI keeps them (issue 16 item 12): every signing
 * command resolves --key | --profile > REQSIGN_CREDENTIAL > REQSIGN_PROFILE >
 * the profile "default", under $XDG_CONFIG_HOME/reqsign/credentials/NAME.json
 * (else ~/.config/reqsign/...); errors name the path looked at. */
Test(cli, credential_profiles_resolution_order)
{
    char *dir = tu_tmpdir(), kdef[64], kwork[64], kenv[64], kkey[64], khome[64];
    char pre[1024], args[2200], *err, *kid;
    int st;
    char *out =
        run(&st, "mkdir -p '%s/xdg/reqsign/credentials' '%s/home/.config/reqsign/credentials'", dir,
            dir);
    cr_assert_eq(st, 0);
    free(out);
    keygen(dir, "xdg/reqsign/credentials/default.json", kdef);
    keygen(dir, "xdg/reqsign/credentials/work.json", kwork);
    keygen(dir, "env.pem", kenv);
    keygen(dir, "key.pem", kkey);
    keygen(dir, "home/.config/reqsign/credentials/default.json", khome);

    /* @X@: the keyid of key X; @D@: the directory */
#define PRE "HOME='@D@/home' XDG_CONFIG_HOME='@D@/xdg'"
#define ENV_CRED PRE " REQSIGN_PROFILE=work REQSIGN_CREDENTIAL='@D@/env.pem'"
    static const struct {
        const char *what, *env, *args;
        int exit;
        const char *kid;    /* the keyid signed with (NULL: none, the command failed) */
        const char *err[2]; /* stderr holds each (NULL ends) */
    } rows[] = {
        /* nothing named: the default profile */
        {"nothing named", PRE, "", 0, "@DEF@", {NULL}},
        /* --profile and REQSIGN_PROFILE */
        {"--profile", PRE, "--profile work", 0, "@WORK@", {NULL}},
        {"REQSIGN_PROFILE", PRE " REQSIGN_PROFILE=work", "", 0, "@WORK@", {NULL}},
        /* REQSIGN_CREDENTIAL beats REQSIGN_PROFILE and the default; the command
         * line (--key, --profile) beats the environment, as with the AWS CLI */
        {"REQSIGN_CREDENTIAL", ENV_CRED, "", 0, "@ENV@", {NULL}},
        {"--profile over the environment", ENV_CRED, "--profile work", 0, "@WORK@", {NULL}},
        {"--key over the environment", ENV_CRED, "--key key.pem", 0, "@KEY@", {NULL}},
        {"--key and --profile", ENV_CRED, "--profile work --key key.pem", 2, NULL, {NULL}},
        /* without XDG_CONFIG_HOME: ~/.config/reqsign */
        {"no XDG_CONFIG_HOME", "HOME='@D@/home' XDG_CONFIG_HOME=", "", 0, "@HOME@", {NULL}},
        /* a profile that does not exist: exit 1, the path looked at named */
        {"--profile nosuch",
         PRE,
         "--profile nosuch",
         1,
         NULL,
         {"@D@/xdg/reqsign/credentials/nosuch.json"}},
        {"REQSIGN_PROFILE=nosuch",
         PRE " REQSIGN_PROFILE=nosuch",
         "",
         1,
         NULL,
         {"@D@/xdg/reqsign/credentials/nosuch.json"}},
        /* a name that is no name: a usage error */
        {"--profile ../work", PRE, "--profile ../work", 2, NULL, {NULL}},
        /* no credential at all: a usage error naming the default looked for */
        {"no credential",
         "HOME='@D@/nohome' XDG_CONFIG_HOME=",
         "",
         2,
         NULL,
         {"@D@/nohome/.config/reqsign/credentials/default.json", "--profile"}},
    };
    const char *const subs[] = {"@D@", dir,     "@DEF@", kdef,     "@WORK@", kwork, "@ENV@",
                                kenv,  "@KEY@", kkey,    "@HOME@", khome,    NULL};
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        char want[600];
        expand(pre, sizeof(pre), rows[i].env, subs);
        kid = signed_keyid(dir, pre, rows[i].args, &st, &err);
        cr_assert_eq(st, rows[i].exit, "%s: exit %d, expected %d: %s", rows[i].what, st,
                     rows[i].exit, err);
        if (rows[i].kid != NULL) {
            expand(want, sizeof(want), rows[i].kid, subs);
            cr_assert_not_null(kid, "%s: no keyid signed with", rows[i].what);
            cr_assert_str_eq(kid, want, "%s", rows[i].what);
        } else
            cr_assert_null(kid, "%s: signed with %s", rows[i].what, kid);
        free(kid);
        for (size_t k = 0; k < 2 && rows[i].err[k] != NULL; k++) {
            expand(want, sizeof(want), rows[i].err[k], subs);
            cr_assert_not_null(strstr(err, want), "%s: no '%s' in: %s", rows[i].what, want, err);
        }
    }
    /* permissions are checked as for --key: a profile readable by others is refused */
    snprintf(args, sizeof(args), "%s/xdg/reqsign/credentials/work.json", dir);
    cr_assert_eq(chmod(args, 0644), 0);
    expand(pre, sizeof(pre), PRE, subs);
#undef PRE
#undef ENV_CRED
    kid = signed_keyid(dir, pre, "--profile work", &st, &err);
    cr_assert_null(kid);
    cr_assert_eq(st, 1, "%s", err);
    cr_assert_not_null(strstr(err, "key_permissions"), "%s", err);
    rm_rf(dir);
}

/* ------------------------------------------------ keygen as ssh-keygen */

/* keygen -o FILE writes FILE.pub (the public PEM, mode 0644) beside the key;
 * an existing FILE.pub is never overwritten (and then no FILE is left);
 * key show / keygen -y print the public key, keyid and JWK of a private key,
 * its .pub and a credential alike (issue 16 item 14). */
Test(cli, keygen_pub_file_and_key_show)
{
    char *dir = tu_tmpdir(), keyid[64], path[600];
    struct stat sb;
    int st;
    char *out = run(&st, "umask 077 && \"$R\" keygen -o '%s/k.pem'", dir);
    cr_assert_eq(st, 0, "%s", out);
    cr_assert_eq(sscanf(last_line(out), "keyid: %63s", keyid), 1, "%s", out);
    snprintf(path, sizeof(path), "%s/k.pem.pub", dir);
    cr_assert_eq(stat(path, &sb), 0);
    cr_assert_eq(sb.st_mode & 0777, 0644, "mode %o", (unsigned)(sb.st_mode & 0777));
    char *pub = run(&st, "cat '%s'", path);
    cr_assert_not_null(strstr(out, pub), "the .pub is the PEM printed: %s / %s", pub, out);
    cr_assert_null(strstr(pub, "PRIVATE"), "%s", pub);
    free(pub);
    free(out);

    /* an existing FILE.pub: refused, and no private key left behind */
    write_file(dir, "j.pem.pub", "x\n", 2);
    out = run(&st, "\"$R\" keygen -o '%s/j.pem' 2>&1", dir);
    cr_assert_eq(st, 1, "%s", out);
    cr_assert_not_null(strstr(out, "refusing to overwrite"), "%s", out);
    free(out);
    snprintf(path, sizeof(path), "%s/j.pem", dir);
    cr_assert_neq(access(path, F_OK), 0, "no key without its .pub");

    /* key show: the same keyid and JWK from the key, its .pub and keygen -y */
    static const char *const forms[] = {"key show '%s/k.pem'", "key show '%s/k.pem.pub'",
                                        "keygen -y '%s/k.pem'"};
    char *first = NULL;
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        char cmd[700];
        snprintf(cmd, sizeof(cmd), forms[i], dir);
        out = run(&st, "\"$R\" %s", cmd);
        cr_assert_eq(st, 0, "%s: %s", cmd, out);
        cr_assert_not_null(strstr(out, "-----BEGIN PUBLIC KEY-----\n"), "%s", out);
        char want[128];
        snprintf(want, sizeof(want), "\nkeyid: %s\njwk: {", keyid);
        cr_assert_not_null(strstr(out, want), "%s: %s", cmd, out);
        cr_assert_not_null(strstr(out, "\"crv\":\"Ed25519\""), "%s", out);
        cr_assert_null(strstr(out, "\"d\""), "no private part: %s", out);
        cr_assert_null(strstr(out, "PRIVATE"), "%s", out);
        if (first == NULL)
            first = out;
        else {
            cr_assert_str_eq(out, first);
            free(out);
        }
    }
    free(first);
    out = run(&st, "\"$R\" key show 2>&1; echo $?");
    cr_assert_not_null(strstr(out, "\n2\n"), "%s", out);
    free(out);
    out = run(&st, "\"$R\" key show '%s/nothing' 2>&1", dir);
    cr_assert_eq(st, 1, "%s", out);
    free(out);
    rm_rf(dir);
}

/* Relative expiries (+30d, +12h, +90m, +3600s) wherever an expiry is taken:
 * sign --expires-in. */
Test(cli, sign_expires_in_relative)
{
    char *dir = tu_tmpdir(), keyid[64];
    int st;
    keygen(dir, "k.pem", keyid);
    static const struct {
        const char *arg;
        long long secs;
    } cases[] = {{"+3600s", 3600},  {"+90m", 5400}, {"+12h", 43200},
                 {"+30d", 2592000}, {"120", 120},   {"+5", 5}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *out = run(&st,
                        "\"$R\" sign --key '%s/k.pem' --created 1700000000 --expires-in %s "
                        "https://example.com/",
                        dir, cases[i].arg);
        cr_assert_eq(st, 0, "%s: %s", cases[i].arg, out);
        char want[64];
        snprintf(want, sizeof(want), ";expires=%lld", 1700000000LL + cases[i].secs);
        cr_assert_not_null(strstr(out, want), "%s: %s", cases[i].arg, out);
        free(out);
    }
    static const char *const bad[] = {"+", "+d", "+-5m", "+5y", "5.5h", "+0s"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *out =
            run(&st, "\"$R\" sign --key '%s/k.pem' --expires-in '%s' https://example.com/ 2>&1",
                dir, bad[i]);
        cr_assert_eq(st, 2, "%s: %s", bad[i], out);
        free(out);
    }
    rm_rf(dir);
}

/* verify with the wrong --pub names the file given and the key it holds,
 * beside the signature's keyid; the error stays the last line (issue 16
 * item 15). */
Test(cli, verify_wrong_pub_names_the_file)
{
    char *dir = tu_tmpdir(), ka[64], kb[64];
    int st;
    keygen(dir, "a.pem", ka);
    keygen(dir, "b.pem", kb);
    char *out = run(&st,
                    "cd '%s' && \"$R\" sign --key a.pem --json https://example.com/x > h.json && "
                    "\"$R\" verify --pub b.pem --headers h.json https://example.com/x",
                    dir);
    cr_assert_eq(st, 1, "%s", out);
    cr_assert_eq(strncmp(last_line(out), "error: sig_invalid: ", 20), 0, "%s", out);
    char want[256];
    snprintf(want, sizeof(want), "--pub b.pem holds the key %s; the signature names keyid '%s'", kb,
             ka);
    cr_assert_not_null(strstr(out, want), "%s", out);
    free(out);
    rm_rf(dir);
}
