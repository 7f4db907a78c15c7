/* Sample efficiency of the search strategies (the paper's comparison), printed as a table.
 *
 *   build/bench/bench-search [--budget 128] [--seeds 3] [--shrink 1] [--min-time 0.05]
 *                            [--layers 0,1,2,3,4] [--cache DIR]
 *
 * For each layer (from models/: a mix of M=1, M=16, M=128 and an attention bmm) and for
 * mcts+heuristic, mcts+random, evolutionary (inside the cost model), random, mcts+model (the
 * heuristic guide with the cost model ranking 4x the proposals and scoring rollouts of 4) and
 * evolutionary-measured (no model), each with seeds 1..S in the same run:
 * the best speedup over the untuned schedule after 16, 32, 64, 128 samples (geometric mean over
 * the seeds), and the samples each needs to reach evolutionary's best at the full budget (mean
 * over seeds; ">B" when it never does). Finally the best kernel of mcts+heuristic is measured
 * against OpenBLAS (the harness's baseline, same data, same child).
 *
 * --shrink S divides N and K (and the bmm's N, K) by S, for quick runs on small machines.
 * Every search goes through the tuning library (tuner/tune.h) on a scratch database, with
 * retune on and transfer off: a candidate measured once in this run is not measured again by
 * another strategy or seed (its stored trial is reused, as `mctune tune` reuses trials); it
 * still costs each search that draws it one sample.
 *
 * Not part of `make bench` (it takes long): `make bench-search`. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>


#include "tuner/guide.h"
#include "tuner/measure.h"
#include "tuner/tune.h"

static const struct {
    const char *name, *wl;
} layers[] = {
    {"llama3-8b q_proj M=1", "matmul f32 nt M=1 N=4096 K=4096 epi=none"},
    {"llama3-8b gate_proj M=16", "matmul f32 nt M=16 N=14336 K=4096 epi=none"},
    {"llama3-8b o_proj M=128", "matmul f32 nt M=128 N=4096 K=4096 epi=none"},
    {"llama3-8b attn_scores s512 M=128", "bmm f32 nt B=32 G=4 M=128 N=512 K=128 epi=none"},
    {"deepseek-r1 expert_down M=16", "matmul f32 nt M=16 N=7168 K=2048 epi=none"},
    {"qwen2.5-7b down_proj M=128", "matmul f32 nt M=128 N=3584 K=18944 epi=none"},
};
#define NLAYERS ((int)(sizeof layers / sizeof layers[0]))

/* One search's curve: the best latency after each sample. Measurements are shared by every
 * search of a layer through a scratch database (trials reused as `mctune tune` reuses them). */
typedef struct run {
    int budget;
    double *best_lat;  /* best latency after sample i (1-based) */
} run;

static int on_sample(void *ctx, const mct_search_sample *s)
{
    run *r = ctx;
    if (s->index <= r->budget) {
        double prev = s->index > 1 ? r->best_lat[s->index - 1] : -1;
        double cur = s->latency_s > 0 && (prev < 0 || s->latency_s < prev) ? s->latency_s : prev;
        r->best_lat[s->index] = cur;
    }
    return 0;
}

static const char *cfg_name[] = {"mcts+heuristic", "mcts+random", "evolutionary", "random",
                                 "mcts+model", "evolutionary-measured"};
#define NCFG 6

