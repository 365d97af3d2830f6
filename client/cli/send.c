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

/* send's options. */
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
static const struct reqsign_opt_def send_opts[] = {
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
/* -H @v: a field line other than the signature's and Host. EXIT_OKAY or
 * EXIT_USAGE (printed). */
static int send_add_header(struct send_args *a, const char *v)
{
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
    return EXIT_OKAY;
}

/* --resolve (@is_resolve) or --connect-to @v. EXIT_OKAY, EXIT_USAGE or
 * EXIT_FAIL (printed). */
static int send_add_route(struct send_args *a, int is_resolve, const char *v)
{
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
    return EXIT_OKAY;
}

/* send's own option @id (value @v) into @a: EXIT_OKAY, EXIT_USAGE or
 * EXIT_FAIL (printed), or -1 (--help printed). */
static int send_option(struct send_args *a, int id, const char *v)
{
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
    case O_HEADER:
        return send_add_header(a, v);
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
    case O_CONNECT_TO:
        return send_add_route(a, id == O_RESOLVE, v);
    default:
        break;
    }
    return EXIT_OKAY;
}

/* What the options say together: a URL, and no two that conflict; the
 * method. EXIT_OKAY or EXIT_USAGE (printed). */
static int send_check(struct send_args *a)
{
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

/* Parse send's arguments into @a: EXIT_OKAY, EXIT_USAGE or EXIT_FAIL
 * (printed), or -1 (--help printed). */
static int send_parse(int argc, char **argv, struct send_args *a)
{
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
    while ((pr = reqsign_opt_next(&p, send_opts, &id, &v)) != REQSIGN_OPT_END) {
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
        c = send_option(a, id, v);
        if (c != EXIT_OKAY)
            return c;
    }
    return send_check(a);
}

/* One run of `reqsign send`: its arguments, credential and body, and the
 * transfer across its attempts (a redirect's next hop, a retry, the
 * clock-corrected retry), each signed again. */
struct send_run {
    struct send_args a; /* a.retries counts down */
    struct reqsign_credential *cred;
    struct reqsign_signer *signer;
    const char *url;       /* the URL given, or a path resolved against the credential's "api" */
    char *api_url;         /* that resolution (malloc'd) */
    const char *body_file; /* --data @FILE of a regular file: streamed, read twice */
    char *body_mem;        /* --data @- or a non-regular file: read once into memory */
    size_t body_len;
    struct send_out o;
    char *base;    /* -v: each attempt's signature base */
    char *cur_url; /* this attempt's URL */
    const char *method;
    int with_body;
    struct curl_slist *headers;
    struct reqsign_curl_upload *upload;
    int64_t clock_offset; /* the server's clock minus ours, once corrected */
    int clock_fixed;      /* the clock answer was seen (corrected or not) */
    long redirects, delay_ms;
    char errbuf[CURL_ERROR_SIZE];
    CURLcode cc;
};

#define SEND_BASE_CAP 8192

/* A path URL ("/v1/...") against the credential's "api" base URL:
 * EXIT_OKAY, or EXIT_USAGE (printed). */
static int send_resolve_url(struct send_run *r)
{
    r->url = r->a.url;
    if (r->url[0] != '/')
        return EXIT_OKAY;
    const char *api = reqsign_credential_api(r->cred);
    size_t al = strlen(api), ul = strlen(r->url);
    while (al > 0 && api[al - 1] == '/')
        al--;
    if (al == 0 || (r->api_url = malloc(al + ul + 1)) == NULL) {
        fprintf(stderr,
                "reqsign send: %s is a path and the credential has no \"api\" base "
                "URL: give a full URL\n",
                r->url);
        return EXIT_USAGE;
    }
    memcpy(r->api_url, api, al);
    memcpy(r->api_url + al, r->url, ul + 1);
    r->url = r->api_url;
    return EXIT_OKAY;
}

/* The body of --data @...: a regular file is streamed (read twice); stdin, a
 * pipe or another non-regular file is read once into memory. A string
 * --data is used as it is. 0, or -1 (printed). */
static int send_read_body(struct send_run *r)
{
    const char *data = r->a.data;
    if (data == NULL || data[0] != '@')
        return 0;
    struct stat sb;
    int fd = strcmp(data, "@-") == 0 ? STDIN_FILENO : open(data + 1, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &sb) != 0) {
        fprintf(stderr, "reqsign send: error: io: %s: %s\n", data + 1, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if (fd != STDIN_FILENO && S_ISREG(sb.st_mode)) {
        r->body_file = data + 1;
    } else if (reqsign_cli_slurp_fd(fd, &r->body_mem, &r->body_len) != 0) {
        fprintf(stderr, "reqsign send: error: io: %s: %s\n",
                fd == STDIN_FILENO ? "stdin" : data + 1, strerror(errno));
        if (fd != STDIN_FILENO)
            close(fd);
        return -1;
    }
    if (fd != STDIN_FILENO)
        close(fd);
    if (r->body_file == NULL && r->body_mem == NULL) {
        r->body_mem = malloc(1);
        if (r->body_mem == NULL) {
            reqsign_cli_error("send", REQSIGN_E_NOMEM, NULL);
            return -1;
        }
    }
    return 0;
}

/* Where the response goes (-o FILE or stdout), the transfer handle, the
 * first attempt's URL and, with -v, the buffer of the signature base. 0, or
 * -1 (printed). */
static int send_open(struct send_run *r)
{
    if (r->a.output != NULL) {
        r->o.out = fopen(r->a.output, "wbe");
        if (r->o.out == NULL) {
            fprintf(stderr, "reqsign send: error: io: %s: %s\n", r->a.output, strerror(errno));
            return -1;
        }
        r->o.to_file = 1;
    } else {
        r->o.out = stdout;
    }
    r->o.include = r->a.include || r->a.head;
    r->o.fail = r->a.fail;
    r->o.h = curl_easy_init();
    r->cur_url = strdup(r->url);
    if (r->o.h == NULL || r->cur_url == NULL) {
        reqsign_cli_error("send", REQSIGN_E_NOMEM, NULL);
        return -1;
    }
    if (r->a.verbose) {
        r->base = malloc(SEND_BASE_CAP);
        if (r->base == NULL) {
            reqsign_cli_error("send", REQSIGN_E_NOMEM, NULL);
            return -1;
        }
    }
    r->method = r->a.method;
    r->with_body = r->a.data != NULL;
    r->delay_ms = r->a.retry_delay_ms > 0 ? r->a.retry_delay_ms : 1000;
    return 0;
}

/* This attempt's request signed (a fresh nonce and created, for its own
 * URL) and set on the handle with the -H fields. 0, or -1 (printed). */
static int send_sign(struct send_run *r)
{
    struct reqsign_curl_request req;
    struct reqsign_signed sig;
    struct reqsign_error err;

    curl_easy_reset(r->o.h);
    curl_slist_free_all(r->headers);
    r->headers = NULL;
    reqsign_curl_upload_free(r->upload);
    r->upload = NULL;
    for (size_t k = 0; k < r->a.n_hdrs; k++) {
        struct curl_slist *l = curl_slist_append(r->headers, r->a.hdrs[k]);
        if (l == NULL) {
            reqsign_cli_error("send", REQSIGN_E_NOMEM, NULL);
            return -1;
        }
        r->headers = l;
    }
    reqsign_error_clear(&err);
    memset(&req, 0, sizeof(req));
    memset(&sig, 0, sizeof(sig));
    req.method = r->method;
    req.url = r->cur_url;
    if (r->with_body && r->body_file != NULL) {
        req.body_file = r->body_file;
    } else if (r->with_body && r->body_mem != NULL) {
        req.body = r->body_mem;
        req.body_len = r->body_len;
    } else if (r->with_body) {
        req.body = r->a.data;
        req.body_len = strlen(r->a.data);
    }
    if (r->clock_offset != 0)
        req.created = (int64_t)time(NULL) + r->clock_offset;
    if (r->base != NULL) {
        sig.base_buf = r->base;
        sig.base_cap = SEND_BASE_CAP;
    }
    req.out = &sig;
    enum reqsign_status st =
        reqsign_curl_prepare(r->signer, r->o.h, &req, &r->headers, &r->upload, &err);
    if (st != REQSIGN_OK) {
        reqsign_cli_error("send", st, &err);
        return -1;
    }
    if (r->a.verbose && sig.base_len > 0)
        reqsign_cli_print_base(&sig);
    return 0;
}

/* The transfer options of an attempt, then the attempt itself: r->cc and,
 * if it completed, r->o.status. */
static void send_perform(struct send_run *r)
{
    CURL *h = r->o.h;
    r->errbuf[0] = '\0';
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, send_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, (void *)&r->o);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, send_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, (void *)&r->o);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    reqsign_cli_tls_apply(h);
    if (r->a.max_time_ms > 0)
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, r->a.max_time_ms);
    if (r->a.connect_ms > 0)
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, r->a.connect_ms);
    if (r->a.resolve != NULL)
        curl_easy_setopt(h, CURLOPT_RESOLVE, r->a.resolve);
    if (r->a.connect_to != NULL)
        curl_easy_setopt(h, CURLOPT_CONNECT_TO, r->a.connect_to);
    if (r->a.verbose) {
        curl_easy_setopt(h, CURLOPT_DEBUGFUNCTION, reqsign_cli_debug_cb);
        curl_easy_setopt(h, CURLOPT_VERBOSE, 1L);
    }
    r->o.status = 0;
    r->o.hold = 0;
    r->o.committed = 0;
    r->o.discard = 0;
    r->o.held.len = 0;
    r->cc = curl_easy_perform(h);
    if (r->cc == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->o.status);
}

