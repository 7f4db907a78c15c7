/* The cblas drop-in's choice per call (runtime/dispatch.c, rt_gemm with tuned_only): a program
 * linked with OpenBLAS runs with the generated library preloaded (-DTK_PROVIDE_CBLAS), and each
 * cblas_sgemm either runs a kernel tuned for a B as given (b=raw) or forwards to OpenBLAS:
 *   - a b=raw kernel with no library figure (base_gflops 0) runs;
 *   - one measured faster than the library beside it runs;
 *   - one measured slower than the library forwards;
 *   - a shape with only a kernel that needs a prepacked B forwards (never packs B per call);
 *   - the rule applies to the kernel of the call's thread budget (openblas_set_num_threads): one
 *     shape whose 1-thread kernel lost and whose 2-thread kernel won forwards at 1 thread and
 *     runs the 2-thread kernel at 2.
 * cblas_sgemv runs the M=1 kernels (nt for row-major A, nn for its transpose, both orders) and
 * forwards strided vectors and shapes not tuned.
 * Every call's result is checked against a plain triple loop, whoever ran it; the choice is read
 * from the library's debug log (TK_DEBUG=1). The database is written through db/db.h, the
 * library by `mctune gen` ($MCTUNE, default build/mctune), built with plain cc. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/codegen.h"
#include "db/db.h"
#include "runtime/cpu.h"
#include "tests/check.h"

static const char *gemv = "tile(j, 8); tile(k, 16); reorder(i, j0, k0, j1, k1); cache_write(j0);"
    " unroll(j1, 8); vectorize(k1)";
static const char *par2 = "tile(j, 32, 8); tile(k, 16); reorder(j0, i, j1, k0, j2, k1); "
    "cache_write(j2); parallel(j0); unroll(j2, 8); vectorize(k1)";
static const char *packed = "tile(i, 16, 8); tile(j, 64, 32); tile(k, 64); reorder(j0, k0, i0, "
    "j1, i1, k1, i2, j2); pack(A, i0, i2); prepack(B, j2); cache_write(i1); unroll(i2, 8); "
    "vectorize(j2); unroll(k1, 4)";

/* A best record with the given speeds: gflops the kernel's, base the library's beside it. */
static int put(mct_db *db, const char *wl, const char *sched, int threads, double gflops,
               double base)
{
    mct_workload w;
    mct_sched *s = NULL;
    mct_db_rec r;
    char why[256];
    memset(&r, 0, sizeof r);
    if (mct_wl_parse(wl, &w, why, sizeof why) < 0 || mct_sched_parse(&w, sched, &s, why,
                                                                     sizeof why) < 0) {
        fprintf(stderr, "%s / %s: %s\n", wl, sched, why);
        return -1;
    }
    mct_wl_format(&w, r.workload, sizeof r.workload);
    mct_sched_format(s, r.schedule, sizeof r.schedule);
    mct_sched_destroy(s);
    r.cpu = mct_cpu_key(mct_cpu_host());
    r.threads = threads;
    r.gflops = gflops;
    r.median_ns = mct_wl_flops(&w) / gflops;
    r.base_gflops = base;
    r.samples = 1;
    snprintf(r.search, sizeof r.search, "manual");
    snprintf(r.compiler, sizeof r.compiler, "cc");
    snprintf(r.flags, sizeof r.flags, "-O2");
    snprintf(r.tool, sizeof r.tool, "test_dropin");
    return mct_db_put_best(db, &r, NULL);
}

/* The program the library is preloaded into: an OpenBLAS user. Arguments: threads, then
 * M,N,K triples; prints one line per call. */
