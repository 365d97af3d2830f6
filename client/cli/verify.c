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

/* verify's own option @id (value @val) into @a: EXIT_OKAY or EXIT_USAGE
 * (printed). */
static int verify_option(struct verify_args *a, int id, const char *val)
{
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
    return EXIT_OKAY;
}

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
        if (verify_option(a, id, val) != EXIT_OKAY)
            return EXIT_USAGE;
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

/* One run of `reqsign verify`: the request rebuilt from the command line,
 * the public key, and a verifier that checks it as a service would. */
struct verify_run {
    struct verify_args a;
    struct header_list *cli_headers; /* -H, in order */
    struct header_list *all;         /* --headers, then -H, then Host and Content-Length */
    struct reqsign_static_key sk;    /* --pub (its public part) and --keyid */
    struct url_view u;
    json_t *hjson;
    struct reqsign_request req;
    const char *body; /* in memory (a string, or @- / a pipe read), or NULL */
    char *body_mem;
    size_t body_len;
    int body_fd, stream; /* --data @FILE of a regular file: read while verifying */
    char clen[32];
    int64_t now;
    struct reqsign_nonce_store *store;
    struct reqsign_verifier *verifier;
    struct reqsign_verification vs;
    char *base;
    struct reqsign_error err;
};

/* The key --pub names: only its public part. 0, or -1 (printed). */
static int verify_load_key(struct verify_run *r)
{
    r->sk.keyid = r->a.keyid;
    enum reqsign_status st =
        reqsign_cli_load_public("verify", r->a.pub_file, r->sk.public_key, &r->err);
    if (st != REQSIGN_OK) {
        reqsign_cli_print_error(stdout, st, &r->err);
        return -1;
    }
    return 0;
}

/* The header fields of --headers FILE (a JSON object or array) into r->all.
 * 0, or -1 (printed). */
static int verify_read_headers(struct verify_run *r)
{
    const char *file = r->a.headers_file;
    json_error_t je;
    if (strcmp(file, "-") == 0)
        r->hjson = json_loadf(stdin, JSON_REJECT_DUPLICATES, &je);
    else
        r->hjson = json_load_file(file, JSON_REJECT_DUPLICATES, &je);
    if (r->hjson == NULL) {
        char where[64];
        snprintf(where, sizeof(where), "line %d column %d", je.line, je.column);
        struct reqsign_error e2;
        reqsign_error_clear(&e2);
        (void)reqsign_error_set(&e2, REQSIGN_E_INVALID_ARG, NULL, REQSIGN_NO_OFFSET,
                                "--headers %s: %s (%s)", file, je.text, where);
        reqsign_cli_print_error(stdout, REQSIGN_E_INVALID_ARG, &e2);
        return -1;
    }
    return headers_from_json(r->hjson, r->all, file) != 0 ? -1 : 0;
}

/* Add a header field to r->all. 0, or -1 (too many: printed). */
static int verify_add_header(struct verify_run *r, struct reqsign_span name,
                             struct reqsign_span value)
{
    if (header_add(r->all, name, value) != 0) {
        reqsign_cli_print_error_msg(stdout, REQSIGN_E_LIMIT, "more than %d header fields",
                                    CLI_MAX_HEADERS);
        return -1;
    }
    return 0;
}

/* The request line and header fields: method, the URL's scheme and target,
 * --headers then -H, and the authority of the last Host field (added from
 * the URL if there is none). 0, or -1 (printed). */
