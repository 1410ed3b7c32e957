/* Backpropagation through an unroll of the learned optimizer: T steps forward, then the
 * gradient of the meta-loss with respect to phi with second derivatives dropped.
 *
 * Kernels (register-blocked over VL-lane vectors of coordinates, as in step.c):
 *   l2l_cell_forward the forward cell (step.c), run again here to recompute a tile.
 *   matT_vec         dh_prev = W_hh^T da (and dx = W_ih^T da): four output rows x NV
 *                    vectors in registers, one pass over the 4H gate rows.
 *   outer_block      dW += sum_t da_t in_t^T: the weight gradients of a layer are
 *                    accumulated over all T steps of the tile (the gate gradients of
 *                    every step are kept in the tile cache) as one product whose
 *                    contraction runs over time and coordinates; 4 x 4 blocks of
 *                    vector accumulators, one horizontal sum per block and tile.
 *
 * Memory plan for an unroll of T steps (chosen so that memory does not grow with
 * T x L x H): the forward pass keeps only what it cannot recompute cheaply, the
 * preprocessed inputs x (T, D, N), the gradients (T+1, N) and the state at the
 * unroll's start (L, H, N). The backward pass then works tile by tile: it
 * recomputes the tile's forward over all T steps into a small per-thread cache
 * (gates (L, T, 4H, TILE), h and c (L, T+1, H, TILE)) and backpropagates through it
 * while it is hot. This costs one extra forward (about a third of the FLOPs) and
 * saves 6 L H T floats per coordinate; tiles are independent, so threads take
 * disjoint tiles and reduce their private dphi at the end. The unroll's forward and
 * the recompute call the same l2l_cell_forward on the same padded tile inputs, so they
 * agree bit for bit. */
#include <math.h>
#include <string.h>

#include "lstm/kernels.h"

#define MAX_CHUNKS 32 /* partial meta-gradients per unroll (load balance vs memory) */

/* Per-thread tile cache, in floats, and where each part starts. Every part is a whole
 * number of TILE rows, so every row is 64-byte aligned. */
typedef struct {
    float *x;     /* (T, D, TILE) the tile's inputs, zero-padded */
    float *gates; /* (L, T, 4H, TILE) activated gates, then gate gradients */
    float *h, *c; /* (L, T+1, H, TILE) */
    float *dh, *dc; /* (L, H, TILE) running adjoints */
    float *acc;     /* (T, TILE) scale x the adjoint of update_t */
    float *ones, *zeros; /* (TILE) constant rows for the bias and padding columns */
} tile_cache;

static size_t tile_cache_layout(int L, int H, int D, int T, float *base, tile_cache *tc)
{
    size_t off = 0;
#define PART(F, COUNT)                             \
    do {                                           \
        if (tc) tc->F = base + off;                \
        off += (size_t)(COUNT);                    \
    } while (0)
    PART(x, (size_t)T * D * TILE);
    PART(gates, (size_t)L * T * 4 * H * TILE);
    PART(h, (size_t)L * (T + 1) * H * TILE);
    PART(c, (size_t)L * (T + 1) * H * TILE);
    PART(dh, (size_t)L * H * TILE);
    PART(dc, (size_t)L * H * TILE);
    PART(acc, (size_t)T * TILE);
    PART(ones, TILE);
    PART(zeros, TILE);
#undef PART
    return off;
}

