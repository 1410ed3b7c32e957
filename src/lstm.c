/* The learned optimizer's forward step and its backpropagation through an unroll.
 *
 * Coordinatewise: every coordinate of theta runs the same small LSTM stack with its
 * own state, so coordinates are a batch. Layout is feature-major: a state is (H, N)
 * per layer with coordinates contiguous, and kernels work on tiles of TILE
 * coordinates so that coordinates fill SIMD lanes and a tile's working set stays in
 * cache while the weights (about 21 kB for 2 x 20) stay in L1.
 *
 * Cell (PyTorch nn.LSTMCell, gates i, f, g, o):
 *   a = W_ih x + b_ih + W_hh h_prev + b_hh       (4H)
 *   i = s(a_i), f = s(a_f), g = tanh(a_g), o = s(a_o)
 *   c = f c_prev + i g,   h = o tanh(c)
 * Output: update = scale (w_out . h_top + b_out); theta += update.
 *
 * Memory plan for an unroll of T steps (chosen so that memory does not grow with
 * T x L x H): the forward pass keeps only what it cannot recompute cheaply, the
 * preprocessed inputs x (T, D, N), the gradients (T+1, N) and the state at the
 * unroll's start (L, H, N). The backward pass then works tile by tile: it
 * recomputes the tile's forward over all T steps into a small per-thread cache
 * (gates (L, T, 4H, TILE), h and c (L, T+1, H, TILE)) and backpropagates through it
 * while it is hot. This costs one extra forward (about a third of the FLOPs) and
 * saves 6 L H T floats per coordinate; tiles are independent, so threads take
 * disjoint tiles and reduce their private dphi at the end. */
#include <math.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "fastmath.h"
#include "internal.h"

#define TILE 64

static int max_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

