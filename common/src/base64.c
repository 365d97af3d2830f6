/* reqsign: strict base64 (RFC 4648 section 4) and base64url (section 5).
 *
 * One table-driven core, reqsign__b64_decode(), serves the strict public
 * decoders and the lenient Byte Sequence decoding of sf.c (b64_internal.h).
 */
#include <string.h>

#include <reqsign/base64.h>

#include "b64_internal.h"

#define B64_SOURCE "base64"
#define INV 0xffu /* not in the alphabet */

static const char enc_std[64] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char enc_url[64] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Character -> 6-bit value, INV (0xff) if not in the alphabet. */
static const uint8_t dec_std[256] = {
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3e, 0xff, 0xff, 0xff, 0x3f,
    0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x3b, 0x3c, 0x3d, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e,
    0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28,
    0x29, 0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f, 0x30, 0x31, 0x32, 0x33, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
};
static const uint8_t dec_url[256] = {
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3e, 0xff, 0xff,
    0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x3b, 0x3c, 0x3d, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e,
    0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0xff, 0xff, 0xff, 0xff, 0x3f,
    0xff, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28,
    0x29, 0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f, 0x30, 0x31, 0x32, 0x33, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
};

/* see b64_internal.h */
enum reqsign_status reqsign__b64_encode(const uint8_t *in, size_t len, unsigned flags, char *out,
                                        size_t cap, size_t *out_len)
{
    const int url = (flags & REQSIGN__B64_URL) != 0;
    const char *alpha = url ? enc_url : enc_std;
    size_t need = url ? REQSIGN_BASE64URL_LEN(len) : REQSIGN_BASE64_LEN(len);
    size_t i = 0, o = 0;

    if (len > (SIZE_MAX / 4) * 3 - 3) {
        *out_len = SIZE_MAX;
        return REQSIGN_E_BUFFER_TOO_SMALL;
    }
    *out_len = need;
    if (cap < need)
        return REQSIGN_E_BUFFER_TOO_SMALL;
    for (; len - i >= 3; i += 3) {
        uint32_t v = ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1] << 8) | in[i + 2];
        out[o++] = alpha[(v >> 18) & 63];
        out[o++] = alpha[(v >> 12) & 63];
        out[o++] = alpha[(v >> 6) & 63];
        out[o++] = alpha[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = alpha[(v >> 18) & 63];
        out[o++] = alpha[(v >> 12) & 63];
        if (!url) {
            out[o++] = '=';
            out[o++] = '=';
        }
    } else if (len - i == 2) {
        uint32_t v = ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1] << 8);
        out[o++] = alpha[(v >> 18) & 63];
        out[o++] = alpha[(v >> 12) & 63];
        out[o++] = alpha[(v >> 6) & 63];
        if (!url)
            out[o++] = '=';
    }
    return REQSIGN_OK;
}

static enum reqsign_status b64_fail(size_t off, const char *msg, size_t *bad_off, const char **why)
{
    *bad_off = off;
    if (why != NULL)
        *why = msg;
    return REQSIGN_E_BASE64;
}

/* see b64_internal.h */
enum reqsign_status reqsign__b64_decode(const char *in, size_t len, unsigned flags, uint8_t *out,
                                        size_t cap, size_t *out_len, size_t *bad_off,
                                        const char **why)
{
    const uint8_t *tab = (flags & REQSIGN__B64_URL) ? dec_url : dec_std;
    const unsigned char *s = (const unsigned char *)in;
    size_t n = 0, p, need_pad, dlen, i, o;
    unsigned rem;

    /* Data characters (four at a time while all four are; INV has the top
     * bits set, no data value does), then only `=`. */
    while (len - n >= 4 &&
           ((tab[s[n]] | tab[s[n + 1]] | tab[s[n + 2]] | tab[s[n + 3]]) & 0xc0) == 0)
        n += 4;
    while (n < len && tab[s[n]] != INV)
        n++;
    for (p = n; p < len; p++) {
        if (s[p] == '=')
            continue;
        if (tab[s[p]] != INV)
            return b64_fail(n, "'=' before the end of the data", bad_off, why);
        return b64_fail(p, "character outside the base64 alphabet", bad_off, why);
    }
    p = len - n; /* number of '=' */
    rem = (unsigned)(n % 4);
    if (rem == 1)
        return b64_fail(n - 1, "dangling character: length is not valid base64", bad_off, why);
    need_pad = rem == 0 ? 0 : 4 - rem;
    if (p > 0) {
        if (!(flags & (REQSIGN__B64_PAD_REQUIRED | REQSIGN__B64_PAD_OPTIONAL)))
            return b64_fail(n, "padding is not allowed", bad_off, why);
        if (p > need_pad)
            return b64_fail(n + need_pad, "too much padding", bad_off, why);
        if (p < need_pad && (flags & REQSIGN__B64_PAD_REQUIRED))
            return b64_fail(len, "incomplete padding", bad_off, why);
    } else if (need_pad > 0 && (flags & REQSIGN__B64_PAD_REQUIRED)) {
        return b64_fail(len, "missing padding", bad_off, why);
    }
    if (!(flags & REQSIGN__B64_LAX_BITS)) {
        if ((rem == 2 && (tab[s[n - 1]] & 0x0f) != 0) || (rem == 3 && (tab[s[n - 1]] & 0x03) != 0))
            return b64_fail(n - 1, "non-zero padding bits", bad_off, why);
    }

    dlen = (n / 4) * 3 + (rem == 0 ? 0 : rem - 1);
    *out_len = dlen;
    if (out == NULL)
        return REQSIGN_OK;
    if (cap < dlen)
        return REQSIGN_E_BUFFER_TOO_SMALL;
    for (i = 0, o = 0; n - i >= 4; i += 4) {
        uint32_t v = ((uint32_t)tab[s[i]] << 18) | ((uint32_t)tab[s[i + 1]] << 12) |
                     ((uint32_t)tab[s[i + 2]] << 6) | tab[s[i + 3]];
        out[o++] = (uint8_t)(v >> 16);
        out[o++] = (uint8_t)(v >> 8);
        out[o++] = (uint8_t)v;
    }
    if (rem >= 2) {
        uint32_t v = ((uint32_t)tab[s[i]] << 18) | ((uint32_t)tab[s[i + 1]] << 12);
        if (rem == 3)
            v |= (uint32_t)tab[s[i + 2]] << 6;
        out[o++] = (uint8_t)(v >> 16);
        if (rem == 3)
            out[o++] = (uint8_t)(v >> 8);
    }
    return REQSIGN_OK;
}