static int verify_build_request(struct verify_run *r)
{
    const char *why = NULL;
    if (split_url(r->a.url, &r->u, &why) != 0) {
        reqsign_cli_print_error_msg(stdout, REQSIGN_E_URL, "%s: %s", r->a.url, why);
        return -1;
    }
    if (r->a.headers_file != NULL && verify_read_headers(r) != 0)
        return -1;
    for (size_t i = 0; i < r->cli_headers->n; i++)
        if (verify_add_header(r, r->cli_headers->h[i].name, r->cli_headers->h[i].value) != 0)
            return -1;
    r->req.method.ptr = r->a.ro.method;
    r->req.method.len = strlen(r->a.ro.method);
    r->req.scheme = r->u.scheme;
    r->req.target.ptr = r->u.target;
    r->req.target.len = r->u.target_len;
    const struct reqsign_header *host = header_find_last(r->all, "host");
    if (host != NULL) {
        r->req.authority = reqsign_cli_span_trim(host->value);
    } else {
        r->req.authority = r->u.authority;
        if (verify_add_header(r, (struct reqsign_span){"Host", 4}, r->u.authority) != 0)
            return -1;
    }
    return 0;
}

/* The body: --data STRING, or @FILE / @-: a regular file is read while
 * verifying (its length known now), anything else into memory first. A body
 * without Content-Length or Transfer-Encoding gets a Content-Length field.
 * 0, or -1 (printed). */
