/* Figures: line plots drawn with PLplot's cairo drivers (pngcairo, svgcairo).
 *
 * PLplot keeps global state and, on a fatal error, calls exit(). Both are fenced off:
 *  - every call draws on a fresh stream (plmkstrm), always closes it (plend1) and makes
 *    the caller's stream current again;
 *  - PLplot's non-fatal aborts are routed into a per-stream buffer with plsError, so they
 *    are reported through l2l_error and not printed;
 *  - PLplot's fatal path (plexit) calls our exit handler first; the handler longjmps back
 *    into l2l_plot_lines, which closes the stream and returns L2L_STATUS_IO. Only PLplot
 *    calls run between the setjmp and a possible longjmp, and everything l2l allocated
 *    lives outside that region, so the jump leaks nothing of ours.
 *  - the output file is created by us first (l2l_atomic_open), so PLplot never meets an
 *    unwritable path (it would retry eleven times, then plexit), and the driver is looked
 *    up in PLplot's device list before plsdev (an unknown device makes PLplot prompt on
 *    stdin/stdout).
 *
 * Coordinates: y values are drawn in axis units A(y) = log10(y) on a log axis, y otherwise;
 * PLplot's "l" box option then labels the log axis 10^k. */
#include <math.h>
#include <setjmp.h>
#include <string.h>
#include <strings.h>

#include <plplot/plplot.h>

#include "io/atomic.h"
#include "util/util.h"
#include "plot.h"

#define PLOT_WIDTH 800   /* pixels for PNG, points for SVG */
#define PLOT_HEIGHT 600
#define PLOT_SPARSE 16   /* a series with at most this many points gets markers and error bars */

/* cmap0 layout: background, ink, grid, then one opaque and one translucent entry per colour. */
enum { COL_BG = 0, COL_INK = 1, COL_GRID = 2, COL_SERIES = 3 };

/* Okabe-Ito colours (distinguishable with the common colour-vision deficiencies) and grey. */
static const unsigned char series_rgb[][3] = {
    {0x00, 0x72, 0xB2}, {0xD5, 0x5E, 0x00}, {0x00, 0x9E, 0x73}, {0xCC, 0x79, 0xA7},
    {0xE6, 0x9F, 0x00}, {0x56, 0xB4, 0xE9}, {0x55, 0x55, 0x55},
};
#define N_COLOURS ((int)(sizeof series_rgb / sizeof series_rgb[0]))
#define BAND_ALPHA 0.2

/* PLplot line styles: 1 solid, 2 short dashes, 3 long dashes, 4 long dash short gap.
 * With 7 colours and 4 styles the first 28 series differ in both. */
static const PLINT line_styles[] = {1, 2, 3, 4};
#define N_STYLES ((int)(sizeof line_styles / sizeof line_styles[0]))

/* Markers as UTF-8: ● ■ ▲ ◆ ▼ (U+25CF, U+25A0, U+25B2, U+25C6, U+25BC). */
static const char *const markers[] = {
    "\xe2\x97\x8f", "\xe2\x96\xa0", "\xe2\x96\xb2", "\xe2\x97\x86", "\xe2\x96\xbc",
};
#define N_MARKERS ((int)(sizeof markers / sizeof markers[0]))

/* State shared with the PLplot exit handler. It lives in l2l_plot_lines' frame, outside
 * the function that calls setjmp, so its fields keep their values across the longjmp. */
typedef struct {
    jmp_buf jump;
    int jumped;          /* plexit was called */
    char exit_msg[512];  /* what plexit said */
    PLINT abort_code;    /* set to 1 by plabort (through plsError) */
    char abort_msg[1024];
    int no_driver;       /* the device is not in PLplot's list */
    int have_stream;     /* our stream exists (and is PLplot's current one) */
} plot_guard;

/* PLplot's exit hook receives only the message, so the call in progress is found here.
 * Set only while l2l_plot_lines holds its stream; thread-local so that a PLplot user on
 * another thread cannot land in this thread's jmp_buf. */
