/* reqsign CLI: what the commands that talk to a key service or an API share:
 * credential loading, signed HTTP requests, error output, and the options of
 * accounts, enroll and audit. */
#include "cli.h"

#include <reqsign/credential.h>
#include <reqsign/curl.h>
#include <reqsign/error.h>
#include <reqsign/key.h>
#include <reqsign/signer.h>

#include <curl/curl.h>
#include <jansson.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Largest response kept in memory. */
#define SEND_MEM_MAX ((size_t)1 << 30)

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

/* see cli.h */
int reqsign_cli_load_signer(const char *cmd, const struct reqsign_cli_cred *c,
                            const struct reqsign_signer_opts *so, struct reqsign_credential **cred,
                            struct reqsign_signer **signer)
{
    struct reqsign_error err;
    enum reqsign_status st;
    char path[REQSIGN_CLI_PATH_MAX];
    const char *spec = NULL;

    *cred = NULL;
    *signer = NULL;
    int r = reqsign_cli_credential_spec(cmd, c, path, sizeof(path), &spec);
    if (r != EXIT_OKAY)
        return r;
    reqsign_error_clear(&err);
    *cred = reqsign_credential_load(spec, c->keyid, c->insecure ? REQSIGN_KEY_ALLOW_PERMISSIVE : 0,
                                    &err);
    st = *cred != NULL ? REQSIGN_OK : err.code;
    if (st != REQSIGN_OK) {
        reqsign_cli_error(cmd, st, &err);
        return EXIT_FAIL;
    }
    *signer = reqsign_credential_signer(*cred, so, &err);
    if (*signer == NULL) {
        reqsign_cli_error(cmd, err.code != REQSIGN_OK ? err.code : REQSIGN_E_INTERNAL, &err);
        reqsign_credential_free(*cred);
        *cred = NULL;
        return EXIT_FAIL;
    }
    return EXIT_OKAY;
}

/* ------------------------------------------------------------ transfers */

size_t reqsign_cli_membuf_write(char *data, size_t size, size_t nmemb, void *ud)
{
    struct reqsign_cli_membuf *b = ud;
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

int reqsign_cli_debug_cb(CURL *h, curl_infotype type, char *data, size_t size, void *ud)
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

void reqsign_cli_print_base(const struct reqsign_signed *sig)
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
    return reqsign_cli_http_pop(cmd, s, NULL, method, url, body, body_len, verbose, status, resp,
                                resp_len);
}

