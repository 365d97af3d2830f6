/* reqsign: the error table, generated accessors, detail helpers. */
#include <reqsign/error.h>

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

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