static _Thread_local plot_guard *active_guard;

static int plot_exit_handler(const char *msg)
{
    plot_guard *g = active_guard;
    if (g) {
        g->jumped = 1;
        snprintf(g->exit_msg, sizeof g->exit_msg, "%s", msg ? msg : "");
        longjmp(g->jump, 1);
    }
    return 1;
}

/* Everything the drawing needs, computed before PLplot is touched. */
typedef struct {
    const char *device;   /* "pngcairo" or "svgcairo" */
    const char *tmp_path; /* where PLplot writes */
    const char *title, *xlabel, *ylabel; /* '#'-escaped for PLplot */
    int log_y;
    const l2l_series *s;
    int n_series;
    double xmin, xmax, ymin, ymax; /* the window, y in axis units */
    double ytick;                  /* major tick interval on y; 0 lets PLplot choose */
    PLINT nysub;                   /* minor ticks per major on y; 0 lets PLplot choose */
    int decade_labels;             /* log axis too long for PLplot's: label 10^k ourselves */
    PLINT legend_position;
    double *wx, *wy; /* (2 max_n + 2) workspace for lines and band polygons */
    double *wlo, *whi; /* (max_n) workspace for error bars */
    /* legend, nlegend entries */
    int nlegend;
    PLINT *lg_opt, *lg_text_col, *lg_line_col, *lg_line_sty, *lg_sym_col, *lg_sym_num;
    PLFLT *lg_line_w, *lg_sym_scale;
    const char **lg_text, **lg_sym;
} plot_job;

static int point_ok(const l2l_series *s, int i, int log_y)
{
    return isfinite(s->x[i]) && isfinite(s->y[i]) && (!log_y || s->y[i] > 0);
}

static int err_ok(const l2l_series *s, int i) { return s->err && isfinite(s->err[i]) && s->err[i] >= 0; }

static double axis_y(double y, int log_y) { return log_y ? log10(y) : y; }

/* Lower end of an error band or bar in axis units; on a log axis a non-positive y - err
 * is drawn down to (just below) the window's bottom edge, where clipping cuts it. */
static double axis_lo(const plot_job *job, double y, double e)
{
    double lo = y - e;
    if (job->log_y) return lo > 0 ? log10(lo) : job->ymin - 1;
    return lo;
}

static int series_drawn(const l2l_series *s, int log_y)
{
    for (int i = 0; i < s->n; i++)
        if (point_ok(s, i, log_y)) return 1;
    return 0;
}

static int is_sparse(const l2l_series *s) { return s->n <= PLOT_SPARSE; }

/* PLplot reads '#' as its text escape; "##" prints one '#'. NULL becomes "". */
static char *plot_escape(const char *text)
{
    size_t n = 0;
    if (!text) text = "";
    for (const char *p = text; *p; p++) n += *p == '#' ? 2 : 1;
    char *out = malloc(n + 1);
    if (!out) return NULL;
    char *q = out;
    for (const char *p = text; *p; p++) {
        *q++ = *p;
        if (*p == '#') *q++ = '#';
    }
    *q = '\0';
    return out;
}

/* ------------------------------------------------------------- window */

/* The window: x and y extents of every drawable point and error end, y snapped outward to
 * whole decades on a log axis and padded by 5% on a linear one. Returns 0 if there is no
 * drawable point or the extents overflow. */
