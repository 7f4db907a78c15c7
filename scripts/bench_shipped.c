/* The measured kernel is the shipped kernel: per tuned workload of this CPU (1 thread), the speed
 * stored at tuning time, the same schedule measured again by the tuner's harness, and the same
 * kernel called through the generated library (NAME_matmul_packed for kernels tuned with a
 * prepacked B, else NAME_matmul), side by side in one run.
 *
 * Both live runs go through one harness (mct_meas): same child-process protocol, same input
 * data, B rotated through copies larger than the last-level cache, same compiler flags. The
 * library candidate is the generated NAME.c itself (the text `mctune gen` wrote, compiled with
 * the harness's flags, which are the generated Makefile's `-O2 -fopenmp` plus -fPIC) with a
 * small adapter to the kernel ABI. Rounds alternate the two and the median of the rounds is
 * printed.
 *
 *   build/bench/bench_shipped [--db PATH] [--budget N] [--rounds N]
 * Without --db it first tunes a few shapes into a scratch database (`mctune tune`, $MCTUNE or
 * build/mctune). */
#define _GNU_SOURCE 1
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codegen/codegen.h"
#include "db/db.h"
#include "runtime/cpu.h"
#include "tests/check.h"
#include "tuner/measure.h"

#define MAXREC 64

typedef struct {
    mct_db_rec r[MAXREC];
    int n;
    uint64_t cpu;
} recs;

static int keep(const mct_db_rec *r, void *p)
{
    recs *c = p;
    if (r->cpu == c->cpu && r->threads == 1 && c->n < MAXREC)
        c->r[c->n++] = *r;
    return 0;
}

static int cmpd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The generated library plus an adapter with the kernel ABI the harness calls. A prepacked
 * kernel's "packed B" is a pointer to the library's packed weights (one NAME_prepack_b per B
 * copy the harness rotates through, so the weights still stream from memory). */
static char *adapter(const char *lib, const mct_workload *w, int prepacked)
{
    static const char *acts[] = {"SHP_ACT_NONE", "SHP_ACT_RELU", "SHP_ACT_GELU", "SHP_ACT_SILU"};
    const char *lay = w->layout == MCT_NN ? "SHP_NN" : "SHP_NT";
    char *s = NULL;
    int n;
    if (prepacked)
        n = asprintf(&s, "%s\n"
            "size_t ship_packed_size(long N, long K) { return (size_t)N * (size_t)K + 16; }\n"
            "void ship_pack_b(long N, long K, const float *B, long ldb, float *Bp)\n"
            "{ shp_packed *P = NULL; if (shp_prepack_b(%s, N, K, B, ldb, &P)) P = NULL;\n"
            "  memcpy(Bp, &P, sizeof P); }\n"
            "int ship(long M, long N, long K, const float *A, long lda, const float *B, long ldb,\n"
            "         float *C, long ldc, const float *bias, long batch, long group, long sA,\n"
            "         long sB, long sC)\n"
            "{ shp_packed *P; (void)N; (void)K; (void)ldb; (void)batch; (void)group; (void)sA;\n"
            "  (void)sB; (void)sC; memcpy(&P, B, sizeof P); if (!P) return -2;\n"
            "  return shp_matmul_packed(P, M, A, lda, C, ldc, bias, %s, %d); }\n",
            lib, lay, acts[w->act], w->beta);
    else
        n = asprintf(&s, "%s\n"
            "int ship(long M, long N, long K, const float *A, long lda, const float *B, long ldb,\n"
            "         float *C, long ldc, const float *bias, long batch, long group, long sA,\n"
            "         long sB, long sC)\n"
            "{ (void)batch; (void)group; (void)sA; (void)sB; (void)sC;\n"
            "  return shp_matmul(%s, M, N, K, A, lda, B, ldb, C, ldc, bias, %s, %d); }\n",
            lib, lay, acts[w->act], w->beta);
    return n < 0 ? NULL : s;
}

