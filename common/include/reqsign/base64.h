/* reqsign: strict base64 (RFC 4648 section 4) and base64url (section 5).
 *
 * Decoders are strict: the standard alphabet requires canonical `=` padding;
 * base64url takes no padding at all (as JWK and RFC 7638 use it). Stray
 * characters, whitespace, wrong padding and non-zero pad bits are rejected
 * with REQSIGN_E_BASE64 and the offset of the offending character.
 *
 * Thread safety: all functions are thread-safe (no state).
 */
#ifndef REQSIGN_BASE64_H
#define REQSIGN_BASE64_H

#include <reqsign/defs.h>
#include <reqsign/error.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Encoded length (padded base64) of @n bytes, without NUL. */
#define REQSIGN_BASE64_LEN(n) ((((size_t)(n) + 2) / 3) * 4)
/* Encoded length (unpadded base64url) of @n bytes, without NUL. */
#define REQSIGN_BASE64URL_LEN(n) (((size_t)(n)*4 + 2) / 3)
/* Upper bound of decoded bytes for @n encoded characters. */
#define REQSIGN_BASE64_DECODED_MAX(n) (((size_t)(n) / 4) * 3 + 3)

/**
 * reqsign_base64_encode() / reqsign_base64url_encode() - encode @in.
 * Writes the text and a terminating NUL into @out (cap bytes) and sets *@out_len
 * to the text length (without NUL).
 * Return: REQSIGN_OK or REQSIGN_E_BUFFER_TOO_SMALL (*@out_len = the capacity
 * needed, NUL included; nothing written).
 */
REQSIGN_API REQSIGN_NODISCARD enum reqsign_status
reqsign_base64_encode(const uint8_t *in, size_t len, char *out, size_t cap, size_t *out_len);
REQSIGN_API REQSIGN_NODISCARD enum reqsign_status
reqsign_base64url_encode(const uint8_t *in, size_t len, char *out, size_t cap, size_t *out_len);

/**
 * reqsign_base64_decode() / reqsign_base64url_decode() - strict decode.
 * Return: REQSIGN_OK, REQSIGN_E_BASE64 (err->offset set), REQSIGN_E_BUFFER_TOO_SMALL
 * (*@out_len = bytes needed). Nothing is written to @out on failure.
 */
REQSIGN_API REQSIGN_NODISCARD enum reqsign_status reqsign_base64_decode(const char *in, size_t len,
                                                                        uint8_t *out, size_t cap,
                                                                        size_t *out_len,
                                                                        struct reqsign_error *err);
REQSIGN_API REQSIGN_NODISCARD enum reqsign_status
reqsign_base64url_decode(const char *in, size_t len, uint8_t *out, size_t cap, size_t *out_len,
                         struct reqsign_error *err);

#ifdef __cplusplus
}
#endif
#endif