static int plot_window(plot_job *job)
{
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    int any_sparse = 0;
    for (int k = 0; k < job->n_series; k++) {
        const l2l_series *s = &job->s[k];
        int drawn = 0;
        for (int i = 0; i < s->n; i++) {
            if (!point_ok(s, i, job->log_y)) continue;
            drawn = 1;
            double lo = axis_y(s->y[i], job->log_y), hi = lo;
            if (err_ok(s, i)) {
                double up = s->y[i] + s->err[i], down = s->y[i] - s->err[i];
                if (isfinite(up)) hi = axis_y(up, job->log_y);
                if (!job->log_y || down > 0) lo = axis_y(down, job->log_y);
            }
            x0 = fmin(x0, s->x[i]), x1 = fmax(x1, s->x[i]);
            y0 = fmin(y0, lo), y1 = fmax(y1, hi);
        }
        if (drawn && is_sparse(s)) any_sparse = 1;
    }
    if (!(x0 <= x1)) return 0;

    if (x1 > x0) {
        double pad = any_sparse ? 0.04 * (x1 - x0) : 0; /* room for the end markers */
        x0 -= pad, x1 += pad;
    } else {
        double pad = x0 != 0 ? 0.1 * fabs(x0) : 1;
        x0 -= pad, x1 += pad;
    }
    if (job->log_y) {
        y0 = floor(y0), y1 = ceil(y1);
        if (y1 <= y0) y0 -= 1, y1 += 1;
        /* One labelled tick per decade with minor ticks at 2..9 (PLplot's log axis), unless
         * that crowds the axis; then a labelled tick every k-th decade and a minor tick at
         * each decade between, drawn as a linear axis in log10 units and labelled by us. */
        double decades = y1 - y0;
        if (decades <= 8) {
            job->ytick = 1;
            job->nysub = 0;
        } else {
            double k = ceil(decades / 8);
            y0 = floor(y0 / k) * k, y1 = ceil(y1 / k) * k;
            job->ytick = k;
            job->nysub = (PLINT)k;
            job->decade_labels = 1;
        }
    } else {
        if (y1 > y0) {
            double pad = 0.05 * (y1 - y0);
            y0 -= pad, y1 += pad;
        } else {
            double pad = y0 != 0 ? 0.1 * fabs(y0) : 1;
            y0 -= pad, y1 += pad;
        }
        job->ytick = 0;
        job->nysub = 0;
    }
    job->xmin = x0, job->xmax = x1, job->ymin = y0, job->ymax = y1;
    /* Values near DBL_MAX can overflow the padding or the span. */
    return isfinite(x1 - x0) && isfinite(y1 - y0) && x1 > x0 && y1 > y0;
}

/* Puts the legend in the corner of the plot that covers the fewest data points, preferring
 * top right, then bottom left (where descending loss curves leave room). */
static PLINT plot_legend_corner(const plot_job *job)
{
    static const PLINT corners[4] = {
        PL_POSITION_RIGHT | PL_POSITION_TOP, PL_POSITION_LEFT | PL_POSITION_BOTTOM,
        PL_POSITION_RIGHT | PL_POSITION_BOTTOM, PL_POSITION_LEFT | PL_POSITION_TOP,
    };
    size_t longest = 0;
    for (int k = 0; k < job->nlegend; k++) {
        size_t len = strlen(job->lg_text[k]);
        if (len > longest) longest = len;
    }
    /* Rough legend size as a fraction of the plot: line sample + text, one row per entry. */
    double w = fmin(0.9, 0.14 + 0.013 * (double)longest);
    double h = fmin(0.9, 0.02 + 0.062 * job->nlegend);
    long count[4] = {0, 0, 0, 0};
    for (int k = 0; k < job->n_series; k++) {
        const l2l_series *s = &job->s[k];
        for (int i = 0; i < s->n; i++) {
            if (!point_ok(s, i, job->log_y)) continue;
            double u = (s->x[i] - job->xmin) / (job->xmax - job->xmin);
            double v = (axis_y(s->y[i], job->log_y) - job->ymin) / (job->ymax - job->ymin);
            int right = u >= 1 - w, left = u <= w, top = v >= 1 - h, bottom = v <= h;
            count[0] += right && top;
            count[1] += left && bottom;
            count[2] += right && bottom;
            count[3] += left && top;
        }
    }
    int best = 0;
    for (int c = 1; c < 4; c++)
        if (count[c] < count[best]) best = c;
    return corners[best] | PL_POSITION_INSIDE | PL_POSITION_VIEWPORT;
}

