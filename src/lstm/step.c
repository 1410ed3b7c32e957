/* The learned optimizer's inference: the preprocessing of the gradient, the forward
 * cell on a tile, one step over all N coordinates, and the recurrent state.
 *
 * l2l_cell_forward computes one hidden unit at a time: its four gate rows for the whole
 * tile (4 x NV vector accumulators) stay in registers over the in + H inputs, then the
 * activations and the state update are applied to them at once (fused; no
 * pre-activation goes to memory). */
#include <math.h>
#include <string.h>

#include "lstm/kernels.h"

/* A step over fewer tiles (about a millisecond of work) runs on one thread: a parallel
 * region costs microseconds on idle cores but a scheduler time slice when a core is
 * shared, and the step's work would not pay for it. */
#define MIN_PARALLEL_TILES 64

void l2l_preprocess(const l2l_lstm_config *cfg, size_t n, const float *g, float *v, float *x)
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
    if (cfg->preproc != L2L_PREPROC_LOGSIGN_RMS) return;
    /* The decay and epsilon of l2l.h; v + eps² stays a normal float. */
    const float d = L2L_RMS_DECAY, eps2 = L2L_RMS_EPS * L2L_RMS_EPS;
    float *x2 = x + 2 * n;
    for (size_t i = 0; i < n; i++) {
        v[i] = d * v[i] + (1.0f - d) * g[i] * g[i];
        x2[i] = g[i] / sqrtf(v[i] + eps2);
    }
}

/* The gate activations and the state update of hidden unit u on one tile, from its
 * four pre-activation rows a (4, TILE): i, f, o = s(.), g = tanh(.),
 * c = f c_prev + i g, h = o tanh(c). Writes the activated gates to gates (rows u,
 * H+u, 2H+u, 3H+u of (4H, TILE)) when gates is not NULL. */
static inline void cell_activate(int H, int u, float *a, const float *c_prev, float *gates,
                                 float *h, float *c)
{
    float *ai = a, *af = a + TILE, *ag = a + 2 * TILE, *ao = a + 3 * TILE;
    const float *cp = c_prev + (size_t)u * TILE;
    float *ck = c + (size_t)u * TILE, *hk = h + (size_t)u * TILE;
    /* Without a gate cache the activated gates overwrite a (same lane, read first), so
     * one loop serves both uses and the arithmetic cannot differ between them. */
    float *gi = gates ? gates + (size_t)u * TILE : ai;
    float *gf = gates ? gates + (size_t)(H + u) * TILE : af;
    float *gg = gates ? gates + (size_t)(2 * H + u) * TILE : ag;
    float *go = gates ? gates + (size_t)(3 * H + u) * TILE : ao;
#pragma omp simd
    for (int n = 0; n < TILE; n++) {
        float i = l2l_sigmoidf(ai[n]), f = l2l_sigmoidf(af[n]), g = l2l_tanhf(ag[n]),
              o = l2l_sigmoidf(ao[n]);
        gi[n] = i, gf[n] = f, gg[n] = g, go[n] = o;
        float cn = f * cp[n] + i * g;
        ck[n] = cn;
        hk[n] = o * l2l_tanhf(cn);
    }
}

/* acc[q] += sum_k w[q][k] rows_k for the K input rows (K, TILE) of one block (x, then
 * h_prev): each input vector is loaded once for the four gate rows. Always inlined, so
 * that acc stays in registers. */
static inline __attribute__((always_inline)) void gate_rows_add(v16f acc[4][NV], const float *const w[4],
                                                                const float *rows, int K)
{
    for (int k = 0; k < K; k++) {
        v16f xv[NV];
        for (int v = 0; v < NV; v++) xv[v] = vload(rows + (size_t)k * TILE + v * VL);
        for (int q = 0; q < 4; q++) {
            const float wk = w[q][k];
            for (int v = 0; v < NV; v++) acc[q][v] += wk * xv[v];
        }
    }
}

