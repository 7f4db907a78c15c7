/* Features of a lowered program for the learned cost model, and the analytical estimate that
 * stands in for the model before it has trials. Everything is read from the schedule IR as the
 * lowering sees it (blocks per level, the register tile, the loop order, packs, prefetches,
 * the parallel loop) and from the CPU's caches, never from the schedule text, so two texts that
 * build one program have one feature vector. Sizes enter as log2(1 + x): the model splits on
 * thresholds, and a tile of 8 against one of 16 matters as much as 256 against 512. */
#include "codegen/cg_int.h"

#include <math.h>
#include <string.h>

enum {
    F_LOG_M, F_LOG_N, F_LOG_K, F_LOG_BATCH, F_LOG_FLOPS,
    F_LEV_I, F_LEV_J, F_LEV_K,
    F_BI1, F_BI2, F_BI3, F_BJ1, F_BJ2, F_BJ3, F_BK1, F_BK2, F_BK3,
    F_OUTER_AXIS, F_INNER_AXIS, F_FIRST_K_DEPTH,
    F_TILE_ROWS, F_TILE_COLS, F_ACC_VECS, F_REG_PRESSURE, F_VEC_WIDTH, F_VEC_AXIS,
    F_CW, F_CW_DEPTH, F_FAST_TILE, F_FULL_TILES,
    F_BPF_L1, F_BPF_L2, F_BPF_L3, F_BPF_MEM,
    F_PAR, F_PAR_ITERS, F_PAR_BALANCE, F_THREADS, F_PAR_DEPTH,
    F_PACK_A, F_PACK_A_DEPTH, F_PACK_A_PANEL, F_PACK_B, F_PACK_B_DEPTH, F_PACK_B_PANEL,
    F_PREPACK, F_PREPACK_KB,
    F_NPF, F_PF_A, F_PF_B, F_PF_DEPTH,
    F_UNROLL_PROD, F_UNROLL_MAX, F_UNROLL_K,
    F_FUSE, F_EPI, F_BETA, F_NT, F_BRAW, F_BMM,
    F_NLOOPS,
    F_WBYTES, F_WIDEN_PANEL,
    F_COUNT
};

_Static_assert(F_COUNT == MCT_CG_NFEATURES, "MCT_CG_NFEATURES must match the feature table");

static const char *const names[F_COUNT] = {
    "log_m", "log_n", "log_k", "log_batch", "log_flops",
    "levels_i", "levels_j", "levels_k",
    "block_i1", "block_i2", "block_i3", "block_j1", "block_j2", "block_j3",
    "block_k1", "block_k2", "block_k3",
    "outermost_axis", "innermost_axis", "first_k_depth",
    "tile_rows", "tile_cols", "acc_vectors", "reg_pressure", "vec_width", "vec_axis",
    "cache_write", "cache_write_depth", "fast_tile", "full_tile_fraction",
    "bytes_per_flop_l1", "bytes_per_flop_l2", "bytes_per_flop_l3", "bytes_per_flop_mem",
    "parallel", "parallel_iters", "parallel_balance", "threads", "parallel_depth",
    "pack_a", "pack_a_depth", "pack_a_panel", "pack_b", "pack_b_depth", "pack_b_panel",
    "prepack_b", "prepack_kchunk",
    "prefetches", "prefetch_a_dist", "prefetch_b_dist", "prefetch_depth",
    "unroll_product", "unroll_max", "unroll_k",
    "fused_epilogue", "epilogue", "beta", "layout_nt", "b_raw", "bmm",
    "loops",
    "weight_bytes", "widen_panel",
};

const char *mct_cg_feature_name(int i)
{
    return i >= 0 && i < F_COUNT ? names[i] : "?";
}

static float lg(double x)
{
    return (float)log2(1.0 + (x > 0 ? x : 0));
}

static int64_t dim(const mct_workload *w, int ax)
{
    return ax == AX_B ? w->batch : ax == AX_I ? w->M : ax == AX_J ? w->N : w->K;
}

/* Extent of axis ax inside the body of the loop at position p (-1: the whole nest): the step of
 * the innermost loop of ax at or outside p, else the whole axis (as lower.c's region()). */
static int64_t block_at(const mct_sched *s, int ax, int p)
{
    int best = -1;
    for (int q = 0; q <= p && q < s->nloops; q++)
        if (s->loops[s->order[q]].axis == ax)
            best = s->order[q];
    if (best < 0)
        return dim(&s->w, ax);
    int64_t st = cg_step(s, best), d = dim(&s->w, ax);
    return st < d ? st : d;
}