/* ------------------------------------------------------------ drawing */

/* Calls into PLplot only. Runs between setjmp and a possible longjmp: it allocates
 * nothing and keeps no state that matters after a jump. */
static void plot_draw(const plot_job *job)
{
    pladv(0);
    plvsta();
    plwind(job->xmin, job->xmax, job->ymin, job->ymax);
    const char *yopt = job->decade_labels ? "bcst" : job->log_y ? "bcnstlv" : "bcnstv";

    /* Light grid under everything. */
    plcol0(COL_GRID);
    pllsty(1);
    plwidth(1.0);
    plbox("g", 0, 0, "g", job->ytick, job->nysub);

    /* Error bands, translucent, under the lines. */
    for (int k = 0; k < job->n_series; k++) {
        const l2l_series *s = &job->s[k];
        if (!s->err || is_sparse(s)) continue;
        plcol0(COL_SERIES + N_COLOURS + k % N_COLOURS);
        int i = 0;
        while (i < s->n) {
            if (!point_ok(s, i, job->log_y) || !err_ok(s, i)) {
                i++;
                continue;
            }
            int a = i;
            while (i < s->n && point_ok(s, i, job->log_y) && err_ok(s, i)) i++;
            int m = i - a;
            if (m < 2) continue;
            /* Polygon: upper edge left to right, lower edge right to left. */
            for (int j = 0; j < m; j++) {
                double y = s->y[a + j], e = s->err[a + j], up = y + e;
                job->wx[j] = s->x[a + j];
                job->wy[j] = isfinite(up) ? axis_y(up, job->log_y) : job->ymax + 1;
                job->wx[2 * m - 1 - j] = s->x[a + j];
                job->wy[2 * m - 1 - j] = axis_lo(job, y, e);
            }
            plfill(2 * m, job->wx, job->wy);
        }
    }

    /* Lines, broken at undrawable points; markers on sparse series and on isolated points. */
    for (int k = 0; k < job->n_series; k++) {
        const l2l_series *s = &job->s[k];
        const char *marker = markers[k % N_MARKERS];
        plcol0(COL_SERIES + k % N_COLOURS);
        int i = 0;
        while (i < s->n) {
            if (!point_ok(s, i, job->log_y)) {
                i++;
                continue;
            }
            int m = 0;
            while (i < s->n && point_ok(s, i, job->log_y)) {
                job->wx[m] = s->x[i];
                job->wy[m] = axis_y(s->y[i], job->log_y);
                m++, i++;
            }
            pllsty(line_styles[k % N_STYLES]);
            plwidth(2.0);
            if (m >= 2) plline(m, job->wx, job->wy);
            pllsty(1);
            if (m == 1 || is_sparse(s)) plstring(m, job->wx, job->wy, marker);
        }
        if (s->err && is_sparse(s)) {
            int m = 0;
            for (i = 0; i < s->n; i++) {
                if (!point_ok(s, i, job->log_y) || !err_ok(s, i)) continue;
                double up = s->y[i] + s->err[i];
                job->wx[m] = s->x[i];
                job->whi[m] = isfinite(up) ? axis_y(up, job->log_y) : job->ymax + 1;
                job->wlo[m] = axis_lo(job, s->y[i], s->err[i]);
                m++;
            }
            pllsty(1);
            plwidth(1.5);
            if (m > 0) plerry(m, job->wx, job->wlo, job->whi);
        }
    }

    /* Axes, labels and legend on top. */
    plcol0(COL_INK);
    pllsty(1);
    plwidth(1.0);
    plbox("bcnst", 0, 0, yopt, job->ytick, job->nysub);
    if (job->decade_labels) {
        /* 10^k at every major tick, placed as PLplot places its own "v" labels. */
        double span = job->ymax - job->ymin;
        for (double v = job->ymin; v <= job->ymax + 0.5 * job->ytick; v += job->ytick) {
            char label[32];
            snprintf(label, sizeof label, "10#u%d#d", (int)lround(v));
            plmtex("lv", 0.7, (v - job->ymin) / span, 1.0, label);
        }
    }
    pllab(job->xlabel, job->ylabel, job->title);
    if (job->nlegend > 0) {
        PLFLT lw, lh;
        pllegend(&lw, &lh, PL_LEGEND_BACKGROUND | PL_LEGEND_BOUNDING_BOX, job->legend_position,
                 0.02, 0.02, 0.08, COL_BG, COL_INK, 1, 0, 0, job->nlegend, job->lg_opt, 1.0, 0.9,
                 2.0, 0.0, job->lg_text_col, job->lg_text, NULL, NULL, NULL, NULL,
                 job->lg_line_col, job->lg_line_sty, job->lg_line_w, job->lg_sym_col,
                 job->lg_sym_scale, job->lg_sym_num, job->lg_sym);
    }
}

