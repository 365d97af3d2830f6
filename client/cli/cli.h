/* reqsign CLI: helpers shared by the subcommands (main.c, send.c, keys.c). */
#ifndef REQSIGN_CLI_H
#define REQSIGN_CLI_H

#include <stddef.h>

#include <curl/curl.h>

#include <reqsign/credential.h>
#include <reqsign/error.h>
#include <reqsign/signer.h>

/* Subcommands. */
int reqsign_cli_send(int argc, char **argv);
int reqsign_cli_keys(int argc, char **argv);
int reqsign_cli_accounts(int argc, char **argv); /* accounts.c */
int reqsign_cli_enroll(int argc, char **argv);
int reqsign_cli_audit(int argc, char **argv);

/* send.c: credentials, HTTP and error output shared with `reqsign keys`. */
void reqsign_cli_error(const char *cmd, enum reqsign_status st, const struct reqsign_error *err);
int reqsign_cli_load_signer(const char *cmd, const char *key, const char *keyid, int insecure,
                            struct reqsign_credential **cred, struct reqsign_signer **signer);
int reqsign_cli_http(const char *cmd, const struct reqsign_signer *s, const char *method,
                     const char *url, const char *body, size_t body_len, int verbose, long *status,
                     char **resp, size_t *resp_len);
void reqsign_cli_print_server_error(const char *cmd, long status, const char *body, size_t len);

/* util.c */
/* The value of option @lng / -@shrt at argv[*i]: "--name=value", "--name value",
 * "-X value", "-Xvalue". NULL and *matched = 0 if argv[*i] is another option;
 * NULL and *matched = 1 on a missing value (a usage error for `reqsign @cmd`
 * is printed, followed by @usage). */
const char *reqsign_cli_opt_value(const char *cmd, const char *usage, int argc, char **argv,
                                  int *i, const char *lng, char shrt, int *matched);
/* "reqsign @cmd: <message>" then @usage, on stderr (a usage error: exit 2). */
void reqsign_cli_usage_error(const char *cmd, const char *usage, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* --key @key (a path, or "-" for stdin) is acceptable: 0; key material
 * (inline credential JSON, first non-blank character '{' or '['; PEM armour
 * "-----BEGIN"; a line break or other control character; a 64-hex or 43/44
 * base64 string that is not an existing file) puts a private key on the
 * command line, where every local user can read it (/proc/PID/cmdline, ps): a
 * usage error that says why, without echoing @key, is printed and -1 returned. */
int reqsign_cli_key_arg_ok(const char *cmd, const char *usage, const char *key);
/* 1 if @a has the shape of a key thumbprint (43 base64url characters, the
 * form of every keyid the key service assigns). One in 64 begins with '-', so
 * a command that takes a KEYID operand asks this before reading @a as an
 * option; no option of ours has that shape. */
int reqsign_cli_is_thumbprint(const char *a);
/* 1 if @a is the flag --@lng or -@shrt. */
int reqsign_cli_is_flag(const char *a, const char *lng, char shrt);
/* write(2) all of @buf, retrying on EINTR; 0 or -1. */
int reqsign_cli_write_all(int fd, const void *buf, size_t len);
/* The TLS options every command that talks HTTP takes, as curl spells them:
 * --cacert FILE (trust the CA certificates in FILE instead of the system's) and
 * -k/--insecure (no certificate or host name check). Certificates are verified
 * by default. Returns 1 if argv[*i] was one of them (consumed, with its value),
 * 0 if not, -1 on a usage error (printed). */
int reqsign_cli_tls_opt(const char *cmd, const char *usage, int argc, char **argv, int *i);
/* 1 if -k was given. */
int reqsign_cli_tls_insecure(void);
/* Apply them to a transfer (TLS 1.2 or later, always). */
void reqsign_cli_tls_apply(CURL *h);

#endif
