/* The CSV reader of `l2l plot`: the format is described in csv.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/input.h"
#include "plot/csv.h"

void csv_plot_free(csv_plot *p)
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
    if (p->n_curves == CSV_MAX_SERIES) {
        l2l_error_set(err, L2L_STATUS_FORMAT,
                      "%s:%ld: '%s' would be series number %d in column '%s'; at most %d fit in one "
                      "figure (pick another --series column, or split the file)",
                      p->path, line, name, CSV_MAX_SERIES + 1, p->name_series, CSV_MAX_SERIES);
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

l2l_status csv_plot_read_stream(csv_plot *p, FILE *f, const char *path, const char *want_x,
                                const char *want_y, const char *want_series,
                                const char *want_err, l2l_error *err)
{
    static const char *const def_x[] = {"step", "x", NULL};
    static const char *const def_y[] = {"mean", "y", NULL};
    static const char *const def_series[] = {"optimizer", "series", NULL};
    memset(p, 0, sizeof *p);
    p->path = path;

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
    return st;
}

l2l_status csv_plot_read(csv_plot *p, const char *path, const char *want_x, const char *want_y,
                         const char *want_series, const char *want_err, l2l_error *err)
{
    memset(p, 0, sizeof *p);
    off_t size;
    int fd = l2l_input_open(path, "CSV file", &size, err);
    if (fd < 0) return err->status;
    FILE *f = fdopen(fd, "r");
    if (!f) {
        l2l_status st = l2l_error_set(err, L2L_STATUS_IO, "cannot read CSV file %s: %s", path,
                                      strerror(errno));
        close(fd);
        return st;
    }
    l2l_status st = csv_plot_read_stream(p, f, path, want_x, want_y, want_series, want_err, err);
    fclose(f);
    return st;
}

