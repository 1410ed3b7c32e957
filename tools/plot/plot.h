/* Figures: line plots of loss curves and sweeps, drawn with PLplot's cairo drivers.
 * Internal to the library and the tools; not part of the public API. */
#ifndef L2L_PLOT_H
#define L2L_PLOT_H

#include "l2l.h"

/* One curve: n points (x[i], y[i]). err, when not NULL, holds n half-widths drawn as a
 * shaded ±err band (dense series) or as error bars (sparse series, <= 16 points).
 * Points with a non-finite x or y, or (on a log axis) y <= 0, are skipped and break the
 * line there; a non-finite or negative err[i] draws no band or bar at that point. */
typedef struct {
    const char *label; /* legend text; NULL, "" or no drawable point leaves it out */
    int n;
    const double *x;   /* (n) */
    const double *y;   /* (n) */
    const double *err; /* (n) or NULL */
} l2l_series;

/*
 * Draws n_series curves on one set of axes and writes the figure to path, about 800x600:
 * a PNG (pngcairo) when path ends in ".png", an SVG (svgcairo) when it ends in ".svg";
 * any other extension is L2L_STATUS_ARG. Each series gets its own colour and line style
 * and an entry in the legend box. log_y draws y on a log10 axis labelled in decades, as
 * the paper's loss curves are. title, xlabel and ylabel may be NULL.
 *
 * The file is written to a temporary name in the same directory and renamed, so an
 * existing figure is replaced whole or not at all. Errors: L2L_STATUS_ARG (extension,
 * n_series < 1), L2L_STATUS_NUMERIC (no point can be drawn), L2L_STATUS_IO (the directory is
 * not writable, the cairo driver is not installed, PLplot failed, the output is empty),
 * L2L_STATUS_NOMEM.
 *
 * PLplot keeps global state: this function draws on a stream of its own and restores the
 * caller's current stream, but it is not safe to call from two threads at once, nor while
 * another thread uses PLplot.
 */
l2l_status l2l_plot_lines(const char *path, const char *title, const char *xlabel,
                          const char *ylabel, int log_y, const l2l_series *s, int n_series,
                          l2l_error *err);

#endif
