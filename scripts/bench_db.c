/* Benchmark of the tuning database: import throughput of 100,000 best records, each with the
 * trial of its schedule (JSON Lines, one transaction), get-best latency (median, p99) on that
 * database, size on disk per record, and the nearest-M fallback latency. Targets: get-best
 * median under 2 us; import under 5 s. Run by `make bench`; the database lives in a fresh
 * temporary folder. */
#include "db/db.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NREC 100000
#define NGET 200000

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmpd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void workload_of(int i, char *buf, size_t len)
{
    snprintf(buf, len, "matmul f32 nt M=%d N=%d K=4096 epi=none", i % 500 + 1,
             64 * ((i / 500) % 200 + 1));
}

int main(void)
{
    char dir[] = "/tmp/mctune-bench-db-XXXXXX", file[128], err[1024], wl[256], cpu[17];
    mct_db *db = NULL;
    mct_db_report rep;
    mct_db_stats st;
    mct_db_rec r;
    double *lat = malloc(NGET * sizeof *lat);
    uint8_t (*keys)[16] = malloc((size_t)NREC * 16);
    int ret = 1;
    if (!lat || !keys || !mkdtemp(dir))
        return 1;
    snprintf(file, sizeof file, "%s/records.jsonl", dir);
    uint64_t key = mct_cpu_key(mct_cpu_host());
    mct_cpu_key_format(key, cpu);
    FILE *f = fopen(file, "w");
    if (!f)
        goto fail;
    for (int i = 0; i < NREC; i++) {
        mct_workload w;
        workload_of(i, wl, sizeof wl);
        if (mct_wl_parse(wl, &w, err, sizeof err) < 0) {
            fprintf(stderr, "bench_db: %s\n", err);
            goto fail;
        }
        mct_wl_hash(&w, keys[i]);
        /* a best record and the trial of its schedule (an import refuses a best without one) */
        for (int j = 0; j < 2; j++)
            fprintf(f, "{\"type\":\"%s\",\"workload\":\"%s\",\"cpu\":\"%s\",\"threads\":1,"
                    "\"schedule\":\"tile(i, %d); tile(j, 64); tile(k, 256); reorder(i0, j0, k0, "
                    "k1, i1, j1); unroll(k1, 4)\",\"median_ns\":%d.5,\"spread_ns\":12.25,"
                    "\"gflops\":%.3f,\"samples\":128,\"search\":\"mcts\",\"guide\":"
                    "\"heuristic\",\"compiler\":\"gcc 12.2.0\",\"flags\":\"-O3 -march=native "
                    "-fopenmp\",\"tool\":\"mctune 0.1.0\",\"timestamp\":1760000000,\"model\":"
                    "\"llama-3-8b\"}\n", j ? "trial" : "best", wl, cpu, 6 * (i % 8 + 1), 10000 + i,
                    50.0 + i % 100);
    }
    fclose(f);
    if (mct_db_open(dir, 0, err, sizeof err, &db) < 0) {
        fprintf(stderr, "bench_db: %s\n", err);
        goto fail;
    }
    double t0 = now();
    if (mct_db_import(db, file, NULL, NULL, &rep) < 0) {
        fprintf(stderr, "bench_db: %s\n", mct_db_errmsg(db));
        goto fail;
    }
    double t_imp = now() - t0;
    if (rep.added != 2 * NREC) {
        fprintf(stderr, "bench_db: imported %zu items, expected %d\n", rep.added, 2 * NREC);
        goto fail;
    }
    /* get-best: random keys, each call timed */
    srand(12345);
    /* steady state of a serving process: every page mapped once (first-touch page faults of
     * the 100 MB map are not what a lookup costs afterwards) */
    double tw = now();
    for (int i = 0; i < NREC; i++)
        mct_db_get_best(db, keys[i], key, 1, &r);
    tw = now() - tw;
    double t1 = now();
    for (int i = 0; i < NGET; i++) {
        int k = rand() % NREC;
        double a = now();
        int rc = mct_db_get_best(db, keys[k], key, 1, &r);
        lat[i] = now() - a;
        if (rc != MCT_OK) {
            fprintf(stderr, "bench_db: get %d: %s\n", k, mct_db_errmsg(db));
            goto fail;
        }
    }
    double t_get = now() - t1;
    qsort(lat, NGET, sizeof *lat, cmpd);
    /* nearest-M fallback: an M that is not stored */
    double nm[2000];
    for (int i = 0; i < 2000; i++) {
        mct_workload w;
        snprintf(wl, sizeof wl, "matmul f32 nt M=%d N=%d K=4096 epi=none", 600 + i,
                 64 * (i % 200 + 1));
        mct_wl_parse(wl, &w, NULL, 0);
        double a = now();
        int rc = mct_db_get_best_nearest_m(db, &w, key, 1, &r);
        nm[i] = now() - a;
        if (rc != MCT_OK || !strstr(r.workload, "M=500 ")) {
            fprintf(stderr, "bench_db: nearest M for %s: %d %s\n", wl, rc, r.workload);
            goto fail;
        }
    }
    qsort(nm, 2000, sizeof *nm, cmpd);
    if (mct_db_stats_get(db, &st) < 0)
        goto fail;
    printf("records            %d best records (+ %zu workloads), cpu %s\n", NREC, st.workloads,
           cpu);
    printf("import             %.3f s, %.0f records/s (target: 100,000 in < 5 s)\n", t_imp,
           NREC / t_imp);
    printf("get-best           median %.3f us, p99 %.3f us, max %.1f us, %.0f lookups/s "
           "(target: median < 2 us)\n", lat[NGET / 2] * 1e6, lat[NGET * 99 / 100] * 1e6,
           lat[NGET - 1] * 1e6, NGET / t_get);
    printf("first pass         %.3f us per lookup (cold map: includes page faults)\n",
           tw / NREC * 1e6);
    printf("nearest-M fallback median %.3f us, p99 %.3f us (200 tuned M per family)\n",
           nm[1000] * 1e6, nm[1980] * 1e6);
    printf("size on disk       %.1f MiB data file, %.0f bytes per record (%.0f bytes in use)\n",
           st.file_bytes / 1048576.0, (double)st.file_bytes / NREC, (double)st.used_bytes / NREC);
    ret = 0;
fail:
    mct_db_close(db);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_db: could not remove %s\n", dir);
    free(lat);
    free(keys);
    return ret;
}
