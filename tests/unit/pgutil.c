/* Throwaway PostgreSQL servers for tests: see pgutil.h. */
#define _XOPEN_SOURCE 700 /* nftw */

#include "pgutil.h"

#ifndef REQSIGN_TEST_PG

int tu_pg_enabled(void)
{
    return 0;
}

#else

#include <libpq-fe.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#define PGU_USER "reqsign-test"
#define PGU_DEFAULT_BINDIR "/usr/lib/postgresql/15/bin"
#define PGU_READY_MS 20000
#define PGU_STOP_MS 10000

int tu_pg_enabled(void)
{
    return 1;
}

static const char *pgu_bindir(void)
{
    const char *d = getenv("REQSIGN_PG_BINDIR");
    return d != NULL && d[0] != '\0' ? d : PGU_DEFAULT_BINDIR;
}

/* The uid/gid servers run as: "reqsign-test" when root (created if needed). */
static int pgu_identity(uid_t *uid, gid_t *gid)
{
    if (geteuid() != 0) {
        *uid = geteuid();
        *gid = getegid();
        return 0;
    }
    struct passwd *pw = getpwnam(PGU_USER);
    if (pw == NULL) {
        pid_t pid = fork();
        if (pid < 0)
            return -1;
        if (pid == 0) {
            int fd = open("/dev/null", O_WRONLY);
            if (fd >= 0)
                dup2(fd, STDOUT_FILENO);
            execl("/usr/sbin/useradd", "useradd", "--system", "--no-create-home", "--shell",
                  "/usr/sbin/nologin", PGU_USER, (char *)NULL);
            _exit(127);
        }
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
        pw = getpwnam(PGU_USER); /* another process may have created it meanwhile */
        if (pw == NULL) {
            fprintf(stderr, "pgutil: cannot create the system user %s (useradd status %d)\n",
                    PGU_USER, status);
            return -1;
        }
    }
    *uid = pw->pw_uid;
    *gid = pw->pw_gid;
    return 0;
}

/* In a child: become the server user, log to @log, and die with the parent
 * thread. Only async-signal-safe calls. */
static void pgu_child_setup(uid_t uid, gid_t gid, pid_t parent, const char *dir, const char *log)
{
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        close(fd);
    }
    fd = open("/dev/null", O_RDONLY);
    if (fd >= 0) {
        dup2(fd, STDIN_FILENO);
        close(fd);
    }
    if (geteuid() == 0 && uid != 0) {
        if (setgroups(0, NULL) != 0 || setgid(gid) != 0 || setuid(uid) != 0)
            _exit(126);
    }
    /* After the credential change, which clears it. SIGQUIT: immediate shutdown. */
    prctl(PR_SET_PDEATHSIG, SIGQUIT);
    if (getppid() != parent)
        _exit(125);
    if (chdir(dir) != 0)
        _exit(124);
}

/* Run @argv as the server user, output appended to @log; wait (bounded). */
static int pgu_run(char *const argv[], uid_t uid, gid_t gid, const char *dir, const char *log,
                   long timeout_ms)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        pgu_child_setup(uid, gid, parent, dir, log);
        execv(argv[0], argv);
        _exit(127);
    }
    long end = tu_now_ms() + timeout_ms;
    int status = 0;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            break;
        if (r < 0 && errno != EINTR)
            return -1;
        if (tu_now_ms() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            fprintf(stderr, "pgutil: %s timed out\n", argv[0]);
            return -1;
        }
        tu_sleep_ms(10);
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "pgutil: %s failed (status 0x%x); see %s\n", argv[0], (unsigned)status,
                log);
        return -1;
    }
    return 0;
}

