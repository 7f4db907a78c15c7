/* The learned cost model and the searches that use it: features of the lowered program
 * (deterministic, sensitive to each knob, hand-computed values on a small case), a real XGBoost
 * trained on targets that are a known function of the features, model files (round trip, a
 * stale feature version, damaged files), training from a database's trials, and the
 * model-based evolutionary search and mcts with ranking and rollouts on a synthetic cost
 * (budget, sample accounting, top-k per round, reproducibility). */
#include "tests/check.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db/db.h"
#include "tuner/costmodel.h"
#include "tuner/search.h"

static char tmp[256];
static const char *WL = "matmul f32 nn M=16 N=64 K=64 epi=none";

static int fidx(const char *name)
{
    for (int i = 0; i < MCT_CG_NFEATURES; i++)
        if (!strcmp(mct_cg_feature_name(i), name))
            return i;
    fprintf(stderr, "no feature named %s\n", name);
    return 0;
}

static mct_sched *parse(const mct_workload *w, const char *text)
{
    mct_sched *s = NULL;
    char why[256] = "";
    int r = mct_sched_parse(w, text, &s, why, sizeof why);
    CHECKF(r == 0, "parse '%s': %s", text, why);
    return s;
}

/* A synthetic CPU: only its caches matter to the features. */
static mct_cpu small_cpu(void)
{
    mct_cpu c = *mct_cpu_host();
    c.cache_kb[0] = 1;
    c.cache_kb[2] = 8;
    c.cache_kb[3] = 1024;
    c.cores = 4;
    return c;
}

