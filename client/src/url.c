/* reqsign internal: URLs as libcurl sends them (url.h). */
#include "url.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

static const char SRC_URL[] = "URL";

/* ---- the fast parser ---- */

/* Character classes of the fast parser. */
enum { C_HOST = 1, C_PCHAR = 2, C_HEX = 4 };

static unsigned char cls[256];

static void cls_init(void)
{
    static const char pchar_extra[] = "-._~!$&'()*+,;=:@";
    for (int c = 0; c < 256; c++) {
        unsigned char k = 0;
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.')
            k |= C_HOST;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            (c != 0 && strchr(pchar_extra, c) != NULL))
            k |= C_PCHAR; /* RFC 3986 pchar without pct-encoded */
        if (reqsign__hexval((unsigned char)c) >= 0)
            k |= C_HEX;
        cls[c] = k;
    }
}

static pthread_once_t cls_once = PTHREAD_ONCE_INIT;

/* see url.h
 *
 * Handled: "http://" or "https://" (lowercase), a host of [a-z0-9.-] that
 * starts with a letter (so no libcurl version reads it as an IPv4 number, and
 * no case folding or IDN applies) with no empty label, an optional port of 1-5
 * digits without a leading zero (1..65535), then "/" and a path and optional
 * non-empty query made of RFC 3986 characters, with well-formed %XX escapes.
 * Left to libcurl: everything else, including userinfo, IPv6 and numeric
 * hosts, uppercase, "/." anywhere and %2e (dot segments, which libcurl may
 * remove), an empty path or query, '#', backslashes and characters outside
 * RFC 3986. For what is handled, libcurl's URL API returns the input
 * unchanged: scheme, host, port, path and query are substrings of it. */
int reqsign__url_fast(const char *url, size_t n, struct reqsign__url_parts *u)
{
    const unsigned char *s = (const unsigned char *)url, *end = s + n, *p, *host, *target;
    size_t sl;

    if (pthread_once(&cls_once, cls_init) != 0)
        return 0;
    if (n > 8 && memcmp(url, "https://", 8) == 0)
        sl = 5;
    else if (n > 7 && memcmp(url, "http://", 7) == 0)
        sl = 4;
    else
        return 0;
    host = p = s + sl + 3;

    /* host */
    if (p == end || !(*p >= 'a' && *p <= 'z'))
        return 0;
    unsigned char prev = 0;
    while (p < end && (cls[*p] & C_HOST)) {
        if (*p == '.' && prev == '.')
            return 0;
        prev = *p++;
    }
    if (prev == '.')
        return 0;
    /* port */
    if (p < end && *p == ':') {
        const unsigned char *ps = ++p;
        unsigned long port = 0;
        if (p == end || *p < '1' || *p > '9')
            return 0;
        while (p < end && *p >= '0' && *p <= '9' && p - ps < 5)
            port = port * 10 + (unsigned long)(*p++ - '0');
        if (port > 65535)
            return 0;
    }
    if (p == end || *p != '/')
        return 0; /* userinfo, a sixth port digit, no path, ... */
    size_t alen = (size_t)(p - host);
    if (alen > REQSIGN_AUTHORITY_IN_MAX)
        return 0;

    /* path [? query] */
    target = p;
    int in_query = 0;
    size_t qpos = 0;
    for (; p < end; p++) {
        while (p < end && (cls[*p] & C_PCHAR)) /* the common run: nothing to look at */
            p++;
        if (p == end)
            break;
        unsigned char c = *p;
        if (c == '/') {
            if (p + 1 < end && p[1] == '.')
                return 0; /* a possible dot segment */
        } else if (c == '%') {
            if (end - p < 3 || !(cls[p[1]] & C_HEX) || !(cls[p[2]] & C_HEX) ||
                (p[1] == '2' && (p[2] == 'e' || p[2] == 'E')))
                return 0;
            p += 2;
        } else if (c == '?') {
            if (!in_query) {
                if (p + 1 == end)
                    return 0; /* empty query */
                in_query = 1;
                qpos = (size_t)(p - target);
            }
        } else if (!(cls[c] & C_PCHAR)) {
            return 0;
        }
    }
    size_t tlen = (size_t)(end - target);
    if (tlen > REQSIGN_TARGET_IN_MAX)
        return 0;

    memcpy(u->scheme, url, sl);
    u->scheme[sl] = '\0';
    u->scheme_len = sl;
    memcpy(u->authority, host, alen);
    u->authority[alen] = '\0';
    u->authority_len = alen;
    memcpy(u->target, target, tlen);
    u->target[tlen] = '\0';
    u->target_len = tlen;
    u->path_len = in_query ? qpos : tlen;
    return 1;
}