/* Wait @wait_ms before a retry (one of --retry N used); without
 * --retry-delay the next wait doubles, up to curl's maximum. */
static void send_back_off(struct send_run *r, long wait_ms)
{
    r->a.retries--;
    sleep_ms(wait_ms);
    if (r->a.retry_delay_ms == 0 && (r->delay_ms *= 2) > SEND_RETRY_DELAY_MAX_MS)
        r->delay_ms = SEND_RETRY_DELAY_MAX_MS;
}

/* --retry: the attempt timed out before any of the body was written. 1 to
 * try again (after the wait). */
static int send_retry_timeout(struct send_run *r)
{
    if (r->cc != CURLE_OPERATION_TIMEDOUT || r->a.retries <= 0 || r->o.committed)
        return 0;
    if (!r->a.silent)
        fprintf(stderr, "reqsign send: %s: timed out; retrying in %ld ms (%ld left)\n", r->cur_url,
                r->delay_ms, r->a.retries);
    send_back_off(r, r->delay_ms);
    return 1;
}

/* What to do after an attempt. */
enum send_next {
    SEND_NOT_MINE, /* the step does not apply: ask the next one */
    SEND_AGAIN,    /* another attempt */
    SEND_DONE,     /* the answer is in: report it */
    SEND_ABORT,    /* a local failure (printed) */
};