static int verify_open_body(struct verify_run *r)
{
    const char *data = r->a.ro.data;
    if (data != NULL && data[0] == '@') {
        struct stat sb;
        if (strcmp(data, "@-") == 0) {
            r->body_fd = STDIN_FILENO;
        } else {
            r->body_fd = open(data + 1, O_RDONLY | O_CLOEXEC);
            if (r->body_fd < 0) {
                reqsign_cli_print_error_msg(stdout, REQSIGN_E_IO, "%s: %s", data + 1,
                                            strerror(errno));
                return -1;
            }
        }
        if (fstat(r->body_fd, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size >= 0) {
            off_t pos = lseek(r->body_fd, 0, SEEK_CUR);
            r->body_len = (size_t)(sb.st_size - (pos > 0 ? pos : 0));
            r->stream = 1;
        } else if (reqsign_cli_slurp_fd(r->body_fd, &r->body_mem, &r->body_len) != 0) {
            reqsign_cli_print_error_msg(stdout, REQSIGN_E_IO, "%s: %s", data + 1, strerror(errno));
            return -1;
        } else {
            r->body = r->body_mem;
        }
    } else if (data != NULL) {
        r->body = data;
        r->body_len = strlen(data);
    }
    if (r->body_len > 0 && header_find_last(r->all, "content-length") == NULL &&
        header_find_last(r->all, "transfer-encoding") == NULL) {
        int n = snprintf(r->clen, sizeof(r->clen), "%zu", r->body_len);
        if (n < 0 || verify_add_header(r, (struct reqsign_span){"Content-Length", 14},
                                       (struct reqsign_span){r->clen, (size_t)n}) != 0)
            return -1;
    }
    r->req.headers = r->all->h;
    r->req.n_headers = r->all->n;
    return 0;
}

/* A verifier with the options of the command line, the key of --pub, an
 * in-memory nonce store and the clock of --now. 0, or -1 (printed). */
static int verify_new_verifier(struct verify_run *r)
{
    struct reqsign_verifier_opts vo;
    r->store = reqsign_nonce_store_memory_new(NULL, NULL);
    if (r->store == NULL) {
        reqsign_cli_print_error(stdout, REQSIGN_E_NOMEM, NULL);
        return -1;
    }
    r->now = r->a.have_now ? r->a.now : (int64_t)time(NULL);
    memset(&vo, 0, sizeof(vo));
    vo.profile = r->a.profile;
    vo.max_age = r->a.max_age;
    vo.skew = r->a.have_skew ? (r->a.skew == 0 ? -1 : r->a.skew) : 0;
    vo.label = r->a.ro.label;
    vo.public_authority = r->a.authority;
    /* without --authority, the request's Host (or the URL's authority): this
     * checks a request as received, it is not a service */
    vo.any_authority = r->a.authority == NULL;
    vo.required_tag = r->a.ro.tag;
    vo.clock = fixed_clock;
    vo.clock_ctx = &r->now;
    vo.lookup = reqsign_static_key_lookup;
    vo.lookup_ctx = &r->sk;
    vo.nonces = r->store;
    r->verifier = reqsign_verifier_new(&vo, &r->err);
    if (r->verifier == NULL) {
        reqsign_cli_print_error(
            stdout, r->err.code != REQSIGN_OK ? r->err.code : REQSIGN_E_INTERNAL, &r->err);
        return -1;
    }
    if (r->a.ro.show_base) {
        r->base = malloc(REQSIGN_BASE_BUF);
        if (r->base == NULL) {
            reqsign_cli_print_error(stdout, REQSIGN_E_NOMEM, NULL);
            return -1;
        }
        r->vs.base_buf = r->base;
        r->vs.base_cap = REQSIGN_BASE_BUF;
    }
    return 0;
}

/* The body of a regular file through the verification, in chunks, the
 * status into *@st. 0, or -1 for a read error (printed). */
static int verify_stream_body(struct verify_run *r, enum reqsign_status *st)
{
    char buf[65536];
    for (;;) {
        ssize_t n = reqsign_cli_read(r->body_fd, buf, sizeof(buf));
        if (n < 0) {
            reqsign_cli_print_error_msg(stdout, REQSIGN_E_IO, "%s: %s", r->a.ro.data + 1,
                                        strerror(errno));
            return -1;
        }
        if (n == 0)
            return 0;
        *st = reqsign_verification_body(&r->vs, buf, (size_t)n, &r->err);
        if (*st != REQSIGN_OK)
            return 0;
    }
}

/* The verification: header fields (--show-base prints the base), body,
 * finish; "ok" or the error on stdout. EXIT_OKAY or EXIT_FAIL. */
static int verify_check(struct verify_run *r)
{
    enum reqsign_status st = reqsign_verifier_verify_headers(r->verifier, &r->req, &r->vs, &r->err);
    if (r->a.ro.show_base && r->vs.base_len > 0) {
        fwrite(r->base, 1, r->vs.base_len, stderr);
        fputc('\n', stderr);
    }
    if (st == REQSIGN_OK && r->stream) {
        if (verify_stream_body(r, &st) != 0)
            return EXIT_FAIL;
    } else if (st == REQSIGN_OK) {
        st = reqsign_verification_body(&r->vs, r->body, r->body_len, &r->err);
    }
    if (st == REQSIGN_OK)
        st = reqsign_verification_finish(&r->vs, &r->err);
    if (st != REQSIGN_OK) {
        if (st == REQSIGN_E_SIG_INVALID || st == REQSIGN_E_KEY_UNKNOWN)
            name_pub(r->a.pub_file, r->sk.public_key, r->vs.keyid);
        reqsign_cli_print_error(stdout, st, &r->err);
        return EXIT_FAIL;
    }
    printf("ok\n");
    if (r->a.verbose)
        printf("keyid: %s  created: %lld\n", r->vs.keyid, (long long)r->vs.created);
    return EXIT_OKAY;
}

int reqsign_cli_verify(int argc, char **argv)
{
    static struct header_list cli_headers; /* -H, in order */
    static struct header_list all;         /* --headers, then -H */
    struct verify_run r;
    memset(&r, 0, sizeof(r));
    int rc = verify_parse(argc, argv, &r.a, &cli_headers);
    if (rc != EXIT_OKAY)
        return rc < 0 ? EXIT_OKAY : rc;
    r.cli_headers = &cli_headers;
    r.all = &all;
    r.body_fd = -1;
    reqsign_error_clear(&r.err);
    reqsign_verification_init(&r.vs);

    rc = EXIT_FAIL;
    if (verify_load_key(&r) == 0 && verify_build_request(&r) == 0 && verify_open_body(&r) == 0 &&
        verify_new_verifier(&r) == 0)
        rc = verify_check(&r);

    reqsign_verification_cleanup(&r.vs);
    reqsign_verifier_free(r.verifier);
    reqsign_nonce_store_free(r.store);
    if (r.body_fd > STDIN_FILENO)
        close(r.body_fd);
    free(r.body_mem);
    free(r.base);
    free(r.u.target);
    json_decref(r.hjson);
    reqsign_memzero(&r.sk, sizeof(r.sk));
    return rc;
}