/* One layer on one tile (kernels.h). For each hidden unit u the 4 x NV accumulators of
 * its gate rows stay in registers while the in + H inputs stream past:
 *   a_q = b_ih[qH+u] + b_hh[qH+u] + sum_k W_ih[qH+u, k] x_k + sum_k W_hh[qH+u, k] h_prev_k.
 * One activation loop serves a recompute (gates kept) and an inference step (gates not
 * kept), so both give the same h and c bit for bit. */
__attribute__((noipa)) void l2l_cell_forward(int H, int in, const l2l_lstm_view *w, int l,
                                             const float *x, const float *h_prev,
                                             const float *c_prev, float *gates, float *h, float *c)
{
    const float *W_ih = w->layer[l].w_ih, *W_hh = w->layer[l].w_hh;
    const float *b_ih = w->layer[l].b_ih, *b_hh = w->layer[l].b_hh;
    float a[4 * TILE] __attribute__((aligned(64)));
    for (int u = 0; u < H; u++) {
        v16f acc[4][NV];
        for (int q = 0; q < 4; q++) {
            const v16f b = vsplat(b_ih[q * H + u] + b_hh[q * H + u]);
            for (int v = 0; v < NV; v++) acc[q][v] = b;
        }
        const float *wi[4], *wh[4];
        for (int q = 0; q < 4; q++) wi[q] = W_ih + (size_t)(q * H + u) * in, wh[q] = W_hh + (size_t)(q * H + u) * H;
        gate_rows_add(acc, wi, x, in);
        gate_rows_add(acc, wh, h_prev, H);
        for (int q = 0; q < 4; q++)
            for (int v = 0; v < NV; v++) vstore(a + q * TILE + v * VL, acc[q][v]);
        cell_activate(H, u, a, c_prev, gates, h, c);
    }
}

/* update (TILE) = scale (w_out . top + b_out), top (K, TILE). */
static inline void output_forward(const l2l_lstm_view *w, float scale, const float *top, int K,
                                  float *update)
{
    const float b = w->b_out[0];
    v16f acc[NV];
    for (int v = 0; v < NV; v++) acc[v] = vsplat(b);
    for (int k = 0; k < K; k++) {
        const float wk = w->w_out[k];
        for (int v = 0; v < NV; v++) acc[v] += wk * vload(top + (size_t)k * TILE + v * VL);
    }
    for (int v = 0; v < NV; v++) vstore(update + v * VL, scale * acc[v]);
}

/* Per-thread scratch of l2l_lstm_forward, in floats: x (D, TILE), then per layer h_prev,
 * c, h (H, TILE), then the update (TILE). */
static size_t step_scratch_floats(int L, int H, int D)
{
    return (size_t)D * TILE + (size_t)3 * L * H * TILE + TILE;
}

/* One step over all N coordinates (kernels.h), tile by tile, each tile with its group's
 * LSTM. */
