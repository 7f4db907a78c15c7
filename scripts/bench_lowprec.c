/* Benchmark for low-precision weights (issue 15, item 5): Llama-3-8B projections (q_proj 4096x4096,
 * gate_proj 14336x4096, down_proj 4096x14336) at M = 1, 4, 16, 128, one thread, per weight format
 * (f32, bf16, i8, q4g32, q4g128), side by side in one run on the machine at hand:
 *   - our kernel of the format through the measurement harness (tuner/measure.h: compiled as
 *     `mctune gen` ships it, checked against OpenBLAS on the dequantized weights, weights rotated
 *     through copies larger than the last-level cache), with the best schedule the database holds
 *     for this CPU (--db) or else the fastest of the expert schedules below for its (format, M):
 *     the host's AMX and dot-product paths where its tier has them, and the widening one;
 *   - the f32 kernel of the same shape (the same way), the reference of the speed targets;
 *   - OpenBLAS sgemv (M=1, or sgemm when faster) / sgemm on the f32 (= dequantized) weights, as the
 *     harness times it beside the f32 kernel (same data, same child);
 *   - oneDNN's bf16 and int8 matmul (tuner/baseline_lp.h) for bf16 and i8, timed here: warm-up,
 *     median of repeats, round-robin over enough prepared copies that their weights exceed the
 *     last-level cache (the same rotation as the harness; "warm" in the row when one copy is all
 *     that fits in memory's budget).
 * Printed first: the measured FMA peak of one core and the read bandwidth of one core (a streaming
 * sum over a buffer several times the last-level cache). Per row: the weight bytes one call reads,
 * the GB/s of weights achieved, its share of the read bandwidth, and the ratio to the targets.
 *   build/bench/bench_lowprec [--db DB] [--quick] [--min-time S] [--only SUBSTRING]
 * --quick: q_proj only, M = 1 and 16, formats f32, i8, q4g32, short timings (a functional run). */
#define _GNU_SOURCE 1
#include "codegen/codegen.h"
#include "db/db.h"
#include "runtime/quant.h"
#include "tuner/baseline_lp.h"
#include "tuner/measure.h"