/* -L: a redirect's next hop, signed for its own URL; another origin only
 * with --location-trusted. */
static enum send_next send_follow_redirect(struct send_run *r)
{
    char *loc = NULL;
    if (!r->a.location || !is_redirect(r->o.status) ||
        curl_easy_getinfo(r->o.h, CURLINFO_REDIRECT_URL, &loc) != CURLE_OK || loc == NULL)
        return SEND_NOT_MINE;
    /* as curl keeps credentials to the first host unless --location-trusted:
     * a server must not be able to make this client sign requests, with
     * its method and body, for another origin */
    if (!r->a.trusted && !same_origin(r->cur_url, loc)) {
        if (!r->a.silent)
            fprintf(stderr,
                    "reqsign send: not following the redirect to %s: another origin "
                    "(--location-trusted signs for it)\n",
                    loc);
        send_flush(&r->o);
        return SEND_DONE;
    }
    if (r->redirects >= r->a.max_redirs) {
        r->cc = CURLE_TOO_MANY_REDIRECTS;
        snprintf(r->errbuf, sizeof(r->errbuf), "maximum (%ld) redirects followed", r->a.max_redirs);
        return SEND_DONE;
    }
    char *next = strdup(loc);
    if (next == NULL) {
        reqsign_cli_error("send", REQSIGN_E_NOMEM, NULL);
        return SEND_ABORT;
    }
    free(r->cur_url);
    r->cur_url = next;
    r->redirects++;
    /* as curl: 303 makes any method but HEAD a GET, 301 and 302 a POST */
    if ((r->o.status == 303 && strcmp(r->method, "HEAD") != 0) ||
        ((r->o.status == 301 || r->o.status == 302) && strcmp(r->method, "POST") == 0)) {
        r->method = "GET";
        r->with_body = 0;
    }
    if (r->a.verbose)
        fprintf(stderr, "* following the redirect to %s (signed again)\n", r->cur_url);
    return SEND_AGAIN;
}

