/* l2l plot: draws the series of a CSV file as a PNG or SVG figure with l2l_plot_lines.
 *
 * The CSV has a header line naming its columns and one record per line, fields separated
 * by commas, no quoting (the files l2l writes never need it; a quoted field is rejected
 * rather than misread). Rows are grouped into curves by the value of the series column, in
 * order of first appearance; each curve's points are drawn in file order. Defaults fit
 * the files l2l writes:
 *   compare's curves.csv   optimizer,step,mean,std   series optimizer, x step, y mean
 *   a sweep                series,x,mean,sem          series series, x x, y mean
 * A file without a series column (and no --series) is one curve. */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "plot/plot.h"

#define PLOT_MAX_SERIES 16

/* One curve as read: points in file order. */
typedef struct {
    char *name;
    int n, cap;
    double *x, *y, *err; /* (cap) each; err only when an --err column is given */
} curve_buf;

typedef struct {
    const char *path;
    char *header_line; /* the header, split in place; header[i] and name_* point into it */
    char **header;     /* (n_cols) */
    int n_cols;
    int col_x, col_y, col_series, col_err; /* -1 when absent */
    const char *name_x, *name_y, *name_series, *name_err;
    curve_buf curve[PLOT_MAX_SERIES];
    int n_curves;
} csv_plot;

static void csv_plot_free(csv_plot *p)
{
    for (int i = 0; i < p->n_curves; i++) {
        free(p->curve[i].name);
        free(p->curve[i].x), free(p->curve[i].y), free(p->curve[i].err);
    }
    free(p->header), free(p->header_line);
    p->header = NULL, p->header_line = NULL;
    p->n_curves = 0;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t') s++;
    char *e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n')) *--e = 0;
    return s;
}

/* Splits line in place at commas into at most max trimmed fields; returns the number of
 * fields in the line (which may exceed max: the caller compares it with the header). */
static int split_fields(char *line, char **fields, int max)
{
    int n = 0;
    for (char *s = line;; n++) {
        char *comma = strchr(s, ',');
        if (comma) *comma = 0;
        if (n < max) fields[n] = trim(s);
        if (!comma) return n + 1;
        s = comma + 1;
    }
}

static int column_index(char **header, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(header[i], name) == 0) return i;
    return -1;
}

static void column_list(char **header, int n, char *buf, size_t size)
{
    buf[0] = 0;
    for (int i = 0; i < n; i++) {
        size_t len = strlen(buf);
        snprintf(buf + len, size - len, "%s'%s'", i ? ", " : "", header[i]);
    }
}

/* The column named by the flag (want), else the first of the (two) defaults present.
 * Not finding it is an error unless the column is optional and was not asked for. */
static l2l_status resolve_column(char **header, int n, const char *role, const char *flag,
                                 const char *want, const char *const *defaults, int optional,
                                 int *col, const char **name, const char *path, l2l_error *err)
{
    *col = -1;
    if (want) *col = column_index(header, n, want);
    for (int d = 0; !want && defaults && defaults[d] && *col < 0; d++) *col = column_index(header, n, defaults[d]);
    *name = *col >= 0 ? header[*col] : NULL;
    if (*col >= 0 || (optional && !want)) return L2L_STATUS_OK;
    char cols[768];
    column_list(header, n, cols, sizeof cols);
    if (want)
        return l2l_error_set(err, L2L_STATUS_FORMAT, "%s: no column '%s' (given by --%s); the header has %s",
                             path, want, flag, cols);
    return l2l_error_set(err, L2L_STATUS_FORMAT,
                         "%s: no %s column named '%s' or '%s'; name it with --%s (the header has %s)",
                         path, role, defaults[0], defaults[1], flag, cols);
}

/* A whole field as a number; "inf" and "nan" are accepted (a diverged run), and so are
 * values beyond double's range (they become inf or 0, as strtod rounds them). */
static int parse_number(const char *s, double *v)
{
    char *end;
    if (!*s) return 0;
    *v = strtod(s, &end);
    return *end == 0;
}

static l2l_status field_number(const char *path, long line, const char *col, const char *s,
                               double *v, l2l_error *err)
{
    if (parse_number(s, v)) return L2L_STATUS_OK;
    if (!*s)
        return l2l_error_set(err, L2L_STATUS_FORMAT, "%s:%ld: column '%s' is empty; expected a number",
                             path, line, col);
    return l2l_error_set(err, L2L_STATUS_FORMAT, "%s:%ld: column '%s' must be a number, found '%s'",
                         path, line, col, s);
}

static l2l_status curve_push(curve_buf *c, double x, double y, double e, int with_err)
{
    if (c->n == c->cap) {
        int cap = c->cap ? 2 * c->cap : 128;
        double *nx = realloc(c->x, sizeof(double) * cap);
        if (nx) c->x = nx;
        double *ny = nx ? realloc(c->y, sizeof(double) * cap) : NULL;
        if (ny) c->y = ny;
        double *ne = ny && with_err ? realloc(c->err, sizeof(double) * cap) : NULL;
        if (ne) c->err = ne;
        if (!nx || !ny || (with_err && !ne)) return L2L_STATUS_NOMEM;
        c->cap = cap;
    }
    c->x[c->n] = x, c->y[c->n] = y;
    if (with_err) c->err[c->n] = e;
    c->n++;
    return L2L_STATUS_OK;
}