l2l_status l2l_unroll_create(l2l_unroll *u, const l2l_lstm *net, size_t n, const uint8_t *group,
                             const l2l_unroll_config *cfg, l2l_error *err)
{
    memset(u, 0, sizeof *u);
    const int T = cfg->T;
    if (T < 1) return l2l_error_set(err, L2L_STATUS_ARG, "unroll length must be >= 1, got %d", T);
    if (cfg->objective != L2L_OBJECTIVE_SUM && cfg->objective != L2L_OBJECTIVE_LOG)
        return l2l_error_set(err, L2L_STATUS_ARG, "unknown meta-loss objective %d (expected sum or log)",
                             (int)cfg->objective);
    u->cfg = *cfg;
    u->n = n;
    u->L = net->cfg.layers;
    u->H = net->cfg.hidden;
    u->D = net->n_in;
    u->n_params = net->n_params;
    u->n_threads = max_threads();
    u->ws_floats = tile_cache_layout(u->L, u->H, u->D, T, NULL, NULL);
    size_t hn = (size_t)u->L * u->H * n;
    u->x = l2l_alloc((size_t)T * u->D * n * sizeof(float));
    u->grad = l2l_alloc((size_t)(T + 1) * n * sizeof(float));
    u->h0 = l2l_alloc(hn * sizeof(float));
    u->c0 = l2l_alloc(hn * sizeof(float));
    u->update = l2l_alloc(n * sizeof(float));
    l2l_status st = l2l_tiling_create(&u->tiles, net, n, group, err);
    if (st) {
        l2l_unroll_free(u);
        return st;
    }
    const size_t n_tiles = u->tiles.n_tiles;
    u->n_chunks = n_tiles < MAX_CHUNKS ? (n_tiles > 0 ? n_tiles : 1) : MAX_CHUNKS;
    u->dphi_chunk = l2l_alloc(u->n_chunks * u->n_params * sizeof(float));
    u->ws = l2l_alloc((size_t)u->n_threads * u->ws_floats * sizeof(float));
    u->wlog = l2l_alloc((size_t)T * sizeof(float));
    u->f = l2l_alloc((size_t)(T + 1) * sizeof(double));
    if (cfg->teacher) u->imit = l2l_alloc((size_t)T * n * sizeof(float));
    if (!u->x || !u->grad || !u->h0 || !u->c0 || !u->update || !u->dphi_chunk || !u->ws || !u->wlog || !u->f ||
        (cfg->teacher && !u->imit)) {
        l2l_unroll_free(u);
        return l2l_error_set(err, L2L_STATUS_NOMEM,
                             "cannot allocate the caches of an unroll of %d steps over %zu coordinates",
                             T, n);
    }
    return L2L_STATUS_OK;
}

void l2l_unroll_free(l2l_unroll *u)
{
    l2l_free(u->x);
    l2l_free(u->grad);
    l2l_free(u->h0);
    l2l_free(u->c0);
    l2l_free(u->update);
    l2l_free(u->dphi_chunk);
    l2l_free(u->ws);
    l2l_free(u->wlog);
    l2l_free(u->f);
    l2l_free(u->imit);
    l2l_tiling_free(&u->tiles);
    memset(u, 0, sizeof *u);
}

/* Elementwise backward of one layer at one step on a tile (derivation):
 *   h = o tanh(c):             do = dh tanh(c),  dc += dh o (1 - tanh²(c))
 *   c = f c_prev + i g:        di = dc g, df = dc c_prev, dg = dc i, dc_prev = dc f
 *   i, f, o = s(a):            da = d(.) s (1 - s);   g = tanh(a_g): da_g = dg (1 - g²)
 * gates (4H, TILE) holds the activated gates and is overwritten with da; dh (H, TILE)
 * is consumed; dc is replaced by dc_prev. The linear part, a = W_ih x + W_hh h_prev + b,
 * is matT_vec (dx = W_ih^T da, dh_prev = W_hh^T da) and outer_block (dW_ih += da x^T,
 * dW_hh += da h_prev^T, db_ih += da), the latter deferred to the end of the tile.
 * bias_hh is not trained (see params.c), so its gradient stays zero. */
static void cell_backward(int H, float *gates, const float *c_prev, const float *c_new,
                          const float *dh, float *dc)
{
    for (int k = 0; k < H; k++) {
        float *gi = gates + (size_t)k * TILE, *gf = gates + (size_t)(H + k) * TILE;
        float *gg = gates + (size_t)(2 * H + k) * TILE, *go = gates + (size_t)(3 * H + k) * TILE;
        const float *cp = c_prev + (size_t)k * TILE, *cn = c_new + (size_t)k * TILE;
        const float *dhk = dh + (size_t)k * TILE;
        float *dck = dc + (size_t)k * TILE;
#pragma omp simd
        for (int n = 0; n < TILE; n++) {
            float i = gi[n], f = gf[n], g = gg[n], o = go[n];
            float tc = l2l_tanhf(cn[n]);
            float dct = dck[n] + dhk[n] * o * (1.0f - tc * tc);
            gi[n] = dct * g * i * (1.0f - i);
            gf[n] = dct * cp[n] * f * (1.0f - f);
            gg[n] = dct * i * (1.0f - g * g);
            go[n] = dhk[n] * tc * o * (1.0f - o);
            dck[n] = dct * f;
        }
    }
}