static const char *consumer =
    "#include <math.h>\n#include <stdio.h>\n#include <stdlib.h>\n#include <cblas.h>\n"
    "int main(int argc, char **argv) {\n"
    "  openblas_set_num_threads(atoi(argv[1]));\n"
    "  int bad = 0;\n"
    "  for (int a = 2; a + 2 < argc; a += 3) {\n"
    "    int M = atoi(argv[a]), N = atoi(argv[a + 1]), K = atoi(argv[a + 2]);\n"
    "    float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * N * K);\n"
    "    float *C = malloc(sizeof(float) * M * N);\n"
    "    unsigned s = 7u * N + K;\n"
    "    for (int i = 0; i < M * K; i++) A[i] = (float)((s = s * 1103515245u + 12345u) >> 9) / 8388608.0f - 1.0f;\n"
    "    for (int i = 0; i < N * K; i++) B[i] = (float)((s = s * 1103515245u + 12345u) >> 9) / 8388608.0f - 1.0f;\n"
    "    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, A, K, B, K, 0.0f, C, N);\n"
    "    double err = 0;\n"
    "    for (int i = 0; i < M; i++) for (int j = 0; j < N; j++) {\n"
    "      double r = 0;\n"
    "      for (int k = 0; k < K; k++) r += (double)A[i * K + k] * B[j * K + k];\n"
    "      double e = fabs(C[i * N + j] - r) / (1.0 + fabs(r));\n"
    "      if (e > err) err = e;\n"
    "    }\n"
    "    printf(\"call M=%d N=%d K=%d err %.2g %s\\n\", M, N, K, err, err < 1e-4 ? \"ok\" : \"WRONG\");\n"
    "    bad |= err >= 1e-4;\n"
    "    free(A); free(B); free(C);\n"
    "  }\n"
    "  return bad;\n"
    "}\n";

/* An OpenBLAS user of cblas_sgemv. Arguments: threads, then order (r|c), trans (n|t), M, N and
 * the stride of x and y; prints one line per call. */
static const char *consumer_v =
    "#include <math.h>\n#include <stdio.h>\n#include <stdlib.h>\n#include <cblas.h>\n"
    "int main(int argc, char **argv) {\n"
    "  openblas_set_num_threads(atoi(argv[1]));\n"
    "  int bad = 0;\n"
    "  for (int a = 2; a + 4 < argc; a += 5) {\n"
    "    int col = argv[a][0] == 'c', tr = argv[a + 1][0] == 't';\n"
    "    int M = atoi(argv[a + 2]), N = atoi(argv[a + 3]), inc = atoi(argv[a + 4]);\n"
    "    int ny = tr ? N : M, nx = tr ? M : N, lda = (col ? M : N) + 3;\n"
    "    float *A = malloc(sizeof(float) * lda * (col ? N : M));\n"
    "    float *x = malloc(sizeof(float) * nx * inc), *y = malloc(sizeof(float) * ny * inc);\n"
    "    unsigned s = 5u * M + N;\n"
    "    for (int i = 0; i < lda * (col ? N : M); i++) A[i] = (float)((s = s * 1103515245u + 12345u) >> 9) / 8388608.0f - 1.0f;\n"
    "    for (int i = 0; i < nx * inc; i++) x[i] = (float)((s = s * 1103515245u + 12345u) >> 9) / 8388608.0f - 1.0f;\n"
    "    for (int i = 0; i < ny * inc; i++) y[i] = 0.5f;\n"
    "    cblas_sgemv(col ? CblasColMajor : CblasRowMajor, tr ? CblasTrans : CblasNoTrans, M, N,\n"
    "                1.0f, A, lda, x, inc, 0.0f, y, inc);\n"
    "    double err = 0;\n"
    "    for (int o = 0; o < ny; o++) {\n"
    "      double r = 0;\n"
    "      for (int k = 0; k < nx; k++) {\n"
    "        int m = tr ? k : o, n = tr ? o : k;\n"
    "        r += (double)A[col ? n * lda + m : m * lda + n] * x[k * inc];\n"
    "      }\n"
    "      double e = fabs(y[o * inc] - r) / (1.0 + fabs(r));\n"
    "      if (e > err) err = e;\n"
    "    }\n"
    "    printf(\"gemv %c%c M=%d N=%d inc %d err %.2g %s\\n\", col ? 'c' : 'r', tr ? 't' : 'n', M, N,\n"
    "           inc, err, err < 1e-4 ? \"ok\" : \"WRONG\");\n"
    "    bad |= err >= 1e-4;\n"
    "    free(A); free(x); free(y);\n"
    "  }\n"
    "  return bad;\n"
    "}\n";

