/* reqsign: request view helpers: @authority normalisation, request-target split. */
#include <reqsign/request.h>

#include <stdint.h>
#include <string.h>

#include "util.h"

static const char SRC_AUTHORITY[] = "@authority";
static const char SRC_TARGET[] = "request-target";

/* RFC 3986 unreserved / sub-delims, plus '%' for pct-encoded, in a reg-name. */
static int is_regname_char(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    switch (c) {
    case '-':
    case '.':
    case '_':
    case '~':
    case '%':
    case '!':
    case '$':
    case '&':
    case '\'':
    case '(':
    case ')':
    case '*':
    case '+':
    case ',':
    case ';':
    case '=':
        return 1;
    default:
        return 0;
    }
}

static int is_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* RFC 3986 IPv4address: four dec-octets (0-255, no leading zero). */
static int ipv4_valid(const unsigned char *a, size_t n)
{
    size_t i = 0;
    for (int part = 0; part < 4; part++) {
        if (part > 0) {
            if (i == n || a[i] != '.')
                return 0;
            i++;
        }
        size_t s = i;
        unsigned v = 0;
        while (i < n && a[i] >= '0' && a[i] <= '9' && i - s < 3)
            v = v * 10 + (unsigned)(a[i++] - '0');
        if (i == s || v > 255 || (i - s > 1 && a[s] == '0'))
            return 0;
    }
    return i == n;
}

/* RFC 3986 IPv6address (no zone identifier): eight h16 pieces, the last two
 * possibly an IPv4address, or fewer with one "::" standing for at least one. */
static int ipv6_valid(const unsigned char *a, size_t n)
{
    size_t i = 0;
    int groups = 0, dbl = 0;
    if (n >= 2 && a[0] == ':' && a[1] == ':') {
        dbl = 1;
        i = 2;
        if (i == n)
            return 1;
    }
    for (;;) {
        size_t s = i;
        while (i < n && is_hex(a[i]) && i - s < 5)
            i++;
        if (i < n && a[i] == '.') { /* the last piece: an IPv4address */
            if (!ipv4_valid(a + s, n - s))
                return 0;
            groups += 2;
            break;
        }
        if (i == s || i - s > 4)
            return 0;
        groups++;
        if (i == n)
            break;
        if (a[i] != ':')
            return 0;
        if (++i == n)
            return 0; /* a trailing single ':' */
        if (a[i] == ':') {
            if (dbl)
                return 0;
            dbl = 1;
            if (++i == n)
                break;
        }
    }
    return dbl ? groups <= 7 : groups == 8;
}

/* RFC 3986 IPvFuture: "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" ). */
static int ipvfuture_valid(const unsigned char *a, size_t n)
{
    size_t i = 1;
    if (n < 4 || (a[0] != 'v' && a[0] != 'V'))
        return 0;
    while (i < n && is_hex(a[i]))
        i++;
    if (i == 1 || i == n || a[i] != '.' || ++i == n)
        return 0;
    for (; i < n; i++)
        if (!(is_regname_char(a[i]) && a[i] != '%') && a[i] != ':')
            return 0;
    return 1;
}

/* see reqsign/request.h */
enum reqsign_status reqsign_authority_normalize(struct reqsign_span scheme,
                                                struct reqsign_span authority, char *out,
                                                size_t cap, size_t *out_len,
                                                struct reqsign_error *err)
{
    reqsign_error_clear(err);
    const unsigned char *a = (const unsigned char *)authority.ptr;
    size_t n = authority.len, host_end, i;

    *out_len = 0;
    if (n == 0)
        return reqsign_error_set(err, REQSIGN_E_URL, SRC_AUTHORITY, 0, "empty authority (Host)");
    if (n > REQSIGN_AUTHORITY_IN_MAX)
        return reqsign_error_set(err, REQSIGN_E_LIMIT, SRC_AUTHORITY, REQSIGN_AUTHORITY_IN_MAX,
                                 "authority longer than %d bytes", REQSIGN_AUTHORITY_IN_MAX);
    if (a[0] == '[') {
        /* RFC 3986 IP-literal: an IPv6address; a zone identifier (RFC 6874)
         * and IPvFuture are refused (spec/PROTOCOL.md section 5.2.3) */
        const unsigned char *close = memchr(a, ']', n);
        if (close == NULL || close == a + 1)
            return reqsign_error_set(err, REQSIGN_E_URL, SRC_AUTHORITY, 1,
                                     "unterminated or empty IP literal");
        i = (size_t)(close - a);
        const unsigned char *pct = memchr(a + 1, '%', i - 1);
        if (pct != NULL)
            return reqsign_error_set(err, REQSIGN_E_URL, SRC_AUTHORITY, (size_t)(pct - a),
                                     "IPv6 zone identifiers are not supported");
        if (ipvfuture_valid(a + 1, i - 1))
            return reqsign_error_set(err, REQSIGN_E_URL, SRC_AUTHORITY, 1,
                                     "IPvFuture literals are not supported");
        if (!ipv6_valid(a + 1, i - 1))
            return reqsign_error_set(err, REQSIGN_E_URL, SRC_AUTHORITY, 1,
                                     "IP literal is not an RFC 3986 IPv6 address");
        host_end = i + 1;
    } else {
        for (i = 0; i < n && a[i] != ':'; i++)
            if (!is_regname_char(a[i]))
                return reqsign_error_set(err, REQSIGN_E_URL, SRC_AUTHORITY, i,
                                         a[i] == '@' ? "userinfo is not allowed in an authority"
                                                     : "invalid character in host");
        if (i == 0)
            return reqsign_error_set(err, REQSIGN_E_URL, SRC_AUTHORITY, 0, "empty host");
        host_end = i;
    }