/* out (K, TILE) (+)= W^T da for W (M, K) row-major, da (M, TILE): blocks of four output
 * rows x NV vectors in registers over one pass through the M rows of da. accumulate = 0
 * overwrites out. */
static void matT_vec(int M, int K, const float *W, const float *da, float *out, int accumulate)
{
    int k0 = 0;
    for (; k0 + 4 <= K; k0 += 4) {
        v16f acc[4][NV];
        for (int r = 0; r < 4; r++)
            for (int v = 0; v < NV; v++)
                acc[r][v] = accumulate ? vload(out + (size_t)(k0 + r) * TILE + v * VL) : (v16f){0};
        for (int j = 0; j < M; j++) {
            v16f d[NV];
            for (int v = 0; v < NV; v++) d[v] = vload(da + (size_t)j * TILE + v * VL);
            const float *wj = W + (size_t)j * K + k0;
            for (int r = 0; r < 4; r++) {
                const float wk = wj[r];
                for (int v = 0; v < NV; v++) acc[r][v] += wk * d[v];
            }
        }
        for (int r = 0; r < 4; r++)
            for (int v = 0; v < NV; v++) vstore(out + (size_t)(k0 + r) * TILE + v * VL, acc[r][v]);
    }
    for (; k0 < K; k0++) {
        v16f acc[NV];
        for (int v = 0; v < NV; v++) acc[v] = accumulate ? vload(out + (size_t)k0 * TILE + v * VL) : (v16f){0};
        for (int j = 0; j < M; j++) {
            const float wk = W[(size_t)j * K + k0];
            for (int v = 0; v < NV; v++) acc[v] += wk * vload(da + (size_t)j * TILE + v * VL);
        }
        for (int v = 0; v < NV; v++) vstore(out + (size_t)k0 * TILE + v * VL, acc[v]);
    }
}

/* A row or column of the weight-gradient products: its TILE floats at step 0 and the
 * stride per step; a column also says where its sums go (dst + j dst_ld for row j). */
typedef struct {
    const float *p;
    size_t ts;
    float *dst;
    size_t dst_ld;
} vec_seq;

/* s[r][q] = sum_t sum_n a_r(t)[n] b_q(t)[n] with a_r(t) = a[r].p + t a[r].ts and
 * likewise b: 4 x 4 vector accumulators over the T NV vector pairs, one horizontal
 * sum each at the end. */
static void outer_block(int T, const vec_seq a[4], const vec_seq b[4], float s[4][4])
{
    v16f acc[4][4];
    for (int r = 0; r < 4; r++)
        for (int q = 0; q < 4; q++) acc[r][q] = (v16f){0};
    for (int t = 0; t < T; t++) {
        const float *ap[4], *bp[4];
        for (int r = 0; r < 4; r++) ap[r] = a[r].p + (size_t)t * a[r].ts;
        for (int q = 0; q < 4; q++) bp[q] = b[q].p + (size_t)t * b[q].ts;
        for (int v = 0; v < NV; v++) {
            v16f av[4], bv[4];
            for (int r = 0; r < 4; r++) av[r] = vload(ap[r] + v * VL);
            for (int q = 0; q < 4; q++) bv[q] = vload(bp[q] + v * VL);
            for (int r = 0; r < 4; r++)
                for (int q = 0; q < 4; q++) acc[r][q] += av[r] * bv[q];
        }
    }
    for (int r = 0; r < 4; r++)
        for (int q = 0; q < 4; q++) s[r][q] = vsum(acc[r][q]);
}

/* A group of `count` consecutive columns of TILE floats (column k at p + k TILE, stride
 * ts per step) whose sums go to dst + k + j dst_ld for row j. */
typedef struct {
    const float *p;
    size_t ts;
    int count;
    float *dst;
    size_t dst_ld;
} col_group;

