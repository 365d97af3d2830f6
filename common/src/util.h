/* reqsign: small internal helpers shared by the sources (static inline). */
#ifndef REQSIGN__INTERNAL_UTIL_H
#define REQSIGN__INTERNAL_UTIL_H

#include <reqsign/defs.h>
#include <reqsign/error.h>

#include <string.h>

static inline unsigned char reqsign__lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

/* The value of hex digit @c (either case), or -1. */
static inline int reqsign__hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* @a equals the NUL-terminated @s, ASCII case-insensitively. */
static inline int reqsign__span_ieq(struct reqsign_span a, const char *s)
{
    size_t n = strlen(s);
    if (a.len != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (reqsign__lower((unsigned char)a.ptr[i]) != reqsign__lower((unsigned char)s[i]))
            return 0;
    return 1;
}

static inline int reqsign__span_eq_nocase(struct reqsign_span a, struct reqsign_span b)
{
    if (a.len != b.len)
        return 0;
    for (size_t i = 0; i < a.len; i++)
        if (reqsign__lower((unsigned char)a.ptr[i]) != reqsign__lower((unsigned char)b.ptr[i]))
            return 0;
    return 1;
}

static inline int reqsign__span_eq(struct reqsign_span a, const char *s)
{
    size_t n = strlen(s);
    return a.len == n && (n == 0 || memcmp(a.ptr, s, n) == 0);
}

static inline struct reqsign_span reqsign__span_cstr(const char *s)
{
    struct reqsign_span sp = {s, s != NULL ? strlen(s) : 0};
    return sp;
}

/* Strip leading and trailing SP / HTAB. */
static inline struct reqsign_span reqsign__trim_ows(struct reqsign_span s)
{
    while (s.len > 0 && (s.ptr[0] == ' ' || s.ptr[0] == '\t')) {
        s.ptr++;
        s.len--;
    }
    while (s.len > 0 && (s.ptr[s.len - 1] == ' ' || s.ptr[s.len - 1] == '\t'))
        s.len--;
    return s;
}

/* An append-only output buffer: writes what fits, remembers overflow. */
struct reqsign__buf {
    char *p;
    size_t cap, len;
    int overflow;
};

static inline void reqsign__buf_put(struct reqsign__buf *b, const void *data, size_t n)
{
    if (b->overflow || n > b->cap - b->len) {
        b->overflow = 1;
        return;
    }
    if (n > 0)
        memcpy(b->p + b->len, data, n);
    b->len += n;
}

static inline void reqsign__buf_puts(struct reqsign__buf *b, const char *s)
{
    reqsign__buf_put(b, s, strlen(s));
}

static inline void reqsign__buf_putc(struct reqsign__buf *b, char c)
{
    reqsign__buf_put(b, &c, 1);
}

#endif