static int thread_id(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

void l2l_preprocess(const l2l_lstm_config *cfg, size_t n, const float *g, float *x)
{
    if (cfg->preproc == L2L_PREPROC_NONE) {
        memcpy(x, g, n * sizeof(float));
        return;
    }
    /* Paper, Appendix A: (log|g|/p, sgn g) if |g| >= e^-p, else (-1, e^p g). */
    const float p = cfg->p, inv_p = 1.0f / cfg->p, thresh = expf(-p), ep = expf(p);
    float *x0 = x, *x1 = x + n;
    for (size_t i = 0; i < n; i++) {
        float a = fabsf(g[i]);
        if (a >= thresh) {
            x0[i] = logf(a) * inv_p;
            x1[i] = g[i] > 0 ? 1.0f : -1.0f;
        } else {
            x0[i] = -1.0f;
            x1[i] = ep * g[i];
        }
    }
}

/* One layer on nt coordinates. x (in, ldx), h_prev/c_prev (H, ldp), gates (4H, TILE)
 * receives the activated gates; h, c (H, ld) the new state (may alias h_prev/c_prev:
 * every gate is computed before the state is written). */
static __attribute__((noipa)) void cell_forward(int H, int in, const l2l_lstm_view *w, int l,
                                                   const float *x, size_t ldx, const float *h_prev,
                                                   const float *c_prev, size_t ldp, float *gates,
                                                   float *h, float *c, size_t ld, int nt)
{
    const float *W_ih = w->layer[l].w_ih, *W_hh = w->layer[l].w_hh;
    const float *b_ih = w->layer[l].b_ih, *b_hh = w->layer[l].b_hh;
    for (int j = 0; j < 4 * H; j++) {
        float *a = gates + (size_t)j * TILE;
        const float bias = b_ih[j] + b_hh[j];
        for (int n = 0; n < nt; n++) a[n] = bias;
        for (int k = 0; k < in; k++) {
            const float wk = W_ih[j * in + k];
            const float *xk = x + k * ldx;
            for (int n = 0; n < nt; n++) a[n] += wk * xk[n];
        }
        for (int k = 0; k < H; k++) {
            const float wk = W_hh[j * H + k];
            const float *hk = h_prev + k * ldp;
            for (int n = 0; n < nt; n++) a[n] += wk * hk[n];
        }
    }
    for (int k = 0; k < H; k++) {
        float *gi = gates + (size_t)k * TILE, *gf = gates + (size_t)(H + k) * TILE;
        float *gg = gates + (size_t)(2 * H + k) * TILE, *go = gates + (size_t)(3 * H + k) * TILE;
        const float *cp = c_prev + k * ldp;
        float *ck = c + k * ld, *hk = h + k * ld;
        for (int n = 0; n < nt; n++) {
            float i = l2l_sigmoidf(gi[n]), f = l2l_sigmoidf(gf[n]), g = l2l_tanhf(gg[n]), o = l2l_sigmoidf(go[n]);
            gi[n] = i, gf[n] = f, gg[n] = g, go[n] = o;
            float cn = f * cp[n] + i * g;
            ck[n] = cn;
            hk[n] = o * l2l_tanhf(cn);
        }
    }
}

/* update (nt) = scale (w_out . top + b_out), top (K, ld). */
static void output_forward(const l2l_lstm *net, const float *top, size_t ld, int K, float *update,
                           int nt)
{
    const float scale = net->cfg.scale, b = net->w.b_out[0];
    for (int n = 0; n < nt; n++) update[n] = b;
    for (int k = 0; k < K; k++) {
        const float wk = net->w.w_out[k];
        for (int n = 0; n < nt; n++) update[n] += wk * top[k * ld + n];
    }
    for (int n = 0; n < nt; n++) update[n] *= scale;
}

/* One optimizer step over all N coordinates, state updated in place. */
static void forward_step(const l2l_lstm *net, size_t N, const float *x, float *h, float *c,
                         float *update, float *scratch, int n_scratch)
{
    const int L = net->cfg.layers, H = net->cfg.hidden, D = net->n_in;
    const size_t n_tiles = (N + TILE - 1) / TILE;
#pragma omp parallel for schedule(static) num_threads(n_scratch) if (n_tiles > 1)
    for (size_t tile = 0; tile < n_tiles; tile++) {
        const size_t n0 = tile * TILE;
        const int nt = (int)(N - n0 < TILE ? N - n0 : TILE);
        float *gates = scratch + (size_t)thread_id() * 4 * H * TILE;
        for (int l = 0; l < L; l++) {
            const float *in = l == 0 ? x + n0 : h + (size_t)(l - 1) * H * N + n0;
            float *hl = h + (size_t)l * H * N + n0, *cl = c + (size_t)l * H * N + n0;
            cell_forward(H, l == 0 ? D : H, &net->w, l, in, N, hl, cl, N, gates, hl, cl, N, nt);
        }
        if (L > 0)
            output_forward(net, h + (size_t)(L - 1) * H * N + n0, N, H, update + n0, nt);
        else
            output_forward(net, x + n0, N, D, update + n0, nt);
    }
}

/* ------------------------------------------------------------------ state */

l2l_status l2l_lstm_state_create(l2l_lstm_state *s, const l2l_lstm *net, size_t n, l2l_error *err)
{
    memset(s, 0, sizeof *s);
    const int L = net->cfg.layers, H = net->cfg.hidden;
    s->n = n;
    s->layers = L;
    s->hidden = H;
    s->n_scratch = max_threads();
    size_t hn = (size_t)L * H * n;
    s->h = l2l_alloc(hn * sizeof(float));
    s->c = l2l_alloc(hn * sizeof(float));
    s->x = l2l_alloc((size_t)net->n_in * n * sizeof(float));
    s->scratch = l2l_alloc((size_t)s->n_scratch * 4 * (H > 0 ? H : 1) * TILE * sizeof(float));
    if (!s->h || !s->c || !s->x || !s->scratch) {
        l2l_lstm_state_free(s);
        return l2l_error_set(err, L2L_ERR_NOMEM, "cannot allocate the LSTM state for %zu coordinates", n);
    }
    return L2L_OK;
}

void l2l_lstm_state_zero(l2l_lstm_state *s)
{
    size_t hn = (size_t)s->layers * s->hidden * s->n;
    memset(s->h, 0, hn * sizeof(float));
    memset(s->c, 0, hn * sizeof(float));
}

void l2l_lstm_state_free(l2l_lstm_state *s)
{
    l2l_free(s->h);
    l2l_free(s->c);
    l2l_free(s->x);
    l2l_free(s->scratch);
    memset(s, 0, sizeof *s);
}

void l2l_lstm_step(const l2l_lstm *net, l2l_lstm_state *state, const float *grad, float *update)
{
    L2L_ASSERT(state->layers == net->cfg.layers && state->hidden == net->cfg.hidden);
    l2l_preprocess(&net->cfg, state->n, grad, state->x);
    forward_step(net, state->n, state->x, state->h, state->c, update, state->scratch,
                 state->n_scratch);
}

/* ----------------------------------------------------------------- unroll */

struct l2l_unroll {
    size_t n;
    int T, L, H, D;
    size_t n_params;
    float *x;      /* (T, D, N) preprocessed inputs */
    float *grad;   /* (T+1, N) gradients at theta_0..theta_T */
    float *h0, *c0; /* (L, H, N) state at the unroll's start */
    float *update; /* (N) */
    int n_threads;
    float *dphi_thread; /* (n_threads, n_params) */
    float *ws;          /* (n_threads, ws_floats) per-thread tile caches */
    size_t ws_floats;
};

/* Per-thread tile cache, in floats, and where each part starts. */
typedef struct {
    float *gates; /* (L, T, 4H, TILE) activated gates, then gate gradients */
    float *h, *c; /* (L, T+1, H, TILE) */
    float *dh, *dc; /* (L, H, TILE) running adjoints */
    float *dgate;   /* (4H, TILE) */
    float *dh_new;  /* (H, TILE) */
    float *acc;     /* (TILE) adjoint of the update */
} tile_cache;

static size_t tile_cache_layout(int L, int H, int T, float *base, tile_cache *tc)
{
    size_t off = 0;
#define PART(F, COUNT)                             \
    do {                                           \
        if (tc) tc->F = base + off;                \
        off += (size_t)(COUNT);                    \
    } while (0)
    PART(gates, (size_t)L * T * 4 * H * TILE);
    PART(h, (size_t)L * (T + 1) * H * TILE);
    PART(c, (size_t)L * (T + 1) * H * TILE);
    PART(dh, (size_t)L * H * TILE);
    PART(dc, (size_t)L * H * TILE);
    PART(dgate, (size_t)4 * H * TILE);
    PART(dh_new, (size_t)H * TILE);
    PART(acc, TILE);
#undef PART
    return off;
}

l2l_status l2l_unroll_create(l2l_unroll **out, const l2l_lstm *net, size_t n, int T, l2l_error *err)
{
    *out = NULL;
    if (T < 1) return l2l_error_set(err, L2L_ERR_ARG, "unroll length must be >= 1, got %d", T);
    l2l_unroll *u = l2l_alloc(sizeof *u);
    if (!u) return l2l_error_set(err, L2L_ERR_NOMEM, "cannot allocate an unroll");
    u->n = n;
    u->T = T;
    u->L = net->cfg.layers;
    u->H = net->cfg.hidden;
    u->D = net->n_in;
    u->n_params = net->n_params;
    u->n_threads = max_threads();
    u->ws_floats = tile_cache_layout(u->L, u->H, T, NULL, NULL);
    size_t hn = (size_t)u->L * u->H * n;
    u->x = l2l_alloc((size_t)T * u->D * n * sizeof(float));
    u->grad = l2l_alloc((size_t)(T + 1) * n * sizeof(float));
    u->h0 = l2l_alloc(hn * sizeof(float));
    u->c0 = l2l_alloc(hn * sizeof(float));
    u->update = l2l_alloc(n * sizeof(float));
    u->dphi_thread = l2l_alloc((size_t)u->n_threads * u->n_params * sizeof(float));
    u->ws = l2l_alloc((size_t)u->n_threads * u->ws_floats * sizeof(float));
    if (!u->x || !u->grad || !u->h0 || !u->c0 || !u->update || !u->dphi_thread || !u->ws) {
        l2l_unroll_free(u);
        return l2l_error_set(err, L2L_ERR_NOMEM,
                             "cannot allocate the caches of an unroll of %d steps over %zu coordinates",
                             T, n);
    }
    *out = u;
    return L2L_OK;
}

void l2l_unroll_free(l2l_unroll *u)
{
    if (!u) return;
    l2l_free(u->x);
    l2l_free(u->grad);
    l2l_free(u->h0);
    l2l_free(u->c0);
    l2l_free(u->update);
    l2l_free(u->dphi_thread);
    l2l_free(u->ws);
    l2l_free(u);
}

/* Backward of one layer at one step on a tile (derivation):
 *   h = o tanh(c):             do = dh tanh(c),  dc += dh o (1 - tanh²(c))
 *   c = f c_prev + i g:        di = dc g, df = dc c_prev, dg = dc i, dc_prev = dc f
 *   i, f, o = s(a):            da = d(.) s (1 - s);   g = tanh(a_g): da_g = dg (1 - g²)
 *   a = W_ih x + W_hh h_prev + b:  dW_ih += da x^T, dW_hh += da h_prev^T, db_ih += da,
 *                                  dx = W_ih^T da,  dh_prev = W_hh^T da.
 * dh (H, TILE) is consumed and replaced by dh_prev; dc likewise by dc_prev; dx, when
 * non-NULL, is accumulated (+=). bias_hh is not trained (see lstm_params.c), so its
 * gradient stays zero. */
static void cell_backward(int H, int in, const l2l_lstm_view *w, const l2l_lstm_view *dw, int l,
                          const float *gates, const float *c_prev, const float *c_new,
                          const float *x, size_t ldx, const float *h_prev, float *dh, float *dc,
                          float *dgate, float *dx, int nt)
{
    for (int k = 0; k < H; k++) {
        const float *gi = gates + (size_t)k * TILE, *gf = gates + (size_t)(H + k) * TILE;
        const float *gg = gates + (size_t)(2 * H + k) * TILE, *go = gates + (size_t)(3 * H + k) * TILE;
        const float *cp = c_prev + (size_t)k * TILE, *cn = c_new + (size_t)k * TILE;
        float *dhk = dh + (size_t)k * TILE, *dck = dc + (size_t)k * TILE;
        float *di = dgate + (size_t)k * TILE, *df = dgate + (size_t)(H + k) * TILE;
        float *dg = dgate + (size_t)(2 * H + k) * TILE, *dof = dgate + (size_t)(3 * H + k) * TILE;
        for (int n = 0; n < nt; n++) {
            float i = gi[n], f = gf[n], g = gg[n], o = go[n];
            float tc = l2l_tanhf(cn[n]);
            float dct = dck[n] + dhk[n] * o * (1.0f - tc * tc);
            di[n] = dct * g * i * (1.0f - i);
            df[n] = dct * cp[n] * f * (1.0f - f);
            dg[n] = dct * i * (1.0f - g * g);
            dof[n] = dhk[n] * tc * o * (1.0f - o);
            dck[n] = dct * f;
        }
    }
    const float *W_ih = w->layer[l].w_ih, *W_hh = w->layer[l].w_hh;
    float *dW_ih = dw->layer[l].w_ih, *dW_hh = dw->layer[l].w_hh, *db = dw->layer[l].b_ih;
    for (int j = 0; j < 4 * H; j++) {
        const float *da = dgate + (size_t)j * TILE;
        float s = 0;
#pragma omp simd reduction(+ : s)
        for (int n = 0; n < nt; n++) s += da[n];
        db[j] += s;
        for (int k = 0; k < in; k++) {
            const float *xk = x + k * ldx;
            float d = 0;
#pragma omp simd reduction(+ : d)
            for (int n = 0; n < nt; n++) d += da[n] * xk[n];
            dW_ih[j * in + k] += d;
        }
        for (int k = 0; k < H; k++) {
            const float *hk = h_prev + (size_t)k * TILE;
            float d = 0;
#pragma omp simd reduction(+ : d)
            for (int n = 0; n < nt; n++) d += da[n] * hk[n];
            dW_hh[j * H + k] += d;
        }
    }
    for (int k = 0; k < H; k++) {
        float *dhk = dh + (size_t)k * TILE;
        for (int n = 0; n < nt; n++) dhk[n] = 0;
    }
    for (int j = 0; j < 4 * H; j++) {
        const float *da = dgate + (size_t)j * TILE;
        for (int k = 0; k < H; k++) {
            const float wk = W_hh[j * H + k];
            float *dhk = dh + (size_t)k * TILE;
            for (int n = 0; n < nt; n++) dhk[n] += wk * da[n];
        }
        if (dx)
            for (int k = 0; k < in; k++) {
                const float wk = W_ih[j * in + k];
                float *dxk = dx + k * ldx;
                for (int n = 0; n < nt; n++) dxk[n] += wk * da[n];
            }
    }
}

/* Recompute the tile's forward over the unroll, then backpropagate through it.
 * The adjoint of update_t is grad_scale * sum_{s > t} w_s grad_s (no second
 * derivatives), accumulated backwards in acc. */
static void tile_backward(const l2l_lstm *net, const l2l_unroll *u, size_t n0, int nt,
                          const float *weights, float grad_scale, tile_cache *tc,
                          const l2l_lstm_view *dw)
{
    const int L = u->L, H = u->H, D = u->D, T = u->T;
    const size_t N = u->n;
    const size_t hs = (size_t)H * TILE; /* one state slice */
#define CH(l, t) (tc->h + ((size_t)(l) * (T + 1) + (t)) * hs)
#define CC(l, t) (tc->c + ((size_t)(l) * (T + 1) + (t)) * hs)
#define CG(l, t) (tc->gates + ((size_t)(l) * T + (t)) * 4 * hs)
    for (int l = 0; l < L; l++)
        for (int k = 0; k < H; k++) {
            memcpy(CH(l, 0) + (size_t)k * TILE, u->h0 + ((size_t)l * H + k) * N + n0, nt * sizeof(float));
            memcpy(CC(l, 0) + (size_t)k * TILE, u->c0 + ((size_t)l * H + k) * N + n0, nt * sizeof(float));
        }
    for (int t = 0; t < T; t++)
        for (int l = 0; l < L; l++) {
            const float *in = l == 0 ? u->x + (size_t)t * D * N + n0 : CH(l - 1, t + 1);
            size_t ldin = l == 0 ? N : TILE;
            cell_forward(H, l == 0 ? D : H, &net->w, l, in, ldin, CH(l, t), CC(l, t), TILE,
                         CG(l, t), CH(l, t + 1), CC(l, t + 1), TILE, nt);
        }

    memset(tc->dh, 0, (size_t)L * hs * sizeof(float));
    memset(tc->dc, 0, (size_t)L * hs * sizeof(float));
    memset(tc->acc, 0, TILE * sizeof(float));
    const float scale = net->cfg.scale;
    float *acc = tc->acc;
    for (int t = T - 1; t >= 0; t--) {
        const float wt = (weights ? weights[t] : 1.0f) * grad_scale;
        const float *g = u->grad + (size_t)(t + 1) * N + n0;
        for (int n = 0; n < nt; n++) acc[n] += wt * g[n];

        /* update = scale (w_out . top + b_out) */
        const float *top = L > 0 ? CH(L - 1, t + 1) : u->x + (size_t)t * D * N + n0;
        const size_t ldtop = L > 0 ? TILE : N;
        const int K = L > 0 ? H : D;
        float sb = 0;
        for (int n = 0; n < nt; n++) sb += acc[n];
        dw->b_out[0] += scale * sb;
        for (int k = 0; k < K; k++) {
            float d = 0;
#pragma omp simd reduction(+ : d)
            for (int n = 0; n < nt; n++) d += acc[n] * top[k * ldtop + n];
            dw->w_out[k] += scale * d;
        }
        if (L > 0) {
            float *dh_top = tc->dh + (size_t)(L - 1) * hs;
            for (int k = 0; k < H; k++) {
                const float wk = scale * net->w.w_out[k];
                for (int n = 0; n < nt; n++) dh_top[k * TILE + n] += wk * acc[n];
            }
        }
        for (int l = L - 1; l >= 0; l--) {
            const float *in = l == 0 ? u->x + (size_t)t * D * N + n0 : CH(l - 1, t + 1);
            size_t ldin = l == 0 ? N : TILE;
            float *dx = l == 0 ? NULL : tc->dh + (size_t)(l - 1) * hs;
            cell_backward(H, l == 0 ? D : H, &net->w, dw, l, CG(l, t), CC(l, t), CC(l, t + 1), in,
                          ldin, CH(l, t), tc->dh + (size_t)l * hs, tc->dc + (size_t)l * hs,
                          tc->dgate, dx, nt);
        }
    }
#undef CH
#undef CC
#undef CG
}

static int all_finite(const float *v, size_t n)
{
    int ok = 1;
    for (size_t i = 0; i < n; i++) ok &= isfinite(v[i]);
    return ok;
}

l2l_status l2l_unroll_run(l2l_unroll *u, const l2l_lstm *net, l2l_task *task, float *theta,
                          l2l_lstm_state *state, const float *weights, l2l_rng *rng, float *dphi,
                          double *losses, l2l_error *err)
{
    const size_t N = u->n;
    const int T = u->T, D = u->D;
    L2L_ASSERT(task->n == N && state->n == N && net->n_params == u->n_params);
    L2L_ASSERT(net->cfg.layers == u->L && net->cfg.hidden == u->H);
    const size_t hn = (size_t)u->L * u->H * N;
    memcpy(u->h0, state->h, hn * sizeof(float));
    memcpy(u->c0, state->c, hn * sizeof(float));

    for (int t = 0; t <= T; t++) {
        float *g = u->grad + (size_t)t * N;
        double loss = task->loss_grad(task->ctx, theta, g, rng);
        if (losses) losses[t] = loss;
        if (!isfinite(loss) || !all_finite(g, N))
            return l2l_error_set(err, L2L_ERR_NUMERIC,
                                 "the optimizee's %s became non-finite at step %d of the unroll "
                                 "(loss %g); the optimizer diverged",
                                 isfinite(loss) ? "gradient" : "loss", t, loss);
        if (t == T) break;
        float *x = u->x + (size_t)t * D * N;
        l2l_preprocess(&net->cfg, N, g, x);
        forward_step(net, N, x, state->h, state->c, u->update, state->scratch, state->n_scratch);
        for (size_t i = 0; i < N; i++) theta[i] += u->update[i];
    }

    const size_t n_tiles = (N + TILE - 1) / TILE;
    const float grad_scale = task->grad_scale;
    const int n_threads = u->n_threads;
    memset(u->dphi_thread, 0, (size_t)n_threads * u->n_params * sizeof(float));
#pragma omp parallel num_threads(n_threads) if (n_tiles > 1)
    {
        const int id = thread_id();
        tile_cache tc;
        tile_cache_layout(u->L, u->H, T, u->ws + (size_t)id * u->ws_floats, &tc);
        l2l_lstm_view dw;
        l2l_lstm_view_of(&net->cfg, u->dphi_thread + (size_t)id * u->n_params, &dw);
#pragma omp for schedule(static)
        for (size_t tile = 0; tile < n_tiles; tile++) {
            const size_t n0 = tile * TILE;
            const int nt = (int)(N - n0 < TILE ? N - n0 : TILE);
            tile_backward(net, u, n0, nt, weights, grad_scale, &tc, &dw);
        }
    }
    for (int id = 0; id < n_threads; id++) {
        const float *src = u->dphi_thread + (size_t)id * u->n_params;
        for (size_t i = 0; i < u->n_params; i++) dphi[i] += src[i];
    }
    if (!all_finite(dphi, u->n_params))
        return l2l_error_set(err, L2L_ERR_NUMERIC, "the meta-gradient became non-finite");
    return L2L_OK;
}