static vec_seq column_at(const col_group *g, int ng, int k, const float *zeros)
{
    for (int i = 0; i < ng; k -= g[i].count, i++)
        if (k < g[i].count) return (vec_seq){g[i].p + (size_t)k * TILE, g[i].ts, g[i].dst + k, g[i].dst_ld};
    return (vec_seq){zeros, 0, NULL, 0};
}

/* dst[j, k] += sum_t sum_n A_j(t)[n] B_k(t)[n] for the M rows A_j(t) = A + j TILE + t a_ts
 * and the columns of the groups, in 4 x 4 blocks (rows and columns past the end read the
 * zero row and their sums go nowhere). */
static void outer_accumulate(int T, int M, const float *A, size_t a_ts, const col_group *g, int ng,
                             const float *zeros)
{
    int K = 0;
    for (int i = 0; i < ng; i++) K += g[i].count;
    const vec_seq zero = {zeros, 0, NULL, 0};
    for (int j0 = 0; j0 < M; j0 += 4) {
        vec_seq a[4];
        for (int r = 0; r < 4; r++) a[r] = j0 + r < M ? (vec_seq){A + (size_t)(j0 + r) * TILE, a_ts, NULL, 0} : zero;
        for (int k0 = 0; k0 < K; k0 += 4) {
            vec_seq b[4];
            for (int q = 0; q < 4; q++) b[q] = column_at(g, ng, k0 + q, zeros);
            float s[4][4];
            outer_block(T, a, b, s);
            for (int r = 0; r < 4 && j0 + r < M; r++)
                for (int q = 0; q < 4 && k0 + q < K; q++) b[q].dst[(size_t)(j0 + r) * b[q].dst_ld] += s[r][q];
        }
    }
}

/* Recompute the tile's forward over the unroll, then backpropagate through it.
 * The adjoint of update_t is grad_scale * sum_{s > t} w_s grad_s (no second
 * derivatives), accumulated backwards; tc->acc keeps scale times it for every step.
 * The gate gradients of every step stay in the tile cache (over the activated gates),
 * so the weight gradients are accumulated once per tile, over all T steps together. */