int main(int argc, char **argv)
{
    int budget = 128, nseeds = 3, shrink = 1;
    double min_time = 0.05;
    const char *cache = NULL, *sel = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--budget") && i + 1 < argc)
            budget = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seeds") && i + 1 < argc)
            nseeds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--shrink") && i + 1 < argc)
            shrink = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--min-time") && i + 1 < argc)
            min_time = atof(argv[++i]);
        else if (!strcmp(argv[i], "--cache") && i + 1 < argc)
            cache = argv[++i];
        else if (!strcmp(argv[i], "--layers") && i + 1 < argc)
            sel = argv[++i];
        else {
            fprintf(stderr, "usage: bench-search [--budget N] [--seeds N] [--shrink S] "
                    "[--min-time SECONDS] [--layers 0,1,...] [--cache DIR]\n");
            return 2;
        }
    }
    if (budget < 2 || nseeds < 1 || shrink < 1 || !(min_time > 0)) {
        fprintf(stderr, "bench-search: --budget >= 2, --seeds >= 1, --shrink >= 1, "
                "--min-time > 0\n");
        return 2;
    }
    mct_meas_opts o;
    mct_meas_opts_default(&o);
    o.cache_dir = cache;
    o.min_time_s = min_time;
    o.timeout_s = 20;
    mct_meas *meas = NULL, *mbase = NULL, *mblas = NULL;
    char err[512];
    if (mct_meas_create(&o, &meas, err, sizeof err)) {
        fprintf(stderr, "bench-search: %s\n", err);
        return 1;
    }
    o.min_runs = 1;
    o.timeout_s = 600;
    mct_meas_create(&o, &mbase, err, sizeof err);
    o.min_runs = 0;
    o.timeout_s = 60;
    o.baseline = 1;
    mct_meas_create(&o, &mblas, err, sizeof err);
    char dbdir[] = "/tmp/mct-bench-search-XXXXXX";
    mct_db *db = NULL;
    const mct_cpu *cpu = mct_cpu_host();
    if (!mkdtemp(dbdir) || mct_db_open(dbdir, MCT_DB_NOSYNC, err, sizeof err, &db) ||
        mct_db_put_cpu(db, cpu)) {
        fprintf(stderr, "bench-search: scratch database in %s: %s\n", dbdir,
                db ? mct_db_errmsg(db) : err);
        return 1;
    }
    const int marks[] = {16, 32, 64, 128};
    double geo_ratio = 0;
    int geo_n = 0;
    printf("bench-search: budget %d, %d seeds, shrink %d, min-time %.3g s\n", budget, nseeds,
           shrink, min_time);
    time_t t0 = time(NULL);
    for (int L = 0; L < NLAYERS; L++) {
        if (sel) {
            char key[8];
            snprintf(key, sizeof key, "%d", L);
            int found = 0;
            for (const char *p = sel; *p;) {
                int v = atoi(p);
                if (v == L && strncmp(p, key, strlen(key)) == 0)
                    found = 1;
                p = strchr(p, ',');
                if (!p)
                    break;
                p++;
            }
            if (!found)
                continue;
        }
        mct_workload w;
        if (mct_wl_parse(layers[L].wl, &w, err, sizeof err)) {
            fprintf(stderr, "bench-search: %s\n", err);
            return 1;
        }
        w.N = w.N / shrink > 16 ? w.N / shrink : 16;
        w.K = w.K / shrink > 16 ? w.K / shrink : 16;
        char wt[256];
        mct_wl_format(&w, wt, sizeof wt);
        printf("\n== %s: %s\n", layers[L].name, wt);
        fflush(stdout);
        double *curves[NCFG][16];
        double best_lat_all = -1;
        char best_sched[4096] = "";
        double base_lat = -1;
        for (int c = 0; c < NCFG; c++)
            for (int s = 0; s < nseeds && s < 16; s++) {
                run r = {budget, calloc((size_t)budget + 1, sizeof(double))};
                for (int i = 0; i <= budget; i++)
                    r.best_lat[i] = -1;
                mct_guide *g = NULL;
                if (c == 0 || c == 4)
                    mct_guide_heuristic_create(&g);
                else if (c == 1)
                    mct_guide_random_create(&g);
                mct_tune_opts to = {0};
                to.db = db;
                to.cpu = cpu;
                to.kind = c < 2 || c == 4 ? MCT_SEARCH_MCTS : c == 2 ? MCT_SEARCH_EVO
                          : c == 5 ? MCT_SEARCH_EVO_MEASURED : MCT_SEARCH_RANDOM;
                to.rank = c == 4 ? 4 : 0;
                to.rollout = c == 4 ? 4 : 0;
                to.budget = budget;
                to.seed = (uint64_t)s + 1;
                to.guide = g;
                to.guide_name = c == 0 || c == 4 ? "heuristic" : "random";
                to.meas = meas;
                to.meas_base = mbase;
                to.retune = 1;
                to.on_sample = on_sample;
                to.ctx = &r;
                mct_tune_result res;
                int e = mct_tune_workload(&w, &to, &res, err, sizeof err);
                const mct_search_stats st = res.st;
                mct_guide_destroy(g);
                if (e)
                    fprintf(stderr, "  %s seed %d: %s %s\n", cfg_name[c], s + 1, mct_strerror(e),
                            err);
                for (int i = 1; i <= budget; i++)  /* a search that ran out keeps its best */
                    if (r.best_lat[i] < 0)
                        r.best_lat[i] = r.best_lat[i - 1];
                curves[c][s] = r.best_lat;
                if (st.base_latency_s > 0)
                    base_lat = st.base_latency_s;
                if (c == 0 && st.best_latency_s > 0 &&
                    (best_lat_all < 0 || st.best_latency_s < best_lat_all)) {
                    best_lat_all = st.best_latency_s;
                    snprintf(best_sched, sizeof best_sched, "%s", st.best_schedule);
                }
                fprintf(stderr, "  [%lds] %s seed %d: %d samples, best %.2f GFLOP/s, %d "
                        "fallbacks, %d invalid\n", (long)(time(NULL) - t0), cfg_name[c], s + 1,
                        st.samples, st.best_gflops, st.fallbacks, st.invalid);
            }
        if (!(base_lat > 0)) {
            printf("  untuned schedule failed; no speedups\n");
            continue;
        }
        uint8_t wh[16];
        mct_db_key key;
        size_t ntrials = 0;
        mct_wl_hash(&w, wh);
        mct_db_key_make(wh, mct_cpu_key(cpu), 1, &key);
        mct_db_count_trials(db, &key, &ntrials);
        printf("  untuned: %.3f ms (%.2f GFLOP/s); %zu distinct candidates measured\n",
               base_lat * 1e3, mct_wl_flops(&w) / base_lat * 1e-9, ntrials);
        /* evolutionary's best at the full budget: geometric mean over the seeds */
        double tgt = 0;
        for (int s = 0; s < nseeds; s++)
            tgt += log(base_lat / curves[2][s][budget]);
        tgt = exp(tgt / nseeds);
        printf("  %-21s", "best speedup");
        for (int k = 0; k < 4; k++)
            if (marks[k] <= budget)
                printf(" %8d", marks[k]);
        printf(" %10s  samples to reach evolutionary's %.1fx\n", "full", tgt);
        double need[NCFG];
        for (int c = 0; c < NCFG; c++) {
            printf("  %-21s", cfg_name[c]);
            for (int k = 0; k < 4; k++) {
                if (marks[k] > budget)
                    continue;
                double g = 0;
                for (int s = 0; s < nseeds; s++)
                    g += log(base_lat / curves[c][s][marks[k]]);
                printf(" %7.1fx", exp(g / nseeds));
            }
            double g = 0, nsum = 0;
            int never = 0;
            for (int s = 0; s < nseeds; s++) {
                g += log(base_lat / curves[c][s][budget]);
                int at = 0;
                for (int i = 1; i <= budget && !at; i++)
                    if (curves[c][s][i] > 0 && base_lat / curves[c][s][i] >= tgt * 0.999)
                        at = i;
                if (!at) {
                    never++;
                    at = budget;
                }
                nsum += at;
            }
            need[c] = nsum / nseeds;
            printf(" %9.1fx  %s%.1f%s\n", exp(g / nseeds), never ? ">=" : "", need[c],
                   never ? " (not reached by every seed)" : "");
        }
        geo_ratio += log(need[2] / need[0]);
        geo_n++;
        /* OpenBLAS on the same data: the best mcts+heuristic kernel, measured with baseline */
        mct_sched *bs;
        if (best_sched[0] && !mct_sched_parse(&w, best_sched, &bs, NULL, 0)) {
            mct_meas_cand cd = {.sched = bs};
            mct_meas_result res;
            if (!mct_meas_run(mblas, &w, &cd, &res) && res.status == MCT_MEAS_OK &&
                res.has_baseline)
                printf("  OpenBLAS (%s): %.2f GFLOP/s; best mcts+heuristic kernel %.2f GFLOP/s "
                       "= %.2fx OpenBLAS\n    %s\n", res.base_name, res.base_gflops, res.gflops,
                       res.base_median_s / res.median_s, best_sched);
            else
                printf("  OpenBLAS comparison unavailable: %s\n", res.detail);
            mct_sched_destroy(bs);
        }
        for (int c = 0; c < NCFG; c++)
            for (int s = 0; s < nseeds; s++)
                free(curves[c][s]);
        fflush(stdout);
    }
    if (geo_n)
        printf("\nsamples to reach evolutionary's full-budget best: evolutionary / "
               "mcts+heuristic = %.2fx (geometric mean over %d layers; > 1: mcts+heuristic "
               "needs fewer)\n", exp(geo_ratio / geo_n), geo_n);
    printf("total time %ld s\n", (long)(time(NULL) - t0));
    mct_meas_destroy(meas);
    mct_meas_destroy(mbase);
    mct_meas_destroy(mblas);
    mct_db_close(db);
    char rm[128];
    snprintf(rm, sizeof rm, "rm -rf '%s'", dbdir);
    if (system(rm))
        fprintf(stderr, "bench-search: could not remove %s\n", dbdir);
    return 0;
}