static void test_features(void)
{
    mct_workload w;
    CHECK(mct_wl_parse(WL, &w, NULL, 0) == 0);
    mct_cpu cpu = small_cpu();
    mct_target t = {8, "", 16, 0, 1, 0, 0};
    const char *base = "tile(i, 4); tile(j, 16); reorder(i0, j0, k, i1, j1); cache_write(j0); "
                       "unroll(i1, 4); vectorize(j1)";
    mct_sched *s = parse(&w, base);
    if (!s)
        return;
    float f[MCT_CG_NFEATURES], g[MCT_CG_NFEATURES];
    CHECK(mct_cg_features(s, &t, &cpu, f, MCT_CG_NFEATURES) == MCT_CG_NFEATURES);
    CHECK(mct_cg_features(s, &t, &cpu, g, MCT_CG_NFEATURES) == MCT_CG_NFEATURES);
    CHECK(!memcmp(f, g, sizeof f));
    CHECK(mct_cg_features(s, &t, &cpu, g, MCT_CG_NFEATURES - 1) == MCT_EINVAL);
    CHECK(mct_cg_features(NULL, &t, &cpu, g, MCT_CG_NFEATURES) == MCT_EINVAL);
    /* hand-computed: a 4 x 16 register tile of two 8-lane vectors per row */
    CHECK(f[fidx("levels_i")] == 2 && f[fidx("levels_j")] == 2 && f[fidx("levels_k")] == 1);
    CHECK(fabsf(f[fidx("block_i1")] - (float)log2(5)) < 1e-6);
    CHECK(fabsf(f[fidx("block_j1")] - (float)log2(17)) < 1e-6);
    CHECK(f[fidx("block_i2")] == 0 && f[fidx("block_k1")] == 0);
    CHECK(f[fidx("tile_rows")] == 4 && f[fidx("tile_cols")] == 16);
    CHECK(f[fidx("acc_vectors")] == 8);
    CHECK(fabsf(f[fidx("reg_pressure")] - 11.0f / 16) < 1e-6);
    CHECK(f[fidx("vec_width")] == 8 && f[fidx("vec_axis")] == 1);
    CHECK(f[fidx("cache_write")] == 1 && fabsf(f[fidx("cache_write_depth")] - 0.4f) < 1e-6);
    /* L1 of 1 KiB holds the body of k (4 x 1 of A, 1 x 16 of B, 4 x 16 of C): 4 * 148 / 128;
     * L2 of 8 KiB the body of j0 (4 x 64, 64 x 16, 4 x 16): 4 * 1408 / 8192; L3 the whole
     * problem, so only the compulsory traffic, as from memory */
    CHECKF(fabsf(f[fidx("bytes_per_flop_l1")] - 4.625f) < 1e-5, "%g",
           f[fidx("bytes_per_flop_l1")]);
    CHECK(fabsf(f[fidx("bytes_per_flop_l2")] - 0.6875f) < 1e-6);
    CHECK(fabsf(f[fidx("bytes_per_flop_l3")] - 0.1875f) < 1e-6);
    CHECK(fabsf(f[fidx("bytes_per_flop_mem")] - 4.0f * (1024 + 4096 + 1024) / 131072) < 1e-6);
    CHECK(f[fidx("parallel")] == 0 && f[fidx("prefetches")] == 0 && f[fidx("pack_a")] == 0);
    CHECK(f[fidx("unroll_max")] == 4);
    /* straight-line register tile (4 x 16, unrolled and vectorized) covering all of C */
    CHECK(f[fidx("fast_tile")] == 1 && f[fidx("full_tile_fraction")] == 1);
    CHECK(mct_cg_estimate(f, MCT_CG_NFEATURES) > 0);
    CHECK(mct_cg_estimate(f, MCT_CG_NFEATURES - 1) == 0);

    /* each knob moves the vector */
    const char *edits[] = {
        "tile(i, 2); tile(j, 16); reorder(i0, j0, k, i1, j1); cache_write(j0); unroll(i1, 2); "
        "vectorize(j1)",
        "tile(i, 4); tile(j, 16); reorder(i0, j0, k, i1, j1); cache_write(j0); unroll(i1, 2); "
        "vectorize(j1)",
        "tile(i, 4); tile(j, 16); reorder(i0, j0, k, i1, j1); cache_write(j0); unroll(i1, 4); "
        "vectorize(j1); prefetch(B, k, 4)",
        "tile(i, 4); tile(j, 16); reorder(i0, j0, k, i1, j1); cache_write(j0); unroll(i1, 4); "
        "vectorize(j1); parallel(i0)",
        "tile(i, 4); tile(j, 16); reorder(i0, j0, k, i1, j1); pack(B, j0, j1); cache_write(j0); "
        "unroll(i1, 4); vectorize(j1)",
        "tile(i, 4); tile(j, 16); reorder(j0, i0, k, i1, j1); cache_write(i0); unroll(i1, 4); "
        "vectorize(j1)",
    };
    for (size_t e = 0; e < sizeof edits / sizeof edits[0]; e++) {
        mct_sched *x = parse(&w, edits[e]);
        if (!x)
            continue;
        CHECK(mct_cg_features(x, &t, &cpu, g, MCT_CG_NFEATURES) == MCT_CG_NFEATURES);
        CHECKF(memcmp(f, g, sizeof f) != 0, "edit %zu: same features", e);
        mct_sched_destroy(x);
    }
    CHECK(f[fidx("weight_bytes")] == 4 && f[fidx("widen_panel")] == 0);
    /* the same program on int8 weights (one f32 scale per output channel): B costs 1 + 4/K
     * bytes a weight, so the compulsory traffic drops by the B share */
    {
        mct_workload q;
        CHECK(mct_wl_parse("matmul f32 nt M=16 N=64 K=64 epi=none w=i8", &q, NULL, 0) == 0);
        mct_sched *y = parse(&q, "");
        if (y) {
            mct_cg_features(y, &t, &cpu, g, MCT_CG_NFEATURES);
            CHECKF(fabsf(g[fidx("weight_bytes")] - (1.0f + 4.0f / 64)) < 1e-5, "%g",
                   g[fidx("weight_bytes")]);
            CHECK(fabsf(g[fidx("bytes_per_flop_mem")] -
                        (4.0f * (1024 + 1024) + (1.0f + 4.0f / 64) * 4096) / 131072) < 1e-5);
            mct_sched_destroy(y);
        }
    }
    mct_sched *x = parse(&w, edits[2]);
    if (x) {
        mct_cg_features(x, &t, &cpu, g, MCT_CG_NFEATURES);
        CHECK(g[fidx("prefetches")] == 1 && fabsf(g[fidx("prefetch_b_dist")] - log2f(5)) < 1e-6);
        mct_sched_destroy(x);
    }
    /* the parallel loop i0: 4 iterations on 4 threads of the synthetic CPU, then on 3 */
    x = parse(&w, edits[3]);
    if (x) {
        mct_target t0 = t;
        t0.threads = 0;
        mct_cg_features(x, &t0, &cpu, g, MCT_CG_NFEATURES);
        CHECK(g[fidx("parallel")] == 1 && g[fidx("threads")] == 4);
        CHECK(g[fidx("parallel_balance")] == 1);
        t0.threads = 3;
        mct_cg_features(x, &t0, &cpu, g, MCT_CG_NFEATURES);
        CHECK(fabsf(g[fidx("parallel_balance")] - 4.0f / 6) < 1e-6);
        mct_sched_destroy(x);
    }
    /* rows of the tile not unrolled: the generic tile code; 3 rows leave a tail of 16 % 3 */
    x = parse(&w, "tile(i, 3); tile(j, 16); reorder(i0, j0, k, i1, j1); cache_write(j0); "
                  "vectorize(j1)");
    if (x) {
        mct_cg_features(x, &t, &cpu, g, MCT_CG_NFEATURES);
        CHECK(g[fidx("fast_tile")] == 0);
        CHECK(fabsf(g[fidx("full_tile_fraction")] - 15.0f / 16) < 1e-6);
        CHECK(mct_cg_estimate(f, MCT_CG_NFEATURES) > mct_cg_estimate(g, MCT_CG_NFEATURES));
        mct_sched_destroy(x);
    }
    /* the estimate prefers a full register tile to a 1-row one */
    mct_sched *thin = parse(&w, "tile(j, 16); reorder(i, j0, k, j1); cache_write(j0); "
                                "vectorize(j1)");
    if (thin) {
        mct_cg_features(thin, &t, &cpu, g, MCT_CG_NFEATURES);
        CHECK(mct_cg_estimate(f, MCT_CG_NFEATURES) > mct_cg_estimate(g, MCT_CG_NFEATURES));
        mct_sched_destroy(thin);
    }
    mct_sched_destroy(s);
}

