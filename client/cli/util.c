/* reqsign CLI: shared helpers (see cli.h). */
#include "cli.h"

#include <curl/curl.h>

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static int is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

int reqsign_cli_is_token(const char *s, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!is_tchar((unsigned char)s[i]))
            return 0;
    return 1;
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
    if (colon == NULL || !reqsign_cli_is_token(arg, (size_t)(colon - arg)))
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

/* The next option (CLI_OPT, *id and *val set), positional argument (CLI_POS,
 * *val set), end (CLI_END) or a usage error already printed (CLI_ERR). */
int reqsign_cli_next_opt(struct reqsign_cli_optp *p, const struct reqsign_cli_optdef *defs, int *id,
                         const char **val)
{
    if (p->i >= p->argc)
        return CLI_END;
    char *a = p->argv[p->i++];
    *val = NULL;
    if (p->only_positional || a[0] != '-' || a[1] == '\0') {
        *val = a;
        return CLI_POS;
    }
    if (strcmp(a, "--") == 0) {
        p->only_positional = 1;
        return reqsign_cli_next_opt(p, defs, id, val);
    }
    const struct reqsign_cli_optdef *d = NULL;
    const char *attached = NULL;
    if (a[1] == '-') {
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t nlen = eq != NULL ? (size_t)(eq - name) : strlen(name);
        for (const struct reqsign_cli_optdef *o = defs; o->lng != NULL || o->shrt != 0; o++) {
            if (o->lng != NULL && strlen(o->lng) == nlen && strncmp(o->lng, name, nlen) == 0) {
                d = o;
                break;
            }
        }
        if (d == NULL) {
            reqsign_cli_usage_error(p->cmd, p->usage, "unknown option '%s'", a);
            return CLI_ERR;
        }
        if (eq != NULL) {
            if (d->arg == CLI_FLAG) {
                reqsign_cli_usage_error(p->cmd, p->usage, "option '%s' takes no argument", a);
                return CLI_ERR;
            }
            attached = eq + 1;
        }
    } else {
        for (const struct reqsign_cli_optdef *o = defs; o->lng != NULL || o->shrt != 0; o++) {
            if (o->shrt != 0 && o->shrt == a[1]) {
                d = o;
                break;
            }
        }
        if (d == NULL) {
            reqsign_cli_usage_error(p->cmd, p->usage, "unknown option '%s'", a);
            return CLI_ERR;
        }
        if (a[2] != '\0') {
            if (d->arg == CLI_FLAG) {
                reqsign_cli_usage_error(p->cmd, p->usage, "unknown option '%s'", a);
                return CLI_ERR;
            }
            attached = a + 2;
        }
    }
    *id = d->id;
    if (d->arg == CLI_VALUE) {
        if (attached != NULL) {
            *val = attached;
        } else if (p->i < p->argc) {
            *val = p->argv[p->i++];
        } else {
            reqsign_cli_usage_error(p->cmd, p->usage, "option '%s' needs an argument", a);
            return CLI_ERR;
        }
    }
    return CLI_OPT;
}

/* see cli.h */
const char *reqsign_cli_opt_value(const char *cmd, const char *usage, int argc, char **argv, int *i,
                                  const char *lng, char shrt, int *matched)
{
    const char *a = argv[*i];
    size_t n = strlen(lng);
    *matched = 0;
    if (a[0] == '-' && a[1] == '-' && strncmp(a + 2, lng, n) == 0 &&
        (a[2 + n] == '\0' || a[2 + n] == '=')) {
        *matched = 1;
        if (a[2 + n] == '=')
            return a + 3 + n;
    } else if (shrt != 0 && a[0] == '-' && a[1] == shrt) {
        *matched = 1;
        if (a[2] != '\0')
            return a + 2;
    } else {
        return NULL;
    }
    if (*i + 1 >= argc) {
        fprintf(stderr, "reqsign %s: option '%s' needs an argument\n%s", cmd, a, usage);
        return NULL;
    }
    return argv[++*i];
}

/* see cli.h */
int reqsign_cli_is_thumbprint(const char *a)
{
    size_t n = 0;
    for (; a[n] != '\0'; n++) {
        unsigned char c = (unsigned char)a[n];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return 0;
    }
    return n == 43;
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
int reqsign_cli_is_flag(const char *a, const char *lng, char shrt)
{
    return (a[0] == '-' && a[1] == '-' && strcmp(a + 2, lng) == 0) ||
           (shrt != 0 && a[0] == '-' && a[1] == shrt && a[2] == '\0');
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
    fprintf(stderr, "reqsign%s%s: ", cmd != NULL ? " " : "", cmd != NULL ? cmd : "");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fputs(usage, stderr);
}

/* ------------------------------------------------------------------ TLS */

/* Set by --cacert / -k for the one command a process runs. */
static const char *tls_cacert;
static int tls_insecure;

/* see cli.h */
int reqsign_cli_tls_opt(const char *cmd, const char *usage, int argc, char **argv, int *i)
{
    const char *v;
    int m;
    if (reqsign_cli_is_flag(argv[*i], "insecure", 'k')) {
        tls_insecure = 1;
        return 1;
    }
    v = reqsign_cli_opt_value(cmd, usage, argc, argv, i, "cacert", 0, &m);
    if (!m)
        return 0;
    if (v == NULL)
        return -1;
    if (access(v, R_OK) != 0) {
        reqsign_cli_usage_error(cmd, usage, "--cacert '%s': %s", v, strerror(errno));
        return -1;
    }
    tls_cacert = v;
    return 1;
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