static int pgu_rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void pgu_rmtree(const char *dir)
{
    if (dir[0] != '\0')
        nftw(dir, pgu_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A new directory (tu_tmpdir) owned by the server user: @out. */
static int pgu_mkdir(char *out, size_t cap, uid_t uid, gid_t gid)
{
    char *d = tu_tmpdir();
    int n = snprintf(out, cap, "%s", d);
    free(d);
    if (n < 0 || (size_t)n >= cap)
        return -1;
    if (chown(out, uid, gid) != 0) {
        fprintf(stderr, "pgutil: chown %s: %s\n", out, strerror(errno));
        return -1;
    }
    return 0;
}

static void pgu_path(char *out, size_t cap, const char *dir, const char *name)
{
    snprintf(out, cap, "%s/%s", dir, name);
}

/* initdb into @dir/data. */
static int pgu_initdb(const char *dir, uid_t uid, gid_t gid)
{
    char bin[512], data[512], log[512];
    snprintf(bin, sizeof(bin), "%s/initdb", pgu_bindir());
    pgu_path(data, sizeof(data), dir, "data");
    pgu_path(log, sizeof(log), dir, "initdb.log");
    char *const argv[] = {bin,         "-D",
                          data,        "-U",
                          "postgres",  "--auth=trust",
                          "-E",        "UTF8",
                          "--no-sync", "--no-instructions",
                          NULL};
    return pgu_run(argv, uid, gid, dir, log, 120000);
}

/* cp -a @from @dir/data. */
static int pgu_copy_data(const char *from, const char *dir, uid_t uid, gid_t gid)
{
    char data[512], log[512];
    pgu_path(data, sizeof(data), dir, "data");
    pgu_path(log, sizeof(log), dir, "copy.log");
    char cp[] = "/bin/cp";
    char a[] = "-a";
    char *const argv[] = {cp, a, (char *)from, data, NULL};
    return pgu_run(argv, uid, gid, dir, log, 60000);
}

static void pgu_conninfo(char *out, size_t cap, const char *sock, const char *db)
{
    snprintf(out, cap, "postgresql:///%s?host=%s&user=postgres", db, sock);
}

/* Start the postmaster on @pg->dir/data and wait until it accepts connections. */
static int pgu_launch(struct tu_pg *pg)
{
    uid_t uid;
    gid_t gid;
    if (pgu_identity(&uid, &gid) != 0)
        return -1;
    char bin[512], data[512], log[512];
    snprintf(bin, sizeof(bin), "%s/postgres", pgu_bindir());
    pgu_path(data, sizeof(data), pg->dir, "data");
    pgu_path(log, sizeof(log), pg->dir, "server.log");
    char *const argv[] = {bin,
                          "-D",
                          data,
                          "-k",
                          pg->sock,
                          "-c",
                          "listen_addresses=",
                          "-c",
                          "fsync=off",
                          "-c",
                          "full_page_writes=off",
                          "-c",
                          "synchronous_commit=off",
                          "-c",
                          "shared_buffers=16MB",
                          "-c",
                          "max_connections=200",
                          NULL};
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        pgu_child_setup(uid, gid, parent, pg->dir, log);
        execv(argv[0], argv);
        _exit(127);
    }
    pg->pid = pid;
    long end = tu_now_ms() + PGU_READY_MS;
    for (;;) {
        if (PQping(pg->conninfo) == PQPING_OK)
            return 0;
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            pg->pid = 0;
            fprintf(stderr, "pgutil: postgres exited (status 0x%x); see %s\n", (unsigned)status,
                    log);
            return -1;
        }
        if (tu_now_ms() > end) {
            fprintf(stderr, "pgutil: postgres not ready after %d ms; see %s\n", PGU_READY_MS, log);
            tu_pg_stop(pg);
            return -1;
        }
        tu_sleep_ms(20);
    }
}

/* A directory with data/ (a copy of @template, or a new initdb) and sock/. */
static int pgu_prepare(struct tu_pg *pg, const char *template)
{
    uid_t uid;
    gid_t gid;
    memset(pg, 0, sizeof(*pg));
    if (pgu_identity(&uid, &gid) != 0 || pgu_mkdir(pg->dir, sizeof(pg->dir), uid, gid) != 0)
        return -1;
    pgu_path(pg->sock, sizeof(pg->sock), pg->dir, "sock");
    if (mkdir(pg->sock, 0700) != 0 || chown(pg->sock, uid, gid) != 0) {
        fprintf(stderr, "pgutil: %s: %s\n", pg->sock, strerror(errno));
        return -1;
    }
    pgu_conninfo(pg->conninfo, sizeof(pg->conninfo), pg->sock, "postgres");
    if (template != NULL)
        return pgu_copy_data(template, pg->dir, uid, gid);
    return pgu_initdb(pg->dir, uid, gid);
}

/* ---- suite ---- */

static struct {
    char template_dir[128]; /* holds data/, never started */
    struct tu_pg shared;
} pgu_suite;

