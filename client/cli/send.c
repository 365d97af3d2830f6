/* reqsign send: a curl-like client that signs each request.
 *
 *   reqsign send [-X METHOD] [-H 'Name: value']... [--data STRING|@FILE] [-i] [-v]
 *                [--key CREDENTIAL] [--insecure-key-permissions] URL
 *
 * Also the HTTP and credential helpers `reqsign keys` uses (reqsign_cli_*).
 * Exit status: 0 HTTP status < 400, 1 HTTP status >= 400 (the server's error
 * body printed to stderr), a transport or local failure; 2 usage error.
 */
#include "cli.h"

#include <reqsign/credential.h>
#include <reqsign/curl.h>
#include <reqsign/error.h>
#include <reqsign/key.h>
#include <reqsign/signer.h>

#include <curl/curl.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

enum { EXIT_OKAY = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

/* Most -H field lines accepted. */
#define SEND_MAX_HEADERS 256
/* Largest body read from stdin (--data @-) or a response kept in memory. */
#define SEND_MEM_MAX ((size_t)1 << 30)


static const char reqsign_cli_send_usage[] =
    "usage: reqsign send [options] URL\n"
    "\n"
    "Send a signed HTTP request and print the response body. The request is signed\n"
    "with the credential (credential JSON from the key service, or a private key file):\n"
    "@method, @authority, @path, @query and content-digest are covered.\n"
    "\n"
    "Options:\n"
    "  -X, --request METHOD        method (default GET, or POST with --data)\n"
    "  -H, --header 'Name: value'  add a header field (repeatable)\n"
    "  -d, --data STRING|@FILE     the body; @FILE streams a file (read twice: digest,\n"
    "                              then upload), @- reads stdin\n"
    "  -i, --include               print the status line and response headers first\n"
    "  -v, --verbose               print the signature base and the request and\n"
    "                              response headers to stderr\n"
    "  --key CREDENTIAL            credential JSON or key file, or '-' for stdin\n"
    "                              (default: $REQSIGN_CREDENTIAL: a path, '-' or\n"
    "                              inline JSON); inline JSON in --key is refused\n"
    "                              because arguments are readable by every user\n"
    "  --keyid ID                  keyid to sign with (default: the credential's)\n"
    "  --insecure-key-permissions  accept a key file readable by group or others\n"
    "  -h, --help                  show this help\n"
    "\n"
    "Exit status: 0 HTTP status below 400; 1 HTTP status 400 or above (the server's\n"
    "error is printed to stderr), or a transfer or local failure; 2 usage error.\n";

/* Print "error: <wire name>: <message>" on one line to stderr. */
void reqsign_cli_error(const char *cmd, enum reqsign_status st, const struct reqsign_error *err)
{
    const char *msg = reqsign_strerror(st);
    if (err != NULL && err->code == st && err->message[0] != '\0')
        msg = err->message;
    fprintf(stderr, "reqsign %s: error: %s: ", cmd, reqsign_errname(st));
    for (const unsigned char *p = (const unsigned char *)msg; *p != '\0'; p++)
        fputc(*p < 0x20 || *p == 0x7f ? '?' : (int)*p, stderr);
    fputc('\n', stderr);
}


/* Load the credential named by @key (NULL: $REQSIGN_CREDENTIAL) and make a
 * signer. Returns EXIT_OKAY, EXIT_FAIL (message printed) or EXIT_USAGE. */
int reqsign_cli_load_signer(const char *cmd, const char *key, const char *keyid, int insecure,
                            struct reqsign_credential **cred, struct reqsign_signer **signer)
{
    struct reqsign_error err;
    enum reqsign_status st;
    const char *env = getenv(REQSIGN_CREDENTIAL_ENV);

