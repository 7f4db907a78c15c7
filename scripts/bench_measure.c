/* Measurement throughput: samples per minute for a batch of 64 distinct candidates of
 * `matmul f32 nt M=16 N=4096 K=4096`, with the split between compile and run time.
 * The candidates are register-tile variants (i, j, k tile sizes) of one schedule, lowered by the
 * codegen; the harness uses its default protocol (min 0.2 s and 5 timed calls per candidate,
 * B rotated from memory) and a fresh compile cache, so every candidate is compiled.
 * Usage: bench_measure [N_CANDIDATES]  (default 64). Target: >= 60 samples per minute. */
#include "tuner/measure.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv)
{
    int want = argc > 1 ? atoi(argv[1]) : 64;
    if (want < 1 || want > 64) {
        fprintf(stderr, "bench_measure: N_CANDIDATES '%s' must be in [1, 64]\n", argv[1]);
        return 2;
    }
    const char *wtext = "matmul f32 nt M=16 N=4096 K=4096 epi=none";
    mct_workload w;
    char err[512];
    if (mct_wl_parse(wtext, &w, err, sizeof err)) {
        fprintf(stderr, "bench_measure: %s\n", err);
        return 1;
    }
    static const int ti[] = {2, 4, 8, 16}, tj[] = {1, 2, 3, 4, 6}, tk[] = {16, 32, 48, 64};
    mct_sched *s[64] = {0};
    mct_meas_cand c[64];
    int n = 0;
    for (int a = 0; a < 4 && n < want; a++)
        for (int b = 0; b < 5 && n < want; b++)
            for (int k = 0; k < 4 && n < want; k++) {
                char text[512];
                if (tj[b] > 1)
                    snprintf(text, sizeof text,
                             "tile(i, %d); tile(j, %d); tile(k, %d); reorder(j0, i0, k0, i1, j1, "
                             "k1); cache_write(i0); vectorize(k1); unroll(i1, %d); unroll(j1, %d)",
                             ti[a], tj[b], tk[k], ti[a], tj[b]);
                else
                    snprintf(text, sizeof text,
                             "tile(i, %d); tile(k, %d); reorder(j, i0, k0, i1, k1); "
                             "cache_write(i0); vectorize(k1); unroll(i1, %d)",
                             ti[a], tk[k], ti[a]);
                if (mct_sched_parse(&w, text, &s[n], err, sizeof err)) {
                    fprintf(stderr, "bench_measure: skipping '%s': %s\n", text, err);
                    continue;
                }
                c[n] = (mct_meas_cand){.sched = s[n]};
                n++;
            }
    char dir[] = "/tmp/mctune-bench-measure-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("bench_measure: mkdtemp");
        return 1;
    }
    mct_meas_opts o;
    mct_meas_opts_default(&o);
    o.cache_dir = dir;
    mct_meas *m = NULL;
    if (mct_meas_create(&o, &m, err, sizeof err)) {
        fprintf(stderr, "bench_measure: %s\n", err);
        return 1;
    }
    mct_meas_result *r = calloc((size_t)n, sizeof *r);
    if (!r)
        return 1;
    printf("workload: %s; %d distinct candidates; fresh cache %s\n", wtext, n, dir);
    double t0 = now();
    int rc = mct_meas_batch(m, &w, c, n, r);
    double total = now() - t0;
    if (rc) {
        fprintf(stderr, "bench_measure: batch failed: %s: %s\n", mct_strerror(rc), r[0].detail);
        return 1;
    }
    mct_meas_counters ct;
    mct_meas_get_counters(m, &ct);
    int st[5] = {0}, best = -1;
    double compile_cpu = 0, timed = 0;
    for (int i = 0; i < n; i++) {
        st[r[i].status]++;
        compile_cpu += r[i].compile_s;
        timed += r[i].median_s * (double)r[i].runs;
        if (r[i].status == MCT_MEAS_OK && (best < 0 || r[i].median_s < r[best].median_s))
            best = i;
    }
    printf("statuses: ok %d, compile-error %d, crash %d, timeout %d, wrong %d\n", st[0], st[1],
           st[2], st[3], st[4]);
    printf("total %.1f s: compile phase %.1f s wall (%ld compiles, up to %ld at once, %.2f s "
           "each on average), run phase %.1f s wall (%ld children, %.1f s inside timed calls), "
           "set-up "
           "(inputs, oracle, driver) %.1f s\n",
           total, ct.compile_wall_s, ct.compiles, sysconf(_SC_NPROCESSORS_ONLN),
           ct.compiles ? compile_cpu / (double)ct.compiles : 0.0, ct.run_wall_s, ct.runs, timed,
           total - ct.compile_wall_s - ct.run_wall_s);
    if (best >= 0) {
        char text[4096];
        mct_sched_format(s[best], text, sizeof text);
        printf("fastest: %.3f ms, %.1f GFLOP/s: %s\n", r[best].median_s * 1e3, r[best].gflops,
               text);
    }
    printf("throughput: %.1f samples per minute (target >= 60)\n", (double)n / total * 60.0);
    mct_meas_destroy(m);
    for (int i = 0; i < n; i++)
        mct_sched_destroy(s[i]);
    free(r);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) {
    }
    return 0;
}
