/* reqsign send: a curl-like client that signs each request.
 *
 *   reqsign send [curl-like options] URL     (see the usage text below)
 *
 * Also the HTTP and credential helpers `reqsign keys` uses (reqsign_cli_*).
 * Exit status: 0 HTTP status < 400, 1 HTTP status >= 400 (the server's error
 * body printed to stderr) or a local failure, 22 with -f; 2 usage error; a
 * transport failure: curl's code (its CURLcode).
 */
#include <reqsign/token.h>

#include "cli.h"

#include <reqsign/credential.h>
#include <reqsign/curl.h>
#include <reqsign/error.h>
#include <reqsign/key.h>
#include <reqsign/signer.h>

#include <curl/curl.h>

#include <jansson.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Most -H field lines accepted. */
#define SEND_MAX_HEADERS 256
/* Largest body read from stdin (--data @-) or a response kept in memory. */
#define SEND_MEM_MAX ((size_t)1 << 30)

const char reqsign_cli_send_usage[] =
    "usage: reqsign send [options] URL\n"
    "\n"
    "Send a signed HTTP request and print the response body. The request is signed\n"
    "with the credential (credential JSON from the key service, or a private key file):\n"
    "@method, @authority, @path, @query and content-digest are covered. Options are\n"
    "curl's; short flags combine (-iv, -sL).\n"
    "\n"
    "Options:\n"
    "  -X, --request METHOD        method (default GET, or POST with --data)\n"
    "  -H, --header 'Name: value'  add a header field (repeatable); not Host: the\n"
    "                              signed authority is the URL's (see --resolve)\n"
    "  -d, --data STRING|@FILE     the body; @FILE streams a regular file (read twice:\n"
    "                              digest, then upload); @- (stdin) and a pipe are\n"
    "                              read into memory first\n"
    "  -i, --include               print the status line and response headers first\n"
    "                              (all to stdout, whatever the status)\n"
    "  -I, --head                  send HEAD and print the response headers\n"
    "  -o, --output FILE           write the response to FILE instead of stdout\n"
    "  -s, --silent                no messages on stderr (the exit status tells)\n"
    "  -S, --show-error            with -s, still print the error messages\n"
    "  -w, --write-out FORMAT      print FORMAT after the transfer: %{http_code},\n"
    "                              %{url_effective}, %{num_redirects}, %{time_total},\n"
    "                              %{size_download}, %{content_type}, %{exitcode}, \\n\n"
    "  -f, --fail                  HTTP 400 or above: print no body, exit 22\n"
    "  -m, --max-time SECONDS      give up a transfer after SECONDS (exit 28)\n"
    "  --connect-timeout SECONDS   give up connecting after SECONDS (exit 28)\n"
    "  -L, --location              follow redirects; each hop is signed again for its\n"
    "                              own URL, with a fresh nonce\n"
    "  --location-trusted          -L to another origin (scheme, host, port) too;\n"
    "                              without it such a redirect is not followed\n"
    "  --max-redirs N              follow at most N redirects (default 50; exit 47)\n"
    "  --retry N                   retry a timeout or HTTP 408, 429, 500, 502, 503,\n"
    "                              504 up to N times, each signed again (fresh nonce)\n"
    "  --retry-delay SECONDS       wait between retries (default 1 s, doubling, or\n"
    "                              the server's Retry-After)\n"
    "  --resolve HOST:PORT:ADDR    connect to ADDR for HOST:PORT (the URL, Host, TLS\n"
    "                              name and signature keep HOST)\n"
    "  --connect-to HOST:PORT:TO_HOST:TO_PORT\n"
    "                              connect to TO_HOST:TO_PORT for HOST:PORT\n"
    "  --cacert FILE               trust the CA certificates in FILE\n"
    "  -k, --insecure              do not verify the server's TLS certificate\n"
    "  -v, --verbose               print the signature base and the request and\n"
    "                              response headers to stderr\n"
    "  --key CREDENTIAL            credential JSON or key file, or '-' for stdin\n"
    "                              (default: $REQSIGN_CREDENTIAL: a path, '-' or\n"
    "                              inline JSON); inline JSON in --key is refused\n"
    "                              because arguments are readable by every user\n"
    "  --profile NAME              profile NAME's credential (default:\n"
    "                              $REQSIGN_PROFILE, else \"default\"; see reqsign(1))\n"
    "  --keyid ID                  keyid to sign with (default: the credential's)\n"
    "  --insecure-key-permissions  accept a key file readable by group or others\n"
    "  -h, --help                  show this help\n"
    "\n"
    "A server that answers sig_future or sig_too_old with its server_time gets the\n"
    "request once more, signed with the clock offset corrected (-v prints it), if\n"
    "the answer came over verified TLS or from a loopback address.\n"
    "\n"
    "Exit status: 0 HTTP status below 400; 1 HTTP status 400 or above (the server's\n"
    "error is printed to stderr) or a local failure; 22 HTTP status 400 or above\n"
    "with -f; 2 usage error; a transfer failure exits with curl's code for it\n"
    "(6 host not resolved, 7 connection failed, 28 timeout, 35 TLS handshake,\n"
    "47 too many redirects, 60 certificate not trusted, ...).\n";

