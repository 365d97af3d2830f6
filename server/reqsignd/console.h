/* reqsignd's web console (docs/CONSOLE.md): the static assets under
 * server/reqsignd/console/, compiled into the binary by gen_console.py and
 * served at /console/. The page signs every API call itself (WebCrypto
 * Ed25519); the server only hands out these public files. */
#ifndef REQSIGND_CONSOLE_H
#define REQSIGND_CONSOLE_H

#include <stddef.h>

#include "httpd.h"

struct reqsignd_console_asset {
    const char *path;  /* "/console/" or "/console/assets/NAME.HASH.EXT"; NULL ends the table */
    const char *ctype; /* Content-Type */
    const unsigned char *data;
    size_t len;
    int immutable; /* content-hashed name: may be cached for good */
};

/* The generated table (console_assets.c), ended by a NULL path. */
extern const struct reqsignd_console_asset reqsignd_console_assets[];

/* The headers every console response carries (also its 404 and 405). */
#define REQSIGND_CONSOLE_CSP                                                                       \
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "                \
    "img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

/**
 * reqsignd_console_handle() - answer @r if its path is /console or under
 * /console/: GET and HEAD of the page (no-store) and of its assets (cached
 * for good), a redirect from /console to /console/, 404 for anything else
 * there, 405 for other methods; every answer with the security headers.
 * Return: 1 if answered, 0 if the path is not the console's.
 */
int reqsignd_console_handle(struct reqsign_httpd_req *r);

#endif