/* The server says the clock is off: correct it, once, when the answer is
 * authenticated (verified TLS) or came from this machine: a forged
 * server_time would otherwise get a request signed for a later time, which
 * whoever forged it could deliver then. */
static enum send_next send_correct_clock(struct send_run *r)
{
    int64_t server_time;
    if (r->clock_fixed || r->o.committed || r->o.status < 400 || r->o.held.len == 0 ||
        !server_clock(r->o.held.p, r->o.held.len, &server_time))
        return SEND_NOT_MINE;
    r->clock_fixed = 1;
    if (!answer_trusted(r->o.h, r->cur_url)) {
        if (r->a.verbose)
            fprintf(stderr,
                    "* clock: the server's clock differs by %lld s; not corrected: "
                    "the answer came neither over verified TLS nor from loopback\n",
                    (long long)(server_time - (int64_t)time(NULL)));
        return SEND_NOT_MINE;
    }
    r->clock_offset = server_time - (int64_t)time(NULL);
    if (r->clock_offset == 0)
        r->clock_offset = server_time > (int64_t)time(NULL) ? 1 : -1;
    if (r->a.verbose)
        fprintf(stderr,
                "* clock: the server's clock is %lld s %s this machine's; signing "
                "again with that offset\n",
                (long long)(r->clock_offset < 0 ? -r->clock_offset : r->clock_offset),
                r->clock_offset < 0 ? "behind" : "ahead of");
    return SEND_AGAIN;
}

/* --retry: a transient answer (408, 429, 5xx), after the server's
 * Retry-After or our own delay. */
static enum send_next send_retry_status(struct send_run *r)
{
    if (r->a.retries <= 0 || r->o.committed || !is_retryable(r->o.status))
        return SEND_NOT_MINE;
    curl_off_t after = 0;
    long wait = r->delay_ms;
    if (curl_easy_getinfo(r->o.h, CURLINFO_RETRY_AFTER, &after) == CURLE_OK && after > 0)
        wait =
            after * 1000 < SEND_RETRY_DELAY_MAX_MS ? (long)after * 1000 : SEND_RETRY_DELAY_MAX_MS;
    if (!r->a.silent)
        fprintf(stderr, "reqsign send: HTTP %ld; retrying in %ld ms (%ld left)\n", r->o.status,
                wait, r->a.retries);
    send_back_off(r, wait);
    return SEND_AGAIN;
}

