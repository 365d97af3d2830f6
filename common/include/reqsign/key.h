/* reqsign: Ed25519 keys: load, generate, export, identify, sign, verify.
 *
 * A struct reqsign_key holds a public key and, optionally, the private key.
 * Private key material is wiped (OPENSSL_cleanse) when the key is freed and
 * on every error path of the loaders. Key identifiers are RFC 7638 JWK
 * SHA-256 thumbprints (base64url, 43 characters) of the public key.
 *
 * Accepted formats (auto-detected by reqsign_key_load_*):
 *   - PEM: "PRIVATE KEY" (PKCS#8, what `openssl genpkey -algorithm ed25519`
 *     writes) and "PUBLIC KEY" (SPKI);
 *   - DER: PKCS#8 or SPKI;
 *   - JWK (RFC 8037): {"kty":"OKP","crv":"Ed25519","x":...,"d"?:...};
 *   - raw 32 bytes: a public key, or a private seed with REQSIGN_KEY_RAW_PRIVATE.
 *
 * Thread safety: a loaded key is immutable; every function that takes a
 * const struct reqsign_key * is safe to call concurrently on the same key.
 * reqsign_key_free() must not race with other uses of the same key.
 */
#ifndef REQSIGN_KEY_H
#define REQSIGN_KEY_H

#include <reqsign/defs.h>
#include <reqsign/error.h>
#include <reqsign/limits.h>
#include <reqsign/util.h>