int main(int argc, char **argv)
{
    const char *dbp = NULL, *mc = getenv("MCTUNE");
    int budget = 8, rounds = 3;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--db") && i + 1 < argc)
            dbp = argv[++i];
        else if (!strcmp(argv[i], "--budget") && i + 1 < argc)
            budget = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
            rounds = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_shipped [--db PATH] [--budget N] [--rounds N]\n");
            return 2;
        }
    }
    if (budget < 2 || rounds < 1 || rounds > 15) {
        fprintf(stderr, "bench_shipped: --budget must be >= 2 and --rounds 1..15\n");
        return 2;
    }
    if (!mc)
        mc = "build/mctune";
    char tmp[] = "/tmp/mct-bench-shipped-XXXXXX", path[600], cmd[2048];
    if (!mkdtemp(tmp)) {
        perror("mkdtemp");
        return 1;
    }
    char dbbuf[700];
    if (!dbp) {
        static const char *wls[] = {
            "matmul f32 nt M=1 N=2048 K=2048 epi=none",
            "matmul f32 nt M=16 N=2048 K=2048 epi=none",
            "matmul f32 nt M=128 N=2048 K=2048 epi=bias",
            "matmul f32 nn M=16 N=1024 K=1024 epi=none",
        };
        snprintf(dbbuf, sizeof dbbuf, "%s/db", tmp);
        dbp = dbbuf;
        for (size_t i = 0; i < sizeof wls / sizeof wls[0]; i++) {
            printf("tuning %s (budget %d)\n", wls[i], budget);
            fflush(stdout);
            snprintf(cmd, sizeof cmd, "%s tune --workload '%s' --budget %d --db %s --cache %s/cc "
                     "--min-time 0.05 >/dev/null", mc, wls[i], budget, dbp, tmp);
            if (system(cmd) != 0) {
                fprintf(stderr, "bench_shipped: '%s' failed\n", cmd);
                return 1;
            }
        }
    }
    /* this CPU as tuned for the tier in use (MCTUNE_TIER may ask for a lower one: then the
     * records are stored under the restricted record, as `mctune tune --tier` does) */
    mct_cpu rec;
    mct_cpu_restrict(mct_cpu_host(), mct_cpu_tier(), &rec);
    char key[17];
    mct_cpu_key_format(mct_cpu_key(&rec), key);
    snprintf(cmd, sizeof cmd, "%s gen --db %s --out %s/out --name shp --cpus %s >/dev/null",
             mc, dbp, tmp, key);
    if (system(cmd) != 0) {
        fprintf(stderr, "bench_shipped: '%s' failed\n", cmd);
        return 1;
    }
    snprintf(path, sizeof path, "%s/out/shp.c", tmp);
    char *lib = check_slurp(path, NULL);
    snprintf(path, sizeof path, "%s/out/shp.h", tmp);
    char *hdr = check_slurp(path, NULL);
    if (!lib || !hdr) {
        fprintf(stderr, "bench_shipped: cannot read the generated library in %s/out\n", tmp);
        return 1;
    }
    /* one text: the header inlined where NAME.c includes it */
    char *inc = strstr(lib, "#include \"shp.h\"");
    char *full = NULL;
    if (!inc || asprintf(&full, "%.*s%s%s", (int)(inc - lib), lib, hdr,
                         inc + strlen("#include \"shp.h\"")) < 0) {
        fprintf(stderr, "bench_shipped: unexpected generated library layout\n");
        return 1;
    }

    /* the library runs the table of those records (on a host above their tier, the ladder alone
     * would not pick a lower tier's table: pin it as a user would) */
    setenv("SHP_CPU", key, 1);
    recs R = {.n = 0, .cpu = mct_cpu_key(&rec)};
    mct_db *db = NULL;
    char err[512];
    if (mct_db_open(dbp, MCT_DB_RDONLY, err, sizeof err, &db) ||
        mct_db_iter(db, MCT_DB_BEST, keep, &R)) {
        fprintf(stderr, "bench_shipped: %s\n", db ? mct_db_errmsg(db) : err);
        return 1;
    }
    mct_db_close(db);
    mct_meas_opts o;
    mct_meas_opts_default(&o);
    snprintf(path, sizeof path, "%s/cc-bench", tmp);
    o.cache_dir = path;
    o.min_time_s = 0.3;
    mct_meas *m = NULL;
    if (mct_meas_create(&o, &m, err, sizeof err)) {
        fprintf(stderr, "bench_shipped: %s\n", err);
        return 1;
    }
    const mct_cpu *c = mct_cpu_host();
    printf("cpu: %s family %d model %d, kernels for tier %s (record %s); 1 thread; B rotated from memory; median of %d "
           "rounds, each the harness's median\n", c->vendor, c->family, c->model,
           mct_tier_name(mct_cpu_tier()), key, rounds);
    printf("%-48s %10s %10s %10s %7s\n", "workload (GFLOP/s)", "at tuning", "harness", "library",
           "lib/har");
    double ratios[MAXREC];
    int nr = 0;
    for (int i = 0; i < R.n; i++) {
        mct_workload w;
        mct_sched *s = NULL;
        if (mct_wl_parse(R.r[i].workload, &w, NULL, 0) || w.op != MCT_OP_MATMUL ||
            mct_sched_parse(&w, R.r[i].schedule, &s, NULL, 0))
            continue;
        int pre = mct_sched_prepacked(s);
        char *src = adapter(full, &w, pre);
        double gh[15], gl[15];
        int ok = src != NULL;
        for (int q = 0; q < rounds && ok; q++) {
            mct_meas_cand cs[2] = {{.sched = s}, {.source = src, .fn = "ship", .prepacked = pre}};
            mct_meas_result res[2];
            /* alternate which one runs first */
            int a = q % 2, b = 1 - a;
            mct_meas_cand two[2] = {cs[a], cs[b]};
            if (mct_meas_batch(m, &w, two, 2, res)) {
                ok = 0;
                break;
            }
            if (res[0].status != MCT_MEAS_OK || res[1].status != MCT_MEAS_OK) {
                printf("%-48.48s failed: %s / %s\n", R.r[i].workload, res[0].detail,
                       res[1].detail);
                ok = 0;
                break;
            }
            gh[q] = res[a == 0 ? 0 : 1].gflops;
            gl[q] = res[a == 0 ? 1 : 0].gflops;
        }
        if (ok) {
            qsort(gh, (size_t)rounds, sizeof gh[0], cmpd);
            qsort(gl, (size_t)rounds, sizeof gl[0], cmpd);
            double h = gh[rounds / 2], l = gl[rounds / 2];
            ratios[nr++] = l / h;
            printf("%-48.48s %10.2f %10.2f %10.2f %6.2fx%s\n", R.r[i].workload, R.r[i].gflops, h,
                   l, l / h, pre ? "  (prepacked B)" : "");
        }
        fflush(stdout);
        free(src);
        mct_sched_destroy(s);
    }
    if (nr) {
        qsort(ratios, (size_t)nr, sizeof ratios[0], cmpd);
        printf("library / harness: median %.3f, range %.3f .. %.3f over %d workloads\n",
               ratios[nr / 2], ratios[0], ratios[nr - 1], nr);
    } else
        printf("no tuned matmul workload of this CPU (1 thread) in %s\n", dbp);
    mct_meas_destroy(m);
    free(full);
    free(lib);
    free(hdr);
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    if (system(cmd)) {}
    return nr ? 0 : 1;
}