    *cred = NULL;
    *signer = NULL;
    if (key == NULL && (env == NULL || env[0] == '\0')) {
        fprintf(stderr, "reqsign %s: no credential: give --key or set %s\n", cmd,
                REQSIGN_CREDENTIAL_ENV);
        return EXIT_USAGE;
    }
    reqsign_error_clear(&err);
    st = reqsign_credential_load(key, keyid, insecure ? REQSIGN_KEY_ALLOW_PERMISSIVE : 0, cred,
                                 &err);
    if (st != REQSIGN_OK) {
        reqsign_cli_error(cmd, st, &err);
        return EXIT_FAIL;
    }
    *signer = reqsign_credential_signer(*cred, NULL, &err);
    if (*signer == NULL) {
        reqsign_cli_error(cmd, err.code != REQSIGN_OK ? err.code : REQSIGN_E_INTERNAL, &err);
        reqsign_credential_free(*cred);
        *cred = NULL;
        return EXIT_FAIL;
    }
    return EXIT_OKAY;
}

/* ------------------------------------------------------------ transfers */

/* A response buffer that may hold a secret (a credential): grown by copy,
 * the old block wiped, never realloc'd in place. */
struct membuf {
    char *p;
    size_t len, cap;
    int overflow;
};

static size_t membuf_write(char *data, size_t size, size_t nmemb, void *ud)
{
    struct membuf *b = ud;
    size_t n = size * nmemb;
    if (n > SEND_MEM_MAX - b->len) {
        b->overflow = 1;
        return 0;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *np = malloc(cap);
        if (np == NULL)
            return 0;
        if (b->p != NULL) {
            memcpy(np, b->p, b->len);
            reqsign_memzero(b->p, b->cap);
            free(b->p);
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
    return n;
}

static int debug_cb(CURL *h, curl_infotype type, char *data, size_t size, void *ud)
{
    const char *prefix;
    (void)h;
    (void)ud;
    switch (type) {
    case CURLINFO_TEXT:
        prefix = "* ";
        break;
    case CURLINFO_HEADER_OUT:
        prefix = "> ";
        break;
    case CURLINFO_HEADER_IN:
        prefix = "< ";
        break;
    default:
        return 0;
    }
    /* one prefix per line */
    size_t start = 0;
    for (size_t i = 0; i < size; i++) {
        if (data[i] == '\n' || i + 1 == size) {
            size_t end = i + 1;
            size_t len = end - start;
            while (len > 0 && (data[start + len - 1] == '\n' || data[start + len - 1] == '\r'))
                len--;
            if (len > 0 || type == CURLINFO_HEADER_OUT) {
                fputs(prefix, stderr);
                fwrite(data + start, 1, len, stderr);
                fputc('\n', stderr);
            }
            start = end;
        }
    }
    return 0;
}

static void print_base(const struct reqsign_signed *sig)
{
    fputs("* signature base:\n", stderr);
    fwrite(sig->base_buf, 1, sig->base_len, stderr);
    fputc('\n', stderr);
}

/* One signed request with an optional JSON body; the response body in *@resp
 * (malloc'd, NUL-terminated; the caller wipes and frees it). Returns 0, or
 * EXIT_FAIL with the message printed. */
int reqsign_cli_http(const char *cmd, const struct reqsign_signer *s, const char *method,
                     const char *url, const char *body, size_t body_len, int verbose, long *status,
                     char **resp, size_t *resp_len)
{
    struct reqsign_curl_request r;
    struct reqsign_signed sig;
    struct reqsign_error err;
    struct curl_slist *headers = NULL;
    struct membuf b = {NULL, 0, 0, 0};
    char errbuf[CURL_ERROR_SIZE];
    char *base = NULL;
    enum reqsign_status st;
    int rc = EXIT_FAIL;
    CURL *h;

    *status = 0;
    *resp = NULL;
    *resp_len = 0;
    h = curl_easy_init();
    if (h == NULL) {
        reqsign_cli_error(cmd, REQSIGN_E_NOMEM, NULL);
        return EXIT_FAIL;
    }
    reqsign_error_clear(&err);
    memset(&r, 0, sizeof(r));
    memset(&sig, 0, sizeof(sig));
    r.method = method;
    r.url = url;
    if (body != NULL) {
        r.body = body;
        r.body_len = body_len;
        headers = curl_slist_append(headers, "Content-Type: application/json");
        if (headers == NULL) {
            reqsign_cli_error(cmd, REQSIGN_E_NOMEM, NULL);
            goto out;
        }
    }
    headers = curl_slist_append(headers, "Accept: application/json");
    if (headers == NULL) {
        reqsign_cli_error(cmd, REQSIGN_E_NOMEM, NULL);
        goto out;
    }
    if (verbose) {
        base = malloc(8192);
        if (base != NULL) {
            sig.base_buf = base;
            sig.base_cap = 8192;
        }
    }
    r.out = &sig;
    if (s == NULL) { /* an unsigned request (reqsign enroll --generate) */
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
        if (body != NULL) {
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)body_len);
        }
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    } else {
        st = reqsign_curl_prepare(s, h, &r, &headers, NULL, &err);
        if (st != REQSIGN_OK) {
            reqsign_cli_error(cmd, st, &err);
            goto out;
        }
    }
    if (verbose && sig.base_len > 0)
        print_base(&sig);
    errbuf[0] = '\0';
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, membuf_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, (void *)&b);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    if (verbose) {
        curl_easy_setopt(h, CURLOPT_DEBUGFUNCTION, debug_cb);
        curl_easy_setopt(h, CURLOPT_VERBOSE, 1L);
    }
    CURLcode cc = curl_easy_perform(h);
    if (cc != CURLE_OK) {
        fprintf(stderr, "reqsign %s: error: http: %s: %s\n", cmd, url,
                errbuf[0] != '\0' ? errbuf : curl_easy_strerror(cc));
        goto out;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    if (b.p == NULL) {
        b.p = malloc(1);
        if (b.p == NULL) {
            reqsign_cli_error(cmd, REQSIGN_E_NOMEM, NULL);
            goto out;
        }
        b.p[0] = '\0';
        b.cap = 1;
    }
    *resp = b.p;
    *resp_len = b.len;
    b.p = NULL;
    rc = EXIT_OKAY;
out:
    if (b.p != NULL) {
        reqsign_memzero(b.p, b.cap);
        free(b.p);
    }
    free(base);
    curl_slist_free_all(headers);
    curl_easy_cleanup(h);
    return rc;
}

/* The server's error body (JSON) to stderr. */
void reqsign_cli_print_server_error(const char *cmd, long status, const char *body, size_t len)
{
    fprintf(stderr, "reqsign %s: HTTP %ld\n", cmd, status);
    fwrite(body, 1, len, stderr);
    if (len > 0 && body[len - 1] != '\n')
        fputc('\n', stderr);
}

/* ------------------------------------------------------------------ send */

struct send_out {
    CURL *h;
    long status;
    int include;
    char last; /* last byte of the body */
};

static void send_status(struct send_out *o)
{
    if (o->status == 0)
        curl_easy_getinfo(o->h, CURLINFO_RESPONSE_CODE, &o->status);
}

static size_t send_header(char *data, size_t size, size_t nmemb, void *ud)
{
    struct send_out *o = ud;
    size_t n = size * nmemb;
    if (o->include)
        fwrite(data, 1, n, stdout);
    return n;
}

static size_t send_write(char *data, size_t size, size_t nmemb, void *ud)
{
    struct send_out *o = ud;
    size_t n = size * nmemb;
    send_status(o);
    if (n > 0)
        o->last = data[n - 1];
    return fwrite(data, 1, n, o->status >= 400 ? stderr : stdout);
}

/* Read all of stdin into a malloc'd buffer. */
static int slurp_stdin(char **out, size_t *out_len)
{
    struct membuf b = {NULL, 0, 0, 0};
    char buf[65536];
    for (;;) {
        ssize_t r = read(STDIN_FILENO, buf, sizeof(buf));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 || (r > 0 && membuf_write(buf, 1, (size_t)r, &b) != (size_t)r)) {
            free(b.p);
            return -1;
        }
        if (r == 0)
            break;
    }
    *out = b.p;
    *out_len = b.len;
    return 0;
}



