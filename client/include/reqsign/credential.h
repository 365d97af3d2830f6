/* reqsign: credentials, what the key service hands out (docs/KEYSERVICE.md).
 *
 * A credential is a private key plus the keyid to sign with, and the key
 * service's metadata: scopes, label and the service URL. It is loaded from
 *
 *   - a credential JSON file ({"keyid", "alg", "private_key", "public_key"?,
 *     "scopes"?, "label"?, "service"?, ...}, as `POST /v1/keys` returns and
 *     `reqsignd init -o` writes);
 *   - a key file in any format reqsign_key_load_file() reads (PEM, DER, JWK,
 *     raw 32-byte seed); the keyid is then the key's RFC 7638 thumbprint
 *     unless one is given;
 *   - standard input, when the name is "-" (credential JSON or a key, as in a file);
 *   - inline JSON text (a credential object or a private JWK), recognised by
 *     its first non-blank character '{'. This is for programs that hold the
 *     credential in memory (or in the REQSIGN_CREDENTIAL environment variable,
 *     readable only by the same user): never pass a credential taken from a
 *     command-line argument, which every local user can read (/proc/PID/cmdline,
 *     ps). The `reqsign` CLI refuses inline JSON in --key for that reason.
 *
 * Secrets: the file buffer, the "private_key" PEM text and the decoded key are
 * wiped on free and on every error path. Residual risk: jansson's lexer copies
 * the JSON text into scratch buffers that it frees without wiping; only the
 * decoded "private_key" string jansson hands back is wiped. Inline JSON given
 * by the caller (or in the environment) is the caller's to wipe.
 *
 * Thread safety: reqsign_credential_load() is thread-safe (it reads the
 * environment: do not race it with setenv()). A loaded credential is
 * immutable: its accessors and reqsign_credential_signer() may be called
 * concurrently on the same credential; reqsign_credential_free() must not
 * race with them.
 */
#ifndef REQSIGN_CREDENTIAL_H
#define REQSIGN_CREDENTIAL_H

#include <reqsign/defs.h>
#include <reqsign/error.h>
#include <reqsign/key.h>
#include <reqsign/limits.h>
#include <reqsign/signer.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The environment variable read when no credential is named. */
#define REQSIGN_CREDENTIAL_ENV "REQSIGN_CREDENTIAL"

struct reqsign_credential;

/**
 * reqsign_credential_load() - load a credential.
 * @spec:  a path (credential JSON or key file), "-" for standard input, inline
 *         JSON text (first non-blank character '{'), or NULL for the
 *         REQSIGN_CREDENTIAL environment variable (a path, "-", or inline JSON).
 * @keyid_override: NULL, or the keyid to sign with instead of the credential's
 *         (for a key file: instead of the thumbprint).
 * @flags: REQSIGN_KEY_ALLOW_PERMISSIVE accepts a file holding a private key that
 *         group or others can read (refused by default, with the `chmod 600` hint);
 *         other REQSIGN_KEY_* loader flags are passed to the key loader.
 * @err:   on failure, code and message (for malformed JSON, err->offset is the
 *         byte position and the message names line, column and position); may be NULL.
 *
 * The credential's "keyid", when it looks like a thumbprint (43 base64url
 * characters), must be the private key's thumbprint; "public_key", when
 * present, must be the private key's public half; "alg", when present, must be
 * "ed25519".
 *
 * Return: the credential (free with reqsign_credential_free()), or NULL with
 * @err set: REQSIGN_E_INVALID_ARG (no credential named); REQSIGN_E_IO;
 * REQSIGN_E_LIMIT; REQSIGN_E_JSON (malformed JSON); REQSIGN_E_KEY_FORMAT (missing or
 * mistyped member, keyid/thumbprint or public key mismatch, bad key);
 * REQSIGN_E_KEY_TYPE (wrong alg or key type); REQSIGN_E_KEY_NOT_PRIVATE;
 * REQSIGN_E_KEY_PERMISSIONS; REQSIGN_E_NOMEM.
 * Thread safety: thread-safe.
 */
REQSIGN_API REQSIGN_NODISCARD struct reqsign_credential *
reqsign_credential_load(const char *spec, const char *keyid_override, unsigned flags,
                        struct reqsign_error *err);

/** reqsign_credential_free() - wipe the private key and release; NULL is a no-op. */
REQSIGN_API void reqsign_credential_free(struct reqsign_credential *c);

/** reqsign_credential_keyid() - the keyid signatures carry (NUL-terminated). Thread-safe. */
REQSIGN_API const char *reqsign_credential_keyid(const struct reqsign_credential *c);

/** reqsign_credential_service() - the key service URL ("service"); "" if absent. Thread-safe. */
REQSIGN_API const char *reqsign_credential_service(const struct reqsign_credential *c);

/**
 * reqsign_credential_api() - the provider's API base URL ("api", set by the
 * key service's --api-url), against which `reqsign send PATH` resolves a
 * path; "" if absent. Thread-safe.
 */
REQSIGN_API const char *reqsign_credential_api(const struct reqsign_credential *c);

/** reqsign_credential_label() - the key's label; "" if absent. Thread-safe. */
REQSIGN_API const char *reqsign_credential_label(const struct reqsign_credential *c);

/** reqsign_credential_scope_count() - number of scopes ("scopes"; 0 if absent). Thread-safe. */
REQSIGN_API size_t reqsign_credential_scope_count(const struct reqsign_credential *c);

/** reqsign_credential_scope() - scope @i (< scope_count), NUL-terminated; NULL if out of range. */
REQSIGN_API const char *reqsign_credential_scope(const struct reqsign_credential *c, size_t i);

/** reqsign_credential_key() - the private key, owned by @c (valid until it is freed). */
REQSIGN_API const struct reqsign_key *reqsign_credential_key(const struct reqsign_credential *c);

/**
 * reqsign_credential_signer() - a signer with the credential's key and keyid.
 * @overrides: NULL, or signer options (label, tag, expires_in, digest_algs,
 *             path_as_is, clock); its key_file, key_data, key and keyid must be
 *             unset (give a keyid to reqsign_credential_load() instead).
 * Return: the signer (free with reqsign_signer_free(); it holds its own copy of
 * the key), or NULL with @err set (E_INVALID_ARG, E_NOMEM, ...).
 * Thread safety: thread-safe.
 */
REQSIGN_API struct reqsign_signer *
reqsign_credential_signer(const struct reqsign_credential *c,
                          const struct reqsign_signer_opts *overrides, struct reqsign_error *err);

#ifdef __cplusplus
}
#endif
#endif
