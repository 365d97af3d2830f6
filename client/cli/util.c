/* reqsign CLI: shared helpers (see cli.h). */
#include <reqsign/token.h>

#include "cli.h"

#include <curl/curl.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Largest body read into memory (stdin or a non-regular file for verify). */
#define CLI_BODY_MEM_MAX ((size_t)1 << 30)

/* Print "error: <wire name>: <message>" on one line to @f. */
void reqsign_cli_print_error(FILE *f, enum reqsign_status st, const struct reqsign_error *err)
{
    const char *msg = reqsign_strerror(st);
    if (err != NULL && err->code == st && err->message[0] != '\0')
        msg = err->message;
    fprintf(f, "error: %s: ", reqsign_errname(st));
    for (const unsigned char *p = (const unsigned char *)msg; *p != '\0'; p++)
        fputc(*p < 0x20 || *p == 0x7f ? '?' : (int)*p, f);
    fputc('\n', f);
}

/* Print an error that did not come from the library. */
void reqsign_cli_print_error_msg(FILE *f, enum reqsign_status st, const char *fmt, ...)
{
    struct reqsign_error e;
    va_list ap;
    reqsign_error_clear(&e);
    e.code = st;
    va_start(ap, fmt);
    vsnprintf(e.message, sizeof(e.message), fmt, ap);
    va_end(ap);
    reqsign_cli_print_error(f, st, &e);
}

/* Strict integer: decimal, whole string, within [min, max]. 0 on success. */
int reqsign_cli_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
    char *end = NULL;
    long long v;

    if (s == NULL || *s == '\0' || (*s != '-' && (*s < '0' || *s > '9')))
        return -1;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0')
        return -1;
    if ((int64_t)v < min || (int64_t)v > max)
        return -1;
    *out = (int64_t)v;
    return 0;
}

ssize_t reqsign_cli_read(int fd, void *buf, size_t cap)
{
    for (;;) {
        ssize_t r = read(fd, buf, cap);
        if (r < 0 && errno == EINTR)
            continue;
        return r;
    }
}