/* ------------------------------------------------------------------ send */

/* Exit codes as curl numbers them (its CURLcode): 22 for -f and HTTP >= 400;
 * a transport failure exits with its CURLcode (6 resolve, 7 connect,
 * 28 timeout, 35 TLS handshake, 47 too many redirects, 60 certificate, ...). */
enum { EXIT_HTTP_FAIL = 22 };
/* Body bytes of a response (status >= 300) held back: a redirect, a retry or
 * a clock correction discards them; past this the response is the answer. */
#define SEND_HOLD_MAX ((size_t)64 * 1024)
/* curl's defaults: --max-redirs 50, --retry-delay doubling from 1 s to 10 min. */
#define SEND_MAX_REDIRS 50
#define SEND_RETRY_DELAY_MAX_MS 600000L

struct send_out {
    CURL *h;
    FILE *out;   /* the body, and with -i the head: stdout or -o FILE */
    int to_file; /* -o given */
    int include, fail;
    long status;   /* of the response being received */
    int hold;      /* holding its body in @held */
    int committed; /* part of its body already written: no retry */
    int discard;   /* drop its body (-f and >= 400; a redirect's overflow) */
    struct reqsign_cli_membuf held;
    char last; /* last byte written to stderr */
    int write_err;
};

static int is_redirect(long status)
{
    return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

/* A transient answer curl's --retry retries. */
static int is_retryable(long status)
{
    return status == 408 || status == 429 || status == 500 || status == 502 || status == 503 ||
           status == 504;
}

static void send_emit(struct send_out *o, const char *data, size_t n)
{
    if (n == 0 || o->discard || (o->fail && o->status >= 400))
        return;
    FILE *f = o->status >= 400 && !o->include && !o->to_file ? stderr : o->out;
    if (f == stderr)
        o->last = data[n - 1];
    if (fwrite(data, 1, n, f) != n)
        o->write_err = 1;
}

static void send_flush(struct send_out *o)
{
    if (o->held.len > 0)
        send_emit(o, o->held.p, o->held.len);
    o->held.len = 0;
    o->hold = 0;
}

static size_t send_header(char *data, size_t size, size_t nmemb, void *ud)
{
    struct send_out *o = ud;
    size_t n = size * nmemb;
    if (n >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        /* a new response (an interim 1xx, a redirect's next hop) */
        o->status = 0;
        o->hold = 0;
        o->discard = 0;
        o->held.len = 0;
    } else if ((n == 2 && data[0] == '\r') || (n == 1 && data[0] == '\n')) {
        curl_easy_getinfo(o->h, CURLINFO_RESPONSE_CODE, &o->status);
        o->hold = o->status >= 300;
    }
    if (o->include && fwrite(data, 1, n, o->out) != n)
        o->write_err = 1;
    return n;
}

static size_t send_write(char *data, size_t size, size_t nmemb, void *ud)
{
    struct send_out *o = ud;
    size_t n = size * nmemb;
    if (o->status == 0) {
        curl_easy_getinfo(o->h, CURLINFO_RESPONSE_CODE, &o->status);
        o->hold = o->status >= 300;
    }
    if (o->hold) {
        if (n <= SEND_HOLD_MAX - o->held.len)
            return reqsign_cli_membuf_write(data, 1, n, &o->held);
        if (is_redirect(o->status))
            o->discard = 1;
        else
            o->committed = 1;
        send_flush(o);
    }
    send_emit(o, data, n);
    return n;
}

static int header_name_is(const char *line, size_t name_len, const char *name)
{
    return strlen(name) == name_len && strncasecmp(line, name, name_len) == 0;
}

/* A -H argument: "Name: value" (a token name, no CR/LF/NUL/controls but HTAB).
 * -1 malformed, -2 a signature field, -3 Host. */
static int check_header(const char *h)
{
    const char *colon = strchr(h, ':');
    if (colon == NULL || !reqsign_is_token(h, (size_t)(colon - h)))
        return -1;
    for (const char *p = colon + 1; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return -1;
    }
    size_t n = (size_t)(colon - h);
    if (header_name_is(h, n, "content-digest") || header_name_is(h, n, "signature-input") ||
        header_name_is(h, n, "signature"))
        return -2;
    if (header_name_is(h, n, "host"))
        return -3;
    return 0;
}

/* "SECONDS" (a decimal fraction allowed) as milliseconds > 0; -1 if not. */
static long parse_seconds_ms(const char *v)
{
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (errno != 0 || end == v || *end != '\0' || !(d > 0) || d > 86400.0 * 365)
        return -1;
    long ms = (long)(d * 1000.0 + 0.5);
    return ms > 0 ? ms : 1;
}

/* -w FORMAT: curl's %{variable}s (the subset below), %% and \n \r \t. */
static void write_out(const char *fmt, CURL *h, long status, const char *url, long redirects,
                      int exitcode)
{
    for (const char *p = fmt; *p != '\0'; p++) {
        if (*p == '\\' && (p[1] == 'n' || p[1] == 'r' || p[1] == 't' || p[1] == '\\')) {
            p++;
            putchar(*p == 'n' ? '\n' : *p == 'r' ? '\r' : *p == 't' ? '\t' : '\\');
        } else if (*p == '%' && p[1] == '%') {
            p++;
            putchar('%');
        } else if (*p == '%' && p[1] == '{' && strchr(p, '}') != NULL) {
            const char *name = p + 2, *end = strchr(p, '}');
            size_t n = (size_t)(end - name);
            double d = 0;
            char *ct = NULL;
            curl_off_t size = 0;
            if (header_name_is(name, n, "http_code") || header_name_is(name, n, "response_code")) {
                printf("%03ld", status);
            } else if (header_name_is(name, n, "url_effective") || header_name_is(name, n, "url")) {
                fputs(url, stdout);
            } else if (header_name_is(name, n, "num_redirects")) {
                printf("%ld", redirects);
            } else if (header_name_is(name, n, "exitcode")) {
                printf("%d", exitcode);
            } else if (header_name_is(name, n, "time_total")) {
                curl_easy_getinfo(h, CURLINFO_TOTAL_TIME, &d);
                printf("%.6f", d);
            } else if (header_name_is(name, n, "size_download")) {
                curl_easy_getinfo(h, CURLINFO_SIZE_DOWNLOAD_T, &size);
                printf("%lld", (long long)size);
            } else if (header_name_is(name, n, "content_type")) {
                curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ct);
                if (ct != NULL)
                    fputs(ct, stdout);
            } else {
                fprintf(stderr, "reqsign send: -w: unknown variable '%%{%.*s}'\n", (int)n, name);
            }
            p = end;
        } else {
            putchar(*p);
        }
    }
    fflush(stdout);
}

