/* l2l plot: draws the series of a CSV file (read by tools/plot/csv.c) as a PNG or SVG figure
 * with l2l_plot_lines. */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "plot/csv.h"
#include "plot/plot.h"

static int has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n > k && strcmp(s + n - k, suffix) == 0;
}

#define STRING_OF(x) #x
#define NUMBER_TEXT(x) STRING_OF(x) /* a macro's value as a string literal */

static const opt_command plot_cmd = {
    "plot",
    "usage: l2l plot CSV --out FIG.png|FIG.svg [options]\n"
    "Draws the rows of a CSV file (header line, comma-separated, no quoted fields) as\n"
    "lines, one per value of the series column (at most " NUMBER_TEXT(CSV_MAX_SERIES)
    "), in order of appearance.\n",
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
    csv_plot p;
    l2l_status st = csv_plot_read(&p, args[0], want_x, want_y, want_series, want_err, &err);
    if (!st) {
        l2l_series s[CSV_MAX_SERIES];
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