/* Bytes that enter a cache per FLOP when it holds the largest block the nest iterates over that
 * fits: A, B and C blocks (C read and written) per 2*bi*bj*bk FLOPs; when the whole problem fits,
 * each operand once (the compulsory traffic, bytes_per_flop_mem). The blocks are those of the
 * outermost loop body whose working set fits, as the reuse a loop order can give. */
/* Bytes one weight (an element of B) costs as stored: 4 for f32, 2 bf16, 1 int8, half a byte
 * for 4-bit, plus its share of the scales (one f32 per output channel, or per group). */
static double weight_bytes(const mct_workload *w)
{
    if (!MCT_WL_QUANT(w))
        return 4.0;
    double b = (double)mct_rt_q_plain_bytes(w->wfmt, w->wgroup, (long)w->N, (long)w->K);
    return b / ((double)w->N * (double)w->K);
}

static float bytes_per_flop(const mct_sched *s, double cap)
{
    const double wb = weight_bytes(&s->w);
    double bi = 1, bj = 1, bk = 1;
    for (int p = -1; p < s->nloops; p++) {
        double i = (double)block_at(s, AX_I, p), j = (double)block_at(s, AX_J, p),
               k = (double)block_at(s, AX_K, p);
        if (4.0 * (i * k + i * j) + wb * k * j <= cap) {
            if (p < 0)  /* the whole problem stays: only the compulsory traffic enters */
                return (float)((4.0 * (i * k + i * j) + wb * k * j) / (2.0 * i * j * k));
            bi = i, bj = j, bk = k;
            break;
        }
    }
    return (float)((4.0 * (bi * bk + 2.0 * bi * bj) + wb * bk * bj) / (2.0 * bi * bj * bk));
}

/* The block of ax inside the loop at position p when a loop of ax is at or outside p, else 0
 * (the whole axis, a size known at run time only). */
static int64_t const_block_at(const mct_sched *s, int ax, int p)
{
    for (int q = 0; q <= p && q < s->nloops; q++)
        if (s->loops[s->order[q]].axis == ax)
            return block_at(s, ax, p);
    return 0;
}

/* Whether the cache_write region is a register tile the lowering emits as straight-line code
 * (lower.c's fast path): every spatial loop inside it vectorized or fully unrolled, a k loop
 * inside only as the vectorized innermost one, constant extents of at most 512 elements, vector
 * blocks a multiple of the lanes, no pack inside. A close reading of the same rules, kept here
 * so the lowering stays as it is; the model learns what it misses. */
static int fast_tile(const mct_sched *s, int vlen, int64_t *ei, int64_t *ej)
{
    *ei = *ej = 0;
    if (s->cw < 0)
        return 0;
    int pc = cg_pos(s, s->cw), n = s->nloops, q = pc + 1;
    for (int o = 0; o < 2; o++)
        if (s->pack[o].on && s->pack[o].at >= 0 && cg_pos(s, s->pack[o].at) > pc)
            return 0;
    while (q < n && s->loops[s->order[q]].axis == AX_K && !s->loops[s->order[q]].vec)
        q++;
    int64_t kvec = 0;
    for (; q < n; q++) {
        int id = s->order[q];
        const cg_loop *l = &s->loops[id];
        if (l->axis == AX_K) {
            if (!l->vec || q != n - 1)
                return 0;
            kvec = cg_extent(s, id);
            continue;
        }
        if (l->vec)
            continue;
        int64_t st = cg_step(s, id), ext = cg_extent(s, id);
        if (!ext || l->unroll < (ext + st - 1) / st)
            return 0;
    }
    *ei = const_block_at(s, AX_I, pc);
    *ej = const_block_at(s, AX_J, pc);
    if (!*ei || !*ej || *ei * *ej > 512)
        return 0;
    if (vlen > 1) {
        if (kvec && kvec % vlen)
            return 0;
        for (int id = 0; id < n; id++)
            if (s->loops[id].vec && s->loops[id].axis == AX_J && *ej % vlen)
                return 0;
    }
    return 1;
}

static float depth(const mct_sched *s, int id)
{
    return id < 0 ? 0.0f : (float)(cg_pos(s, id) + 1) / (float)s->nloops;
}

