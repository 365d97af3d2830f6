/* reqsign verify: check a signed HTTP request. */
#include "cli.h"

#include <reqsign/base.h>
#include <reqsign/credential.h>
#include <reqsign/error.h>
#include <reqsign/key.h>
#include <reqsign/nonce.h>
#include <reqsign/request.h>
#include <reqsign/token.h>
#include <reqsign/verifier.h>

#include <jansson.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Most -H / --headers field lines accepted. */
#define CLI_MAX_HEADERS 256

const char reqsign_cli_verify_usage[] =
    "usage: reqsign verify --pub FILE [options] URL\n"
    "\n"
    "Verify a signed request built from URL (scheme, authority, and the path and\n"
    "query exactly as written), the header fields and the body. Prints 'ok' and\n"
    "exits 0 when the signature is valid; otherwise the last line printed is\n"
    "'error: <name>: <message>' and the exit status is 1.\n"
    "\n"
    "Options:\n"
    "  --pub FILE                  the signer's key, any format (a private key file\n"
    "                              is fine: only its public part is used), a\n"
    "                              credential JSON or a key record JSON\n"
    "  --keyid ID                  accept only this keyid (default: any keyid maps\n"
    "                              to --pub)\n"
    "  -X, --request METHOD        method (default GET, or POST with --data)\n"
    "  -H, --header 'Name: value'  a received header field (repeatable)\n"
    "  --headers FILE|-            header fields as a JSON object: name -> string,\n"
    "                              or name -> array of strings (as 'sign --json'\n"
    "                              prints)\n"
    "  -d, --data STRING|@FILE     the body received; @- reads stdin; adds\n"
    "                              Content-Length if absent\n"
    "  --now N                     the verifier's clock, unix seconds (default: now)\n"
    "  --max-age N                 oldest created accepted, seconds (default 300)\n"
    "  --skew N                    clock skew allowed, seconds (default 30)\n"
    "  --profile reqsign|rfc9421   verification profile (default reqsign)\n"
    "  --authority HOST[:PORT]     the authority the verifier accepts and puts in\n"
    "                              @authority (behind a proxy: the public one);\n"
    "                              default: the Host field, else URL's authority\n"
    "  --label L                   the signature label to check\n"
    "  --tag T                     require this tag parameter\n"
    "  --show-base                 print the signature base computed to stderr\n"
    "  -v, --verbose               print 'keyid: ...  created: ...' after 'ok'\n"
    "  -h, --help                  show this help\n";

static int span_ieq(struct reqsign_span s, const char *lit)
{
    size_t n = strlen(lit);
    if (s.len != n)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char a = (unsigned char)s.ptr[i], b = (unsigned char)lit[i];
        if (a >= 'A' && a <= 'Z')
            a = (unsigned char)(a - 'A' + 'a');
        if (b >= 'A' && b <= 'Z')
            b = (unsigned char)(b - 'A' + 'a');
        if (a != b)
            return 0;
    }
    return 1;
}

/* ------------------------------------------------------ header fields */

struct header_list {
    struct reqsign_header h[CLI_MAX_HEADERS];
    size_t n;
};

static int header_add(struct header_list *l, struct reqsign_span name, struct reqsign_span value)
{
    if (l->n >= CLI_MAX_HEADERS)
        return -1;
    l->h[l->n].name = name;
    l->h[l->n].value = value;
    l->n++;
    return 0;
}

static const struct reqsign_header *header_find_last(const struct header_list *l, const char *name)
{
    for (size_t i = l->n; i > 0; i--)
        if (span_ieq(l->h[i - 1].name, name))
            return &l->h[i - 1];
    return NULL;
}

/* The --headers JSON object: adds its fields to @l. On failure prints the
 * error to stdout and returns -1. */