/* 1 if @a and @b have the same origin: scheme, host and port (RFC 6454). */
static int same_origin(const char *a, const char *b)
{
    CURLU *ua = curl_url(), *ub = curl_url();
    int same = 0;
    if (ua != NULL && ub != NULL && curl_url_set(ua, CURLUPART_URL, a, 0) == CURLUE_OK &&
        curl_url_set(ub, CURLUPART_URL, b, 0) == CURLUE_OK) {
        static const CURLUPart parts[3] = {CURLUPART_SCHEME, CURLUPART_HOST, CURLUPART_PORT};
        same = 1;
        for (int k = 0; k < 3 && same; k++) {
            char *pa = NULL, *pb = NULL;
            if (curl_url_get(ua, parts[k], &pa, CURLU_DEFAULT_PORT) != CURLUE_OK ||
                curl_url_get(ub, parts[k], &pb, CURLU_DEFAULT_PORT) != CURLUE_OK ||
                strcasecmp(pa, pb) != 0)
                same = 0;
            curl_free(pa);
            curl_free(pb);
        }
    }
    curl_url_cleanup(ua);
    curl_url_cleanup(ub);
    return same;
}

/* 1 if the answer on @h is authenticated: https with the certificate
 * verified (no -k), or from a loopback address. */
static int answer_trusted(CURL *h, const char *url)
{
    char *ip = NULL;
    if (strncasecmp(url, "https://", 8) == 0 && !reqsign_cli_tls_insecure())
        return 1;
    if (curl_easy_getinfo(h, CURLINFO_PRIMARY_IP, &ip) != CURLE_OK || ip == NULL)
        return 0;
    return strncmp(ip, "127.", 4) == 0 || strcmp(ip, "::1") == 0;
}

/* The server's clock from a sig_future / sig_too_old error body
 * ({"error":"sig_future",...,"server_time":T}); 0 if it is not one. */