int mct_cg_features(const mct_sched *s, const mct_target *t, const mct_cpu *cpu, float *out,
                    int n)
{
    if (!s || !out || n < F_COUNT)
        return MCT_EINVAL;
    float f[F_COUNT];
    memset(f, 0, sizeof f);
    const mct_workload *w = &s->w;
    int vlen = t && t->vlen > 0 ? t->vlen : 1;
    int nregs = t && t->nregs > 0 ? t->nregs : 16;
    int threads = t && t->threads > 0 ? t->threads : cpu && cpu->cores > 0 ? cpu->cores : 1;

    f[F_LOG_M] = lg((double)w->M);
    f[F_LOG_N] = lg((double)w->N);
    f[F_LOG_K] = lg((double)w->K);
    f[F_LOG_BATCH] = lg((double)w->batch);
    f[F_LOG_FLOPS] = lg(mct_wl_flops(w));
    f[F_LEV_I] = (float)s->ax[AX_I].nlev;
    f[F_LEV_J] = (float)s->ax[AX_J].nlev;
    f[F_LEV_K] = (float)s->ax[AX_K].nlev;
    for (int a = 0; a < 3; a++)
        for (int l = 1; l < CG_MAXLV; l++)
            f[F_BI1 + a * 3 + l - 1] = l < s->ax[AX_I + a].nlev ? lg((double)s->ax[AX_I + a].f[l])
                                                                : 0.0f;
    int inner = s->order[s->nloops - 1];
    f[F_INNER_AXIS] = (float)s->loops[inner].axis;
    f[F_OUTER_AXIS] = (float)s->loops[s->order[0]].axis;
    for (int p = 0; p < s->nloops; p++)
        if (s->loops[s->order[p]].axis == AX_K) {
            f[F_FIRST_K_DEPTH] = (float)(p + 1) / (float)s->nloops;
            break;
        }

    /* the register tile against the register file */
    int rows = 1, cols = 1, vaxis = 0, unroll_k = 0;
    double uprod = 1;
    int umax = 0;
    mct_sched_reg_tile(s, &rows, &cols);
    for (int id = 0; id < s->nloops; id++) {
        const cg_loop *l = &s->loops[id];
        if (l->vec)
            vaxis = l->axis == AX_J ? 1 : l->axis == AX_K ? 2 : 3;
        if (l->unroll) {
            uprod *= l->unroll;
            if (l->unroll > umax)
                umax = l->unroll;
            if (l->axis == AX_K)
                unroll_k = l->unroll;
        }
    }
    int vw = vaxis ? vlen : 1;
    int colvecs = vaxis == 1 ? (cols + vw - 1) / vw : cols;
    int acc = rows * colvecs;
    f[F_TILE_ROWS] = (float)rows;
    f[F_TILE_COLS] = (float)cols;
    f[F_ACC_VECS] = (float)acc;
    /* accumulators, one row of B vectors and a broadcast of A */
    f[F_REG_PRESSURE] = (float)(acc + colvecs + 1) / (float)nregs;
    f[F_VEC_WIDTH] = (float)vw;
    f[F_VEC_AXIS] = (float)vaxis;
    f[F_CW] = s->cw >= 0;
    f[F_CW_DEPTH] = depth(s, s->cw);
    {
        /* the share of C covered by whole register tiles (the rest runs the tail code) */
        int64_t ei, ej;
        f[F_FAST_TILE] = (float)fast_tile(s, vlen, &ei, &ej);
        if (s->cw >= 0) {
            int pc = cg_pos(s, s->cw);
            ei = block_at(s, AX_I, pc);
            ej = block_at(s, AX_J, pc);
            double fi = (double)(w->M / ei * ei) / (double)w->M;
            double fj = (double)(w->N / ej * ej) / (double)w->N;
            f[F_FULL_TILES] = (float)(fi * fj);
        }
    }

    /* traffic per FLOP at each level for the blocks the order gives */
    static const uint32_t unknown_kb[4] = {32, 32, 1024, 8192}; /* when CPUID names no size */
    int lv[3] = {0, 2, 3};
    for (int c = 0; c < 3; c++) {
        uint32_t kb = cpu && cpu->cache_kb[lv[c]] ? cpu->cache_kb[lv[c]] : unknown_kb[lv[c]];
        f[F_BPF_L1 + c] = bytes_per_flop(s, kb * 1024.0);
    }
    {
        double M = (double)w->M, N = (double)w->N, K = (double)w->K;
        f[F_BPF_MEM] = (float)((4.0 * (M * K + M * N) + weight_bytes(w) * K * N) /
                               (2.0 * M * N * K));
    }

    /* the parallel loop: its iterations and how evenly they fall on the threads */
    f[F_THREADS] = (float)threads;
    for (int p = 0; p < s->nloops; p++) {
        int id = s->order[p];
        if (!s->loops[id].par)
            continue;
        int64_t ext = s->loops[id].level == 0 ? dim(w, s->loops[id].axis) : cg_extent(s, id);
        int64_t st = cg_step(s, id);
        int64_t it = (ext + st - 1) / (st > 0 ? st : 1);
        int64_t rounds = (it + threads - 1) / threads;
        f[F_PAR] = 1;
        f[F_PAR_ITERS] = lg((double)it);
        f[F_PAR_BALANCE] = (float)((double)it / (double)(rounds * threads));
        f[F_PAR_DEPTH] = (float)(p + 1) / (float)s->nloops;
        break;
    }

    for (int o = 0; o < 2; o++) {
        const cg_pack *pk = &s->pack[o];
        int base = o ? F_PACK_B : F_PACK_A;
        if (!pk->on)
            continue;
        if (o == OPD_B && s->prepack) {
            f[F_PREPACK] = 1;
            f[F_PREPACK_KB] = lg((double)pk->kb);
            f[F_PACK_B_PANEL] = lg((double)pk->panel_w);
            continue;
        }
        f[base] = 1;
        f[base + 1] = depth(s, pk->at);
        f[base + 2] = lg((double)pk->panel_w);
    }

    f[F_NPF] = (float)s->npf;
    for (int i = 0; i < s->npf; i++) {
        const cg_pf *pf = &s->pf[i];
        int slot = pf->opd == OPD_A ? F_PF_A : F_PF_B;
        if (lg(pf->dist) > f[slot])
            f[slot] = lg(pf->dist);
        if (depth(s, pf->loop) > f[F_PF_DEPTH])
            f[F_PF_DEPTH] = depth(s, pf->loop);
    }

    f[F_UNROLL_PROD] = lg(uprod > 1 ? uprod : 0);
    f[F_UNROLL_MAX] = (float)umax;
    f[F_UNROLL_K] = (float)unroll_k;
    f[F_FUSE] = (float)s->fuse;
    f[F_EPI] = (float)((w->bias ? 1 : 0) + (w->act != MCT_ACT_NONE ? 2 : 0));
    f[F_BETA] = (float)w->beta;
    f[F_NT] = w->layout == MCT_NT;
    f[F_BRAW] = (float)w->braw;
    f[F_BMM] = w->op == MCT_OP_BMM;
    f[F_NLOOPS] = (float)s->nloops;
    f[F_WBYTES] = (float)weight_bytes(w);
    f[F_WIDEN_PANEL] = MCT_WL_QUANT(w) && s->widen == CG_WIDEN_PANEL;
    memcpy(out, f, sizeof f);
    for (int i = F_COUNT; i < n; i++)
        out[i] = 0;
    return F_COUNT;
}

