/* Throwaway PostgreSQL servers for tests (Unix socket only, never TCP).
 *
 * Binaries come from REQSIGN_PG_BINDIR, else pg_config --bindir's usual
 * Debian place /usr/lib/postgresql/15/bin. PostgreSQL refuses to run as root,
 * so as root the servers run as the system user "reqsign-test" (created once
 * with useradd --system --no-create-home); otherwise as the current user.
 * Every server lives in its own tu_tmpdir() (data/, sock/, server.log), runs
 * with fsync off, and dies with the thread that started it
 * (PR_SET_PDEATHSIG). A system-wide instance is never touched: clients
 * always name the socket directory.
 *
 * Cost: initdb takes 2-4 s, so a suite runs it once. tu_pg_suite_begin()
 * (call it from ReportHook(PRE_ALL), which runs in the Criterion runner)
 * initdb's a template data directory and starts one shared server on a copy
 * of it; the workers, forked and exec'd per test, find both through the
 * environment (REQSIGN_TEST_PG_SOCKDIR, REQSIGN_TEST_PG_TEMPLATE). Tests take
 * a fresh database on the shared server with tu_pg_new_db(); a test that must
 * stop its server starts a private one with tu_pg_start() (a copy of the
 * template: ~0.5 s). tu_pg_suite_end() (ReportHook(POST_ALL)) stops the shared
 * server and removes everything.
 *
 * Built only with REQSIGN_TEST_PG (libpq found); otherwise tu_pg_enabled()
 * is 0 and the rest must not be called.
 */
#ifndef REQSIGN_PGUTIL_H
#define REQSIGN_PGUTIL_H

#include <stddef.h>
#include <sys/types.h>

struct tu_pg {
    pid_t pid;          /* postmaster, 0 when stopped */
    char dir[128];      /* tu_tmpdir(): data/, sock/, server.log */
    char sock[160];     /* socket directory */
    char conninfo[256]; /* the "postgres" database, user postgres */
};

/* 1 if the PostgreSQL tests are built in (libpq found), else 0. */
int tu_pg_enabled(void);

/* Runner side: template + shared server, exported through the environment.
 * Returns 0, or -1 with a message on stderr (the pg tests then fail). */
int tu_pg_suite_begin(void);
void tu_pg_suite_end(void);

/* A new empty database on the shared server: malloc'd conninfo
 * ("postgresql:///NAME?host=SOCK&user=postgres"), or NULL with a message on
 * stderr. */
char *tu_pg_new_db(void);
/* The same on the server @pg. */
char *tu_pg_new_db_on(const struct tu_pg *pg);

/* A private server on a copy of the suite's template (or a fresh initdb),
 * started and accepting connections. 0, or -1 with a message on stderr. */
int tu_pg_start(struct tu_pg *pg);
/* Fast shutdown (SIGINT), waiting for the postmaster to exit (SIGKILL after
 * 10 s). The data stays. 0, or -1 if it had to be killed. */
int tu_pg_stop(struct tu_pg *pg);
/* Start again on the same data and socket directory; 0 or -1. */
int tu_pg_restart(struct tu_pg *pg);
/* Stop if running and remove the directory. */
void tu_pg_destroy(struct tu_pg *pg);

/* Run @sql on @conninfo; the first column of the first row, malloc'd ("" if
 * no row or no value), or NULL with a message on stderr. */
char *tu_pg_query(const char *conninfo, const char *sql);

#endif
