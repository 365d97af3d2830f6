/* Shared helpers for the Criterion suites. */
#ifndef REQSIGN_TESTUTIL_H
#define REQSIGN_TESTUTIL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Absolute path of @rel under the source tree (REQSIGN_SOURCE_ROOT). Static buffer
 * per call site is not needed: returns a malloc'd string the caller frees. */
char *tu_path(const char *rel);
/* Whole file @rel (under the source root); NUL-terminated; *len without NUL. Aborts on error. */
char *tu_read(const char *rel, size_t *len);
/* Whole file at @path (malloc'd, NUL-terminated; *@len without the NUL, if
 * @len), or NULL if it cannot be opened. */
char *tu_slurp(const char *path, size_t *len);
/* Parse the JSON file @rel (under the source root). Aborts on error. */
json_t *tu_json(const char *rel);
/* Hex decode; returns malloc'd bytes; *len set. Aborts on bad hex. */
uint8_t *tu_unhex(const char *hex, size_t *len);
/* Path of the built reqsign CLI (REQSIGN_CLI). */
const char *tu_cli(void);
/* Run a shell command, capture stdout (malloc'd, NUL-terminated) and exit status. */
char *tu_run(const char *cmd, int *status);
/* A fresh temporary directory (malloc'd path). */
char *tu_tmpdir(void);
/* Milliseconds on the monotonic clock. */
long tu_now_ms(void);
/* Sleep @ms milliseconds (the whole time, signals or not; <= 0: none). */
void tu_sleep_ms(long ms);

/* ---- processes for end-to-end tests ---- */
#include <sys/types.h>

struct tu_proc {
    pid_t pid;
    int port; /* from the "listening on http[s]://HOST:PORT" line */
    char host[64];
    char url[128]; /* http://HOST:PORT (https:// for a TLS server) */
};

/* Start argv[0] (a path) with argv, stderr to @log_path (append; NULL: /dev/null),
 * and wait up to @timeout_ms for the first stdout line "listening on http://HOST:PORT".
 * Returns 0, or -1 (the process is killed) with a message on stderr. */
int tu_proc_start(struct tu_proc *p, char *const argv[], const char *log_path, int timeout_ms);
/* tu_proc_start() with every "@PORT@" in argv replaced by a free loopback
 * port, the same in each (e.g. "--listen", "127.0.0.1:@PORT@", "--authority",
 * "127.0.0.1:@PORT@": servers must be told their authority before they
 * listen). Tries a few ports in case another process takes one first. */
int tu_proc_start_port(struct tu_proc *p, char *const argv[], const char *log_path, int timeout_ms);
/* The next tu_proc_start*() calls run their program as @uid / @gid with no
 * supplementary groups (the test must be root); -1, -1: as this process. The
 * log file is opened before the identity changes. */
void tu_proc_run_as(long uid, long gid);
/* A loopback TCP port that was free a moment ago, or -1. */
int tu_free_port(void);
/* Send @sig and wait up to @timeout_ms; then SIGKILL. Returns the exit status
 * (0..255), 128+signal if killed by a signal, or -1 if it had to be SIGKILLed. */
int tu_proc_stop(struct tu_proc *p, int sig, int timeout_ms);
/* Path of a built program from the environment variable @env (set by meson). */
const char *tu_prog(const char *env);
/* A TCP connection to 127.0.0.1:@port, or -1. */
int tu_connect_port(int port);
/* Send the @n bytes at @buf on @fd, stopping early if a send fails (the peer
 * closed); returns the bytes sent. */
size_t tu_send(int fd, const void *buf, size_t n);
/* Send @req raw on a fresh TCP connection to 127.0.0.1:@p->port (shutting the
 * write side if @close_write); read until close or @ms ms; return what came
 * back (malloc'd, NUL-terminated). Aborts if it cannot connect. */
char *tu_raw(const struct tu_proc *p, const char *req, size_t len, int close_write, int ms);

#endif