/* A roofline over the levels: the time per FLOP is the slowest of the arithmetic (vector FMAs,
 * short of peak when the tile has too few independent accumulators to cover the FMA latency, or
 * spills when it has too many) and the traffic into each cache at a bandwidth that halves per
 * level, plus the compulsory traffic from memory. The figures are ratios between the levels, not
 * any CPU's: only the order of the estimates is used (the search ranks by it), and the learned
 * model replaces it once there are trials. */
double mct_cg_estimate(const float *f, int n)
{
    if (!f || n < F_COUNT)
        return 0;
    double vw = f[F_VEC_WIDTH] > 1 ? f[F_VEC_WIDTH] : 1;
    double acc = f[F_ACC_VECS] > 1 ? f[F_ACC_VECS] : 1;
    /* two FMA pipes of latency four: eight accumulators keep them busy */
    double eff = acc >= 8 ? 1.0 : acc / 8.0;
    if (f[F_REG_PRESSURE] > 1)
        eff /= f[F_REG_PRESSURE] * f[F_REG_PRESSURE];
    if (!(f[F_CW] > 0))
        eff *= 0.25;  /* every update goes through memory */
    else if (!(f[F_FAST_TILE] > 0))
        eff *= 0.35;  /* the generic tile code: loads and stores around each update */
    /* the tails run the generic code */
    eff *= f[F_FULL_TILES] + (1 - f[F_FULL_TILES]) * 0.3;
    double t = 1.0 / (2.0 * vw * eff * 2.0);
    const double bw[3] = {32, 16, 8};  /* bytes per cycle into L1, L2, L3 */
    for (int c = 0; c < 3; c++) {
        /* a level that holds the whole problem moves the compulsory traffic only (below) */
        double tc = f[F_BPF_L1 + c] > f[F_BPF_MEM] ? f[F_BPF_L1 + c] / bw[c] : 0;
        if (tc > t)
            t = tc;
    }
    /* the compulsory traffic from memory is the workload's, the same for every schedule: added
     * (at a bandwidth of 16 bytes per cycle) rather than taken as a bound, so it never hides
     * the differences between schedules */
    t += f[F_BPF_MEM] / 16.0;
    double speed = 1.0 / t;
    if (f[F_PAR] > 0) {
        double th = f[F_THREADS] > 1 ? f[F_THREADS] : 1;
        speed *= th * f[F_PAR_BALANCE];  /* iterations / rounds of them on th threads */
    }
    return speed > 0 ? speed : 1e-9;
}