/* Sets the palette: white background, black ink, grey grid, series colours opaque, then
 * the same colours translucent for the bands. */
static void plot_palette(void)
{
    plscmap0n(COL_SERIES + 2 * N_COLOURS);
    plscol0a(COL_BG, 255, 255, 255, 1.0);
    plscol0a(COL_INK, 0, 0, 0, 1.0);
    plscol0a(COL_GRID, 0xDD, 0xDD, 0xDD, 1.0);
    for (int c = 0; c < N_COLOURS; c++) {
        plscol0a(COL_SERIES + c, series_rgb[c][0], series_rgb[c][1], series_rgb[c][2], 1.0);
        plscol0a(COL_SERIES + N_COLOURS + c, series_rgb[c][0], series_rgb[c][1],
                 series_rgb[c][2], BAND_ALPHA);
    }
}

static int driver_available(const char *device)
{
    enum { MAX_DEVS = 128 };
    const char *menus[MAX_DEVS], *names[MAX_DEVS];
    const char **p_menus = menus, **p_names = names;
    int n = MAX_DEVS;
    plgDevs(&p_menus, &p_names, &n);
    for (int i = 0; i < n && i < MAX_DEVS; i++)
        if (names[i] && strcmp(names[i], device) == 0) return 1;
    return 0;
}

/* Runs PLplot on a stream of its own. Returns 0 on success, -1 with g describing why.
 * plmkstrm itself may plexit, so the guard is armed before it; after a jump only a stream
 * that was made is ended, never the caller's. */
static int plot_run(plot_guard *g, const plot_job *job)
{
    PLINT old_stream = 0;
    plgstrm(&old_stream);
    active_guard = g;
    plsexit(plot_exit_handler);
    if (setjmp(g->jump) == 0) {
        PLINT stream = -1;
        plmkstrm(&stream);
        g->have_stream = 1;
        plsError(&g->abort_code, g->abort_msg);
        if (driver_available(job->device)) {
            plsdev(job->device);
            plsfnam(job->tmp_path);
            plspage(0, 0, PLOT_WIDTH, PLOT_HEIGHT, 0, 0);
            plspause(0);
            plot_palette();
            plinit();
            plot_draw(job);
        } else {
            g->no_driver = 1;
        }
        plend1(); /* writes the page and closes the file */
    } else if (g->have_stream && setjmp(g->jump) == 0) {
        /* plexit while drawing: release our stream; a second plexit lands just below. */
        plend1();
    }
    plsexit(NULL);
    active_guard = NULL;
    plsstrm(old_stream);
    return g->jumped || g->abort_code || g->no_driver ? -1 : 0;
}

/* ------------------------------------------------------- output file */