/* A known function of named features: the model must learn its order. */
static double synth_gflops(const float *f)
{
    return 1.0 + 3.0 * fminf(f[fidx("acc_vectors")], 8.0f) + 2.0 * f[fidx("vec_width")] +
           4.0 * f[fidx("cache_write")] + 1.5 * f[fidx("block_k1")];
}

typedef struct sample_set {
    int n;
    mct_sched *s[600];
    double y[600];
} sample_set;

static void draw(sample_set *ss, int n, uint64_t seed, const mct_target *t, const mct_cpu *cpu)
{
    const char *wls[] = {WL, "matmul f32 nt M=32 N=96 K=80 epi=none",
                         "matmul f32 nn M=7 N=200 K=33 epi=bias+relu"};
    uint64_t rng = seed;
    ss->n = 0;
    for (int i = 0; i < n && ss->n < 600; i++) {
        mct_workload w;
        mct_wl_parse(wls[i % 3], &w, NULL, 0);
        mct_sched *s;
        if (mct_sched_random(&w, &rng, t->vlen, &s))
            continue;
        float f[MCT_CG_NFEATURES];
        mct_cg_features(s, t, cpu, f, MCT_CG_NFEATURES);
        ss->s[ss->n] = s;
        ss->y[ss->n] = synth_gflops(f);
        ss->n++;
    }
}

static void drop(sample_set *ss)
{
    for (int i = 0; i < ss->n; i++)
        mct_sched_destroy(ss->s[i]);
    ss->n = 0;
}

