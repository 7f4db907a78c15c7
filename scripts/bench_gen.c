/* Benchmark of a generated library (mctune gen): dispatch overhead per call, load-time
 * initialization, code size per tuned kernel, and tuned kernels against OpenBLAS on the tuned
 * shapes, side by side in the same run (one thread each).
 *
 * It builds a scratch database with this CPU's records (the expert schedules of
 * scripts/expert-schedules.txt as the tuned shapes, plus a tiny shape for the overhead), runs
 * `mctune gen` ($MCTUNE, default build/mctune), compiles the output with cc -O2 (no -march) and
 * a driver that includes it, then runs the driver twice: OpenBLAS as it picks its own kernels,
 * and with OPENBLAS_CORETYPE set to the best core it has for this CPU when that differs (the
 * choice of tuner/baseline.h, verified there by loading it and reading the core name back; the
 * driver prints the core it runs, read back again). M=1 shapes call cblas_sgemv. BENCH_FULL=1
 * also runs shapes above 16 GFLOP per call.
 *   build/bench/bench_gen */
#define _GNU_SOURCE 1
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codegen/codegen.h"
#include "db/db.h"
#include "tuner/baseline.h"

static const char *driver =
"#include \"bl.c\"\n"
"#include <cblas.h>\n#include <dlfcn.h>\n#include <time.h>\n"
"extern char *openblas_get_corename(void);\n"
"static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t);\n"
"    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9; }\n"
"static int cmpd(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b;\n"
"    return x < y ? -1 : x > y; }\n"
"static float *fill(long n) { float *p = malloc(sizeof(float) * (size_t)n);\n"
"    for (long i = 0; i < n; i++) p[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f; return p; }\n"
"/* median seconds of one call: runs until 0.3 s and at least 3 runs */\n"
"#define TIME(med, call) do { double t_[256]; int n_ = 0; double s_ = now(); \\\n"
"    call; /* warm-up */ \\\n"
"    while (n_ < 256 && (n_ < 3 || now() - s_ < 0.3)) { double a_ = now(); call; t_[n_++] = now() - a_; } \\\n"
"    qsort(t_, (size_t)n_, sizeof t_[0], cmpd); med = t_[n_ / 2]; } while (0)\n"
"int main(int argc, char **argv)\n{\n"
"    const char *ct = getenv(\"OPENBLAS_CORETYPE\");\n"
"    printf(\"library: %s\\n\", bl_cpu());\n"
"    printf(\"OpenBLAS %s (OPENBLAS_CORETYPE=%s), 1 thread\\n\", openblas_get_corename(), ct ? ct : \"unset\");\n"
"    if (argc > 1 && !strcmp(argv[1], \"all\")) {\n"
"        float A[8], B[64], C[8];\n"
"        for (int i = 0; i < 64; i++) B[i] = (float)i / 64.0f;\n"
"        for (int i = 0; i < 8; i++) A[i] = (float)i / 8.0f;\n"
"        mct_rt_shape s = {8, 8, 1, 1, MCT_RT_MATMUL, MCT_RT_NT, 0, 0, 0};\n"
"        const mct_rt_kernel *k = mct_rt_lookup(bl__lib.table, &s, 1, 1, 0);\n"
"        if (!k) { printf(\"no tuned kernel for the tiny shape\\n\"); return 1; }\n"
"        mct_rt_kernel_fn volatile fp = k->fn;\n"
"        long n = 2000000; double best_d = 1e9, best_s = 1e9;\n"
"        for (int r = 0; r < 5; r++) {\n"
"            double t0 = now();\n"
"            for (long i = 0; i < n; i++) fp(1, 8, 8, A, 8, B, 8, C, 8, NULL, 1, 1, 0, 0, 0);\n"
"            double t1 = now();\n"
"            for (long i = 0; i < n; i++) bl_sgemm(101, 111, 112, 1, 8, 8, 1.0f, A, 8, B, 8, 0.0f, C, 8);\n"
"            double t2 = now();\n"
"            if ((t1 - t0) / n < best_d) best_d = (t1 - t0) / n;\n"
"            if ((t2 - t1) / n < best_s) best_s = (t2 - t1) / n;\n"
"        }\n"
"        printf(\"dispatch: M=1 N=8 K=8 nt, kernel %s: direct %.1f ns/call, through bl_sgemm %.1f ns/call: overhead %.1f ns (target < 20)\\n\",\n"
"               k->name, best_d * 1e9, best_s * 1e9, (best_s - best_d) * 1e9);\n"
"        double tsum = 0, tmin = 1e9; int reps = 200;\n"
"        for (int r = 0; r < reps; r++) {\n"
"            host_state = 0; bl__lib.state = 0;  /* as if loaded anew: CPUID probe + table choice */\n"
"            double t0 = now(); mct_rt_init(&bl__lib); double t = now() - t0;\n"
"            tsum += t; if (t < tmin) tmin = t;\n"
"        }\n"
"        printf(\"init: CPUID probe + ladder: mean %.1f us, min %.1f us (target < 1000 us)\\n\", tsum / reps * 1e6, tmin * 1e6);\n"
"        tsum = 0; tmin = 1e9;\n"
"        for (int r = 0; r < 20; r++) {\n"
"            double t0 = now(); void *h = dlopen(\"./libbl.so\", RTLD_NOW | RTLD_LOCAL); double t = now() - t0;\n"
"            if (!h) { printf(\"dlopen: %s\\n\", dlerror()); break; }\n"
"            dlclose(h); tsum += t; if (t < tmin) tmin = t;\n"
"        }\n"
"        printf(\"load: dlopen of libbl.so (relocation + constructor init): mean %.1f us, min %.1f us\\n\", tsum / 20 * 1e6, tmin * 1e6);\n"
"    }\n"
"    const mct_rt_table *t = bl__lib.table;\n"
"    printf(\"%-44s %9s %12s %12s %7s\\n\", \"tuned shape\", \"kernel\", \"tuned GF/s\", \"OpenBLAS GF/s\", \"ratio\");\n"
"    for (int e = 0; t && e < t->nentries; e++) {\n"
"        const mct_rt_entry *E = &t->entries[e];\n"
"        for (int j = E->first; j < E->first + E->count; j++) {\n"
"            const mct_rt_kernel *k = &t->kernels[j];\n"
"            long M = k->M, N = E->s.N, K = E->s.K; int nt = E->s.layout == MCT_RT_NT;\n"
"            if (N == 8 && K == 8) continue;\n"
"            float *A = fill(M * K), *B = fill(N * K), *C = fill(M * N);\n"
"            double tt, to; bl_packed *P = NULL;\n"
"            if (k->packed_size && bl_prepack_b(nt, N, K, B, nt ? K : N, &P) == 0) {\n"
"                TIME(tt, bl_matmul_packed(P, M, A, K, C, N, NULL, 0, 0));\n"
"            } else {\n"
"                TIME(tt, bl_sgemm(101, 111, nt ? 112 : 111, (int)M, (int)N, (int)K, 1.0f, A, (int)K, B, nt ? (int)K : (int)N, 0.0f, C, (int)N));\n"
"            }\n"
"            if (M == 1) /* gemv, the call serving engines make at M=1 */\n"
"                TIME(to, cblas_sgemv(CblasRowMajor, nt ? CblasNoTrans : CblasTrans, nt ? (int)N : (int)K, nt ? (int)K : (int)N, 1.0f, B, nt ? (int)K : (int)N, A, 1, 0.0f, C, 1));\n"
"            else\n"
"                TIME(to, cblas_sgemm(CblasRowMajor, CblasNoTrans, nt ? CblasTrans : CblasNoTrans, (int)M, (int)N, (int)K, 1.0f, A, (int)K, B, nt ? (int)K : (int)N, 0.0f, C, (int)N));\n"
"            double fl = 2.0 * M * N * K; char w[64];\n"
"            snprintf(w, sizeof w, \"matmul %s M=%ld N=%ld K=%ld%s\", nt ? \"nt\" : \"nn\", M, N, K, P ? \" (prepacked B)\" : \"\");\n"
"            printf(\"%-44s %9.9s %12.1f %12.1f %6.2fx\\n\", w, k->name + 13, fl / tt * 1e-9, fl / to * 1e-9, to / tt);\n"
"            bl_packed_free(P); free(A); free(B); free(C);\n"
"        }\n"
"    }\n"
"    return 0;\n}\n";