/* A complete file ends with the format's trailer: PNG's IEND chunk, SVG's closing tag. */
static int output_complete(const char *path, int is_png, long *size)
{
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    char tail[64] = {0};
    int ok = 0;
    if (fseek(f, 0, SEEK_END) == 0) {
        *size = ftell(f);
        long n = *size < (long)sizeof tail ? *size : (long)sizeof tail;
        if (n > 0 && fseek(f, -n, SEEK_END) == 0 && fread(tail, 1, (size_t)n, f) == (size_t)n) {
            if (is_png) {
                static const char iend[8] = {'I', 'E', 'N', 'D', '\xAE', '\x42', '\x60', '\x82'};
                ok = n >= 8 && memcmp(tail + n - 8, iend, 8) == 0;
            } else {
                tail[sizeof tail - 1] = '\0';
                ok = strstr(tail, "</svg>") != NULL;
            }
        }
    }
    fclose(f);
    return ok;
}

/* ------------------------------------------------------------- entry */

l2l_status l2l_plot_lines(const char *path, const char *title, const char *xlabel,
                          const char *ylabel, int log_y, const l2l_series *s, int n_series,
                          l2l_error *err)
{
    L2L_ASSERT(path != NULL);
    L2L_ASSERT(n_series <= 0 || s != NULL);
    const char *ext = strrchr(path, '.');
    const char *slash = strrchr(path, '/');
    if (ext && slash && ext < slash) ext = NULL;
    int is_png = ext && strcasecmp(ext, ".png") == 0;
    int is_svg = ext && strcasecmp(ext, ".svg") == 0;
    if (!is_png && !is_svg)
        return l2l_error_set(err, L2L_STATUS_ARG,
                             "figure %s: expected a file name ending in .png or .svg, found %s",
                             path, ext ? ext : "no extension");
    if (n_series < 1)
        return l2l_error_set(err, L2L_STATUS_ARG, "figure %s: expected at least one series, got %d",
                             path, n_series);
    int max_n = 0;
    for (int k = 0; k < n_series; k++) {
        L2L_ASSERT(s[k].n >= 0);
        L2L_ASSERT(s[k].n == 0 || (s[k].x != NULL && s[k].y != NULL));
        if (s[k].n > max_n) max_n = s[k].n;
    }

    plot_job job = {0};
    job.device = is_png ? "pngcairo" : "svgcairo";
    job.log_y = log_y != 0;
    job.s = s;
    job.n_series = n_series;
    if (!plot_window(&job))
        return l2l_error_set(err, L2L_STATUS_NUMERIC,
                             "figure %s: no point to draw; expected finite x and y%s within "
                             "+-1e307, found none",
                             path, job.log_y ? " with y > 0 (the y axis is logarithmic)" : "");

    l2l_status st = L2L_STATUS_OK;
    char *e_title = NULL, *e_xlabel = NULL, *e_ylabel = NULL;
    char **e_labels = NULL;
    l2l_atomic out = {0};
    job.wx = malloc((2 * (size_t)max_n + 2) * sizeof *job.wx);
    job.wy = malloc((2 * (size_t)max_n + 2) * sizeof *job.wy);
    job.wlo = malloc(((size_t)max_n + 1) * sizeof *job.wlo);
    job.whi = malloc(((size_t)max_n + 1) * sizeof *job.whi);
    e_title = plot_escape(title);
    e_xlabel = plot_escape(xlabel);
    e_ylabel = plot_escape(ylabel);
    e_labels = calloc((size_t)n_series, sizeof *e_labels);
    job.lg_opt = calloc((size_t)n_series, 6 * sizeof(PLINT));
    job.lg_line_w = calloc((size_t)n_series, 2 * sizeof(PLFLT));
    job.lg_text = calloc((size_t)n_series, 2 * sizeof(const char *));
    if (!job.wx || !job.wy || !job.wlo || !job.whi || !e_title || !e_xlabel ||
        !e_ylabel || !e_labels || !job.lg_opt || !job.lg_line_w || !job.lg_text) {
        st = l2l_error_set(err, L2L_STATUS_NOMEM, "figure %s: out of memory", path);
        goto done;
    }
    job.title = e_title, job.xlabel = e_xlabel, job.ylabel = e_ylabel;
    job.lg_text_col = job.lg_opt + n_series;
    job.lg_line_col = job.lg_opt + 2 * n_series;
    job.lg_line_sty = job.lg_opt + 3 * n_series;
    job.lg_sym_col = job.lg_opt + 4 * n_series;
    job.lg_sym_num = job.lg_opt + 5 * n_series;
    job.lg_sym_scale = job.lg_line_w + n_series;
    job.lg_sym = job.lg_text + n_series;
    for (int k = 0; k < n_series; k++) {
        if (!s[k].label || !s[k].label[0] || !series_drawn(&s[k], job.log_y)) continue;
        if (!(e_labels[k] = plot_escape(s[k].label))) {
            st = l2l_error_set(err, L2L_STATUS_NOMEM, "figure %s: out of memory", path);
            goto done;
        }
        int j = job.nlegend++;
        job.lg_opt[j] = PL_LEGEND_LINE | (is_sparse(&s[k]) ? PL_LEGEND_SYMBOL : 0);
        job.lg_text_col[j] = COL_INK;
        job.lg_text[j] = e_labels[k];
        job.lg_line_col[j] = COL_SERIES + k % N_COLOURS;
        job.lg_line_sty[j] = line_styles[k % N_STYLES];
        job.lg_line_w[j] = 2.0;
        job.lg_sym_col[j] = COL_SERIES + k % N_COLOURS;
        job.lg_sym_num[j] = 1;
        job.lg_sym_scale[j] = 1.0;
        job.lg_sym[j] = markers[k % N_MARKERS];
    }
    job.legend_position = plot_legend_corner(&job);

    /* The temporary file is created here, so an unwritable directory is reported by us
     * and PLplot only ever reopens a file that exists (by name: our stream is closed). */
    if ((st = l2l_atomic_open(&out, path, err))) goto done;
    fclose(out.f);
    out.f = NULL;
    job.tmp_path = out.tmp;

    plot_guard guard = {0};
    if (plot_run(&guard, &job) != 0) {
        if (guard.no_driver)
            st = l2l_error_set(err, L2L_STATUS_IO,
                               "figure %s: PLplot has no %s device; install the cairo driver "
                               "(Debian/Ubuntu: apt-get install plplot-driver-cairo)",
                               path, job.device);
        else {
            const char *why = guard.jumped ? guard.exit_msg : guard.abort_msg;
            st = l2l_error_set(err, L2L_STATUS_IO, "figure %s: PLplot failed: %s%s", path, why,
                               strstr(why, "driver") ? " (Debian/Ubuntu: apt-get install "
                                                       "plplot-driver-cairo)" : "");
        }
        goto done;
    }
    long size = 0;
    if (!output_complete(out.tmp, is_png, &size)) {
        st = l2l_error_set(err, L2L_STATUS_IO,
                           "figure %s: the %s driver wrote %s (%ld bytes); expected a complete "
                           "%s file; check free disk space",
                           path, job.device, size > 0 ? "an incomplete file" : "nothing", size,
                           is_png ? "PNG" : "SVG");
        goto done;
    }
    st = l2l_atomic_commit(&out, err); /* fsync, rename over path */

done:
    if (out.tmp) l2l_atomic_abort(&out); /* failed before the commit: remove it */
    free(job.wx);
    free(job.wy);
    free(job.wlo);
    free(job.whi);
    free(e_title);
    free(e_xlabel);
    free(e_ylabel);
    if (e_labels)
        for (int k = 0; k < n_series; k++) free(e_labels[k]);
    free(e_labels);
    free(job.lg_opt);
    free(job.lg_line_w);
    free(job.lg_text);
    return st;
}