static void test_model(void)
{
    static sample_set tr, te;
    mct_cpu cpu = small_cpu();
    mct_target t = {8, "", 16, 0, 1, 0, 0};
    char err[512] = "";
    mct_costmodel *m = NULL;
    CHECK(mct_costmodel_create(&cpu, &m) == 0);
    if (!m)
        return;
    CHECK(mct_costmodel_cpu(m) == mct_cpu_key(&cpu));
    draw(&tr, 300, 11, &t, &cpu);
    draw(&te, 90, 12, &t, &cpu);
    CHECK(tr.n == 300 && te.n == 90);
    /* cold: the analytical estimate, before and after too few trials */
    double p[600], q[600];
    CHECK(mct_costmodel_predict(m, (const mct_sched *const *)te.s, te.n, &t, p, err,
                                sizeof err) == 0);
    float f0[MCT_CG_NFEATURES];
    mct_cg_features(te.s[0], &t, &cpu, f0, MCT_CG_NFEATURES);
    CHECK(p[0] == mct_cg_estimate(f0, MCT_CG_NFEATURES));
    for (int i = 0; i < MCT_COSTMODEL_MIN_TRIALS - 1; i++)
        CHECK(mct_costmodel_add(m, tr.s[i], &t, tr.y[i]) == 0);
    CHECK(mct_costmodel_train(m, err, sizeof err) == 0 && !mct_costmodel_trained(m));
    for (int i = MCT_COSTMODEL_MIN_TRIALS - 1; i < tr.n; i++)
        CHECK(mct_costmodel_add(m, tr.s[i], &t, tr.y[i]) == 0);
    CHECK(mct_costmodel_count(m) == (size_t)tr.n);
    CHECKF(mct_costmodel_train(m, err, sizeof err) == 0, "%s", err);
    CHECK(mct_costmodel_trained(m));
    CHECKF(mct_costmodel_predict(m, (const mct_sched *const *)te.s, te.n, &t, p, err,
                                 sizeof err) == 0, "%s", err);
    /* targets are normalized per workload: rank within each */
    double rmin = 1;
    for (int g = 0; g < 3; g++) {
        double a[200], b[200];
        int k = 0;
        for (int i = g; i < te.n; i += 3)
            a[k] = te.y[i], b[k] = p[i], k++;
        double rho = mct_costmodel_spearman(a, b, k);
        if (rho < rmin)
            rmin = rho;
    }
    CHECKF(rmin > 0.8, "held-out rank correlation %.3f", rmin);
    /* the same trials train the same booster */
    mct_costmodel *m2 = NULL;
    CHECK(mct_costmodel_create(&cpu, &m2) == 0);
    for (int i = 0; i < tr.n; i++)
        mct_costmodel_add(m2, tr.s[i], &t, tr.y[i]);
    CHECK(mct_costmodel_train(m2, err, sizeof err) == 0);
    CHECK(mct_costmodel_predict(m2, (const mct_sched *const *)te.s, te.n, &t, q, err,
                                sizeof err) == 0);
    CHECK(!memcmp(p, q, sizeof p[0] * (size_t)te.n));
    mct_costmodel_destroy(m2);

    /* files: round trip */
    char path[512], bad[600];
    snprintf(path, sizeof path, "%s/model.json", tmp);
    CHECKF(mct_costmodel_save(m, path, err, sizeof err) == 0, "%s", err);
    mct_costmodel *l = NULL;
    size_t ntr = 0;
    CHECK(mct_costmodel_create(&cpu, &l) == 0);
    CHECK(!mct_costmodel_trained(l));
    CHECKF(mct_costmodel_load(l, path, &ntr, err, sizeof err) == 0, "%s", err);
    CHECK(mct_costmodel_trained(l) && ntr == (size_t)tr.n);
    CHECK(mct_costmodel_predict(l, (const mct_sched *const *)te.s, te.n, &t, q, err,
                                sizeof err) == 0);
    CHECK(!memcmp(p, q, sizeof p[0] * (size_t)te.n));
    /* a loaded model retrains on new trials */
    for (int i = 0; i < 20; i++)
        mct_costmodel_add(l, tr.s[i], &t, tr.y[i]);
    CHECKF(mct_costmodel_train(l, err, sizeof err) == 0, "%s", err);
    mct_costmodel_destroy(l);
    mct_costmodel *e = NULL;
    mct_costmodel_create(&cpu, &e);
    CHECK(mct_costmodel_save(e, path, err, sizeof err) == MCT_EINVAL);
    CHECK(strstr(err, "not been trained") != NULL);
    snprintf(bad, sizeof bad, "%s/none.json", tmp);
    CHECK(mct_costmodel_load(e, bad, NULL, err, sizeof err) == MCT_ENOTFOUND);
    /* another feature version is refused with the versions named */
    char *txt = check_slurp(path, NULL);
    char *at = txt ? strstr(txt, "\"mctune_feature_version\":\"") : NULL;
    CHECK(at != NULL);
    if (at) {
        char *v = at + strlen("\"mctune_feature_version\":\"");
        *v = *v == '9' ? '8' : '9';
        snprintf(bad, sizeof bad, "%s/old.json", tmp);
        FILE *o = fopen(bad, "w");
        fputs(txt, o);
        fclose(o);
        CHECK(mct_costmodel_load(e, bad, NULL, err, sizeof err) == MCT_EVERSION);
        CHECKF(strstr(err, "feature version") && strstr(err, bad), "%s", err);
        CHECK(!mct_costmodel_trained(e));
    }
    /* truncated and garbage files */
    if (txt) {
        snprintf(bad, sizeof bad, "%s/cut.json", tmp);
        FILE *o = fopen(bad, "w");
        fwrite(txt, 1, strlen(txt) / 2, o);
        fclose(o);
        CHECK(mct_costmodel_load(e, bad, NULL, err, sizeof err) == MCT_ECORRUPT);
        CHECKF(strstr(err, bad) && strstr(err, "not a readable"), "%s", err);
    }
    snprintf(bad, sizeof bad, "%s/junk.json", tmp);
    FILE *o = fopen(bad, "w");
    fputs("{\"learner\": 3, junk", o);
    fclose(o);
    CHECK(mct_costmodel_load(e, bad, NULL, err, sizeof err) == MCT_ECORRUPT);
    /* another CPU's model */
    mct_cpu other = cpu;
    other.feat[0] ^= 0x1;
    mct_costmodel *oc = NULL;
    mct_costmodel_create(&other, &oc);
    if (mct_costmodel_cpu(oc) != mct_costmodel_cpu(m)) {
        CHECK(mct_costmodel_load(oc, path, NULL, err, sizeof err) == MCT_EINVAL);
        CHECK(strstr(err, "model of CPU") != NULL);
    }
    mct_costmodel_destroy(oc);
    free(txt);
    mct_costmodel_destroy(e);
    mct_costmodel_destroy(m);
    drop(&tr);
    drop(&te);

    double a[5] = {1, 2, 3, 4, 5}, b[5] = {10, 20, 30, 40, 50}, c[5] = {5, 4, 3, 2, 1};
    CHECK(fabs(mct_costmodel_spearman(a, b, 5) - 1) < 1e-12);
    CHECK(fabs(mct_costmodel_spearman(a, c, 5) + 1) < 1e-12);
    CHECK(mct_costmodel_spearman(a, a, 1) == 0);
}


