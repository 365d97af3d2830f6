/* The option parser (see opt.h). */
#include "opt.h"

#include <stdio.h>
#include <string.h>

/* The option of @defs named @name (@nlen bytes, long) or @shrt. */
static const struct reqsign_opt_def *find_opt(const struct reqsign_opt_def *defs, const char *name,
                                              size_t nlen, char shrt)
{
    for (const struct reqsign_opt_def *o = defs; o->lng != NULL || o->shrt != 0; o++) {
        if (name != NULL && o->lng != NULL && strlen(o->lng) == nlen &&
            strncmp(o->lng, name, nlen) == 0)
            return o;
        if (name == NULL && o->shrt != 0 && o->shrt == shrt)
            return o;
    }
    return NULL;
}

/* see opt.h */
int reqsign_opt_next(struct reqsign_opt_parser *p, const struct reqsign_opt_def *defs, int *id,
                     const char **val)
{
    const struct reqsign_opt_def *d;
    const char *attached = NULL;
    char shown[3] = {'-', 0, 0};

    *val = NULL;
    if (p->group != NULL && *p->group != '\0') {
        /* the rest of a group of short options: -iv is -i -v, -sXPUT is -s -X PUT */
        shown[1] = *p->group++;
        d = find_opt(defs, NULL, 0, shown[1]);
        if (d == NULL) {
            reqsign_opt_usage_error(p->prog, p->cmd, "unknown option '%s'", shown);
            return REQSIGN_OPT_ERROR;
        }
        if (d->arg == REQSIGN_OPT_VALUE && *p->group != '\0')
            attached = p->group;
        if (d->arg == REQSIGN_OPT_VALUE || *p->group == '\0')
            p->group = NULL;
        *id = d->id;
        goto value;
    }
    p->group = NULL;
    if (p->i >= p->argc)
        return REQSIGN_OPT_END;
    char *a = p->argv[p->i++];
    if (p->only_operands || a[0] != '-' || a[1] == '\0' || (p->operand != NULL && p->operand(a))) {
        *val = a;
        return REQSIGN_OPT_OPERAND;
    }
    if (strcmp(a, "--") == 0) {
        p->only_operands = true;
        return reqsign_opt_next(p, defs, id, val);
    }
    if (a[1] == '-') {
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        d = find_opt(defs, name, eq != NULL ? (size_t)(eq - name) : strlen(name), 0);
        if (d == NULL) {
            reqsign_opt_usage_error(p->prog, p->cmd, "unknown option '%s'", a);
            return REQSIGN_OPT_ERROR;
        }
        if (eq != NULL) {
            if (d->arg == REQSIGN_OPT_FLAG) {
                reqsign_opt_usage_error(p->prog, p->cmd, "option '%s' takes no argument", a);
                return REQSIGN_OPT_ERROR;
            }
            attached = eq + 1;
        }
    } else {
        shown[1] = a[1];
        d = find_opt(defs, NULL, 0, a[1]);
        if (d == NULL) {
            reqsign_opt_usage_error(p->prog, p->cmd, "unknown option '%s'", p->combine ? shown : a);
            return REQSIGN_OPT_ERROR;
        }
        if (a[2] != '\0') {
            if (d->arg == REQSIGN_OPT_VALUE) {
                attached = a + 2;
            } else if (p->combine) {
                p->group = a + 2;
            } else {
                reqsign_opt_usage_error(p->prog, p->cmd, "unknown option '%s'", a);
                return REQSIGN_OPT_ERROR;
            }
        }
    }
    *id = d->id;
value:
    if (d->arg == REQSIGN_OPT_VALUE) {
        if (attached != NULL) {
            *val = attached;
        } else if (p->i < p->argc) {
            *val = p->argv[p->i++];
        } else {
            reqsign_opt_usage_error(p->prog, p->cmd, "option '%s' needs an argument",
                                    shown[1] != 0 ? shown : p->argv[p->i - 1]);
            return REQSIGN_OPT_ERROR;
        }
    }
    return REQSIGN_OPT_OPTION;
}

/* see opt.h */
int reqsign_opt_help_or_version(int argc, char **argv, int first)
{
    for (int i = first; i < argc && strcmp(argv[i], "--") != 0; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
            return REQSIGN_OPT_HELP;
        if (strcmp(argv[i], "--version") == 0)
            return REQSIGN_OPT_VERSION;
    }
    return 0;
}

/* see opt.h */
void reqsign_opt_usage_verror(const char *prog, const char *cmd, const char *fmt, va_list ap)
{
    fprintf(stderr, "%s%s%s: ", prog, cmd != NULL ? " " : "", cmd != NULL ? cmd : "");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    reqsign_opt_usage_hint(prog, cmd);
}

/* see opt.h */
void reqsign_opt_usage_error(const char *prog, const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    reqsign_opt_usage_verror(prog, cmd, fmt, ap);
    va_end(ap);
}

/* see opt.h */
void reqsign_opt_usage_hint(const char *prog, const char *cmd)
{
    fprintf(stderr, "see '%s%s%s --help'\n", prog, cmd != NULL ? " " : "", cmd != NULL ? cmd : "");
}