void l2l_lstm_forward(const l2l_lstm *net, l2l_lstm_state *s, const float *x, float *update)
{
    const size_t N = s->n;
    float *h = s->h, *c = s->c, *scratch = s->scratch;
    const int n_scratch = s->n_scratch;
    const int L = net->cfg.layers, H = net->cfg.hidden, D = net->n_in;
    const l2l_tile *tiles = s->tiles.tile;
    const size_t n_tiles = s->tiles.n_tiles;
    L2L_ASSERT(s->tiles.n == N);
    const size_t hs = (size_t)H * TILE, per_thread = step_scratch_floats(L, H, D);
    /* Tiles are independent and each is computed the same way whichever thread takes
     * it, so any schedule gives the same numbers bit for bit. A static one gives each
     * thread one contiguous run of coordinates, which the prefetchers stream through:
     * inference on 2 threads went from 1.58x to 1.89x one thread at N = 10^6 (11.8 ->
     * 14.0 M coordinate-steps/s; a dynamic schedule of 4 tiles interleaved the threads'
     * strided gathers). */
#pragma omp parallel for schedule(static) num_threads(n_scratch) if (n_tiles >= MIN_PARALLEL_TILES)
    for (size_t tile = 0; tile < n_tiles; tile++) {
        const size_t n0 = tiles[tile].n0;
        const int nt = tiles[tile].nt;
        const l2l_lstm_view *w = &net->w[tiles[tile].g];
        float *xt = scratch + (size_t)thread_id() * per_thread;
        float *ht = xt + (size_t)D * TILE, *upd = ht + 3 * L * hs;
        tile_gather(xt, x + n0, N, D, nt);
        const float *in = xt;
        for (int l = 0; l < L; l++) {
            float *hp = ht + 3 * l * hs, *cl = hp + hs, *hn = cl + hs;
            tile_gather(hp, h + (size_t)l * H * N + n0, N, H, nt);
            tile_gather(cl, c + (size_t)l * H * N + n0, N, H, nt);
            l2l_cell_forward(H, l == 0 ? D : H, w, l, in, hp, cl, NULL, hn, cl);
            tile_scatter(h + (size_t)l * H * N + n0, N, hn, H, nt);
            tile_scatter(c + (size_t)l * H * N + n0, N, cl, H, nt);
            in = hn;
        }
        output_forward(w, net->cfg.scale, in, L > 0 ? H : D, upd);
        memcpy(update + n0, upd, (size_t)nt * sizeof(float));
    }
}

/* ------------------------------------------------------------------ state */

l2l_status l2l_lstm_state_create(l2l_lstm_state *s, const l2l_lstm *net, size_t n,
                                 const uint8_t *group, l2l_error *err)
{
    memset(s, 0, sizeof *s);
    const int L = net->cfg.layers, H = net->cfg.hidden;
    s->capacity = n;
    s->layers = L;
    s->hidden = H;
    s->n_scratch = max_threads();
    size_t hn = (size_t)L * H * n;
    s->h = l2l_alloc(hn * sizeof(float));
    s->c = l2l_alloc(hn * sizeof(float));
    s->v = l2l_alloc(n * sizeof(float));
    s->x = l2l_alloc((size_t)net->n_in * n * sizeof(float));
    s->scratch = l2l_alloc((size_t)s->n_scratch * step_scratch_floats(L, H, net->n_in) * sizeof(float));
    if (!s->h || !s->c || !s->v || !s->x || !s->scratch) {
        l2l_lstm_state_free(s);
        return l2l_error_set(err, L2L_STATUS_NOMEM, "cannot allocate the LSTM state for %zu coordinates", n);
    }
    l2l_status st = l2l_lstm_state_bind(s, net, n, group, err);
    if (st) l2l_lstm_state_free(s);
    return st;
}

l2l_status l2l_lstm_state_bind(l2l_lstm_state *s, const l2l_lstm *net, size_t n, const uint8_t *group,
                               l2l_error *err)
{
    L2L_ASSERT(n <= s->capacity && s->layers == net->cfg.layers && s->hidden == net->cfg.hidden);
    l2l_tiling_free(&s->tiles);
    s->n = n;
    return l2l_tiling_create(&s->tiles, net, n, group, err);
}

void l2l_lstm_state_zero(l2l_lstm_state *s)
{
    size_t hn = (size_t)s->layers * s->hidden * s->n;
    memset(s->h, 0, hn * sizeof(float));
    memset(s->c, 0, hn * sizeof(float));
    memset(s->v, 0, s->n * sizeof(float));
}

void l2l_lstm_state_free(l2l_lstm_state *s)
{
    l2l_free(s->h);
    l2l_free(s->c);
    l2l_free(s->v);
    l2l_free(s->x);
    l2l_free(s->scratch);
    l2l_tiling_free(&s->tiles);
    memset(s, 0, sizeof *s);
}

void l2l_lstm_step(const l2l_lstm *net, l2l_lstm_state *state, const float *grad, float *update)
{
    L2L_ASSERT(state->layers == net->cfg.layers && state->hidden == net->cfg.hidden);
    l2l_preprocess(&net->cfg, state->n, grad, state->v, state->x);
    l2l_lstm_forward(net, state, state->x, update);
}
