/* reqsign: base64 internals shared by base64.c and sf.c. Not installed. */
#ifndef REQSIGN_B64_INTERNAL_H
#define REQSIGN_B64_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <reqsign/error.h>

/* Decoder / encoder mode flags. */
#define REQSIGN__B64_URL 0x1u          /* base64url alphabet (`-_`) instead of `+/` */
#define REQSIGN__B64_PAD_REQUIRED 0x2u /* canonical `=` padding required */
#define REQSIGN__B64_PAD_OPTIONAL 0x4u /* missing or partial padding accepted; never too much */
#define REQSIGN__B64_LAX_BITS 0x8u     /* accept non-zero pad bits */
/* Without PAD_REQUIRED / PAD_OPTIONAL, `=` is rejected. */

/**
 * reqsign__b64_decode() - decode @in[0..@len) according to @flags.
 * @out: may be NULL to only validate and measure (then @cap is ignored and
 *       REQSIGN_OK is returned with *@out_len = decoded length).
 * @bad_off: on REQSIGN_E_BASE64, offset of the offending character in @in
 *       (@len when input ended too early).
 * @why: on REQSIGN_E_BASE64, a static description. May be NULL.
 * Return: REQSIGN_OK, REQSIGN_E_BASE64, REQSIGN_E_BUFFER_TOO_SMALL (*@out_len = needed).
 * Never reads outside @in[0..@len); writes nothing on failure.
 */
enum reqsign_status reqsign__b64_decode(const char *in, size_t len, unsigned flags, uint8_t *out,
                                        size_t cap, size_t *out_len, size_t *bad_off,
                                        const char **why);

/**
 * reqsign__b64_encode() - encode @in without NUL terminator; padded unless
 * REQSIGN__B64_URL is set. Return: REQSIGN_OK, or REQSIGN_E_BUFFER_TOO_SMALL
 * (*@out_len = needed, nothing written).
 */
enum reqsign_status reqsign__b64_encode(const uint8_t *in, size_t len, unsigned flags, char *out,
                                        size_t cap, size_t *out_len);

#endif