/* Attempts until there is an answer (r->cc, r->o.status): 0, or -1 for a
 * local failure (printed). */
static int send_attempts(struct send_run *r)
{
    for (;;) {
        if (send_sign(r) != 0)
            return -1;
        send_perform(r);
        if (send_retry_timeout(r))
            continue;
        if (r->cc != CURLE_OK)
            return 0;
        enum send_next next = send_follow_redirect(r);
        if (next == SEND_NOT_MINE)
            next = send_correct_clock(r);
        if (next == SEND_NOT_MINE)
            next = send_retry_status(r);
        if (next == SEND_NOT_MINE) {
            send_flush(&r->o);
            next = SEND_DONE;
        }
        if (next != SEND_AGAIN)
            return next == SEND_DONE ? 0 : -1;
    }
}

/* The exit status of the answer, with its message (unless -s), and -w's
 * output. */
static int send_report(struct send_run *r)
{
    int rc;
    if (r->cc != CURLE_OK) {
        if (!r->a.silent)
            fprintf(stderr, "reqsign send: error: http: %s: %s\n", r->cur_url,
                    r->errbuf[0] != '\0' ? r->errbuf : curl_easy_strerror(r->cc));
        /* curl's exit code is its CURLcode; 1 and 2 mean other things here */
        rc = r->cc > CURLE_FAILED_INIT ? (int)r->cc : EXIT_FAIL;
        r->o.status = 0;
    } else if (r->o.status >= 400) {
        if (!r->a.silent)
            fprintf(stderr, "%sreqsign send: HTTP %ld\n", r->o.last != '\n' ? "\n" : "",
                    r->o.status);
        rc = r->a.fail ? EXIT_HTTP_FAIL : EXIT_FAIL;
    } else {
        rc = EXIT_OKAY;
    }
    if (r->o.out != NULL && fflush(r->o.out) != 0)
        r->o.write_err = 1;
    if (r->o.write_err) {
        if (!r->a.silent)
            fprintf(stderr, "reqsign send: error: io: %s: write failed\n",
                    r->a.output != NULL ? r->a.output : "stdout");
        if (rc == EXIT_OKAY)
            rc = EXIT_FAIL;
    }
    if (r->a.wfmt != NULL)
        write_out(r->a.wfmt, r->o.h, r->o.status, r->cur_url, r->redirects, rc);
    return rc;
}

static void send_cleanup(struct send_run *r)
{
    if (r->o.out != NULL && r->o.out != stdout)
        fclose(r->o.out);
    if (r->o.held.p != NULL)
        free(r->o.held.p);
    curl_easy_cleanup(r->o.h);
    curl_slist_free_all(r->headers);
    curl_slist_free_all(r->a.resolve);
    curl_slist_free_all(r->a.connect_to);
    reqsign_curl_upload_free(r->upload);
    reqsign_signer_free(r->signer);
    reqsign_credential_free(r->cred);
    free(r->body_mem);
    free(r->base);
    free(r->cur_url);
    free(r->api_url);
}

int reqsign_cli_send(int argc, char **argv)
{
    struct send_run r;
    memset(&r, 0, sizeof(r));
    r.o.last = '\n';
    int rc = send_parse(argc, argv, &r.a);
    if (rc != EXIT_OKAY) {
        curl_slist_free_all(r.a.resolve);
        curl_slist_free_all(r.a.connect_to);
        return rc < 0 ? EXIT_OKAY : rc;
    }
    rc = reqsign_cli_load_signer("send", &r.a.cr, NULL, &r.cred, &r.signer);
    if (rc == EXIT_OKAY)
        rc = send_resolve_url(&r);
    if (rc == EXIT_OKAY) {
        if (send_read_body(&r) != 0 || send_open(&r) != 0 || send_attempts(&r) != 0)
            rc = EXIT_FAIL;
        else
            rc = send_report(&r);
    }
    send_cleanup(&r);
    return rc;
}