/* ---- libcurl's parser ---- */

/* A host (@a, @an bytes of authority, port included) that libcurl would
 * rewrite before sending it, so that the Host on the wire (and the signed
 * @authority) would differ from the URL as written, which is what a verifier
 * given the same URL compares with: REQSIGN_E_URL. Refused: any '%' (libcurl
 * decodes "ho%73t" to "host"), and a host made only of digits, hex letters,
 * 'x' and dots that starts with a digit but is not a dotted-quad of decimal
 * octets without leading zeros (libcurl reads "127.1", "0x7f.0.0.1",
 * "0177.0.0.1" and "2130706433" as 127.0.0.1). IPv6 literals ("[...]") are
 * checked by reqsign_authority_normalize(). */
/* Does @a[0..n) read as an IPv4 address in libcurl's (inet_aton's) sense:
 * 1 to 4 dot-separated parts, each a number as strtoul(base 0) takes it
 * whole (0x hex, 0 octal, decimal)? Such a host is rewritten by libcurl. */
static int ipv4_number_form(const char *a, size_t n)
{
    size_t i = 0;
    int parts = 0;
    while (i <= n) {
        size_t s0 = i;
        while (i < n && a[i] != '.')
            i++;
        size_t len = i - s0;
        const char *p = a + s0;
        int ok;
        if (len == 0) {
            ok = 0;
        } else if (len >= 2 && p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
            ok = len > 2;
            for (size_t k = 2; ok && k < len; k++)
                ok = (p[k] >= '0' && p[k] <= '9') || (p[k] >= 'a' && p[k] <= 'f') ||
                     (p[k] >= 'A' && p[k] <= 'F');
        } else {
            char hi = p[0] == '0' ? '7' : '9';
            ok = 1;
            for (size_t k = 0; ok && k < len; k++)
                ok = p[k] >= '0' && p[k] <= hi;
        }
        if (!ok || ++parts > 4)
            return 0;
        if (i == n)
            return 1;
        i++; /* the dot */
    }
    return 0;
}

static enum reqsign_status check_host_as_written(const char *a, size_t an, size_t off,
                                                 struct reqsign_error *err)
{
    size_t hn = an;
    if (a[0] == '[')
        return REQSIGN_OK;
    const char *pc = memchr(a, '%', an);
    if (pc != NULL)
        return reqsign_error_set(err, REQSIGN_E_URL, SRC_URL, off + (size_t)(pc - a),
                                 "URL host is percent-encoded: write it decoded (libcurl would "
                                 "send the decoded host, which the verifier would not match)");
    const char *pcol = memchr(a, ':', an);
    if (pcol != NULL)
        hn = (size_t)(pcol - a);
    if (hn == 0 || a[0] < '0' || a[0] > '9')
        return REQSIGN_OK;
    if (!ipv4_number_form(a, hn))
        return REQSIGN_OK; /* a name such as 1e100.net, not a number libcurl would read */
    /* dotted-quad decimal: 4 octets of 1-3 digits, no leading zero, <= 255 */
    size_t i = 0;
    int parts = 0, ok = 1;
    while (ok && parts < 4) {
        size_t s0 = i;
        unsigned v = 0;
        while (i < hn && a[i] >= '0' && a[i] <= '9' && i - s0 < 4)
            v = v * 10 + (unsigned)(a[i++] - '0');
        size_t len = i - s0;
        if (len == 0 || len > 3 || v > 255 || (len > 1 && a[s0] == '0'))
            ok = 0;
        parts++;
        if (parts < 4) {
            if (i < hn && a[i] == '.')
                i++;
            else
                ok = 0;
        }
    }
    if (ok && i == hn)
        return REQSIGN_OK;
    return reqsign_error_set(err, REQSIGN_E_URL, SRC_URL, off,
                             "URL host '%.*s' is a numeric form libcurl rewrites: write an IPv4 "
                             "address as four decimal octets (a.b.c.d, no leading zeros)",
                             (int)(hn > 64 ? 64 : hn), a);
}