/* searches ----------------------------------------------------------------------------------- */

typedef struct run {
    int n;
    uint8_t h[256][16];
    int per_round[64];
    int bad_round;
} run;

static int on_sample(void *ctx, const mct_search_sample *smp)
{
    run *r = ctx;
    if (r->n < 256)
        memcpy(r->h[r->n++], smp->hash, 16);
    int rd;
    if (sscanf(smp->applied, "round %d", &rd) == 1) {
        if (rd >= 1 && rd < 64)
            r->per_round[rd]++;
        else
            r->bad_round = 1;
    }
    return 0;
}

/* A deterministic synthetic cost of the program (the search is under test, not the harness):
 * the known function of its features, a few candidates failing. */
static int synth_eval(void *ctx, const mct_sched *s, mct_search_meas *out)
{
    mct_cpu cpu = small_cpu();
    mct_target t = {8, "", 16, 0, 1, 0, 0};
    float f[MCT_CG_NFEATURES];
    uint8_t h[16];
    mct_sched_hash(s, h);
    memset(out, 0, sizeof *out);
    mct_cg_features(s, &t, &cpu, f, MCT_CG_NFEATURES);
    if (h[2] % 17 == 0) {
        out->status = MCT_MEAS_WRONG;
        out->latency_s = -1;
        return 0;
    }
    out->status = MCT_MEAS_OK;
    out->gflops = synth_gflops(f);
    out->latency_s = mct_wl_flops(mct_sched_workload(s)) / (out->gflops * 1e9);
    return 0;
}

/* A cost with a narrow optimum (a 6-row tile of two vectors, k blocks near 128, j blocks near
 * 256, on the fast path), where finding it takes more than luck. */
static int peak_eval(void *ctx, const mct_sched *s, mct_search_meas *out)
{
    mct_target t = {8, "", 16, 0, 1, 0, 0};
    float f[MCT_CG_NFEATURES];
    memset(out, 0, sizeof *out);
    mct_cg_features(s, &t, NULL, f, MCT_CG_NFEATURES);
    double a = f[fidx("tile_rows")] - 6, b = f[fidx("tile_cols")] / 8 - 2;
    double c = f[fidx("block_k1")] - 7, d = f[fidx("block_j1")] - 8;
    out->status = MCT_MEAS_OK;
    out->gflops = 1 + 20 * exp(-(a * a / 4 + b * b + c * c / 4 + d * d / 4)) *
                          (0.3 + 0.7 * f[fidx("fast_tile")]);
    out->latency_s = mct_wl_flops(mct_sched_workload(s)) / (out->gflops * 1e9);
    return 0;
}

static int distinct_run(const run *r)
{
    for (int i = 0; i < r->n; i++)
        for (int j = 0; j < i; j++)
            if (!memcmp(r->h[i], r->h[j], 16))
                return 0;
    return 1;
}

static int search(mct_search_kind kind, mct_guide *g, int budget, int k, int rank, int rollout,
                  mct_costmodel *model, run *rr, mct_search_stats *st)
{
    mct_workload w;
    mct_wl_parse(WL, &w, NULL, 0);
    mct_search_opts o = {0};
    o.kind = kind;
    o.budget = budget;
    o.seed = 5;
    o.guide = g;
    o.cpu = NULL;
    o.target = (mct_target){8, "", 16, 0, 1, 0, 0};
    o.generation = k;
    o.rank = rank;
    o.rollout = rollout;
    o.model = model;
    o.evaluate = synth_eval;
    o.on_sample = on_sample;
    o.ctx = rr;
    memset(rr, 0, sizeof *rr);
    char err[256] = "";
    int r = mct_search_run(&w, &o, st, err, sizeof err);
    CHECKF(r == 0, "search %s: %d %s", mct_search_kind_name(kind), r, err);
    return r;
}

