/* reqsign CLI: what the subcommands share. One subcommand per file (main.c
 * only dispatches); util.c holds the shared options, error output, I/O, the
 * credential profiles and the secret-file writer; service.c what the
 * commands that talk to a key service share; key.c the public-key loader.
 * The option parser is common/opt/opt.h's, shared with the servers. */
#ifndef REQSIGN_CLI_H
#define REQSIGN_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include <curl/curl.h>
#include <jansson.h>

#include <reqsign/credential.h>
#include <reqsign/error.h>
#include <reqsign/request.h>
#include <reqsign/signer.h>

#include "opt.h"

#if defined(__GNUC__)
#define CLI_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define CLI_PRINTF(f, a)
#endif

/* Exit status of every subcommand. */
enum { EXIT_OKAY = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

/* Subcommands: one per file (main.c only dispatches). */
int reqsign_cli_keygen(int argc, char **argv);   /* keygen.c */
int reqsign_cli_sign(int argc, char **argv);     /* sign.c */
int reqsign_cli_verify(int argc, char **argv);   /* verify.c */
int reqsign_cli_key(int argc, char **argv);      /* key.c */
int reqsign_cli_send(int argc, char **argv);     /* send.c */
int reqsign_cli_keys(int argc, char **argv);     /* keys.c */
int reqsign_cli_accounts(int argc, char **argv); /* accounts.c */
int reqsign_cli_enroll(int argc, char **argv);   /* enroll.c */
int reqsign_cli_audit(int argc, char **argv);    /* audit.c */

/* Their help texts (reqsign help CMD). */
extern const char reqsign_cli_keygen_usage[];
extern const char reqsign_cli_sign_usage[];
extern const char reqsign_cli_verify_usage[];
extern const char reqsign_cli_key_usage[];
extern const char reqsign_cli_send_usage[];

/* ------------------------------------------------------ options (util.c) */

/* The option parser is common/opt/opt.h's (shared with reqsignd and
 * api-backend); REQSIGN_CLI_PROG names this program in its messages. */
#define REQSIGN_CLI_PROG "reqsign"

/* "reqsign @cmd: <message>" then "see 'reqsign @cmd --help'", on stderr (a
 * usage error: exit 2). @usage is not printed: --help shows it. */
void reqsign_cli_usage_error(const char *cmd, const char *usage, const char *fmt, ...)
    CLI_PRINTF(3, 4);
/* "see 'reqsign @cmd --help'" on stderr. */
void reqsign_cli_usage_hint(const char *cmd);

/* What CLI_OPTS_CREDENTIAL (and --keyid) set. */
struct reqsign_cli_cred {
    const char *key;     /* --key */
    const char *keyid;   /* --keyid */
    const char *profile; /* --profile */
    int insecure;        /* --insecure-key-permissions */
};

/* Options several subcommands share: their ids (above every subcommand's
 * own) and their rows in the option tables. */
enum {
    CLI_O_CACERT = 1000,  /* --cacert FILE: trust the CA certificates in FILE */
    CLI_O_INSECURE,       /* -k/--insecure: no certificate or host name check */
    CLI_O_KEY,            /* --key FILE|-: the credential */
    CLI_O_KEYID,          /* --keyid ID */
    CLI_O_PROFILE,        /* --profile NAME: credentials/NAME.json */
    CLI_O_INSECURE_PERMS, /* --insecure-key-permissions */
};
/* TLS, as curl spells it; certificates are verified by default. */
#define CLI_OPTS_TLS                                                                               \
    {"cacert", 0, REQSIGN_OPT_VALUE, CLI_O_CACERT},                                                \
    {                                                                                              \
        "insecure", 'k', REQSIGN_OPT_FLAG, CLI_O_INSECURE                                          \
    }
/* The credential a signing command uses (reqsign_cli_load_signer). */
#define CLI_OPTS_CREDENTIAL                                                                        \
    {"key", 0, REQSIGN_OPT_VALUE, CLI_O_KEY}, {"profile", 0, REQSIGN_OPT_VALUE, CLI_O_PROFILE},    \
    {                                                                                              \
        "insecure-key-permissions", 0, REQSIGN_OPT_FLAG, CLI_O_INSECURE_PERMS                      \
    }
/* Handle a shared option @id (value @val) parsed by @p: 1 done, 0 not one
 * of them (or @c NULL for a credential option), -1 a usage error (printed). */
int reqsign_cli_common_opt(const struct reqsign_opt_parser *p, int id, const char *val,
                           struct reqsign_cli_cred *c);
/* The request options sign and verify share: -X, -H, -d, --label, --tag,
 * --show-base and -h. */
enum {
    CLI_O_METHOD = 1100,
    CLI_O_HEADER,
    CLI_O_DATA,
    CLI_O_LABEL,
    CLI_O_TAG,
    CLI_O_SHOW_BASE,
    CLI_O_HELP
};
#define CLI_OPTS_REQUEST                                                                           \
    {"request", 'X', REQSIGN_OPT_VALUE, CLI_O_METHOD},                                             \
        {"header", 'H', REQSIGN_OPT_VALUE, CLI_O_HEADER},                                          \
        {"data", 'd', REQSIGN_OPT_VALUE, CLI_O_DATA},                                              \
        {"label", 0, REQSIGN_OPT_VALUE, CLI_O_LABEL}, {"tag", 0, REQSIGN_OPT_VALUE, CLI_O_TAG},    \
        {"show-base", 0, REQSIGN_OPT_FLAG, CLI_O_SHOW_BASE},                                       \
    {                                                                                              \
        "help", 'h', REQSIGN_OPT_FLAG, CLI_O_HELP                                                  \
    }
struct reqsign_cli_reqopts {
    const char *method, *data, *label, *tag;
    int show_base;
};
/* Handle a request option: 1 done (for -H: *@name, *@value set when not
 * NULL), 2 --help (printed), 0 not one, -1 a usage error (printed). */
int reqsign_cli_request_opt(const struct reqsign_opt_parser *p, int id, const char *val,
                            struct reqsign_cli_reqopts *r, struct reqsign_span *name,
                            struct reqsign_span *value);

/* A duration: N seconds, or +N / N with a unit s, m, h, d ("+30d"), within
 * [min, max] seconds. 0 on success. */
int reqsign_cli_parse_duration(const char *s, int64_t min, int64_t max, int64_t *out);

/* util.c */
/* Print "error: <wire name>: <message>" on one line to @f. */
void reqsign_cli_print_error(FILE *f, enum reqsign_status st, const struct reqsign_error *err);
/* The same for an error that did not come from the library. */
void reqsign_cli_print_error_msg(FILE *f, enum reqsign_status st, const char *fmt, ...)
    CLI_PRINTF(3, 4);
/* Strict integer: decimal, whole string, within [min, max]. 0 on success. */
int reqsign_cli_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out);
/* A count: decimal digits only, within [min, max]. 0 on success. */
int reqsign_cli_parse_count(const char *s, long min, long max, long *out);
/* read(2), retrying on EINTR. */
ssize_t reqsign_cli_read(int fd, void *buf, size_t cap);
/* Read all of @fd into a malloc'd buffer (NUL-terminated). 0 on success. */
int reqsign_cli_slurp_fd(int fd, char **out, size_t *out_len);
/* 1 if @s is a field value: no CR, LF, NUL or other controls but HTAB. */
int reqsign_cli_is_field_value(const char *s, size_t n);
/* @s without leading and trailing blanks. */
struct reqsign_span reqsign_cli_span_trim(struct reqsign_span s);
/* A -H 'Name: value' argument (spans point into @arg). 0 on success. */
int reqsign_cli_parse_header(const char *arg, struct reqsign_span *name,
                             struct reqsign_span *value);