/* The authority as written in an http(s) @url, checked as the verifier checks
 * a Host (reqsign_authority_normalize()), before libcurl sees the URL.
 * libcurl is lenient where the verifier is not: it reads "https:///a/x" and
 * "https:/a/x" as host "a", and drops an IPv6 zone id ("[fe80::1%25eth0]")
 * from the host it reports while the verifier would keep it. Refused here
 * with REQSIGN_E_URL: a scheme not followed by "//", an empty host (also
 * after userinfo), and every authority the verifier would refuse (spec
 * sections 3.3 and 5.2.3). Other schemes are left to the scheme check. */
static enum reqsign_status check_authority(const char *url, struct reqsign_error *err)
{
    const char *colon = strchr(url, ':');
    if (colon == NULL)
        return REQSIGN_OK; /* no scheme: libcurl refuses it */
    struct reqsign_span scheme = {url, (size_t)(colon - url)};
    if (!reqsign__span_ieq(scheme, "http") && !reqsign__span_ieq(scheme, "https"))
        return REQSIGN_OK;
    if (colon[1] != '/' || colon[2] != '/')
        return reqsign_error_set(err, REQSIGN_E_URL, SRC_URL, (size_t)(colon - url) + 1,
                                 "URL has no authority: expected %.*s://HOST[:PORT]/...",
                                 (int)scheme.len, scheme.ptr);
    const char *a = colon + 3;
    size_t an = strcspn(a, "/?#");
    enum reqsign_status st;
    for (size_t i = an; i > 0; i--) /* userinfo: what follows the last '@' is the host */
        if (a[i - 1] == '@') {
            a += i;
            an -= i;
            break;
        }
    size_t off = (size_t)(a - url);
    if (an == 0 || a[0] == ':')
        return reqsign_error_set(err, REQSIGN_E_URL, SRC_URL, off,
                                 "URL has an empty authority (no host)");
    st = check_host_as_written(a, an, off, err);
    if (st != REQSIGN_OK)
        return st;
    char norm[REQSIGN_AUTHORITY_OUT_BUF];
    size_t nn;
    struct reqsign_error e2;
    reqsign_error_clear(&e2);
    st = reqsign_authority_normalize(scheme, (struct reqsign_span){a, an}, norm, sizeof(norm), &nn,
                                     &e2);
    if (st == REQSIGN_OK)
        return REQSIGN_OK;
    if (st == REQSIGN_E_LIMIT)
        return reqsign_error_set(err, REQSIGN_E_LIMIT, SRC_URL, off, "%s", e2.message);
    return reqsign_error_set(err, REQSIGN_E_URL, SRC_URL,
                             e2.offset != REQSIGN_NO_OFFSET ? off + e2.offset : off,
                             "URL authority '%.*s': %s", (int)(an > 64 ? 64 : an), a,
                             e2.message[0] ? e2.message : reqsign_strerror(st));
}

/* see url.h */
enum reqsign_status reqsign__url_curl(const char *url, int path_as_is, struct reqsign__url_parts *u,
                                      struct reqsign_error *err)
{
    CURLU *h;
    CURLUcode rc;
    char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL, *query = NULL;
    enum reqsign_status st = check_authority(url, err);

