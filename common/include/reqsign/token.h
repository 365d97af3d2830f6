/* reqsign: the HTTP token check (RFC 9110 section 5.6.2), static inline (no
 * symbol, no allocation, thread-safe): used by the libraries, the HTTP glue
 * (compiled by programs built out of tree, hence public) and the CLI. */
#ifndef REQSIGN_TOKEN_H
#define REQSIGN_TOKEN_H

#include <stddef.h>
#include <string.h>

/* A token character, tchar (RFC 9110 section 5.6.2): ALPHA / DIGIT / one of
 * !#$%&'*+-.^_`|~. The one definition of the set in the tree: methods, field
 * names and component names are tokens (sf.c keeps it as a bit of its table). */
static inline int reqsign_is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* @s[0..@n) is a token (RFC 9110 section 5.6.2): one or more tchar. */
static inline int reqsign_is_token(const char *s, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!reqsign_is_tchar((unsigned char)s[i]))
            return 0;
    return 1;
}

#endif