/* Read all of @fd into a malloc'd buffer (NUL-terminated). 0 on success. */
int reqsign_cli_slurp_fd(int fd, char **out, size_t *out_len)
{
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap);
    if (buf == NULL)
        return -1;
    for (;;) {
        if (cap - n < 2) {
            if (cap >= CLI_BODY_MEM_MAX) {
                free(buf);
                errno = EFBIG;
                return -1;
            }
            char *nb = realloc(buf, cap * 2);
            if (nb == NULL) {
                free(buf);
                return -1;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t r = reqsign_cli_read(fd, buf + n, cap - n - 1);
        if (r < 0) {
            int e = errno;
            free(buf);
            errno = e;
            return -1;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    *out = buf;
    *out_len = n;
    return 0;
}

/* A field value: no CR, LF, NUL or other controls but HTAB. */
int reqsign_cli_is_field_value(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return 0;
    }
    return 1;
}

struct reqsign_span reqsign_cli_span_trim(struct reqsign_span s)
{
    while (s.len > 0 && (s.ptr[0] == ' ' || s.ptr[0] == '\t')) {
        s.ptr++;
        s.len--;
    }
    while (s.len > 0 && (s.ptr[s.len - 1] == ' ' || s.ptr[s.len - 1] == '\t'))
        s.len--;
    return s;
}

/* Parse a -H 'Name: value' argument (spans point into @arg). 0 on success. */
int reqsign_cli_parse_header(const char *arg, struct reqsign_span *name, struct reqsign_span *value)
{
    const char *colon = strchr(arg, ':');
    if (colon == NULL || !reqsign_is_token(arg, (size_t)(colon - arg)))
        return -1;
    name->ptr = arg;
    name->len = (size_t)(colon - arg);
    value->ptr = colon + 1;
    value->len = strlen(colon + 1);
    *value = reqsign_cli_span_trim(*value);
    if (!reqsign_cli_is_field_value(value->ptr, value->len))
        return -1;
    return 0;
}

/* see cli.h */
size_t reqsign_cli_base64url_len(const char *a)
{
    size_t n = 0;
    for (; a[n] != '\0'; n++) {
        unsigned char c = (unsigned char)a[n];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return 0;
    }
    return n;
}

/* see cli.h */
int reqsign_cli_is_thumbprint(const char *a)
{
    return reqsign_cli_base64url_len(a) == 43;
}

/* see cli.h */
int reqsign_cli_key_arg_ok(const char *cmd, const char *usage, const char *key)
{
    const char *p = key, *what = NULL;
    size_t n = 0, hex = 0, b64 = 0;
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    for (const char *q = key; *q != '\0'; q++, n++) {
        unsigned char ch = (unsigned char)*q;
        if (ch < 0x20 || ch == 0x7f)
            what = "an argument with a line break or control character";
        if ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F'))
            hex++;
        if ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
            ch == '+' || ch == '-' || ch == '_' || ch == '=')
            b64++;
    }
    if (*p == '{' || *p == '[')
        what = "inline credential JSON";
    else if (strstr(key, "-----BEGIN") != NULL)
        what = "inline PEM key";
    else if (what == NULL && access(key, F_OK) != 0 &&
             ((n == 64 && hex == n) || ((n == 43 || n == 44) && b64 == n)))
        what = "an inline raw key (hex or base64)";
    if (what == NULL)
        return 0;
    /* never echo the argument: it is (or may be) the private key */
    reqsign_cli_usage_error(cmd, usage,
                            "--key: %s refused: command-line arguments are "
                            "readable by every user of this machine (ps, /proc/PID/cmdline), so "
                            "the private key would leak. Give a file path, '-' to read the "
                            "credential from standard input, or set REQSIGN_CREDENTIAL",
                            what);
    return -1;
}

/* see cli.h */
int reqsign_cli_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* see cli.h */
void reqsign_cli_usage_error(const char *cmd, const char *usage, const char *fmt, ...)
{
    va_list ap;
    (void)usage; /* one line and a pointer to the help, not the whole help */
    va_start(ap, fmt);
    reqsign_opt_usage_verror(REQSIGN_CLI_PROG, cmd, fmt, ap);
    va_end(ap);
}

/* see cli.h */
void reqsign_cli_usage_hint(const char *cmd)
{
    reqsign_opt_usage_hint(REQSIGN_CLI_PROG, cmd);
}

/* ------------------------------------------------------------------ TLS */

/* Set by --cacert / -k for the one command a process runs. */
static const char *tls_cacert;
static int tls_insecure;

/* see cli.h */
int reqsign_cli_request_opt(const struct reqsign_opt_parser *p, int id, const char *val,
                            struct reqsign_cli_reqopts *r, struct reqsign_span *name,
                            struct reqsign_span *value)
{
    struct reqsign_span n, v;
    switch (id) {
    case CLI_O_HELP:
        fputs(p->usage, stdout);
        return 2;
    case CLI_O_METHOD:
        if (!reqsign_is_token(val, strlen(val))) {
            reqsign_cli_usage_error(p->cmd, p->usage, "bad method '%s'", val);
            return -1;
        }
        r->method = val;
        return 1;
    case CLI_O_HEADER:
        if (reqsign_cli_parse_header(val, &n, &v) != 0) {
            reqsign_cli_usage_error(p->cmd, p->usage, "bad header '%s' (expected 'Name: value')",
                                    val);
            return -1;
        }
        if (name != NULL)
            *name = n;
        if (value != NULL)
            *value = v;
        return 1;
    case CLI_O_DATA:
        if (r->data != NULL) {
            reqsign_cli_usage_error(p->cmd, p->usage, "--data given twice");
            return -1;
        }
        r->data = val;
        return 1;
    case CLI_O_LABEL:
        r->label = val;
        return 1;
    case CLI_O_TAG:
        r->tag = val;
        return 1;
    case CLI_O_SHOW_BASE:
        r->show_base = 1;
        return 1;
    default:
        return 0;
    }
}

/* see cli.h */
int reqsign_cli_parse_count(const char *s, long min, long max, long *out)
{
    int64_t v;
    if (s == NULL || *s < '0' || *s > '9' || reqsign_cli_parse_i64(s, min, max, &v) != 0)
        return -1;
    *out = (long)v;
    return 0;
}

/* see cli.h */
int reqsign_cli_parse_duration(const char *s, int64_t min, int64_t max, int64_t *out)
{
    char num[32];
    int64_t unit = 1, v;
    size_t n;
    if (s == NULL)
        return -1;
    if (*s == '+')
        s++;
    n = strlen(s);
    if (n == 0 || n >= sizeof(num))
        return -1;
    switch (s[n - 1]) {
    case 's':
        n--;
        break;
    case 'm':
        unit = 60;
        n--;
        break;
    case 'h':
        unit = 3600;
        n--;
        break;
    case 'd':
        unit = 86400;
        n--;
        break;
    default:
        break;
    }
    memcpy(num, s, n);
    num[n] = '\0';
    if (n == 0 || num[0] == '-' || reqsign_cli_parse_i64(num, 0, INT64_MAX / 86400, &v) != 0)
        return -1;
    v *= unit;
    if (v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* see cli.h */
int reqsign_cli_common_opt(const struct reqsign_opt_parser *p, int id, const char *val,
                           struct reqsign_cli_cred *c)
{
    switch (id) {
    case CLI_O_INSECURE:
        tls_insecure = 1;
        return 1;
    case CLI_O_CACERT:
        if (access(val, R_OK) != 0) {
            reqsign_cli_usage_error(p->cmd, p->usage, "--cacert '%s': %s", val, strerror(errno));
            return -1;
        }
        tls_cacert = val;
        return 1;
    case CLI_O_KEY:
        if (c == NULL)
            return 0;
        if (reqsign_cli_key_arg_ok(p->cmd, p->usage, val) != 0)
            return -1;
        c->key = val;
        return 1;
    case CLI_O_KEYID:
        if (c == NULL)
            return 0;
        c->keyid = val;
        return 1;
    case CLI_O_PROFILE:
        if (c == NULL)
            return 0;
        if (reqsign_cli_profile_name_ok(val) != 0) {
            reqsign_cli_usage_error(p->cmd, p->usage,
                                    "--profile '%s': a profile name is letters, digits, '.', "
                                    "'_' and '-', not beginning with '.' or '-'",
                                    val);
            return -1;
        }
        c->profile = val;
        return 1;
    case CLI_O_INSECURE_PERMS:
        if (c == NULL)
            return 0;
        c->insecure = 1;
        return 1;
    default:
        return 0;
    }
}

/* see cli.h */
int reqsign_cli_tls_insecure(void)
{
    return tls_insecure;
}

/* see cli.h */
void reqsign_cli_tls_apply(CURL *h)
{
    /* libcurl verifies the peer and the host name by default; say so anyway */
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, tls_insecure ? 0L : 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, tls_insecure ? 0L : 2L);
    curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    if (tls_cacert != NULL)
        curl_easy_setopt(h, CURLOPT_CAINFO, tls_cacert);
}

/* ---------------------------------------------------------- credentials */

/* see cli.h */
int reqsign_cli_profile_name_ok(const char *name)
{
    size_t n = 0;
    if (name[0] == '\0' || name[0] == '.' || name[0] == '-')
        return -1;
    for (; name[n] != '\0'; n++) {
        unsigned char ch = (unsigned char)name[n];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-'))
            return -1;
    }
    return n <= 128 ? 0 : -1;
}

/* see cli.h */
int reqsign_cli_config_dir(char *out, size_t cap)
{
    const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
    int n;
    /* the XDG base directory spec: a relative XDG_CONFIG_HOME is ignored */
    if (xdg != NULL && xdg[0] == '/')
        n = snprintf(out, cap, "%s/reqsign", xdg);
    else if (home != NULL && home[0] == '/')
        n = snprintf(out, cap, "%s/.config/reqsign", home);
    else
        return -1;
    return n > 0 && (size_t)n < cap ? 0 : -1;
}

/* see cli.h */
int reqsign_cli_profile_path(const char *name, char *out, size_t cap)
{
    char dir[REQSIGN_CLI_PATH_MAX];
    if (reqsign_cli_config_dir(dir, sizeof(dir)) != 0)
        return -1;
    int n = snprintf(out, cap, "%s/credentials/%s.json", dir, name);
    return n > 0 && (size_t)n < cap ? 0 : -1;
}

/* see cli.h */
int reqsign_cli_credential_spec(const char *cmd, const struct reqsign_cli_cred *c, char *path,
                                size_t cap, const char **spec)
{
    const char *env = getenv(REQSIGN_CREDENTIAL_ENV);
    const char *profile = c->profile;

    *spec = NULL;
    if (c->key != NULL && c->profile != NULL) {
        fprintf(stderr, "reqsign %s: --key and --profile both name a credential: give one\n", cmd);
        reqsign_cli_usage_hint(cmd);
        return EXIT_USAGE;
    }
    if (c->key != NULL) {
        *spec = c->key;
        return EXIT_OKAY;
    }
    /* as the AWS CLI: what the command line says beats the environment */
    if (profile == NULL && env != NULL && env[0] != '\0')
        return EXIT_OKAY; /* reqsign_credential_load(NULL) reads it */
    if (profile == NULL) {
        profile = getenv(REQSIGN_CLI_PROFILE_ENV);
        if (profile != NULL && profile[0] == '\0')
            profile = NULL;
        if (profile != NULL && reqsign_cli_profile_name_ok(profile) != 0) {
            fprintf(stderr, "reqsign %s: %s='%s' is not a profile name\n", cmd,
                    REQSIGN_CLI_PROFILE_ENV, profile);
            return EXIT_USAGE;
        }
    }
    if (reqsign_cli_profile_path(profile != NULL ? profile : "default", path, cap) != 0) {
        if (profile != NULL) {
            fprintf(stderr,
                    "reqsign %s: profile '%s': neither XDG_CONFIG_HOME nor HOME is an absolute "
                    "path, so there is no credentials directory\n",
                    cmd, profile);
            return EXIT_USAGE;
        }
        fprintf(stderr,
                "reqsign %s: no credential: give --key FILE, set %s, or use --profile NAME "
                "(HOME is not set, so there is no default profile)\n",
                cmd, REQSIGN_CREDENTIAL_ENV);
        reqsign_cli_usage_hint(cmd);
        return EXIT_USAGE;
    }
    if (access(path, F_OK) != 0) {
        int e = errno;
        if (profile != NULL) {
            fprintf(stderr, "reqsign %s: profile '%s': %s: %s\n", cmd, profile, path, strerror(e));
            return EXIT_FAIL;
        }
        fprintf(stderr,
                "reqsign %s: no credential: give --key FILE, set %s, or use --profile NAME "
                "(no default profile: %s: %s)\n",
                cmd, REQSIGN_CREDENTIAL_ENV, path, strerror(e));
        reqsign_cli_usage_hint(cmd);
        return EXIT_USAGE;
    }
    *spec = path;
    return EXIT_OKAY;
}

/* mkdir -p @path's parent directories (mode 0700 for those created). */
static int mkdir_parents(const char *path)
{
    char buf[REQSIGN_CLI_PATH_MAX];
    size_t n = strlen(path);
    if (n >= sizeof(buf))
        return -1;
    memcpy(buf, path, n + 1);
    for (char *p = buf + 1; *p != '\0'; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0700) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return 0;
}

/* see cli.h */
int reqsign_cli_secret_create(const char *cmd, const char *path, int make_dirs)
{
    if (make_dirs && mkdir_parents(path) != 0) {
        fprintf(stderr, "reqsign %s: error: io: %s: %s\n", cmd, path, strerror(errno));
        return -1;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        int e = errno;
        fprintf(stderr, "reqsign %s: error: io: %s: %s%s\n", cmd, path, strerror(e),
                e == EEXIST ? " (refusing to overwrite)" : "");
    }
    return fd;
}

/* see cli.h */
int reqsign_cli_secret_finish(const char *cmd, const char *path, int fd, const char *data,
                              size_t len)
{
    int bad = reqsign_cli_write_all(fd, data, len) != 0 ||
              (len > 0 && data[len - 1] != '\n' && reqsign_cli_write_all(fd, "\n", 1) != 0);
    if (!bad && fsync(fd) != 0 && errno != EINVAL && errno != EROFS)
        bad = 1;
    int e = errno;
    if (close(fd) != 0 && !bad) {
        bad = 1;
        e = errno;
    }
    if (!bad)
        return 0;
    (void)unlink(path);
    fprintf(stderr, "reqsign %s: error: io: %s: %s\n", cmd, path, strerror(e));
    return -1;
}

/* see cli.h */
void reqsign_cli_secret_abort(const char *path, int fd)
{
    if (fd >= 0) {
        close(fd);
        (void)unlink(path);
    }
}

/* ----------------------------------------------------- text from a service */

/* The length (2 or 3) of the UTF-8 bidi control or line/paragraph separator
 * at @p, else 0: U+061C, U+200E/F, U+2028/9, U+202A..E, U+2066..9 reorder or
 * break what a terminal shows (a label that hides its real text). */
size_t reqsign_cli_bidi_len(const unsigned char *p)
{
    if (p[0] == 0xd8 && p[1] == 0x9c)
        return 2;
    if (p[0] == 0xe2 && p[1] == 0x80 &&
        (p[2] == 0x8e || p[2] == 0x8f || (p[2] >= 0xa8 && p[2] <= 0xae)))
        return 3;
    if (p[0] == 0xe2 && p[1] == 0x81 && p[2] >= 0xa6 && p[2] <= 0xa9)
        return 3;
    return 0;
}

/* The code point of the 2- or 3-byte UTF-8 sequence at @p (@n bytes). */
unsigned reqsign_cli_utf8_cp(const unsigned char *p, size_t n)
{
    return n == 2 ? ((p[0] & 0x1fu) << 6) | (p[1] & 0x3fu)
                  : ((p[0] & 0x0fu) << 12) | ((p[1] & 0x3fu) << 6) | (p[2] & 0x3fu);
}

/*
 * Write @s to @f with control characters escaped, so that text from the
 * service (a label) cannot drive the terminal (escape sequences, a cleared
 * screen, a line that hides the ones before it): C0 bytes, DEL and bytes
 * that are not UTF-8 as \xHH, the C1 controls U+0080..U+009F (UTF-8 C2 80 ..
 * C2 9F, which terminals also act on) as \u00HH, bidi controls and
 * line/paragraph separators (reqsign_cli_bidi_len()) as \uHHHH, and a backslash as \\ so
 * the output stays unambiguous. The tab is escaped too: it separates columns.
 */
void reqsign_cli_put_text(FILE *f, const char *s)
{
    const unsigned char *p = (const unsigned char *)(s != NULL ? s : "-");
    while (*p) {
        unsigned char ch = *p;
        size_t n = ch < 0x80             ? 1
                   : (ch & 0xe0) == 0xc0 ? 2
                   : (ch & 0xf0) == 0xe0 ? 3
                   : (ch & 0xf8) == 0xf0 ? 4
                                         : 0;
        for (size_t i = 1; i < n; i++)
            if ((p[i] & 0xc0) != 0x80)
                n = 0; /* truncated or invalid: also stops at the NUL */
        if (ch < 0x20 || ch == 0x7f || n == 0 || (ch == 0xc1 || ch == 0xc0)) {
            fprintf(f, "\\x%02x", ch);
            p++;
        } else if (ch == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) {
            fprintf(f, "\\u%04x", p[1]);
            p += 2;
        } else if (reqsign_cli_bidi_len(p) != 0) {
            fprintf(f, "\\u%04x", reqsign_cli_utf8_cp(p, n));
            p += n;
        } else if (ch == '\\') {
            fputs("\\\\", f);
            p++;
        } else {
            fwrite(p, 1, n, f);
            p += n;
        }
    }
}