#ifdef __cplusplus
extern "C" {
#endif

#define REQSIGN_ED25519_PUBLIC_LEN 32
#define REQSIGN_ED25519_SEED_LEN 32
#define REQSIGN_ED25519_SIG_LEN 64
/* An RFC 7638 thumbprint: base64url(SHA-256) without padding (43 characters);
 * the buffer reqsign_key_thumbprint() writes it to, NUL included. */
#define REQSIGN_THUMBPRINT_LEN 43
#define REQSIGN_THUMBPRINT_BUF (REQSIGN_THUMBPRINT_LEN + 1)

REQSIGN_API size_t reqsign_ed25519_sig_len(void);
REQSIGN_API size_t reqsign_ed25519_public_len(void);

/* Loader flags */
#define REQSIGN_KEY_RAW_PRIVATE 0x1u      /* raw 32 bytes are a private seed, not a public key */
#define REQSIGN_KEY_ALLOW_PERMISSIVE 0x2u /* accept a private key file readable by group/others */
#define REQSIGN_KEY_REQUIRE_PRIVATE 0x4u  /* fail with E_KEY_NOT_PRIVATE on a public key */

struct reqsign_key;

/**
 * reqsign_key_load_file() - load a key from @path, any accepted format.
 * A file holding a private key that group or others can read is refused
 * with REQSIGN_E_KEY_PERMISSIONS unless REQSIGN_KEY_ALLOW_PERMISSIVE.
 * Return: the key (free with reqsign_key_free()), or NULL with @err set:
 * REQSIGN_E_IO, REQSIGN_E_KEY_FORMAT, REQSIGN_E_KEY_TYPE, REQSIGN_E_KEY_PERMISSIONS,
 * REQSIGN_E_KEY_NOT_PRIVATE, REQSIGN_E_LIMIT, REQSIGN_E_NOMEM.
 * Thread safety: thread-safe.
 */
REQSIGN_API REQSIGN_NODISCARD struct reqsign_key *
reqsign_key_load_file(const char *path, unsigned flags, struct reqsign_error *err);

/**
 * reqsign_key_load_mem() - the same from memory (@data, @len); the buffer is
 * not modified (the caller wipes it if it holds a secret).
 * Thread safety: thread-safe.
 */
REQSIGN_API REQSIGN_NODISCARD struct reqsign_key *
reqsign_key_load_mem(const void *data, size_t len, unsigned flags, struct reqsign_error *err);

/** reqsign_key_from_public() - a public-only key from 32 raw bytes; NULL with
 * @err set on failure (as every constructor). Thread-safe. */
REQSIGN_API REQSIGN_NODISCARD struct reqsign_key *
reqsign_key_from_public(const uint8_t pk[REQSIGN_ED25519_PUBLIC_LEN], struct reqsign_error *err);

/** reqsign_key_from_seed() - a private key from a 32-byte seed. Thread-safe. */
REQSIGN_API REQSIGN_NODISCARD struct reqsign_key *
reqsign_key_from_seed(const uint8_t seed[REQSIGN_ED25519_SEED_LEN], struct reqsign_error *err);

/** reqsign_key_generate() - a fresh private key from the OS CSPRNG. Thread-safe. */
REQSIGN_API REQSIGN_NODISCARD struct reqsign_key *reqsign_key_generate(struct reqsign_error *err);

/** reqsign_key_free() - wipe and release; NULL is a no-op. */
REQSIGN_API void reqsign_key_free(struct reqsign_key *key);

/**
 * reqsign_key_dup() - an independent copy of @key.
 * Return: the copy (free with reqsign_key_free()), or NULL with @err set
 * (E_INVALID_ARG, E_NOMEM, E_CRYPTO).
 * Thread safety: thread-safe.
 */
REQSIGN_API REQSIGN_NODISCARD struct reqsign_key *reqsign_key_dup(const struct reqsign_key *key,
                                                                  struct reqsign_error *err);

/** reqsign_key_has_private() - true if @key holds a private key. Thread-safe. */
REQSIGN_API bool reqsign_key_has_private(const struct reqsign_key *key);

/** reqsign_key_public_raw() - copy the 32-byte public key. */
REQSIGN_API void reqsign_key_public_raw(const struct reqsign_key *key,
                                        uint8_t pk[REQSIGN_ED25519_PUBLIC_LEN]);

/**
 * reqsign_key_thumbprint() - RFC 7638 thumbprint of the public key:
 * base64url(SHA-256('{"crv":"Ed25519","kty":"OKP","x":"<x>"}')), NUL-terminated.
 */
REQSIGN_API REQSIGN_NODISCARD enum reqsign_status
reqsign_key_thumbprint(const struct reqsign_key *key, char out[REQSIGN_THUMBPRINT_BUF]);
/** reqsign_thumbprint_raw() - the same from 32 raw public key bytes. */
REQSIGN_API REQSIGN_NODISCARD enum reqsign_status
reqsign_thumbprint_raw(const uint8_t pk[REQSIGN_ED25519_PUBLIC_LEN],
                       char out[REQSIGN_THUMBPRINT_BUF]);

/**
 * reqsign_key_public_pem() / reqsign_key_private_pem() / reqsign_key_public_jwk()
 * - export, NUL-terminated, into @out (@cap bytes); *@out_len = length without NUL.
 * The private PEM is PKCS#8; the caller must wipe @out after use.
 * Return: REQSIGN_OK, REQSIGN_E_BUFFER_TOO_SMALL, REQSIGN_E_KEY_NOT_PRIVATE, REQSIGN_E_CRYPTO.
 */
REQSIGN_API REQSIGN_NODISCARD enum reqsign_status
reqsign_key_public_pem(const struct reqsign_key *key, char *out, size_t cap, size_t *out_len);
REQSIGN_API REQSIGN_NODISCARD enum reqsign_status
reqsign_key_private_pem(const struct reqsign_key *key, char *out, size_t cap, size_t *out_len);
REQSIGN_API REQSIGN_NODISCARD enum reqsign_status
reqsign_key_public_jwk(const struct reqsign_key *key, char *out, size_t cap, size_t *out_len);

/**
 * reqsign_key_sign() - pure Ed25519 (RFC 8032) signature of @msg.
 * Return: REQSIGN_OK, REQSIGN_E_KEY_NOT_PRIVATE, REQSIGN_E_CRYPTO.
 */
REQSIGN_API REQSIGN_NODISCARD enum reqsign_status
reqsign_key_sign(const struct reqsign_key *key, const uint8_t *msg, size_t len,
                 uint8_t sig[REQSIGN_ED25519_SIG_LEN], struct reqsign_error *err);

/**
 * reqsign_key_verify() - verify @sig over @msg with @key's public key.
 * Return: REQSIGN_OK or REQSIGN_E_SIG_INVALID (or REQSIGN_E_CRYPTO).
 */
REQSIGN_API REQSIGN_NODISCARD enum reqsign_status
reqsign_key_verify(const struct reqsign_key *key, const uint8_t sig[REQSIGN_ED25519_SIG_LEN],
                   const uint8_t *msg, size_t len, struct reqsign_error *err);

/**
 * reqsign_ed25519_verify() - the raw primitive: verify with a 32-byte public key.
 * Return: REQSIGN_OK or REQSIGN_E_SIG_INVALID (or REQSIGN_E_CRYPTO).
 */
REQSIGN_API REQSIGN_NODISCARD enum reqsign_status
reqsign_ed25519_verify(const uint8_t sig[REQSIGN_ED25519_SIG_LEN], const uint8_t *msg, size_t len,
                       const uint8_t pk[REQSIGN_ED25519_PUBLIC_LEN]);

/**
 * reqsign_crypto_backend() - the Ed25519 backend this library was built with
 * (meson option crypto_backend): "libsodium" or "openssl". Key files, SHA-2 and
 * randomness use OpenSSL with either backend; signatures are identical.
 * Return: a static string, never NULL. Thread safety: thread-safe.
 */
REQSIGN_API const char *reqsign_crypto_backend(void);

#ifdef __cplusplus
}
#endif
#endif