/* ------------------------------------ credentials and secrets (util.c) */

/* --key @key (a path, or "-" for stdin) is acceptable: 0; key material
 * (inline credential JSON, first non-blank character '{' or '['; PEM armour
 * "-----BEGIN"; a line break or other control character; a 64-hex or 43/44
 * base64 string that is not an existing file) puts a private key on the
 * command line, where every local user can read it (/proc/PID/cmdline, ps): a
 * usage error that says why, without echoing @key, is printed and -1 returned. */
int reqsign_cli_key_arg_ok(const char *cmd, const char *usage, const char *key);
/* The length of @a if it is all base64url characters (A-Z a-z 0-9 - _), else 0. */
size_t reqsign_cli_base64url_len(const char *a);
/* 1 if @a has the shape of a key thumbprint (43 base64url characters, the
 * form of every keyid the key service assigns). One in 64 begins with '-', so
 * a command that takes a KEYID operand asks this before reading @a as an
 * option; no option of ours has that shape. */
int reqsign_cli_is_thumbprint(const char *a);
/* 0 if @name can name a profile (credentials/NAME.json), else -1. */
int reqsign_cli_profile_name_ok(const char *name);

/* Credential profiles, as the AWS CLI keeps them: CONFIG/credentials/NAME.json,
 * CONFIG being $XDG_CONFIG_HOME/reqsign, else ~/.config/reqsign. */
