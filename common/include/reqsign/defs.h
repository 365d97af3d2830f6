/* reqsign: common definitions shared by every public header.
 * Thread safety: nothing here has state.
 */
#ifndef REQSIGN_DEFS_H
#define REQSIGN_DEFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#define REQSIGN_API
#elif defined(__GNUC__)
#define REQSIGN_API __attribute__((visibility("default")))
#else
#define REQSIGN_API
#endif

#if defined(__GNUC__)
#define REQSIGN_NODISCARD __attribute__((warn_unused_result))
#else
#define REQSIGN_NODISCARD
#endif

/* A borrowed byte range; never NUL-terminated by contract. */
struct reqsign_span {
    const char *ptr;
    size_t len;
};

/* One HTTP header field line as received or to be sent. Names compare
 * case-insensitively; values are the bytes after the colon (leading and
 * trailing whitespace is stripped by the base builder, RFC 9421 2.1). */
struct reqsign_header {
    struct reqsign_span name;
    struct reqsign_span value;
};

#endif