/* The curve named name, created if new; NULL with err set when there would be too many. */
static curve_buf *curve_for(csv_plot *p, const char *name, long line, l2l_error *err)
{
    for (int i = 0; i < p->n_curves; i++)
        if (strcmp(p->curve[i].name, name) == 0) return &p->curve[i];
    if (p->n_curves == PLOT_MAX_SERIES) {
        l2l_error_set(err, L2L_STATUS_FORMAT,
                      "%s:%ld: '%s' would be series number %d in column '%s'; at most %d fit in one "
                      "figure (pick another --series column, or split the file)",
                      p->path, line, name, PLOT_MAX_SERIES + 1, p->name_series, PLOT_MAX_SERIES);
        return NULL;
    }
    curve_buf *c = &p->curve[p->n_curves];
    memset(c, 0, sizeof *c);
    c->name = strdup(name);
    if (!c->name) {
        l2l_error_set(err, L2L_STATUS_NOMEM, "out of memory");
        return NULL;
    }
    p->n_curves++;
    return c;
}

/* Reads the CSV at p->path into p->curve, resolving the named (or default) columns. */
static l2l_status csv_read(csv_plot *p, const char *want_x, const char *want_y,
                           const char *want_series, const char *want_err, l2l_error *err)
{
    static const char *const def_x[] = {"step", "x", NULL};
    static const char *const def_y[] = {"mean", "y", NULL};
    static const char *const def_series[] = {"optimizer", "series", NULL};
    FILE *f = fopen(p->path, "r");
    if (!f) return l2l_error_set(err, L2L_STATUS_IO, "cannot open '%s': %s", p->path, strerror(errno));

    char *line = NULL, **fields = NULL;
    size_t header_cap = 0, cap = 0;
    long lineno = 0, rows = 0;
    l2l_status st = L2L_STATUS_OK;

    /* The header: the first line that is not blank. */
    ssize_t len;
    while ((len = getline(&p->header_line, &header_cap, f)) >= 0) {
        lineno++;
        if (*trim(p->header_line)) break;
    }
    if (len < 0) {
        st = ferror(f) ? l2l_error_set(err, L2L_STATUS_IO, "cannot read '%s': %s", p->path, strerror(errno))
                       : l2l_error_set(err, L2L_STATUS_FORMAT, "'%s' is empty; expected a header line "
                                       "naming the columns, such as optimizer,step,mean,std", p->path);
        goto done;
    }
    char *h = p->header_line;
    if (lineno == 1 && strncmp(h, "\xEF\xBB\xBF", 3) == 0) h += 3; /* a UTF-8 byte order mark */
    if (strchr(h, '"')) {
        st = l2l_error_set(err, L2L_STATUS_FORMAT, "%s:%ld: quoted fields are not supported; write the "
                           "CSV without double quotes", p->path, lineno);
        goto done;
    }
    int n_cols = 1;
    for (const char *c = h; *c; c++) n_cols += *c == ',';
    p->n_cols = n_cols;
    p->header = malloc(sizeof(char *) * n_cols);
    fields = malloc(sizeof(char *) * n_cols);
    if (!p->header || !fields) {
        st = l2l_error_set(err, L2L_STATUS_NOMEM, "out of memory");
        goto done;
    }
    split_fields(h, p->header, n_cols);
    char **header = p->header;
    if ((st = resolve_column(header, n_cols, "x", "x", want_x, def_x, 0, &p->col_x, &p->name_x, p->path, err)) ||
        (st = resolve_column(header, n_cols, "y", "y", want_y, def_y, 0, &p->col_y, &p->name_y, p->path, err)) ||
        (st = resolve_column(header, n_cols, "series", "series", want_series, def_series, 1, &p->col_series,
                             &p->name_series, p->path, err)) ||
        (st = resolve_column(header, n_cols, "error", "err", want_err, NULL, 1, &p->col_err, &p->name_err,
                             p->path, err)))
        goto done;

    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if (!*trim(line)) continue;
        if (strchr(line, '"')) {
            st = l2l_error_set(err, L2L_STATUS_FORMAT, "%s:%ld: quoted fields are not supported; write the "
                               "CSV without double quotes", p->path, lineno);
            goto done;
        }
        int n = split_fields(line, fields, n_cols);
        if (n != n_cols) {
            st = l2l_error_set(err, L2L_STATUS_FORMAT, "%s:%ld: %d field%s, but the header has %d columns",
                               p->path, lineno, n, n == 1 ? "" : "s", n_cols);
            goto done;
        }
        double x = NAN, y = NAN, e = NAN;
        if ((st = field_number(p->path, lineno, p->name_x, fields[p->col_x], &x, err)) ||
            (st = field_number(p->path, lineno, p->name_y, fields[p->col_y], &y, err)))
            goto done;
        if (p->col_err >= 0 && *fields[p->col_err] &&
            (st = field_number(p->path, lineno, p->name_err, fields[p->col_err], &e, err)))
            goto done;
        curve_buf *c = curve_for(p, p->col_series >= 0 ? fields[p->col_series] : p->name_y, lineno, err);
        if (!c) {
            st = err->status;
            goto done;
        }
        if (curve_push(c, x, y, e, p->col_err >= 0)) {
            st = l2l_error_set(err, L2L_STATUS_NOMEM, "out of memory");
            goto done;
        }
        rows++;
    }
    if (ferror(f)) {
        st = l2l_error_set(err, L2L_STATUS_IO, "cannot read '%s': %s", p->path, strerror(errno));
        goto done;
    }
    if (rows == 0)
        st = l2l_error_set(err, L2L_STATUS_FORMAT, "'%s' has a header line but no data rows", p->path);