/* see cli.h */
int reqsign_cli_http_pop(const char *cmd, const struct reqsign_signer *s,
                         const struct reqsign_signer *pop, const char *method, const char *url,
                         const char *body, size_t body_len, int verbose, long *status, char **resp,
                         size_t *resp_len)
{
    struct reqsign_curl_request r;
    struct reqsign_signed sig;
    struct reqsign_error err;
    struct curl_slist *headers = NULL;
    struct reqsign_cli_membuf b = {NULL, 0, 0, 0};
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
    if (s != NULL && pop != NULL) {
        /* the second signature, over the same request and Content-Digest: its
         * own Signature-Input and Signature field lines, which the receiver
         * combines with the first ones (RFC 9110 5.3) */
        struct reqsign_sign_input in;
        struct reqsign_signed ps;
        memset(&in, 0, sizeof(in));
        memset(&ps, 0, sizeof(ps));
        in.method = method;
        in.url = url;
        in.content_digest = sig.content_digest[0] != '\0' ? sig.content_digest : NULL;
        in.body = body;
        in.body_len = body_len;
        st = reqsign_signer_sign(pop, &in, &ps, &err);
        if (st != REQSIGN_OK) {
            reqsign_cli_error(cmd, st, &err);
            goto out;
        }
        char line[sizeof("Signature-Input: ") + sizeof(ps.signature_input)];
        struct curl_slist *l1, *l2 = NULL;
        snprintf(line, sizeof(line), "Signature-Input: %s", ps.signature_input);
        l1 = curl_slist_append(headers, line);
        if (l1 != NULL) {
            headers = l1;
            snprintf(line, sizeof(line), "Signature: %s", ps.signature);
            l2 = curl_slist_append(headers, line);
        }
        if (l2 == NULL) {
            reqsign_cli_error(cmd, REQSIGN_E_NOMEM, NULL);
            goto out;
        }
        headers = l2;
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    }
    if (verbose && sig.base_len > 0)
        reqsign_cli_print_base(&sig);
    errbuf[0] = '\0';
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, reqsign_cli_membuf_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, (void *)&b);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    reqsign_cli_tls_apply(h);
    if (verbose) {
        curl_easy_setopt(h, CURLOPT_DEBUGFUNCTION, reqsign_cli_debug_cb);
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

/* ------------------------------------------------- accounts, enroll, audit */

/* see cli.h */
int reqsign_cli_svc_parse(const char *cmd, const char *usage, int argc, char **argv, int first,
                          struct reqsign_cli_svc *o)
{
    enum {
        A_HELP = 1,
        A_JSON,
        A_GENERATE,
        A_VERBOSE,
        A_SERVICE,
        A_NAME,
        A_SCOPE,
        A_KEY_LIMIT,
        A_MAX_LIFE,
        A_TOKEN,
        A_LABEL,
        A_OUTPUT,
        A_ACCOUNT,
        A_AFTER,
        A_LIMIT,
        A_TO_PROFILE,
        A_PUBLISH_KEYS
    };
    static const struct reqsign_opt_def defs[] = {
        {"help", 'h', REQSIGN_OPT_FLAG, A_HELP},
        {"json", 0, REQSIGN_OPT_FLAG, A_JSON},
        {"generate", 0, REQSIGN_OPT_FLAG, A_GENERATE},
        {"verbose", 'v', REQSIGN_OPT_FLAG, A_VERBOSE},
        {"service", 0, REQSIGN_OPT_VALUE, A_SERVICE},
        {"name", 0, REQSIGN_OPT_VALUE, A_NAME},
        {"scope", 0, REQSIGN_OPT_VALUE, A_SCOPE},
        {"key-limit", 0, REQSIGN_OPT_VALUE, A_KEY_LIMIT},
        {"max-key-lifetime", 0, REQSIGN_OPT_VALUE, A_MAX_LIFE},
        {"token", 0, REQSIGN_OPT_VALUE, A_TOKEN},
        {"label", 0, REQSIGN_OPT_VALUE, A_LABEL},
        {"output", 'o', REQSIGN_OPT_VALUE, A_OUTPUT},
        {"account", 0, REQSIGN_OPT_VALUE, A_ACCOUNT},
        {"after", 0, REQSIGN_OPT_VALUE, A_AFTER},
        {"limit", 0, REQSIGN_OPT_VALUE, A_LIMIT},
        {"to-profile", 0, REQSIGN_OPT_VALUE, A_TO_PROFILE},
        {"publish-keys", 0, REQSIGN_OPT_FLAG, A_PUBLISH_KEYS},
        CLI_OPTS_TLS,
        CLI_OPTS_CREDENTIAL,
        {NULL, 0, REQSIGN_OPT_FLAG, 0},
    };
    struct reqsign_opt_parser p = {.prog = REQSIGN_CLI_PROG,
                                   .cmd = cmd,
                                   .usage = usage,
                                   .argc = argc,
                                   .argv = argv,
                                   .i = first};
    const char *v;
    int id = 0, r;
    memset(o, 0, sizeof(*o));
    o->cmd = cmd;
    o->usage = usage;
    o->sub = first > 0 ? argv[0] : NULL;
    while ((r = reqsign_opt_next(&p, defs, &id, &v)) != REQSIGN_OPT_END) {
        if (r == REQSIGN_OPT_ERROR)
            return EXIT_USAGE;
        if (r == REQSIGN_OPT_OPERAND) {
            if (o->arg != NULL) {
                reqsign_cli_usage_error(o->cmd, o->usage, "unexpected argument '%s'", v);
                return EXIT_USAGE;
            }
            o->arg = v;
            continue;
        }
        int c = reqsign_cli_common_opt(&p, id, v, &o->cred);
        if (c < 0)
            return EXIT_USAGE;
        if (c > 0)
            continue;
        int bad = 0;
        switch (id) {
        case A_HELP:
            fputs(o->usage, stdout);
            return -1;
        case A_JSON:
            o->json = 1;
            break;
        case A_GENERATE:
            o->generate = 1;
            break;
        case A_PUBLISH_KEYS:
            o->publish_keys = 1;
            break;
        case A_VERBOSE:
            o->verbose = 1;
            break;
        case A_SERVICE:
            o->service = v;
            break;
        case A_NAME:
            o->name = v;
            break;
        case A_SCOPE:
            if (o->n_scopes >= REQSIGN_CLI_MAX_SCOPES)
                bad = 1;
            else
                o->scopes[o->n_scopes++] = v;
            break;
        case A_KEY_LIMIT:
            bad = reqsign_cli_parse_count(v, 1, LONG_MAX, &o->key_limit);
            break;
        case A_MAX_LIFE: {
            int64_t secs;
            bad = reqsign_cli_parse_duration(v, 1, LONG_MAX, &secs) != 0;
            o->max_life = (long)secs;
        } break;
        case A_TOKEN:
            o->token = v;
            break;
        case A_LABEL:
            o->label = v;
            break;
        case A_OUTPUT:
            o->out = v;
            break;
        case A_ACCOUNT:
            o->account = v;
            break;
        case A_AFTER:
            o->after = v;
            break;
        case A_TO_PROFILE:
            bad = reqsign_cli_profile_name_ok(v) != 0;
            o->to_profile = v;
            break;
        default:
            bad = reqsign_cli_parse_count(v, 1, 1000, &o->limit);
            break;
        }
        if (bad) {
            const struct reqsign_opt_def *d = defs;
            while (d->id != id)
                d++;
            reqsign_cli_usage_error(o->cmd, o->usage, "--%s: bad value '%s'", d->lng, v);
            return EXIT_USAGE;
        }
    }
    return 0;
}

char *reqsign_cli_service_url(const char *service, const char *path)
{
    size_t n = strlen(service);
    while (n > 0 && service[n - 1] == '/')
        n--;
    size_t len = n + strlen(path) + 1;
    char *u = malloc(len);
    if (u != NULL)
        snprintf(u, len, "%.*s%s", (int)n, service, path);
    return u;
}

/* One request; *@doc the parsed answer (2xx only). EXIT_OKAY or EXIT_FAIL. */
int reqsign_cli_svc_api(const struct reqsign_cli_svc *o, const struct reqsign_signer *s,
                        const char *service, const char *method, const char *path, const char *body,
                        json_t **doc, char **raw, size_t *raw_len)
{
    char *url = reqsign_cli_service_url(service, path), *out = NULL;
    size_t len = 0;
    long status = 0;
    *doc = NULL;
    if (url == NULL) {
        reqsign_cli_error(o->cmd, REQSIGN_E_NOMEM, NULL);
        return EXIT_FAIL;
    }
    int r = reqsign_cli_http(o->cmd, s, method, url, body, body != NULL ? strlen(body) : 0,
                             o->verbose, &status, &out, &len);
    free(url);
    if (r != 0)
        return EXIT_FAIL;
    if (status < 200 || status >= 300) {
        reqsign_cli_print_server_error(o->cmd, status, out, len);
        reqsign_memzero(out, len);
        free(out);
        return EXIT_FAIL;
    }
    *doc = json_loadb(out, len, 0, NULL);
    if (*doc == NULL) {
        fprintf(stderr, "reqsign %s: error: json: unexpected answer from the service\n", o->cmd);
        reqsign_memzero(out, len);
        free(out);
        return EXIT_FAIL;
    }
    if (raw != NULL) {
        *raw = out;
        *raw_len = len;
    } else {
        reqsign_memzero(out, len);
        free(out);
    }
    return EXIT_OKAY;
}

void reqsign_cli_print_json(const json_t *doc)
{
    char *t = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (t != NULL)
        puts(t);
    free(t);
}

int reqsign_cli_svc_load(const struct reqsign_cli_svc *o, struct reqsign_credential **cred,
                         struct reqsign_signer **signer, const char **service)
{
    int rc = reqsign_cli_load_signer(o->cmd, &o->cred, NULL, cred, signer);
    if (rc != EXIT_OKAY)
        return rc;
    *service = o->service != NULL ? o->service : reqsign_credential_service(*cred);
    if ((*service)[0] == '\0') {
        reqsign_cli_usage_error(o->cmd, o->usage,
                                "no --service given and the credential has no \"service\"");
        return EXIT_USAGE;
    }
    return EXIT_OKAY;
}

char *reqsign_cli_escape(const char *s)
{
    CURL *c = curl_easy_init();
    char *e = c != NULL ? curl_easy_escape(c, s, 0) : NULL;
    char *out = e != NULL ? strdup(e) : NULL;
    curl_free(e);
    curl_easy_cleanup(c);
    return out;
}
