/* reqsign: the error table, generated accessors, detail helpers. */
#include <reqsign/error.h>

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

/* see reqsign/error.h */
const char *reqsign_errname(enum reqsign_status code)
{
    switch (code) {
#define REQSIGN_X_NAME(name, num, http, wire, msg)                                                 \
    case REQSIGN_##name:                                                                           \
        return wire;
        REQSIGN_ERRORS(REQSIGN_X_NAME)
#undef REQSIGN_X_NAME
    default:
        return "unknown";
    }
}

/* see reqsign/error.h */
const char *reqsign_strerror(enum reqsign_status code)
{
    switch (code) {
#define REQSIGN_X_MSG(name, num, http, wire, msg)                                                  \
    case REQSIGN_##name:                                                                           \
        return msg;
        REQSIGN_ERRORS(REQSIGN_X_MSG)
#undef REQSIGN_X_MSG
    default:
        return "unknown error";
    }
}

/* see reqsign/error.h */
int reqsign_http_status(enum reqsign_status code)
{
    switch (code) {
#define REQSIGN_X_HTTP(name, num, http, wire, msg)                                                 \
    case REQSIGN_##name:                                                                           \
        return http;
        REQSIGN_ERRORS(REQSIGN_X_HTTP)
#undef REQSIGN_X_HTTP
    default:
        return 500;
    }
}

/* see reqsign/error.h */
void reqsign_error_clear(struct reqsign_error *err)
{
    if (err == NULL)
        return;
    err->code = REQSIGN_OK;
    err->offset = REQSIGN_NO_OFFSET;
    err->source[0] = '\0';
    err->message[0] = '\0';
}

/* see reqsign/error.h */
enum reqsign_status reqsign_error_set(struct reqsign_error *err, enum reqsign_status code,
                                      const char *source, size_t offset, const char *fmt, ...)
{
    if (err == NULL || err->code != REQSIGN_OK)
        return code;
    err->code = code;
    err->offset = offset;
    err->source[0] = '\0';
    if (source != NULL)
        snprintf(err->source, sizeof(err->source), "%s", source);
    if (fmt == NULL) {
        snprintf(err->message, sizeof(err->message), "%s", reqsign_strerror(code));
    } else {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof(err->message), fmt, ap);
        va_end(ap);
    }
    return code;
}

/* see reqsign/error.h */
enum reqsign_status reqsign_error_json(const struct reqsign_error *err, int64_t server_time,
                                       char *out, size_t cap, size_t *out_len)
{
    struct reqsign__buf b = {out, cap > 0 ? cap - 1 : 0, 0, 0};
    enum reqsign_status code = err != NULL ? err->code : REQSIGN_E_INTERNAL;
    /* A local failure (HTTP 5xx: a store down or full, an internal error) is
     * told the client by its code and generic text only: its detail may name
     * hosts, ports, socket paths or a store's own reply (spec section 10). */
    const char *msg = err != NULL && err->message[0] && reqsign_http_status(code) < 500
                          ? err->message
                          : reqsign_strerror(code);
    static const char hex[] = "0123456789abcdef";

    reqsign__buf_puts(&b, "{\"error\":\"");
    reqsign__buf_puts(&b, reqsign_errname(code));
    reqsign__buf_puts(&b, "\",\"message\":\"");
    for (const unsigned char *p = (const unsigned char *)msg; *p; p++) {
        if (*p == '"' || *p == '\\') {
            reqsign__buf_putc(&b, '\\');
            reqsign__buf_putc(&b, (char)*p);
        } else if (*p < 0x20 || *p >= 0x7f) {
            char e[6] = {'\\', 'u', '0', '0', hex[*p >> 4], hex[*p & 15]};
            reqsign__buf_put(&b, e, 6);
        } else {
            reqsign__buf_putc(&b, (char)*p);
        }
    }
    reqsign__buf_putc(&b, '"');
    if (code == REQSIGN_E_SIG_TOO_OLD || code == REQSIGN_E_SIG_FUTURE ||
        code == REQSIGN_E_SIG_EXPIRED) {
        char t[48];
        int n = snprintf(t, sizeof(t), ",\"server_time\":%lld", (long long)server_time);
        reqsign__buf_put(&b, t, (size_t)n);
    }
    reqsign__buf_putc(&b, '}');
    if (b.overflow || cap == 0)
        return REQSIGN_E_BUFFER_TOO_SMALL;
    out[b.len] = '\0';
    if (out_len != NULL)
        *out_len = b.len;
    return REQSIGN_OK;
}
