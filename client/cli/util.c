/* reqsign CLI: shared helpers (see cli.h). */
#include "cli.h"

#include <curl/curl.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* see cli.h */
const char *reqsign_cli_opt_value(const char *cmd, const char *usage, int argc, char **argv,
                                  int *i, const char *lng, char shrt, int *matched)
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
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
              c == '_'))
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