static void test_search(void)
{
    static run a, b;
    mct_search_stats sa, sb;
    mct_search_kind k;
    CHECK(mct_search_kind_parse("evolutionary-measured", &k) == 0 && k == MCT_SEARCH_EVO_MEASURED);
    CHECK(mct_search_kind_parse("evolutionary", &k) == 0 && k == MCT_SEARCH_EVO);
    CHECK(!strcmp(mct_search_kind_name(MCT_SEARCH_EVO_MEASURED), "evolutionary-measured"));

    /* evolutionary inside the model, 8 measured per round: the budget exactly, at most 8 per
     * round, rounds enough for it, the same trials from the same seed */
    search(MCT_SEARCH_EVO, NULL, 41, 8, 0, 0, NULL, &a, &sa);
    search(MCT_SEARCH_EVO, NULL, 41, 8, 0, 0, NULL, &b, &sb);
    CHECKF(sa.samples == 41 && a.n == 41 && sa.measured == 41, "%d samples", sa.samples);
    CHECK(a.n == b.n && !memcmp(a.h, b.h, 16 * (size_t)a.n));
    CHECK(distinct_run(&a));
    CHECK(sa.rounds >= 5 && sa.model_failures == 0 && !a.bad_round);
    int tot = 0, over = 0;
    for (int i = 0; i < 64; i++) {
        tot += a.per_round[i];
        over |= a.per_round[i] > 8;
    }
    CHECK(tot == 40 && !over);
    CHECK(sa.best_gflops > 0 && sa.best_latency_s > 0);

    /* defaults (population 2048, 64 per round): a budget of 20 is one round of 19 */
    mct_costmodel *m = NULL;
    mct_cpu cpu = small_cpu();
    mct_costmodel_create(&cpu, &m);
    search(MCT_SEARCH_EVO, NULL, 20, 0, 0, 0, m, &a, &sa);
    CHECK(sa.samples == 20 && sa.rounds == 1 && a.per_round[1] == 19);
    /* a given model gets every measured sample and is trained */
    CHECK(mct_costmodel_count(m) == 20 && mct_costmodel_trained(m));

    /* the ablation keeps its own accounting */
    search(MCT_SEARCH_EVO_MEASURED, NULL, 30, 0, 0, 0, NULL, &a, &sa);
    CHECK(sa.samples == 30 && distinct_run(&a) && sa.rounds == 0);

    /* the point of the model: at a small budget, evolution inside it finds faster schedules
     * than measuring every child (geometric mean over seeds, on a cost with a narrow peak) */
    double lm = 0, lx = 0;
    for (int seed = 1; seed <= 3; seed++) {
        mct_workload w;
        mct_wl_parse("matmul f32 nt M=128 N=1024 K=1024 epi=none", &w, NULL, 0);
        for (int kind = 0; kind < 2; kind++) {
            mct_search_opts o = {0};
            o.kind = kind ? MCT_SEARCH_EVO_MEASURED : MCT_SEARCH_EVO;
            o.budget = 48;
            o.seed = (uint64_t)seed;
            o.target = (mct_target){8, "", 16, 0, 1, 0, 0};
            o.evaluate = peak_eval;
            mct_search_stats st;
            CHECK(mct_search_run(&w, &o, &st, NULL, 0) == 0 && st.samples == 48);
            *(kind ? &lx : &lm) += log(st.best_gflops);
        }
    }
    /* at least 1.5x faster in the geometric mean */
    CHECKF(lm > lx + 3 * log(1.5), "evolutionary %.2f vs evolutionary-measured %.2f GFLOP/s",
           exp(lm / 3), exp(lx / 3));

    /* mcts ranking more proposals than it measures */
    mct_guide *g1 = NULL, *g2 = NULL;
    mct_guide_heuristic_create(&g1);
    mct_guide_heuristic_create(&g2);
    search(MCT_SEARCH_MCTS, g1, 30, 0, 3, 0, NULL, &a, &sa);
    search(MCT_SEARCH_MCTS, g2, 30, 0, 3, 0, NULL, &b, &sb);
    CHECKF(sa.samples == 30 && a.n == 30 && sa.measured == 30, "%d samples", sa.samples);
    CHECK(sa.ranked_out > 0 && distinct_run(&a));
    CHECK(a.n == b.n && !memcmp(a.h, b.h, 16 * (size_t)a.n));
    mct_guide_destroy(g1);
    mct_guide_destroy(g2);

    /* mcts with model-scored rollouts: children wait with an estimate until selection reaches
     * them; every sample is still one measured distinct candidate */
    mct_guide_heuristic_create(&g1);
    mct_guide_heuristic_create(&g2);
    search(MCT_SEARCH_MCTS, g1, 30, 0, 2, 4, NULL, &a, &sa);
    search(MCT_SEARCH_MCTS, g2, 30, 0, 2, 4, NULL, &b, &sb);
    CHECKF(sa.samples == 30 && a.n == 30 && sa.measured == 30, "%d samples", sa.samples);
    /* each sample after the baseline was an estimated child first */
    CHECKF(sa.estimates >= sa.samples - 1, "%d estimates", sa.estimates);
    CHECK(distinct_run(&a));
    CHECK(a.n == b.n && !memcmp(a.h, b.h, 16 * (size_t)a.n));
    mct_guide_destroy(g1);
    mct_guide_destroy(g2);
    /* with the model trained above */
    size_t before = mct_costmodel_count(m);
    mct_guide_heuristic_create(&g1);
    search(MCT_SEARCH_MCTS, g1, 25, 0, 0, 3, m, &a, &sa);
    CHECK(sa.samples == 25 && sa.estimates >= 24 && distinct_run(&a));
    CHECK(mct_costmodel_count(m) == before + 25);
    mct_guide_destroy(g1);
    mct_costmodel_destroy(m);
}

