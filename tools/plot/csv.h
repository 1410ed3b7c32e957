/* The CSV reader of `l2l plot` and `l2l pair` (tools/cmd_plot.c, cmd_pair.c), in the
 * figures library so that the tests and the fuzz harness (tests/fuzz/fuzz_csv.c) link it
 * without the tool.
 *
 * The CSV has a header line naming its columns and one record per line, fields separated
 * by commas, no quoting (the files l2l writes never need it; a quoted field is rejected
 * rather than misread). Rows are grouped into curves by the value of the series column, in
 * order of first appearance; each curve's points are drawn in file order. Defaults fit
 * the files l2l writes:
 *   compare's curves.csv   optimizer,step,mean,std   series optimizer, x step, y mean
 *   a sweep                series,x,mean,sem          series series, x x, y mean
 * A file without a series column (and no --series) is one curve. */
#ifndef L2L_TOOLS_CSV_H
#define L2L_TOOLS_CSV_H

#include <stdio.h>

#include "l2l.h"

#define CSV_MAX_SERIES 32 /* compare's files hold up to 27 optimizers (cmd_compare.c's MAX_CURVES) */

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
    curve_buf curve[CSV_MAX_SERIES];
    int n_curves;
} csv_plot;

/* Reads the CSV at path into p->curve, resolving the columns named by want_* (NULL: the
 * defaults above). Refuses anything but a regular file without blocking on it. On failure
 * err names the file and line; either way free p with csv_plot_free. */
l2l_status csv_plot_read(csv_plot *p, const char *path, const char *want_x, const char *want_y,
                         const char *want_series, const char *want_err, l2l_error *err);
/* The same from an open stream (not closed here); path only names it in messages. */
l2l_status csv_plot_read_stream(csv_plot *p, FILE *f, const char *path, const char *want_x,
                                const char *want_y, const char *want_series,
                                const char *want_err, l2l_error *err);
void csv_plot_free(csv_plot *p);

#endif