static void tile_backward(const l2l_lstm_view *w, float scale, const l2l_unroll *u, size_t n0, int nt,
                          const float *weights, float grad_scale, tile_cache *tc,
                          const l2l_lstm_view *dw)
{
    const int L = u->L, H = u->H, D = u->D, T = u->cfg.T;
    const size_t N = u->n;
    const size_t hs = (size_t)H * TILE; /* one state slice */
#define CH(l, t) (tc->h + ((size_t)(l) * (T + 1) + (t)) * hs)
#define CC(l, t) (tc->c + ((size_t)(l) * (T + 1) + (t)) * hs)
#define CG(l, t) (tc->gates + ((size_t)(l) * T + (t)) * 4 * hs)
#define CX(t) (tc->x + (size_t)(t) * D * TILE)
    for (int t = 0; t < T; t++) tile_gather(CX(t), u->x + (size_t)t * D * N + n0, N, D, nt);
    for (int l = 0; l < L; l++) {
        tile_gather(CH(l, 0), u->h0 + (size_t)l * H * N + n0, N, H, nt);
        tile_gather(CC(l, 0), u->c0 + (size_t)l * H * N + n0, N, H, nt);
    }
    for (int t = 0; t < T; t++)
        for (int l = 0; l < L; l++)
            l2l_cell_forward(H, l == 0 ? D : H, w, l, l == 0 ? CX(t) : CH(l - 1, t + 1), CH(l, t),
                             CC(l, t), CG(l, t), CH(l, t + 1), CC(l, t + 1));

    memset(tc->dh, 0, (size_t)L * hs * sizeof(float));
    memset(tc->dc, 0, (size_t)L * hs * sizeof(float));
    float run[TILE] __attribute__((aligned(64))) = {0}; /* the adjoint of update_t; 0 past nt */
    for (int t = T - 1; t >= 0; t--) {
        const float wt = (weights ? weights[t] : 1.0f) * grad_scale;
        const float *g = u->grad + (size_t)(t + 1) * N + n0;
        for (int n = 0; n < nt; n++) run[n] += wt * g[n];
        float *acc = tc->acc + (size_t)t * TILE;
        for (int n = 0; n < TILE; n++) acc[n] = scale * run[n];
        if (u->cfg.teacher) { /* the imitation term acts on update_t alone */
            const float *im = u->imit + (size_t)t * N + n0;
            for (int n = 0; n < nt; n++) acc[n] += scale * im[n];
        }
        /* update = scale (w_out . top + b_out): dh_top += w_out scale dupdate */
        if (L > 0) {
            float *dh_top = tc->dh + (size_t)(L - 1) * hs;
            for (int k = 0; k < H; k++) {
                const float wk = w->w_out[k];
                for (int n = 0; n < TILE; n++) dh_top[(size_t)k * TILE + n] += wk * acc[n];
            }
        }
        for (int l = L - 1; l >= 0; l--) {
            float *da = CG(l, t), *dh = tc->dh + (size_t)l * hs;
            cell_backward(H, da, CC(l, t), CC(l, t + 1), dh, tc->dc + (size_t)l * hs);
            if (l > 0) matT_vec(4 * H, H, w->layer[l].w_ih, da, tc->dh + (size_t)(l - 1) * hs, 1);
            if (t > 0) matT_vec(4 * H, H, w->layer[l].w_hh, da, dh, 0); /* none before step 0 */
        }
    }

    /* dW_ih += sum_t da_t in_t^T, dW_hh += sum_t da_t h_{t-1}^T, db_ih += sum_t da_t. */
    for (int l = 0; l < L; l++) {
        const int in = l == 0 ? D : H;
        const col_group g[3] = {
            {l == 0 ? CX(0) : CH(l - 1, 1), l == 0 ? (size_t)D * TILE : hs, in, dw->layer[l].w_ih, (size_t)in},
            {CH(l, 0), hs, H, dw->layer[l].w_hh, (size_t)H},
            {tc->ones, 0, 1, dw->layer[l].b_ih, 1}};
        outer_accumulate(T, 4 * H, CG(l, 0), 4 * hs, g, 3, tc->zeros);
    }
    /* dw_out += sum_t scale dupdate_t top_t^T, db_out += sum_t scale dupdate_t. */
    const col_group g[2] = {
        {L > 0 ? CH(L - 1, 1) : CX(0), L > 0 ? hs : (size_t)D * TILE, L > 0 ? H : D, dw->w_out, 0},
        {tc->ones, 0, 1, dw->b_out, 0}};
    outer_accumulate(T, 1, tc->acc, TILE, g, 2, tc->zeros);
#undef CH
#undef CC
#undef CG
#undef CX
}

static int all_finite(const float *v, size_t n)
{
    int ok = 1;
    for (size_t i = 0; i < n; i++) ok &= isfinite(v[i]);
    return ok;
}

l2l_status l2l_unroll_forward(l2l_unroll *u, const l2l_lstm *net, l2l_task *task, float *theta,
                              l2l_lstm_state *state, l2l_rng *rng, double *losses, l2l_error *err)
{
    const size_t N = u->n;
    const int T = u->cfg.T, D = u->D;
    const l2l_teacher_fn teacher = u->cfg.teacher;
    L2L_ASSERT(task->n == N && state->n == N && net->n_params == u->n_params && losses);
    L2L_ASSERT(net->cfg.layers == u->L && net->cfg.hidden == u->H);
    const size_t hn = (size_t)u->L * u->H * N;
    memcpy(u->h0, state->h, hn * sizeof(float));
    memcpy(u->c0, state->c, hn * sizeof(float));

    for (int t = 0; t <= T; t++) {
        float *g = u->grad + (size_t)t * N;
        double loss = task->loss_grad(task->ctx, theta, g, rng);
        losses[t] = loss;
        if (!isfinite(loss) || !all_finite(g, N))
            return l2l_error_set(err, L2L_STATUS_NUMERIC,
                                 "the optimizee's %s became non-finite at step %d of the unroll "
                                 "(loss %g); the optimizer diverged",
                                 isfinite(loss) ? "gradient" : "loss", t, loss);
        if (t == T) break;
        float *x = u->x + (size_t)t * D * N;
        /* the optimizer's input and the teacher's, g as it is */
        l2l_preprocess(&net->cfg, N, g, state->v, x);
        if (teacher) teacher(u->cfg.teacher_ctx, g, u->imit + (size_t)t * N);
        l2l_lstm_forward(net, state, x, u->update);
        if (teacher) { /* target_t -> d/d update_t of 1/N ||update_t - target_t||² */
            float *im = u->imit + (size_t)t * N;
            const float k = 2.0f / (float)N;
            for (size_t i = 0; i < N; i++) im[i] = k * (u->update[i] - im[i]);
        }
        for (size_t i = 0; i < N; i++) theta[i] += u->update[i];
    }
    return L2L_STATUS_OK;
}