/* the database ------------------------------------------------------------------------------- */

static int keep_even(void *ctx, const mct_db_rec *r)
{
    int *n = ctx;
    return (*n)++ % 2 == 0;
}

static void test_db(const char *mctune)
{
    char dir[400], err[1024] = "", note[1024] = "", path[1200], out[8192];
    snprintf(dir, sizeof dir, "%s/db", tmp);
    mct_db *db = NULL;
    CHECKF(mct_db_open(dir, MCT_DB_NOSYNC, err, sizeof err, &db) == 0, "%s", err);
    if (!db)
        return;
    const mct_cpu *cpu = mct_cpu_host();
    CHECK(mct_db_put_cpu(db, cpu) == 0);
    mct_target t = mct_target_of_tier(mct_cpu_tier_of(cpu));
    t.threads = 1;
    /* too few trials: train refuses with the count and what to do */
    size_t n = 0, sk = 0;
    CHECK(mct_costmodel_train_db(db, cpu, &n, &sk, path, sizeof path, err, sizeof err) ==
          MCT_EINVAL);
    CHECKF(strstr(err, "0 usable trials") && strstr(err, "mctune tune"), "%s", err);
    static sample_set ss;
    draw(&ss, 60, 21, &t, cpu);
    int put = 0;
    for (int i = 0; i < ss.n; i++) {
        mct_db_rec r;
        memset(&r, 0, sizeof r);
        mct_wl_format(mct_sched_workload(ss.s[i]), r.workload, sizeof r.workload);
        r.cpu = mct_cpu_key(cpu);
        r.threads = 1;
        mct_sched_format(ss.s[i], r.schedule, sizeof r.schedule);
        float f[MCT_CG_NFEATURES];
        mct_cg_features(ss.s[i], &t, cpu, f, MCT_CG_NFEATURES);
        r.gflops = synth_gflops(f);
        r.median_ns = mct_wl_flops(mct_sched_workload(ss.s[i])) / r.gflops;
        r.samples = 1;
        snprintf(r.search, sizeof r.search, "random");
        snprintf(r.tool, sizeof r.tool, "%s", MCT_TOOL);
        int pr = mct_db_put_trial(db, &r);
        CHECKF(pr == 0, "put trial: %s", mct_db_errmsg(db));
        put += pr == 0;
    }
    /* all, and a filtered half */
    mct_costmodel *m = NULL;
    mct_costmodel_create(cpu, &m);
    CHECKF(mct_costmodel_add_db(m, db, NULL, NULL, &sk, err, sizeof err) == 0, "%s", err);
    CHECK(mct_costmodel_count(m) == (size_t)put && sk == 0);
    mct_costmodel_destroy(m);
    int cnt = 0;
    mct_costmodel_create(cpu, &m);
    CHECK(mct_costmodel_add_db(m, db, keep_even, &cnt, &sk, err, sizeof err) == 0);
    CHECK(mct_costmodel_count(m) == (size_t)(put + 1) / 2);
    mct_costmodel_destroy(m);
    /* another CPU's model sees none of them */
    mct_cpu other = *cpu;
    other.feat[0] ^= 0x1;
    if (mct_cpu_key(&other) != mct_cpu_key(cpu)) {
        mct_costmodel_create(&other, &m);
        CHECK(mct_costmodel_add_db(m, db, NULL, NULL, NULL, err, sizeof err) == 0);
        CHECK(mct_costmodel_count(m) == 0);
        mct_costmodel_destroy(m);
    }

    /* a tuning run's model: trained and saved beside the database, then loaded */
    char mp[1200];
    CHECK(mct_costmodel_path(dir, mct_cpu_key(cpu), mp, sizeof mp) == 0);
    CHECK(strstr(mp, "/db/costmodel-") != NULL);
    CHECKF(mct_costmodel_open(db, cpu, &m, note, sizeof note, err, sizeof err) == 0, "%s", err);
    CHECKF(m && mct_costmodel_trained(m) && strstr(note, "trained on") && strstr(note, mp), "%s",
           note);
    CHECK(access(mp, R_OK) == 0);
    double p1[64], p2[64];
    mct_costmodel_predict(m, (const mct_sched *const *)ss.s, 20, &t, p1, err, sizeof err);
    mct_costmodel_destroy(m);
    CHECK(mct_costmodel_open(db, cpu, &m, note, sizeof note, err, sizeof err) == 0);
    CHECKF(strstr(note, "loaded") != NULL, "%s", note);
    mct_costmodel_predict(m, (const mct_sched *const *)ss.s, 20, &t, p2, err, sizeof err);
    CHECK(!memcmp(p1, p2, sizeof p1[0] * 20));
    /* one more trial than it was trained on: saved again by save_db */
    mct_costmodel_add(m, ss.s[0], &t, 1.0);
    CHECK(mct_costmodel_save_db(m, db, path, sizeof path, err, sizeof err) == 0);
    mct_costmodel_destroy(m);
    /* a file of another feature version: refused, retrained, replaced */
    char *txt = check_slurp(mp, NULL);
    char *at = txt ? strstr(txt, "\"mctune_feature_version\":\"") : NULL;
    CHECK(at != NULL);
    if (at) {
        at[strlen("\"mctune_feature_version\":\"")] = '0';
        FILE *o = fopen(mp, "w");
        fputs(txt, o);
        fclose(o);
        CHECK(mct_costmodel_open(db, cpu, &m, note, sizeof note, err, sizeof err) == 0);
        CHECKF(strstr(note, "feature version") && strstr(note, "trained on"), "%s", note);
        CHECK(mct_costmodel_trained(m));
        mct_costmodel_destroy(m);
        CHECK(mct_costmodel_open(db, cpu, &m, note, sizeof note, err, sizeof err) == 0);
        CHECKF(strstr(note, "loaded") != NULL, "%s", note);
        mct_costmodel_destroy(m);
    }
    free(txt);
    CHECKF(mct_costmodel_train_db(db, cpu, &n, &sk, path, sizeof path, err, sizeof err) == 0,
           "%s", err);
    CHECK(n == (size_t)put && !strcmp(path, mp));

    /* held-out evaluation */
    mct_costmodel_eval ev;
    CHECK(mct_costmodel_evaluate(db, cpu, 1.5, 1, NULL, NULL, &ev, err, sizeof err) ==
          MCT_EINVAL);
    CHECK(strstr(err, "1.5") != NULL);
    CHECKF(mct_costmodel_evaluate(db, cpu, 0.3, 1, NULL, NULL, &ev, err, sizeof err) == 0, "%s",
           err);
    CHECK(ev.train + ev.test == (size_t)put && ev.test > 5 && ev.trained);
    CHECKF(ev.rho > 0.5, "held-out rho %.3f", ev.rho);
    mct_db_close(db);

    /* the command */
    if (access(mctune, X_OK) == 0) {
        int rc = check_sh(out, sizeof out, "'%s' model stats --db '%s' --holdout 0.3 2>&1",
                          mctune, dir);
        char fv[32];
        snprintf(fv, sizeof fv, "feature version %d", MCT_CG_FEATURE_VERSION);
        CHECKF(rc == 0 && strstr(out, "spearman") && strstr(out, fv), "%s", out);
        rc = check_sh(out, sizeof out, "'%s' model train --db '%s' 2>&1", mctune, dir);
        CHECKF(rc == 0 && strstr(out, "trained on") && strstr(out, mp), "%s", out);
        rc = check_sh(out, sizeof out, "'%s' model stats --db '%s' --holdout 2 2>&1", mctune,
                      dir);
        CHECKF(rc == 2 && strstr(out, "--holdout '2'"), "%s", out);
        rc = check_sh(out, sizeof out, "'%s' model 2>&1", mctune);
        CHECK(rc == 2 && strstr(out, "stats or train"));
        rc = check_sh(out, sizeof out, "'%s' model stats --help", mctune);
        CHECK(rc == 0 && strstr(out, "Spearman"));
    } else {
        printf("note: %s not built, the command is not tested\n", mctune);
    }
    drop(&ss);
}

int main(void)
{
    if (check_tmpdir(tmp, sizeof tmp, "costmodel"))
        return 1;
    test_features();
    test_model();
    test_search();
    const char *mc = getenv("MCTUNE");
    char mctune[1400], cwd[1024];
    if (mc && *mc && *mc == '/')
        snprintf(mctune, sizeof mctune, "%s", mc);
    else
        snprintf(mctune, sizeof mctune, "%s/%s", getcwd(cwd, sizeof cwd) ? cwd : ".",
                 mc && *mc ? mc : "build/mctune");
    test_db(mctune);
    check_rmtree(tmp);
    return check_done();
}
