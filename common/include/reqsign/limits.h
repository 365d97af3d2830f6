/* reqsign: every size limit, in one place.
 *
 * Names say which way the bytes go:
 *   _IN_MAX / _IN_MIN  the most (least) this library accepts from outside: a
 *                      peer's header field, a caller's option, a store's
 *                      record field. Bytes or characters, no NUL. A buffer
 *                      that holds such a value is sized `X_IN_MAX + 1`.
 *   _OUT_BUF           the size of a buffer this library writes a
 *                      NUL-terminated value into, NUL included: anything it
 *                      writes fits.
 *   _BUF               a buffer size that bounds both ways (the signature
 *                      base: neither side builds a longer one).
 * Fixed sizes of the primitives (REQSIGN_ED25519_*_LEN, REQSIGN_SHA*_LEN,
 * REQSIGN_THUMBPRINT_LEN) are in key.h and digest.h; tunable defaults
 * (*_DEFAULT_*) stay next to the options they default. The wire limits are
 * also documented in spec/PROTOCOL.md ("Limits").
 *
 * Thread safety: nothing here has state.
 */
#ifndef REQSIGN_LIMITS_H
#define REQSIGN_LIMITS_H

/* ---- signature parameters, as received by the verifier and given to the signer ---- */
#define REQSIGN_NONCE_IN_MIN 8   /* characters of a nonce parameter, at least */
#define REQSIGN_NONCE_IN_MAX 128 /* characters of a nonce parameter, at most */
#define REQSIGN_KEYID_IN_MAX 256 /* characters of a keyid parameter (and a store's keyid) */
#define REQSIGN_TAG_IN_MAX 256   /* characters of a tag parameter */
#define REQSIGN_SF_KEY_IN_MAX 64 /* characters of a structured-field key: a signature label */

/* ---- Signature-Input / Signature and the signature base ---- */
#define REQSIGN_SIGNATURES_IN_MAX 8  /* labels in Signature-Input / Signature */
#define REQSIGN_COMPONENTS_IN_MAX 32 /* covered components in one signature */
#define REQSIGN_SIG_PARAMS_IN_MAX 16 /* parameters of one signature */
/* bytes of a received Signature-Input or Signature (its lines combined) */
#define REQSIGN_SIG_FIELD_IN_MAX 8192
#define REQSIGN_COVERED_FIELD_IN_MAX 8192 /* bytes of one covered field value (lines combined) */
#define REQSIGN_BASE_BUF 32768            /* bytes of one signature base, either side */

/* ---- the request ---- */
#define REQSIGN_AUTHORITY_IN_MAX 262 /* bytes of a normalised authority (host[:port]) */
/* what reqsign_authority_normalize() writes, NUL included (room for its work) */
#define REQSIGN_AUTHORITY_OUT_BUF (REQSIGN_AUTHORITY_IN_MAX + 8)
#define REQSIGN_TARGET_IN_MAX 8192 /* bytes of a request-target */
#define REQSIGN_METHOD_IN_MAX 32   /* bytes of a method */

/* ---- Content-Digest ---- */
#define REQSIGN_CONTENT_DIGEST_IN_MAX 4096 /* bytes of a received Content-Digest value */
/* the Content-Digest value this library writes ("sha-512=:...:, sha-256=:...:",
 * 154 bytes) + NUL */
#define REQSIGN_CONTENT_DIGEST_OUT_BUF 160

/* ---- what the signer writes (struct reqsign_signed) ---- */
#define REQSIGN_SIGNATURE_INPUT_OUT_BUF 1024 /* a Signature-Input value + NUL */
#define REQSIGN_SIGNATURE_OUT_BUF 160        /* a Signature value ("label=:88 base64:") + NUL */

/* ---- keys and credentials ---- */
#define REQSIGN_KEY_FILE_IN_MAX 16384   /* bytes of a key file or key blob the loaders read */
#define REQSIGN_CREDENTIAL_IN_MAX 65536 /* bytes of a credential JSON, file or inline */

/* ---- key store records (struct reqsign_key_record, reqsign_account, reqsign_audit_event) ---- */
#define REQSIGN_SCOPE_IN_MAX 64      /* bytes of one scope token */
#define REQSIGN_SCOPE_LIST_BUF 512   /* a key's scopes, space-separated, + NUL */
#define REQSIGN_KEY_LABEL_IN_MAX 128 /* bytes of a key's label (UTF-8), not a signature label */
#define REQSIGN_KEYSTORE_PAGE_IN_MAX 1000 /* records asked for in one list page */
#define REQSIGN_ACCOUNT_ID_IN_MAX 40      /* "acct_" + 22 base64url, with room */
#define REQSIGN_ACCOUNT_NAME_IN_MAX 128   /* bytes of an account's name */
#define REQSIGN_REVOKE_REASON_IN_MAX 16   /* unspecified | superseded | compromised */
#define REQSIGN_VERIFIER_NAME_IN_MAX 64   /* bytes of a verifier's name (last_used_by) */
#define REQSIGN_AUDIT_WORD_IN_MAX 64      /* bytes of an audit action, outcome or source */

/* ---- verifier options and the store clients ---- */
#define REQSIGN_VERIFIER_AUTHORITIES_IN_MAX 32 /* accepted authorities of one verifier */
#define REQSIGN_KEYDIR_URL_IN_MAX 2048         /* bytes of a key directory URL */
#define REQSIGN_KEYDIR_ETAG_IN_MAX 256         /* longer ETags are not remembered */
#define REQSIGN_KEYDIR_DEPTH_IN_MAX 16         /* JSON nesting of a key directory; a JWKS needs 3 */
#define REQSIGN_NONCE_REDIS_PREFIX_IN_MAX 64   /* bytes of the Redis nonce store's key_prefix */

#endif