int main(void)
{
    char dir[256], path[512], err[512], out[16384];
    const char *mctune = getenv("MCTUNE") ? getenv("MCTUNE") : "build/mctune";
    mct_db *db = NULL;
    if (check_tmpdir(dir, sizeof dir, "dropin") < 0)
        return 1;
    snprintf(path, sizeof path, "%s/db", dir);
    CHECK(mct_db_open(path, MCT_DB_NOSYNC, err, sizeof err, &db) == 0);
    if (!db) {
        fprintf(stderr, "%s\n", err);
        return check_done();
    }
    int rc = mct_db_put_cpu(db, mct_cpu_host());
    rc |= put(db, "matmul f32 nt M=16 N=64 K=96 epi=none b=raw", gemv, 1, 20, 0);
    rc |= put(db, "matmul f32 nt M=16 N=80 K=96 epi=none b=raw", gemv, 1, 10, 20);
    rc |= put(db, "matmul f32 nt M=16 N=96 K=96 epi=none b=raw", gemv, 1, 20, 10);
    rc |= put(db, "matmul f32 nt M=16 N=112 K=96 epi=none", packed, 1, 40, 10);
    rc |= put(db, "matmul f32 nt M=16 N=128 K=96 epi=none b=raw", gemv, 1, 20, 30);
    rc |= put(db, "matmul f32 nt M=16 N=128 K=96 epi=none b=raw", par2, 2, 40, 30);
    rc |= put(db, "matmul f32 nt M=1 N=64 K=96 epi=none b=raw", gemv, 1, 20, 0);
    rc |= put(db, "matmul f32 nn M=1 N=64 K=96 epi=none b=raw", "", 1, 20, 0);
    CHECK(rc == 0);
    mct_db_close(db);

    rc = check_sh(out, sizeof out, "%s gen --db %s --out %s/out --name tk --cpus host 2>&1",
                  mctune, path, dir);
    CHECKF(rc == 0, "gen: %.2000s", out);
    snprintf(path, sizeof path, "%s/out/consumer.c", dir);
    FILE *f = fopen(path, "w");
    CHECK(f && fputs(consumer, f) >= 0);
    if (f)
        fclose(f);
    snprintf(path, sizeof path, "%s/out/consumer_v.c", dir);
    f = fopen(path, "w");
    CHECK(f && fputs(consumer_v, f) >= 0);
    if (f)
        fclose(f);
    rc = check_sh(out, sizeof out, "cd %s/out && cc -std=c11 -O2 -fPIC -shared -fopenmp "
                  "-DTK_PROVIDE_CBLAS -Wall -Wextra -Werror -o libtkblas.so tk.c 2>&1 && "
                  "cc -std=c11 -O1 -o consumer consumer.c $(pkg-config --cflags --libs openblas "
                  "2>/dev/null || echo -lopenblas) -lm 2>&1 && "
                  "cc -std=c11 -O1 -o consumer_v consumer_v.c $(pkg-config --cflags --libs "
                  "openblas 2>/dev/null || echo -lopenblas) -lm 2>&1", dir);
    CHECKF(rc == 0, "build: %.3000s", out);

    /* one thread: every rule but the 2-thread kernel */
    rc = check_sh(out, sizeof out, "cd %s/out && TK_DEBUG=1 LD_PRELOAD=./libtkblas.so ./consumer "
                  "1 16 64 96 16 80 96 16 96 96 16 112 96 16 128 96 2>&1", dir);
    CHECKF(rc == 0 && !strstr(out, "WRONG"), "%.3000s", out);
    CHECKF(strstr(out, "sgemm nt M=16 N=64 K=96 -> tuned"), "no library figure: runs: %.3000s",
           out);
    CHECKF(strstr(out, "sgemm nt M=16 N=80 K=96 -> not run here (its kernel was measured slower"),
           "slower than the library: forwards: %.3000s", out);
    CHECKF(strstr(out, "sgemm nt M=16 N=96 K=96 -> tuned"), "faster: runs: %.3000s", out);
    CHECKF(strstr(out, "sgemm nt M=16 N=112 K=96 -> not run here (only kernels that need a "
                       "prepacked B"), "prepacked only: forwards: %.3000s", out);
    CHECKF(strstr(out, "sgemm nt M=16 N=128 K=96 -> not run here (its kernel was measured slower"),
           "1-thread kernel lost: forwards at 1 thread: %.3000s", out);
    CHECKF(!strstr(out, "B packed on this call"), "never packs B on a call: %.3000s", out);

    /* two threads: the shape's 2-thread kernel won, so it runs */
    rc = check_sh(out, sizeof out, "cd %s/out && TK_DEBUG=1 LD_PRELOAD=./libtkblas.so ./consumer "
                  "2 16 128 96 2>&1", dir);
    CHECKF(rc == 0 && !strstr(out, "WRONG"), "%.3000s", out);
    CHECKF(strstr(out, "sgemm nt M=16 N=128 K=96 -> tuned") && strstr(out, "2 threads"),
           "2-thread kernel won: runs at 2 threads: %.3000s", out);

    /* cblas_sgemv: y (64) = A x over 96 runs the nt M=1 kernel for a row-major A and for the
     * transpose of a column-major one, the nn kernel for the transpose of a row-major A; a
     * strided x and y, and a shape not tuned (48 outputs), go to OpenBLAS; all of them right */
    rc = check_sh(out, sizeof out, "cd %s/out && TK_DEBUG=1 LD_PRELOAD=./libtkblas.so "
                  "./consumer_v 1 r n 64 96 1 c t 96 64 1 r t 96 64 1 c n 64 96 1 r n 64 96 2 "
                  "r n 48 96 1 2>&1", dir);
    CHECKF(rc == 0 && !strstr(out, "WRONG") && strstr(out, "gemv rn M=48 N=96 inc 1 err"),
           "%.3000s", out);
    CHECKF(strstr(out, "sgemm nt M=1 N=64 K=96 -> tuned"), "row-major A: the nt kernel: %.3000s",
           out);
    CHECKF(strstr(out, "sgemm nn M=1 N=64 K=96 -> tuned"), "A^T: the nn kernel: %.3000s", out);
    CHECKF(!strstr(out, "M=1 N=48 K=96 -> tuned"), "a shape not tuned forwards: %.3000s", out);

    /* what `mctune tune` stores for the rule above: the library's speed on the record's scale,
     * so that the record's figure over it is the ratio of the run that timed both side by side
     * (the record's own figure is the search's best sample, not that run's) */
    const char *rwl = "matmul f32 nt M=8 N=64 K=64 epi=none b=raw";
    rc = check_sh(out, sizeof out, "%s tune --workload '%s' --budget 3 --min-time 0.01 --db "
                  "%s/tdb 2>&1", mctune, rwl, dir);
    const char *side = strstr(out, "beside the libraries: the best record ");
    double kg = 0, lg = 0;
    CHECKF(rc == 0 && side && sscanf(side, "beside the libraries: the best record %lf GFLOP/s, "
                                     "the fastest library %lf", &kg, &lg) == 2 && kg > 0 &&
           lg > 0 && strstr(side, "the cblas drop-in "), "tune b=raw: %.3000s", out);
    rc = check_sh(out, sizeof out, "%s db get '%s' --cpu host --format json --db %s/tdb 2>&1",
                  mctune, rwl, dir);
    const char *g = strstr(out, "\"gflops\":"), *bg = strstr(out, "\"base_gflops\":");
    double rg = g ? atof(g + 9) : 0, rb = bg ? atof(bg + 14) : 0;
    CHECKF(rc == 0 && rg > 0 && rb > 0 && kg > 0 && lg > 0 &&
           fabs(rg / rb - kg / lg) <= 0.005 * (kg / lg),
           "stored gflops %g / base_gflops %g = %g, side by side %g / %g = %g: %.2000s", rg, rb,
           rb > 0 ? rg / rb : 0, kg, lg, lg > 0 ? kg / lg : 0, out);

    check_rmtree(dir);
    return check_done();
}