done:
    free(fields), free(line);
    fclose(f);
    return st;
}

static int has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n > k && strcmp(s + n - k, suffix) == 0;
}

static const opt_command plot_cmd = {
    "plot",
    "usage: l2l plot CSV --out FIG.png|FIG.svg [options]\n"
    "Draws the rows of a CSV file (header line, comma-separated, no quoted fields) as\n"
    "lines, one per value of the series column (at most 16), in order of appearance.\n",
    "Values may be 'inf' or 'nan' (a diverged run); such points, and y <= 0 on a log\n"
    "axis, are left out of the line. Examples:\n"
    "  l2l plot out/mnist/curves.csv --out loss.png\n"
    "  l2l plot sweep.csv --err sem --linear --xlabel 'hidden units' --out width.png\n",
    2}; /* one CSV; a second is named in the message */

tool_result cmd_plot(int argc, char **argv)
{
    const char *out = NULL, *want_x = NULL, *want_y = NULL, *want_series = NULL, *want_err = NULL;
    const char *title = NULL, *xlabel = NULL, *ylabel = NULL;
    int log_y = 1;
    opt_desc own[] = {
        {"out", OPT_PATH, &out, .arg = "FILE", .expect = "a file name",
         .help = "the figure: .png or .svg (required)"},
        {"x", OPT_PATH, &want_x, .arg = "COL", .expect = "a column name",
         .help = "x column (default: 'step', else 'x')"},
        {"y", OPT_PATH, &want_y, .arg = "COL", .expect = "a column name",
         .help = "y column (default: 'mean', else 'y')"},
        {"series", OPT_PATH, &want_series, .arg = "COL", .expect = "a column name",
         .help = "column whose value names the curve (default: 'optimizer', else\n"
                 "'series'; without either, the whole file is one curve)"},
        {"err", OPT_PATH, &want_err, .arg = "COL", .expect = "a column name",
         .help = "half-widths drawn as a band (dense curves) or error bars (<= 16\n"
                 "points); an empty field draws none at that point"},
        {"title", OPT_STRING, &title, .arg = "T", .help = "the figure's title"},
        {"xlabel", OPT_STRING, &xlabel, .arg = "X", .help = "x axis label (default: the column's name)"},
        {"ylabel", OPT_STRING, &ylabel, .arg = "Y", .help = "y axis label (default: the column's name)"},
        {"log", OPT_FLAG, &log_y, 1, .help = "y axis on a log10 scale (default)"},
        {"linear", OPT_FLAG, &log_y, 0, .help = "y axis linear"},
        {NULL},
    };
    opt_group groups[] = {{NULL, own}, {NULL, NULL}};
    char *args[2];
    int n_args;
    tool_result r = opts_parse(&plot_cmd, groups, argc, argv, args, &n_args);
    if (r != TOOL_OK) return r;
    if (n_args != 1)
        return n_args < 1 ? tool_usage("plot", "expects a CSV file")
                          : tool_usage("plot", "expects one CSV file, got '%s' and '%s'", args[0], args[1]);
    if (!out) return tool_usage("plot", "--out FIG.png or FIG.svg is required");
    if (!has_suffix(out, ".png") && !has_suffix(out, ".svg"))
        return tool_usage("plot", "--out must end in .png or .svg, got '%s'", out);

    l2l_error err = {0};
    csv_plot p = {.path = args[0]};
    l2l_status st = csv_read(&p, want_x, want_y, want_series, want_err, &err);
    if (!st) {
        l2l_series s[PLOT_MAX_SERIES];
        for (int i = 0; i < p.n_curves; i++)
            s[i] = (l2l_series){p.curve[i].name, p.curve[i].n, p.curve[i].x, p.curve[i].y, p.curve[i].err};
        char ylab[600];
        if (!ylabel && p.col_err >= 0) snprintf(ylab, sizeof ylab, "%s +- %s", p.name_y, p.name_err);
        else snprintf(ylab, sizeof ylab, "%s", ylabel ? ylabel : p.name_y);
        st = l2l_plot_lines(out, title, xlabel ? xlabel : p.name_x, ylab, log_y, s, p.n_curves, &err);
    }
    if (!st) fprintf(stderr, "l2l plot: wrote %s (%d series)\n", out, p.n_curves);
    csv_plot_free(&p);
    return st ? tool_fail("plot", &err) : TOOL_OK;
}