static int headers_from_json(const json_t *obj, struct header_list *l, const char *src)
{
    const char *key;
    json_t *v;

    if (!json_is_object(obj)) {
        reqsign_cli_print_error_msg(stdout, REQSIGN_E_INVALID_ARG,
                                    "--headers %s: expected a JSON object of field name -> value",
                                    src);
        return -1;
    }
    json_object_foreach((json_t *)obj, key, v)
    {
        struct reqsign_span name = {key, strlen(key)};
        if (!reqsign_is_token(name.ptr, name.len)) {
            reqsign_cli_print_error_msg(stdout, REQSIGN_E_INVALID_ARG,
                                        "--headers: bad field name '%s'", key);
            return -1;
        }
        size_t n = json_is_array(v) ? json_array_size(v) : 1;
        if (!json_is_array(v) && !json_is_string(v)) {
            reqsign_cli_print_error_msg(
                stdout, REQSIGN_E_INVALID_ARG,
                "--headers: the value of '%s' must be a string or an array of "
                "strings",
                key);
            return -1;
        }
        for (size_t i = 0; i < n; i++) {
            const json_t *s = json_is_array(v) ? json_array_get(v, i) : v;
            if (!json_is_string(s)) {
                reqsign_cli_print_error_msg(
                    stdout, REQSIGN_E_INVALID_ARG,
                    "--headers: the value of '%s' must be a string or an array "
                    "of strings",
                    key);
                return -1;
            }
            struct reqsign_span value = {json_string_value(s), json_string_length(s)};
            if (!reqsign_cli_is_field_value(value.ptr, value.len)) {
                reqsign_cli_print_error_msg(stdout, REQSIGN_E_INVALID_ARG,
                                            "--headers: the value of '%s' holds control characters",
                                            key);
                return -1;
            }
            if (header_add(l, name, value) != 0) {
                reqsign_cli_print_error_msg(stdout, REQSIGN_E_LIMIT, "more than %d header fields",
                                            CLI_MAX_HEADERS);
                return -1;
            }
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- verify */

enum { V_PUB = 1, V_KEYID, V_HEADERS, V_NOW, V_MAX_AGE, V_SKEW, V_PROFILE, V_AUTHORITY, V_VERBOSE };

/* The received request, from a URL written by hand: scheme "://" authority,
 * then everything up to '#' is the origin-form target, unnormalised. */
struct url_view {
    struct reqsign_span scheme;
    struct reqsign_span authority;
    char *target; /* malloc'd */
    size_t target_len;
};

static int split_url(const char *url, struct url_view *u, const char **why)
{
    const char *sep = strstr(url, "://");
    memset(u, 0, sizeof(*u));
    if (sep == NULL || sep == url) {
        *why = "expected scheme://authority[/path][?query]";
        return -1;
    }
    for (const char *c = url; c < sep; c++) {
        int alpha = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z');
        if (!alpha &&
            (c == url || !((*c >= '0' && *c <= '9') || *c == '+' || *c == '-' || *c == '.'))) {
            *why = "bad scheme";
            return -1;
        }
    }
    u->scheme.ptr = url;
    u->scheme.len = (size_t)(sep - url);
    const char *auth = sep + 3;
    size_t alen = strcspn(auth, "/?#");
    /* userinfo is not sent in Host */
    for (size_t i = alen; i > 0; i--) {
        if (auth[i - 1] == '@') {
            alen -= i;
            auth += i;
            break;
        }
    }
    if (alen == 0 || auth[0] == ':') {
        *why = "URL has no host";
        return -1;
    }
    u->authority.ptr = auth;
    u->authority.len = alen;
    const char *rest = auth + alen;
    size_t rlen = strcspn(rest, "#");
    int slash = rlen == 0 || rest[0] != '/';
    u->target = malloc(rlen + 2);
    if (u->target == NULL) {
        *why = "out of memory";
        return -1;
    }
    if (slash)
        u->target[0] = '/';
    memcpy(u->target + slash, rest, rlen);
    u->target_len = rlen + (size_t)slash;
    u->target[u->target_len] = '\0';
    return 0;
}

/* The signature does not verify with --pub, or names another key: say which
 * key the file given holds, beside the signature's keyid (issue 16 item 15). */
static void name_pub(const char *pub_file, const unsigned char pub[32], const char *sig_keyid)
{
    struct reqsign_key *k = NULL;
    char tp[REQSIGN_THUMBPRINT_BUF];
    if ((k = reqsign_key_from_public(pub, NULL)) == NULL ||
        reqsign_key_thumbprint(k, tp) != REQSIGN_OK) {
        reqsign_key_free(k);
        return;
    }
    reqsign_key_free(k);
    printf("reqsign verify: --pub %s holds the key %s", pub_file, tp);
    if (sig_keyid[0] != '\0') {
        fputs("; the signature names keyid '", stdout);
        reqsign_cli_put_text(stdout, sig_keyid);
        fputc('\'', stdout);
        if (strcmp(sig_keyid, tp) != 0)
            fputs(" (another key?)", stdout);
    }
    fputc('\n', stdout);
}

static int64_t fixed_clock(void *ctx)
{
    return *(const int64_t *)ctx;
}

/* What verify's options say. */
struct verify_args {
    struct reqsign_cli_reqopts ro; /* -X, -H (into cli_headers), -d, --label, --tag, ... */
    const char *pub_file, *keyid, *headers_file, *authority, *url;
    int64_t now, max_age, skew;
    int have_now, have_skew, verbose;
    enum reqsign_profile profile;
};

#define VERIFY_USAGE(...)                                                                          \
    do {                                                                                           \
        reqsign_cli_usage_error("verify", reqsign_cli_verify_usage, __VA_ARGS__);                  \
        return EXIT_USAGE;                                                                         \
    } while (0)

/* Parse verify's arguments into @a, the -H fields into @cli_headers:
 * EXIT_OKAY, EXIT_USAGE (printed) or -1 (--help printed). */
static int verify_parse(int argc, char **argv, struct verify_args *a,
                        struct header_list *cli_headers)
{
    static const struct reqsign_opt_def defs[] = {
        CLI_OPTS_REQUEST,
        {"pub", 0, REQSIGN_OPT_VALUE, V_PUB},
        {"keyid", 0, REQSIGN_OPT_VALUE, V_KEYID},
        {"headers", 0, REQSIGN_OPT_VALUE, V_HEADERS},
        {"now", 0, REQSIGN_OPT_VALUE, V_NOW},
        {"max-age", 0, REQSIGN_OPT_VALUE, V_MAX_AGE},
        {"skew", 0, REQSIGN_OPT_VALUE, V_SKEW},
        {"profile", 0, REQSIGN_OPT_VALUE, V_PROFILE},
        {"authority", 0, REQSIGN_OPT_VALUE, V_AUTHORITY},
        {"verbose", 'v', REQSIGN_OPT_FLAG, V_VERBOSE},
        {NULL, 0, REQSIGN_OPT_FLAG, 0},
    };
    struct reqsign_opt_parser p = {.prog = REQSIGN_CLI_PROG,
                                   .cmd = "verify",
                                   .usage = reqsign_cli_verify_usage,
                                   .argc = argc,
                                   .argv = argv};
    const char *val;
    int id = 0, r;

    memset(a, 0, sizeof(*a));
    a->profile = REQSIGN_PROFILE_REQSIGN;
    while ((r = reqsign_opt_next(&p, defs, &id, &val)) != REQSIGN_OPT_END) {
        if (r == REQSIGN_OPT_ERROR)
            return EXIT_USAGE;
        if (r == REQSIGN_OPT_OPERAND) {
            if (a->url != NULL)
                VERIFY_USAGE("unexpected argument '%s' (one URL only)", val);
            a->url = val;
            continue;
        }
        struct reqsign_span hn, hv;
        hn.len = 0;
        int c = reqsign_cli_request_opt(&p, id, val, &a->ro, &hn, &hv);
        if (c < 0)
            return EXIT_USAGE;
        if (c == 2)
            return -1; /* --help */
        if (c == 1 && id == CLI_O_HEADER && header_add(cli_headers, hn, hv) != 0)
            VERIFY_USAGE("too many -H options");
        if (c == 1)
            continue;
        switch (id) {
        case V_PUB:
            a->pub_file = val;
            break;
        case V_KEYID:
            a->keyid = val;
            break;
        case V_HEADERS:
            if (a->headers_file != NULL)
                VERIFY_USAGE("--headers given twice");
            a->headers_file = val;
            break;
        case V_NOW:
            if (reqsign_cli_parse_i64(val, 0, INT64_MAX / 4, &a->now) != 0)
                VERIFY_USAGE("--now: bad number '%s'", val);
            a->have_now = 1;
            break;
        case V_MAX_AGE:
            if (reqsign_cli_parse_i64(val, 1, INT64_MAX / 8, &a->max_age) != 0)
                VERIFY_USAGE("--max-age: bad number '%s'", val);
            break;
        case V_SKEW:
            if (reqsign_cli_parse_i64(val, 0, INT64_MAX / 8, &a->skew) != 0)
                VERIFY_USAGE("--skew: bad number '%s'", val);
            a->have_skew = 1;
            break;
        case V_PROFILE:
            if (strcmp(val, "reqsign") == 0)
                a->profile = REQSIGN_PROFILE_REQSIGN;
            else if (strcmp(val, "rfc9421") == 0)
                a->profile = REQSIGN_PROFILE_RFC9421;
            else
                VERIFY_USAGE("--profile: '%s' is not one of reqsign, rfc9421", val);
            break;
        case V_AUTHORITY:
            a->authority = val;
            break;
        case V_VERBOSE:
            a->verbose = 1;
            break;
        default:
            break;
        }
    }
    if (a->pub_file == NULL)
        VERIFY_USAGE("--pub is required");
    if (a->url == NULL)
        VERIFY_USAGE("missing URL");
    if (a->headers_file != NULL && strcmp(a->headers_file, "-") == 0 && a->ro.data != NULL &&
        strcmp(a->ro.data, "@-") == 0)
        VERIFY_USAGE("--headers - and --data @- both read stdin");
    if (a->ro.method == NULL)
        a->ro.method = a->ro.data != NULL ? "POST" : "GET";
    return EXIT_OKAY;
}

int reqsign_cli_verify(int argc, char **argv)
{
    static struct header_list cli_headers; /* -H, in order */
    static struct header_list all;         /* --headers, then -H */
    struct verify_args a;
    int pr = verify_parse(argc, argv, &a, &cli_headers);
    if (pr != EXIT_OKAY)
        return pr < 0 ? EXIT_OKAY : pr;
    const char *pub_file = a.pub_file, *keyid = a.keyid, *headers_file = a.headers_file;
    const char *authority = a.authority, *url = a.url, *method = a.ro.method, *data = a.ro.data;
    const char *label = a.ro.label, *tag = a.ro.tag;
    int64_t now = a.now, max_age = a.max_age, skew = a.skew;
    int have_now = a.have_now, have_skew = a.have_skew, show_base = a.ro.show_base;
    int verbose = a.verbose;
    enum reqsign_profile profile = a.profile;

    struct reqsign_error err;
    struct reqsign_static_key sk;
    struct reqsign_nonce_store *store = NULL;
    struct reqsign_verifier *verifier = NULL;
    struct reqsign_verification vs;
    struct reqsign_verifier_opts vo;
    struct reqsign_request req;
    struct url_view u;
    json_t *hjson = NULL;
    char *base = NULL, *body_mem = NULL;
    const char *body = NULL;
    size_t body_len = 0;
    int body_fd = -1, stream = 0;
    char clen[32];
    enum reqsign_status st;
    int rc = EXIT_FAIL;
    const char *why = NULL;

    reqsign_error_clear(&err);
    reqsign_verification_init(&vs);
    memset(&u, 0, sizeof(u));

    /* the key: only its public part */
    memset(&sk, 0, sizeof(sk));
    sk.keyid = keyid;
    st = reqsign_cli_load_public("verify", pub_file, sk.public_key, &err);
    if (st != REQSIGN_OK) {
        reqsign_cli_print_error(stdout, st, &err);
        goto out;
    }

    /* the request */
    if (split_url(url, &u, &why) != 0) {
        reqsign_cli_print_error_msg(stdout, REQSIGN_E_URL, "%s: %s", url, why);
        goto out;
    }
    if (headers_file != NULL) {
        json_error_t je;
        if (strcmp(headers_file, "-") == 0)
            hjson = json_loadf(stdin, JSON_REJECT_DUPLICATES, &je);
        else
            hjson = json_load_file(headers_file, JSON_REJECT_DUPLICATES, &je);
        if (hjson == NULL) {
            char where[64];
            snprintf(where, sizeof(where), "line %d column %d", je.line, je.column);
            struct reqsign_error e2;
            reqsign_error_clear(&e2);
            (void)reqsign_error_set(&e2, REQSIGN_E_INVALID_ARG, NULL, REQSIGN_NO_OFFSET,
                                    "--headers %s: %s (%s)", headers_file, je.text, where);
            reqsign_cli_print_error(stdout, REQSIGN_E_INVALID_ARG, &e2);
            goto out;
        }
        if (headers_from_json(hjson, &all, headers_file) != 0)
            goto out;
    }
    for (size_t i = 0; i < cli_headers.n; i++) {
        if (header_add(&all, cli_headers.h[i].name, cli_headers.h[i].value) != 0) {
            reqsign_cli_print_error_msg(stdout, REQSIGN_E_LIMIT, "more than %d header fields",
                                        CLI_MAX_HEADERS);
            goto out;
        }
    }

    memset(&req, 0, sizeof(req));
    req.method.ptr = method;
    req.method.len = strlen(method);
    req.scheme = u.scheme;
    req.target.ptr = u.target;
    req.target.len = u.target_len;
    const struct reqsign_header *host = header_find_last(&all, "host");
    if (host != NULL) {
        req.authority = reqsign_cli_span_trim(host->value);
    } else {
        req.authority = u.authority;
        if (header_add(&all, (struct reqsign_span){"Host", 4}, u.authority) != 0) {
            reqsign_cli_print_error_msg(stdout, REQSIGN_E_LIMIT, "more than %d header fields",
                                        CLI_MAX_HEADERS);
            goto out;
        }
    }

    /* the body */
    if (data != NULL && data[0] == '@') {
        struct stat sb;
        if (strcmp(data, "@-") == 0) {
            body_fd = STDIN_FILENO;
        } else {
            body_fd = open(data + 1, O_RDONLY | O_CLOEXEC);
            if (body_fd < 0) {
                reqsign_cli_print_error_msg(stdout, REQSIGN_E_IO, "%s: %s", data + 1,
                                            strerror(errno));
                goto out;
            }
        }
        if (fstat(body_fd, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size >= 0) {
            off_t pos = lseek(body_fd, 0, SEEK_CUR);
            body_len = (size_t)(sb.st_size - (pos > 0 ? pos : 0));
            stream = 1;
        } else if (reqsign_cli_slurp_fd(body_fd, &body_mem, &body_len) != 0) {
            reqsign_cli_print_error_msg(stdout, REQSIGN_E_IO, "%s: %s", data + 1, strerror(errno));
            goto out;
        } else {
            body = body_mem;
        }
    } else if (data != NULL) {
        body = data;
        body_len = strlen(data);
    }
    if (body_len > 0 && header_find_last(&all, "content-length") == NULL &&
        header_find_last(&all, "transfer-encoding") == NULL) {
        int n = snprintf(clen, sizeof(clen), "%zu", body_len);
        if (n < 0 || header_add(&all, (struct reqsign_span){"Content-Length", 14},
                                (struct reqsign_span){clen, (size_t)n}) != 0) {
            reqsign_cli_print_error_msg(stdout, REQSIGN_E_LIMIT, "more than %d header fields",
                                        CLI_MAX_HEADERS);
            goto out;
        }
    }
    req.headers = all.h;
    req.n_headers = all.n;

    /* the verifier */
    store = reqsign_nonce_store_memory_new(NULL, NULL);
    if (store == NULL) {
        reqsign_cli_print_error(stdout, REQSIGN_E_NOMEM, NULL);
        goto out;
    }
    if (!have_now)
        now = (int64_t)time(NULL);
    memset(&vo, 0, sizeof(vo));
    vo.profile = profile;
    vo.max_age = max_age;
    vo.skew = have_skew ? (skew == 0 ? -1 : skew) : 0;
    vo.label = label;
    vo.public_authority = authority;
    /* without --authority, the request's Host (or the URL's authority): this
     * checks a request as received, it is not a service */
    vo.any_authority = authority == NULL;
    vo.required_tag = tag;
    vo.clock = fixed_clock;
    vo.clock_ctx = &now;
    vo.lookup = reqsign_static_key_lookup;
    vo.lookup_ctx = &sk;
    vo.nonces = store;
    verifier = reqsign_verifier_new(&vo, &err);
    if (verifier == NULL) {
        reqsign_cli_print_error(stdout, err.code != REQSIGN_OK ? err.code : REQSIGN_E_INTERNAL,
                                &err);
        goto out;
    }

    if (show_base) {
        base = malloc(REQSIGN_BASE_BUF);
        if (base == NULL) {
            reqsign_cli_print_error(stdout, REQSIGN_E_NOMEM, NULL);
            goto out;
        }
        vs.base_buf = base;
        vs.base_cap = REQSIGN_BASE_BUF;
    }
    st = reqsign_verifier_verify_headers(verifier, &req, &vs, &err);
    if (show_base && vs.base_len > 0) {
        fwrite(base, 1, vs.base_len, stderr);
        fputc('\n', stderr);
    }
    if (st == REQSIGN_OK && stream) {
        char buf[65536];
        for (;;) {
            ssize_t n = reqsign_cli_read(body_fd, buf, sizeof(buf));
            if (n < 0) {
                reqsign_cli_print_error_msg(stdout, REQSIGN_E_IO, "%s: %s", data + 1,
                                            strerror(errno));
                goto out;
            }
            if (n == 0)
                break;
            st = reqsign_verification_body(&vs, buf, (size_t)n, &err);
            if (st != REQSIGN_OK)
                break;
        }
    } else if (st == REQSIGN_OK) {
        st = reqsign_verification_body(&vs, body, body_len, &err);
    }
    if (st == REQSIGN_OK)
        st = reqsign_verification_finish(&vs, &err);
    if (st != REQSIGN_OK) {
        if (st == REQSIGN_E_SIG_INVALID || st == REQSIGN_E_KEY_UNKNOWN)
            name_pub(pub_file, sk.public_key, vs.keyid);
        reqsign_cli_print_error(stdout, st, &err);
        goto out;
    }
    printf("ok\n");
    if (verbose)
        printf("keyid: %s  created: %lld\n", vs.keyid, (long long)vs.created);
    rc = EXIT_OKAY;
out:
    reqsign_verification_cleanup(&vs);
    reqsign_verifier_free(verifier);
    reqsign_nonce_store_free(store);
    if (body_fd > STDIN_FILENO)
        close(body_fd);
    free(body_mem);
    free(base);
    free(u.target);
    json_decref(hjson);
    reqsign_memzero(&sk, sizeof(sk));
    return rc;
}
