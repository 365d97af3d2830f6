#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

char *tu_path(const char *rel)
{
    const char *root = getenv("REQSIGN_SOURCE_ROOT");
    if (root == NULL)
        root = ".";
    size_t n = strlen(root) + strlen(rel) + 2;
    char *p = malloc(n);
    if (p == NULL)
        abort();
    snprintf(p, n, "%s/%s", root, rel);
    return p;
}

char *tu_read(const char *rel, size_t *len)
{
    char *path = tu_path(rel);
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "tu_read: cannot open %s\n", path);
        abort();
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (n + 1 >= cap) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        if (r == 0)
            break;
        n += r;
    }
    fclose(f);
    free(path);
    buf[n] = '\0';
    if (len != NULL)
        *len = n;
    return buf;
}

json_t *tu_json(const char *rel)
{
    char *path = tu_path(rel);
    json_error_t e;
    json_t *j = json_load_file(path, JSON_DECODE_ANY, &e);
    if (j == NULL) {
        fprintf(stderr, "tu_json: %s: %s (line %d)\n", path, e.text, e.line);
        abort();
    }
    free(path);
    return j;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

uint8_t *tu_unhex(const char *hex, size_t *len)
{
    size_t n = strlen(hex);
    if (n % 2 != 0)
        abort();
    uint8_t *out = malloc(n / 2 + 1);
    for (size_t i = 0; i < n / 2; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            abort();
        out[i] = (uint8_t)(hi * 16 + lo);
    }
    *len = n / 2;
    return out;
}

const char *tu_cli(void)
{
    const char *p = getenv("REQSIGN_CLI");
    return p != NULL ? p : "reqsign";
}

char *tu_run(const char *cmd, int *status)
{
    FILE *p = popen(cmd, "r");
    if (p == NULL)
        abort();
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (n + 1 >= cap) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
        size_t r = fread(buf + n, 1, cap - n - 1, p);
        if (r == 0)
            break;
        n += r;
    }
    buf[n] = '\0';
    int st = pclose(p);
    if (status != NULL)
        *status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    return buf;
}

char *tu_tmpdir(void)
{
    char tmpl[] = "/tmp/reqsign-test-XXXXXX";
    char *d = mkdtemp(tmpl);
    if (d == NULL)
        abort();
    return strdup(d);
}