static int header_name_is(const char *line, size_t name_len, const char *name)
{
    return strlen(name) == name_len && strncasecmp(line, name, name_len) == 0;
}

/* A -H argument: "Name: value" (a token name, no CR/LF/NUL/controls but HTAB). */
static int check_header(const char *h)
{
    const char *colon = strchr(h, ':');
    if (colon == NULL || colon == h)
        return -1;
    for (const char *p = h; p < colon; p++) {
        unsigned char c = (unsigned char)*p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              strchr("!#$%&'*+-.^_`|~", c) != NULL))
            return -1;
    }
    for (const char *p = colon + 1; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return -1;
    }
    size_t n = (size_t)(colon - h);
    if (header_name_is(h, n, "content-digest") || header_name_is(h, n, "signature-input") ||
        header_name_is(h, n, "signature"))
        return -2;
    return 0;
}

int reqsign_cli_send(int argc, char **argv)
{
    const char *method = NULL, *data = NULL, *key = NULL, *keyid = NULL, *url = NULL;
    const char *hdrs[SEND_MAX_HEADERS];
    size_t n_hdrs = 0;
    int include = 0, verbose = 0, insecure = 0, only_pos = 0;

    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v;
        int m;
        if (only_pos || a[0] != '-' || a[1] == '\0') {
            if (url != NULL) {
                reqsign_cli_usage_error("send", reqsign_cli_send_usage, "unexpected argument '%s' (one URL only)", a);
                return EXIT_USAGE;
            }
            url = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_pos = 1;
        } else if (reqsign_cli_is_flag(a, "help", 'h')) {
            fputs(reqsign_cli_send_usage, stdout);
            return EXIT_OKAY;
        } else if (reqsign_cli_is_flag(a, "include", 'i')) {
            include = 1;
        } else if (reqsign_cli_is_flag(a, "verbose", 'v')) {
            verbose = 1;
        } else if (reqsign_cli_is_flag(a, "insecure-key-permissions", 0)) {
            insecure = 1;
        } else if ((v = reqsign_cli_opt_value("send", reqsign_cli_send_usage, argc, argv, &i, "request", 'X', &m)) != NULL || m) {
            if (v == NULL)
                return EXIT_USAGE;
            method = v;
        } else if ((v = reqsign_cli_opt_value("send", reqsign_cli_send_usage, argc, argv, &i, "header", 'H', &m)) != NULL || m) {
            if (v == NULL)
                return EXIT_USAGE;
            int c = check_header(v);
            if (c == -2) {
                reqsign_cli_usage_error("send", reqsign_cli_send_usage, "-H '%s': reqsign adds the signature fields itself", v);
                return EXIT_USAGE;
            }
            if (c != 0) {
                reqsign_cli_usage_error("send", reqsign_cli_send_usage, "-H '%s': expected 'Name: value'", v);
                return EXIT_USAGE;
            }
            if (n_hdrs >= SEND_MAX_HEADERS) {
                reqsign_cli_usage_error("send", reqsign_cli_send_usage, "more than %d -H options", SEND_MAX_HEADERS);
                return EXIT_USAGE;
            }
            hdrs[n_hdrs++] = v;
        } else if ((v = reqsign_cli_opt_value("send", reqsign_cli_send_usage, argc, argv, &i, "data", 'd', &m)) != NULL || m) {
            if (v == NULL)
                return EXIT_USAGE;
            if (data != NULL) {
                reqsign_cli_usage_error("send", reqsign_cli_send_usage, "--data given twice");
                return EXIT_USAGE;
            }
            data = v;
        } else if ((v = reqsign_cli_opt_value("send", reqsign_cli_send_usage, argc, argv, &i, "key", 0, &m)) != NULL || m) {
            if (v == NULL)
                return EXIT_USAGE;
            key = v;
        } else if ((v = reqsign_cli_opt_value("send", reqsign_cli_send_usage, argc, argv, &i, "keyid", 0, &m)) != NULL || m) {
            if (v == NULL)
                return EXIT_USAGE;
            keyid = v;
        } else {
            reqsign_cli_usage_error("send", reqsign_cli_send_usage, "unknown option '%s'", a);
            return EXIT_USAGE;
        }
    }
    if (url == NULL) {
        reqsign_cli_usage_error("send", reqsign_cli_send_usage, "missing URL");
        return EXIT_USAGE;
    }
    if (key != NULL && reqsign_cli_key_arg_ok("send", reqsign_cli_send_usage, key) != 0)
        return EXIT_USAGE;
    if (data != NULL && strcmp(data, "@-") == 0 &&
        ((key != NULL && strcmp(key, "-") == 0) ||
         (key == NULL && getenv(REQSIGN_CREDENTIAL_ENV) != NULL &&
          strcmp(getenv(REQSIGN_CREDENTIAL_ENV), "-") == 0))) {
        reqsign_cli_usage_error("send", reqsign_cli_send_usage,
                                "the credential ('-') and --data @- both read stdin");
        return EXIT_USAGE;
    }
    if (method == NULL)
        method = data != NULL ? "POST" : "GET";
    if (data != NULL && strcmp(data, "@") == 0) {
        reqsign_cli_usage_error("send", reqsign_cli_send_usage, "--data @FILE needs a file name");
        return EXIT_USAGE;
    }

    struct reqsign_credential *cred = NULL;
    struct reqsign_signer *signer = NULL;
    struct reqsign_curl_upload *upload = NULL;
    struct reqsign_curl_request r;
    struct reqsign_signed sig;
    struct reqsign_error err;
    struct curl_slist *headers = NULL;
    struct send_out o = {NULL, 0, include, '\n'};
    char errbuf[CURL_ERROR_SIZE];
    char *body_mem = NULL, *base = NULL;
    size_t body_len = 0;
    enum reqsign_status st;
    int rc;

    rc = reqsign_cli_load_signer("send", key, keyid, insecure, &cred, &signer);
    if (rc != EXIT_OKAY)
        return rc;
    rc = EXIT_FAIL;
    o.h = curl_easy_init();
    if (o.h == NULL) {
        reqsign_cli_error("send", REQSIGN_E_NOMEM, NULL);
        goto out;
    }
    for (size_t i = 0; i < n_hdrs; i++) {
        struct curl_slist *l = curl_slist_append(headers, hdrs[i]);
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
    r.url = url;
    if (data != NULL && strcmp(data, "@-") == 0) {
        if (slurp_stdin(&body_mem, &body_len) != 0) {
            fprintf(stderr, "reqsign send: error: io: stdin: %s\n", strerror(errno));
            goto out;
        }
        r.body = body_mem != NULL ? body_mem : "";
        r.body_len = body_len;
    } else if (data != NULL && data[0] == '@') {
        r.body_file = data + 1;
    } else if (data != NULL) {
        r.body = data;
        r.body_len = strlen(data);
    }
    if (verbose) {
        base = malloc(8192);
        if (base != NULL) {
            sig.base_buf = base;
            sig.base_cap = 8192;
        }
    }
    r.out = &sig;
    st = reqsign_curl_prepare(signer, o.h, &r, &headers, &upload, &err);
    if (st != REQSIGN_OK) {
        reqsign_cli_error("send", st, &err);
        goto out;
    }
    if (verbose && sig.base_len > 0)
        print_base(&sig);
    errbuf[0] = '\0';
    curl_easy_setopt(o.h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(o.h, CURLOPT_WRITEFUNCTION, send_write);
    curl_easy_setopt(o.h, CURLOPT_WRITEDATA, (void *)&o);
    curl_easy_setopt(o.h, CURLOPT_HEADERFUNCTION, send_header);
    curl_easy_setopt(o.h, CURLOPT_HEADERDATA, (void *)&o);
    curl_easy_setopt(o.h, CURLOPT_NOSIGNAL, 1L);
    if (verbose) {
        curl_easy_setopt(o.h, CURLOPT_DEBUGFUNCTION, debug_cb);
        curl_easy_setopt(o.h, CURLOPT_VERBOSE, 1L);
    }
    CURLcode cc = curl_easy_perform(o.h);
    if (cc != CURLE_OK) {
        fprintf(stderr, "reqsign send: error: http: %s: %s\n", url,
                errbuf[0] != '\0' ? errbuf : curl_easy_strerror(cc));
        goto out;
    }
    send_status(&o);
    if (o.status >= 400) {
        fprintf(stderr, "%sreqsign send: HTTP %ld\n", o.last != '\n' ? "\n" : "", o.status);
        goto out;
    }
    rc = EXIT_OKAY;
out:
    curl_easy_cleanup(o.h);
    curl_slist_free_all(headers);
    reqsign_curl_upload_free(upload);
    reqsign_signer_free(signer);
    reqsign_credential_free(cred);
    free(body_mem);
    free(base);
    return rc;
}
