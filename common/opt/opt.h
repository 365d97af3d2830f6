/* The one command-line option parser of reqsign's programs: the CLI
 * (client/cli/), reqsignd and api-backend (with the HTTP glue's shared
 * options, server/httpd/). Table-driven: each program lists its options as
 * struct reqsign_opt_def rows and loops on reqsign_opt_next().
 *
 * Internal: compiled into each program from common/opt/opt.c (and by
 * examples/api-backend/Makefile out of tree); not part of an installed
 * library, no installed header.
 *
 * Usage errors are one line, "PROG[ CMD]: <message>", then
 * "see 'PROG[ CMD] --help'", on stderr; the program exits with status 2.
 *
 * Thread-safety: a parser is used by one thread; the functions keep no
 * state of their own. */
#ifndef REQSIGN_OPT_H
#define REQSIGN_OPT_H

#include <stdarg.h>
#include <stdbool.h>

#if defined(__GNUC__)
#define REQSIGN_OPT_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define REQSIGN_OPT_PRINTF(f, a)
#endif

/* Whether an option takes a value. */
enum reqsign_opt_arg { REQSIGN_OPT_FLAG = 0, REQSIGN_OPT_VALUE = 1 };

/* One row of an option table; a table ends with a row of zeros. */
struct reqsign_opt_def {
    const char *lng; /* without "--"; NULL: none */
    char shrt;       /* 0: none */
    enum reqsign_opt_arg arg;
    int id; /* what reqsign_opt_next() reports */
};

/* --name VALUE, --name=VALUE, -X VALUE, -XVALUE; "--" ends the options; "-"
 * alone is an operand. Initialise prog, argc, argv and i (the first argument
 * to read); the other fields are optional (0). */
struct reqsign_opt_parser {
    const char *prog;  /* "reqsign", "reqsignd", ...: in messages */
    const char *cmd;   /* its subcommand ("sign"), or NULL: in messages */
    const char *usage; /* the help text, for the program's --help (not printed here) */
    int argc;
    char **argv;
    int i;        /* the next argument */
    bool combine; /* short flags combine, as curl takes them: -iv, -sXPUT */
    /* an argument beginning with '-' that is an operand nevertheless (e.g. a
     * KEYID shaped like a thumbprint); NULL: none */
    int (*operand)(const char *a);
    /* internal */
    bool only_operands; /* after "--" */
    const char *group;  /* the rest of a group of short flags */
};

/* What reqsign_opt_next() found. */
enum {
    REQSIGN_OPT_END = 0,     /* no more arguments */
    REQSIGN_OPT_OPTION = 1,  /* an option: *id, and *val if it takes one */
    REQSIGN_OPT_OPERAND = 2, /* an operand (positional argument): *val */
    REQSIGN_OPT_ERROR = -1,  /* a usage error, already printed */
};

/* The next option or operand of @p by the table @defs. */
int reqsign_opt_next(struct reqsign_opt_parser *p, const struct reqsign_opt_def *defs, int *id,
                     const char **val);

/* Where a server answers -h/--help and --version: anywhere among
 * argv[@first..] (before a "--"), whatever else the line holds. The first of
 * them: REQSIGN_OPT_HELP or REQSIGN_OPT_VERSION; 0 if neither is there. */
enum { REQSIGN_OPT_HELP = 1, REQSIGN_OPT_VERSION = 2 };
int reqsign_opt_help_or_version(int argc, char **argv, int first);

/* "PROG[ CMD]: <message>" then "see 'PROG[ CMD] --help'", on stderr. */
void reqsign_opt_usage_error(const char *prog, const char *cmd, const char *fmt, ...)
    REQSIGN_OPT_PRINTF(3, 4);
void reqsign_opt_usage_verror(const char *prog, const char *cmd, const char *fmt, va_list ap)
    REQSIGN_OPT_PRINTF(3, 0);
/* "see 'PROG[ CMD] --help'" on stderr. */
void reqsign_opt_usage_hint(const char *prog, const char *cmd);

#endif
