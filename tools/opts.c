/* The tool's option parser (see opts.h). */
#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "opts.h"

/* "l2l CMD: KIND" and the message on stderr; the caller ends the line. */
static void report(const char *cmd, const char *kind, const char *fmt, va_list ap)
{
    fprintf(stderr, "l2l %s: %s", cmd, kind);
    vfprintf(stderr, fmt, ap);
}

tool_result tool_usage(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    report(cmd, "", fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'l2l %s --help'.\n", cmd);
    return TOOL_USAGE;
}

tool_result tool_fail(const char *cmd, const l2l_error *err)
{
    fprintf(stderr, "l2l %s: error: %s\n", cmd, err->msg);
    return TOOL_FAILED;
}

tool_result tool_diverged(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    report(cmd, "diverged: ", fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return TOOL_DIVERGED;
}

int opts_parse_ints(const char *s, int *v, int max, long lo, long hi)
{
    int n = 0;
    for (const char *q = s;;) {
        char *end;
        const long x = strtol(q, &end, 10);
        if (end == q || x < lo || x > hi || n == max) return -1;
        v[n++] = (int)x;
        if (*end == 0) return n;
        if (*end != ',') return -1;
        q = end + 1;
    }
}

void opts_format_ints(const int *v, int n, char *buf, size_t size)
{
    buf[0] = 0;
    for (int i = 0; i < n; i++) {
        const size_t len = strlen(buf);
        snprintf(buf + len, size - len, "%s%d", i ? "," : "", v[i]);
    }
}

const char *opts_choice_name(const opt_choice *choices, int value)
{
    for (int i = 0; choices[i].name; i++)
        if (choices[i].value == value) return choices[i].name;
    return NULL;
}

static void choice_list(const opt_choice *choices, const char *sep, char *buf, size_t n)
{
    buf[0] = 0;
    for (int i = 0; choices[i].name; i++) {
        size_t len = strlen(buf);
        snprintf(buf + len, n - len, "%s%s", i ? sep : "", choices[i].name);
    }
}

/* Reads text into d's value; returns TOOL_OK or TOOL_USAGE (message printed). A number
 * must be the whole text. A float is checked after rounding to float, against bounds
 * rounded the same way: 1e-50 is a positive double but 0 as a float. */
static tool_result read_value(const char *cmd, opt_desc *d, const char *text)
{
    char *end, buf[256];
    errno = 0;
    switch (d->type) {
    case OPT_INT: {
        long v = strtol(text, &end, 10);
        if (errno || end == text || *end || v < d->lo || v > d->hi)
            return tool_usage(cmd, "--%s expects an integer in %.0f..%.0f, got '%s'", d->name, d->lo,
                              d->hi, text);
        *(int *)d->dest = (int)v;
        return TOOL_OK;
    }
    case OPT_U64: {
        double v = strtod(text, &end);
        if (errno || end == text || *end || !(v >= d->lo && v <= d->hi) || v != floor(v))
            return tool_usage(cmd, "--%s expects an integer in %.0f..%.0f, got '%s'", d->name, d->lo,
                              d->hi, text);
        *(uint64_t *)d->dest = (uint64_t)v;
        return TOOL_OK;
    }
    case OPT_FLOAT: {
        double v = strtod(text, &end);
        float f = (float)v, lo = (float)d->lo, hi = (float)d->hi;
        if (errno == EINVAL || end == text || *end || !isfinite(f) || f < lo || f > hi)
            return tool_usage(cmd, "--%s expects a number in [%g, %g] (as a float), got '%s'", d->name,
                              lo, hi, text);
        *(float *)d->dest = f;
        return TOOL_OK;
    }
    case OPT_PATH:
        if (!*text) return tool_usage(cmd, "--%s expects %s, got ''", d->name, d->expect);
        /* fall through */
    case OPT_STRING: *(const char **)d->dest = text; return TOOL_OK;
    case OPT_CHOICE:
        for (int i = 0; d->choices[i].name; i++)
            if (strcmp(text, d->choices[i].name) == 0) {
                *(int *)d->dest = d->choices[i].value;
                return TOOL_OK;
            }
        choice_list(d->choices, ", ", buf, sizeof buf);
        return tool_usage(cmd, "--%s expects one of %s, got '%s'", d->name, buf, text);
    case OPT_CUSTOM:
        if (d->parse(text, d->dest) == 0) return TOOL_OK;
        return tool_usage(cmd, "--%s expects %s; got '%s'", d->name, d->expect, text);
    case OPT_FLAG: break;
    }
    assert(0 && "an option without a value");
    return TOOL_USAGE;
}

/* --help: the command's text, then each group's options as "  --name ARG   help". */
static void print_help(const opt_command *cmd, const opt_group *groups)
{
    enum { COL = 28 };
    fputs(cmd->usage, stdout);
    for (const opt_group *g = groups; g->opts; g++) {
        if (g->title) printf("\n%s:\n", g->title);
        for (const opt_desc *d = g->opts; d->name; d++) {
            char arg[128] = "";
            if (d->type == OPT_CHOICE && !d->arg) choice_list(d->choices, "|", arg, sizeof arg);
            else if (d->arg) snprintf(arg, sizeof arg, "%s", d->arg);
            int col = printf("  --%s%s%s", d->name, *arg ? " " : "", arg);
            const char *h = d->help ? d->help : "";
            if (col >= COL - 1) putchar('\n'), col = 0;
            for (;;) { /* each line of the help at column COL */
                const char *nl = strchr(h, '\n');
                int len = nl ? (int)(nl - h) : (int)strlen(h);
                printf("%*s%.*s\n", COL - col, "", len, h);
                if (!nl) break;
                h = nl + 1, col = 0;
            }
        }
    }
    if (cmd->notes) printf("\n%s", cmd->notes);
}

static opt_desc *find(opt_group *groups, const char *name, size_t len)
{
    for (opt_group *g = groups; g->opts; g++)
        for (opt_desc *d = g->opts; d->name; d++)
            if (strlen(d->name) == len && strncmp(d->name, name, len) == 0) return d;
    return NULL;
}

tool_result opts_parse(const opt_command *cmd, opt_group *groups, int argc, char **argv,
                       char **args, int *n_args)
{
    int n = 0; /* arguments */
    for (int i = 1, options = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!options || a[0] != '-' || a[1] == 0) { /* an argument ("-" included) */
            if (n == cmd->max_args) return tool_usage(cmd->name, "unexpected argument '%s'", a);
            args[n++] = argv[i];
            continue;
        }
        if (strcmp(a, "--") == 0) {
            options = 0;
            continue;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            print_help(cmd, groups);
            return TOOL_HELP;
        }
        const char *eq = strchr(a, '=');
        size_t len = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
        opt_desc *d = a[1] == '-' ? find(groups, a + 2, len) : NULL;
        if (!d) return tool_usage(cmd->name, "unknown option '%.*s'", eq ? (int)(eq - a) : (int)strlen(a), a);
        d->set = 1;
        if (d->type == OPT_FLAG) {
            if (eq) return tool_usage(cmd->name, "option '--%s' takes no value", d->name);
            *(int *)d->dest = (int)d->lo;
            continue;
        }
        const char *text = eq ? eq + 1 : i + 1 < argc ? argv[++i] : NULL;
        if (!text) return tool_usage(cmd->name, "option '%s' needs a value", a);
        tool_result r = read_value(cmd->name, d, text);
        if (r != TOOL_OK) return r;
    }
    if (n_args) *n_args = n;
    return TOOL_OK;
}

int opts_given(const opt_desc *table, const char *name)
{
    for (const opt_desc *d = table; d->name; d++)
        if (strcmp(d->name, name) == 0) return d->set;
    assert(0 && "opts_given: no such option in the table");
    return 0;
}

void opts_format_float(float v, char *buf, size_t n)
{
    for (int digits = 1; digits <= 9; digits++) {
        snprintf(buf, n, "%.*g", digits, (double)v);
        if ((float)strtod(buf, NULL) == v) return;
    }
}

int opts_metadata(const opt_group *groups, l2l_kv *kv, int max)
{
    int n = 0;
    for (const opt_group *g = groups; g->opts; g++)
        for (const opt_desc *d = g->opts; d->name; d++) {
            if (!d->key) continue;
            char v[sizeof kv->value] = "";
            const char *s;
            switch (d->type) {
            case OPT_INT:
            case OPT_FLAG: snprintf(v, sizeof v, "%d", *(const int *)d->dest); break;
            case OPT_U64: snprintf(v, sizeof v, "%llu", (unsigned long long)*(const uint64_t *)d->dest); break;
            case OPT_FLOAT: opts_format_float(*(const float *)d->dest, v, sizeof v); break;
            case OPT_STRING:
            case OPT_PATH:
                s = *(const char *const *)d->dest;
                snprintf(v, sizeof v, "%s", s ? s : "");
                break;
            case OPT_CHOICE:
                s = opts_choice_name(d->choices, *(const int *)d->dest);
                snprintf(v, sizeof v, "%s", s ? s : "");
                break;
            case OPT_CUSTOM: d->format(d->dest, v, sizeof v); break;
            }
            if (!*v) continue;
            assert(n < max && "opts_metadata: more keys than room");
            snprintf(kv[n].key, sizeof kv[n].key, "%s", d->key);
            snprintf(kv[n].value, sizeof kv[n].value, "%s", v);
            n++;
        }
    return n;
}