static int run(const char *cmd)
{
    int rc = system(cmd);
    if (rc)
        fprintf(stderr, "bench_gen: failed (%d): %s\n", rc, cmd);
    return rc;
}

static int put(mct_db *db, const char *wl, const char *sched)
{
    mct_workload w;
    mct_sched *s;
    mct_db_rec r;
    char why[256];
    memset(&r, 0, sizeof r);
    if (mct_wl_parse(wl, &w, why, sizeof why) < 0 ||
        mct_sched_parse(&w, sched, &s, why, sizeof why) < 0) {
        fprintf(stderr, "bench_gen: %s | %s: %s\n", wl, sched, why);
        return -1;
    }
    mct_wl_format(&w, r.workload, sizeof r.workload);
    mct_sched_format(s, r.schedule, sizeof r.schedule);
    mct_sched_destroy(s);
    r.cpu = mct_cpu_key(mct_cpu_host());
    r.threads = 1;
    r.median_ns = 1;
    r.gflops = 0;  /* not measured here: expert schedules */
    snprintf(r.search, sizeof r.search, "manual");
    return mct_db_put_best(db, &r, NULL);
}

int main(void)
{
    const char *mctune = getenv("MCTUNE") ? getenv("MCTUNE") : "build/mctune";
    int full = getenv("BENCH_FULL") != NULL, nk = 1, rc = 1;
    char dir[] = "/tmp/mctune-bench-gen-XXXXXX", path[512], cmd[4096], err[512];
    mct_db *db = NULL;
    if (!mkdtemp(dir))
        return perror("mkdtemp"), 1;
    snprintf(path, sizeof path, "%s/db", dir);
    if (mct_db_open(path, MCT_DB_NOSYNC, err, sizeof err, &db) < 0) {
        fprintf(stderr, "bench_gen: %s\n", err);
        goto fail;
    }
    mct_db_put_cpu(db, mct_cpu_host());
    if (put(db, "matmul f32 nt M=1 N=8 K=8 epi=none", "tile(j, 8); tile(k, 8); reorder(i, j0, k0, j1, k1); cache_write(j0); unroll(j1, 8); vectorize(k1)") < 0)
        goto fail;
    FILE *f = fopen("scripts/expert-schedules.txt", "r");
    char line[2048];
    while (f && fgets(line, sizeof line, f)) {
        char *wl = line, *bar = strchr(line, '|'), *bar2;
        mct_workload w;
        if (line[0] == '#' || !bar || !(bar2 = strchr(bar + 1, '|')))
            continue;
        *bar = *bar2 = 0;
        if (mct_wl_parse(wl, &w, NULL, 0) < 0 || (!full && mct_wl_flops(&w) > 16e9))
            continue;
        if (put(db, wl, bar + 1) == 0)
            nk++;
    }
    if (f)
        fclose(f);
    mct_db_close(db);
    db = NULL;
    /* the library, and one without tuned kernels for the size per kernel */
    snprintf(path, sizeof path, "%s/e", dir);  /* an empty database */
    if (mkdir(path, 0777) < 0 || (snprintf(path, sizeof path, "%s/e/db", dir),
        mct_db_open(path, MCT_DB_NOSYNC, err, sizeof err, &db) < 0))
        goto fail;
    mct_db_close(db);
    db = NULL;
    snprintf(cmd, sizeof cmd, "%s gen --db %s/db --out %s --name bl --cpus host >/dev/null && "
             "%s gen --db %s/e/db --out %s/e --name bl >/dev/null", mctune, dir, dir, mctune, dir,
             dir);
    if (run(cmd))
        goto fail;
    snprintf(cmd, sizeof cmd, "cd %s && cc -O2 -c bl.c -o bl.o && cc -O2 -c e/bl.c -o e/bl.o && "
             "cc -O2 -fPIC -shared bl.c -o libbl.so && cc -O2 -o drv drv.c -lopenblas -ldl -lm",
             dir);
    snprintf(path, sizeof path, "%s/drv.c", dir);
    if (!(f = fopen(path, "w")) || fputs(driver, f) < 0 || fclose(f))
        goto fail;
    if (run(cmd))
        goto fail;
    printf("size: ");
    fflush(stdout);
    snprintf(cmd, sizeof cmd, "cd %s && size bl.o e/bl.o | awk 'NR==2{a=$4} NR==3{b=$4} END{printf "
             "\"%%d bytes (text+data+bss) with %d tuned kernels, %%d without: %%.0f bytes per "
             "tuned kernel\\n\", a, b, (a-b)/%d}'", dir, nk, nk);
    run(cmd);
    printf("\n== OpenBLAS as it chooses ==\n");
    fflush(stdout);
    snprintf(cmd, sizeof cmd, "cd %s && OPENBLAS_NUM_THREADS=1 ./drv all", dir);
    if (run(cmd))
        goto fail;
    mct_base_lib *forced = NULL;
    char why[256];
    if (mct_base_open(MCT_BASE_OPENBLAS_FORCED, mct_cpu_host(), mct_cpu_tier(), &forced, why,
                      sizeof why) == 0) {
        printf("\n== %s ==\n", mct_base_label(forced));
        fflush(stdout);
        snprintf(cmd, sizeof cmd, "cd %s && OPENBLAS_NUM_THREADS=1 OPENBLAS_CORETYPE=%s ./drv",
                 dir, mct_base_core(forced));
        mct_base_close(forced);
        if (run(cmd))
            goto fail;
    } else {
        printf("\n(no second OpenBLAS run: %s)\n", why);
    }
    rc = 0;
fail:
    if (db)
        mct_db_close(db);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd))
        fprintf(stderr, "bench_gen: could not remove %s\n", dir);
    return rc;
}