    /* port */
    long port = -1;
    if (host_end < n) {
        if (a[host_end] != ':')
            return reqsign_error_set(err, REQSIGN_E_URL, SRC_AUTHORITY, host_end,
                                     "expected ':' after the host");
        if (host_end + 1 < n) {
            port = 0;
            for (i = host_end + 1; i < n; i++) {
                if (a[i] < '0' || a[i] > '9')
                    return reqsign_error_set(err, REQSIGN_E_URL, SRC_AUTHORITY, i,
                                             "invalid character in the authority (Host) port");
                port = port * 10 + (a[i] - '0');
                if (port > 65535)
                    return reqsign_error_set(err, REQSIGN_E_URL, SRC_AUTHORITY, i,
                                             "authority (Host) port out of range");
            }
        }
    }
    if (port >= 0 && scheme.len > 0) {
        if ((reqsign__span_ieq(scheme, "http") && port == 80) ||
            (reqsign__span_ieq(scheme, "https") && port == 443))
            port = -1;
    }

    if (host_end + 1 + 5 + 1 > cap)
        return REQSIGN_E_BUFFER_TOO_SMALL;
    for (i = 0; i < host_end; i++)
        out[i] = (char)reqsign__lower(a[i]);
    size_t pos = host_end;
    if (port >= 0) {
        char digits[8];
        size_t nd = 0;
        long p = port;
        do {
            digits[nd++] = (char)('0' + p % 10);
            p /= 10;
        } while (p > 0);
        out[pos++] = ':';
        while (nd > 0)
            out[pos++] = digits[--nd];
    }
    out[pos] = '\0';
    *out_len = pos;
    return REQSIGN_OK;
}

/* The offset of the first byte of @t that may not be in a request-target
 * (outside 0x21..0x7e, or '#'), or @n. Clean blocks of eight bytes are
 * skipped with the exact "any byte" tests of Bit Twiddling Hacks (hasless,
 * hasmore, haszero); the block holding a bad byte is searched byte by byte. */
static size_t first_bad_target_byte(const unsigned char *t, size_t n)
{
#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL
    size_t i = 0;
    for (; n - i >= 8; i += 8) {
        uint64_t x;
        memcpy(&x, t + i, 8);
        uint64_t h = x ^ (ONES * '#');
        if ((((x - ONES * 0x21) & ~x & HIGHS)            /* a byte < 0x21 */
             | (((x + ONES * (127 - 0x7e)) | x) & HIGHS) /* a byte > 0x7e */
             | ((h - ONES) & ~h & HIGHS)) != 0)          /* a '#' */
            break;
    }
    for (; i < n; i++)
        if (t[i] <= 0x20 || t[i] >= 0x7f || t[i] == '#')
            return i;
    return n;
#undef ONES
#undef HIGHS
}

/* see reqsign/request.h */
enum reqsign_status reqsign_target_split(struct reqsign_span target, struct reqsign_span *path,
                                         struct reqsign_span *query, bool *has_query,
                                         struct reqsign_error *err)
{
    reqsign_error_clear(err);
    static const char qmark[] = "?";
    static const char slash[] = "/";
    const unsigned char *t = (const unsigned char *)target.ptr;
    size_t n = target.len, q = n;

    if (n == 0 || t[0] != '/')
        return reqsign_error_set(err, REQSIGN_E_URL, SRC_TARGET, 0,
                                 "request-target is not in origin-form (must start with '/')");
    if (n > REQSIGN_TARGET_IN_MAX)
        return reqsign_error_set(err, REQSIGN_E_LIMIT, SRC_TARGET, REQSIGN_TARGET_IN_MAX,
                                 "request-target longer than %d bytes", REQSIGN_TARGET_IN_MAX);
    size_t bad = first_bad_target_byte(t, n);
    if (bad < n)
        return reqsign_error_set(err, REQSIGN_E_URL, SRC_TARGET, bad,
                                 "invalid byte 0x%02x in request-target", t[bad]);
    const unsigned char *qm = memchr(t, '?', n);
    if (qm != NULL)
        q = (size_t)(qm - t);
    path->ptr = target.ptr;
    path->len = q;
    if (path->len == 0) { /* cannot happen for origin-form, kept for safety */
        path->ptr = slash;
        path->len = 1;
    }
    if (q == n) {
        query->ptr = qmark;
        query->len = 1;
        if (has_query != NULL)
            *has_query = false;
    } else {
        query->ptr = target.ptr + q;
        query->len = n - q;
        if (has_query != NULL)
            *has_query = true; /* even an empty query: "/p?" */
    }
    return REQSIGN_OK;
}

/* see reqsign/request.h */
size_t reqsign_request_header_count(const struct reqsign_request *req, const char *name,
                                    size_t name_len)
{
    size_t count = 0;
    struct reqsign_span want = {name, name_len};
    for (size_t i = 0; i < req->n_headers; i++)
        if (reqsign__span_eq_nocase(req->headers[i].name, want))
            count++;
    return count;
}
