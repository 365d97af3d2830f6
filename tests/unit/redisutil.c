/* Test helper: a private redis-server (see redisutil.h). */
#include "redisutil.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

bool ru_available(void)
{
    int status = 0;
    char *out = tu_run("command -v redis-server >/dev/null 2>&1 && echo yes", &status);
    bool yes = out != NULL && strncmp(out, "yes", 3) == 0;
    free(out);
    return yes;
}

static int ru_spawn(struct ru_server *s)
{
    char log[200];
    snprintf(log, sizeof(log), "%s/redis.log", s->dir);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        /* never outlive the test, even when an assertion ends it early */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        const char *argv[32] = {
            "redis-server", "--port",      "0", "--unixsocket", s->sock, "--unixsocketperm",
            "700",          "--save",      "",  "--appendonly", "no",    "--dir",
            s->dir,         "--daemonize", "no"};
        size_t n = 15;
        for (size_t i = 0; s->extra != NULL && s->extra[i] != NULL && n < 31; i++)
            argv[n++] = s->extra[i];
        argv[n] = NULL;
        execvp("redis-server", (char *const *)argv);
        _exit(127);
    }
    s->pid = pid;
    long deadline = tu_now_ms() + 5000;
    while (tu_now_ms() < deadline) {
        char out[64];
        const char *argv[] = {"PING"};
        size_t lens[] = {4};
        if (ru_command(s, 1, argv, lens, out, sizeof(out)) == 0 && strcmp(out, "+PONG") == 0)
            return 0;
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            s->pid = 0;
            fprintf(stderr, "redisutil: redis-server exited (see %s)\n", log);
            return -1;
        }
        tu_sleep_ms(5);
    }
    fprintf(stderr, "redisutil: redis-server did not answer PING within 5 s\n");
    ru_signal(s, SIGKILL);
    return -1;
}

int ru_start(struct ru_server *s)
{
    return ru_start_with(s, NULL);
}

int ru_start_with(struct ru_server *s, const char *const *extra)
{
    memset(s, 0, sizeof(*s));
    s->extra = extra;
    s->dir = tu_tmpdir();
    snprintf(s->sock, sizeof(s->sock), "%s/redis.sock", s->dir);
    snprintf(s->url, sizeof(s->url), "unix:%s", s->sock);
    return ru_spawn(s);
}

int ru_restart(struct ru_server *s)
{
    if (s->pid != 0)
        ru_signal(s, SIGKILL);
    return ru_spawn(s);
}

void ru_signal(struct ru_server *s, int sig)
{
    if (s->pid <= 0)
        return;
    kill(s->pid, sig);
    if (sig == SIGKILL || sig == SIGTERM) {
        int status;
        waitpid(s->pid, &status, 0);
        s->pid = 0;
    }
}

void ru_stop(struct ru_server *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGCONT);
        kill(s->pid, SIGTERM);
        long deadline = tu_now_ms() + 2000;
        int status;
        while (waitpid(s->pid, &status, WNOHANG) != s->pid) {
            if (tu_now_ms() > deadline) {
                kill(s->pid, SIGKILL);
                waitpid(s->pid, &status, 0);
                break;
            }
            tu_sleep_ms(5);
        }
        s->pid = 0;
    }
    if (s->dir != NULL) {
        char p[200];
        snprintf(p, sizeof(p), "%s/redis.log", s->dir);
        unlink(p);
        unlink(s->sock);
        rmdir(s->dir);
        free(s->dir);
        s->dir = NULL;
    }
}

static int ru_write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int ru_command(const struct ru_server *s, int argc, const char *const argv[], const size_t lens[],
               char *out, size_t cap)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%.100s", s->sock);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = {2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    int rc = -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
        goto out;
    char head[32];
    snprintf(head, sizeof(head), "*%d\r\n", argc);
    if (ru_write_all(fd, head, strlen(head)) != 0)
        goto out;
    for (int i = 0; i < argc; i++) {
        snprintf(head, sizeof(head), "$%zu\r\n", lens[i]);
        if (ru_write_all(fd, head, strlen(head)) != 0 || ru_write_all(fd, argv[i], lens[i]) != 0 ||
            ru_write_all(fd, "\r\n", 2) != 0)
            goto out;
    }
    size_t n = 0;
    char c;
    while (recv(fd, &c, 1, 0) == 1) {
        if (c == '\n') {
            if (n > 0 && out[n - 1] == '\r')
                n--;
            out[n] = '\0';
            rc = 0;
            break;
        }
        if (n + 1 < cap)
            out[n++] = c;
    }
out:
    close(fd);
    return rc;
}