/* see pgutil.h */
int tu_pg_suite_begin(void)
{
    uid_t uid;
    gid_t gid;
    long t0 = tu_now_ms();
    if (pgu_identity(&uid, &gid) != 0 ||
        pgu_mkdir(pgu_suite.template_dir, sizeof(pgu_suite.template_dir), uid, gid) != 0 ||
        pgu_initdb(pgu_suite.template_dir, uid, gid) != 0) {
        fprintf(stderr, "pgutil: no template data directory; PostgreSQL tests will fail\n");
        return -1;
    }
    char template[512];
    pgu_path(template, sizeof(template), pgu_suite.template_dir, "data");
    if (pgu_prepare(&pgu_suite.shared, template) != 0 || pgu_launch(&pgu_suite.shared) != 0) {
        fprintf(stderr, "pgutil: the shared server did not start; PostgreSQL tests will fail\n");
        return -1;
    }
    setenv("REQSIGN_TEST_PG_TEMPLATE", template, 1);
    setenv("REQSIGN_TEST_PG_SOCKDIR", pgu_suite.shared.sock, 1);
    if (getenv("REQSIGN_TEST_PG_VERBOSE") != NULL)
        fprintf(stderr, "pgutil: template and shared server ready in %ld ms (%s)\n",
                tu_now_ms() - t0, pgu_suite.shared.sock);
    return 0;
}

/* see pgutil.h */
void tu_pg_suite_end(void)
{
    tu_pg_destroy(&pgu_suite.shared);
    pgu_rmtree(pgu_suite.template_dir);
    memset(&pgu_suite, 0, sizeof(pgu_suite));
}

/* ---- databases ---- */

static char *pgu_create_db(const char *sock, const char *admin_conninfo)
{
    static atomic_uint seq;
    char name[64], sql[128];
    snprintf(name, sizeof(name), "t%ld_%u", (long)getpid(), atomic_fetch_add(&seq, 1));
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", name);
    char *r = tu_pg_query(admin_conninfo, sql);
    if (r == NULL)
        return NULL;
    free(r);
    size_t cap = strlen(sock) + strlen(name) + 64;
    char *ci = malloc(cap);
    if (ci == NULL)
        abort();
    pgu_conninfo(ci, cap, sock, name);
    return ci;
}

/* see pgutil.h */
char *tu_pg_new_db(void)
{
    const char *sock = getenv("REQSIGN_TEST_PG_SOCKDIR");
    if (sock == NULL) {
        fprintf(stderr, "pgutil: no shared server (tu_pg_suite_begin did not run or failed)\n");
        return NULL;
    }
    char admin[256];
    pgu_conninfo(admin, sizeof(admin), sock, "postgres");
    return pgu_create_db(sock, admin);
}

/* see pgutil.h */
char *tu_pg_new_db_on(const struct tu_pg *pg)
{
    return pgu_create_db(pg->sock, pg->conninfo);
}

static void pgu_quiet(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

/* see pgutil.h */
char *tu_pg_query(const char *conninfo, const char *sql)
{
    PGconn *c = PQconnectdb(conninfo);
    PQsetNoticeProcessor(c, pgu_quiet, NULL);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "pgutil: connect: %s", PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    PGresult *res = PQexec(c, sql);
    char *out = NULL;
    ExecStatusType rs = PQresultStatus(res);
    if (rs == PGRES_COMMAND_OK || rs == PGRES_TUPLES_OK) {
        const char *v = rs == PGRES_TUPLES_OK && PQntuples(res) > 0 && PQnfields(res) > 0
                            ? PQgetvalue(res, 0, 0)
                            : "";
        out = strdup(v);
    } else {
        fprintf(stderr, "pgutil: %s: %s", sql, PQresultErrorMessage(res));
    }
    PQclear(res);
    PQfinish(c);
    return out;
}

/* ---- private servers ---- */

/* see pgutil.h */
int tu_pg_start(struct tu_pg *pg)
{
    if (pgu_prepare(pg, getenv("REQSIGN_TEST_PG_TEMPLATE")) != 0 || pgu_launch(pg) != 0) {
        tu_pg_destroy(pg);
        return -1;
    }
    return 0;
}

/* see pgutil.h */
int tu_pg_stop(struct tu_pg *pg)
{
    if (pg->pid <= 0)
        return 0;
    kill(pg->pid, SIGINT);
    long end = tu_now_ms() + PGU_STOP_MS;
    int status, rc = 0;
    for (;;) {
        pid_t r = waitpid(pg->pid, &status, WNOHANG);
        if (r == pg->pid || (r < 0 && errno != EINTR))
            break;
        if (tu_now_ms() > end) {
            kill(pg->pid, SIGKILL);
            waitpid(pg->pid, &status, 0);
            rc = -1;
            break;
        }
        tu_sleep_ms(10);
    }
    pg->pid = 0;
    return rc;
}

/* see pgutil.h */
int tu_pg_restart(struct tu_pg *pg)
{
    if (pg->pid > 0)
        return -1;
    return pgu_launch(pg);
}

/* see pgutil.h */
void tu_pg_destroy(struct tu_pg *pg)
{
    tu_pg_stop(pg);
    pgu_rmtree(pg->dir);
    pg->dir[0] = '\0';
}

#endif