#include <immintrin.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int cmpd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Expert schedules per (format class, M): chosen by a few measurements on the development host
 * (scripts/expert-schedules.txt's f32 forms, the weights widened where it paid). M=1: the dot
 * form (rows of B at once, k vectorized; 16 rows and 32-wide k for the narrow formats, which
 * need more work per load to hide the widening). M=4 and 16: the M=16 f32 tile with B prepacked
 * in the format and widened at each load. M=128: widened once into an f32 panel inside the
 * kernel (widen(B, panel)), so the register tile is the f32 one and the conversion is shared by
 * 128 rows (about 3x the per-load widening there). */
static const char *expert(int quant, long M)
{
    if (M == 1)
        return quant ? "tile(j, 16); tile(k, 32); reorder(i, j0, k0, j1, k1); cache_write(j0); "
                       "unroll(j1, 16); vectorize(k1)"
                     : "tile(j, 8); tile(k, 16); reorder(i, j0, k0, j1, k1); cache_write(j0); "
                       "unroll(j1, 8); vectorize(k1)";
    if (M <= 16)
        return "tile(i, 16, 8); tile(j, 512, 32); tile(k, 256); reorder(j0, k0, i0, j1, i1, k1, "
               "i2, j2); pack(A, i0, i2); prepack(B, j2, k1); cache_write(i1); unroll(k1, 4); "
               "unroll(i2, 8); vectorize(j2); prefetch(B, k1, 16)";
    return quant ? "tile(i, 128, 8); tile(j, 512, 32); tile(k, 512); reorder(j0, k0, i0, j1, i1, "
                   "k1, i2, j2); pack(B, i0, j2); widen(B, panel); cache_write(i1); unroll(k1, 4); "
                   "unroll(i2, 8); vectorize(j2)"
                 : "tile(i, 128, 8); tile(j, 512, 32); tile(k, 512); reorder(j0, k0, i0, j1, i1, "
                   "k1, i2, j2); prepack(B, j2, k1); cache_write(i1); unroll(k1, 4); unroll(i2, "
                   "8); vectorize(j2); prefetch(C, i1, 1)";
}

/* The expert schedules measured for a (format, M): the paths of the ISA first where the host's
 * target takes them (mct_cg_dot_path), then the widening schedule of expert(); the fastest is the
 * row's. widen(B, amx) from M=16 (a tile of 16 or 32 rows and 32 columns, K whole), widen(B, dot)
 * up to M=16 (the M=1 form over 8 rows of B; 4 x 4 register tiles above), as the heuristic guide
 * proposes them. Returns how many (at most 3) are in out. */
static int experts(const mct_workload *w, const mct_target *t, int quant, long M,
                   const char *out[3], const char *names[3])
{
    static const char *amx16 = "tile(i, 16); tile(j, 32); reorder(j0, i0, k, i1, j1); "
                               "cache_write(i0); widen(B, amx)";
    static const char *amx32 = "tile(i, 32); tile(j, 32); reorder(j0, i0, k, i1, j1); "
                               "cache_write(i0); widen(B, amx)";
    static const char *dot1 = "tile(j, 8); tile(k, 64); reorder(i, j0, k0, j1, k1); "
                              "cache_write(j0); unroll(j1, 8); vectorize(k1); widen(B, dot)";
    static const char *dot4 = "tile(i, 4); tile(j, 4); tile(k, 64); reorder(j0, i0, k0, i1, j1, "
                              "k1); cache_write(i0); unroll(i1, 4); unroll(j1, 4); vectorize(k1); "
                              "widen(B, dot)";
    const char *cand[2] = {NULL, NULL}, *cname[2] = {"expert amx", "expert dot"};
    int n = 0;
    if (quant && M >= 16)
        cand[0] = M >= 32 ? amx32 : amx16;
    if (quant && M <= 16)
        cand[1] = M == 1 ? dot1 : dot4;
    for (int i = 0; i < 2; i++) {
        mct_sched *s = NULL;
        if (!cand[i] || mct_sched_parse(w, cand[i], &s, NULL, 0))
            continue;
        if (mct_cg_dot_path(s, t, NULL, 0) > 0) {
            names[n] = cname[i];
            out[n++] = cand[i];
        }
        mct_sched_destroy(s);
    }
    names[n] = "expert";
    out[n++] = expert(quant, M);
    return n;
}

/* The targets of issue 15 against the f32 tuned kernel: M=1 bf16 1.8x, i8 3.2x, 4-bit 5x (and 85%
 * of the read bandwidth in weight bytes); M=16 i8 and 4-bit 1.5x; M=128 every format 1x. 0: none. */
static double target(int fmt, long M)
{
    if (fmt == MCT_RT_WF_F32)
        return 0;
    if (M == 1)
        return fmt == MCT_RT_WF_BF16 ? 1.8 : fmt == MCT_RT_WF_I8 ? 3.2 : 5.0;
    if (M == 16)
        return fmt == MCT_RT_WF_BF16 ? 0 : 1.5;
    return M == 128 ? 1.0 : 0;
}

#include "scripts/bench_peak.h"

static size_t llc_bytes(void)
{
    long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
    return l3 > 0 ? (size_t)l3 : (size_t)32 << 20;
}

/* Read bandwidth of one core: the fastest of 5 streaming sums over a buffer of 4x the LLC (at
 * least 256 MiB, at most 1 GiB as the harness's rotation), read as 8 concurrent streams (as a
 * kernel reads 8 or more weight rows at once: one stream alone is bound by the prefetcher, not
 * the memory), 64 independent sums so the adds never limit it. GB/s; *mib the size. */
static double read_bandwidth(size_t *mib)
{
    size_t bytes = 4 * llc_bytes();
    if (bytes < ((size_t)256 << 20))
        bytes = (size_t)256 << 20;
    if (bytes > ((size_t)1 << 30))
        bytes = (size_t)1 << 30;
    size_t n = bytes / sizeof(float) / 64 * 64, part = n / 8;
    float *p = aligned_alloc(64, n * sizeof(float));
    *mib = n * sizeof(float) >> 20;
    if (!p)
        return 0;
    for (size_t i = 0; i < n; i++)
        p[i] = (float)(i & 7);
    double best = 0, sink = 0;
    for (int rep = 0; rep < 5; rep++) {
        float acc[64] = {0};
        double t0 = now();
        for (size_t i = 0; i < part; i += 8)
            for (int st = 0; st < 8; st++)
#pragma omp simd
                for (int l = 0; l < 8; l++)
                    acc[st * 8 + l] += p[(size_t)st * part + i + l];
        double t = now() - t0;
        for (int l = 0; l < 64; l++)
            sink += acc[l];
        double g = (double)(8 * part * sizeof(float)) / t * 1e-9;
        best = g > best ? g : best;
    }
    if (sink == 1.2345)
        printf("?");
    free(p);
    return best;
}

/* oneDNN's low-precision matmul of one shape: enough prepared copies (each its own reordered
 * weights) that they exceed the LLC twice, capped at 1 GiB of weights; warm-up, then calls
 * round-robin until min_time and 5 calls; the median. 0 and *ms, or nonzero with why. */
static int onednn_ms(const char *fmt, long M, long N, long K, double min_time, const float *A,
                     const float *B, size_t wbytes, double *ms, int *copies, char *label,
                     size_t llen, char *why, size_t wlen)
{
    enum { MAXC = 32 };
    mct_base_lp *l[MAXC] = {0};
    double *t = NULL;
    int n = (int)((2 * llc_bytes()) / wbytes + 1), rc = -1;
    if (n > MAXC)
        n = MAXC;
    while (n > 1 && (double)n * (double)wbytes > (double)((size_t)1 << 30))
        n--;
    for (int i = 0; i < n; i++)
        if (mct_base_lp_open(fmt, 1, M, N, K, 1, A, B, &l[i], why, wlen))
            goto fail;
    snprintf(label, llen, "%s", mct_base_lp_label(l[0]));
    for (int i = 0; i < n; i++)
        if (mct_base_lp_run(l[i])) {
            snprintf(why, wlen, "oneDNN failed to run");
            goto fail;
        }
    long cap = 100000, runs = 0;
    if (!(t = malloc(sizeof *t * (size_t)cap)))
        goto fail;
    double spent = 0;
    while ((spent < min_time || runs < 5) && runs < cap) {
        double s = now();
        mct_base_lp_run(l[runs % n]);
        t[runs] = now() - s;
        spent += t[runs++];
    }
    qsort(t, (size_t)runs, sizeof *t, cmpd);
    *ms = t[runs / 2] * 1e3;
    *copies = n;
    rc = 0;
fail:
    free(t);
    for (int i = 0; i < n; i++)
        mct_base_lp_close(l[i]);
    return rc;
}

int main(int argc, char **argv)
{
    const char *dbpath = NULL, *only = NULL;
    int quick = 0;
    double min_time = 0.1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--db") && i + 1 < argc)
            dbpath = argv[++i];
        else if (!strcmp(argv[i], "--only") && i + 1 < argc)
            only = argv[++i];
        else if (!strcmp(argv[i], "--min-time") && i + 1 < argc)
            min_time = atof(argv[++i]);
        else if (!strcmp(argv[i], "--quick"))
            quick = 1;
        else {
            fprintf(stderr, "usage: bench_lowprec [--db DB] [--quick] [--min-time S] "
                    "[--only SUBSTRING]\n");
            return 2;
        }
    }
    if (quick && min_time > 0.05)
        min_time = 0.05;
    static const struct { const char *name; long N, K; } shapes[] = {
        {"q_proj", 4096, 4096}, {"gate_proj", 14336, 4096}, {"down_proj", 4096, 14336}};
    static const long Ms[] = {1, 4, 16, 128};
    static const char *const fmts[] = {"f32", "bf16", "i8", "q4g32", "q4g128"};
    static const char *const qfmts[] = {"f32", "i8", "q4g32"};
    int nshape = quick ? 1 : 3, nm = 4, nf = quick ? 3 : 5;
    const char *const *fl = quick ? qfmts : fmts;
    static const long qMs[] = {1, 16};
    const long *ml = quick ? qMs : Ms;
    if (quick)
        nm = 2;

    char err[512];
    mct_db *db = NULL;
    if (dbpath && mct_db_open(dbpath, MCT_DB_RDONLY, err, sizeof err, &db)) {
        fprintf(stderr, "bench_lowprec: --db %s: %s\n", dbpath, err);
        return 1;
    }
    mct_tier tier = mct_cpu_tier();
    const mct_cpu *host = mct_cpu_host();
    mct_cpu at;
    mct_cpu_restrict(host, tier, &at);
    uint64_t cpukey = mct_cpu_key(&at);
    mct_target host_t = mct_target_of_cpu(host, tier);  /* what the harness lowers for (1 thread) */
    host_t.threads = 1;
    const char *isa;
    double peak = peak_gflops(tier, &isa);
    size_t mib;
    double bw = read_bandwidth(&mib);
    mct_meas_opts o;
    mct_meas_opts_default(&o);
    o.threads = 1;
    o.min_time_s = min_time;
    o.min_runs = 5;
    /* two harnesses: the f32 kernel's times OpenBLAS beside it in the same child */
    mct_meas *mh[2] = {NULL, NULL};
    for (int i = 0; i < 2; i++) {
        o.baseline = i;
        if (mct_meas_create(&o, &mh[i], err, sizeof err)) {
            fprintf(stderr, "bench_lowprec: harness: %s\n", err);
            mct_meas_destroy(mh[0]);
            mct_db_close(db);
            return 1;
        }
    }
    printf("low-precision weights vs f32, 1 thread, weights rotated from memory (LLC %zu MiB)\n",
           llc_bytes() >> 20);
    printf("cpu: %s \"%s\" family %d model %d; tier %s%s; peak %s measured %.1f GFLOP/s; read "
           "bandwidth (one core, streaming sum over %zu MiB) %.1f GB/s\n", host->vendor,
           host->brand, host->family, host->model, mct_tier_name(tier),
           tier < mct_cpu_tier_of(host) ? " (MCTUNE_TIER)" : "", isa, peak, mib, bw);
    printf("schedules: %s\n", db ? "the database's best for this CPU at 1 thread, else expert"
                                 : "expert (per format and M, in this file)");
    printf("| shape | M | weights | MB/call | sched | ms | GB/s | %% of BW | x f32 | target | met "
           "| OpenBLAS (f32) ms | x OpenBLAS | oneDNN ms | x oneDNN |\n");
    printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    fflush(stdout);
    int nrow = 0, ntarget = 0, nmet = 0;
    char notes[8][400];
    int nnote = 0;
    for (int si = 0; si < nshape; si++) {
        if (only && !strstr(shapes[si].name, only))
            continue;
        long N = shapes[si].N, K = shapes[si].K;
        float *A = NULL, *B = NULL;
        for (int mi = 0; mi < nm; mi++) {
            long M = ml[mi];
            double f32_ms = 0, ob_ms = 0;
            char ob_call[16] = "";
            for (int fi = 0; fi < nf; fi++) {
                int fmt, g;
                mct_rt_wfmt_parse(fl[fi], &fmt, &g, NULL, 0);
                char key[256];
                snprintf(key, sizeof key, "matmul f32 nt M=%ld N=%ld K=%ld epi=none%s%s", M, N,
                         K, fmt ? " w=" : "", fmt ? fl[fi] : "");
                mct_workload w;
                if (mct_wl_parse(key, &w, err, sizeof err)) {
                    fprintf(stderr, "bench_lowprec: %s: %s\n", key, err);
                    continue;
                }
                const char *list[3], *names[3], *src = "expert";
                int nlist = experts(&w, &host_t, fmt != MCT_RT_WF_F32, M, list, names);
                mct_db_rec rec;
                if (db) {
                    uint8_t h[16];
                    mct_wl_hash(&w, h);
                    if (!mct_db_get_best(db, h, cpukey, 1, &rec)) {
                        list[0] = rec.schedule;
                        names[0] = "db";
                        nlist = 1;
                    }
                }
                /* each schedule of the list measured, the fastest kept; the libraries on f32
                 * weights run beside the f32 kernel only: the dequantized weights are f32 weights
                 * of the same shape, their time is the same */
                mct_meas_result r;
                int hr = MCT_EINVAL, have = 0;
                for (int li = 0; li < nlist; li++) {
                    mct_sched *s = NULL;
                    if (mct_sched_parse(&w, list[li], &s, err, sizeof err)) {
                        fprintf(stderr, "bench_lowprec: %s: schedule '%s': %s\n", key, list[li],
                                err);
                        continue;
                    }
                    mct_meas_cand c = {s, NULL, NULL, 0};
                    mct_meas_result one;
                    int h1 = mct_meas_run(mh[fmt == MCT_RT_WF_F32], &w, &c, &one);
                    mct_sched_destroy(s);
                    int better = !h1 && one.status == MCT_MEAS_OK &&
                                 (!have || one.median_s < r.median_s);
                    if (better || (!have && li == nlist - 1)) {
                        r = one;
                        hr = h1;
                        src = names[li];
                        have = better;
                    }
                }
                double wbytes = fmt ? (double)mct_rt_q_plain_bytes(fmt, g, N, K)
                                    : 4.0 * (double)N * (double)K;
                if (hr || r.status != MCT_MEAS_OK) {
                    printf("| %s | %ld | %s | %.1f | %s | %s: %.200s | | | | | | | | | |\n",
                           shapes[si].name, M, fl[fi], wbytes * 1e-6, src,
                           hr ? "harness error" : mct_meas_status_name(r.status),
                           hr ? mct_strerror(hr) : r.detail);
                    continue;
                }
                double ms = r.median_s * 1e3;
                if (fmt == MCT_RT_WF_F32) {
                    f32_ms = ms;
                    if (r.has_baseline) {
                        ob_ms = r.base_median_s * 1e3;
                        snprintf(ob_call, sizeof ob_call, "%.15s", strncmp(r.base_name,
                                 "cblas_", 6) ? r.base_name : r.base_name + 6);
                    }
                }
                double gbs = wbytes / r.median_s * 1e-9, x = f32_ms > 0 ? f32_ms / ms : 0;
                double tg = target(fmt, M);
                int met = tg > 0 && x >= tg && (M != 1 || gbs >= 0.85 * bw);
                char tgs[48] = "-", mets[8] = "-";
                if (tg > 0) {
                    snprintf(tgs, sizeof tgs, "%.1fx%s", tg, M == 1 ? ", 85% BW" : "");
                    snprintf(mets, sizeof mets, "%s", met ? "yes" : "no");
                    ntarget++;
                    nmet += met;
                }
                /* oneDNN where it has the format: bf16, i8 */
                char dn[64] = "-", dnx[32] = "-";
                if (fmt == MCT_RT_WF_BF16 || fmt == MCT_RT_WF_I8) {
                    if (!A) {
                        A = malloc(sizeof(float) * (size_t)(128 * K));
                        B = malloc(sizeof(float) * (size_t)(N * K));
                        if (A && B) {
                            uint64_t st = 7;
                            for (long i = 0; i < 128 * K; i++)
                                st = st * 6364136223846793005ull + 1442695040888963407ull,
                                A[i] = (float)((st >> 40) & 0xffff) / 32768.0f - 1.0f;
                            for (long i = 0; i < N * K; i++)
                                st = st * 6364136223846793005ull + 1442695040888963407ull,
                                B[i] = (float)((st >> 40) & 0xffff) / 32768.0f - 1.0f;
                        }
                    }
                    double dms;
                    int copies;
                    char label[200], why[300];
                    if (A && B && !onednn_ms(fl[fi], M, N, K, min_time, A, B,
                                             fmt == MCT_RT_WF_BF16 ? 2 * (size_t)(N * K)
                                                                   : (size_t)(N * K),
                                             &dms, &copies, label, sizeof label, why,
                                             sizeof why)) {
                        snprintf(dn, sizeof dn, "%.3f%s", dms, copies > 1 ? "" : " (warm)");
                        snprintf(dnx, sizeof dnx, "%.2fx", dms / ms);
                        int seen = 0;
                        for (int q = 0; q < nnote; q++)
                            seen |= !strcmp(notes[q], label);
                        if (!seen && nnote < 8)
                            snprintf(notes[nnote++], sizeof notes[0], "%s", label);
                    } else if (nnote < 8) {
                        snprintf(notes[nnote++], sizeof notes[0], "oneDNN %s not compared: %s",
                                 fl[fi], A && B ? why : "out of memory");
                    }
                }
                char xs[32] = "-", obs[48] = "-", obx[32] = "-";
                if (x > 0)
                    snprintf(xs, sizeof xs, "%.2fx", x);
                if (ob_ms > 0) {
                    snprintf(obs, sizeof obs, "%.3f %s", ob_ms, ob_call);
                    snprintf(obx, sizeof obx, "%.2fx", ob_ms / ms);
                }
                printf("| %s | %ld | %s | %.1f | %s | %.3f | %.1f | %.0f%% | %s | %s | %s | %s | "
                       "%s | %s | %s |\n", shapes[si].name, M, fl[fi], wbytes * 1e-6, src, ms,
                       gbs, bw > 0 ? 100 * gbs / bw : 0, xs, tgs, mets, obs, obx, dn, dnx);
                fflush(stdout);
                nrow++;
            }
        }
        free(A);
        free(B);
    }
    printf("(x f32: the f32 kernel's median time over this one's, same shape and M; GB/s: weight "
           "bytes per call, scales included, over the median; OpenBLAS on f32 weights, which is "
           "what dequantized weights are: at M=1 the faster of sgemv and sgemm; x OpenBLAS, x "
           "oneDNN: their time over ours; oneDNN converts A per call, counted)\n");
    for (int q = 0; q < nnote; q++)
        printf("oneDNN: %s\n", notes[q]);
    printf("%d rows, targets met: %d of %d\n", nrow, nmet, ntarget);
    mct_meas_destroy(mh[0]);
    mct_meas_destroy(mh[1]);
    mct_db_close(db);
    return 0;
}