l2l_status l2l_unroll_backward(l2l_unroll *u, const l2l_lstm *net, float grad_scale,
                               const float *weights, float *dphi, l2l_error *err)
{
    const int T = u->cfg.T;
    L2L_ASSERT(net->n_params == u->n_params && net->cfg.layers == u->L && net->cfg.hidden == u->H);
    /* The tiles are cut into n_chunks fixed runs of consecutive tiles, each accumulating
     * its own dphi, summed in chunk order at the end: the meta-gradient is the same bit
     * for bit whatever the number of threads and whichever thread takes which chunk, so
     * chunks can be handed out dynamically (a core shared with other work slows one
     * thread down, not the whole unroll). */
    const size_t n_tiles = u->tiles.n_tiles, n_chunks = u->n_chunks;
    const int n_threads = u->n_threads;
    memset(u->dphi_chunk, 0, n_chunks * u->n_params * sizeof(float));
#pragma omp parallel num_threads(n_threads) if (n_chunks > 1)
    {
        const int id = thread_id();
        tile_cache tc;
        tile_cache_layout(u->L, u->H, u->D, T, u->ws + (size_t)id * u->ws_floats, &tc);
        for (int n = 0; n < TILE; n++) tc.ones[n] = 1.0f, tc.zeros[n] = 0.0f;
#pragma omp for schedule(dynamic, 1)
        for (size_t chunk = 0; chunk < n_chunks; chunk++) {
            l2l_lstm_view dw[L2L_MAX_GROUPS];
            l2l_lstm_view_of(&net->cfg, u->dphi_chunk + chunk * u->n_params, dw);
            const size_t t0 = chunk * n_tiles / n_chunks, t1 = (chunk + 1) * n_tiles / n_chunks;
            for (size_t tile = t0; tile < t1; tile++) {
                const l2l_tile *tl = &u->tiles.tile[tile];
                tile_backward(&net->w[tl->g], net->cfg.scale, u, tl->n0, tl->nt, weights, grad_scale,
                              &tc, &dw[tl->g]);
            }
        }
    }
    for (size_t chunk = 0; chunk < n_chunks; chunk++) {
        const float *src = u->dphi_chunk + chunk * u->n_params;
        for (size_t i = 0; i < u->n_params; i++) dphi[i] += src[i];
    }
    if (!all_finite(dphi, u->n_params))
        return l2l_error_set(err, L2L_STATUS_NUMERIC, "the meta-gradient became non-finite");
    return L2L_STATUS_OK;
}

l2l_status l2l_unroll_run(l2l_unroll *u, const l2l_lstm *net, l2l_task *task, float *theta,
                          l2l_lstm_state *state, const float *weights, l2l_rng *rng, float *dphi,
                          double *losses, l2l_error *err)
{
    const int T = u->cfg.T;
    if (!losses) losses = u->f;
    l2l_status st = l2l_unroll_forward(u, net, task, theta, state, rng, losses, err);
    if (st) return st;
    if (u->cfg.objective == L2L_OBJECTIVE_LOG) { /* d log f / d theta = grad f / f: weight w_t / f_t */
        for (int t = 1; t <= T; t++) {
            if (!(losses[t] > 0))
                return l2l_error_set(err, L2L_STATUS_ARG, "the log meta-loss needs positive losses, "
                                     "got %g at step %d", losses[t], t);
            u->wlog[t - 1] = (float)((weights ? weights[t - 1] : 1.0) / losses[t]);
        }
        weights = u->wlog;
    }
    return l2l_unroll_backward(u, net, task->grad_scale, weights, dphi, err);
}
