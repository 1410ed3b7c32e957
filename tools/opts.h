/* The tool's option parser: each subcommand declares tables of option descriptors, and
 * opts_parse reads argv straight into the typed values they point to, checks every
 * value against its range in the precision it will be used in, and writes --help from
 * the same tables. */
#ifndef L2L_TOOLS_OPTS_H
#define L2L_TOOLS_OPTS_H

#include <stddef.h>
#include <string.h>

#include "l2l.h"

/* Copies an option table, built on the stack with pointers into the caller's struct,
 * into that struct's array of exactly the same size. */
#define OPT_TABLE_COPY(dst, src)                                               \
    do {                                                                       \
        _Static_assert(sizeof(dst) == sizeof(src), #dst " holds " #src);       \
        memcpy(dst, src, sizeof(src));                                         \
    } while (0)

/* What a subcommand hands back to main(), the only place that makes it an exit code:
 * 0 for OK and HELP, 1 for FAILED (a runtime failure), 2 for USAGE (bad command line),
 * 3 for DIVERGED (a loss became non-finite or exploded: no result was written). */
typedef enum {
    TOOL_OK = 0,
    TOOL_FAILED,
    TOOL_USAGE,
    TOOL_HELP, /* --help was printed: nothing else to do */
    TOOL_DIVERGED
} tool_result;

/* Prints "l2l CMD: MESSAGE" and a pointer to --help on stderr; returns TOOL_USAGE. */
tool_result tool_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints "l2l CMD: error: MESSAGE" on stderr; returns TOOL_FAILED. */
tool_result tool_fail(const char *cmd, const l2l_error *err);
/* Prints "l2l CMD: diverged: MESSAGE" on stderr; returns TOOL_DIVERGED. */
tool_result tool_diverged(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* v in the fewest significant digits that read back as the same float: 0.003f is
 * "0.003", not "0.00300000003", and a tuned rate 10^-0.5 is "0.31622776", which given
 * back as NAME:LR is the same rate ("%g" would print 0.316228, a different float). */
void opts_format_float(float v, char *buf, size_t n);
/* The thread set-up for --threads N (0 = OpenMP's default); in main.c. */
void tool_threads(int n);

typedef enum {
    OPT_INT,    /* int, in [lo, hi] */
    OPT_U64,    /* uint64_t, an integer in [lo, hi] (hi <= 2^53) */
    OPT_FLOAT,  /* float: the value rounded to float must be finite and in [lo, hi] (as floats) */
    OPT_STRING, /* const char *, any text */
    OPT_PATH,   /* const char *, not empty */
    OPT_CHOICE, /* int: the value of the named choice */
    OPT_FLAG,   /* int: set to lo, takes no value */
    OPT_CUSTOM  /* parse() reads the text into dest */
} opt_type;

typedef struct {
    const char *name;
    int value;
} opt_choice; /* a table of them ends with {NULL} */

typedef struct {
    const char *name; /* the long option without its dashes; NULL ends a table */
    opt_type type;
    void *dest;       /* the typed value the option sets */
    double lo, hi;    /* the accepted range (OPT_FLAG: lo is the value stored) */
    const opt_choice *choices;                     /* OPT_CHOICE */
    int (*parse)(const char *text, void *dest);    /* OPT_CUSTOM: 0 = accepted */
    void (*format)(const void *dest, char *buf, size_t n); /* OPT_CUSTOM: as text, "" = none */
    const char *arg;    /* the value's name in --help: N, FILE, ... (choices: their names) */
    const char *expect; /* OPT_CUSTOM, OPT_PATH: what the error message says is expected */
    const char *help;   /* one line, or several separated by '\n' */
    const char *key;    /* the checkpoint metadata key of the value; NULL = not recorded */
    int set;            /* opts_parse: the option was given */
} opt_desc;

typedef struct {
    const char *title; /* the section's heading in --help (NULL: none) */
    opt_desc *opts;    /* ended by {NULL} */
} opt_group;

typedef struct {
    const char *name;  /* "train" */
    const char *usage; /* the lines --help prints before the options */
    const char *notes; /* and after them (may be NULL) */
    int max_args;      /* arguments that are not options, at most */
} opt_command;

/*
 * Parses argv[1..argc) (argv[0] is the subcommand) into the groups' values (a NULL
 * opts ends the groups), marking each option given as set; options and arguments may
 * come in any order, "--" ends the options, "--name=value" is "--name value" and -h is
 * --help. The arguments go to args[0..*n_args) (both may be NULL when the command takes
 * none). Returns TOOL_OK, TOOL_HELP (--help
 * printed) or TOOL_USAGE (the message printed names the option, what it expects and
 * what it got).
 */
tool_result opts_parse(const opt_command *cmd, opt_group *groups, int argc, char **argv,
                       char **args, int *n_args);

/* Whether the option `name` of the table was given (it must be in the table). */
int opts_given(const opt_desc *table, const char *name);
/* For OPT_CUSTOM lists: s as integers in [lo, hi] separated by commas, at most max, into
 * v; returns how many, or -1 if s is not such a list. */
int opts_parse_ints(const char *s, int *v, int max, long lo, long hi);
/* v[0..n) as "1,2,3" into buf (size bytes). */
void opts_format_ints(const int *v, int n, char *buf, size_t size);
/* The name of value in a choice table, NULL if none. */
const char *opts_choice_name(const opt_choice *choices, int value);
/* Writes every option that has a key as a (key, value) pair, its value as text (floats
 * in the fewest digits that read back as the same float); skips empty values. Returns
 * the number of pairs written; asserts that at most max fit. */
int opts_metadata(const opt_group *groups, l2l_kv *kv, int max);

#endif
