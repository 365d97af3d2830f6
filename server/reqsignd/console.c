/* reqsignd's web console: see console.h and docs/CONSOLE.md. */
#include "console.h"

#include <string.h>

static void security_headers(struct reqsign_httpd_req *r)
{
    reqsign_httpd_add_header(r, "Content-Security-Policy", REQSIGND_CONSOLE_CSP);
    reqsign_httpd_add_header(r, "X-Content-Type-Options", "nosniff");
    reqsign_httpd_add_header(r, "Referrer-Policy", "no-referrer");
    reqsign_httpd_add_header(r, "X-Frame-Options", "DENY");
}

static int starts_with(const struct reqsign_httpd_req *r, const char *pre)
{
    size_t n = strlen(pre);
    return r->path.len >= n && memcmp(r->path.ptr, pre, n) == 0;
}

/* see console.h */
int reqsignd_console_handle(struct reqsign_httpd_req *r)
{
    if (!reqsign_httpd_path_is(r, "/console") && !starts_with(r, "/console/"))
        return 0;
    if (strcmp(r->method, "GET") != 0 && strcmp(r->method, "HEAD") != 0) {
        reqsign_httpd_fail(r, REQSIGN_E_METHOD_NOT_ALLOWED, "%.32s is not allowed here; use GET",
                           r->method);
        reqsign_httpd_add_header(r, "Allow", "GET, HEAD");
        security_headers(r);
        return 1;
    }
    if (reqsign_httpd_path_is(r, "/console")) {
        static const char moved[] = "the console is at /console/\n";
        reqsign_httpd_respond(r, 308, "text/plain; charset=utf-8", moved, sizeof(moved) - 1);
        reqsign_httpd_add_header(r, "Location", "/console/");
        security_headers(r);
        return 1;
    }
    for (const struct reqsignd_console_asset *a = reqsignd_console_assets; a->path != NULL; a++) {
        if (!reqsign_httpd_path_is(r, a->path))
            continue;
        reqsign_httpd_respond_cache(r, 200, a->ctype, (const char *)a->data, a->len,
                                    a->immutable ? "public, max-age=31536000, immutable"
                                                 : "no-store");
        security_headers(r);
        return 1;
    }
    reqsign_httpd_fail(r, REQSIGN_E_NOT_FOUND, "no such resource");
    security_headers(r);
    return 1;
}
