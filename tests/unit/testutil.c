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

char *tu_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (n + 1 >= cap) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
        if (buf == NULL)
            abort();
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        if (r == 0)
            break;
        n += r;
    }
    fclose(f);
    buf[n] = '\0';
    if (len != NULL)
        *len = n;
    return buf;
}

char *tu_read(const char *rel, size_t *len)
{
    char *path = tu_path(rel);
    char *buf = tu_slurp(path, len);
    if (buf == NULL) {
        fprintf(stderr, "tu_read: cannot open %s\n", path);
        abort();
    }
    free(path);
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

/* ---- processes ---- */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long run_uid = -1, run_gid = -1;

/* see testutil.h */
void tu_proc_run_as(long uid, long gid)
{
    run_uid = uid;
    run_gid = gid;
}

long tu_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

void tu_sleep_ms(long ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

int tu_proc_start(struct tu_proc *p, char *const argv[], const char *log_path, int timeout_ms)
{
    int fds[2];
    memset(p, 0, sizeof(*p));
    if (pipe(fds) != 0)
        return -1;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        /* a server never outlives the test that started it, even when a failed
         * assertion ends the test process before tu_proc_stop() */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int log = open(log_path ? log_path : "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0600);
        dup2(fds[1], 1);
        if (log >= 0)
            dup2(log, 2);
        close(fds[0]);
        close(fds[1]);
        if (run_uid >= 0 &&
            (setgroups(0, NULL) != 0 || setgid((gid_t)run_gid) != 0 || setuid((uid_t)run_uid) != 0))
            _exit(126);
        execv(argv[0], argv);
        _exit(127);
    }
    close(fds[1]);
    p->pid = pid;
    char line[256];
    size_t n = 0;
    long deadline = tu_now_ms() + timeout_ms;
    while (n < sizeof(line) - 1) {
        struct pollfd pfd = {fds[0], POLLIN, 0};
        long left = deadline - tu_now_ms();
        if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
            break;
        ssize_t r = read(fds[0], line + n, 1);
        if (r <= 0)
            break;
        if (line[n] == '\n')
            break;
        n++;
    }
    line[n] = '\0';
    char *at = strstr(line, "http://");
    int tls = 0;
    if (at == NULL && (at = strstr(line, "https://")) != NULL) { /* --tls-cert */
        tls = 1;
        at++; /* so that at + 7 is past "://" as for http */
    }
    char *colon = at ? strrchr(at + 7, ':') : NULL;
    if (at == NULL || colon == NULL) {
        fprintf(stderr, "tu_proc_start: %s: no 'listening on http://HOST:PORT' line (got '%s')\n",
                argv[0], line);
        tu_proc_stop(p, SIGKILL, 1000);
        close(fds[0]);
        return -1;
    }
    p->port = (int)strtol(colon + 1, NULL, 10);
    size_t hl = (size_t)(colon - (at + 7));
    if (hl >= sizeof(p->host))
        hl = sizeof(p->host) - 1;
    memcpy(p->host, at + 7, hl);
    p->host[hl] = '\0';
    snprintf(p->url, sizeof(p->url), "%s://%s:%d", tls ? "https" : "http", p->host, p->port);
    /* servers print one line on stdout; a later write gets EPIPE, which they ignore */
    close(fds[0]);
    return 0;
}

/* see testutil.h */
int tu_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = 0;
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    socklen_t al = sizeof(a);
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &al) == 0)
        port = ntohs(a.sin_port);
    close(fd); /* bound, never listened or connected: no TIME_WAIT */
    return port;
}

/* see testutil.h */
int tu_proc_start_port(struct tu_proc *p, char *const argv[], const char *log_path, int timeout_ms)
{
    size_t n = 0;
    while (argv[n] != NULL)
        n++;
    for (int attempt = 0; attempt < 5; attempt++) {
        int port = tu_free_port();
        if (port < 0)
            return -1;
        char **av = calloc(n + 1, sizeof(char *));
        if (av == NULL)
            abort();
        for (size_t i = 0; i < n; i++) {
            const char *at = strstr(argv[i], "@PORT@");
            if (at == NULL) {
                av[i] = argv[i];
                continue;
            }
            size_t len = strlen(argv[i]) + 8;
            av[i] = malloc(len);
            if (av[i] == NULL)
                abort();
            snprintf(av[i], len, "%.*s%d%s", (int)(at - argv[i]), argv[i], port, at + 6);
        }
        int rc = tu_proc_start(p, av, log_path, timeout_ms);
        for (size_t i = 0; i < n; i++)
            if (av[i] != argv[i])
                free(av[i]);
        free(av);
        if (rc == 0)
            return 0;
        fprintf(stderr, "tu_proc_start_port: %s did not start on port %d; trying another\n",
                argv[0], port);
    }
    return -1;
}

int tu_proc_stop(struct tu_proc *p, int sig, int timeout_ms)
{
    int status = 0;
    if (p->pid <= 0)
        return -1;
    kill(p->pid, sig);
    long deadline = tu_now_ms() + timeout_ms;
    for (;;) {
        pid_t r = waitpid(p->pid, &status, WNOHANG);
        if (r == p->pid)
            break;
        if (tu_now_ms() > deadline) {
            kill(p->pid, SIGKILL);
            waitpid(p->pid, &status, 0);
            p->pid = 0;
            return -1;
        }
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    p->pid = 0;
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return 128 + WTERMSIG(status);
}

const char *tu_prog(const char *env)
{
    const char *p = getenv(env);
    return p != NULL ? p : "";
}

/* see testutil.h */
int tu_connect_port(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

size_t tu_send(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    size_t off = 0;
    while (off < n) {
        ssize_t w = send(fd, p + off, n - off, MSG_NOSIGNAL);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    return off;
}

char *tu_raw(const struct tu_proc *p, const char *req, size_t len, int close_write, int ms)
{
    int fd = tu_connect_port(p->port);
    if (fd < 0)
        abort();
    tu_send(fd, req, len);
    if (close_write)
        shutdown(fd, SHUT_WR);
    char *out = calloc(1, 65536);
    size_t n = 0;
    for (;;) {
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, ms) <= 0)
            break;
        ssize_t r = recv(fd, out + n, 65535 - n, 0);
        if (r <= 0)
            break;
        n += (size_t)r;
        if (n >= 65535)
            break;
    }
    close(fd);
    return out;
}