#define REQSIGN_CLI_PROFILE_ENV "REQSIGN_PROFILE"
#define REQSIGN_CLI_PATH_MAX 4096
/* CONFIG into @out; -1 if neither XDG_CONFIG_HOME nor HOME is absolute. */
int reqsign_cli_config_dir(char *out, size_t cap);
/* CONFIG/credentials/@name.json into @out; -1 as above or too long. */
int reqsign_cli_profile_path(const char *name, char *out, size_t cap);
/* The credential every signing command uses, in this order (the AWS CLI's:
 * the command line, then the environment, then the default): --key or
 * --profile (both: a usage error), then $REQSIGN_CREDENTIAL (*@spec NULL:
 * the loader reads it), then $REQSIGN_PROFILE, then the profile "default" if
 * it exists (*@spec = @path for a profile).
 * EXIT_OKAY, or EXIT_USAGE / EXIT_FAIL with a message that names the path
 * looked at. */
int reqsign_cli_credential_spec(const char *cmd, const struct reqsign_cli_cred *c, char *path,
                                size_t cap, const char **spec);

/* The one writer of secret files (a private key, a credential): created
 * with O_EXCL and mode 0600, so an existing file is never overwritten (and
 * with @make_dirs, its missing directories with mode 0700). The file is
 * created first, before the secret exists: nothing is generated that cannot
 * be stored. Returns the fd, or -1 with "reqsign CMD: error: io: ..." printed. */
int reqsign_cli_secret_create(const char *cmd, const char *path, int make_dirs);
/* Write @data (plus a final newline if missing), fsync and close @fd. On
 * failure the file is removed, the error printed and -1 returned. */
int reqsign_cli_secret_finish(const char *cmd, const char *path, int fd, const char *data,
                              size_t len);
/* Close @fd (if >= 0) and remove @path: the secret never arrived. */
void reqsign_cli_secret_abort(const char *path, int fd);

/* ------------------------------------------------ text and I/O (util.c) */

/* Text from a key service (a label, a name; "-" for NULL) with control
 * characters escaped: C0, DEL and non-UTF-8 bytes as \xHH, C1 controls as
 * \u00HH, bidi controls and line separators as \uHHHH, '\\' as '\\\\'. */
void reqsign_cli_put_text(FILE *f, const char *s);
/* The length (2 or 3) of the UTF-8 bidi control or line separator at @p, else 0. */
size_t reqsign_cli_bidi_len(const unsigned char *p);
/* The code point of the 2- or 3-byte UTF-8 sequence at @p. */
unsigned reqsign_cli_utf8_cp(const unsigned char *p, size_t n);
/* write(2) all of @buf, retrying on EINTR; 0 or -1. */
int reqsign_cli_write_all(int fd, const void *buf, size_t len);

/* ----------------------------------------------------------- TLS (util.c) */

/* 1 if -k was given. */
int reqsign_cli_tls_insecure(void);
/* Apply them to a transfer (TLS 1.2 or later, always). */
void reqsign_cli_tls_apply(CURL *h);

/* ------------------------------------------------- key service (service.c) */