static int server_clock(const char *body, size_t len, int64_t *server_time)
{
    json_t *j = json_loadb(body, len, 0, NULL);
    const char *e = json_string_value(json_object_get(j, "error"));
    json_t *t = json_object_get(j, "server_time");
    int ok = e != NULL && (strcmp(e, "sig_future") == 0 || strcmp(e, "sig_too_old") == 0) &&
             json_is_integer(t) && json_integer_value(t) > 0;
    if (ok)
        *server_time = (int64_t)json_integer_value(t);
    json_decref(j);
    return ok;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

#define SEND_USAGE(...)                                                                            \
    do {                                                                                           \
        reqsign_cli_usage_error("send", reqsign_cli_send_usage, __VA_ARGS__);                      \
        rc = EXIT_USAGE;                                                                           \
        goto out;                                                                                  \
    } while (0)

/* What send's options say. */
struct send_args {
    const char *method, *data, *url, *output, *wfmt;
    const char *hdrs[SEND_MAX_HEADERS]; /* -H, checked */
    size_t n_hdrs;
    int include, verbose, silent, fail, head, location, trusted, show_error;
    long max_time_ms, connect_ms, max_redirs, retries, retry_delay_ms;
    struct curl_slist *resolve, *connect_to; /* the caller frees them */
    struct reqsign_cli_cred cr;
};

#define PARSE_USAGE(...)                                                                           \
    do {                                                                                           \
        reqsign_cli_usage_error("send", reqsign_cli_send_usage, __VA_ARGS__);                      \
        return EXIT_USAGE;                                                                         \
    } while (0)

/* Parse send's arguments into @a: EXIT_OKAY, EXIT_USAGE or EXIT_FAIL
 * (printed), or -1 (--help printed). */
static int send_parse(int argc, char **argv, struct send_args *a)
{
    enum {
        O_HELP = 1,
        O_INCLUDE,
        O_VERBOSE,
        O_SILENT,
        O_SHOW_ERROR,
        O_FAIL,
        O_HEAD,
        O_LOCATION,
        O_TRUSTED,
        O_METHOD,
        O_HEADER,
        O_DATA,
        O_OUTPUT,
        O_WRITE_OUT,
        O_MAX_TIME,
        O_CONNECT,
        O_MAX_REDIRS,
        O_RETRY,
        O_RETRY_DELAY,
        O_RESOLVE,
        O_CONNECT_TO
    };
    static const struct reqsign_opt_def defs[] = {
        {"help", 'h', REQSIGN_OPT_FLAG, O_HELP},
        {"include", 'i', REQSIGN_OPT_FLAG, O_INCLUDE},
        {"verbose", 'v', REQSIGN_OPT_FLAG, O_VERBOSE},
        {"silent", 's', REQSIGN_OPT_FLAG, O_SILENT},
        {"show-error", 'S', REQSIGN_OPT_FLAG, O_SHOW_ERROR},
        {"fail", 'f', REQSIGN_OPT_FLAG, O_FAIL},
        {"head", 'I', REQSIGN_OPT_FLAG, O_HEAD},
        {"location", 'L', REQSIGN_OPT_FLAG, O_LOCATION},
        {"location-trusted", 0, REQSIGN_OPT_FLAG, O_TRUSTED},
        {"request", 'X', REQSIGN_OPT_VALUE, O_METHOD},
        {"header", 'H', REQSIGN_OPT_VALUE, O_HEADER},
        {"data", 'd', REQSIGN_OPT_VALUE, O_DATA},
        {"output", 'o', REQSIGN_OPT_VALUE, O_OUTPUT},
        {"write-out", 'w', REQSIGN_OPT_VALUE, O_WRITE_OUT},
        {"max-time", 'm', REQSIGN_OPT_VALUE, O_MAX_TIME},
        {"connect-timeout", 0, REQSIGN_OPT_VALUE, O_CONNECT},
        {"max-redirs", 0, REQSIGN_OPT_VALUE, O_MAX_REDIRS},
        {"retry", 0, REQSIGN_OPT_VALUE, O_RETRY},
        {"retry-delay", 0, REQSIGN_OPT_VALUE, O_RETRY_DELAY},
        {"resolve", 0, REQSIGN_OPT_VALUE, O_RESOLVE},
        {"connect-to", 0, REQSIGN_OPT_VALUE, O_CONNECT_TO},
        {"keyid", 0, REQSIGN_OPT_VALUE, CLI_O_KEYID},
        CLI_OPTS_TLS,
        CLI_OPTS_CREDENTIAL,
        {NULL, 0, REQSIGN_OPT_FLAG, 0},
    };
    /* curl's habits: combined short flags (-iv, -sXPUT) */
    struct reqsign_opt_parser p = {.prog = REQSIGN_CLI_PROG,
                                   .cmd = "send",
                                   .usage = reqsign_cli_send_usage,
                                   .argc = argc,
                                   .argv = argv,
                                   .combine = true};
    const char *v;
    int id = 0, pr;

    memset(a, 0, sizeof(*a));
    a->max_redirs = SEND_MAX_REDIRS;
    while ((pr = reqsign_opt_next(&p, defs, &id, &v)) != REQSIGN_OPT_END) {
        if (pr == REQSIGN_OPT_ERROR)
            return EXIT_USAGE;
        if (pr == REQSIGN_OPT_OPERAND) {
            if (a->url != NULL)
                PARSE_USAGE("unexpected argument '%s' (one URL only)", v);
            a->url = v;
            continue;
        }
        int c = reqsign_cli_common_opt(&p, id, v, &a->cr);
        if (c < 0)
            return EXIT_USAGE;
        if (c > 0)
            continue;
        switch (id) {
        case O_HELP:
            fputs(reqsign_cli_send_usage, stdout);
            return -1;
        case O_INCLUDE:
            a->include = 1;
            break;
        case O_VERBOSE:
            a->verbose = 1;
            break;
        case O_SILENT:
            a->silent = 1;
            break;
        case O_SHOW_ERROR:
            a->show_error = 1;
            break;
        case O_FAIL:
            a->fail = 1;
            break;
        case O_HEAD:
            a->head = 1;
            break;
        case O_LOCATION:
            a->location = 1;
            break;
        case O_TRUSTED:
            a->location = a->trusted = 1;
            break;
        case O_METHOD:
            a->method = v;
            break;
        case O_HEADER: {
            int ch = check_header(v);
            if (ch == -2)
                PARSE_USAGE("-H '%s': reqsign adds the signature fields itself", v);
            if (ch == -3)
                PARSE_USAGE("-H '%s': the signature covers the URL's authority, which is the "
                            "Host sent: put the host in the URL, and to reach it at another "
                            "address use --resolve HOST:PORT:ADDR or --connect-to",
                            v);
            if (ch != 0)
                PARSE_USAGE("-H '%s': expected 'Name: value'", v);
            if (a->n_hdrs >= SEND_MAX_HEADERS)
                PARSE_USAGE("more than %d -H options", SEND_MAX_HEADERS);
            a->hdrs[a->n_hdrs++] = v;
            break;
        }
        case O_DATA:
            if (a->data != NULL)
                PARSE_USAGE("--data given twice");
            a->data = v;
            break;
        case O_OUTPUT:
            a->output = v;
            break;
        case O_WRITE_OUT:
            a->wfmt = v;
            break;
        case O_MAX_TIME:
            if ((a->max_time_ms = parse_seconds_ms(v)) < 0)
                PARSE_USAGE("--max-time '%s': expected seconds greater than 0", v);
            break;
        case O_CONNECT:
            if ((a->connect_ms = parse_seconds_ms(v)) < 0)
                PARSE_USAGE("--connect-timeout '%s': expected seconds greater than 0", v);
            break;
        case O_MAX_REDIRS:
            if (reqsign_cli_parse_count(v, 0, 1000000, &a->max_redirs) != 0)
                PARSE_USAGE("--max-redirs '%s': expected a count", v);
            break;
        case O_RETRY:
            if (reqsign_cli_parse_count(v, 0, 1000000, &a->retries) != 0)
                PARSE_USAGE("--retry '%s': expected a count", v);
            break;
        case O_RETRY_DELAY:
            if ((a->retry_delay_ms = parse_seconds_ms(v)) < 0)
                PARSE_USAGE("--retry-delay '%s': expected seconds greater than 0", v);
            break;
        case O_RESOLVE:
        case O_CONNECT_TO: {
            int is_resolve = id == O_RESOLVE;
            if (strchr(v, ':') == NULL)
                PARSE_USAGE("--%s '%s': expected %s", is_resolve ? "resolve" : "connect-to", v,
                            is_resolve ? "HOST:PORT:ADDR" : "HOST:PORT:TO_HOST:TO_PORT");
            struct curl_slist **l = is_resolve ? &a->resolve : &a->connect_to;
            struct curl_slist *nl = curl_slist_append(*l, v);
            if (nl == NULL) {
                reqsign_cli_error("send", REQSIGN_E_NOMEM, NULL);
                return EXIT_FAIL;
            }
            *l = nl;
            break;
        }
        default:
            break;
        }
    }
    const char *key = a->cr.key;
    if (a->url == NULL)
        PARSE_USAGE("missing URL");
    if (a->show_error)
        a->silent = 0; /* -sS: no progress meter (there is none), but the errors */
    if (a->data != NULL && strcmp(a->data, "@-") == 0 &&
        ((key != NULL && strcmp(key, "-") == 0) ||
         (key == NULL && a->cr.profile == NULL && getenv(REQSIGN_CREDENTIAL_ENV) != NULL &&
          strcmp(getenv(REQSIGN_CREDENTIAL_ENV), "-") == 0)))
        PARSE_USAGE("the credential ('-') and --data @- both read stdin");
    if (a->head && a->data != NULL)
        PARSE_USAGE("-I/--head sends no body: drop --data");
    if (a->head && a->method != NULL && strcmp(a->method, "HEAD") != 0)
        PARSE_USAGE("-I/--head and -X %s conflict", a->method);
    if (a->head)
        a->method = "HEAD";
    if (a->method == NULL)
        a->method = a->data != NULL ? "POST" : "GET";
    if (a->data != NULL && strcmp(a->data, "@") == 0)
        PARSE_USAGE("--data @FILE needs a file name");
    return EXIT_OKAY;
}

int reqsign_cli_send(int argc, char **argv)
{
    const char *method = NULL, *data = NULL, *url = NULL;
    const char *output = NULL, *wfmt = NULL;
    int include = 0, verbose = 0, silent = 0, fail = 0, head = 0;
    int location = 0, trusted = 0;
    long max_time_ms = 0, connect_ms = 0, max_redirs = SEND_MAX_REDIRS, retries = 0;
    long retry_delay_ms = 0;
    struct curl_slist *resolve = NULL, *connect_to = NULL;

    struct reqsign_credential *cred = NULL;
    struct reqsign_signer *signer = NULL;
    struct reqsign_curl_upload *upload = NULL;
    struct curl_slist *headers = NULL;
    struct send_out o;
    char *body_mem = NULL, *base = NULL, *cur_url = NULL;
    char *api_url = NULL; /* a path resolved against the credential's "api" */
    size_t body_len = 0;
    int rc = EXIT_USAGE;

    struct send_args a;
    rc = send_parse(argc, argv, &a);
    if (rc != EXIT_OKAY) {
        curl_slist_free_all(a.resolve);
        curl_slist_free_all(a.connect_to);
        return rc < 0 ? EXIT_OKAY : rc;
    }
    memset(&o, 0, sizeof(o));
    o.last = '\n';
    method = a.method;
    data = a.data;
    url = a.url;
    output = a.output;
    wfmt = a.wfmt;
    include = a.include;
    verbose = a.verbose;
    silent = a.silent;
    fail = a.fail;
    location = a.location;
    trusted = a.trusted;
    max_time_ms = a.max_time_ms;
    connect_ms = a.connect_ms;
    max_redirs = a.max_redirs;
    retries = a.retries;
    retry_delay_ms = a.retry_delay_ms;
    resolve = a.resolve;
    connect_to = a.connect_to;
    head = a.head;

    rc = reqsign_cli_load_signer("send", &a.cr, NULL, &cred, &signer);
    if (rc != EXIT_OKAY)
        goto out;
    if (url[0] == '/') { /* a path: against the credential's "api" base URL */
        const char *api = reqsign_credential_api(cred);
        size_t al = strlen(api), ul = strlen(url);
        while (al > 0 && api[al - 1] == '/')
            al--;
        if (al == 0 || (api_url = malloc(al + ul + 1)) == NULL) {
            fprintf(stderr,
                    "reqsign send: %s is a path and the credential has no \"api\" base "
                    "URL: give a full URL\n",
                    url);
            rc = EXIT_USAGE;
            goto out;
        }
        memcpy(api_url, api, al);
        memcpy(api_url + al, url, ul + 1);
        url = api_url;
    }
    rc = EXIT_FAIL;

    /* the body: a string, stdin, a pipe or other non-regular file (read once
     * into memory), or a regular file (streamed, read twice) */
    const char *body_file = NULL;
    if (data != NULL && data[0] == '@') {
        struct stat sb;
        int fd = strcmp(data, "@-") == 0 ? STDIN_FILENO : open(data + 1, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fstat(fd, &sb) != 0) {
            fprintf(stderr, "reqsign send: error: io: %s: %s\n", data + 1, strerror(errno));
            if (fd >= 0)
                close(fd);
            goto out;
        }
        if (fd != STDIN_FILENO && S_ISREG(sb.st_mode)) {
            body_file = data + 1;
        } else if (reqsign_cli_slurp_fd(fd, &body_mem, &body_len) != 0) {
            fprintf(stderr, "reqsign send: error: io: %s: %s\n",
                    fd == STDIN_FILENO ? "stdin" : data + 1, strerror(errno));
            if (fd != STDIN_FILENO)
                close(fd);
            goto out;
        }
        if (fd != STDIN_FILENO)
            close(fd);
        if (body_file == NULL && body_mem == NULL) {
            body_mem = malloc(1);
            if (body_mem == NULL) {
                reqsign_cli_error("send", REQSIGN_E_NOMEM, NULL);
                goto out;
            }
        }
    }
    if (output != NULL) {
        o.out = fopen(output, "wbe");
        if (o.out == NULL) {
            fprintf(stderr, "reqsign send: error: io: %s: %s\n", output, strerror(errno));
            goto out;
        }
        o.to_file = 1;
    } else {
        o.out = stdout;
    }
    o.include = include || head;
    o.fail = fail;
    o.h = curl_easy_init();
    cur_url = strdup(url);
    if (o.h == NULL || cur_url == NULL) {
        reqsign_cli_error("send", REQSIGN_E_NOMEM, NULL);
        goto out;
    }
    if (verbose) {
        base = malloc(8192);
        if (base == NULL) {
            reqsign_cli_error("send", REQSIGN_E_NOMEM, NULL);
            goto out;
        }
    }

    /* Each attempt (a redirect's next hop, a retry, the clock-corrected
     * retry) is signed again: a fresh nonce and created, for its own URL. */
    int64_t clock_offset = 0;
    int clock_fixed = 0, with_body = data != NULL;
    long redirects = 0, delay_ms = retry_delay_ms > 0 ? retry_delay_ms : 1000;
    char errbuf[CURL_ERROR_SIZE];
    CURLcode cc = CURLE_OK;
    for (;;) {
        struct reqsign_curl_request r;
        struct reqsign_signed sig;
        struct reqsign_error err;
        enum reqsign_status st;

        curl_easy_reset(o.h);
        curl_slist_free_all(headers);
        headers = NULL;
        reqsign_curl_upload_free(upload);
        upload = NULL;
        for (size_t k = 0; k < a.n_hdrs; k++) {
            struct curl_slist *l = curl_slist_append(headers, a.hdrs[k]);
            if (l == NULL) {
                reqsign_cli_error("send", REQSIGN_E_NOMEM, NULL);
                goto out;
            }
            headers = l;
        }
        reqsign_error_clear(&err);
        memset(&r, 0, sizeof(r));
        memset(&sig, 0, sizeof(sig));
        r.method = method;
        r.url = cur_url;
        if (with_body && body_file != NULL) {
            r.body_file = body_file;
        } else if (with_body && body_mem != NULL) {
            r.body = body_mem;
            r.body_len = body_len;
        } else if (with_body) {
            r.body = data;
            r.body_len = strlen(data);
        }
        if (clock_offset != 0)
            r.created = (int64_t)time(NULL) + clock_offset;
        if (base != NULL) {
            sig.base_buf = base;
            sig.base_cap = 8192;
        }
        r.out = &sig;
        st = reqsign_curl_prepare(signer, o.h, &r, &headers, &upload, &err);
        if (st != REQSIGN_OK) {
            reqsign_cli_error("send", st, &err);
            goto out;
        }
        if (verbose && sig.base_len > 0)
            reqsign_cli_print_base(&sig);
        errbuf[0] = '\0';
        curl_easy_setopt(o.h, CURLOPT_ERRORBUFFER, errbuf);
        curl_easy_setopt(o.h, CURLOPT_WRITEFUNCTION, send_write);
        curl_easy_setopt(o.h, CURLOPT_WRITEDATA, (void *)&o);
        curl_easy_setopt(o.h, CURLOPT_HEADERFUNCTION, send_header);
        curl_easy_setopt(o.h, CURLOPT_HEADERDATA, (void *)&o);
        curl_easy_setopt(o.h, CURLOPT_NOSIGNAL, 1L);
        reqsign_cli_tls_apply(o.h);
        if (max_time_ms > 0)
            curl_easy_setopt(o.h, CURLOPT_TIMEOUT_MS, max_time_ms);
        if (connect_ms > 0)
            curl_easy_setopt(o.h, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
        if (resolve != NULL)
            curl_easy_setopt(o.h, CURLOPT_RESOLVE, resolve);
        if (connect_to != NULL)
            curl_easy_setopt(o.h, CURLOPT_CONNECT_TO, connect_to);
        if (verbose) {
            curl_easy_setopt(o.h, CURLOPT_DEBUGFUNCTION, reqsign_cli_debug_cb);
            curl_easy_setopt(o.h, CURLOPT_VERBOSE, 1L);
        }
        o.status = 0;
        o.hold = 0;
        o.committed = 0;
        o.discard = 0;
        o.held.len = 0;
        cc = curl_easy_perform(o.h);
        if (cc == CURLE_OPERATION_TIMEDOUT && retries > 0 && !o.committed) {
            if (!silent)
                fprintf(stderr, "reqsign send: %s: timed out; retrying in %ld ms (%ld left)\n",
                        cur_url, delay_ms, retries);
            retries--;
            sleep_ms(delay_ms);
            if (retry_delay_ms == 0 && (delay_ms *= 2) > SEND_RETRY_DELAY_MAX_MS)
                delay_ms = SEND_RETRY_DELAY_MAX_MS;
            continue;
        }
        if (cc != CURLE_OK)
            break;
        curl_easy_getinfo(o.h, CURLINFO_RESPONSE_CODE, &o.status);

        /* -L: the next hop, signed for its own URL */
        char *loc = NULL;
        if (location && is_redirect(o.status) &&
            curl_easy_getinfo(o.h, CURLINFO_REDIRECT_URL, &loc) == CURLE_OK && loc != NULL) {
            /* as curl keeps credentials to the first host unless --location-trusted:
             * a server must not be able to make this client sign requests, with
             * its method and body, for another origin */
            if (!trusted && !same_origin(cur_url, loc)) {
                if (!silent)
                    fprintf(stderr,
                            "reqsign send: not following the redirect to %s: another origin "
                            "(--location-trusted signs for it)\n",
                            loc);
                send_flush(&o);
                break;
            }
            if (redirects >= max_redirs) {
                cc = CURLE_TOO_MANY_REDIRECTS;
                snprintf(errbuf, sizeof(errbuf), "maximum (%ld) redirects followed", max_redirs);
                break;
            }
            char *next = strdup(loc);
            if (next == NULL) {
                reqsign_cli_error("send", REQSIGN_E_NOMEM, NULL);
                goto out;
            }
            free(cur_url);
            cur_url = next;
            redirects++;
            /* as curl: 303 makes any method but HEAD a GET, 301 and 302 a POST */
            if ((o.status == 303 && strcmp(method, "HEAD") != 0) ||
                ((o.status == 301 || o.status == 302) && strcmp(method, "POST") == 0)) {
                method = "GET";
                with_body = 0;
            }
            if (verbose)
                fprintf(stderr, "* following the redirect to %s (signed again)\n", cur_url);
            continue;
        }

        /* the server says the clock is off: correct it, once, when the answer
         * is authenticated (verified TLS) or came from this machine: a forged
         * server_time would otherwise get a request signed for a later time,
         * which whoever forged it could deliver then */
        int64_t server_time;
        if (!clock_fixed && !o.committed && o.status >= 400 && o.held.len > 0 &&
            server_clock(o.held.p, o.held.len, &server_time) && !answer_trusted(o.h, cur_url)) {
            clock_fixed = 1;
            if (verbose)
                fprintf(stderr,
                        "* clock: the server's clock differs by %lld s; not corrected: "
                        "the answer came neither over verified TLS nor from loopback\n",
                        (long long)(server_time - (int64_t)time(NULL)));
        }
        if (!clock_fixed && !o.committed && o.status >= 400 && o.held.len > 0 &&
            server_clock(o.held.p, o.held.len, &server_time)) {
            clock_fixed = 1;
            clock_offset = server_time - (int64_t)time(NULL);
            if (clock_offset == 0)
                clock_offset = server_time > (int64_t)time(NULL) ? 1 : -1;
            if (verbose)
                fprintf(stderr,
                        "* clock: the server's clock is %lld s %s this machine's; signing "
                        "again with that offset\n",
                        (long long)(clock_offset < 0 ? -clock_offset : clock_offset),
                        clock_offset < 0 ? "behind" : "ahead of");
            continue;
        }

        /* --retry: a transient answer */
        if (retries > 0 && !o.committed && is_retryable(o.status)) {
            curl_off_t after = 0;
            long wait = delay_ms;
            if (curl_easy_getinfo(o.h, CURLINFO_RETRY_AFTER, &after) == CURLE_OK && after > 0)
                wait = after * 1000 < SEND_RETRY_DELAY_MAX_MS ? (long)after * 1000
                                                              : SEND_RETRY_DELAY_MAX_MS;
            if (!silent)
                fprintf(stderr, "reqsign send: HTTP %ld; retrying in %ld ms (%ld left)\n", o.status,
                        wait, retries);
            retries--;
            sleep_ms(wait);
            if (retry_delay_ms == 0 && (delay_ms *= 2) > SEND_RETRY_DELAY_MAX_MS)
                delay_ms = SEND_RETRY_DELAY_MAX_MS;
            continue;
        }
        send_flush(&o);
        break;
    }

    if (cc != CURLE_OK) {
        if (!silent)
            fprintf(stderr, "reqsign send: error: http: %s: %s\n", cur_url,
                    errbuf[0] != '\0' ? errbuf : curl_easy_strerror(cc));
        /* curl's exit code is its CURLcode; 1 and 2 mean other things here */
        rc = cc > CURLE_FAILED_INIT ? (int)cc : EXIT_FAIL;
        o.status = 0;
    } else if (o.status >= 400) {
        if (!silent)
            fprintf(stderr, "%sreqsign send: HTTP %ld\n", o.last != '\n' ? "\n" : "", o.status);
        rc = fail ? EXIT_HTTP_FAIL : EXIT_FAIL;
    } else {
        rc = EXIT_OKAY;
    }
    if (o.out != NULL && fflush(o.out) != 0)
        o.write_err = 1;
    if (o.write_err) {
        if (!silent)
            fprintf(stderr, "reqsign send: error: io: %s: write failed\n",
                    output != NULL ? output : "stdout");
        if (rc == EXIT_OKAY)
            rc = EXIT_FAIL;
    }
    if (wfmt != NULL)
        write_out(wfmt, o.h, o.status, cur_url, redirects, rc);
out:
    if (o.out != NULL && o.out != stdout)
        fclose(o.out);
    if (o.held.p != NULL)
        free(o.held.p);
    curl_easy_cleanup(o.h);
    curl_slist_free_all(headers);
    curl_slist_free_all(resolve);
    curl_slist_free_all(connect_to);
    reqsign_curl_upload_free(upload);
    reqsign_signer_free(signer);
    reqsign_credential_free(cred);
    free(body_mem);
    free(base);
    free(cur_url);
    free(api_url);
    return rc;
}
