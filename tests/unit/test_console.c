/* Criterion suite `console`: reqsignd's console routes (server/reqsignd/console.c)
 * in-process, without a browser: the page and its assets with their caching and
 * security headers, content-hashed names, 404 / 405 / redirect, and paths that
 * are not the console's left to the API. The browser stories are e2e-console. */
#include <criterion/criterion.h>

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "console.h"
#include "httpd.h"

struct seen {
    int handled;
};

static void on_headers(void *ctx, struct reqsign_httpd_req *r)
{
    struct seen *s = ctx;
    s->handled = reqsignd_console_handle(r);
    if (!s->handled)
        reqsign_httpd_respond(r, 299, "text/plain", "api", 3); /* "the API's" */
}

static void on_end(void *ctx, struct reqsign_httpd_req *r)
{
    (void)ctx;
    (void)r;
}

static int get(const char *method, const char *target, struct reqsign_httpd_response *out)
{
    static const struct reqsign_httpd_handlers h = {on_headers, NULL, on_end, NULL};
    struct seen s = {0};
    struct reqsign_httpd_opts o;
    memset(&o, 0, sizeof(o));
    o.handlers = &h;
    o.ctx = &s;
    const struct reqsign_header hdr[] = {{{"Host", 4}, {"127.0.0.1:1", 11}}};
    struct reqsign_httpd_local *l =
        reqsign_httpd_local_begin(&o, method, target, strlen(target), hdr, 1);
    cr_assert_not_null(l);
    reqsign_httpd_local_finish(l, out);
    return s.handled;
}

static void assert_security_headers(const struct reqsign_httpd_response *r, const char *what)
{
    const char *csp = reqsign_httpd_response_header(r, "Content-Security-Policy");
    cr_assert_not_null(csp, "%s: no CSP", what);
    static const char *const parts[] = {
        "default-src 'none'",     "script-src 'self'", "style-src 'self'",  "connect-src 'self'",
        "frame-ancestors 'none'", "base-uri 'none'",   "form-action 'none'"};
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
        cr_assert(strstr(csp, parts[i]) != NULL, "%s: CSP lacks %s", what, parts[i]);
    cr_assert(strstr(csp, "unsafe") == NULL, "%s: %s", what, csp);
    const char *v = reqsign_httpd_response_header(r, "X-Content-Type-Options");
    cr_assert(v != NULL && strcmp(v, "nosniff") == 0, "%s: nosniff", what);
    v = reqsign_httpd_response_header(r, "Referrer-Policy");
    cr_assert(v != NULL && strcmp(v, "no-referrer") == 0, "%s: no-referrer", what);
}

Test(console, page_is_no_store_with_security_headers)
{
    struct reqsign_httpd_response r;
    cr_assert_eq(get("GET", "/console/", &r), 1);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(reqsign_httpd_response_header(&r, "Cache-Control"), "no-store");
    cr_assert(strncmp(reqsign_httpd_response_header(&r, "Content-Type"), "text/html", 9) == 0);
    assert_security_headers(&r, "/console/");
    for (size_t i = 0; i + 8 <= r.len; i++)
        cr_assert(memcmp(r.body + i, "<script>", 8) != 0, "inline script in the page");
    reqsign_httpd_response_clear(&r);
    cr_assert_eq(get("HEAD", "/console/?x=1", &r), 1, "a query does not change the page");
    cr_assert_eq(r.status, 200);
    reqsign_httpd_response_clear(&r);
}

/* Every asset: cached for good under the first 12 hex digits of its SHA-256. */
Test(console, assets_are_content_hashed_and_immutable)
{
    size_t n = 0;
    for (const struct reqsignd_console_asset *a = reqsignd_console_assets; a->path != NULL; a++) {
        struct reqsign_httpd_response r;
        cr_assert_eq(get("GET", a->path, &r), 1);
        cr_assert_eq(r.status, 200, "%s", a->path);
        cr_assert_eq(r.len, a->len);
        assert_security_headers(&r, a->path);
        reqsign_httpd_response_clear(&r);
        if (!a->immutable)
            continue;
        n++;
        unsigned char md[32];
        unsigned int mdlen = 0;
        cr_assert_eq(EVP_Digest(a->data, a->len, md, &mdlen, EVP_sha256(), NULL), 1);
        char hex[13];
        for (int i = 0; i < 6; i++)
            snprintf(hex + 2 * i, 3, "%02x", md[i]);
        char want[64];
        snprintf(want, sizeof(want), ".%s.", hex);
        cr_assert(strstr(a->path, want) != NULL, "%s is not named by its hash %s", a->path, hex);
        cr_assert(strncmp(a->path, "/console/assets/", 16) == 0, "%s", a->path);
        cr_assert_eq(get("GET", a->path, &r), 1);
        cr_assert_str_eq(reqsign_httpd_response_header(&r, "Cache-Control"),
                         "public, max-age=31536000, immutable");
        reqsign_httpd_response_clear(&r);
    }
    cr_assert_geq(n, 3, "the page, its stylesheet and modules");
}

Test(console, unknown_paths_404_other_methods_405_bare_path_redirects)
{
    static const char *const missing[] = {"/console/assets/app.js", "/console/index.html",
                                          "/console/assets/", "/console//",
                                          "/console/%2e%2e/v1/keys"};
    struct reqsign_httpd_response r;
    for (size_t i = 0; i < sizeof(missing) / sizeof(missing[0]); i++) {
        cr_assert_eq(get("GET", missing[i], &r), 1);
        cr_assert_eq(r.status, 404, "%s: %u", missing[i], r.status);
        assert_security_headers(&r, missing[i]);
        reqsign_httpd_response_clear(&r);
    }
    cr_assert_eq(get("POST", "/console/", &r), 1);
    cr_assert_eq(r.status, 405);
    cr_assert_str_eq(reqsign_httpd_response_header(&r, "Allow"), "GET, HEAD");
    assert_security_headers(&r, "POST");
    reqsign_httpd_response_clear(&r);
    cr_assert_eq(get("GET", "/console", &r), 1);
    cr_assert_eq(r.status, 308);
    cr_assert_str_eq(reqsign_httpd_response_header(&r, "Location"), "/console/");
    assert_security_headers(&r, "/console");
    reqsign_httpd_response_clear(&r);
}

Test(console, other_paths_are_the_apis)
{
    static const char *const api[] = {"/v1/keys", "/consolex",    "/console.js",
                                      "/",        "/v1/console/", "/healthz"};
    struct reqsign_httpd_response r;
    for (size_t i = 0; i < sizeof(api) / sizeof(api[0]); i++) {
        cr_assert_eq(get("GET", api[i], &r), 0, "%s taken by the console", api[i]);
        cr_assert_eq(r.status, 299);
        reqsign_httpd_response_clear(&r);
    }
}