/* service.c: credentials, HTTP and error output shared with `reqsign keys`. */
void reqsign_cli_error(const char *cmd, enum reqsign_status st, const struct reqsign_error *err);
/* Load the credential @c names (reqsign_cli_credential_spec) and make a
 * signer (@so may be NULL). EXIT_OKAY, EXIT_FAIL or EXIT_USAGE (printed). */
int reqsign_cli_load_signer(const char *cmd, const struct reqsign_cli_cred *c,
                            const struct reqsign_signer_opts *so, struct reqsign_credential **cred,
                            struct reqsign_signer **signer);
int reqsign_cli_http(const char *cmd, const struct reqsign_signer *s, const char *method,
                     const char *url, const char *body, size_t body_len, int verbose, long *status,
                     char **resp, size_t *resp_len);
/* The same with a second signature by @pop (its own label, e.g. "pop": the
 * proof of possession of a rotation to a key of one's own) over the same
 * components and Content-Digest; @pop NULL: reqsign_cli_http(). */
int reqsign_cli_http_pop(const char *cmd, const struct reqsign_signer *s,
                         const struct reqsign_signer *pop, const char *method, const char *url,
                         const char *body, size_t body_len, int verbose, long *status, char **resp,
                         size_t *resp_len);
void reqsign_cli_print_server_error(const char *cmd, long status, const char *body, size_t len);

/* A response buffer that may hold a secret (a credential): grown by copy,
 * the old block wiped, never realloc'd in place. */
struct reqsign_cli_membuf {
    char *p;
    size_t len, cap;
    int overflow;
};
size_t reqsign_cli_membuf_write(char *data, size_t size, size_t nmemb, void *ud);
/* CURLOPT_DEBUGFUNCTION for -v: "* ", "> ", "< " lines on stderr. */
int reqsign_cli_debug_cb(CURL *h, curl_infotype type, char *data, size_t size, void *ud);
/* "* signature base:" and the base, on stderr. */
void reqsign_cli_print_base(const struct reqsign_signed *sig);
/* The options of accounts, enroll and audit. */
#define REQSIGN_CLI_MAX_SCOPES 16
struct reqsign_cli_svc {
    const char *cmd, *usage, *sub, *arg;
    const char *service, *name, *token, *label, *out, *account, *after, *to_profile;
    struct reqsign_cli_cred cred;
    const char *scopes[REQSIGN_CLI_MAX_SCOPES];
    size_t n_scopes;
    long key_limit, max_life, limit;
    int json, verbose, generate, publish_keys;
};
/* Fill @o (cmd, usage; sub = argv[0] when @first is 1) from argv[@first..]:
 * 0, -1 (--help printed), or EXIT_USAGE (printed). */
int reqsign_cli_svc_parse(const char *cmd, const char *usage, int argc, char **argv, int first,
                          struct reqsign_cli_svc *o);
/* @service without trailing slashes, plus @path; malloc'd. */
char *reqsign_cli_service_url(const char *service, const char *path);
/* One request; *@doc the parsed answer (2xx only). EXIT_OKAY or EXIT_FAIL. */
int reqsign_cli_svc_api(const struct reqsign_cli_svc *o, const struct reqsign_signer *s,
                        const char *service, const char *method, const char *path, const char *body,
                        json_t **doc, char **raw, size_t *raw_len);
/* @doc indented, on stdout. */
void reqsign_cli_print_json(const json_t *doc);
/* The credential (reqsign_cli_load_signer) and the service URL. */
int reqsign_cli_svc_load(const struct reqsign_cli_svc *o, struct reqsign_credential **cred,
                         struct reqsign_signer **signer, const char **service);
/* @s URL-escaped, malloc'd. */
char *reqsign_cli_escape(const char *s);

/* ------------------------------------------------------------ key.c */

/* The public key in @path: a key file of any format (of a private key
 * readable by others, its public half, with a warning), a credential JSON or
 * a key record (GET /v1/keys/KEYID). REQSIGN_OK or the error (in @err). */
enum reqsign_status reqsign_cli_load_public(const char *cmd, const char *path,
                                            unsigned char pub[32], struct reqsign_error *err);
/* Print the public key PEM, "keyid: ..." and "jwk: ..." of @path. */
int reqsign_cli_key_show(const char *cmd, const char *path);

#endif