    if (st != REQSIGN_OK)
        return st;
    h = curl_url();
    if (h == NULL)
        return reqsign_error_set(err, REQSIGN_E_NOMEM, SRC_URL, REQSIGN_NO_OFFSET, NULL);
    rc = curl_url_set(h, CURLUPART_URL, url, path_as_is ? CURLU_PATH_AS_IS : 0);
    if (rc != CURLUE_OK) {
        st = reqsign_error_set(err, REQSIGN_E_URL, SRC_URL, REQSIGN_NO_OFFSET, "%s",
                               curl_url_strerror(rc));
        goto out;
    }
    if (curl_url_get(h, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) {
        st = reqsign_error_set(err, REQSIGN_E_URL, SRC_URL, 0,
                               "only http and https URLs can be signed");
        goto out;
    }
    if (curl_url_get(h, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
        st = reqsign_error_set(err, REQSIGN_E_URL, SRC_URL, REQSIGN_NO_OFFSET, "URL has no host");
        goto out;
    }
    rc = curl_url_get(h, CURLUPART_PORT, &port, 0);
    if (rc != CURLUE_OK && rc != CURLUE_NO_PORT) {
        st = reqsign_error_set(err, REQSIGN_E_URL, SRC_URL, REQSIGN_NO_OFFSET, "%s",
                               curl_url_strerror(rc));
        goto out;
    }
    if (curl_url_get(h, CURLUPART_PATH, &path, 0) != CURLUE_OK) {
        st = reqsign_error_set(err, REQSIGN_E_URL, SRC_URL, REQSIGN_NO_OFFSET, "URL has no path");
        goto out;
    }
    rc = curl_url_get(h, CURLUPART_QUERY, &query, 0);
    if (rc != CURLUE_OK && rc != CURLUE_NO_QUERY) {
        st = reqsign_error_set(err, REQSIGN_E_URL, SRC_URL, REQSIGN_NO_OFFSET, "%s",
                               curl_url_strerror(rc));
        goto out;
    }

    u->scheme_len = strlen(scheme); /* "http" or "https" */
    memcpy(u->scheme, scheme, u->scheme_len + 1);
    int an = snprintf(u->authority, sizeof(u->authority), "%s%s%s", host, port ? ":" : "",
                      port ? port : "");
    if (an < 0 || (size_t)an >= sizeof(u->authority)) {
        st = reqsign_error_set(err, REQSIGN_E_LIMIT, SRC_URL, REQSIGN_NO_OFFSET,
                               "host longer than %d bytes", REQSIGN_AUTHORITY_IN_MAX);
        goto out;
    }
    u->authority_len = (size_t)an;
    /* libcurl sends "/" for an empty path, and the query after '?' when present */
    int tn = snprintf(u->target, sizeof(u->target), "%s%s%s%s", path[0] == '/' ? "" : "/", path,
                      query ? "?" : "", query ? query : "");
    if (tn < 0 || (size_t)tn >= sizeof(u->target)) {
        st = reqsign_error_set(err, REQSIGN_E_LIMIT, SRC_URL, REQSIGN_NO_OFFSET,
                               "path and query longer than %d bytes", REQSIGN_TARGET_IN_MAX);
        goto out;
    }
    u->target_len = (size_t)tn;
    const char *q = memchr(u->target, '?', u->target_len);
    u->path_len = q != NULL ? (size_t)(q - u->target) : u->target_len;
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(path);
    curl_free(query);
    curl_url_cleanup(h);
    return st;
}

/* see url.h */
enum reqsign_status reqsign__url_parse(const char *url, int path_as_is,
                                       struct reqsign__url_parts *u, struct reqsign_error *err)
{
    size_t n = strlen(url);

    /* the fast parser only takes RFC 3986 characters, so it needs no check first */
    if (reqsign__url_fast(url, n, u))
        return REQSIGN_OK;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)url[i];
        if (c <= 0x20 || c >= 0x7f)
            return reqsign_error_set(err, REQSIGN_E_URL, SRC_URL, i,
                                     "byte 0x%02x at %zu: percent-encode spaces, controls and "
                                     "non-ASCII bytes before signing",
                                     c, i);
    }
    return reqsign__url_curl(url, path_as_is, u, err);
}
