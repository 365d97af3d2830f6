/* Test helper: a private redis-server on a Unix socket in a temporary
 * directory, for the nonce store suites. Never touches a system-wide instance. */
#ifndef REQSIGN_REDISUTIL_H
#define REQSIGN_REDISUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct ru_server {
    pid_t pid;                /* 0 when not running */
    char *dir;                /* from tu_tmpdir(); holds redis.sock and redis.log */
    char sock[160];           /* DIR/redis.sock */
    char url[170];            /* unix:DIR/redis.sock, for reqsign_nonce_redis_opts.url */
    const char *const *extra; /* more redis-server arguments (NULL-terminated), or NULL */
};

/* Whether a redis-server program is on PATH. */
bool ru_available(void);

/* Start redis-server (--port 0 --unixsocket DIR/redis.sock --save '' --appendonly no)
 * in a fresh temporary directory and wait until it answers PING. The server gets
 * PR_SET_PDEATHSIG(SIGKILL): it dies with the calling thread, so call this from
 * the test's main thread. Returns 0, or -1 with a message on stderr. */
int ru_start(struct ru_server *s);

/* The same with more redis-server arguments (@extra: NULL-terminated, kept
 * by pointer for ru_restart; e.g. {"--maxmemory-policy", "allkeys-lru", NULL}). */
int ru_start_with(struct ru_server *s, const char *const *extra);

/* Start it again on the same socket (after ru_signal(s, SIGKILL)). */
int ru_restart(struct ru_server *s);

/* Send @sig; for SIGKILL and SIGTERM also reap it (pid becomes 0). */
void ru_signal(struct ru_server *s, int sig);

/* Stop (SIGCONT, SIGTERM, SIGKILL after 2 s), reap, remove the directory. */
void ru_stop(struct ru_server *s);

/* One command over a fresh connection: @argc arguments, each @argv[i] of
 * @lens[i] bytes (binary-safe). Copies the reply's first line without CRLF
 * (":1", "+PONG", "$-1", "-ERR ...") into @out. Returns 0, or -1. */
int ru_command(const struct ru_server *s, int argc, const char *const argv[], const size_t lens[],
               char *out, size_t cap);

#endif