static enum reqsign_status encode_nul(const uint8_t *in, size_t len, unsigned flags, char *out,
                                      size_t cap, size_t *out_len)
{
    size_t need = 0;
    enum reqsign_status st;

    if (out_len == NULL || (out == NULL && cap > 0) || (in == NULL && len > 0))
        return REQSIGN_E_INVALID_ARG;
    st = reqsign__b64_encode(in, len, flags, out, cap > 0 ? cap - 1 : 0, &need);
    if (st != REQSIGN_OK || cap == 0) {
        /* Report the capacity needed, NUL included. */
        *out_len = need == SIZE_MAX ? SIZE_MAX : need + 1;
        return REQSIGN_E_BUFFER_TOO_SMALL;
    }
    out[need] = '\0';
    *out_len = need;
    return REQSIGN_OK;
}

static enum reqsign_status decode_public(const char *in, size_t len, unsigned flags, uint8_t *out,
                                         size_t cap, size_t *out_len, struct reqsign_error *err)
{
    size_t bad = 0, need = 0;
    const char *why = NULL;
    enum reqsign_status st;

    if (out_len == NULL || (out == NULL && cap > 0) || (in == NULL && len > 0))
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, B64_SOURCE, REQSIGN_NO_OFFSET, NULL);
    /* One call: the core validates and measures the whole input before it
     * writes anything, so nothing is written unless all of it is valid. */
    st = reqsign__b64_decode(in, len, flags, out, out != NULL ? cap : 0, &need, &bad, &why);
    if (st == REQSIGN_E_BASE64) {
        *out_len = 0;
        return reqsign_error_set(err, st, B64_SOURCE, bad, "%s at offset %zu", why, bad);
    }
    *out_len = need;
    if (st == REQSIGN_E_BUFFER_TOO_SMALL || (out == NULL && need > 0))
        return reqsign_error_set(err, REQSIGN_E_BUFFER_TOO_SMALL, B64_SOURCE, REQSIGN_NO_OFFSET,
                                 "need %zu bytes, have %zu", need, cap);
    return st;
}

/* see reqsign/base64.h */
enum reqsign_status reqsign_base64_encode(const uint8_t *in, size_t len, char *out, size_t cap,
                                          size_t *out_len)
{
    return encode_nul(in, len, 0, out, cap, out_len);
}

/* see reqsign/base64.h */
enum reqsign_status reqsign_base64url_encode(const uint8_t *in, size_t len, char *out, size_t cap,
                                             size_t *out_len)
{
    return encode_nul(in, len, REQSIGN__B64_URL, out, cap, out_len);
}

/* see reqsign/base64.h */
enum reqsign_status reqsign_base64_decode(const char *in, size_t len, uint8_t *out, size_t cap,
                                          size_t *out_len, struct reqsign_error *err)
{
    reqsign_error_clear(err);
    return decode_public(in, len, REQSIGN__B64_PAD_REQUIRED, out, cap, out_len, err);
}

/* see reqsign/base64.h */
enum reqsign_status reqsign_base64url_decode(const char *in, size_t len, uint8_t *out, size_t cap,
                                             size_t *out_len, struct reqsign_error *err)
{
    reqsign_error_clear(err);
    return decode_public(in, len, REQSIGN__B64_URL, out, cap, out_len, err);
}
